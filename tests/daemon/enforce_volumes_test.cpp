// Volume counters end to end: customsd counts the data subjects of request
// flows across flows (embedded SQLite, or Redis shared by two customsd),
// blocks the flow whose new subjects pass a limit, records keyed hashes (never
// identifiers) in the audit trail, keeps counts across restarts and reloads,
// and follows on_unavailable when Redis goes away.
#include "enforce_harness.hpp"
#include "harness.hpp"
#include "redis_server.hpp"

#include "audit/sqlite.hpp"
#include "daemon/enforce/inspect_pool.hpp"
#include "daemon/volume/subject_key.hpp"

#include <future>

using namespace customs::testing;
using namespace customs::testing::enforce;

namespace {

std::string member_prompt(int n) {
  char id[16];
  std::snprintf(id, sizeof id, "MID-%06d", n);
  return std::string("please look up member ") + id;
}

customs::daemon::config volume_config(const trail_files& t, std::uint16_t provider_port, const fs::path& rules) {
  auto c = enforcing_config(t, provider_port);
  c.rules = {rules};
  return c;
}

int send(enforced_server& s, int member) {
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body(member_prompt(member), false));
  return static_cast<int>(r.status);
}

customs::daemon::volumes_config sqlite_volumes(const fs::path& dir) {
  customs::daemon::volumes_config v;
  v.path = dir / "counters.db";
  v.subject_key = dir / "keys" / "subject.key";
  if (!fs::exists(v.subject_key)) (void)customs::crypto::generate_key_set(dir / "keys", customs::crypto::key_set::subject);
  return v;
}

// Counting in `redis` (budget 200 ms) with the subject key kept in `dir`, as
// every host of the fleet does; with `local`, on_unavailable: local, the
// fallback store in dir/local.db.
customs::daemon::config redis_volume_config(const trail_files& t, std::uint16_t provider_port,
                                            const redis_server& redis, const fs::path& dir, bool local) {
  auto cfg = volume_config(t, provider_port, test_rules("volumes.yaml"));
  cfg.volumes = redis.config();
  cfg.volumes->budget = std::chrono::milliseconds(200);
  cfg.volumes->subject_key = sqlite_volumes(dir).subject_key;
  if (local) {
    cfg.volumes->refuse_on_unavailable = false;
    cfg.volumes->path = dir / "local.db";
  }
  return cfg;
}

}  // namespace

TEST_CASE("enforce volumes: the flow whose new subject passes the limit is blocked, known subjects pass") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = volume_config(t, provider.port(), test_rules("volumes.yaml"));
  cfg.volumes = sqlite_volumes(dir.path());
  enforced_server s(std::move(cfg));
  CHECK(send(s, 1) == 200);
  CHECK(send(s, 1) == 200);  // the same member counts once
  CHECK(send(s, 2) == 200);
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body(member_prompt(3), false));
  CHECK(r.status == 451);
  CHECK(r.header("X-Customs-Rule").find("tv.members.limit") != std::string::npos);
  CHECK(send(s, 2) == 200);  // already counted: travels on
  CHECK(provider.request_count() == 4);
  CHECK(await_metric(s.admin_port(), R"(customs_volume_levels_total{counter="tv.members",level="tv.members.limit"})", 1) == 1);
}

