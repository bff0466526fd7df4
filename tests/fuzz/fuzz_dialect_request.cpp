// libFuzzer target: request extraction and rewrite (daemon/dialect/request.hpp)
// on arbitrary bodies, for every dialect and endpoint.
//
// Input: byte 0 picks the dialect and upstream path: one of the fixed paths
// below (every endpoint of every dialect), or, past them, a dialect and a path
// read from the input up to the first '\n' (so that endpoint classification is
// fuzzed too). The rest is the body.
//
// Properties: never crashes; a successful extraction rewrites (every writable
// slot replaced by a text that needs escaping) to valid JSON in which every
// writable slot's pointer holds the replacement text (re-encoded for inline
// files); no credential header is ever a slot's text.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
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

  // Small bound on decoded text, so that the fuzzer reaches it.
  customs::daemon::request_options opts;
  opts.max_decoded_text = 4096;
  const std::pair<std::string_view, std::string_view> headers[] = {{"User-Agent", "fuzz"}, {"Authorization", "x"}};
  opts.headers = headers;
  auto ex = customs::daemon::extract_request(d, path, body, opts);
  if (!ex) return 0;
  std::vector<customs::daemon::text_replacement> changes;
  for (std::size_t i = 0; i < ex->slots.size(); ++i) {
    if (ex->slots[i].writable()) changes.push_back({i, replacement});
  }
  auto out = customs::daemon::rewrite_request(*ex, changes);
  check(out.has_value(), "rewrite_request failed on its own extraction");
  boost::system::error_code ec;
  auto v = boost::json::parse(*out, ec);
  check(!ec || ex->slots.empty() || ex->document.is_null(), "the rewritten body is not JSON");
  for (const auto& s : ex->slots) {
    check(!(s.role == customs::daemon::slot_role::header && s.text.find("Authorization") != std::string_view::npos),
          "a credential header was scanned");
    if (!s.writable()) continue;
    check(s.text == replacement, "a slot's text was not updated");
    auto* p = v.find_pointer(s.where, ec);
    check(p != nullptr && p->is_string(), "a writable slot's pointer is not a string");
    const std::string_view got(p->get_string().data(), p->get_string().size());
    using customs::daemon::slot_form;
    check(s.form != slot_form::json_string || got == replacement, "a slot's pointer does not hold its replacement");
    check(s.form != slot_form::data_url || got.starts_with("data:"), "an inline file is no longer a data: URL");
  }
  return 0;
}
