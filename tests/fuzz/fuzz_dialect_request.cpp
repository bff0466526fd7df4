// libFuzzer target: request extraction and rewrite on arbitrary bodies.
// Input: byte 0 picks a dialect and upstream path, the rest is the body.
// Properties: never crashes; a successful extraction rewrites to valid JSON in
// which every slot's pointer holds the replacement text.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "daemon/dialect/request.hpp"

namespace {

struct target {
  customs::daemon::dialect d;
  std::string_view path;
};

constexpr std::array<target, 10> targets{{
    {customs::daemon::dialect::openai, "/v1/chat/completions"},
    {customs::daemon::dialect::openai, "/v1/responses"},
    {customs::daemon::dialect::openai, "/v1/embeddings"},
    {customs::daemon::dialect::anthropic, "/v1/messages"},
    {customs::daemon::dialect::anthropic, "/v1/messages/count_tokens"},
    {customs::daemon::dialect::gemini, "/v1beta/models/gemini-2.0-flash:generateContent"},
    {customs::daemon::dialect::gemini, "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"},
    {customs::daemon::dialect::gemini, "/v1beta/models/m:countTokens"},
    {customs::daemon::dialect::gemini, "/v1beta/models/m:batchEmbedContents"},
    {customs::daemon::dialect::openai, "/v1/models"},
}};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& t = targets[data[0] % targets.size()];
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  auto ex = customs::daemon::extract_request(t.d, t.path, body);
  if (!ex) return 0;
  std::vector<customs::daemon::text_replacement> changes;
  for (std::size_t i = 0; i < ex->slots.size(); ++i) changes.push_back({i, "[R\"\\]"});
  auto out = customs::daemon::rewrite_request(*ex, changes);
  if (!out) std::abort();
  boost::system::error_code ec;
  auto v = boost::json::parse(*out, ec);
  if (ec && !ex->slots.empty()) std::abort();
  for (const auto& s : ex->slots) {
    auto* p = v.find_pointer(s.where, ec);
    if (p == nullptr || !p->is_string() || p->get_string() != "[R\"\\]") std::abort();
  }
  return 0;
}
