#include <catch2/catch.hpp>

#include <cmath>

#include <boost/json.hpp>

#include <fstream>

#include "audit_tools_support.hpp"
#include "daemon/enforce/payload_json.hpp"
#include "tools/replay_engine.hpp"
#include "policy/time_zone.hpp"
#include "policy/volume.hpp"
#include "tests/audit/audit_test_support.hpp"

using namespace customs::tools::testing;
using namespace customs::audit::testing;
namespace fs = std::filesystem;

namespace {
struct cli_trail : trail {
  cli_trail() { write_flows(0, 10); }
  std::string dbs() const { return db.string(); }
  std::string key(const char* name) const { return (keys / name).string(); }
  std::vector<std::string> verify_args() const {
    return {"verify", "--db", dbs(), "--seed", key("sealing.seed"), "--signer", key("signing.pub")};
  }
};
std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}
}  // namespace

TEST_CASE("audit verify: exit 0 with a summary on a valid trail", "[tools][audit]") {
  cli_trail t;
  const auto r = audit_cmd(t.verify_args());
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains(": OK"));
  CHECK_THAT(r.out, Catch::Contains("records:     "));
  CHECK_THAT(r.out, Catch::Contains("20 flow records"));
  CHECK_THAT(r.out, Catch::Contains("checked with the sealing seed"));
  CHECK_THAT(r.out, Catch::Contains("erased payloads: 0"));
  // Without the seed the summary says what was not checked.
  const auto plain = audit_cmd({"verify", "--db", t.dbs()});
  CHECK(plain.code == 0);
  CHECK_THAT(plain.out, Catch::Contains("NOT checked"));
}

TEST_CASE("audit verify: says which records no signed checkpoint covers", "[tools][audit][verify]") {
  // A holder of the sealing seed can rewrite records and recompute their
  // MACs; only a signature (or a held checkpoint) tells. With the stored
  // checkpoints deleted the trail still verifies: the summary must not read
  // as if signatures had vouched for it.
  cli_trail t;
  const auto closed = audit_cmd(t.verify_args());
  INFO(closed.out << closed.err);
  REQUIRE(closed.code == 0);
  CHECK_THAT(closed.out, Catch::Contains("every record is covered by a signed checkpoint"));
  tamper_db(t.db).exec("DELETE FROM checkpoints");
  const auto bare = audit_cmd(t.verify_args());
  INFO(bare.out << bare.err);
  REQUIRE(bare.code == 0);
  CHECK_THAT(bare.out, Catch::Contains("NO record is covered by a signed checkpoint"));
}

TEST_CASE("audit verify: exit 1 naming the first failing record and the kind", "[tools][audit]") {
  cli_trail t;
  flip_blob_byte(t.db, 9, "payload", 40);
  flip_blob_byte(t.db, 14, "mac", 0);
  const auto r = audit_cmd(t.verify_args());
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("FAILED at record 9: altered: payload does not match its hash"));
  CHECK_THAT(r.out, !Catch::Contains("record 14"));
  const auto all = audit_cmd({"verify", "--db", t.dbs(), "--seed", t.key("sealing.seed"), "--all"});
  CHECK(all.code == 1);
  CHECK_THAT(all.out, Catch::Contains("FAILED at record 14: bad MAC"));
}

TEST_CASE("audit checkpoint + verify --checkpoint detect truncation", "[tools][audit]") {
  cli_trail t;
  const auto cp = audit_cmd({"checkpoint", "--db", t.dbs()});
  REQUIRE(cp.code == 0);
  CHECK_THAT(cp.out, Catch::StartsWith("customs audit checkpoint v1\n"));
  const auto held = t.dir.path / "held.checkpoint";
  std::ofstream(held) << cp.out;
  auto args = t.verify_args();
  args.insert(args.end(), {"--checkpoint", held.string()});
  REQUIRE(audit_cmd(args).code == 0);
  auto d = tamper_db(t.db);
  d.exec("DELETE FROM records WHERE seq > 20; DELETE FROM checkpoints WHERE seq > 20;");
  const auto r = audit_cmd(args);
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("FAILED at record 21: truncated"));
  // A checkpoint file that is not one is an I/O error, not a verdict.
  std::ofstream(held) << "nonsense\n";
  const auto bad = audit_cmd(args);
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Catch::Contains("held.checkpoint:line 1"));
}

TEST_CASE("audit show/export: index fields without a key, payloads with one", "[tools][audit]") {
  cli_trail t;
  const auto no_key = audit_cmd({"export", "--db", t.dbs(), "--flow", "flow-5"});
  REQUIRE(no_key.code == 0);
  const auto l = lines(no_key.out);
  REQUIRE(l.size() == 2);
  for (const auto& line : l) {
    const auto o = boost::json::parse(line).as_object();
    CHECK(o.at("flow_id").as_string() == "flow-5");
    CHECK(o.at("action").as_string() == "block");
    CHECK(o.at("rules").as_array().size() == 2);
    CHECK_FALSE(o.contains("payload"));
  }
  const auto with_key = audit_cmd({"export", "--db", t.dbs(), "--key", t.key("auditor.key"), "--flow", "flow-5"});
  REQUIRE(with_key.code == 0);
  const auto o = boost::json::parse(lines(with_key.out).at(0)).as_object();
  CHECK(o.at("payload").at("request_texts").at(0).as_string() == "hello 5");

  const auto csv = audit_cmd({"export", "--db", t.dbs(), "--format", "csv", "--src", "DE", "--action", "block"});
  REQUIRE(csv.code == 0);
  const auto cl = lines(csv.out);
  REQUIRE(cl.size() == 2);  // header + flow-5's last record (its final verdict)
  CHECK_THAT(cl[0], Catch::StartsWith("seq,time,kind,epoch,flow_id,action"));
  CHECK_THAT(cl[1], Catch::Contains(",flow-5,block,DE,"));

  const auto table = audit_cmd({"show", "--db", t.dbs(), "--key", t.key("auditor.key"), "--rule", "pii.card"});
  REQUIRE(table.code == 0);
  CHECK_THAT(table.out, Catch::Contains("payload: {\"request_texts\":[\"hello 0\"]"));
  CHECK_THAT(table.out, Catch::Contains("4 records"));  // flows 0 and 5

  const auto since = audit_cmd({"show", "--db", t.dbs(), "--since", "2999-01-01"});
  CHECK_THAT(since.out, Catch::Contains("0 records"));
  CHECK(audit_cmd({"show", "--db", t.dbs(), "--since", "soon"}).code == 2);
  CHECK(audit_cmd({"show", "--db", t.dbs(), "--format", "xml"}).code == 2);
}

