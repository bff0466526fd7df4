// The fake provider's wire formats: for each API and both modes, what the
// official SDKs parse (field and event names, the end marker exactly once at the
// end, usage), deltas, chunk framing, keep-alive, TLS, and the program.

#include "tests/support/test_certs.hpp"
#include "tests/support/test_helpers.hpp"

#include <openssl/ssl.h>

#include <boost/asio/ssl/error.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>

extern char** environ;

namespace customs::testing::test {
namespace {

const std::string utf8_text = "Grüße aus Zürich, 你好世界, emoji 🚀 done.";

bool valid_utf8_boundaries(const std::string& piece) {
  if (piece.empty()) return false;
  const auto lead = static_cast<unsigned char>(piece.front());
  if ((lead & 0xC0) == 0x80) return false;  // starts inside a character
  // Ends at a character boundary: walk the characters.
  std::size_t i = 0;
  while (i < piece.size()) {
    const auto c = static_cast<unsigned char>(piece[i]);
    const std::size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
    i += len;
  }
  return i == piece.size();
}

}  // namespace

TEST_CASE("cut_utf8 cuts at most max bytes, never inside a character, and loses nothing") {
  for (std::size_t max : {1u, 2u, 3u, 5u, 8u, 1000u}) {
    const auto pieces = cut_utf8(utf8_text, max);
    std::string joined;
    for (const auto& p : pieces) {
      INFO("max " << max << " piece '" << p << "'");
      CHECK(valid_utf8_boundaries(p));
      // Longer than max only when the piece is one character.
      if (p.size() > max) CHECK(cut_utf8(p, 4).size() == 1);
      joined += p;
    }
    CHECK(joined == utf8_text);
  }
  CHECK(cut_utf8("", 8).empty());
  CHECK(cut_utf8("abc", 0) == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("OpenAI chat non-streamed is a chat.completion with the text and usage") {
  script s;
  s.text = utf8_text;
  s.prompt_tokens = 7;
  connected c(s);
  const auto r = c.client.post("/v1/chat/completions", R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]})");
  REQUIRE(r.complete);
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type") == "application/json");
  CHECK_FALSE(r.chunked);
  const auto v = parse_json(r.body);
  CHECK(str(v.at("object")) == "chat.completion");
  CHECK(str(v.at("model")) == "gpt-4o");
  CHECK(str(v.at("id")).starts_with("chatcmpl-"));
  const auto& choice = v.at("choices").at(0);
  CHECK(str(choice.at("message").at("role")) == "assistant");
  CHECK(str(choice.at("message").at("content")) == utf8_text);
  CHECK(str(choice.at("finish_reason")) == "stop");
  const auto deltas = cut_utf8(utf8_text, s.delta_bytes).size();
  CHECK(v.at("usage").at("prompt_tokens").to_number<std::uint64_t>() == 7);
  CHECK(v.at("usage").at("completion_tokens").to_number<std::uint64_t>() == deltas);
  CHECK(v.at("usage").at("total_tokens").to_number<std::uint64_t>() == 7 + deltas);
}

TEST_CASE("OpenAI chat streamed: role first, content deltas, finish_reason, [DONE] once at the end") {
  script s;
  s.text = utf8_text;
  s.delta_bytes = 5;
  connected c(s);
  const auto r = c.client.post("/v1/chat/completions", R"({"model":"gpt-4o","stream":true})");
  CHECK(r.header("Content-Type") == "text/event-stream; charset=utf-8");
  const auto events = complete_stream(r);
  const auto expected = cut_utf8(utf8_text, 5);
  // role chunk + one per delta + finish chunk + [DONE]
  REQUIRE(events.size() == expected.size() + 3);
  CHECK(events.back().data == "[DONE]");
  std::string text;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    INFO("event " << i << ": " << events[i].data);
    CHECK(events[i].event.empty());
    CHECK(events[i].data != "[DONE]");
    const auto v = parse_json(events[i].data);
    CHECK(str(v.at("object")) == "chat.completion.chunk");
    CHECK(str(v.at("model")) == "gpt-4o");
    CHECK(v.as_object().if_contains("usage") == nullptr);  // only with include_usage
    const auto& choice = v.at("choices").at(0);
    const auto& delta = choice.at("delta").as_object();
    if (i == 0) {
      CHECK(str(delta.at("role")) == "assistant");
    } else {
      CHECK(delta.if_contains("role") == nullptr);
    }
    if (i > 0 && i <= expected.size()) {
      CHECK(str(delta.at("content")) == expected[i - 1]);
      text += str(delta.at("content"));
    }
    if (i == events.size() - 2) {
      CHECK(str(choice.at("finish_reason")) == "stop");
      CHECK(delta.empty());
    } else {
      CHECK(choice.at("finish_reason").is_null());
    }
  }
  CHECK(text == utf8_text);
}

