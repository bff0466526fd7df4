// libFuzzer target: request extraction and rewrite (daemon/dialect/request.hpp)
// on arbitrary bodies, for every dialect and endpoint.
//
// Input: byte 0 picks the dialect and upstream path: one of the fixed paths
// below (every endpoint of every dialect), or, past them, a dialect and a path
// read from the input up to the first '\n' (so that endpoint classification is
// fuzzed too). The rest is the body.
//
// Properties: never crashes; a successful extraction rewrites (every slot
// replaced by a text that needs escaping) to valid JSON in which every slot's
// pointer holds the replacement text.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "daemon/dialect/request.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using customs::daemon::dialect;
using customs::fuzz::check;

struct target {
  dialect d;
  std::string_view path;
};

constexpr std::array<target, 14> targets{{
    {dialect::openai, "/v1/chat/completions"},
    {dialect::openai, "/v1/responses"},
    {dialect::openai, "/v1/embeddings"},
    {dialect::anthropic, "/v1/messages"},
    {dialect::anthropic, "/v1/messages/count_tokens"},
    {dialect::gemini, "/v1beta/models/gemini-2.0-flash:generateContent"},
    {dialect::gemini, "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"},
    {dialect::gemini, "/v1beta/models/m:countTokens"},
    {dialect::gemini, "/v1beta/models/m:batchEmbedContents"},
    {dialect::openai, "/v1/models"},
    {dialect::gemini, "/v1beta/models/text-embedding-004:embedContent"},
    {dialect::gemini, "/v1beta/models/gemini-2.0-flash:streamGenerateContent"},
    {dialect::openai, "/openai/deployments/d/chat/completions?api-version=2024-10-21"},
    {dialect::anthropic, "/v1/models/claude-x"},
}};
constexpr std::array<dialect, 3> dialects{dialect::openai, dialect::anthropic, dialect::gemini};

constexpr std::string_view replacement = "[R\"\\\n\x01]";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  customs::fuzz::input in(data, size);
  const std::size_t pick = in.byte() % (targets.size() + dialects.size());
  dialect d{};
  std::string_view path;
  if (pick < targets.size()) {
    d = targets[pick].d;
    path = targets[pick].path;
  } else {
    d = dialects[pick - targets.size()];
    path = in.until('\n');
  }
  const std::string_view body = in.rest();

  auto ex = customs::daemon::extract_request(d, path, body);
  if (!ex) return 0;
  std::vector<customs::daemon::text_replacement> changes;
  for (std::size_t i = 0; i < ex->slots.size(); ++i) changes.push_back({i, replacement});
  auto out = customs::daemon::rewrite_request(*ex, changes);
  check(out.has_value(), "rewrite_request failed on its own extraction");
  boost::system::error_code ec;
  auto v = boost::json::parse(*out, ec);
  check(!ec || ex->slots.empty(), "the rewritten body is not JSON");
  for (const auto& s : ex->slots) {
    check(s.text == replacement, "a slot's text was not updated");
    auto* p = v.find_pointer(s.where, ec);
    check(p != nullptr && p->is_string() && p->get_string() == replacement,
          "a slot's pointer does not hold its replacement");
  }
  return 0;
}
