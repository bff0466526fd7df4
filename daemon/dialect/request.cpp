#include "daemon/dialect/request.hpp"

#include "daemon/dialect/request_walk.hpp"

namespace customs::daemon {

using detail::json::object;

codec_result<request_extraction> extract_request(dialect d, std::string_view path,
                                                 std::string_view body) {
  auto match = classify_endpoint(d, path);
  if (!match) return codec_error{codec_errc::unknown_endpoint, {}};

  request_extraction ex;
  ex.endpoint = match->kind;
  ex.model = std::move(match->model);

  if (ex.endpoint == endpoint_kind::model_info) {
    // A listing or lookup (GET): nothing leaves but the path.
    if (body.find_first_not_of(" \t\r\n") != std::string_view::npos) {
      return codec_error{codec_errc::unexpected_shape, {}};
    }
    return ex;
  }

  auto parsed = detail::parse_json(body);
  if (!parsed) return parsed.error();
  ex.document = std::move(*parsed);
  if (!ex.document.is_object()) return codec_error{codec_errc::not_an_object, {}};
  auto& root = ex.document.get_object();

  detail::walker w(ex.slots, ex.non_text);
  bool ok = false;
  switch (d) {
    case dialect::openai: ok = detail::walk_openai_request(w, ex, root); break;
    case dialect::anthropic: ok = detail::walk_anthropic_request(w, ex, root); break;
    case dialect::gemini: ok = detail::walk_gemini_request(w, ex, root); break;
  }
  if (!ok) return w.take_error();

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