TEST_CASE("OpenAI chat streamed with include_usage ends with a usage chunk with empty choices") {
  script s;
  s.deltas = {"one ", "two ", "three"};
  s.prompt_tokens = 20;
  s.completion_tokens = 9;
  connected c(s);
  const auto r = c.client.post(
      "/v1/chat/completions",
      R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})");
  const auto events = complete_stream(r);
  REQUIRE(events.size() == 1 + 3 + 1 + 1 + 1);
  CHECK(events.back().data == "[DONE]");
  const auto usage_chunk = parse_json(events[events.size() - 2].data);
  CHECK(usage_chunk.at("choices").as_array().empty());
  CHECK(usage_chunk.at("usage").at("prompt_tokens").to_number<int>() == 20);
  CHECK(usage_chunk.at("usage").at("completion_tokens").to_number<int>() == 9);
  CHECK(usage_chunk.at("usage").at("total_tokens").to_number<int>() == 29);
  for (std::size_t i = 0; i + 2 < events.size(); ++i)
    CHECK(parse_json(events[i].data).at("usage").is_null());
  CHECK(str(parse_json(events[4].data).at("choices").at(0).at("finish_reason")) == "stop");
}

TEST_CASE("OpenAI chat with tools answers with tool_calls whose arguments are the script text") {
  script s;
  s.text = R"({"city":"Zürich","unit":"celsius"})";
  s.delta_bytes = 6;
  connected c(s);
  const std::string tools =
      R"("tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}])";

  SECTION("streamed: arguments cut into deltas, finish_reason tool_calls") {
    const auto r = c.client.post("/v1/chat/completions", R"({"model":"m","stream":true,)" + tools + "}");
    const auto events = complete_stream(r);
    const auto expected = cut_utf8(s.text, 6);
    REQUIRE(events.size() == expected.size() + 3);
    const auto first = parse_json(events[0].data);
    const auto& call = first.at("choices").at(0).at("delta").at("tool_calls").at(0);
    CHECK(call.at("index").to_number<int>() == 0);
    CHECK(str(call.at("id")).starts_with("call_"));
    CHECK(str(call.at("type")) == "function");
    CHECK(str(call.at("function").at("name")) == "get_weather");
    CHECK(str(call.at("function").at("arguments")).empty());
    std::string args;
    for (std::size_t i = 1; i <= expected.size(); ++i) {
      const auto v = parse_json(events[i].data);
      const auto& tc = v.at("choices").at(0).at("delta").at("tool_calls").at(0);
      CHECK(tc.at("index").to_number<int>() == 0);
      args += str(tc.at("function").at("arguments"));
    }
    CHECK(args == s.text);
    CHECK(str(parse_json(events[expected.size() + 1].data).at("choices").at(0).at("finish_reason")) ==
          "tool_calls");
    CHECK(events.back().data == "[DONE]");
  }
  SECTION("non-streamed: one tool call with the whole arguments string") {
    const auto r = c.client.post("/v1/chat/completions", R"({"model":"m",)" + tools + "}");
    REQUIRE(r.complete);
    const auto v = parse_json(r.body);
    const auto& msg = v.at("choices").at(0).at("message");
    CHECK(msg.at("content").is_null());
    CHECK(str(msg.at("tool_calls").at(0).at("function").at("name")) == "get_weather");
    CHECK(str(msg.at("tool_calls").at(0).at("function").at("arguments")) == s.text);
    CHECK(str(v.at("choices").at(0).at("finish_reason")) == "tool_calls");
  }
}

