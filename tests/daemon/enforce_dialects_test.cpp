// Enforcement end to end over loopback, for each dialect (OpenAI chat, Anthropic
// messages, Gemini, and the OpenAI Responses API): blocked requests, passing
// requests, streamed redaction across deltas, streams cut on a secret, tags,
// unscannable bodies, request and non-streamed response rewriting, non-text
// parts; each checked against the fake provider and the audit trail.
#include "enforce_harness.hpp"

using namespace customs::testing;
using namespace customs::testing::enforce;
using customs::daemon::audit_content;

namespace {

const std::string id_request_prompt = "请帮我核对身份证号：11010519491231002X，谢谢";
const std::string secret_key = "AKIAUJZDE8GXD6NCF10E";

json::object parse_object(const std::string& s) {
  json::error_code ec;
  auto v = json::parse(s, ec);
  INFO("JSON: " << s);
  REQUIRE_FALSE(ec);
  REQUIRE(v.is_object());
  return v.as_object();
}

// The body is the dialect's error shape for a 451 with Customs' code.
void check_error_shape(dialect api, const std::string& body, const std::string& code) {
  const auto o = parse_object(body);
  INFO("body: " << body);
  switch (api) {
    case dialect::openai:
      CHECK(o.at("error").at("code").as_string() == code);
      CHECK(o.at("error").at("type").as_string() == "permission_error");
      break;
    case dialect::anthropic:
      CHECK(o.at("type").as_string() == "error");
      CHECK(o.at("error").at("type").as_string() == "permission_error");
      CHECK(o.at("error").at("customs_code").as_string() == code);
      break;
    case dialect::gemini:
      CHECK(o.at("error").at("code").as_int64() == 451);
      CHECK(o.at("error").at("status").as_string() == "PERMISSION_DENIED");
      CHECK(o.at("error").at("customs_code").as_string() == code);
      break;
  }
}

std::vector<std::string> strings(const json::value& v) {
  std::vector<std::string> out;
  for (const auto& s : v.as_array()) out.emplace_back(s.as_string());
  return out;
}

}  // namespace

TEST_CASE("enforce: a PRC resident ID from CN to a US route is blocked with 451 in every dialect, nothing reaches the provider, the trail verifies") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  {
    enforced_server s(enforcing_config(t, provider.port()));
    for (const auto& api : all_apis()) {
      for (const bool stream : {false, true}) {
        {
      INFO(api.name << (stream ? " streamed" : ""));
          const auto r = post(s.port(), api.target("us", stream), api.body(id_request_prompt, stream));
          INFO(r.body);
          CHECK(r.status == 451);
          CHECK(r.header("X-Customs-Verdict") == "block");
          CHECK(r.header("X-Customs-Rule") == "cn.pipl.sensitive.block");
          CHECK(r.header("Content-Type") == "application/json");
          check_error_shape(api.api, r.body, "customs_blocked");
          CHECK(r.body.find("11010519491231002X") == std::string::npos);
          const auto recs = flow_records(t, r.header("X-Customs-Flow"));
          REQUIRE(recs.size() == 2);
          CHECK(recs[0].kind == customs::audit::record_kind::flow_opened);
          CHECK(recs[0].index.action == "block");
          CHECK(recs[0].index.src == "CN");
          CHECK(recs[0].index.dst == "US");
          CHECK(recs[0].index.rules == std::vector<std::string>{"cn.pipl.sensitive.block"});
          CHECK(recs[1].kind == customs::audit::record_kind::flow_closed);
          CHECK(recs[1].index.action == "block");
          CHECK(recs[1].payload.at("outcome").as_string() == "answered");
          CHECK(recs[1].payload.at("status").as_int64() == 451);
          const auto& findings = recs[0].payload.at("findings").as_array();
          REQUIRE(findings.size() == 1);
          CHECK(findings[0].at("detector").as_string() == "cn.resident_id");
          CHECK(findings[0].at("direction").as_string() == "request");
          CHECK(findings[0].at("text").as_string() == "11010519491231002X");
        }
      }
    }
    CHECK(provider.request_count() == 0);
  }
  const auto v = verify_trail(t);
  INFO((v.failures.empty() ? std::string() : v.failures[0].detail));
  CHECK(v.ok());
  CHECK(v.flows_records == 16);
  CHECK(v.macs_checked);
  CHECK(v.signer_trusted);
}

