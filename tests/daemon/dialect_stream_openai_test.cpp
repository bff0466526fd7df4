#include <catch2/catch.hpp>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "daemon/dialect/dialect.hpp"
#include "daemon/dialect/stream_codec.hpp"
#include "tests/daemon/dialect_test_support.hpp"

using namespace customs::daemon;
using namespace customs::daemon::test;

namespace {

stream_codec make_codec(endpoint_kind k) { return make_stream_codec(dialect::openai, k); }

}  // namespace

TEST_CASE("openai chat stream: content channel, close at finish_reason, usage chunk, [DONE]", "[dialect][stream]") {
  auto codec = make_codec(endpoint_kind::openai_chat);
  auto events = split_sse(read_fixture("openai_chat_text.sse"));
  REQUIRE(events.size() == 7);
  auto r = replay_stream(codec, events);
  CHECK(r.errors == 0);
  CHECK(r.kinds == std::vector<event_kind>{event_kind::content, event_kind::content, event_kind::content,
                                           event_kind::content, event_kind::other, event_kind::usage_only,
                                           event_kind::end_marker});
  CHECK(r.opened == std::vector<std::string>{"c0"});
  CHECK(r.delta_text["c0"] == "Sure, call me at 138 0013 8000 \u4eca\u5929.");
  CHECK(r.closes == std::vector<std::string>{"c0"});
  CHECK(r.usage.input_tokens == 19u);
  CHECK(r.usage.output_tokens == 10u);
  CHECK(codec.open_channels().empty());
}

TEST_CASE("openai chat stream: tool call argument deltas are slots, one channel per call", "[dialect][stream]") {
  auto codec = make_codec(endpoint_kind::openai_chat);
  auto r = replay_stream(codec, split_sse(read_fixture("openai_chat_tools.sse")));
  CHECK(r.errors == 0);
  // Each call's name is a whole text on its own channel, opened and closed in
  // the call's first delta.
  CHECK(r.opened == std::vector<std::string>{"c0.t0", "c0.t0.n", "c0.t1", "c0.t1.n"});
  CHECK(r.delta_text["c0.t0"] == R"({"location": "Paris, France"})");
  CHECK(r.delta_text["c0.t1"] == R"({"to": "+86 138 0013 8000"})");
  CHECK(r.delta_text["c0.t0.n"] == "get_weather");
  CHECK(r.closes == std::vector<std::string>{"c0.t0.n", "c0.t1.n", "c0.t0", "c0.t1"});
  CHECK(r.kinds.back() == event_kind::end_marker);
}

