#include "daemon/filter.hpp"

namespace customs::daemon {

std::string_view to_string(flow_outcome o) noexcept {
  switch (o) {
    case flow_outcome::relayed: return "relayed";
    case flow_outcome::answered: return "answered";
    case flow_outcome::failed: return "failed";
    case flow_outcome::cut: return "cut";
  }
  return "failed";
}

request_status filter::on_request(request_state&, const request_resume&) { return request_status::proceed; }
response_head_status filter::on_response_head(response_head_state&) { return response_head_status::proceed; }
event_status filter::on_event(event_state&) { return event_status::pass; }
event_status filter::on_stream_end(stream_end_state&) { return event_status::pass; }
void filter::on_response_body(response_body_state&) {}
void filter::on_flow_end(const flow_summary&) noexcept {}

std::vector<filter_factory> default_filter_chain(const route_config&) {
  return {[](const flow_info&) -> std::unique_ptr<filter> { return std::make_unique<pass_through_filter>(); }};
}

}  // namespace customs::daemon
