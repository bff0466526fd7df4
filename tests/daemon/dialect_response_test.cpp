#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "daemon/dialect/response.hpp"
#include "tests/daemon/dialect_test_support.hpp"

using namespace customs::daemon;
using namespace customs::daemon::test;

namespace {

// The answer's texts; the names of called tools (tool_name slots, after the
// texts of their call) are checked on their own.
std::vector<std::string> texts(const response_extraction& ex) {
  std::vector<std::string> out;
  for (const auto& s : ex.slots) {
    if (s.role != slot_role::tool_name) out.emplace_back(s.text);
  }
  return out;
}

void check_rewrite(std::string_view body, response_extraction& ex, const std::vector<text_replacement>& changes) {
  auto expected = parse(body);
  for (const auto& c : changes) expected.at_pointer(ex.slots.at(c.slot).where) = boost::json::string(c.text);
  auto out = rewrite_response(ex, changes);
  REQUIRE_OK(out);
  CHECK(parse(*out) == expected);
}

}  // namespace

TEST_CASE("openai chat response: content, tool call arguments, usage", "[dialect][response]") {
  constexpr std::string_view body = R"({
  "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
  "object": "chat.completion",
  "created": 1741569952,
  "model": "gpt-4.1-2025-04-14",
  "choices": [
    {"index": 0,
     "message": {"role": "assistant", "content": "Your number is 138 0013 8000.", "refusal": null,
                 "tool_calls": [{"id": "call_1", "type": "function",
                                 "function": {"name": "send_sms", "arguments": "{\"to\":\"13800138000\"}"}}],
                 "annotations": []},
     "logprobs": null, "finish_reason": "tool_calls"}
  ],
  "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
  "service_tier": "default"
})";
  auto ex = extract_response(dialect::openai, endpoint_kind::openai_chat, body);
  REQUIRE_OK(ex);
  CHECK_FALSE(ex->provider_error);
  CHECK(texts(*ex) == std::vector<std::string>{"Your number is 138 0013 8000.", R"({"to":"13800138000"})"});
  CHECK(ex->slots[0].where == "/choices/0/message/content");
  CHECK(ex->slots[0].channel == "c0");
  CHECK(ex->slots[1].channel == "c0.t0");
  CHECK(ex->slots[1].role == slot_role::tool_arguments);
  CHECK(ex->usage.input_tokens == 19u);
  CHECK(ex->usage.output_tokens == 10u);
  check_rewrite(body, *ex, {{0, "Your number is [PHONE]."}, {1, R"({"to":"[PHONE]"})"}});
}

TEST_CASE("openai responses response: output items and usage", "[dialect][response]") {
  constexpr std::string_view body = R"({"id":"resp_1","object":"response","created_at":1741476542,"status":"completed",
    "model":"gpt-4.1-2025-04-14","output":[
      {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"Considering the phone"}],"encrypted_content":null},
      {"type":"message","id":"msg_1","status":"completed","role":"assistant",
       "content":[{"type":"output_text","text":"Saved 13800138000.","annotations":[]}]},
      {"type":"function_call","id":"fc_1","call_id":"call_1","name":"save","arguments":"{\"p\":\"13800138000\"}","status":"completed"},
      {"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"weather"}}],
    "usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,
             "output_tokens_details":{"reasoning_tokens":0},"total_tokens":123}})";
  auto ex = extract_response(dialect::openai, endpoint_kind::openai_responses, body);
  REQUIRE_OK(ex);
  CHECK(texts(*ex) == std::vector<std::string>{"Considering the phone", "Saved 13800138000.", R"({"p":"13800138000"})"});
  CHECK(ex->slots[0].channel == "o0.s0");
  CHECK(ex->slots[1].channel == "o1.c0");
  CHECK(ex->slots[2].channel == "o2");
  CHECK(ex->non_text[media_kind::opaque] == 1);  // the web search call
  CHECK(ex->usage.input_tokens == 36u);
  CHECK(ex->usage.output_tokens == 87u);
  check_rewrite(body, *ex, {{1, "Saved [PHONE]."}});
}