TEST_CASE("openai chat stream: encode replaces only the delta text", "[dialect][stream]") {
  auto codec = make_codec(endpoint_kind::openai_chat);
  auto events = split_sse(read_fixture("openai_chat_tools.sse"));
  for (int i = 0; i < 5; ++i) (void)decode_ok(codec, events[i].name, events[i].data);
  auto ev = decode_ok(codec, events[5].name, events[5].data);  // {"to": "+86 138
  REQUIRE(ev.slots.size() == 1);
  CHECK(ev.slots[0].channel == "c0.t1");
  CHECK(ev.slots[0].role == slot_role::tool_arguments);
  CHECK(ev.slots[0].text == R"({"to": "+86 138)");
  std::vector<text_replacement> change{{0, R"({"to": "[PHONE)"}};
  auto out = codec.encode(ev, change);
  REQUIRE_OK(out);
  auto expected = parse(events[5].data);
  expected.at_pointer("/choices/0/delta/tool_calls/0/function/arguments") = R"({"to": "[PHONE)";
  CHECK(parse(*out) == expected);
}

TEST_CASE("openai chat stream: make_delta builds a chunk the SDK accumulates", "[dialect][stream]") {
  auto codec = make_codec(endpoint_kind::openai_chat);
  auto events = split_sse(read_fixture("openai_chat_text.sse"));
  for (int i = 0; i < 4; ++i) (void)decode_ok(codec, events[i].name, events[i].data);
  auto d = codec.make_delta("c0", "[REDACTED]");
  REQUIRE_OK(d);
  CHECK(d->name.empty());
  auto v = parse(d->data);
  CHECK(v.at("id").as_string() == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
  CHECK(v.at("object").as_string() == "chat.completion.chunk");
  CHECK(v.at("created").as_int64() == 1741570283);
  CHECK(v.at("model").as_string() == "gpt-4o-2024-08-06");
  CHECK(v.at("system_fingerprint").as_string() == "fp_eb9dce56a8");
  const auto& choice = v.at("choices").at(0);
  CHECK(choice.at("index").to_number<std::int64_t>() == 0);
  CHECK(choice.at("delta").at("content").as_string() == "[REDACTED]");
  CHECK(choice.at("finish_reason").is_null());
  CHECK_FALSE(v.as_object().contains("usage"));
  // A fresh codec reads it back as a content delta on the same channel.
  auto other = make_codec(endpoint_kind::openai_chat);
  auto back = decode_ok(other, d->name, d->data);
  REQUIRE(back.slots.size() == 1);
  CHECK(back.slots[0].channel == "c0");
  CHECK(back.slots[0].text == "[REDACTED]");

  auto unknown = codec.make_delta("c3", "x");
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error().code == codec_errc::unknown_channel);
}

TEST_CASE("openai chat stream: tool call make_delta keeps the call index", "[dialect][stream]") {
  auto codec = make_codec(endpoint_kind::openai_chat);
  auto events = split_sse(read_fixture("openai_chat_tools.sse"));
  for (int i = 0; i < 6; ++i) (void)decode_ok(codec, events[i].name, events[i].data);
  auto d = codec.make_delta("c0.t1", " [PHONE]\"}");
  REQUIRE_OK(d);
  auto v = parse(d->data);
  const auto& call = v.at("choices").at(0).at("delta").at("tool_calls").at(0);
  CHECK(call.at("index").to_number<std::int64_t>() == 1);
  CHECK(call.at("function").at("arguments").as_string() == " [PHONE]\"}");
  CHECK(v.at("model").as_string() == "gpt-4o-mini-2024-07-18");
}

TEST_CASE("openai chat stream: several choices, refusal and reasoning channels", "[dialect][stream]") {
  auto codec = make_codec(endpoint_kind::openai_chat);
  auto ev = decode_ok(codec, "",
                      R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[)"
                      R"({"index":0,"delta":{"content":"A"},"logprobs":null,"finish_reason":null},)"
                      R"({"index":1,"delta":{"refusal":"No"},"logprobs":null,"finish_reason":null},)"
                      R"({"index":2,"delta":{"reasoning_content":"hmm"},"logprobs":{"content":[]},"finish_reason":null}]})");
  REQUIRE(ev.slots.size() == 3);
  CHECK(ev.slots[0].channel == "c0");
  CHECK(ev.slots[1].channel == "c1.r");
  CHECK(ev.slots[1].role == slot_role::refusal);
  CHECK(ev.slots[2].channel == "c2.rs");
  CHECK(ev.has_logprobs);
  auto fin = decode_ok(codec, "",
                       R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[)"
                       R"({"index":1,"delta":{"content":"!"},"logprobs":null,"finish_reason":"stop"}]})");
  // The content opens c1 and the finish closes c1.r and c1 in the same event.
  CHECK(fin.kind == event_kind::content);
  CHECK(fin.closes == std::vector<std::string>{"c1.r", "c1"});
  auto rs = codec.make_delta("c2.rs", "x");
  REQUIRE_OK(rs);
  CHECK(parse(rs->data).at("choices").at(0).at("delta").at("reasoning_content").as_string() == "x");
  auto done = decode_ok(codec, "", "[DONE]");
  CHECK(done.kind == event_kind::end_marker);
  CHECK(done.closes == std::vector<std::string>{"c0", "c2.rs"});
  auto same = codec.encode(done, {});
  REQUIRE_OK(same);
  CHECK(*same == "[DONE]");
}

TEST_CASE("openai chat stream: errors, malformed data, channel limit", "[dialect][stream]") {
  auto codec = make_codec(endpoint_kind::openai_chat);
  auto err = decode_ok(codec, "", R"({"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}})");
  CHECK(err.kind == event_kind::error);
  auto bad = codec.decode("", R"({"id":"x","choices":[{"index":0,"delta":{"content":"a"})");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == codec_errc::malformed_json);
  auto arr = codec.decode("", "[1,2]");
  REQUIRE_FALSE(arr.has_value());
  CHECK(arr.error().code == codec_errc::not_an_object);
  auto shape = codec.decode("", R"({"choices":{"index":0}})");
  REQUIRE_FALSE(shape.has_value());
  CHECK(shape.error().code == codec_errc::unexpected_shape);

  std::string many = R"({"choices":[{"index":0,"delta":{"tool_calls":[)";
  for (std::size_t i = 0; i <= stream_codec::max_channels; ++i) {
    if (i != 0) many += ',';
    many += R"({"index":)" + std::to_string(i) + R"(,"function":{"arguments":"x"}})";
  }
  many += "]}}]}";
  auto full = codec.decode("", many);
  REQUIRE_FALSE(full.has_value());
  CHECK(full.error().code == codec_errc::too_many_channels);
}