TEST_CASE("enforce volumes: the audit trail holds the keyed hashes and the levels, never the identifiers") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = volume_config(t, provider.port(), test_rules("volumes.yaml"));
  cfg.audit->content = customs::daemon::audit_content::none;
  cfg.volumes = sqlite_volumes(dir.path());
  const auto key = cfg.volumes->subject_key;
  enforced_server s(std::move(cfg));
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body(member_prompt(42), false));
  REQUIRE(r.status == 200);
  const auto recs = flow_records(t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  const auto opened = json::serialize(recs[0].payload);
  INFO(opened);
  CHECK(opened.find("MID-000042") == std::string::npos);
  const auto& subjects = recs[0].payload.at("volume_subjects").as_array();
  REQUIRE(subjects.size() == 1);
  CHECK(subjects[0].at("counter").as_string() == "tv.members");
  CHECK(subjects[0].at("scope").as_string() == "tenant=demo");
  CHECK(subjects[0].at("zone").as_string() == "UTC");  // what audit volumes reckons rolling months in
  const customs::daemon::volume::subject_hasher h(key);
  CHECK(subjects[0].at("subjects").as_array()[0].as_string() ==
        customs::daemon::volume::to_hex(h.hash("pi.member_id:MID000042")));
  CHECK(recs[0].payload.at("volumes").as_array()[0].at("count").as_int64() == 1);
  // The counter database holds no identifier either.
  s.stop();
  const auto db = slurp(dir.path() / "counters.db") + slurp(fs::path(dir.path() / "counters.db").string() + "-wal");
  CHECK(db.find("MID-000042") == std::string::npos);
  CHECK(db.find("MID000042") == std::string::npos);
}

TEST_CASE("enforce volumes: counts survive a restart, and a changed threshold applies at reload without losing them") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  const auto rules_dir = dir.path() / "rules";
  fs::create_directories(rules_dir);
  fs::copy_file(test_rules("volumes.yaml"), rules_dir / "volumes.yaml");
  auto cfg = volume_config(t, provider.port(), rules_dir);
  cfg.volumes = sqlite_volumes(dir.path());
  {
    enforced_server s(cfg);
    CHECK(send(s, 1) == 200);
    CHECK(send(s, 2) == 200);
  }
  enforced_server s(cfg);
  CHECK(send(s, 3) == 451);  // 1 and 2 were kept
  // Raise the limit to 3 and reload: member 3 now fits, 4 does not.
  std::string y = slurp(rules_dir / "volumes.yaml");
  y.replace(y.find("exceeding: 2"), 12, "exceeding: 3");
  std::ofstream(rules_dir / "volumes.yaml", std::ios::trunc) << y;
  REQUIRE(s.server().reload(cfg).ok);
  CHECK(send(s, 3) == 200);
  CHECK(send(s, 4) == 451);
}

TEST_CASE("enforce volumes: two customsd processes sharing Redis cross a threshold together") {
  redis_server redis;
  temp_dir dir;
  fake_provider provider;
  const auto subject_key = sqlite_volumes(dir.path()).subject_key;  // one key for the fleet
  auto config_for = [&](const std::string& name) {
    const auto d = dir.path() / name;
    (void)customs::crypto::generate_key_set(d / "keys");
    const auto k = [&](const char* f) { return (d / "keys" / f).string(); };
    const std::string text =
        "version: 1\n"
        "listeners:\n"
        "  - {name: edge, address: 127.0.0.1, port: 0, default_source: {jurisdiction: CN, tenant: demo}}\n"
        "admin: {address: 127.0.0.1, port: 0}\n"
        "routes:\n"
        "  - {prefix: /openai-us/, upstream: \"http://127.0.0.1:" + std::to_string(provider.port()) +
        "\", dialect: openai, jurisdiction: US}\n"
        "threads: 1\n"
        "log: {level: info, flows: false}\n"
        "rules: [" + test_rules("volumes.yaml").string() + "]\n"
        "audit: {path: " + (d / "audit.db").string() + ", auditor_keys: [" + k("auditor.pub") +
        "], sealing_key: " + k("sealing.key") + ", signing_key: " + k("signing.key") + ", commit_interval: 0ms}\n"
        "volumes: {backend: redis, url: \"" + redis.url() + "\", subject_key: " + subject_key.string() +
        ", budget: 500ms}\n";
    std::ofstream(d / "customsd.yaml") << text;
    return d / "customsd.yaml";
  };
  customsd_process a(config_for("a"));
  customsd_process b(config_for("b"));
  auto send_to = [](customsd_process& p, int member) {
    for (int i = 0; i < 200; ++i) {  // until the process reached Redis
      const auto r = post(p.port(), "/openai-us/v1/chat/completions", chat_body(member_prompt(member), false));
      if (r.status != 503) return static_cast<int>(r.status);
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return 503;
  };
  CHECK(send_to(a, 1) == 200);
  CHECK(send_to(b, 2) == 200);
  CHECK(send_to(b, 1) == 200);  // counted by the other host
  CHECK(send_to(a, 3) == 451);  // the third member, after one on each host
  CHECK(send_to(b, 3) == 451);
  CHECK(send_to(a, 2) == 200);
}

TEST_CASE("enforce volumes: Redis killed mid-run: refuse answers 503, and a restart recovers") {
  redis_server redis;
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  enforced_server s(redis_volume_config(t, provider.port(), redis, dir.path(), false));
  REQUIRE(redis.wait_ready(s.enforcer().volumes()->primary()));
  CHECK(send(s, 1) == 200);
  redis.stop();
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body(member_prompt(2), false));
  CHECK(r.status == 503);
  CHECK(r.body.find("customs_volumes_unavailable") != std::string::npos);
  // A flow without subjects does not need the counters.
  CHECK(post(s.port(), "/openai-us/v1/chat/completions", chat_body("hello", false)).status == 200);
  CHECK(await_metric(s.admin_port(), R"(customs_volume_unavailable_flows_total{policy="refuse"})", 1) == 1);
  redis.start();
  REQUIRE(redis.wait_ready(s.enforcer().volumes()->primary()));
  CHECK(send(s, 2) == 200);
  CHECK(send(s, 3) == 451);  // member 1 was kept by Redis
}

