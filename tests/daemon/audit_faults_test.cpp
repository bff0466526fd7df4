// Store faults under a running customsd process: the audit database deleted,
// replaced, made read-only, the disk full, and the trail held by another
// process. Each case asserts what the client gets (503 in the dialect's error
// shape) and that nothing reached the provider.
#include "enforce_harness.hpp"

#include <sys/resource.h>
#include <sys/stat.h>

#include <fstream>

using namespace customs::testing;
using namespace customs::testing::enforce;

namespace {

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// An enforcing customsd config (the shipped packs) over the trail t, every client
// CN, routes to the fake provider in OpenAI's and Anthropic's dialects.
fs::path write_config(const fs::path& dir, const trail_files& t, std::uint16_t provider) {
  const std::string up = "http://127.0.0.1:" + std::to_string(provider);
  const auto file = dir / "customsd.yaml";
  write_text(file,
        "version: 1\n"
        "listeners:\n"
        "  - {name: edge, address: 127.0.0.1, port: 0, default_source: {jurisdiction: CN, tenant: demo}}\n"
        "admin: {address: 127.0.0.1, port: 0}\n"
        "routes:\n"
        "  - {prefix: /openai-us/, upstream: '" + up + "', dialect: openai, jurisdiction: US}\n"
        "  - {prefix: /anthropic-us/, upstream: '" + up + "', dialect: anthropic, jurisdiction: US}\n"
        "threads: 1\n"
        "log: {level: info, flows: false}\n"
        "rules: ['" + shipped_rules().string() + "']\n"
        "audit:\n"
        "  path: '" + t.db.string() + "'\n"
        "  auditor_keys: ['" + (t.keys / "auditor.pub").string() + "']\n"
        "  sealing_key: '" + (t.keys / "sealing.key").string() + "'\n"
        "  signing_key: '" + (t.keys / "signing.key").string() + "'\n"
        "  content: findings\n");
  return file;
}

// One request of each dialect; both must be refused for the audit trail.
void expect_refused(std::uint16_t port) {
  auto r = post(port, "/openai-us/v1/chat/completions", chat_body("hello", false));
  INFO(r.body);
  CHECK(r.status == 503);
  CHECK(r.header("X-Customs-Verdict") == "refused");
  CHECK(r.body.find("customs_audit_unavailable") != std::string::npos);
  CHECK(r.body.find("\"error\":{") != std::string::npos);  // OpenAI's shape
  r = post(port, "/anthropic-us/v1/messages", anthropic_body("hello", true));
  INFO(r.body);
  CHECK(r.status == 503);
  CHECK(r.body.find("\"type\":\"error\"") != std::string::npos);  // Anthropic's shape
}

struct running {
  temp_dir dir;
  trail_files t{dir.path()};
  fake_provider provider;
  customsd_process p{write_config(dir.path(), t, provider.port())};

  // A first flow goes through: the trail works before the fault.
  void first_flow_passes() {
    const auto r = post(p.port(), "/openai-us/v1/chat/completions", chat_body("hello", false));
    REQUIRE(r.status == 200);
    REQUIRE(provider.request_count() == 1);
  }
};

fs::path with_suffix(const fs::path& p, const char* suffix) {
  fs::path q = p;
  q += suffix;
  return q;
}

}  // namespace

TEST_CASE("store fault: the audit database deleted under customsd: new flows get 503, nothing reaches the provider") {
  running c;
  c.first_flow_passes();
  fs::remove(c.t.db);
  expect_refused(c.p.port());
  CHECK(c.provider.request_count() == 1);
  (void)c.p.wait_for_log("event=audit_trail_lost", std::chrono::seconds(10));
  const auto m = scrape(c.p.admin_port());
  CHECK(metric(m, "customs_audit_healthy") == 0);
  CHECK(metric(m, R"(customs_audit_refusals_total{reason="trail_lost"})") >= 1);
  // It stays refused: a lost trail is not continued.
  expect_refused(c.p.port());
  CHECK(c.provider.request_count() == 1);
}

TEST_CASE("store fault: the audit database replaced under customsd: new flows get 503, nothing reaches the provider") {
  running c;
  c.first_flow_passes();
  const auto copy = with_suffix(c.t.db, ".copy");
  fs::copy_file(c.t.db, copy);
  fs::rename(copy, c.t.db);
  expect_refused(c.p.port());
  CHECK(c.provider.request_count() == 1);
  (void)c.p.wait_for_log("event=audit_trail_lost", std::chrono::seconds(10));
}