// --- Responses API ----------------------------------------------------------------

TEST_CASE("openai responses stream: deltas, closes, aggregates and usage", "[dialect][stream]") {
  auto codec = make_codec(endpoint_kind::openai_responses);
  auto events = split_sse(read_fixture("openai_responses.sse"));
  REQUIRE(events.size() == 16);
  std::vector<stream_event> decoded;
  for (const auto& e : events) decoded.push_back(decode_ok(codec, e.name, e.data));

  auto fresh = make_codec(endpoint_kind::openai_responses);
  auto r = replay_stream(fresh, events);
  CHECK(r.errors == 0);
  CHECK(r.opened == std::vector<std::string>{"o0.c0", "o1"});
  CHECK(r.delta_text["o0.c0"] == "Your number 138 0013 8000 is saved.");
  CHECK(r.delta_text["o1"] == R"({"phone":"138 0013 8000"})");
  CHECK(r.closes == std::vector<std::string>{"o0.c0", "o1"});
  CHECK(r.usage.input_tokens == 37u);
  CHECK(r.usage.output_tokens == 31u);

  CHECK(decoded[0].kind == event_kind::other);            // response.created
  CHECK(decoded[2].kind == event_kind::other);            // output_item.added (message, no text)
  CHECK(decoded[4].kind == event_kind::content);          // output_text.delta
  REQUIRE(decoded[4].slots.size() == 1);
  CHECK(decoded[4].slots[0].aggregate == false);
  // output_text.done: the full text as an aggregate slot, and the close.
  const auto& text_done = decoded[7];
  REQUIRE(text_done.slots.size() == 1);
  CHECK(text_done.slots[0].aggregate);
  CHECK(text_done.slots[0].channel == "o0.c0");
  CHECK(text_done.slots[0].text == "Your number 138 0013 8000 is saved.");
  CHECK(text_done.closes == std::vector<std::string>{"o0.c0"});
  // content_part.done and output_item.done repeat it; the channel is already closed.
  for (int i : {8, 9}) {
    REQUIRE(decoded[i].slots.size() == 1);
    CHECK(decoded[i].slots[0].aggregate);
    CHECK(decoded[i].slots[0].channel == "o0.c0");
    CHECK(decoded[i].closes.empty());
  }
  // The function call: added with "" opens o1 (its name is an aggregate, scanned
  // whole), deltas, done closes it.
  REQUIRE(decoded[10].slots.size() == 2);
  CHECK(decoded[10].slots[0].channel == "o1");
  CHECK(decoded[10].slots[1].channel == "o1.n");
  CHECK(decoded[10].slots[1].role == slot_role::tool_name);
  CHECK(decoded[10].slots[1].aggregate);
  REQUIRE(decoded[13].slots.size() == 1);
  CHECK(decoded[13].slots[0].aggregate);
  CHECK(decoded[13].closes == std::vector<std::string>{"o1"});
  // response.completed: the end marker, with both texts as aggregates and the usage.
  const auto& completed = decoded[15];
  CHECK(completed.kind == event_kind::end_marker);
  REQUIRE(completed.slots.size() == 3);
  CHECK(completed.slots[0].channel == "o0.c0");
  CHECK(completed.slots[0].aggregate);
  CHECK(completed.slots[1].channel == "o1");
  CHECK(completed.slots[1].role == slot_role::tool_arguments);
  CHECK(completed.slots[2].channel == "o1.n");
  CHECK(completed.usage.input_tokens == 37u);
}