TEST_CASE("audit show refuses an auditor key others can read", "[tools][audit][keys]") {
  cli_trail t;
  REQUIRE(::chmod((t.keys / "auditor.key").c_str(), 0644) == 0);
  const auto r = audit_cmd({"show", "--db", t.dbs(), "--key", t.key("auditor.key")});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("chmod 600"));
}

TEST_CASE("audit report: totals per group without a key", "[tools][audit]") {
  cli_trail t;
  const auto r = audit_cmd({"report", "--db", t.dbs(), "--by", "src,dst", "--format", "jsonl"});
  REQUIRE(r.code == 0);
  const auto l = lines(r.out);
  REQUIRE(l.size() == 2);
  const auto cn = boost::json::parse(l[0]).as_object();
  CHECK(cn.at("src").as_string() == "CN");
  CHECK(cn.at("dst").as_string() == "US");
  CHECK(cn.at("flows").as_int64() == 5);
  CHECK(cn.at("blocked").as_int64() == 1);
  CHECK(cn.at("tokens_out").as_int64() == 2 * (0 + 2 + 4 + 6 + 8));
  const auto table = audit_cmd({"report", "--db", t.dbs(), "--by", "day,tenant"});
  REQUIRE(table.code == 0);
  CHECK_THAT(table.out, Catch::Contains("total"));
  CHECK(audit_cmd({"report", "--db", t.dbs(), "--by", "colour"}).code == 2);
}

TEST_CASE("audit erase: payloads removed, erasure recorded, verify passes and reports it", "[tools][audit]") {
  cli_trail t;
  const auto r = audit_cmd({"erase", "--db", t.dbs(), "--flow", "flow-7", "--reason", "GDPR art. 17 #12",
                            "--keys", t.keys.string()});
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("erased the payloads of 2 records of flow flow-7"));
  const auto v = audit_cmd(t.verify_args());
  CHECK(v.code == 0);
  CHECK_THAT(v.out, Catch::Contains("erased payloads: 2 (flows: flow-7)"));
  const auto show = audit_cmd({"export", "--db", t.dbs(), "--key", t.key("auditor.key"), "--flow", "flow-7"});
  CHECK_THAT(show.out, Catch::Contains("\"erased\":true"));
  CHECK_THAT(show.out, Catch::Contains("GDPR art. 17 #12"));
  CHECK(audit_cmd({"erase", "--db", t.dbs(), "--flow", "flow-7", "--reason", "x"}).code == 2);  // no keys
}

TEST_CASE("audit usage and I/O errors exit 2", "[tools][audit]") {
  CHECK(audit_cmd({}).code == 2);
  CHECK(audit_cmd({"frobnicate"}).code == 2);
  CHECK(audit_cmd({"verify"}).code == 2);
  const auto missing = audit_cmd({"verify", "--db", "/nonexistent/audit.db"});
  CHECK(missing.code == 2);
  CHECK_THAT(missing.err, Catch::Contains("no such audit database"));
  CHECK(audit_cmd({"replay", "--db", "x.db", "--rules", "r.yaml"}).code == 2);  // no --key
}

TEST_CASE("audit replay runs recorded flows through a rule set and lists the changes", "[tools][audit][replay]") {
  trail t;
  {
    auto s = customs::audit::store::open_store(t.opts);
    ack_counter acks;
    const auto flow = [&](const std::string& id, const std::string& req, const std::string& resp,
                          const std::string& action) {
      customs::audit::record o;
      o.kind = customs::audit::record_kind::flow_opened;
      o.flow_id = id;
      o.index.src = "CN";
      o.index.dst = "US";
      o.index.action = action;
      if (action == "block") o.index.rules = {"old.rule"};
      o.payload = "{\"request_texts\":[\"" + req + "\"]}";
      auto c = o;
      c.kind = customs::audit::record_kind::flow_closed;
      c.payload = resp.empty() ? "{}" : "{\"response_texts\":[\"" + resp + "\"]}";
      REQUIRE_FALSE(s->append(std::move(o), acks.handler()));
      REQUIRE_FALSE(s->append(std::move(c), acks.handler()));
    };
    flow("f-phone", "call me at 13812345678", "ok", "allow");   // allow -> block
    flow("f-clean", "hello", "hi", "block");                    // block -> allow
    flow("f-same", "hello", "hi", "allow");                     // unchanged
    flow("f-resp", "hello", "my number is 13912345678", "allow");  // response text -> block
    acks.wait_for(8);
  }
  const auto pack = t.dir.path / "pack.yaml";
  std::ofstream(pack) << R"(schema: customs/v1
pack: {id: replay-test, version: "1"}
detectors:
  - {id: d.phone, category: pi.phone, pattern: '1[3-9]\d{9}'}
rules:
  - id: r.phone
    when: {detectors: [d.phone]}
    then: {action: block}
)";
  const auto r = audit_cmd({"replay", "--db", t.db.string(), "--key", (t.keys / "auditor.key").string(),
                            "--rules", pack.string()});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("replaying against rule set replay-test 1"));
  CHECK_THAT(r.out, Catch::Contains("f-phone  allow [] -> block [r.phone]"));
  CHECK_THAT(r.out, Catch::Contains("f-clean  block [old.rule] -> allow []"));
  CHECK_THAT(r.out, Catch::Contains("f-resp  allow [] -> block [r.phone]"));
  CHECK_THAT(r.out, !Catch::Contains("f-same"));
  CHECK_THAT(r.out, Catch::Contains("4 flows, 4 replayed, 3 would change, 0 not replayable"));

  // A rule set that does not load is reported with its diagnostics (exit 2).
  std::ofstream(pack) << "schema: customs/v1\npack: {id: broken}\nrules: [{id: x}]\n";
  const auto bad = audit_cmd({"replay", "--db", t.db.string(), "--key", (t.keys / "auditor.key").string(),
                              "--rules", pack.string()});
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Catch::Contains("the rule set does not load"));
  CHECK_THAT(bad.err, Catch::Contains("pack.yaml:"));
}

