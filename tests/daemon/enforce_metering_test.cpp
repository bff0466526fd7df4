// Token metering: customsd asks OpenAI chat streams for usage when the client
// did not, and takes back what that adds, so the client sees the stream it would
// have seen; usage a provider did not report is unknown (not 0) in the audit
// trail and the metrics; the metrics' model and tenant labels are bounded.
#include "enforce_harness.hpp"

#include "daemon/enforce/metering.hpp"
#include "daemon/enforce/stream_guard.hpp"
#include "tests/support/provider_wire.hpp"

using namespace customs::testing;
using namespace customs::testing::enforce;
using customs::daemon::endpoint_kind;
using customs::daemon::enforce::label_bound;
using customs::daemon::enforce::stream_guard;
using customs::daemon::enforce::stream_guard_options;
using customs::daemon::enforce::without_member;

namespace {

// The fake provider's streamed chat answer to a request, as raw SSE bytes.
std::string provider_stream(const std::string& request_body) {
  script sc;
  sc.text = "Hello there, how can I help?";
  sc.delta_bytes = 5;
  customs::testing::detail::request_view rq{"POST", "/v1/chat/completions", request_body};
  const auto reply = customs::testing::detail::plan_reply(rq, sc, 7);
  REQUIRE(reply.streamed);
  std::string raw;
  for (const auto& e : reply.events) raw += e.bytes;
  return raw;
}

// What a client receives when `raw` passes a guard (block by block, then end).
std::string guarded_output(stream_guard& g, const std::string& raw) {
  std::string out;
  customs::daemon::sse_parser p(1 << 20);
  std::string_view in(raw);
  bool stopped = false;
  auto one = [&](const customs::daemon::sse_block& b) {
    std::vector<std::string> blocks;
    const auto s = g.on_event(b, blocks);
    if (s == stream_guard::step::pass) out += b.raw;
    for (const auto& o : blocks) out += o;
    if (s == stream_guard::step::stop) stopped = true;
  };
  while (!in.empty() && !stopped) {
    const auto res = p.feed(in);
    in.remove_prefix(res.consumed);
    if (res.what == customs::daemon::sse_parser::status::event) one(p.event());
  }
  std::vector<std::string> rest;
  if (!stopped) (void)g.on_end(rest);
  for (const auto& o : rest) out += o;
  return out;
}

customs::policy::rule_set_ptr shipped_set() {
  static const customs::policy::rule_set_ptr rs = [] {
    const std::vector<fs::path> paths = {shipped_rules()};
    auto r = customs::policy::load_rule_set(paths);
    REQUIRE(r.ok());
    return r.rules;
  }();
  return rs;
}

customs::policy::flow_context response_ctx() {
  customs::policy::flow_context c;
  c.dir = customs::policy::direction::response;
  c.src = "CN";
  c.dst = "US";
  return c;
}

std::string chat_stream_body(bool include_usage) {
  json::object o{{"model", "gpt-4o-mini"},
                 {"stream", true},
                 {"messages", json::array{json::object{{"role", "user"}, {"content", "hi"}}}}};
  if (include_usage) o["stream_options"] = json::object{{"include_usage", true}};
  return json::serialize(o);
}

}  // namespace

TEST_CASE("metering: without_member removes one top-level member and keeps every other byte") {
  CHECK(without_member(R"({"a":1,"usage":null,"b":2})", "usage") == R"({"a":1,"b":2})");
  CHECK(without_member(R"({"a":1,"usage":null})", "usage") == R"({"a":1})");
  CHECK(without_member(R"({"usage":null,"a":1})", "usage") == R"({"a":1})");
  CHECK(without_member(R"({"usage":{"x":[1,{"y":"}"}]}})", "usage") == R"({})");
  CHECK(without_member(R"( { "a" : "x,\"usage\":1" , "usage" : null } )", "usage") ==
        R"( { "a" : "x,\"usage\":1" } )");
  // A nested member of that name is not the top-level one.
  CHECK_FALSE(without_member(R"({"a":{"usage":null}})", "usage").has_value());
  CHECK_FALSE(without_member(R"({})", "usage").has_value());
  CHECK_FALSE(without_member(R"([1,2])", "usage").has_value());
}