TEST_CASE("anthropic response: text, thinking, tool_use leaves and usage", "[dialect][response]") {
  constexpr std::string_view body = R"({"id":"msg_01Aq9w938a90dw8q","type":"message","role":"assistant",
    "model":"claude-sonnet-4-20250514","content":[
      {"type":"thinking","thinking":"Need to send it.","signature":"EqQBCg"},
      {"type":"text","text":"Sending to 13800138000."},
      {"type":"tool_use","id":"toolu_1","name":"send_sms","input":{"to":"13800138000","retries":2}},
      {"type":"redacted_thinking","data":"EmwKAhgB"}],
    "stop_reason":"tool_use","stop_sequence":null,
    "usage":{"input_tokens":2095,"cache_creation_input_tokens":0,"cache_read_input_tokens":5,"output_tokens":503}})";
  auto ex = extract_response(dialect::anthropic, endpoint_kind::anthropic_messages, body);
  REQUIRE_OK(ex);
  CHECK(texts(*ex) == std::vector<std::string>{"Need to send it.", "Sending to 13800138000.", "13800138000"});
  CHECK(ex->slots[2].where == "/content/2/input/to");
  CHECK(ex->slots[2].role == slot_role::structured_leaf);
  CHECK(ex->non_text[media_kind::opaque] == 1);
  CHECK(ex->usage.input_tokens == 2100u);
  CHECK(ex->usage.output_tokens == 503u);
  check_rewrite(body, *ex, {{1, "Sending to [PHONE]."}, {2, "[PHONE]"}});
}

TEST_CASE("gemini response: candidates parts, single and as the alt-less stream array", "[dialect][response]") {
  constexpr std::string_view one = R"({"candidates": [{"content": {"parts": [{"text": "Call 13800138000"},
      {"functionCall": {"name": "dial", "args": {"n": "13800138000"}}}],"role": "model"},"finishReason": "STOP","index": 0}],
    "usageMetadata": {"promptTokenCount": 5,"candidatesTokenCount": 9,"totalTokenCount": 14},"modelVersion": "gemini-2.0-flash"})";
  auto ex = extract_response(dialect::gemini, endpoint_kind::gemini_generate, one);
  REQUIRE_OK(ex);
  CHECK(texts(*ex) == std::vector<std::string>{"Call 13800138000", "13800138000"});
  CHECK(ex->slots[1].where == "/candidates/0/content/parts/1/functionCall/args/n");
  CHECK(ex->usage.input_tokens == 5u);
  CHECK(ex->usage.output_tokens == 9u);
  check_rewrite(one, *ex, {{0, "Call [PHONE]"}});

  constexpr std::string_view array = R"([{"candidates": [{"content": {"parts": [{"text": "Call 138"}],"role": "model"},"index": 0}],
      "usageMetadata": {"promptTokenCount": 5,"totalTokenCount": 5}},
    {"candidates": [{"content": {"parts": [{"text": "00138000"}],"role": "model"},"finishReason": "STOP","index": 0}],
      "usageMetadata": {"promptTokenCount": 5,"candidatesTokenCount": 4,"totalTokenCount": 9}}])";
  auto arr = extract_response(dialect::gemini, endpoint_kind::gemini_stream_generate, array);
  REQUIRE_OK(arr);
  CHECK(texts(*arr) == std::vector<std::string>{"Call 138", "00138000"});
  CHECK(arr->slots[1].where == "/1/candidates/0/content/parts/0/text");
  CHECK(arr->usage.output_tokens == 4u);
  auto not_array = extract_response(dialect::gemini, endpoint_kind::gemini_generate, array);
  REQUIRE_FALSE(not_array.has_value());
  CHECK(not_array.error().code == codec_errc::not_an_object);
}

TEST_CASE("provider error bodies, count and embedding responses", "[dialect][response]") {
  auto e1 = extract_response(dialect::openai, endpoint_kind::openai_chat,
                             R"({"error":{"message":"Rate limit","type":"rate_limit_error","param":null,"code":null}})");
  REQUIRE_OK(e1);
  CHECK(e1->provider_error);
  // Every string of the error is a slot (an error may quote what it refuses).
  CHECK(texts(*e1) == std::vector<std::string>{"Rate limit", "rate_limit_error"});
  auto e2 = extract_response(dialect::anthropic, endpoint_kind::anthropic_messages,
                             R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  REQUIRE_OK(e2);
  CHECK(e2->provider_error);
  auto c1 = extract_response(dialect::anthropic, endpoint_kind::anthropic_count_tokens, R"({"input_tokens":2095})");
  REQUIRE_OK(c1);
  CHECK(c1->usage.input_tokens == 2095u);
  auto c2 = extract_response(dialect::gemini, endpoint_kind::gemini_count_tokens, R"({"totalTokens": 31})");
  REQUIRE_OK(c2);
  CHECK(c2->usage.input_tokens == 31u);
  auto emb = extract_response(dialect::openai, endpoint_kind::openai_embeddings,
                              R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023,-0.0093]}],
                                  "model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}})");
  REQUIRE_OK(emb);
  CHECK(emb->slots.empty());
  CHECK(emb->usage.input_tokens == 8u);
  auto bad = extract_response(dialect::openai, endpoint_kind::openai_chat, "{\"choices\":[");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == codec_errc::malformed_json);
}
