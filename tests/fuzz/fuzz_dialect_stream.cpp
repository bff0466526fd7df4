// libFuzzer target: one streamed response through a stream_codec
// (daemon/dialect/stream_codec.hpp), framed by the SSE parser as the relay
// frames it.
//
// Input: byte 0 picks the codec (every streamed endpoint); the rest is the
// response body, an SSE stream.
//
// Properties: never crashes; an event with every slot replaced encodes to
// valid JSON; a delta event made for an open channel is valid JSON (or a codec
// error); a stream event's slot channels are non-empty.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>

#include "daemon/dialect/stream_codec.hpp"
#include "daemon/sse.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using customs::daemon::dialect;
using customs::daemon::endpoint_kind;
using customs::fuzz::check;

struct target {
  dialect d;
  endpoint_kind e;
};

constexpr std::array<target, 4> targets{{
    {dialect::openai, endpoint_kind::openai_chat},
    {dialect::openai, endpoint_kind::openai_responses},
    {dialect::anthropic, endpoint_kind::anthropic_messages},
    {dialect::gemini, endpoint_kind::gemini_stream_generate},
}};

bool valid_json(std::string_view s) {
  boost::system::error_code ec;
  (void)boost::json::parse(s, ec);
  return !ec;
}

void on_block(customs::daemon::stream_codec& codec, const customs::daemon::sse_block& b) {
  if (!b.has_data) return;
  auto ev = codec.decode(b.event, b.data);
  if (!ev) return;
  for (const auto& s : ev->slots) check(!s.channel.empty(), "a stream slot without a channel");
  if (!ev->slots.empty()) {
    std::vector<customs::daemon::text_replacement> changes;
    // Only slots that can take a replacement (an error event's own type, for
    // one, is scanned but fixed: encode refuses a change there).
    for (std::size_t i = 0; i < ev->slots.size(); ++i)
      if (ev->slots[i].writable()) changes.push_back({i, "[R\"\\]"});
    auto out = codec.encode(*ev, changes);
    check(out.has_value(), "encode failed on its own event");
    check(valid_json(*out), "an encoded event is not JSON");
  }
  for (const auto& ch : codec.open_channels()) {
    auto d = codec.make_delta(ch, "x\"y");
    if (d) check(valid_json(d->data), "a made delta is not JSON");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  customs::fuzz::input in(data, size);
  const auto& t = targets[in.byte() % targets.size()];
  auto codec = customs::daemon::stream_codec::create(t.d, t.e);
  check(codec.has_value(), "no codec for a streamed endpoint");
  customs::daemon::sse_parser sse(1 << 20);
  std::string_view rest = in.rest();
  while (!rest.empty()) {
    const auto r = sse.feed(rest);
    if (r.what == customs::daemon::sse_parser::status::too_large) return 0;
    rest.remove_prefix(r.consumed);
    if (r.what == customs::daemon::sse_parser::status::event) on_block(*codec, sse.event());
  }
  if (sse.finish()) on_block(*codec, sse.event());
  return 0;
}