TEST_CASE("enforce: the same prompt to a CN route passes unchanged in every dialect") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  enforced_server s(enforcing_config(t, provider.port()));
  std::size_t sent = 0;
  for (const auto& api : all_apis()) {
    {
      INFO(api.name);
      const auto r = post(s.port(), api.target("cn", false), api.body(id_request_prompt, false));
      INFO(r.body);
      CHECK(r.status == 200);
      CHECK(r.header("X-Customs-Verdict") == "allow");
      ++sent;
      REQUIRE(provider.request_count() == sent);
      const auto req = provider.requests().back();
      CHECK(req.body.find("11010519491231002X") != std::string::npos);
      const auto recs = flow_records(t, r.header("X-Customs-Flow"));
      REQUIRE(recs.size() == 2);
      CHECK(recs[0].index.action == "allow");
      CHECK(recs[0].index.dst == "CN");
      CHECK(recs[1].index.action == "allow");
      // The finding is recorded although no rule acted on it.
      CHECK(recs[0].payload.at("findings").as_array().size() == 1);
      CHECK(recs[1].index.tokens_in == 11);
    }
  }
}

TEST_CASE("enforce: a phone number split across three deltas arrives redacted in every dialect's stream") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  script sc;
  sc.deltas = {"Call 138 1", "234 56", "78 now."};
  provider.set_script(sc);
  enforced_server s(enforcing_config(t, provider.port()));
  for (const auto& api : all_apis()) {
    {
      INFO(api.name);
      const auto r = post(s.port(), api.target("us", true), api.body("What is the number?", true));
      INFO(r.body);
      REQUIRE(r.status == 200);
      const auto view = reassemble(api, r.body);
      CHECK(view.text == "Call [REDACTED:pi.phone] now.");
      CHECK(view.ended);
      CHECK(view.error.empty());
      // Not in any event: not in a delta, not in an aggregate (Responses API).
      CHECK(r.body.find("5678") == std::string::npos);
      CHECK(r.body.find("234 56") == std::string::npos);
      const auto recs = flow_records(t, r.header("X-Customs-Flow"));
      REQUIRE(recs.size() == 2);
      CHECK(recs[1].index.action == "redact");
      CHECK(recs[1].index.rules == std::vector<std::string>{"test.response.phone.redact"});
      CHECK(recs[1].payload.at("cut").as_bool() == false);
      CHECK(strings(recs[1].payload.at("response_texts")) == std::vector<std::string>{"Call 138 1234 5678 now."});
      const auto& f = recs[1].payload.at("findings").as_array();
      REQUIRE(f.size() == 1);
      CHECK(f[0].at("direction").as_string() == "response");
      CHECK(f[0].at("text").as_string() == "138 1234 5678");
      // OpenAI chat streams report usage only when the client asks for it.
      if (api.name != "openai chat") CHECK(recs[1].index.tokens_out > 0);
    }
  }
}

TEST_CASE("enforce: a stream that produces a secret is cut with the dialect's error event, without its end marker") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  script sc;
  sc.text = "Sure, the key is " + secret_key + " and the rest of the answer follows.";
  sc.delta_bytes = 5;
  provider.set_script(sc);
  enforced_server s(enforcing_config(t, provider.port()));
  for (const auto& api : all_apis()) {
    {
      INFO(api.name);
      const auto r = post(s.port(), api.target("cn", true), api.body("Give me a key", true));
      INFO(r.body);
      REQUIRE(r.status == 200);
      const auto view = reassemble(api, r.body);
      CHECK_FALSE(view.ended);
      REQUIRE_FALSE(view.error.empty());
      CHECK(view.error.find("customs_blocked") != std::string::npos);
      CHECK(view.error.find("secrets.credentials.block") != std::string::npos);
      CHECK(view.text.find("AKIA") == std::string::npos);
      CHECK(r.body.find("AKIAUJZ") == std::string::npos);
      CHECK(view.text.starts_with("Sure, the key is"));
      if (api.api == dialect::anthropic) CHECK(r.body.find("event: error") != std::string::npos);
      const auto recs = flow_records(t, r.header("X-Customs-Flow"));
      REQUIRE(recs.size() == 2);
      CHECK(recs[0].index.action == "allow");
      CHECK(recs[1].index.action == "block");
      CHECK(recs[1].payload.at("cut").as_bool());
      CHECK(recs[1].payload.at("cut_reason").as_string() == "blocked");
      CHECK(recs[1].payload.at("outcome").as_string() == "cut");
    }
  }
}

