#include "daemon/dialect/request.hpp"

#include "daemon/dialect/blob.hpp"
#include "daemon/dialect/request_walk.hpp"

namespace customs::daemon {
namespace {

using detail::json::object;

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

text_slot synthesized_slot(std::string text, slot_role role) {
  text_slot slot;
  slot.owned = std::make_shared<std::string>(std::move(text));
  slot.text = *slot.owned;
  slot.role = role;
  slot.form = slot_form::fixed;
  return slot;
}

// The path percent-decoded, then each query parameter that is not a credential
// as "name=value" (form-decoded), one per line.
std::string target_text(std::string_view target) {
  const auto q = target.find('?');
  std::string out = detail::percent_decode(target.substr(0, q));
  if (q == std::string_view::npos) return out;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (param.empty()) continue;
    const auto eq = param.find('=');
    const std::string name = detail::percent_decode(param.substr(0, eq), true);
    if (credential_parameter(name)) continue;
    out += '\n';
    out += name;
    if (eq != std::string_view::npos) {
      out += '=';
      out += detail::percent_decode(param.substr(eq + 1), true);
    }
  }
  return out;
}

}  // namespace

bool credential_header(std::string_view name) noexcept {
  static constexpr std::string_view names[] = {"authorization", "proxy-authorization", "cookie",
                                                "x-api-key",     "api-key",             "x-goog-api-key"};
  for (auto n : names) {
    if (iequals(name, n)) return true;
  }
  return false;
}

bool credential_parameter(std::string_view name) noexcept {
  static constexpr std::string_view names[] = {"key", "api_key", "api-key", "apikey",
                                               "access_token", "token", "sig", "signature"};
  for (auto n : names) {
    if (iequals(name, n)) return true;
  }
  return false;
}

codec_result<request_extraction> extract_request(dialect d, std::string_view path, std::string_view body,
                                                 const request_options& options) {
  auto match = classify_endpoint(d, path);
  if (!match) return codec_error{codec_errc::unknown_endpoint, {}};

  request_extraction ex(detail::document_storage());
  ex.endpoint = match->kind;
  ex.model = std::move(match->model);

  if (ex.endpoint != endpoint_kind::model_info) {
    // Numbers cross as the client spelled them (the body is forwarded as it
    // came unless a redaction rewrites it): their literals are scanned too.
    std::string numbers;
    auto parsed = detail::parse_json(body, nullptr, nullptr, &numbers, ex.document.storage());
    if (!parsed) return parsed.error();
    ex.document = std::move(*parsed);
    if (!ex.document.is_object()) return codec_error{codec_errc::not_an_object, {}};
    auto& root = ex.document.get_object();

    detail::walker w(ex.slots, ex.non_text);
    w.set_blob_budget(options.max_decoded_text);
    bool ok = false;
    switch (d) {
      case dialect::openai: ok = detail::walk_openai_request(w, ex, root); break;
      case dialect::anthropic: ok = detail::walk_anthropic_request(w, ex, root); break;
      case dialect::gemini: ok = detail::walk_gemini_request(w, ex, root); break;
    }
    if (!ok || !w.sweep(ex.document)) return w.take_error();
    if (!numbers.empty()) ex.slots.push_back(synthesized_slot(std::move(numbers), slot_role::number));
  } else if (body.find_first_not_of(" \t\r\n") != std::string_view::npos) {
    // A listing or lookup (GET): nothing leaves but the request line and headers.
    return codec_error{codec_errc::unexpected_shape, {}};
  }

  if (options.scan_target) ex.slots.push_back(synthesized_slot(target_text(path), slot_role::target));
  if (!options.headers.empty()) {
    std::string text;
    for (const auto& [name, value] : options.headers) {
      if (credential_header(name)) continue;
      if (!text.empty()) text += '\n';
      text.append(name.data(), name.size());
      text += ": ";
      text.append(value.data(), value.size());
    }
    if (!text.empty()) ex.slots.push_back(synthesized_slot(std::move(text), slot_role::header));
  }

  if (ex.stream) {
    ex.framing = (ex.endpoint == endpoint_kind::gemini_stream_generate && !match->alt_sse)
                     ? response_framing::json_array
                     : response_framing::sse;
  }
  return ex;
}

codec_result<std::string> rewrite_request(request_extraction& extraction,
                                          std::span<const text_replacement> changes) {
  return rewrite_document(extraction.document, extraction.slots, changes);
}

}  // namespace customs::daemon