TEST_CASE("audit replay: texts recorded apart join only with each other", "[tools][audit][replay]") {
  // customsd joins the request target and the header fields with each other
  // only, not with the conversation, and lists them in "request_texts_apart";
  // replay judges the texts the same way. A trail without the list (written
  // before it) is judged with every text joined, as customsd then judged it.
  // Also: indices that are not those of a recorded text are ignored.
  trail t;
  {
    auto s = customs::audit::store::open_store(t.opts);
    ack_counter acks;
    const auto flow = [&](const std::string& id, const std::string& apart,
                          const std::string& texts = R"(["check 1101051949","1231002X: x"])") {
      customs::audit::record o;
      o.kind = customs::audit::record_kind::flow_opened;
      o.flow_id = id;
      o.index.src = "CN";
      o.index.dst = "US";
      o.index.action = "allow";
      o.payload = R"({"request_texts":)" + texts + apart + "}";
      auto c = o;
      c.kind = customs::audit::record_kind::flow_closed;
      c.payload = "{}";
      REQUIRE_FALSE(s->append(std::move(o), acks.handler()));
      REQUIRE_FALSE(s->append(std::move(c), acks.handler()));
    };
    flow("f-apart", R"(,"request_texts_apart":[1])");
    flow("f-old", "");
    flow("f-hostile", R"(,"request_texts_apart":[2,-1,"1",1.0,18446744073709551615])");
    // Two texts apart from the conversation join with each other.
    flow("f-pair", R"(,"request_texts_apart":[1,2])", R"(["hello","note=110105194912","31002X: x"])");
    acks.wait_for(8);
  }
  const auto r = audit_cmd({"replay", "--db", t.db.string(), "--key", (t.keys / "auditor.key").string(), "--rules",
                            (std::filesystem::path(CUSTOMS_SOURCE_DIR) / "rules").string()});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, !Catch::Contains("f-apart"));
  CHECK_THAT(r.out, Catch::Contains("f-old  allow [] -> block"));
  CHECK_THAT(r.out, Catch::Contains("f-hostile  allow [] -> block"));
  CHECK_THAT(r.out, Catch::Contains("f-pair  allow [] -> block"));
  CHECK_THAT(r.out, Catch::Contains("4 flows, 4 replayed, 3 would change"));
}

namespace {
// Flows with volume counters and models: flow i adds subjects {i, i+1} (hex) to
// counter "c" for tenant t-(i%2), reports count i+2, uses model m-(i%2); every
// third flow's provider reported no usage.
struct volume_trail : trail {
  volume_trail() {
    auto s = customs::audit::store::open_store(opts);
    ack_counter acks;
    for (std::uint64_t i = 0; i < 6; ++i) {
      auto opened = make_record(i, customs::audit::record_kind::flow_opened);
      const std::string tenant = "t-" + std::to_string(i % 2);
      opened.index.tenant = tenant;
      auto hex = [](std::uint64_t n) {
        char b[33];
        std::snprintf(b, sizeof b, "%032llx", static_cast<unsigned long long>(n));
        return std::string(b);
      };
      opened.payload = "{\"findings\":[],\"model\":\"m-" + std::to_string(i % 2) +
                       "\",\"volumes\":[{\"counter\":\"c\",\"scope\":\"tenant=" + tenant +
                       "\",\"window\":\"2026\",\"count\":" + std::to_string(i + 2) +
                       ",\"added\":2,\"action\":\"allow\"}],\"volume_subjects\":[{\"counter\":\"c\",\"scope\":\"tenant=" +
                       tenant + "\",\"window\":\"2026\",\"subjects\":[\"" + hex(i) + "\",\"" + hex(i + 1) + "\"]}]}";
      auto closed = make_record(i, customs::audit::record_kind::flow_closed);
      closed.index.tenant = tenant;
      if (i % 3 == 0) closed.index.tokens_in = closed.index.tokens_out = customs::audit::tokens_unknown;
      closed.payload = "{\"findings\":[],\"model\":\"m-" + std::to_string(i % 2) + "\"}";
      REQUIRE_FALSE(s->append(std::move(opened), acks.handler()));
      REQUIRE_FALSE(s->append(std::move(closed), acks.handler()));
    }
    acks.wait_for(12);
    s->close();
  }
  std::string dbs() const { return db.string(); }
  std::string key() const { return (keys / "auditor.key").string(); }
};
}  // namespace

