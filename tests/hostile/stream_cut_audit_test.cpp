// A stream cut because of what a provider put outside the streamed text (an
// error event, an event name, a Responses aggregate that repeats another text
// than was streamed) is recorded as the block it was: the closing record
// carries action block, the rules and the findings that cut it.
#include "enforced.hpp"

#include <boost/json.hpp>

using namespace customs::testing;
using namespace customs::testing::hostile;

namespace {

const std::string aws_key = "AKIAUJZDE8GXD6NCF10E";  // blocked in answers by the shipped secrets pack

std::string chat_chunk(const std::string& content) {
  const boost::json::object o{{"id", "c1"},
                              {"object", "chat.completion.chunk"},
                              {"choices", boost::json::array{boost::json::object{
                                              {"index", 0}, {"delta", boost::json::object{{"content", content}}},
                                              {"finish_reason", nullptr}}}}};
  return boost::json::serialize(o);
}

std::string sse(const std::string& data, const std::string& name = {}) {
  return (name.empty() ? std::string() : "event: " + name + "\n") + "data: " + data + "\n\n";
}

std::string responses_event(boost::json::object o) {
  const std::string type(o.at("type").as_string());
  return sse(boost::json::serialize(o), type);
}

std::string chunked_sse(const std::string& body) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx", body.size());
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(size) +
         "\r\n" + body + "\r\n0\r\n\r\n";
}

struct cut_case {
  const char* name;
  const char* target;
  std::string request;
  std::string stream;
  std::string rule;     // a rule the closing record must name
  std::string matched;  // a finding's text in the closing record
};

}  // namespace

TEST_CASE("stream cut audit: a stream cut outside its text is recorded as block with its rules and findings") {
  const std::string chat_request = R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})";
  const std::string responses_request = R"({"model":"m","stream":true,"input":"hi"})";
  const cut_case cases[] = {
      {"error event", "/openai-us/v1/chat/completions", chat_request,
       sse(chat_chunk("hello ")) +
           sse(boost::json::serialize(boost::json::object{
               {"error", boost::json::object{{"message", "failed on " + aws_key}, {"type", "server_error"}}}})),
       "secrets.credentials.block", aws_key},
      {"event name", "/openai-us/v1/chat/completions", chat_request,
       sse(chat_chunk("hello"), aws_key) + sse("[DONE]"), "secrets.credentials.block", aws_key},
      {"aggregate", "/openai-us/v1/responses", responses_request,
       responses_event({{"type", "response.output_text.delta"}, {"sequence_number", 1}, {"output_index", 0},
                        {"item_id", "m1"}, {"content_index", 0}, {"delta", "harmless"}}) +
           responses_event({{"type", "response.output_text.done"}, {"sequence_number", 2}, {"output_index", 0},
                            {"item_id", "m1"}, {"content_index", 0}, {"text", "key " + aws_key}}),
       "secrets.credentials.block", aws_key},
      // A finding that asks for a redaction cuts as a block on an event name
      // (a name cannot be rewritten).
      {"redaction in an event name", "/openai-us/v1/chat/completions", chat_request,
       sse(chat_chunk("hello"), "call 138 1234 5678") + sse("[DONE]"), "test.response.phone.redact",
       "138 1234 5678"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    const std::string reply = chunked_sse(c.stream);
    raw_upstream up([reply](std::size_t) { return reply; });
    temp_dir dir;
    enforce::trail_files t(dir.path());
    daemon_under_test d(enforcing_yaml(t, up.port(), {}, enforce::test_rules("responses.yaml")), "hostile-stream-cut");
    const auto r = exchange(d.port(), content_length_request(c.request, {}, c.target));
    REQUIRE(r.status == 200);
    INFO(r.response.body);
    CHECK(r.response.body.find("customs_blocked") != std::string::npos);
    CHECK(r.response.body.find(c.matched) == std::string::npos);
    const std::string flow = r.response.header("X-Customs-Flow");
    REQUIRE_FALSE(flow.empty());
    const auto recs = enforce::flow_records(t, flow);
    REQUIRE(recs.size() == 2);
    const auto& closed = recs[1].payload;
    INFO(boost::json::serialize(closed));
    CHECK(recs[1].index.action == "block");
    CHECK(closed.at("cut_reason").as_string() == "blocked");
    const auto& verdict = closed.at("verdict").as_object();
    CHECK(verdict.at("action").as_string() == "block");
    CHECK(verdict.at("response").as_string() == "block");
    bool named_rule = false;
    for (const auto& rule : verdict.at("rules").as_array()) named_rule = named_rule || rule.as_string() == c.rule;
    CHECK(named_rule);
    CHECK(boost::json::serialize(closed.at("findings")).find(c.matched) != std::string::npos);
  }
}
