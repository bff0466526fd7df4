// libFuzzer target: one flow of stream events through a stream_codec.
// Input: byte 0 picks the codec; the rest is a sequence of events separated by
// a blank line ("\n\n"); an event whose first line starts with "event:" uses it
// as the event name, the remaining lines are the data.
// Properties: never crashes; encode of an event with every slot replaced gives
// valid JSON; make_delta of every open channel gives valid JSON or a codec error.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>

#include "daemon/dialect/stream_codec.hpp"

namespace {

using customs::daemon::dialect;
using customs::daemon::endpoint_kind;

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& t = targets[data[0] % targets.size()];
  auto codec = customs::daemon::stream_codec::create(t.d, t.e);
  if (!codec) std::abort();
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  while (!rest.empty()) {
    auto end = rest.find("\n\n");
    auto block = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 2);
    std::string_view name;
    if (block.starts_with("event:")) {
      auto nl = block.find('\n');
      name = block.substr(6, nl == std::string_view::npos ? std::string_view::npos : nl - 6);
      block = nl == std::string_view::npos ? std::string_view{} : block.substr(nl + 1);
    }
    auto ev = codec->decode(name, block);
    if (!ev) continue;
    if (!ev->slots.empty()) {
      std::vector<customs::daemon::text_replacement> changes;
      for (std::size_t i = 0; i < ev->slots.size(); ++i) changes.push_back({i, "[R]"});
      auto out = codec->encode(*ev, changes);
      if (!out || !valid_json(*out)) std::abort();
    }
    for (const auto& ch : codec->open_channels()) {
      auto d = codec->make_delta(ch, "x\"y");
      if (d && !valid_json(d->data)) std::abort();
    }
  }
  return 0;
}