TEST_CASE("audit volumes: recounts each counter from the subject hashes in the trail", "[tools][audit]") {
  volume_trail t;
  const auto r = audit_cmd({"volumes", "--db", t.dbs(), "--key", t.key(), "--format", "json"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  const auto doc = boost::json::parse(r.out).as_object();
  const auto& v = doc.at("volumes").as_array();
  REQUIRE(v.size() == 2);
  // tenant t-0: flows 0, 2, 4 add {0,1}, {2,3}, {4,5}: 6 subjects; t-1: {1,2},{3,4},{5,6}: 6.
  CHECK(v[0].at("scope").as_string() == "tenant=t-0");
  CHECK(v[0].at("subjects").as_int64() == 6);
  CHECK(v[0].at("flows").as_int64() == 3);
  CHECK(v[0].at("reported").as_int64() == 6);  // flow 4 reported count 6
  CHECK(v[1].at("subjects").as_int64() == 6);
  CHECK(doc.at("flows_read").as_int64() == 6);
  const auto table = audit_cmd({"volumes", "--db", t.dbs(), "--key", t.key()});
  CHECK_THAT(table.out, Catch::Contains("6 flows read, 0 erased"));
  CHECK(audit_cmd({"volumes", "--db", t.dbs()}).code == 2);  // needs the key
}

TEST_CASE("audit volumes: after an erasure the erased flow's subjects no longer count", "[tools][audit]") {
  volume_trail t;
  REQUIRE(audit_cmd({"erase", "--db", t.dbs(), "--flow", "flow-4", "--reason", "request 9", "--keys", t.keys.string()})
              .code == 0);
  const auto r = audit_cmd({"volumes", "--db", t.dbs(), "--key", t.key(), "--format", "json"});
  REQUIRE(r.code == 0);
  const auto doc = boost::json::parse(r.out).as_object();
  CHECK(doc.at("volumes").as_array()[0].at("subjects").as_int64() == 4);  // {4,5} gone
  CHECK(doc.at("erased").as_int64() == 1);
}

TEST_CASE("audit volumes: rolling month windows are recounted in the zone the flows recorded, to the second",
          "[tools][audit]") {
  // One flow adds subject 1 to a rolling-12m key whose zone was recorded
  // (Asia/Shanghai) and to one whose flows recorded none (trails written
  // before zones were recorded).
  trail t;
  const std::string db = t.db.string();
  const std::string key = (t.keys / "auditor.key").string();
  {
    auto s = customs::audit::store::open_store(t.opts);
    ack_counter acks;
    auto opened = make_record(1, customs::audit::record_kind::flow_opened);
    const std::string subject = "\"00000000000000000000000000000001\"";
    opened.payload =
        "{\"findings\":[],\"volume_subjects\":[{\"counter\":\"c\",\"scope\":\"zoned\",\"window\":\"rolling-12m\","
        "\"zone\":\"Asia/Shanghai\",\"subjects\":[" + subject + "]},{\"counter\":\"c\",\"scope\":\"old\",\"window\":"
        "\"rolling-12m\",\"subjects\":[" + subject + "]},{\"counter\":\"c\",\"scope\":\"hostile\",\"window\":"
        "\"rolling-12m\",\"zone\":\"\\u001b]0;x\\u0007../../etc/passwd\",\"subjects\":[" + subject + "]}]}";
    REQUIRE_FALSE(s->append(std::move(opened), acks.handler()));
    acks.wait_for(1);
    s->close();
  }
  std::int64_t seen_us = 0;
  {
    customs::audit::reader r(db);
    r.for_each({}, [&](const customs::audit::read_record& rec) {
      if (rec.kind == customs::audit::record_kind::flow_opened) seen_us = rec.time_us;
      return true;
    });
  }
  REQUIRE(seen_us > 0);
  // The instant whose 12-month window starts exactly at the flow's second:
  // the same local time in Shanghai a year later.
  std::string why;
  const auto sh = customs::policy::time_zone::load("Asia/Shanghai", why);
  REQUIRE(sh);
  const std::int64_t seen = seen_us / 1'000'000;
  const auto day = sh->date_at(seen);
  const std::int64_t end = sh->local_midnight(day.year + 1, day.month, day.day) +
                           (seen - sh->local_midnight(day.year, day.month, day.day));
  if (customs::policy::rolling_window_start(*sh, end, 0, 12) != seen) {
    WARN("the flow was written on 29 February: no instant a year later starts a window there");
    return;
  }
  const auto until = [](std::int64_t unix) {
    return customs::audit::format::format_time(unix * 1'000'000).substr(0, 19) + "Z";
  };
  const auto count = [&](std::int64_t at, const char* scope) {
    const auto r = audit_cmd({"volumes", "--db", db, "--key", key, "--format", "json", "--until", until(at)});
    INFO(r.err);
    REQUIRE(r.code == 0);
    const auto doc = boost::json::parse(r.out);
    for (const auto& v : doc.at("volumes").as_array())
      if (v.at("scope").as_string() == scope) return v.as_object();
    FAIL("no row for " << scope);
    return boost::json::object{};
  };
  // Ending at that instant the subject counts; a second later it does not.
  const auto at_edge = count(end, "zoned");
  CHECK(at_edge.at("subjects").as_int64() == 1);
  CHECK(at_edge.at("zone").as_string() == "Asia/Shanghai");
  CHECK(at_edge.at("window_exact").as_bool());
  CHECK(at_edge.at("window_start").as_string() == customs::audit::format::format_time(seen * 1'000'000));
  CHECK(count(end + 1, "zoned").at("subjects").as_int64() == 0);
  // Without a recorded zone months count as 31 days: still counted then (an
  // upper bound), marked as such, until 372 days have passed.
  const auto old = count(end + 1, "old");
  CHECK(old.at("subjects").as_int64() == 1);
  CHECK_FALSE(old.at("window_exact").as_bool());
  CHECK(count(seen + 372 * 86400, "old").at("subjects").as_int64() == 1);
  CHECK(count(seen + 372 * 86400 + 1, "old").at("subjects").as_int64() == 0);
  // A zone name that is not one (the trail is hostile input): months of 31
  // days, and the name written escaped.
  const auto hostile = count(end + 1, "hostile");
  CHECK(hostile.at("subjects").as_int64() == 1);
  CHECK_FALSE(hostile.at("window_exact").as_bool());
  const auto raw = audit_cmd({"volumes", "--db", db, "--key", key, "--format", "json"});
  CHECK(raw.err.find('\x1b') == std::string::npos);
  CHECK_THAT(raw.err, Catch::Contains("\\u001b]0;x"));
  const auto table = audit_cmd({"volumes", "--db", db, "--key", key, "--until", until(end + 1)});
  CHECK_THAT(table.out, Catch::Contains("rolling-12m ~"));
  CHECK_THAT(table.out, Catch::Contains("months counted as 31 days"));
}

TEST_CASE("audit report: by model with the key, by month and year, unknown usage apart", "[tools][audit]") {
  volume_trail t;
  const auto r = audit_cmd({"report", "--db", t.dbs(), "--key", t.key(), "--by", "model", "--format", "json"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  const auto doc = boost::json::parse(r.out).as_object();
  const auto& g = doc.at("groups").as_array();
  REQUIRE(g.size() == 2);
  CHECK(g[0].at("model").as_string() == "m-0");
  CHECK(g[0].at("flows").as_int64() == 3);
  // m-0: flows 0, 2, 4; flow 0 reported nothing: tokens_in 2 + 4, one unknown.
  CHECK(g[0].at("tokens_in").as_int64() == 6);
  CHECK(g[0].at("usage_unknown").as_int64() == 1);
  CHECK(audit_cmd({"report", "--db", t.dbs(), "--by", "model"}).code == 2);  // needs the key
  const auto y = audit_cmd({"report", "--db", t.dbs(), "--by", "year,month", "--format", "csv"});
  REQUIRE(y.code == 0);
  const auto l = lines(y.out);
  REQUIRE(l.size() == 2);
  CHECK(l[0] ==
        "year,month,flows,blocked,redacted,tagged,allowed,unscannable,refused,failed,other,tokens_in,tokens_out,"
        "usage_unknown\r");
  // 6 flows (0 and 5 blocked, the others allowed), 2 of them (0 and 3) without
  // usage: tokens_in 1+2+4+5 = 12.
  CHECK(l[1].ends_with(",6,2,0,0,4,0,0,0,0,12,24,2\r"));
}

TEST_CASE("audit verify: 'verified N records before the first failure' is exact for every kind", "[tools][audit][verify]") {
  const auto before = [](const std::string& out) {
    const auto l = lines(out);
    REQUIRE_FALSE(l.empty());
    return l.back();
  };
  SECTION("alteration") {
    cli_trail t;
    flip_blob_byte(t.db, 9, "payload", 40);
    const auto r = audit_cmd(t.verify_args());
    CHECK_THAT(r.out, Catch::Contains("FAILED at record 9: altered"));
    CHECK(before(r.out) == "verified 8 records before the first failure");
  }
  SECTION("bad MAC") {
    cli_trail t;
    flip_blob_byte(t.db, 14, "mac", 0);
    const auto r = audit_cmd(t.verify_args());
    CHECK_THAT(r.out, Catch::Contains("FAILED at record 14: bad MAC"));
    CHECK(before(r.out) == "verified 13 records before the first failure");
  }
  SECTION("deletion") {
    cli_trail t;
    tamper_db(t.db).exec("DELETE FROM records WHERE seq = 9");
    const auto r = audit_cmd(t.verify_args());
    CHECK_THAT(r.out, Catch::Contains("FAILED at record 9: missing"));
    CHECK(before(r.out) == "verified 8 records before the first failure");
  }
  SECTION("reordering") {
    cli_trail t;
    tamper_db(t.db).exec(
        "UPDATE records SET seq = 1000 WHERE seq = 6; UPDATE records SET seq = 6 WHERE seq = 5;"
        " UPDATE records SET seq = 5 WHERE seq = 1000;");
    const auto r = audit_cmd(t.verify_args());
    CHECK_THAT(r.out, Catch::Contains("FAILED at record 5: reordered"));
    CHECK(before(r.out) == "verified 4 records before the first failure");
  }
  SECTION("truncation") {
    cli_trail t;
    const auto total = t.verify().records;
    auto d = tamper_db(t.db);
    d.exec("DELETE FROM records WHERE seq > 20;");
    const auto r = audit_cmd(t.verify_args());
    INFO(total);
    CHECK_THAT(r.out, Catch::Contains("FAILED at record 21: truncated"));
    CHECK(before(r.out) == "verified 20 records before the first failure");
  }
  SECTION("--all: the count still ends at the first failure") {
    cli_trail t;
    flip_blob_byte(t.db, 9, "payload", 40);
    flip_blob_byte(t.db, 14, "mac", 0);
    auto args = t.verify_args();
    args.push_back("--all");
    const auto r = audit_cmd(args);
    CHECK_THAT(r.out, Catch::Contains("FAILED at record 14: bad MAC"));
    CHECK(before(r.out) == "verified 8 records before the first failure");
  }
}

namespace {
// Flows as customsd writes them, one of each final action, with ids that share
// prefixes: A and B share "7f3c"; the payloads hold timings as Boost.JSON
// serializes doubles (1.4640691E1).
struct mixed_trail : trail {
  struct flow_spec {
    std::string id, opened_action, closed_action, src, tenant;
    std::vector<std::string> rules;
    std::string opened_payload, closed_payload;
  };
  static constexpr const char* a = "7f3c0a0000000000000a";  // blocked at request time
  static constexpr const char* b = "7f3c0b0000000000000b";  // blocked at response time
  static constexpr const char* c = "8a000000000000000c0c";  // unscannable (content: full)
  std::vector<flow_spec> specs() const {
    const std::string timings = R"("timings_ms":{"duration":1.4640691E1,"inspect":2.5E-2})";
    return {
        {a, "block", "block", "CN", "tenant-with-a-long-name", {"cn.pipl.export", "pii.card"},
         R"({"verdict":{"action":"block"},"request_texts":["card 4111"],"findings":[]})",
         "{\"outcome\":\"answered\"," + timings + ",\"findings\":[]}"},
        {b, "allow", "block", "DE", "acme", {"pii.phone"}, R"({"request_texts":["hi"],"findings":[]})",
         "{\"outcome\":\"answered\"," + timings + ",\"response_texts\":[\"call 555\"],\"findings\":[]}"},
        {c, "unscannable", "unscannable", "CN", "acme", {},
         R"({"verdict":{"action":"unscannable","rules":[],"tags":[]},"findings":[],"detail":"the body is not valid JSON"})",
         "{\"outcome\":\"answered\"," + timings + ",\"findings\":[]}"},
        {"d0000000000000000d0d", "refused", "refused", "CN", "acme", {},
         R"({"verdict":{"action":"refused"},"findings":[],"detail":"volume counters unavailable: timeout"})",
         R"({"outcome":"answered","findings":[]})"},
        {"e0000000000000000e0e", "allow", "error", "CN", "acme", {}, R"({"request_texts":["x"],"findings":[]})",
         R"({"outcome":"failed","failure":"upstream reset","findings":[]})"},
        {"f0000000000000000f01", "redact", "redact", "DE", "acme", {"pii.card"},
         R"({"request_texts":["card 4111"],"findings":[]})", R"({"outcome":"answered","findings":[]})"},
        {"f0000000000000000f02", "tag", "tag", "DE", "acme", {"t.rule"}, R"({"request_texts":["y"],"findings":[]})",
         R"({"outcome":"answered","findings":[]})"},
        {"f0000000000000000f03", "allow", "allow", "DE", "acme", {}, R"({"request_texts":["z"],"findings":[]})",
         R"({"outcome":"answered","findings":[]})"},
    };
  }
  mixed_trail() {
    auto s = customs::audit::store::open_store(opts);
    ack_counter acks;
    std::size_t n = 0;
    for (const auto& f : specs()) {
      customs::audit::record o;
      o.kind = customs::audit::record_kind::flow_opened;
      o.flow_id = f.id;
      o.index.route = "/v1/chat/completions";
      o.index.src = f.src;
      o.index.dst = "US";
      o.index.tenant = f.tenant;
      o.index.action = f.opened_action;
      o.index.rules = f.opened_action == "block" || f.opened_action == "redact" || f.opened_action == "tag"
                          ? f.rules
                          : std::vector<std::string>{};
      o.index.rule_set_hash = "ab12cd34";
      o.index.tokens_in = o.index.tokens_out = customs::audit::tokens_unknown;
      o.payload = f.opened_payload;
      auto cl = o;
      cl.kind = customs::audit::record_kind::flow_closed;
      cl.index.action = f.closed_action;
      cl.index.rules = f.rules;
      cl.index.tokens_in = 10;
      cl.index.tokens_out = 20;
      cl.payload = f.closed_payload;
      REQUIRE_FALSE(s->append(std::move(o), acks.handler()));
      REQUIRE_FALSE(s->append(std::move(cl), acks.handler()));
      n += 2;
    }
    acks.wait_for(n);
    s->close();
  }
  std::string dbs() const { return db.string(); }
  std::string key() const { return (keys / "auditor.key").string(); }
};

}  // namespace

TEST_CASE("audit replay: an unscannable flow in a full trail is not replayed for its true reason", "[tools][audit][replay]") {
  mixed_trail t;
  const auto pack = t.dir.path / "pack.yaml";
  std::ofstream(pack) << R"(schema: customs/v1
pack: {id: replay-test, version: "1"}
detectors:
  - {id: d.phone, category: pi.phone, pattern: '1[3-9]\d{9}'}
rules:
  - id: r.phone
    when: {detectors: [d.phone]}
    then: {action: block}
)";
  const auto r = audit_cmd({"replay", "--db", t.dbs(), "--key", t.key(), "--rules", pack.string()});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, !Catch::Contains("payload mode"));
  CHECK_THAT(r.out, Catch::Contains(std::string("not replayed: ") + mixed_trail::c +
                                    ": no text recorded: the request was unscannable (the body is not valid JSON)"));
  CHECK_THAT(r.out, Catch::Contains("not replayed: d0000000000000000d0d: no text recorded: the request was refused "
                                    "(volume counters unavailable: timeout)"));
  CHECK_THAT(r.out, Catch::Contains("8 flows, 6 replayed"));
}

TEST_CASE("audit replay: a decided flow without texts still names the payload mode", "[tools][audit][replay]") {
  cli_trail t;  // and one more flow whose payload holds no text, as in mode "findings"
  const auto pack = t.dir.path / "pack.yaml";
  std::ofstream(pack) << "schema: customs/v1\npack: {id: p, version: \"1\"}\n";
  {
    auto s = customs::audit::store::open_store(t.opts);
    ack_counter acks;
    auto o = make_record(42, customs::audit::record_kind::flow_opened);
    o.payload = R"({"verdict":{"action":"allow"},"findings":[]})";
    REQUIRE_FALSE(s->append(std::move(o), acks.handler()));
    acks.wait_for(1);
    s->close();
  }
  const auto r = audit_cmd({"replay", "--db", t.dbs(), "--key", t.key("auditor.key"), "--rules", pack.string()});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("not replayed: flow-42: no text recorded (payload mode is not \"full\")"));
}

namespace {
std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}
// Where each space-separated word of a line starts.
std::vector<std::size_t> word_starts(const std::string& line) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < line.size(); ++i)
    if (line[i] != ' ' && (i == 0 || line[i - 1] == ' ')) out.push_back(i);
  return out;
}
}  // namespace

