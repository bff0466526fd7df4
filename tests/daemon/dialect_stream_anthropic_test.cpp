#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "daemon/dialect/stream_codec.hpp"
#include "tests/daemon/dialect_test_support.hpp"

using namespace customs::daemon;
using namespace customs::daemon::test;

namespace {

stream_codec anthropic_codec() { return make_stream_codec(dialect::anthropic, endpoint_kind::anthropic_messages); }

}  // namespace

TEST_CASE("anthropic stream: text and tool_use input_json channels, closes, usage, message_stop", "[dialect][stream]") {
  auto codec = anthropic_codec();
  auto events = split_sse(read_fixture("anthropic_messages.sse"));
  REQUIRE(events.size() == 14);
  auto r = replay_stream(codec, events);
  CHECK(r.errors == 0);
  CHECK(r.kinds == std::vector<event_kind>{
                       event_kind::usage_only,  // message_start
                       event_kind::content,     // content_block_start text ""
                       event_kind::other,       // ping
                       event_kind::content, event_kind::content, event_kind::content,
                       event_kind::other,       // content_block_stop
                       event_kind::content,     // content_block_start tool_use: its name (input {})
                       event_kind::content, event_kind::content, event_kind::content,
                       event_kind::other,       // content_block_stop
                       event_kind::usage_only,  // message_delta
                       event_kind::end_marker});
  CHECK(r.opened == std::vector<std::string>{"b0", "b1.n", "b1"});
  CHECK(r.delta_text["b0"] == "Okay, I will text 138 0013 8000 now.");
  CHECK(r.delta_text["b1"] == R"({"to": "+86 138 0013 8000", "body": "hi"})");
  CHECK(r.delta_text["b1.n"] == "send_sms");
  CHECK(r.closes == std::vector<std::string>{"b0", "b1.n", "b1"});
  // input_tokens + cache_creation_input_tokens + cache_read_input_tokens; the
  // final output_tokens from message_delta.
  CHECK(r.usage.input_tokens == 572u);
  CHECK(r.usage.output_tokens == 89u);
}

TEST_CASE("anthropic stream: encode and make_delta keep the SDK's event shapes", "[dialect][stream]") {
  auto codec = anthropic_codec();
  auto events = split_sse(read_fixture("anthropic_messages.sse"));
  std::vector<stream_event> decoded;
  for (const auto& e : events) decoded.push_back(decode_ok(codec, e.name, e.data));
  auto& delta = decoded[3];
  REQUIRE(delta.slots.size() == 1);
  CHECK(delta.slots[0].text == "Okay, I will text 138");
  std::vector<text_replacement> change{{0, "Okay, I will text "}};
  auto out = codec.encode(delta, change);
  REQUIRE_OK(out);
  auto expected = parse(events[3].data);
  expected.at_pointer("/delta/text") = "Okay, I will text ";
  CHECK(parse(*out) == expected);

  auto d = codec.make_delta("b0", "[PHONE] now.");
  REQUIRE_OK(d);
  CHECK(d->name == "content_block_delta");
  auto v = parse(d->data);
  CHECK(v.at("type").as_string() == "content_block_delta");
  CHECK(v.at("index").to_number<std::int64_t>() == 0);
  CHECK(v.at("delta").at("type").as_string() == "text_delta");
  CHECK(v.at("delta").at("text").as_string() == "[PHONE] now.");
  auto j = codec.make_delta("b1", "\"}");
  REQUIRE_OK(j);
  auto jv = parse(j->data);
  CHECK(jv.at("index").to_number<std::int64_t>() == 1);
  CHECK(jv.at("delta").at("type").as_string() == "input_json_delta");
  CHECK(jv.at("delta").at("partial_json").as_string() == "\"}");
}