TEST_CASE("Responses API streamed: named events in order, deltas, full text at done, usage at completed") {
  script s;
  s.text = utf8_text;
  s.delta_bytes = 7;
  s.prompt_tokens = 3;
  connected c(s);
  const auto r = c.client.post("/v1/responses", R"({"model":"gpt-4.1","input":"hi","stream":true})");
  const auto events = complete_stream(r);
  const auto expected = cut_utf8(utf8_text, 7);

  std::vector<std::string> names;
  for (const auto& e : events) names.push_back(e.event);
  std::vector<std::string> want{"response.created", "response.in_progress", "response.output_item.added",
                                "response.content_part.added"};
  for (std::size_t i = 0; i < expected.size(); ++i) want.push_back("response.output_text.delta");
  for (const char* n : {"response.output_text.done", "response.content_part.done",
                        "response.output_item.done", "response.completed"})
    want.push_back(n);
  CHECK(names == want);

  std::string text;
  for (std::size_t i = 0; i < events.size(); ++i) {
    INFO(events[i].data);
    CHECK(events[i].data != "[DONE]");
    const auto v = parse_json(events[i].data);
    CHECK(str(v.at("type")) == events[i].event);  // event line equals the data's type
    CHECK(v.at("sequence_number").to_number<std::size_t>() == i);
    if (events[i].event == "response.output_text.delta") {
      CHECK(str(v.at("item_id")).starts_with("msg_"));
      CHECK(v.at("output_index").to_number<int>() == 0);
      CHECK(v.at("content_index").to_number<int>() == 0);
      text += str(v.at("delta"));
    }
  }
  CHECK(text == utf8_text);
  const auto done = parse_json(events[events.size() - 4].data);
  CHECK(str(done.at("text")) == utf8_text);
  const auto created = parse_json(events[0].data);
  CHECK(str(created.at("response").at("status")) == "in_progress");
  const auto completed = parse_json(events.back().data);
  const auto& resp = completed.at("response");
  CHECK(str(resp.at("object")) == "response");
  CHECK(str(resp.at("status")) == "completed");
  CHECK(str(resp.at("model")) == "gpt-4.1");
  CHECK(str(resp.at("output").at(0).at("content").at(0).at("type")) == "output_text");
  CHECK(str(resp.at("output").at(0).at("content").at(0).at("text")) == utf8_text);
  CHECK(resp.at("usage").at("input_tokens").to_number<int>() == 3);
  CHECK(resp.at("usage").at("output_tokens").to_number<std::size_t>() == expected.size());
  CHECK(resp.at("usage").at("total_tokens").to_number<std::size_t>() == 3 + expected.size());
}

TEST_CASE("Responses API non-streamed is a completed Response object") {
  connected c;
  const auto r = c.client.post("/v1/responses", R"({"model":"gpt-4.1","input":"hi"})");
  REQUIRE(r.complete);
  const auto v = parse_json(r.body);
  CHECK(str(v.at("object")) == "response");
  CHECK(str(v.at("id")).starts_with("resp_"));
  CHECK(str(v.at("status")) == "completed");
  const auto& item = v.at("output").at(0);
  CHECK(str(item.at("type")) == "message");
  CHECK(str(item.at("role")) == "assistant");
  CHECK(str(item.at("content").at(0).at("text")) == script{}.text);
  CHECK(v.at("usage").at("input_tokens").to_number<int>() == 11);
}

