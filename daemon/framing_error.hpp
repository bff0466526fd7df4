#pragma once
// Why customsd refused a message's framing (see daemon/http_framing.hpp for
// the rules). Shared by the parser, the session (failure reasons) and the
// metrics (customs_limit_hits_total, customs_framing_rejected_total); this
// header has no Beast dependency.

#include <cstdint>
#include <string_view>

namespace customs::daemon {

enum class framing_error : std::uint8_t {
  none = 0,
  // Bounds (customs_limit_hits_total{limit=...}).
  head_too_large,             // head over limits.header_bytes (responses: response_header_bytes)
  too_many_fields,            // more than limits.header_fields header fields
  field_too_large,            // one field (name + value) over max_field_bytes
  target_too_long,            // request target over limits.target_bytes
  trailer_too_large,          // trailer section over limits.trailer_bytes
  chunk_extension_too_large,  // chunk extensions of one message over limits.chunk_extension_bytes
  read_buffer_full,           // a chunk-size line or trailer section bigger than the read buffer
                              // (classified as one of the two above before it is reported)
  // Rules (customs_framing_rejected_total{rule=...}).
  bad_line_ending,            // a bare CR or LF in a request head
  obs_fold,                   // obsolete line folding in a request head
  bad_transfer_encoding,      // Transfer-Encoding not exactly "chunked" (final coding not chunked,
                              // empty or repeated coding, or in an HTTP/1.0 request)
  unsupported_coding,         // a coding other than chunked before the final chunked
  bad_host,                   // Host missing (HTTP/1.1), repeated, or not a host[:port]
  bad_content_length,         // Content-Length invalid, values that differ, or with Transfer-Encoding
  bad_chunk,                  // a chunk-size line that is not hex digits and extensions
  count_,
};

[[nodiscard]] constexpr std::string_view to_string(framing_error e) noexcept {
  switch (e) {
    case framing_error::none: return "";
    case framing_error::head_too_large: return "head_too_large";
    case framing_error::too_many_fields: return "too_many_fields";
    case framing_error::field_too_large: return "field_too_large";
    case framing_error::target_too_long: return "target_too_long";
    case framing_error::trailer_too_large: return "trailer_too_large";
    case framing_error::chunk_extension_too_large: return "chunk_extension_too_large";
    case framing_error::read_buffer_full: return "read_buffer_full";
    case framing_error::bad_line_ending: return "bad_line_ending";
    case framing_error::obs_fold: return "obs_fold";
    case framing_error::bad_transfer_encoding: return "bad_transfer_encoding";
    case framing_error::unsupported_coding: return "unsupported_coding";
    case framing_error::bad_host: return "bad_host";
    case framing_error::bad_content_length: return "bad_content_length";
    case framing_error::bad_chunk: return "bad_chunk";
    case framing_error::count_: break;
  }
  return "unknown";
}

// True for the errors that are a bound being hit (rather than a rule broken).
[[nodiscard]] constexpr bool is_limit(framing_error e) noexcept {
  return e >= framing_error::head_too_large && e <= framing_error::read_buffer_full;
}

}  // namespace customs::daemon