TEST_CASE("audit show: every column is apart and aligned under its heading", "[tools][audit][show]") {
  mixed_trail t;
  const auto r = audit_cmd({"show", "--db", t.dbs()});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  const auto l = lines(r.out);
  REQUIRE(l.size() == 1 + 16 + 1);
  const auto heads = words(l[0]);
  REQUIRE(heads == std::vector<std::string>{"SEQ", "TIME", "KIND", "FLOW", "ACTION", "SRC", "DST", "TENANT",
                                            "TOKENS", "RULES"});
  const auto head_at = word_starts(l[0]);
  bool saw_unscannable = false, saw_long_tenant = false;
  for (std::size_t i = 1; i + 1 < l.size(); ++i) {
    const auto w = words(l[i]);
    INFO(l[i]);
    // A row without rules has one word less; every word stands under its heading.
    REQUIRE((w.size() == heads.size() || w.size() == heads.size() - 1));
    const auto at = word_starts(l[i]);
    for (std::size_t k = 0; k < at.size(); ++k) CHECK(at[k] == head_at[k]);
    saw_unscannable |= w[4] == "unscannable" && w[5] == "CN";
    saw_long_tenant |= w[7] == "tenant-with-a-long-name";
    CHECK(w[3].size() == 20);  // the whole flow id
  }
  CHECK(saw_unscannable);
  CHECK(saw_long_tenant);
  CHECK(l.back() == "16 records");
}