TEST_CASE("Embeddings: one vector per input, as floats or as base64 float32") {
  connected c;
  const auto floats = c.client.post("/v1/embeddings", R"({"model":"text-embedding-3-small","input":["a","b"]})");
  REQUIRE(floats.complete);
  const auto v = parse_json(floats.body);
  CHECK(str(v.at("object")) == "list");
  REQUIRE(v.at("data").as_array().size() == 2);
  CHECK(str(v.at("data").at(1).at("object")) == "embedding");
  CHECK(v.at("data").at(1).at("index").to_number<int>() == 1);
  const auto& vec = v.at("data").at(0).at("embedding").as_array();
  CHECK(vec.size() == 8);
  CHECK(v.at("usage").at("prompt_tokens").to_number<int>() == 11);

  const auto b64 = c.client.post(
      "/v1/embeddings", R"({"input":"a","encoding_format":"base64","dimensions":4})");
  REQUIRE(b64.complete);
  const auto w = parse_json(b64.body);
  REQUIRE(w.at("data").as_array().size() == 1);
  CHECK(str(w.at("data").at(0).at("embedding")).size() == 24);  // 16 bytes -> 24 base64 chars
}

TEST_CASE("Anthropic non-streamed is a message with a text block and usage") {
  script s;
  s.text = utf8_text;
  s.prompt_tokens = 5;
  s.completion_tokens = 12;
  connected c(s);
  const auto r = c.client.post("/v1/messages", R"({"model":"claude-x","max_tokens":100,"messages":[]})");
  REQUIRE(r.complete);
  const auto v = parse_json(r.body);
  CHECK(str(v.at("type")) == "message");
  CHECK(str(v.at("role")) == "assistant");
  CHECK(str(v.at("model")) == "claude-x");
  CHECK(str(v.at("id")).starts_with("msg_"));
  CHECK(str(v.at("content").at(0).at("type")) == "text");
  CHECK(str(v.at("content").at(0).at("text")) == utf8_text);
  CHECK(str(v.at("stop_reason")) == "end_turn");
  CHECK(v.at("usage").at("input_tokens").to_number<int>() == 5);
  CHECK(v.at("usage").at("output_tokens").to_number<int>() == 12);
}

TEST_CASE("Anthropic streamed: message_start ... message_stop once at the end, event line equals type") {
  script s;
  s.text = utf8_text;
  s.delta_bytes = 4;
  connected c(s);
  const auto r = c.client.post("/v1/messages", R"({"model":"claude-x","stream":true,"messages":[]})");
  CHECK(r.header("Content-Type") == "text/event-stream; charset=utf-8");
  const auto events = complete_stream(r);
  const auto expected = cut_utf8(utf8_text, 4);
  std::vector<std::string> want{"message_start", "content_block_start", "ping"};
  for (std::size_t i = 0; i < expected.size(); ++i) want.push_back("content_block_delta");
  for (const char* n : {"content_block_stop", "message_delta", "message_stop"}) want.push_back(n);
  std::vector<std::string> names;
  std::string text;
  for (const auto& e : events) {
    names.push_back(e.event);
    const auto v = parse_json(e.data);
    CHECK(str(v.at("type")) == e.event);
    if (e.event == "content_block_delta") {
      CHECK(str(v.at("delta").at("type")) == "text_delta");
      CHECK(v.at("index").to_number<int>() == 0);
      text += str(v.at("delta").at("text"));
    }
  }
  CHECK(names == want);
  CHECK(text == utf8_text);
  const auto start = parse_json(events[0].data);
  CHECK(str(start.at("message").at("role")) == "assistant");
  CHECK(start.at("message").at("content").as_array().empty());
  CHECK(start.at("message").at("usage").at("input_tokens").to_number<int>() == 11);
  const auto delta = parse_json(events[events.size() - 2].data);
  CHECK(str(delta.at("delta").at("stop_reason")) == "end_turn");
  CHECK(delta.at("usage").at("output_tokens").to_number<std::size_t>() == expected.size());
}

