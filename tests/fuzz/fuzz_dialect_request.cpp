// libFuzzer target: request extraction and rewrite on arbitrary bodies.
// Input: byte 0 picks a dialect and upstream path, the rest is the body.
// Properties: never crashes; a successful extraction rewrites to valid JSON in
// which every writable slot's pointer holds the replacement text (re-encoded
// for inline files); no credential header is ever a slot's text.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
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
  // Small bound on decoded text, so that the fuzzer reaches it.
  customs::daemon::request_options opts;
  opts.max_decoded_text = 4096;
  const std::pair<std::string_view, std::string_view> headers[] = {{"User-Agent", "fuzz"}, {"Authorization", "x"}};
  opts.headers = headers;
  auto ex = customs::daemon::extract_request(t.d, t.path, body, opts);
  if (!ex) return 0;
  std::vector<customs::daemon::text_replacement> changes;
  for (std::size_t i = 0; i < ex->slots.size(); ++i) {
    if (ex->slots[i].writable()) changes.push_back({i, "[R\"\\]"});
  }
  auto out = customs::daemon::rewrite_request(*ex, changes);
  if (!out) std::abort();
  boost::system::error_code ec;
  auto v = boost::json::parse(*out, ec);
  if (ec && !ex->slots.empty() && !ex->document.is_null()) std::abort();
  for (const auto& s : ex->slots) {
    if (s.text.find("Authorization") != std::string_view::npos && s.role == customs::daemon::slot_role::header) {
      std::abort();  // a credential was scanned
    }
    if (!s.writable()) continue;
    if (s.text != "[R\"\\]") std::abort();
    auto* p = v.find_pointer(s.where, ec);
    if (p == nullptr || !p->is_string()) std::abort();
    const std::string_view got(p->get_string().data(), p->get_string().size());
    using customs::daemon::slot_form;
    if (s.form == slot_form::json_string && got != "[R\"\\]") std::abort();
    if (s.form != slot_form::json_string && got.find("data:") != 0 && s.form == slot_form::data_url) std::abort();
  }
  return 0;
}