TEST_CASE("audit show/export print timings as plain decimals, not 1.4640691E1", "[tools][audit][show]") {
  mixed_trail t;
  const auto show = audit_cmd({"show", "--db", t.dbs(), "--key", t.key(), "--flow", mixed_trail::c});
  INFO(show.out << show.err);
  REQUIRE(show.code == 0);
  CHECK_THAT(show.out, Catch::Contains("\"timings_ms\":{\"duration\":14.640691,\"inspect\":0.025}"));
  CHECK_THAT(show.out, !Catch::Contains("E1"));
  CHECK_THAT(show.out, !Catch::Contains("E-2"));
  const auto jsonl = audit_cmd({"export", "--db", t.dbs(), "--key", t.key(), "--flow", mixed_trail::c});
  REQUIRE(jsonl.code == 0);
  CHECK_THAT(jsonl.out, Catch::Contains("\"duration\":14.640691,"));
  CHECK_THAT(jsonl.out, !Catch::Contains("E1"));
  const auto closed = boost::json::parse(lines(jsonl.out).at(1)).as_object();
  CHECK(closed.at("payload").at("timings_ms").at("duration").as_double() == 14.640691);
  const auto csv = audit_cmd({"export", "--db", t.dbs(), "--key", t.key(), "--flow", mixed_trail::c, "--format", "csv"});
  REQUIRE(csv.code == 0);
  CHECK_THAT(csv.out, Catch::Contains("\"\"duration\"\":14.640691,"));
  CHECK_THAT(csv.out, !Catch::Contains("E1"));
}