TEST_CASE("enforce: a tag rule adds X-Customs-Tags upstream and on the response, in every dialect") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  enforced_server s(enforcing_config(t, provider.port()));
  for (const auto& api : all_apis()) {
    {
      INFO(api.name);
      const auto r = post(s.port(), api.target("us", true), api.body("This memo is STRICTLY CONFIDENTIAL.", true));
      INFO(r.body);
      CHECK(r.status == 200);
      CHECK(r.header("X-Customs-Verdict") == "tag");
      CHECK(r.header("X-Customs-Tags") == "classification-marker");
      CHECK(r.header("X-Customs-Rule") == "secrets.marker.tag");
      const auto req = provider.requests().back();
      std::string upstream_tags;
      for (const auto& [k, v] : req.headers) {
        if (k == "X-Customs-Tags" || k == "x-customs-tags") upstream_tags = v;
      }
      CHECK(upstream_tags == "classification-marker");
      const auto recs = flow_records(t, r.header("X-Customs-Flow"));
      REQUIRE(recs.size() == 2);
      CHECK(recs[1].index.action == "tag");
    }
  }
}

TEST_CASE("enforce: an unparsable body is blocked as unscannable in every dialect") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  enforced_server s(enforcing_config(t, provider.port()));
  for (const auto& api : all_apis()) {
    {
      INFO(api.name);
      const auto r = post(s.port(), api.target("cn", false), R"({"messages": [{"role": "user", "content": "hi")");
      INFO(r.body);
      CHECK(r.status == 451);
      CHECK(r.header("X-Customs-Verdict") == "unscannable");
      check_error_shape(api.api, r.body, "customs_unscannable");
      const auto recs = flow_records(t, r.header("X-Customs-Flow"));
      REQUIRE(recs.size() == 2);
      CHECK(recs[0].index.action == "unscannable");
      CHECK(recs[1].index.action == "unscannable");
      CHECK(recs[0].payload.at("detail").as_string().find("JSON") != std::string::npos);
    }
  }
  // An endpoint no dialect knows is unscannable too.
  const auto r = post(s.port(), "/openai-us/v1/assistants", R"({"name":"x"})");
  CHECK(r.status == 451);
  CHECK(r.header("X-Customs-Verdict") == "unscannable");
  CHECK(provider.request_count() == 0);
}

TEST_CASE("enforce: unscannable: tag forwards an unparsable body with the tag") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = enforcing_config(t, provider.port());
  cfg.unscannable = customs::daemon::unscannable_mode::tag;
  enforced_server s(std::move(cfg));
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", "{not json");
  CHECK(r.status == 400);  // the provider's answer to a malformed body
  CHECK(r.header("X-Customs-Verdict") == "unscannable");
  CHECK(r.header("X-Customs-Tags") == "unscannable");
  REQUIRE(provider.request_count() == 1);
  const auto recs = flow_records(t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  CHECK(recs[1].index.action == "unscannable");
}

TEST_CASE("enforce: a phone number in a prompt from CN to a US route is redacted in the forwarded body") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  enforced_server s(enforcing_config(t, provider.port()));
  for (const auto& api : all_apis()) {
    {
      INFO(api.name);
      const auto r = post(s.port(), api.target("us", false), api.body("客户电话 138 1234 5678，明天联系", false));
      INFO(r.body);
      CHECK(r.status == 200);
      CHECK(r.header("X-Customs-Verdict") == "redact");
      CHECK(r.header("X-Customs-Tags") == "pipl.personal");
      const auto req = provider.requests().back();
      CHECK(req.body.find("5678") == std::string::npos);
      CHECK(req.body.find("客户电话 [REDACTED:pi.phone]，明天联系") != std::string::npos);
      CHECK_NOTHROW(parse_object(req.body));
      const auto recs = flow_records(t, r.header("X-Customs-Flow"));
      REQUIRE(recs.size() == 2);
      CHECK(recs[0].index.action == "redact");
      // The trail keeps what the client sent, for replay (the prompt is the
      // dialect's last conversation text, before the other fields, keys,
      // target and headers).
      const auto sent = strings(recs[0].payload.at("request_texts"));
      CHECK(std::find(sent.begin(), sent.end(), "客户电话 138 1234 5678，明天联系") != sent.end());
    }
  }
}