TEST_CASE("openai responses stream: encode aggregates and make_delta", "[dialect][stream]") {
  auto codec = make_codec(endpoint_kind::openai_responses);
  auto events = split_sse(read_fixture("openai_responses.sse"));
  std::vector<stream_event> decoded;
  for (const auto& e : events) decoded.push_back(decode_ok(codec, e.name, e.data));

  auto d = codec.make_delta("o0.c0", " [PHONE]");
  REQUIRE_OK(d);
  CHECK(d->name == "response.output_text.delta");
  auto v = parse(d->data);
  CHECK(v.at("type").as_string() == "response.output_text.delta");
  CHECK(v.at("item_id").as_string() == "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b");
  CHECK(v.at("output_index").to_number<std::int64_t>() == 0);
  CHECK(v.at("content_index").to_number<std::int64_t>() == 0);
  CHECK(v.at("delta").as_string() == " [PHONE]");
  CHECK(v.at("sequence_number").as_int64() == 6);  // the last delta seen on o0.c0
  CHECK(v.at("logprobs").as_array().empty());

  auto fd = codec.make_delta("o1", "}");
  REQUIRE_OK(fd);
  CHECK(fd->name == "response.function_call_arguments.delta");
  auto fv = parse(fd->data);
  CHECK(fv.at("item_id").as_string() == "fc_67ccd3c4b1c8819087a1d7ec9ab4f2b30bb6a6b452d3795b");
  CHECK(fv.at("output_index").to_number<std::int64_t>() == 1);
  CHECK_FALSE(fv.as_object().contains("content_index"));

  // Replacing the aggregate of response.completed keeps the rest of the Response.
  auto& completed = decoded[15];
  std::vector<text_replacement> change{{0, "Your number [PHONE] is saved."}, {1, R"({"phone":"[PHONE]"})"}};
  auto out = codec.encode(completed, change);
  REQUIRE_OK(out);
  auto expected = parse(events[15].data);
  expected.at_pointer("/response/output/0/content/0/text") = "Your number [PHONE] is saved.";
  expected.at_pointer("/response/output/1/arguments") = R"({"phone":"[PHONE]"})";
  CHECK(parse(*out) == expected);
}

TEST_CASE("openai responses stream: errors, failed responses, unknown events, bad shapes", "[dialect][stream]") {
  auto codec = make_codec(endpoint_kind::openai_responses);
  auto e1 = decode_ok(codec, "error", R"({"type":"error","code":"ERR_SOMETHING","message":"Something went wrong","param":null,"sequence_number":1})");
  CHECK(e1.kind == event_kind::error);
  auto e2 = decode_ok(codec, "response.failed",
                      R"({"type":"response.failed","sequence_number":2,"response":{"id":"r","object":"response","status":"failed","error":{"code":"server_error","message":"x"},"output":[],"usage":null}})");
  CHECK(e2.kind == event_kind::error);
  // An error object without an event name, as the SDKs read it in any OpenAI
  // stream (and as customsd writes its own error events).
  auto e3 = decode_ok(codec, "", R"({"error":{"message":"customs: blocked","type":"permission_error","param":null,"code":"customs_blocked"}})");
  CHECK(e3.kind == event_kind::error);
  auto own = decode_ok(codec, "", error_body(dialect::openai, 451, "customs: blocked", "customs_blocked"));
  CHECK(own.kind == event_kind::error);
  auto u = decode_ok(codec, "response.audio.transcript.delta",
                     R"({"type":"response.audio.transcript.delta","sequence_number":3,"response_id":"r","delta":"hello"})");
  CHECK(u.kind == event_kind::unknown);
  CHECK(u.slots.empty());
  auto q = decode_ok(codec, "response.web_search_call.searching",
                     R"({"type":"response.web_search_call.searching","sequence_number":4,"output_index":0,"item_id":"ws_1"})");
  CHECK(q.kind == event_kind::other);
  auto bad = codec.decode("response.output_text.delta",
                          R"({"type":"response.output_text.delta","sequence_number":5,"item_id":"m","content_index":0,"delta":"x"})");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == codec_errc::unexpected_shape);
  CHECK(bad.error().where == "/output_index");
}

// Found attacking customsd as a hostile provider: an event with a top-level
// "error" object was marked an error but none of its strings was a slot (and
// with a type, it was not even that), while openai-python raises on any
// event whose "error" is set, with its message.
TEST_CASE("openai responses stream: every string of an error object is scanned whatever the event's type", "[dialect][stream]") {
  for (const auto& [name, data] : std::vector<std::pair<std::string, std::string>>{
           {"", R"({"error":{"message":"id 11010519491231002X"}})"},
           {"response.in_progress",
            R"({"type":"response.in_progress","sequence_number":1,"response":{"id":"r","status":"in_progress","output":[]},"error":{"message":"id 11010519491231002X"}})"},
       }) {
    CAPTURE(data);
    auto codec = make_codec(endpoint_kind::openai_responses);
    auto ev = decode_ok(codec, name, data);
    CHECK(ev.kind == event_kind::error);
    bool found = false;
    for (const auto& slot : ev.slots) found = found || slot.text == "id 11010519491231002X";
    CHECK(found);
  }
}

