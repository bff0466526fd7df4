// The audit side of enforcement: no audit, no egress (503 when the store fails,
// unless on_failure: allow), what each content mode records, replay of recorded
// flows with `customsctl audit replay`, `customsctl audit verify`, and metrics.
#include "enforce_harness.hpp"

#include "audit/store.hpp"

using namespace customs::testing;
using namespace customs::testing::enforce;
using customs::daemon::audit_content;

namespace {

const std::string resident_id_prompt = "身份证号：11010519491231002X";
const std::string aws_key = "AKIAUJZDE8GXD6NCF10E";

// A prompt big enough that its record needs new database pages.
std::string big_prompt() { return "Please summarise: " + std::string(12000, 'x'); }

customs::audit::store& store_of(enforced_server& s) {
  auto* st = dynamic_cast<customs::audit::store*>(s.enforcer().trail().get());
  REQUIRE(st != nullptr);
  return *st;
}

}  // namespace

TEST_CASE("enforce audit: when the store refuses records, new flows get 503 and nothing reaches the provider") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  enforced_server s(enforcing_config(t, provider.port()));
  auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body("hello", false));
  REQUIRE(r.status == 200);
  REQUIRE(provider.request_count() == 1);

  store_of(s).set_max_pages(1);  // "disk full": the database may not grow
  for (const bool stream : {false, true, false}) {
    r = post(s.port(), "/anthropic-us/v1/messages", anthropic_body(big_prompt(), stream));
    INFO(r.body);
    CHECK(r.status == 503);
    CHECK(r.header("X-Customs-Verdict") == "refused");
    CHECK(r.header("Retry-After") == "1");
    CHECK(r.body.find("customs_audit_unavailable") != std::string::npos);
    CHECK(r.body.find("\"type\":\"error\"") != std::string::npos);  // Anthropic's shape
  }
  // A blocked request is not answered without its record either.
  r = post(s.port(), "/openai-us/v1/chat/completions", chat_body(resident_id_prompt + big_prompt(), false));
  CHECK(r.status == 503);
  CHECK(provider.request_count() == 1);
  CHECK(await_metric(s.admin_port(), R"(customs_audit_refusals_total{reason="store_failed"})", 4) == 4);
  const auto m = scrape(s.admin_port());
  CHECK(metric(m, R"(customs_enforced_flows_total{route="/anthropic-us/",action="refused"})") == 3);
  CHECK(metric(m, "customs_audit_store_errors_total") >= 4);

  // Room again: flows go through.
  store_of(s).set_max_pages(0);
  r = post(s.port(), "/anthropic-us/v1/messages", anthropic_body(big_prompt(), false));
  CHECK(r.status == 200);
  CHECK(provider.request_count() == 2);
  s.stop();
  const auto v = verify_trail(t);
  INFO((v.failures.empty() ? std::string() : v.failures[0].detail));
  CHECK(v.ok());
}

TEST_CASE("enforce audit: on_failure: allow lets flows through while the store refuses, and counts it") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = enforcing_config(t, provider.port());
  cfg.audit->refuse_on_failure = false;
  enforced_server s(std::move(cfg));
  store_of(s).set_max_pages(1);
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body(big_prompt(), false));
  CHECK(r.status == 200);
  CHECK(provider.request_count() == 1);
  // The opened record failed (counted when the flow ends); the closed one may fit.
  std::uint64_t failures = 0;
  for (int i = 0; i < 250 && failures == 0; ++i) {
    failures = metric(scrape(s.admin_port()), R"(customs_audit_failures_total{reason="store_failed"})");
    if (failures == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(failures >= 1);
  CHECK(metric(scrape(s.admin_port()), R"(customs_audit_refusals_total{reason="store_failed"})") == 0);
}

TEST_CASE("enforce audit: content none keeps no text, findings keeps the matches only, full keeps the texts") {
  for (const auto mode : {audit_content::none, audit_content::findings, audit_content::full}) {
    INFO("content " << to_string(mode));
    temp_dir dir;
    trail_files t(dir.path());
    fake_provider provider;
    script sc;
    sc.text = "Call 138 1234 5678 now.";
    provider.set_script(sc);
    enforced_server s(enforcing_config(t, provider.port(), mode));
    const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body("客户电话 139 1234 5678", true));
    REQUIRE(r.status == 200);
    const auto recs = flow_records(t, r.header("X-Customs-Flow"));
    REQUIRE(recs.size() == 2);
    const auto opened = json::serialize(recs[0].payload);
    const auto closed = json::serialize(recs[1].payload);
    INFO(opened << "\n" << closed);
    // Findings are always there (detector, offsets, action).
    CHECK(recs[0].payload.at("findings").as_array().size() == 1);
    CHECK(recs[1].payload.at("findings").as_array().size() == 2);
    CHECK(recs[1].index.action == "redact");
    const bool texts = mode == audit_content::full;
    const bool matches = mode != audit_content::none;
    CHECK((opened.find("139 1234 5678") != std::string::npos) == matches);
    CHECK((closed.find("138 1234 5678") != std::string::npos) == matches);
    CHECK(recs[0].payload.contains("request_texts") == texts);
    CHECK(recs[1].payload.contains("response_texts") == texts);
    CHECK((opened.find("客户电话") != std::string::npos) == texts);
    CHECK((closed.find("Call ") != std::string::npos) == texts);
  }
}