TEST_CASE("audit --flow takes a unique prefix, and an ambiguous or unmatched one is an error", "[tools][audit][flow]") {
  mixed_trail t;
  const auto one = audit_cmd({"export", "--db", t.dbs(), "--flow", "7f3c0a"});
  INFO(one.out << one.err);
  REQUIRE(one.code == 0);
  const auto l = lines(one.out);
  REQUIRE(l.size() == 2);
  for (const auto& line : l) CHECK(boost::json::parse(line).at("flow_id").as_string() == mixed_trail::a);
  // A whole id is itself, also when it is the prefix of another id.
  CHECK(lines(audit_cmd({"export", "--db", t.dbs(), "--flow", mixed_trail::a}).out).size() == 2);

  const auto many = audit_cmd({"show", "--db", t.dbs(), "--flow", "7f3c"});
  CHECK(many.code == 2);
  CHECK_THAT(many.err, Catch::Contains("'7f3c' matches 2 flows"));
  CHECK(many.out.empty());
  const auto none = audit_cmd({"show", "--db", t.dbs(), "--flow", "zz"});
  CHECK(none.code == 2);
  CHECK_THAT(none.err, Catch::Contains("no flow id starts with 'zz'"));
  CHECK(none.out.empty());
  CHECK(audit_cmd({"report", "--db", t.dbs(), "--flow", "7f3c"}).code == 2);
  CHECK(audit_cmd({"report", "--db", t.dbs(), "--flow", "8a"}).code == 0);

  const auto erase = audit_cmd({"erase", "--db", t.dbs(), "--flow", "8a", "--reason", "test", "--keys", t.keys.string()});
  INFO(erase.err);
  REQUIRE(erase.code == 0);
  CHECK_THAT(erase.out, Catch::Contains(std::string("records of flow ") + mixed_trail::c));
  CHECK(audit_cmd({"erase", "--db", t.dbs(), "--flow", "f000", "--reason", "test", "--keys", t.keys.string()}).code ==
        2);
}

TEST_CASE("audit report counts every flow: unscannable, refused and failed have columns", "[tools][audit][report]") {
  mixed_trail t;
  const auto r = audit_cmd({"report", "--db", t.dbs(), "--format", "json"});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  const auto g = boost::json::parse(r.out).at("groups").as_array().at(0).as_object();
  CHECK(g.at("flows").as_int64() == 8);
  CHECK(g.at("blocked").as_int64() == 2);
  CHECK(g.at("redacted").as_int64() == 1);
  CHECK(g.at("tagged").as_int64() == 1);
  CHECK(g.at("allowed").as_int64() == 1);
  CHECK(g.at("unscannable").as_int64() == 1);
  CHECK(g.at("refused").as_int64() == 1);
  CHECK(g.at("failed").as_int64() == 1);
  std::int64_t sum = 0;
  for (const char* k : {"allowed", "tagged", "redacted", "blocked", "unscannable", "refused", "failed"})
    sum += g.at(k).as_int64();
  CHECK(sum == g.at("flows").as_int64());
  // The payload path (--by model) counts the same way.
  const auto m = audit_cmd({"report", "--db", t.dbs(), "--key", t.key(), "--by", "model", "--format", "json"});
  REQUIRE(m.code == 0);
  const auto gm = boost::json::parse(m.out).at("groups").as_array().at(0).as_object();
  CHECK(gm.at("unscannable").as_int64() == 1);
  CHECK(gm.at("refused").as_int64() == 1);
  CHECK(gm.at("failed").as_int64() == 1);
  CHECK(gm.at("allowed").as_int64() == 1);
  const auto table = audit_cmd({"report", "--db", t.dbs(), "--by", "src"});
  REQUIRE(table.code == 0);
  CHECK_THAT(lines(table.out).at(0), Catch::Contains("unscannable"));
  CHECK_THAT(lines(table.out).at(0), Catch::Contains("refused"));
  CHECK_THAT(lines(table.out).at(0), Catch::Contains("failed"));
}