TEST_CASE("Anthropic with tools answers with a tool_use block") {
  script s;
  s.text = R"({"query":"weather"})";
  s.delta_bytes = 5;
  connected c(s);
  const std::string tools = R"("tools":[{"name":"search","input_schema":{"type":"object"}}])";

  SECTION("streamed: input_json_delta pieces of the arguments, stop_reason tool_use") {
    const auto events =
        complete_stream(c.client.post("/v1/messages", R"({"model":"m","stream":true,)" + tools + "}"));
    const auto block = parse_json(events[1].data).at("content_block");
    CHECK(str(block.at("type")) == "tool_use");
    CHECK(str(block.at("name")) == "search");
    std::string json_text;
    for (const auto& e : events) {
      if (e.event != "content_block_delta") continue;
      const auto d = parse_json(e.data).at("delta");
      CHECK(str(d.at("type")) == "input_json_delta");
      json_text += str(d.at("partial_json"));
    }
    CHECK(json_text == s.text);
    CHECK(str(parse_json(events[events.size() - 2].data).at("delta").at("stop_reason")) == "tool_use");
  }
  SECTION("non-streamed: input is the parsed object") {
    const auto r = c.client.post("/v1/messages", R"({"model":"m",)" + tools + "}");
    const auto v = parse_json(r.body);
    CHECK(str(v.at("content").at(0).at("type")) == "tool_use");
    CHECK(str(v.at("content").at(0).at("input").at("query")) == "weather");
    CHECK(str(v.at("stop_reason")) == "tool_use");
  }
}

TEST_CASE("Gemini generateContent is one GenerateContentResponse with finishReason and usageMetadata") {
  script s;
  s.text = utf8_text;
  s.prompt_tokens = 4;
  connected c(s);
  const auto r = c.client.post("/v1beta/models/gemini-2.0-flash:generateContent",
                               R"({"contents":[{"parts":[{"text":"hi"}]}]})");
  REQUIRE(r.complete);
  const auto v = parse_json(r.body);
  const auto& cand = v.at("candidates").at(0);
  CHECK(str(cand.at("content").at("role")) == "model");
  CHECK(str(cand.at("content").at("parts").at(0).at("text")) == utf8_text);
  CHECK(str(cand.at("finishReason")) == "STOP");
  CHECK(str(v.at("modelVersion")) == "gemini-2.0-flash");
  const auto n = cut_utf8(utf8_text, 8).size();
  CHECK(v.at("usageMetadata").at("promptTokenCount").to_number<int>() == 4);
  CHECK(v.at("usageMetadata").at("candidatesTokenCount").to_number<std::size_t>() == n);
  CHECK(v.at("usageMetadata").at("totalTokenCount").to_number<std::size_t>() == 4 + n);
}

TEST_CASE("Gemini streamGenerateContent?alt=sse: CRLF-framed data events, the last with finishReason and usage") {
  script s;
  s.text = utf8_text;
  s.delta_bytes = 6;
  connected c(s);
  const auto r = c.client.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                               R"({"contents":[{"parts":[{"text":"hi"}]}]})");
  CHECK(r.header("Content-Type") == "text/event-stream");
  const auto events = complete_stream(r);
  const auto expected = cut_utf8(utf8_text, 6);
  REQUIRE(events.size() == expected.size());
  for (const auto& chunk : r.chunks) {
    CHECK(chunk.starts_with("data: {"));
    CHECK(chunk.ends_with("}\r\n\r\n"));
  }
  std::string text;
  for (std::size_t i = 0; i < events.size(); ++i) {
    CHECK(events[i].event.empty());
    const auto v = parse_json(events[i].data);
    const auto& cand = v.at("candidates").at(0).as_object();
    text += str(cand.at("content").at("parts").at(0).at("text"));
    const bool last = i + 1 == events.size();
    CHECK((cand.if_contains("finishReason") != nullptr) == last);
    CHECK((v.at("usageMetadata").as_object().if_contains("candidatesTokenCount") != nullptr) == last);
    if (last) {
      CHECK(str(cand.at("finishReason")) == "STOP");
      CHECK(v.at("usageMetadata").at("candidatesTokenCount").to_number<std::size_t>() == expected.size());
    }
  }
  CHECK(text == utf8_text);
}

TEST_CASE("Gemini streamGenerateContent without alt=sse is a JSON array of responses") {
  script s;
  s.deltas = {"a", "b"};
  connected c(s);
  const auto r = c.client.post("/v1beta/models/g:streamGenerateContent", "{}");
  REQUIRE(r.complete);
  const auto v = parse_json(r.body);
  REQUIRE(v.as_array().size() == 2);
  CHECK(str(v.at(1).at("candidates").at(0).at("finishReason")) == "STOP");
}