TEST_CASE("metering: an OpenAI chat stream request is made to ask for usage, other bytes kept") {
  auto body = chat_stream_body(false);
  auto ex = customs::daemon::extract_request(customs::daemon::dialect::openai, "/v1/chat/completions", body);
  REQUIRE(ex.has_value());
  const std::string before = body;
  REQUIRE(customs::daemon::enforce::request_stream_usage(*ex, body));
  CHECK(body == "{\"stream_options\":{\"include_usage\":true}," + before.substr(1));
  auto again = customs::daemon::extract_request(customs::daemon::dialect::openai, "/v1/chat/completions", body);
  REQUIRE(again.has_value());
  CHECK(again->include_usage);

  // stream_options present without include_usage: set inside it.
  std::string other = R"({"model":"m","stream":true,"stream_options":{"include_obfuscation":false},"messages":[]})";
  auto ex2 = customs::daemon::extract_request(customs::daemon::dialect::openai, "/v1/chat/completions", other);
  REQUIRE(ex2.has_value());
  REQUIRE(customs::daemon::enforce::request_stream_usage(*ex2, other));
  const auto doc = json::parse(other).as_object();
  CHECK(doc.at("stream_options").at("include_usage").as_bool());
  CHECK_FALSE(doc.at("stream_options").at("include_obfuscation").as_bool());
}

TEST_CASE("metering: with strip_usage the client receives exactly the stream it asked for, and usage is read") {
  std::string asked = provider_stream(chat_stream_body(false));
  const std::string with_usage = provider_stream(chat_stream_body(true));
  // The provider stamps "created" with the time: the same stamp for both.
  const auto stamp = [](const std::string& s) {
    const auto at = s.find("\"created\":");
    return s.substr(at, s.find(',', at) - at);
  };
  const std::string from = stamp(asked), to = stamp(with_usage);
  std::string same;
  std::size_t pos = 0;
  for (auto at = asked.find(from); at != std::string::npos; at = asked.find(from, pos)) {
    same += asked.substr(pos, at - pos) + to;
    pos = at + from.size();
  }
  asked = same + asked.substr(pos);
  REQUIRE(with_usage.find("\"usage\":null") != std::string::npos);

  // What the client would have received: the stream it asked for, guarded.
  auto plain = stream_guard::create(customs::daemon::dialect::openai, endpoint_kind::openai_chat, shipped_set(),
                                    response_ctx(), stream_guard_options{});
  REQUIRE(plain.has_value());
  const std::string expected = guarded_output(*plain, asked);
  REQUIRE(expected.find("usage") == std::string::npos);

  stream_guard_options o;
  o.strip_usage = true;
  auto g = stream_guard::create(customs::daemon::dialect::openai, endpoint_kind::openai_chat, shipped_set(),
                                response_ctx(), o);
  REQUIRE(g.has_value());
  CHECK(guarded_output(*g, with_usage) == expected);
  REQUIRE(g->usage().input_tokens.has_value());
  REQUIRE(g->usage().output_tokens.has_value());
  CHECK(*g->usage().output_tokens > 0);
}

TEST_CASE("metering: past the findings bound (unscannable tag) usage is still read and still taken back") {
  // The stream goes on uninspected past limits.findings_per_flow; the usage
  // customsd asked for must neither reach the client nor go unread.
  script sc;
  sc.text = "a 138 1234 5670, b 138 1234 5671, c 138 1234 5672, d 138 1234 5673, e tail and more words to end";
  sc.delta_bytes = 6;
  const std::string body = chat_stream_body(true);
  customs::testing::detail::request_view rq{"POST", "/v1/chat/completions", body};
  const auto reply = customs::testing::detail::plan_reply(rq, sc, 7);
  REQUIRE(reply.streamed);
  std::string with_usage;
  for (const auto& e : reply.events) with_usage += e.bytes;
  REQUIRE(with_usage.find("\"usage\":{") != std::string::npos);

  stream_guard_options o;
  o.strip_usage = true;
  o.max_findings = 1;
  o.unscannable = customs::daemon::unscannable_mode::tag;
  auto g = stream_guard::create(customs::daemon::dialect::openai, endpoint_kind::openai_chat, shipped_set(),
                                response_ctx(), o);
  REQUIRE(g.has_value());
  const auto out = guarded_output(*g, with_usage);
  INFO(out);
  REQUIRE(g->findings_limit());
  CHECK(g->unscanned_events() > 0);
  CHECK(out.find("usage") == std::string::npos);
  CHECK(out.find("data: [DONE]") != std::string::npos);
  REQUIRE(g->usage().input_tokens.has_value());
  REQUIRE(g->usage().output_tokens.has_value());
  CHECK(*g->usage().output_tokens > 0);
}