// Found by fuzz_dialect_rewrite: every string of an error event is scanned, and
// a redaction of the event's own "type" turned {"type":"error"} into an event
// of unknown kind for the client. The discriminator is scanned but fixed (a
// finding there blocks); the message stays writable.
TEST_CASE("stream error events: the event's type is scanned but cannot be rewritten", "[dialect][stream]") {
  struct error_case {
    dialect d;
    endpoint_kind e;
    std::string_view name, data;
  };
  const std::array<error_case, 4> cases{{
      {dialect::openai, endpoint_kind::openai_responses, "error", R"({"type":"error","message":"call 13800138000"})"},
      {dialect::openai, endpoint_kind::openai_responses, "", R"({"type":"error","message":"call 13800138000"})"},
      {dialect::openai, endpoint_kind::openai_responses, "response.failed",
       R"({"type":"response.failed","response":{"id":"r","status":"failed","error":{"code":"server_error","message":"call 13800138000"},"output":[]}})"},
      {dialect::anthropic, endpoint_kind::anthropic_messages, "", R"({"type":"error","error":{"type":"overloaded_error","message":"call 13800138000"}})"},
  }};
  for (const auto& c : cases) {
    CAPTURE(c.data);
    auto codec = make_stream_codec(c.d, c.e);
    auto ev = decode_ok(codec, c.name, c.data);
    REQUIRE(ev.kind == event_kind::error);
    std::optional<std::size_t> type_slot, message_slot;
    for (std::size_t i = 0; i < ev.slots.size(); ++i) {
      if (ev.slots[i].text == parse(c.data).at("type").as_string()) type_slot = i;
      if (ev.slots[i].text == "call 13800138000") message_slot = i;
    }
    REQUIRE(type_slot);
    REQUIRE(message_slot);
    CHECK_FALSE(ev.slots[*type_slot].writable());
    CHECK(ev.slots[*message_slot].writable());
    const std::array<text_replacement, 1> bad{{{*type_slot, "[REDACTED]"}}};
    auto refused = codec.encode(ev, bad);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == codec_errc::slot_not_writable);
    const std::array<text_replacement, 1> good{{{*message_slot, "call [PHONE]"}}};
    auto out = codec.encode(ev, good);
    REQUIRE_OK(out);
    auto again = decode_ok(codec, c.name, *out);
    CHECK(again.kind == event_kind::error);
  }
}

TEST_CASE("openai responses stream: reasoning summary and refusal channels", "[dialect][stream]") {
  auto codec = make_codec(endpoint_kind::openai_responses);
  auto a = decode_ok(codec, "response.reasoning_summary_text.delta",
                     R"({"type":"response.reasoning_summary_text.delta","sequence_number":7,"item_id":"rs_1","output_index":0,"summary_index":1,"delta":"Thinking"})");
  REQUIRE(a.slots.size() == 1);
  CHECK(a.slots[0].channel == "o0.s1");
  CHECK(a.slots[0].role == slot_role::reasoning);
  auto d = codec.make_delta("o0.s1", "more");
  REQUIRE_OK(d);
  auto v = parse(d->data);
  CHECK(v.at("type").as_string() == "response.reasoning_summary_text.delta");
  CHECK(v.at("summary_index").to_number<std::int64_t>() == 1);
  CHECK(v.at("item_id").as_string() == "rs_1");
  auto r = decode_ok(codec, "response.refusal.delta",
                     R"({"type":"response.refusal.delta","sequence_number":8,"item_id":"msg_1","output_index":1,"content_index":0,"delta":"I can't"})");
  REQUIRE(r.slots.size() == 1);
  CHECK(r.slots[0].channel == "o1.c0");
  CHECK(r.slots[0].role == slot_role::refusal);
  auto rd = decode_ok(codec, "response.refusal.done",
                      R"({"type":"response.refusal.done","sequence_number":9,"item_id":"msg_1","output_index":1,"content_index":0,"refusal":"I can't"})");
  REQUIRE(rd.slots.size() == 1);
  CHECK(rd.slots[0].aggregate);
  CHECK(rd.closes == std::vector<std::string>{"o1.c0"});
}

TEST_CASE("stream codecs exist only for streamed endpoints of their dialect", "[dialect][stream]") {
  CHECK(stream_codec::create(dialect::openai, endpoint_kind::openai_embeddings).error().code == codec_errc::not_streamed);
  CHECK(stream_codec::create(dialect::anthropic, endpoint_kind::openai_chat).error().code == codec_errc::unknown_endpoint);
  CHECK(stream_codec::create(dialect::gemini, endpoint_kind::gemini_generate).error().code == codec_errc::not_streamed);
}