TEST_CASE("Errors: unknown path 404 in OpenAI shape, wrong method 405, bad JSON 400 in the dialect's shape") {
  connected c;
  const auto unknown = c.client.post("/v2/whatever", "{}");
  CHECK(unknown.status == 404);
  const auto u = parse_json(unknown.body);
  CHECK(str(u.at("error").at("message")) == "Invalid URL (POST /v2/whatever)");
  CHECK(str(u.at("error").at("type")) == "invalid_request_error");
  CHECK(u.at("error").at("code").is_null());

  const auto get = c.client.request("GET", "/v1/chat/completions");
  CHECK(get.status == 405);
  CHECK(parse_json(get.body).at("error").as_object().contains("type"));

  const auto bad_openai = c.client.post("/v1/chat/completions", "{not json");
  CHECK(bad_openai.status == 400);
  CHECK(str(parse_json(bad_openai.body).at("error").at("type")) == "invalid_request_error");
  const auto bad_anthropic = c.client.post("/v1/messages", "[1,2]");
  CHECK(bad_anthropic.status == 400);
  CHECK(str(parse_json(bad_anthropic.body).at("type")) == "error");
  const auto bad_gemini = c.client.post("/v1beta/models/g:generateContent", "");
  CHECK(bad_gemini.status == 400);
  CHECK(str(parse_json(bad_gemini.body).at("error").at("status")) == "INVALID_ARGUMENT");
  // All on one connection: error replies keep the connection alive.
  CHECK(c.provider.connections_accepted() == 1);
}

TEST_CASE("Scripted deltas are sent exactly as given") {
  script s;
  s.deltas = {"你", "好", " wor", "ld", "!"};
  s.text = "ignored";
  connected c(s);
  const auto events = complete_stream(c.client.post("/v1/chat/completions", R"({"stream":true})"));
  REQUIRE(events.size() == 5 + 3);
  for (std::size_t i = 0; i < 5; ++i)
    CHECK(str(parse_json(events[i + 1].data).at("choices").at(0).at("delta").at("content")) == s.deltas[i]);
}

TEST_CASE("Every SSE event is its own HTTP chunk") {
  connected c;
  const auto r = c.client.post("/v1/messages", R"({"stream":true})");
  const auto events = complete_stream(r);
  REQUIRE(r.chunks.size() == events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto one = parse_sse(r.chunks[i]);
    REQUIRE(one.size() == 1);
    CHECK(one[0].data == events[i].data);
  }
}

TEST_CASE("split_at_byte sends every event as two chunks split at that byte") {
  SECTION("inside a multi-byte character") {
    fake_provider provider;
    const auto fetch = [&](std::optional<std::size_t> split) {
      script t;
      t.deltas = {"\xC3\xBC"};  // one two-byte character
      t.split_at_byte = split;
      provider.set_script(t);
      http_client client(loopback(provider.port()));
      REQUIRE_FALSE(client.connect());
      return client.post("/v1/chat/completions", R"({"stream":true})");
    };
    // Where the character sits in the content event (the second event).
    const auto whole = fetch(std::nullopt);
    REQUIRE(whole.chunks.size() == 4);
    const std::size_t pos = whole.chunks[1].find("\xC3\xBC");
    REQUIRE(pos != std::string::npos);
    const std::size_t at = pos + 1;  // between its two bytes

    const auto r = fetch(at);
    const auto events = complete_stream(r);
    REQUIRE(events.size() == 4);
    REQUIRE(r.chunks.size() == 2 * events.size());
    CHECK(r.chunks[2].size() == at);
    CHECK(r.chunks[2].back() == '\xC3');
    CHECK(r.chunks[3].front() == '\xBC');
    // Same event shape (ids differ per request but have the same length).
    CHECK(r.chunks[2].size() + r.chunks[3].size() == whole.chunks[1].size());
    CHECK(str(parse_json(events[1].data).at("choices").at(0).at("delta").at("content")) == "\xC3\xBC");
  }
  SECTION("clamped to the event: a byte past the end still splits off the last byte") {
    script s;
    s.split_at_byte = 1'000'000;
    connected c(s);
    const auto r = c.client.post("/v1/messages", R"({"stream":true})");
    const auto events = complete_stream(r);
    REQUIRE(r.chunks.size() == 2 * events.size());
    for (std::size_t i = 0; i < r.chunks.size(); i += 2) {
      CHECK(r.chunks[i + 1] == "\n");
      CHECK(r.chunks[i].ends_with("\n"));
      CHECK(parse_sse(r.chunks[i]).empty());  // the first half alone is not a complete event
    }
  }
  SECTION("split at byte 0 is clamped to 1") {
    script s;
    s.split_at_byte = 0;
    connected c(s);
    const auto r = c.client.post("/v1beta/models/g:streamGenerateContent?alt=sse", "{}");
    const auto events = complete_stream(r);
    REQUIRE(r.chunks.size() == 2 * events.size());
    for (std::size_t i = 0; i < r.chunks.size(); i += 2) CHECK(r.chunks[i] == "d");
  }
}