TEST_CASE("enforce: a non-streamed answer is redacted, or replaced by a 451 body when it carries a secret") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  enforced_server s(enforcing_config(t, provider.port()));
  for (const auto& api : all_apis()) {
    {
      INFO(api.name);
      script sc;
      sc.text = "Call 138 1234 5678 now.";
      provider.set_script(sc);
      auto r = post(s.port(), api.target("us", false), api.body("number?", false));
      INFO(r.body);
      CHECK(r.status == 200);
      CHECK(r.header("X-Customs-Response-Verdict") == "redact");
      CHECK(r.body.find("Call [REDACTED:pi.phone] now.") != std::string::npos);
      CHECK(r.body.find("5678") == std::string::npos);
      CHECK(r.header("Content-Length") == std::to_string(r.body.size()));
      CHECK_NOTHROW(parse_object(r.body));
      auto recs = flow_records(t, r.header("X-Customs-Flow"));
      REQUIRE(recs.size() == 2);
      CHECK(recs[1].index.action == "redact");

      sc.text = "The key is " + secret_key;
      provider.set_script(sc);
      r = post(s.port(), api.target("cn", false), api.body("key?", false));
      CHECK(r.status == 451);
      CHECK(r.header("X-Customs-Response-Verdict") == "block");
      check_error_shape(api.api, r.body, "customs_blocked");
      CHECK(r.body.find("AKIA") == std::string::npos);
      recs = flow_records(t, r.header("X-Customs-Flow"));
      REQUIRE(recs.size() == 2);
      CHECK(recs[1].index.action == "block");
    }
  }
}

TEST_CASE("enforce: tool-call argument deltas are scanned (OpenAI chat and Anthropic)") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  script sc;
  sc.text = R"({"query": "use )" + secret_key + R"( here"})";
  sc.delta_bytes = 4;
  provider.set_script(sc);
  enforced_server s(enforcing_config(t, provider.port()));
  const json::array tools_openai{json::object{
      {"type", "function"},
      {"function", json::object{{"name", "lookup"}, {"parameters", json::object{{"type", "object"}}}}}}};
  const json::array tools_anthropic{json::object{{"name", "lookup"}, {"input_schema", json::object{{"type", "object"}}}}};
  for (const auto& api : all_apis()) {
    if (api.name != "openai chat" && api.name != "anthropic messages") continue;
    {
      INFO(api.name);
      auto body = parse_object(api.body("look it up", true));
      body["tools"] = api.api == dialect::openai ? tools_openai : tools_anthropic;
      const auto r = post(s.port(), api.target("cn", true), json::serialize(body));
      INFO(r.body);
      REQUIRE(r.status == 200);
      CHECK(r.body.find("AKIAUJZ") == std::string::npos);
      const auto view = reassemble(api, r.body);
      CHECK_FALSE(view.ended);
      CHECK(view.error.find("customs_blocked") != std::string::npos);
    }
  }
}

TEST_CASE("enforce: non-text parts are visible to rules") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = enforcing_config(t, provider.port());
  cfg.rules.push_back(test_rules("flow-rules.yaml"));
  enforced_server s(std::move(cfg));
  const json::object image_part{{"type", "image_url"}, {"image_url", json::object{{"url", "data:image/png;base64,iVBORw0KGgo="}}}};
  const json::object text_part{{"type", "text"}, {"text", "what is this?"}};
  json::object body{{"model", "m"},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", json::array{text_part, image_part}}}}}};
  auto r = post(s.port(), "/openai-us/v1/chat/completions", json::serialize(body));
  CHECK(r.status == 451);
  CHECK(r.header("X-Customs-Rule") == "test.no-images");
  auto recs = flow_records(t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].payload.at("non_text").at("image").as_int64() == 1);
  // The same text without the image passes.
  body["messages"].as_array()[0].as_object()["content"] = json::array{text_part};
  r = post(s.port(), "/openai-us/v1/chat/completions", json::serialize(body));
  CHECK(r.status == 200);
  CHECK(provider.request_count() == 1);
}
