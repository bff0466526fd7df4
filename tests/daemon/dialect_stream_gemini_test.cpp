#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "daemon/dialect/stream_codec.hpp"
#include "tests/daemon/dialect_test_support.hpp"

using namespace customs::daemon;
using namespace customs::daemon::test;

namespace {

stream_codec gemini_codec() { return make_stream_codec(dialect::gemini, endpoint_kind::gemini_stream_generate); }

stream_event decode_ok(stream_codec& codec, std::string_view data) { return test::decode_ok(codec, "", data); }

}  // namespace

TEST_CASE("gemini stream: text and thought channels, finishReason closes, cumulative usage", "[dialect][stream]") {
  auto codec = gemini_codec();
  auto events = split_sse(read_fixture("gemini_stream.sse"));
  REQUIRE(events.size() == 4);
  auto r = replay_stream(codec, events);
  CHECK(r.errors == 0);
  CHECK(r.kinds == std::vector<event_kind>(4, event_kind::content));
  CHECK(r.opened == std::vector<std::string>{"c0.th", "c0"});
  CHECK(r.delta_text["c0.th"] == "Checking the number first.");
  CHECK(r.delta_text["c0"] == "The number is 138 0013 8000.");
  CHECK(r.closes == std::vector<std::string>{"c0.th", "c0"});
  CHECK(r.usage.input_tokens == 9u);
  CHECK(r.usage.output_tokens == 31u);  // candidates 12 + thoughts 19
  CHECK(codec.open_channels().empty());
}

TEST_CASE("gemini stream: open channels at the end of a body without finishReason", "[dialect][stream]") {
  auto codec = gemini_codec();
  auto events = split_sse(read_fixture("gemini_stream.sse"));
  for (int i = 0; i < 3; ++i) (void)decode_ok(codec, events[i].data);
  CHECK(codec.open_channels() == std::vector<std::string>{"c0.th", "c0"});
}

TEST_CASE("gemini stream: encode and make_delta", "[dialect][stream]") {
  auto codec = gemini_codec();
  auto events = split_sse(read_fixture("gemini_stream.sse"));
  std::vector<stream_event> decoded;
  for (const auto& e : events) decoded.push_back(decode_ok(codec, e.data));
  auto& last = decoded[3];
  REQUIRE(last.slots.size() == 1);
  std::vector<text_replacement> change{{0, " [PHONE]."}};
  auto out = codec.encode(last, change);
  REQUIRE_OK(out);
  auto expected = parse(events[3].data);
  expected.at_pointer("/candidates/0/content/parts/0/text") = " [PHONE].";
  CHECK(parse(*out) == expected);

  auto d = codec.make_delta("c0", "flushed");
  REQUIRE_OK(d);
  CHECK(d->name.empty());
  auto v = parse(d->data);
  const auto& cand = v.at("candidates").at(0);
  CHECK(cand.at("index").to_number<std::int64_t>() == 0);
  CHECK(cand.at("content").at("role").as_string() == "model");
  CHECK(cand.at("content").at("parts").at(0).at("text").as_string() == "flushed");
  CHECK_FALSE(cand.as_object().contains("finishReason"));
  CHECK(v.at("modelVersion").as_string() == "gemini-2.5-flash");
  CHECK(v.at("responseId").as_string() == "Il0taoSYJ5Cez7IPqJ6xsAo");
  CHECK_FALSE(v.as_object().contains("usageMetadata"));
  auto th = codec.make_delta("c0.th", "t");
  REQUIRE_OK(th);
  CHECK(parse(th->data).at("candidates").at(0).at("content").at("parts").at(0).at("thought").as_bool());
}

TEST_CASE("gemini stream: a functionCall arrives whole as leaf channels that close at once", "[dialect][stream]") {
  auto codec = gemini_codec();
  auto events = split_sse(read_fixture("gemini_function_call.sse"));
  REQUIRE(events.size() == 1);
  auto ev = decode_ok(codec, events[0].data);
  CHECK(ev.kind == event_kind::content);
  std::vector<std::string> texts, channels;
  for (const auto& s : ev.slots) {
    texts.emplace_back(s.text);
    channels.push_back(s.channel);
    CHECK(s.role == (s.channel.ends_with(".n") ? slot_role::tool_name : slot_role::structured_leaf));
  }
  // The args' leaves, then the function's name.
  CHECK(texts == std::vector<std::string>{"+86 138 0013 8000", "hello", "a", "b", "send_sms"});
  CHECK(channels == std::vector<std::string>{"c0.p0.l0", "c0.p0.l1", "c0.p0.l2", "c0.p0.l3", "c0.p0.n"});
  CHECK(ev.closes == channels);
  CHECK(ev.usage.output_tokens == 22u);
  auto d = codec.make_delta("c0.p0.l0", "x");
  REQUIRE_FALSE(d.has_value());
  CHECK(d.error().code == codec_errc::unknown_channel);
  std::vector<text_replacement> change{{0, "[PHONE]"}};
  auto out = codec.encode(ev, change);
  REQUIRE_OK(out);
  auto v = parse(*out);
  const auto& args = v.at_pointer("/candidates/0/content/parts/0/functionCall/args");
  CHECK(args.at("to").as_string() == "[PHONE]");
  CHECK(args.at("options").at("body").as_string() == "hello");
  // The next whole part of the candidate gets the next part number.
  auto again = decode_ok(codec, events[0].data);
  REQUIRE_FALSE(again.slots.empty());
  CHECK(again.slots[0].channel == "c0.p1.l0");
}

TEST_CASE("gemini stream: errors, inline media, usage-only and malformed chunks", "[dialect][stream]") {
  auto codec = gemini_codec();
  auto err = decode_ok(codec, R"({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})");
  CHECK(err.kind == event_kind::error);
  auto img = decode_ok(codec, R"({"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png","data": "iVBORw0KGgo="}}],"role": "model"},"index": 0}]})");
  CHECK(img.non_text[media_kind::image] == 1);
  CHECK(img.kind == event_kind::other);
  auto usage = decode_ok(codec, R"({"usageMetadata": {"promptTokenCount": 4,"candidatesTokenCount": 7,"totalTokenCount": 11},"modelVersion": "gemini-2.0-flash"})");
  CHECK(usage.kind == event_kind::usage_only);
  CHECK(usage.usage.output_tokens == 7u);
  auto bad = codec.decode("", R"({"candidates": "x"})");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().code == codec_errc::unexpected_shape);
  auto trunc = codec.decode("", R"({"candidates": [{"content": {"parts": [{"text": "abc)");
  REQUIRE_FALSE(trunc.has_value());
  CHECK(trunc.error().code == codec_errc::malformed_json);
}