TEST_CASE("Extra headers are sent on streamed and non-streamed responses") {
  script s;
  s.extra_headers = {{"x-request-id", "req_123"}, {"openai-processing-ms", "5"}};
  connected c(s);
  const auto plain = c.client.post("/v1/chat/completions", "{}");
  CHECK(plain.header("x-request-id") == "req_123");
  CHECK(plain.header("openai-processing-ms") == "5");
  const auto streamed = c.client.post("/v1/chat/completions", R"({"stream":true})");
  CHECK(streamed.header("X-Request-Id") == "req_123");
}

TEST_CASE("Requests are recorded with method, target, headers, body and connection") {
  connected c;
  const auto r = c.client.request("POST", "/v1beta/models/g:generateContent?key=abc", R"({"contents":[]})",
                                  {{"x-goog-api-key", "secret"}});
  REQUIRE(r.complete);
  REQUIRE(c.provider.wait_for_requests(1, std::chrono::seconds(5)));
  const auto reqs = c.provider.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].method == "POST");
  CHECK(reqs[0].target == "/v1beta/models/g:generateContent?key=abc");
  CHECK(reqs[0].body == R"({"contents":[]})");
  CHECK(reqs[0].connection_index == 0);
  bool found = false;
  for (const auto& [n, v] : reqs[0].headers) found = found || (n == "x-goog-api-key" && v == "secret");
  CHECK(found);
  CHECK(c.provider.request_count() == 1);
  CHECK_FALSE(c.provider.wait_for_requests(2, std::chrono::milliseconds(1)));
}

TEST_CASE("Keep-alive: two requests, streamed and not, share one connection") {
  connected c;
  const auto first = c.client.post("/v1/chat/completions", R"({"stream":true})");
  REQUIRE(first.complete);
  CHECK(first.keep_alive);
  const auto second = c.client.post("/v1/messages", "{}");
  REQUIRE(second.complete);
  CHECK(c.provider.connections_accepted() == 1);
  const auto reqs = c.provider.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].connection_index == 0);
  CHECK(reqs[1].connection_index == 0);

  // A second client is a second connection.
  http_client other(loopback(c.provider.port()));
  REQUIRE_FALSE(other.connect());
  REQUIRE(other.post("/v1/messages", "{}").complete);
  CHECK(c.provider.connections_accepted() == 2);
  CHECK(c.provider.requests().back().connection_index == 1);
}

TEST_CASE("Connection: close is honoured: the provider closes after the response") {
  connected c;
  const auto r = c.client.request("POST", "/v1/chat/completions", "{}", {{"Connection", "close"}});
  REQUIRE(r.complete);
  CHECK_FALSE(r.keep_alive);
  const auto again = c.client.post("/v1/chat/completions", "{}");
  CHECK_FALSE(again.complete);
  CHECK(again.ec);
}