TEST_CASE("metering: without strip_usage a client that asked for usage gets the usage chunk") {
  const std::string with_usage = provider_stream(chat_stream_body(true));
  auto g = stream_guard::create(customs::daemon::dialect::openai, endpoint_kind::openai_chat, shipped_set(),
                                response_ctx(), stream_guard_options{});
  REQUIRE(g.has_value());
  const auto out = guarded_output(*g, with_usage);
  CHECK(out.find("\"usage\":null") != std::string::npos);
  CHECK(out.find("\"choices\":[],\"usage\":{\"prompt_tokens\"") != std::string::npos);
  CHECK(g->usage().output_tokens.has_value());
}

TEST_CASE("metering: label values past the limit fold into other, and odd values always do") {
  label_bound b(2);
  CHECK(b.admit("gpt-4o") == "gpt-4o");
  CHECK(b.admit("claude-3-5-sonnet@2024") == "claude-3-5-sonnet@2024");
  CHECK(b.admit("gemini-2.0-flash") == "other");
  CHECK(b.admit("gpt-4o") == "gpt-4o");  // admitted values stay
  CHECK(b.admit("a\"b") == "other");
  CHECK(b.admit(std::string(65, 'm')) == "other");
  CHECK(b.admit("") == "");
  CHECK(b.size() == 2);
}

TEST_CASE("metering end to end: an OpenAI chat stream without include_usage is metered and the client sees no usage") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  enforced_server s(enforcing_config(t, provider.port()));
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body("hello", true));
  REQUIRE(r.status == 200);
  // The provider was asked for usage; the client sees neither the usage chunk
  // nor "usage": null.
  REQUIRE(provider.request_count() == 1);
  const auto sent = json::parse(provider.requests()[0].body).as_object();
  CHECK(sent.at("stream_options").at("include_usage").as_bool());
  CHECK(r.body.find("usage") == std::string::npos);
  CHECK(r.body.find("data: [DONE]") != std::string::npos);

  const auto recs = flow_records(t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].index.tokens_in == customs::audit::tokens_unknown);  // opened: not answered yet
  CHECK(recs[1].index.tokens_in > 0);
  CHECK(recs[1].index.tokens_in != customs::audit::tokens_unknown);
  CHECK(recs[1].index.tokens_out > 0);
  CHECK(recs[1].payload.at("usage").as_object().contains("output_tokens"));
  CHECK(recs[1].payload.at("model").as_string() == "gpt-test");
  const auto m = scrape(s.admin_port());
  CHECK(metric(m, R"(customs_tokens_total{route="/openai-us/",tenant="demo",src="CN",dst="US",model="gpt-test",direction="out"})") ==
        recs[1].index.tokens_out);
}

TEST_CASE("metering end to end: a client that asked for usage still gets its usage chunk") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  enforced_server s(enforcing_config(t, provider.port()));
  auto body = json::parse(chat_body("hello", true)).as_object();
  body["stream_options"] = json::object{{"include_usage", true}};
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", json::serialize(body));
  REQUIRE(r.status == 200);
  CHECK(r.body.find("\"usage\":{") != std::string::npos);
  CHECK(r.body.find("\"usage\":null") != std::string::npos);
}

TEST_CASE("metering end to end: metering.stream_usage off leaves the request alone and records unknown usage") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = enforcing_config(t, provider.port());
  cfg.metering.inject_stream_usage = false;
  enforced_server s(std::move(cfg));
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body("hello", true));
  REQUIRE(r.status == 200);
  const auto sent = json::parse(provider.requests()[0].body).as_object();
  CHECK_FALSE(sent.contains("stream_options"));
  const auto recs = flow_records(t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  CHECK(recs[1].index.tokens_in == customs::audit::tokens_unknown);
  CHECK(recs[1].index.tokens_out == customs::audit::tokens_unknown);
  CHECK(recs[1].payload.at("usage").as_object().empty());
  CHECK(await_metric(s.admin_port(), R"(customs_usage_unknown_flows_total{route="/openai-us/",model="gpt-test"})", 1) == 1);
}