TEST_CASE("enforce volumes: Redis down with on_unavailable local counts in the local store") {
  redis_server redis;
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = redis_volume_config(t, provider.port(), redis, dir.path(), true);
  redis.stop();
  enforced_server s(std::move(cfg));
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body(member_prompt(1), false));
  CHECK(r.status == 200);
  CHECK(send(s, 2) == 200);
  CHECK(send(s, 3) == 451);  // the local store counted 1 and 2
  const auto recs = flow_records(t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].payload.at("volume_store").as_string() == "local");
  CHECK(await_metric(s.admin_port(), R"(customs_volume_unavailable_flows_total{policy="local"})", 3) == 3);
}

TEST_CASE("enforce volumes: subjects counted locally while Redis was down reach Redis when it is back") {
  redis_server redis;
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = redis_volume_config(t, provider.port(), redis, dir.path(), true);
  // A second host of the fleet: its own trail, the same Redis and subject key.
  fs::create_directories(dir.path() / "b");
  trail_files tb(dir.path() / "b");
  auto other = redis_volume_config(tb, provider.port(), redis, dir.path(), false);
  enforced_server a(std::move(cfg));
  REQUIRE(redis.wait_ready(a.enforcer().volumes()->primary()));
  CHECK(send(a, 1) == 200);  // Redis: {1}
  redis.stop();
  CHECK(send(a, 2) == 200);  // counted by the local store only
  redis.start();
  // Redis is back: the journal is merged without waiting for another flow.
  CHECK(await_metric(a.admin_port(), R"(customs_volume_merges_total{result="merged"})", 1) == 1);
  CHECK(metric(scrape(a.admin_port()), R"(customs_volume_merges_total{result="failed"})") == 0);
  // The other host now sees {1, 2}: a third member passes the limit there.
  enforced_server b(std::move(other));
  REQUIRE(redis.wait_ready(b.enforcer().volumes()->primary()));
  CHECK(send(b, 3) == 451);
  CHECK(send(b, 2) == 200);
  // The merged entry is forgotten, again without a flow.
  customs::audit::sql::database local(dir.path() / "local.db", SQLITE_OPEN_READWRITE);
  local.exec("PRAGMA busy_timeout = 5000");
  for (int i = 0; i < 500 && local.query_int("SELECT count(*) FROM journal") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(local.query_int("SELECT count(*) FROM journal") == 0);
  CHECK(send(a, 2) == 200);
}

TEST_CASE("enforce volumes: a full local journal refuses the flow that needs a counter (503)") {
  redis_server redis;
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = redis_volume_config(t, provider.port(), redis, dir.path(), true);
  cfg.volumes->journal_max_entries = 1;
  redis.stop();
  enforced_server s(std::move(cfg));
  CHECK(send(s, 1) == 200);  // counted locally: the journal holds 1, its bound
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body(member_prompt(2), false));
  CHECK(r.status == 503);  // just past the bound: refused, not counted, nothing forwarded
  CHECK(r.body.find("customs_volumes_unavailable") != std::string::npos);
  CHECK(send(s, 1) == 503);  // a known subject needs a journal entry too
  CHECK(post(s.port(), "/openai-us/v1/chat/completions", chat_body("hello", false)).status == 200);
  CHECK(provider.request_count() == 2);
  CHECK(await_metric(s.admin_port(), R"(customs_volume_unavailable_flows_total{policy="refuse"})", 2) == 2);
  // Redis back: the entry is merged and forgotten, and flows count again.
  redis.start();
  CHECK(await_metric(s.admin_port(), R"(customs_volume_merges_total{result="merged"})", 1) == 1);
  REQUIRE(redis.wait_ready(s.enforcer().volumes()->primary()));
  CHECK(send(s, 2) == 200);
}