TEST_CASE("store fault: the audit database made read-only: 503 while it lasts, flows resume after") {
  running c;
  c.first_flow_passes();
  REQUIRE(::chmod(c.t.db.c_str(), 0444) == 0);
  expect_refused(c.p.port());
  CHECK(c.provider.request_count() == 1);
  CHECK(metric(scrape(c.p.admin_port()), "customs_audit_healthy") == 0);
  REQUIRE(::chmod(c.t.db.c_str(), 0600) == 0);
  const auto r = post(c.p.port(), "/openai-us/v1/chat/completions", chat_body("hello again", false));
  CHECK(r.status == 200);
  CHECK(c.provider.request_count() == 2);
  c.p.signal(SIGTERM);
  CHECK(c.p.wait_exit(std::chrono::seconds(10)) == 0);
  const auto v = verify_trail(c.t);
  INFO((v.failures.empty() ? std::string() : v.failures[0].detail));
  CHECK(v.ok());
}

TEST_CASE("store fault: the disk full (file size limit): 503 while it lasts, flows resume after") {
  running c;
  c.first_flow_passes();
  // The kernel refuses to grow any file of customsd past its current size
  // (EFBIG, as on a full disk); customsd ignores SIGXFSZ.
  const rlim_t now = static_cast<rlim_t>(fs::file_size(c.t.db) + fs::file_size(with_suffix(c.t.db, "-wal")));
  rlimit tight{now, RLIM_INFINITY};
  REQUIRE(::prlimit(c.p.pid(), RLIMIT_FSIZE, &tight, nullptr) == 0);
  const std::string big = "Please summarise: " + std::string(64 * 1024, 'x');
  for (int i = 0; i < 3; ++i) {
    const auto r = post(c.p.port(), "/openai-us/v1/chat/completions", chat_body(big, false));
    INFO(r.body);
    CHECK(r.status == 503);
    CHECK(r.body.find("customs_audit_unavailable") != std::string::npos);
  }
  CHECK(c.provider.request_count() == 1);
  rlimit open_again{RLIM_INFINITY, RLIM_INFINITY};
  REQUIRE(::prlimit(c.p.pid(), RLIMIT_FSIZE, &open_again, nullptr) == 0);
  const auto r = post(c.p.port(), "/openai-us/v1/chat/completions", chat_body(big, false));
  CHECK(r.status == 200);
  CHECK(c.provider.request_count() == 2);
  c.p.signal(SIGTERM);
  CHECK(c.p.wait_exit(std::chrono::seconds(10)) == 0);
  const auto v = verify_trail(c.t);
  INFO((v.failures.empty() ? std::string() : v.failures[0].detail));
  CHECK(v.ok());
}

TEST_CASE("store fault: a second customsd on a held audit trail exits 2 and the first keeps serving") {
  running c;
  c.first_flow_passes();
  // The same config but another port: only the trail is shared.
  const auto r = run_program({customsd_path(), "--config", write_config(c.dir.path(), c.t, c.provider.port()).string()});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find(c.t.db.string()) != std::string::npos);
  CHECK(r.err.find("in use by another process") != std::string::npos);
  const auto again = post(c.p.port(), "/openai-us/v1/chat/completions", chat_body("hello", false));
  CHECK(again.status == 200);
  CHECK(c.provider.request_count() == 2);
}

TEST_CASE("store fault: customsctl reads and verifies the trail while customsd holds it") {
  running c;
  c.first_flow_passes();
  const auto v = run_program({customsctl_path(), "audit", "verify", "--db", c.t.db.string(), "--seed",
                              (c.t.keys / "sealing.seed").string()});
  INFO(v.err);
  CHECK(v.exit_code == 0);
  const auto show = run_program({customsctl_path(), "audit", "show", "--db", c.t.db.string()});
  CHECK(show.exit_code == 0);
  CHECK(show.out.find("allow") != std::string::npos);
  const auto rep = run_program({customsctl_path(), "audit", "report", "--db", c.t.db.string()});
  INFO(rep.err);
  CHECK(rep.exit_code == 0);
  // And customsd still serves.
  CHECK(post(c.p.port(), "/openai-us/v1/chat/completions", chat_body("hello", false)).status == 200);
}