TEST_CASE("enforce audit: recorded flows replay without change under the same rules, and customsctl audit verify passes") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  {
    enforced_server s(enforcing_config(t, provider.port()));
    CHECK(post(s.port(), "/openai-us/v1/chat/completions", chat_body(resident_id_prompt, false)).status == 451);
    CHECK(post(s.port(), "/gemini-us/v1beta/models/g:generateContent", gemini_body("电话 138 1234 5678")).status == 200);
    CHECK(post(s.port(), "/openai-cn/v1/chat/completions", chat_body("STRICTLY CONFIDENTIAL", false)).status == 200);
    script sc;
    sc.deltas = {"Call 138 1", "234 56", "78 now."};
    provider.set_script(sc);
    CHECK(post(s.port(), "/anthropic-us/v1/messages", anthropic_body("number?", true)).status == 200);
    sc.deltas = {"key: AKIAUJZ", "DE8GXD6NCF10E"};
    provider.set_script(sc);
    CHECK(post(s.port(), "/openai-cn/v1/responses", responses_body("key?", true)).status == 200);
    sc.deltas = {"nothing to see"};
    provider.set_script(sc);
    CHECK(post(s.port(), "/openai-cn/v1/chat/completions", chat_body("hi", true)).status == 200);
  }
  const std::string db = t.db.string(), key = (t.keys / "auditor.key").string();
  auto r = run_program({customsctl_path(), "audit", "replay", "--db", db, "--key", key, "--rules",
                        shipped_rules().string(), "--rules", test_rules("responses.yaml").string()});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("6 flows, 6 replayed, 0 would change, 0 not replayable") != std::string::npos);
  // Without the response pack, the redacted stream would have been allowed:
  // replay sees the difference.
  r = run_program({customsctl_path(), "audit", "replay", "--db", db, "--key", key, "--rules", shipped_rules().string()});
  INFO(r.out << r.err);
  CHECK(r.out.find("6 flows, 6 replayed, 1 would change") != std::string::npos);
  CHECK(r.out.find("redact [test.response.phone.redact] -> allow []") != std::string::npos);

  r = run_program({customsctl_path(), "audit", "verify", "--db", db, "--seed", (t.keys / "sealing.seed").string(),
                   "--signer", (t.keys / "signing.pub").string()});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("OK") != std::string::npos);
}

TEST_CASE("enforce metrics: flows by route and action, rules, pairs, findings, inspection and audit timings") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  script sc;
  sc.deltas = {"Call 138 1", "234 56", "78 now."};
  provider.set_script(sc);
  enforced_server s(enforcing_config(t, provider.port()));
  CHECK(post(s.port(), "/openai-us/v1/chat/completions", chat_body(resident_id_prompt, false)).status == 451);
  CHECK(post(s.port(), "/openai-us/v1/chat/completions", chat_body("number?", true)).status == 200);
  const std::string flows = R"(customs_enforced_flows_total{route="/openai-us/",action="redact"})";
  REQUIRE(await_metric(s.admin_port(), flows, 1) == 1);
  const auto m = scrape(s.admin_port());
  INFO(m);
  CHECK(metric(m, R"(customs_enforced_flows_total{route="/openai-us/",action="block"})") == 1);
  CHECK(metric(m, R"(customs_enforced_flows_total{route="/gemini-cn/",action="allow"})") == 0);
  CHECK(m.find(R"(customs_enforced_flows_total{route="/gemini-cn/",action="allow"} 0)") != std::string::npos);
  CHECK(metric(m, R"(customs_rule_flows_total{rule="cn.pipl.sensitive.block"})") == 1);
  CHECK(metric(m, R"(customs_rule_flows_total{rule="test.response.phone.redact"})") == 1);
  CHECK(metric(m, R"(customs_flow_pairs_total{src="CN",dst="US"})") == 2);
  CHECK(metric(m, R"(customs_findings_total{detector="cn.resident_id",direction="request"})") == 1);
  CHECK(metric(m, R"(customs_findings_total{detector="cn.mobile",direction="response"})") == 1);
  CHECK(metric(m, "customs_inspect_seconds_count") == 2);
  CHECK(metric(m, "customs_audit_durable_wait_seconds_count") == 2);
  CHECK(metric(m, "customs_hold_back_seconds_count") >= 1);
  CHECK(m.find("customs_audit_queue_depth ") != std::string::npos);
  // A histogram of every commit: at least one commit per flow's records.
  CHECK(m.find("# TYPE customs_audit_commit_latency_seconds histogram") != std::string::npos);
  CHECK(metric(m, "customs_audit_commit_latency_seconds_count") >= 1);
  CHECK(metric(m, "customs_audit_commit_latency_seconds_count") == metric(m, "customs_audit_commits_total"));
  CHECK(metric(m, R"(customs_audit_commit_latency_seconds_bucket{le="+Inf"})") ==
        metric(m, "customs_audit_commit_latency_seconds_count"));
  CHECK(metric(m, R"(customs_rule_loads_total{result="ok"})") == 1);
  CHECK(m.find("customs_rule_set_info{id=\"apac-identifiers+cn-pipl-outbound+") != std::string::npos);
}