TEST_CASE("enforce volumes: volumes.journal_max_entries is checked at and past its bounds") {
  const auto base = std::string("version: 1\n"
                                "listeners:\n  - {name: edge, address: 127.0.0.1, port: 8080}\n"
                                "routes:\n  - {prefix: /openai/, upstream: \"https://api.openai.com\", dialect: openai, "
                                "jurisdiction: US}\n");
  temp_dir dir;
  const auto key = sqlite_volumes(dir.path()).subject_key;
  const auto with = [&](const std::string& value) {
    return base + "volumes: {backend: redis, url: \"redis://127.0.0.1:6379\", on_unavailable: local, path: " +
           (dir.path() / "local.db").string() + ", subject_key: " + key.string() + ", journal_max_entries: " + value +
           "}\n";
  };
  const auto error_of = [&](const std::string& value) -> std::string {
    try {
      (void)customs::daemon::parse_config(with(value), "test.yaml", dir.path());
    } catch (const customs::daemon::config_error& e) {
      std::string all;
      for (const auto& d : e.diagnostics()) all += d.to_string() + "\n";
      return all;
    }
    return {};
  };
  CHECK(customs::daemon::parse_config(base, "test.yaml", dir.path()).volumes == std::nullopt);
  CHECK(customs::daemon::parse_config(with("1"), "test.yaml", dir.path()).volumes->journal_max_entries == 1);
  CHECK(customs::daemon::parse_config(with("100000000"), "test.yaml", dir.path()).volumes->journal_max_entries ==
        100'000'000);
  CHECK(error_of("0").find("E_VALUE: volumes.journal_max_entries: must be from 1 to 100000000") != std::string::npos);
  CHECK(error_of("100000001").find("E_VALUE: volumes.journal_max_entries: must be at most 100000000") !=
        std::string::npos);
  CHECK(error_of("-1").find("E_TYPE: volumes.journal_max_entries: expected a non-negative integer") !=
        std::string::npos);
  CHECK(error_of("many").find("E_TYPE") != std::string::npos);
  // The default when the key is absent.
  CHECK(customs::daemon::volumes_config{}.journal_max_entries == 1'000'000);
}

