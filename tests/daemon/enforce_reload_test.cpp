// Rule reloads: POST /reload and SIGHUP swap the rule set atomically; a broken
// pack keeps the running set (GET /rules shows its hash), is logged and
// counted; flows in flight keep the set they started with. Also customsd as a
// process with enforcement: --check-config loads the rules, a bad pack is exit
// code 1, SIGTERM closes the trail so that it verifies.
#include "enforce_harness.hpp"

#include <fstream>

using namespace customs::testing;
using namespace customs::testing::enforce;

namespace {

void write(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string read(const fs::path& p) { return slurp(p); }

// The same response pack with the rule's action changed.
std::string response_pack(const std::string& action) {
  std::string s = read(test_rules("responses.yaml"));
  const auto at = s.find("action: redact\n      redaction: label");
  REQUIRE(at != std::string::npos);
  if (action == "tag") s.replace(at, std::string("action: redact\n      redaction: label").size(), "action: tag");
  const auto t = s.find("expect:\n      action: redact\n      redacted: \"call [REDACTED:pi.phone] now\"");
  REQUIRE(t != std::string::npos);
  if (action == "tag") {
    s.replace(t, std::string("expect:\n      action: redact\n      redacted: \"call [REDACTED:pi.phone] now\"").size(),
              "expect:\n      action: tag");
  }
  return s;
}

std::string yaml_config(const trail_files& t, std::uint16_t provider, const fs::path& extra_pack) {
  const std::string up = "http://127.0.0.1:" + std::to_string(provider);
  return "version: 1\n"
         "listeners:\n"
         "  - {name: edge, address: 127.0.0.1, port: 0, default_source: {jurisdiction: CN, tenant: demo}}\n"
         "admin: {address: 127.0.0.1, port: 0}\n"
         "routes:\n"
         "  - {prefix: /openai-us/, upstream: '" + up + "', dialect: openai, jurisdiction: US}\n"
         "threads: 1\n"
         "log: {level: error, flows: false}\n"
         "rules: ['" + shipped_rules().string() + "', '" + extra_pack.string() + "']\n"
         "audit:\n"
         "  path: '" + t.db.string() + "'\n"
         "  auditor_keys: ['" + (t.keys / "auditor.pub").string() + "']\n"
         "  sealing_key: '" + (t.keys / "sealing.key").string() + "'\n"
         "  signing_key: '" + (t.keys / "signing.key").string() + "'\n"
         "  content: full\n";
}

json::object rules_info(std::uint16_t admin) {
  http_client c(admin);
  const auto r = c.request("GET", "/rules");
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type") == "application/json");
  return json::parse(r.body).as_object();
}

std::string streamed_text(std::uint16_t port) {
  const auto r = post(port, "/openai-us/v1/chat/completions", chat_body("number?", true));
  REQUIRE(r.status == 200);
  return reassemble(all_apis()[0], r.body).text;
}

}  // namespace

TEST_CASE("enforce reload: a broken pack keeps the running set, a good one replaces it, flows in flight keep theirs") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  script sc;
  sc.deltas = {"Call 138 1", "234 56", "78 now."};
  provider.set_script(sc);
  const auto pack = dir.path() / "extra.yaml";
  write(pack, response_pack("redact"));
  const auto file = dir.path() / "customsd.yaml";
  write(file, yaml_config(t, provider.port(), pack));
  enforced_server s(customs::daemon::load_config(file));

  const auto before = rules_info(s.admin_port());
  CHECK(before.at("id").as_string() ==
        "apac-identifiers+cn-pipl-outbound+eu-gdpr-transfers+secrets+test-responses+us-bulk-data");
  CHECK(before.at("hash").as_string().size() == 64);
  CHECK(before.at("packs").as_array().size() == 6);
  CHECK(before.at("max_hold_back").as_int64() > 0);
  CHECK(streamed_text(s.port()) == "Call [REDACTED:pi.phone] now.");

