// libFuzzer target: non-streamed response extraction and rewrite
// (daemon/dialect/response.hpp), for every endpoint of every dialect.
//
// Input: byte 0 picks the dialect and endpoint, the rest is the body.
//
// Properties: never crashes; a successful extraction rewrites (every slot
// replaced by a text that needs escaping) to valid JSON in which every slot's
// pointer holds the replacement text. A provider error's message is a slot
// too (it is scanned like any answer text).
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>

#include "daemon/dialect/response.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using customs::daemon::dialect;
using customs::daemon::endpoint_kind;
using customs::fuzz::check;

struct target {
  dialect d;
  endpoint_kind e;
};

constexpr std::array<target, 14> targets{{
    {dialect::openai, endpoint_kind::openai_chat},
    {dialect::openai, endpoint_kind::openai_responses},
    {dialect::openai, endpoint_kind::openai_embeddings},
    {dialect::anthropic, endpoint_kind::anthropic_messages},
    {dialect::gemini, endpoint_kind::gemini_generate},
    {dialect::gemini, endpoint_kind::gemini_stream_generate},
    {dialect::anthropic, endpoint_kind::anthropic_count_tokens},
    {dialect::gemini, endpoint_kind::gemini_count_tokens},
    {dialect::gemini, endpoint_kind::gemini_embed},
    {dialect::gemini, endpoint_kind::gemini_batch_embed},
    {dialect::openai, endpoint_kind::model_info},
    {dialect::anthropic, endpoint_kind::model_info},
    {dialect::gemini, endpoint_kind::model_info},
    // Endpoints of another dialect (a misrouted answer): must fail cleanly.
    {dialect::anthropic, endpoint_kind::openai_chat},
}};

constexpr std::string_view replacement = "[R\"\\\n\x01]";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  customs::fuzz::input in(data, size);
  const auto& t = targets[in.byte() % targets.size()];
  const std::string_view body = in.rest();

  auto ex = customs::daemon::extract_response(t.d, t.e, body);
  if (!ex) return 0;
  std::vector<customs::daemon::text_replacement> changes;
  for (std::size_t i = 0; i < ex->slots.size(); ++i) {
    if (ex->slots[i].writable()) changes.push_back({i, replacement});
  }
  auto out = customs::daemon::rewrite_response(*ex, changes);
  check(out.has_value(), "rewrite_response failed on its own extraction");
  boost::system::error_code ec;
  auto v = boost::json::parse(*out, ec);
  check(!ec, "the rewritten body is not JSON");
  for (const auto& s : ex->slots) {
    if (!s.writable()) continue;
    check(s.text == replacement, "a slot's text was not updated");
    auto* p = v.find_pointer(s.where, ec);
    check(p != nullptr && p->is_string() && p->get_string() == replacement,
          "a slot's pointer does not hold its replacement");
  }
  return 0;
}