TEST_CASE("enforce volumes: a flow waiting for Redis does not hold its worker, other flows go on") {
  customs::testing::silent_redis redis;  // accepts and reads, never answers
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = volume_config(t, provider.port(), test_rules("volumes.yaml"));
  REQUIRE(cfg.threads == 1);  // one worker: a blocked worker would hold every flow
  cfg.volumes = customs::daemon::volumes_config{};
  cfg.volumes->backend = customs::daemon::volumes_config::backend_kind::redis;
  cfg.volumes->url = redis.url();
  cfg.volumes->budget = std::chrono::seconds(60);
  cfg.volumes->subject_key = sqlite_volumes(dir.path()).subject_key;
  enforced_server s(std::move(cfg));
  // A flow with a subject, until its script reaches the server (flows sent
  // before the store connected are answered 503 at once).
  std::future<int> waiting;
  for (int i = 0; i < 200; ++i) {
    waiting = std::async(std::launch::async, [&] { return send(s, 1); });
    if (redis.wait_scripts(1, std::chrono::milliseconds(100))) break;
    REQUIRE(waiting.get() == 503);
  }
  REQUIRE(redis.scripts() == 1);
  // It waits for Redis; a flow without subjects on the same worker is served.
  CHECK(post(s.port(), "/openai-us/v1/chat/completions", chat_body("hello", false)).status == 200);
  CHECK(waiting.wait_for(std::chrono::seconds(0)) == std::future_status::timeout);
  // The connection drops: the waiting flow follows on_unavailable (refuse).
  redis.close_connections();
  CHECK(waiting.get() == 503);
  CHECK(provider.request_count() == 1);
}

TEST_CASE("enforce volumes: a large request inspected on the pool counts its subjects in Redis like a small one") {
  // Bodies of inspect_pool::offload_bytes or more are inspected on the
  // inspection pool; its verdict goes through the same Redis count (the
  // asynchronous store answers on the worker, not on the pool thread).
  redis_server redis;
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = volume_config(t, provider.port(), test_rules("volumes.yaml"));
  cfg.volumes = redis.config();
  cfg.volumes->subject_key = sqlite_volumes(dir.path()).subject_key;
  enforced_server s(std::move(cfg));
  REQUIRE(redis.wait_ready(s.enforcer().volumes()->primary()));
  std::string padding;
  while (padding.size() < customs::daemon::enforce::inspect_pool::offload_bytes) padding += " the quick brown fox";
  const auto large = [&](int member) {
    return post(s.port(), "/openai-us/v1/chat/completions", chat_body(member_prompt(member) + padding, false));
  };
  CHECK(large(1).status == 200);
  CHECK(large(1).status == 200);  // the same member counts once
  CHECK(send(s, 2) == 200);       // a small request adds to the same count
  const auto r = large(3);
  CHECK(r.status == 451);
  CHECK(r.header("X-Customs-Rule").find("tv.members.limit") != std::string::npos);
  CHECK(large(2).status == 200);  // already counted: travels on
  CHECK(provider.request_count() == 4);
  CHECK(await_metric(s.admin_port(), "customs_inspect_offloaded_total", 4) == 4);
  const auto recs = flow_records(t, r.header("X-Customs-Flow"));
  REQUIRE_FALSE(recs.empty());
  CHECK(recs[0].payload.if_contains("volume_store") == nullptr);  // counted by Redis, not a local fallback
}

TEST_CASE("enforce volumes: a counter store that does not open after the trail opened leaves the trail closed and whole") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = volume_config(t, provider.port(), test_rules("volumes.yaml"));
  cfg.volumes = sqlite_volumes(dir.path());
  fs::create_directories(dir.path() / "not-a-file.db");
  cfg.volumes->path = dir.path() / "not-a-file.db";  // a directory: SQLite cannot open it
  CHECK_THROWS_AS(customs::daemon::enforce::enforcer(cfg), std::runtime_error);
  // The trail the failed start opened was let go: the next start takes it,
  // and what it holds verifies.
  cfg.volumes = sqlite_volumes(dir.path());
  {
    enforced_server s(cfg);
    CHECK(send(s, 1) == 200);
  }
  const auto v = verify_trail(t);
  INFO((v.failures.empty() ? std::string() : v.failures[0].detail));
  CHECK(v.ok());
}