TEST_CASE("anthropic stream: thinking, signature, error, unknown events", "[dialect][stream]") {
  auto codec = anthropic_codec();
  (void)decode_ok(codec, "content_block_start",
                  R"({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}})");
  auto t = decode_ok(codec, "content_block_delta",
                     R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user's number is"}})");
  REQUIRE(t.slots.size() == 1);
  CHECK(t.slots[0].channel == "b0");
  CHECK(t.slots[0].role == slot_role::reasoning);
  auto sig = decode_ok(codec, "content_block_delta",
                       R"({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}})");
  CHECK(sig.kind == event_kind::other);
  CHECK(sig.slots.empty());
  auto td = codec.make_delta("b0", "x");
  REQUIRE_OK(td);
  CHECK(parse(td->data).at("delta").at("type").as_string() == "thinking_delta");
  auto red = decode_ok(codec, "content_block_start",
                       R"({"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"EmwKAhgB"}})");
  CHECK(red.kind == event_kind::other);
  CHECK(red.non_text[media_kind::opaque] == 1);
  auto err = decode_ok(codec, "error", R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  CHECK(err.kind == event_kind::error);
  auto unk = decode_ok(codec, "content_block_delta",
                       R"({"type":"content_block_delta","index":2,"delta":{"type":"audio_delta","audio":"AAAA"}})");
  CHECK(unk.kind == event_kind::unknown);
  auto unk2 = decode_ok(codec, "future_event", R"({"type":"future_event","text":"x"})");
  CHECK(unk2.kind == event_kind::unknown);
  auto bad = codec.decode("content_block_delta", R"({"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}})");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == codec_errc::unexpected_shape);
  auto stop = decode_ok(codec, "message_stop", R"({"type":"message_stop"})");
  CHECK(stop.kind == event_kind::end_marker);
  CHECK(stop.closes == std::vector<std::string>{"b0"});
}

TEST_CASE("anthropic stream: a tool_use start with a filled input yields whole leaves", "[dialect][stream]") {
  auto codec = anthropic_codec();
  auto ev = decode_ok(codec, "content_block_start",
                      R"({"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"t","name":"n","input":{"to":"13800138000","n":2}}})");
  REQUIRE(ev.slots.size() == 2);
  CHECK(ev.slots[0].text == "13800138000");
  CHECK(ev.slots[0].channel == "b3.l0");
  CHECK(ev.slots[1].text == "n");
  CHECK(ev.slots[1].channel == "b3.n");
  CHECK(ev.slots[1].role == slot_role::tool_name);
  CHECK(ev.closes == std::vector<std::string>{"b3.l0", "b3.n"});
  CHECK(ev.kind == event_kind::content);
}

TEST_CASE("anthropic stream: an event name that differs from the data's type is not decoded", "[dialect][stream]") {
  auto codec = anthropic_codec();
  (void)decode_ok(codec, "content_block_start",
                  R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})");
  // The SDKs build the event from the data's type: read by its name, the text
  // would pass unscanned.
  auto mismatch = codec.decode("message_delta",
                               R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hidden"}})");
  REQUIRE_FALSE(mismatch.has_value());
  CHECK(mismatch.error().code == codec_errc::unexpected_shape);
  auto numeric = codec.decode("message_delta", R"({"type":7,"usage":{"output_tokens":1}})");
  CHECK_FALSE(numeric.has_value());
  // Without a name the data's type decides; without a type, the name.
  auto nameless = decode_ok(codec, "", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"seen"}})");
  REQUIRE(nameless.slots.size() == 1);
  CHECK(nameless.slots[0].text == "seen");
  auto typeless = decode_ok(codec, "content_block_delta", R"({"index":0,"delta":{"type":"text_delta","text":"also"}})");
  REQUIRE(typeless.slots.size() == 1);
  CHECK(typeless.slots[0].text == "also");
  // `event: error` is an error whatever its data says (every string scanned).
  auto err = decode_ok(codec, "error", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}})");
  CHECK(err.kind == event_kind::error);
}
