// libFuzzer target: non-streamed response extraction and rewrite.
// Input: byte 0 picks a dialect and endpoint, the rest is the body.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>

#include "daemon/dialect/response.hpp"

namespace {

using customs::daemon::dialect;
using customs::daemon::endpoint_kind;

struct target {
  dialect d;
  endpoint_kind e;
};

constexpr std::array<target, 6> targets{{
    {dialect::openai, endpoint_kind::openai_chat},
    {dialect::openai, endpoint_kind::openai_responses},
    {dialect::openai, endpoint_kind::openai_embeddings},
    {dialect::anthropic, endpoint_kind::anthropic_messages},
    {dialect::gemini, endpoint_kind::gemini_generate},
    {dialect::gemini, endpoint_kind::gemini_stream_generate},
}};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& t = targets[data[0] % targets.size()];
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  auto ex = customs::daemon::extract_response(t.d, t.e, body);
  if (!ex) return 0;
  std::vector<customs::daemon::text_replacement> changes;
  for (std::size_t i = 0; i < ex->slots.size(); ++i) changes.push_back({i, "[R]"});
  auto out = customs::daemon::rewrite_response(*ex, changes);
  if (!out) std::abort();
  boost::system::error_code ec;
  auto v = boost::json::parse(*out, ec);
  if (ec) std::abort();
  for (const auto& s : ex->slots) {
    auto* p = v.find_pointer(s.where, ec);
    if (p == nullptr || !p->is_string() || p->get_string() != "[R]") std::abort();
  }
  return 0;
}