  // Broken: an unknown detector. The reload is refused with the file's position.
  std::string broken = response_pack("redact");
  broken.replace(broken.find("detectors: [cn.mobile]"), std::string("detectors: [cn.mobile]").size(),
                 "detectors: [cn.mobil]");
  write(pack, broken);
  {
    http_client admin(s.admin_port());
    const auto r = admin.request("POST", "/reload");
    INFO(r.body);
    CHECK(r.status == 400);
    CHECK(r.body.find("extra.yaml:") != std::string::npos);
    CHECK(r.body.find("E_UNKNOWN_DETECTOR") != std::string::npos);
  }
  CHECK(rules_info(s.admin_port()).at("hash") == before.at("hash"));
  CHECK(streamed_text(s.port()) == "Call [REDACTED:pi.phone] now.");
  auto m = scrape(s.admin_port());
  CHECK(metric(m, R"(customs_rule_loads_total{result="failed"})") == 1);
  CHECK(metric(m, R"(customs_reloads_total{result="failed"})") == 1);

  // A stream in flight when a good set arrives keeps its set.
  sc.event_interval = std::chrono::milliseconds(100);
  provider.set_script(sc);
  http_client streaming(s.port());
  streaming.send_request("POST", "/openai-us/v1/chat/completions", chat_body("number?", true),
                         {{"Content-Type", "application/json"}});
  streaming.start_streamed_response();
  REQUIRE(streaming.streamed_status() == 200);
  std::string in_flight = streaming.next_piece().value_or("");

  write(pack, response_pack("tag"));
  {
    http_client admin(s.admin_port());
    const auto r = admin.request("POST", "/reload");
    INFO(r.body);
    CHECK(r.status == 200);
  }
  const auto after = rules_info(s.admin_port());
  CHECK(after.at("hash") != before.at("hash"));
  m = scrape(s.admin_port());
  CHECK(metric(m, R"(customs_rule_loads_total{result="ok"})") == 2);
  CHECK(m.find(std::string("hash=\"") + std::string(after.at("hash").as_string()) + "\"") != std::string::npos);

  while (auto piece = streaming.next_piece()) in_flight += *piece;
  CHECK(reassemble(all_apis()[0], in_flight).text == "Call [REDACTED:pi.phone] now.");
  // New flows use the new set: tagged, not redacted.
  sc.event_interval = std::chrono::milliseconds(0);
  provider.set_script(sc);
  CHECK(streamed_text(s.port()) == "Call 138 1234 5678 now.");
}

TEST_CASE("enforce process: customsd checks rules, reloads on SIGHUP keeping the set on errors, and closes a verifiable trail") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  const auto pack = dir.path() / "extra.yaml";
  write(pack, response_pack("redact"));
  const auto file = dir.path() / "customsd.yaml";
  std::string yaml = yaml_config(t, provider.port(), pack);
  yaml.replace(yaml.find("log: {level: error, flows: false}"), std::string("log: {level: error, flows: false}").size(),
               "log: {level: info, flows: false}");
  write(file, yaml);

  auto r = run_program({customsd_path(), "--config", file.string(), "--check-config"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("rule set apac-identifiers+cn-pipl-outbound+") != std::string::npos);

  write(pack, "schema: customs/v1\npack: {id: broken, version: '1'}\nrules:\n  - id: x\n    when: {detectors: [nope]}\n    then: {action: block}\n");
  r = run_program({customsd_path(), "--config", file.string(), "--check-config"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find(pack.string() + ":5:") != std::string::npos);
  r = run_program({customsd_path(), "--config", file.string()});
  CHECK(r.exit_code == 1);
  CHECK_FALSE(fs::exists(t.db));  // rules are checked before the trail is created

  write(pack, response_pack("redact"));
  customsd_process p(file);
  const auto before = rules_info(p.admin_port());
  write(pack, "not: [valid");
  p.signal(SIGHUP);
  (void)p.wait_for_log("event=rules_invalid", std::chrono::seconds(10));
  (void)p.wait_for_log("event=reload_failed", std::chrono::seconds(10));
  CHECK(rules_info(p.admin_port()).at("hash") == before.at("hash"));
  {
    const auto resp = post(p.port(), "/openai-us/v1/chat/completions", chat_body("身份证号：11010519491231002X", false));
    CHECK(resp.status == 451);
  }
  p.signal(SIGTERM);
  CHECK(p.wait_exit(std::chrono::seconds(10)) == 0);
  const auto v = verify_trail(t);
  INFO((v.failures.empty() ? std::string() : v.failures[0].detail));
  CHECK(v.ok());
  CHECK(v.flows_records == 2);
  CHECK(v.checkpoints >= 1);
}