TEST_CASE("stamp_send_time puts a monotonic customs_sent_ns first in every chunk") {
  script s;
  s.stamp_send_time = true;
  s.deltas = {"a", "b", "c"};
  connected c(s);
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  const std::uint64_t before = std::uint64_t(ts.tv_sec) * 1'000'000'000u + std::uint64_t(ts.tv_nsec);
  const auto events = complete_stream(c.client.post("/v1/chat/completions", R"({"stream":true})"));
  std::uint64_t last = before;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    CHECK(events[i].data.starts_with(R"({"customs_sent_ns":)"));
    const auto v = parse_json(events[i].data);
    const auto t = v.at("customs_sent_ns").to_number<std::uint64_t>();
    CHECK(t >= last);
    last = t;
    CHECK(str(v.at("object")) == "chat.completion.chunk");
  }
  CHECK(events.back().data == "[DONE]");

  // Other dialects stamp their delta events.
  const auto anthropic = complete_stream(c.client.post("/v1/messages", R"({"stream":true})"));
  for (const auto& e : anthropic)
    CHECK(parse_json(e.data).as_object().contains("customs_sent_ns") == (e.event == "content_block_delta"));
}

TEST_CASE("TLS: the generated CA verifies the provider, an untrusted certificate fails verification") {
  temp_dir dir;
  const test_pki pki = make_test_pki(dir.path());

  fake_provider trusted(serving_tls(pki.server));
  for (const char* name : {"localhost", "127.0.0.1"}) {
    INFO("verify name " << name);
    http_client client(loopback_tls(trusted.port(), pki.ca.cert, name));
    REQUIRE_FALSE(client.connect());
    const auto events = complete_stream(client.post("/v1/messages", R"({"stream":true})"));
    CHECK(events.back().event == "message_stop");
    CHECK(client.post("/v1/chat/completions", "{}").complete);  // keep-alive over TLS
  }
  CHECK(trusted.connections_accepted() == 2);

  SECTION("a name the certificate does not carry fails") {
    http_client client(loopback_tls(trusted.port(), pki.ca.cert, "example.com"));
    const auto ec = client.connect();
    CHECK(ec);
  }
  SECTION("a self-signed certificate that the CA did not issue fails verification") {
    fake_provider untrusted(serving_tls(pki.untrusted));
    http_client client(loopback_tls(untrusted.port(), pki.ca.cert));
    const auto ec = client.connect();
    REQUIRE(ec);
    CHECK(ec.category() == boost::asio::error::get_ssl_category());
    CHECK(ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED);
    CHECK(untrusted.request_count() == 0);
  }
}

TEST_CASE("The fake_provider program prints its address, serves, and exits 0 on SIGTERM") {
  const std::string program = std::string(CUSTOMS_BINARY_DIR) + "/tests/support/fake_provider";
  int out[2];
  REQUIRE(::pipe(out) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  const char* argv[] = {program.c_str(), "--port", "0", "--text", "program text", "--delta-bytes", "3", "--stamp", nullptr};
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, program.c_str(), &actions, nullptr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  REQUIRE(spawned == 0);

  std::string line;
  char ch = 0;
  while (::read(out[0], &ch, 1) == 1 && ch != '\n') line += ch;
  INFO("first line: " << line);
  REQUIRE(line.starts_with("listening on 127.0.0.1:"));
  const auto port = static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  CHECK(port != 0);

  http_client client(loopback(port));
  REQUIRE_FALSE(client.connect());
  const auto events = complete_stream(client.post("/v1/chat/completions", R"({"stream":true})"));
  std::string text;
  for (std::size_t i = 1; i + 2 < events.size(); ++i) {
    const auto v = parse_json(events[i].data);
    CHECK(v.as_object().contains("customs_sent_ns"));
    text += str(v.at("choices").at(0).at("delta").at("content"));
  }
  CHECK(text == "program text");
  CHECK(events.size() == 4 + 3);  // role, 4 deltas of at most 3 bytes, finish, [DONE]

  REQUIRE(::kill(pid, SIGTERM) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  std::string more;
  while (::read(out[0], &ch, 1) == 1) more += ch;
  CHECK(more.empty());  // exactly one line
  ::close(out[0]);
}

}  // namespace customs::testing::test
