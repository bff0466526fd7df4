#pragma once
// Why a flow failed: stable reason codes shared by logs (reason=...), metrics
// (customs_flow_failures_total{reason=...}) and filters (flow_summary::failure).

#include <cstdint>
#include <string_view>

namespace customs::daemon {

enum class failure : std::uint8_t {
  none = 0,
  bad_request,            // 400: the request could not be parsed
  header_too_large,       // 431: limits.header_bytes, limits.header_fields, or one field over max_field_bytes
  header_timeout,         // 408: limits.header_timeout / body_timeout
  body_too_large,         // 413: limits.request_body_bytes
  unknown_route,          // 404: no route prefix matches
  upstream_unreachable,   // 502: resolve, connect or TLS handshake (verification) failed
  upstream_timeout,       // 504: connect or first-byte timeout
  upstream_bad_response,  // 502: the upstream's response could not be parsed
  upstream_reset,         // the upstream closed or reset mid-response
  stream_gap_timeout,     // no upstream bytes for limits.stream_gap_timeout mid-response
  flow_timeout,           // limits.flow_timeout
  event_too_large,        // an SSE block over limits.sse_event_bytes
  response_too_large,     // a body a filter inspects over limits.response_body_bytes
  client_gone,            // the client closed, reset or did not read (send_timeout)
  filter_error,           // a filter threw, or abandoned a pending decision
  filter_timeout,         // a pending decision was not made within the flow's deadline
  draining,               // cut at the drain deadline
  target_too_long,        // 414: the request target over limits.target_bytes
  trailer_too_large,      // 431: a request's trailer section over limits.trailer_bytes
  chunk_extension_too_large,  // 400: a request's chunk extensions over limits.chunk_extension_bytes
  bad_framing,            // 400: framing that two readers could disagree about (Transfer-Encoding
                          // other than chunked, Content-Length conflicts, obs-fold, bare CR/LF, Host)
  unsupported_coding,     // 501: a transfer coding other than chunked (before a final chunked)
  internal_error,         // 500 before the answer started, a cut stream after: customsd's own fault
  count_,                 // number of values (not a reason)
};

[[nodiscard]] constexpr std::string_view to_string(failure f) noexcept {
  switch (f) {
    case failure::none: return "";
    case failure::bad_request: return "bad_request";
    case failure::header_too_large: return "header_too_large";
    case failure::header_timeout: return "header_timeout";
    case failure::body_too_large: return "body_too_large";
    case failure::unknown_route: return "unknown_route";
    case failure::upstream_unreachable: return "upstream_unreachable";
    case failure::upstream_timeout: return "upstream_timeout";
    case failure::upstream_bad_response: return "upstream_bad_response";
    case failure::upstream_reset: return "upstream_reset";
    case failure::stream_gap_timeout: return "stream_gap_timeout";
    case failure::flow_timeout: return "flow_timeout";
    case failure::event_too_large: return "event_too_large";
    case failure::response_too_large: return "response_too_large";
    case failure::client_gone: return "client_gone";
    case failure::filter_error: return "filter_error";
    case failure::filter_timeout: return "filter_timeout";
    case failure::draining: return "draining";
    case failure::target_too_long: return "target_too_long";
    case failure::trailer_too_large: return "trailer_too_large";
    case failure::chunk_extension_too_large: return "chunk_extension_too_large";
    case failure::bad_framing: return "bad_framing";
    case failure::unsupported_coding: return "unsupported_coding";
    case failure::internal_error: return "internal_error";
    case failure::count_: break;
  }
  return "unknown";
}

}  // namespace customs::daemon