TEST_CASE("audit export --action lists each flow once, by its final verdict", "[tools][audit][export]") {
  mixed_trail t;
  const auto r = audit_cmd({"export", "--db", t.dbs(), "--action", "block"});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  const auto l = lines(r.out);
  REQUIRE(l.size() == 2);
  CHECK(boost::json::parse(l[0]).at("flow_id").as_string() == mixed_trail::a);
  CHECK(boost::json::parse(l[1]).at("flow_id").as_string() == mixed_trail::b);
  // A flow that was allowed at request time and failed later is not "allow".
  const auto allow = audit_cmd({"export", "--db", t.dbs(), "--action", "allow"});
  REQUIRE(lines(allow.out).size() == 1);
  CHECK(boost::json::parse(lines(allow.out)[0]).at("flow_id").as_string() == "f0000000000000000f03");
}

TEST_CASE("audit export csv: epoch and rule_set_hash columns, rules joined by semicolons", "[tools][audit][export]") {
  mixed_trail t;
  const auto r = audit_cmd({"export", "--db", t.dbs(), "--format", "csv", "--flow", mixed_trail::a});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  const auto l = lines(r.out);
  REQUIRE(l.size() == 3);
  CHECK(l[0] == "seq,time,kind,epoch,flow_id,action,src,dst,tenant,route,rules,rule_set_hash,tokens_in,tokens_out,"
                "erased\r");
  CHECK_THAT(l[2], Catch::Contains(",flow_closed,0," + std::string(mixed_trail::a) +
                                   ",block,CN,US,tenant-with-a-long-name,/v1/chat/completions,cn.pipl.export;pii.card,"
                                   "ab12cd34,10,20,false\r"));
}

TEST_CASE("audit export: a payload an earlier build wrote with a byte outside UTF-8 still gives a JSON line", "[tools][audit][export]") {
  // Trails written before payloads were held to UTF-8 may hold a client's
  // raw %FF or Latin-1 byte: the payload does not parse, and export copies it
  // as a string into a line that is not JSON either.
  trail t;
  {
    auto s = customs::audit::store::open_store(t.opts);
    ack_counter acks;
    customs::audit::record o;
    o.kind = customs::audit::record_kind::flow_opened;
    o.flow_id = "f-latin1";
    o.index.action = "allow";
    o.payload = "{\"request_texts\":[\"caf\xe9\"]}";
    REQUIRE_FALSE(s->append(std::move(o), acks.handler()));
    acks.wait_for(1);
  }
  const auto r = audit_cmd({"export", "--db", t.db.string(), "--key", (t.keys / "auditor.key").string()});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  bool found = false;
  for (const auto& l : lines(r.out)) {
    if (l.find("f-latin1") == std::string::npos) continue;
    found = true;
    boost::system::error_code ec;
    (void)boost::json::parse(l, ec);
    CHECK_FALSE(ec);
  }
  CHECK(found);
}

TEST_CASE("audit replay: a text with a byte outside UTF-8 is judged from the payload as customsd judged it", "[tools][audit][replay]") {
  // customsd scans the text as received (a raw %FF byte); the payload holds
  // U+FFFD in its place. A pattern that spans the byte must decide the same.
  temp_dir dir;
  const auto pack = dir.path / "pack.yaml";
  std::ofstream(pack) << R"(schema: customs/v1
pack: {id: replay-utf8, version: "1"}
detectors:
  - {id: d.split, category: pi.phone, pattern: '\d{3}.\d{4}'}
rules:
  - id: r.split
    when: {detectors: [d.split]}
    then: {action: block}
)";
  const auto engine = customs::tools::make_replay_evaluator({pack});
  const std::string raw = "call 123\xff" "4567";
  customs::audit::replay_input scanned;
  scanned.src = "CN";
  scanned.dst = "US";
  scanned.request_texts = {raw};
  std::string payload;
  customs::daemon::enforce::json_out out(payload);
  out.begin_object().key("request_texts").begin_array().value(raw).end_array().end_object();
  customs::audit::replay_input replayed = scanned;
  replayed.request_texts = {std::string(boost::json::parse(payload).at("request_texts").at(0).as_string())};
  CHECK(engine.evaluate(replayed).action == engine.evaluate(scanned).action);
}

TEST_CASE("audit export: a number past the double range in a payload still gives a JSON line", "[tools][audit][export]") {
  // 1e999 parses as infinity, which JSON cannot write: export wrote "inf"
  // (a line no JSON reader takes). It writes a number that reads as
  // infinity again.
  trail t;
  {
    auto s = customs::audit::store::open_store(t.opts);
    ack_counter acks;
    customs::audit::record o;
    o.kind = customs::audit::record_kind::flow_opened;
    o.flow_id = "f-huge";
    o.index.action = "allow";
    o.payload = R"({"n":1e999,"m":-1e999,"k":1.5})";
    REQUIRE_FALSE(s->append(std::move(o), acks.handler()));
    acks.wait_for(1);
  }
  const auto r = audit_cmd({"export", "--db", t.db.string(), "--key", (t.keys / "auditor.key").string()});
  INFO(r.out << r.err);
  REQUIRE(r.code == 0);
  bool found = false;
  for (const auto& l : lines(r.out)) {
    if (l.find("f-huge") == std::string::npos) continue;
    found = true;
    boost::system::error_code ec;
    const auto v = boost::json::parse(l, ec);
    REQUIRE_FALSE(ec);
    CHECK(std::isinf(v.at("payload").at("n").as_double()));
    CHECK(v.at("payload").at("m").as_double() < 0);
    CHECK(v.at("payload").at("k").as_double() == 1.5);
  }
  CHECK(found);
}
