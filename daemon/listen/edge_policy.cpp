#include "daemon/listen/edge_policy.hpp"

namespace customs::daemon {

std::string_view to_string(edge_event e) noexcept {
  switch (e) {
    case edge_event::refused: return "refused";
    case edge_event::tunnel: return "tunnel";
    case edge_event::untrusted: return "untrusted";
  }
  return "refused";
}

edge_decision edge_policy::decide(const edge_target&) const noexcept { return {}; }

void edge_policy::record(const edge_record&) const noexcept {}

std::shared_ptr<const edge_policy> default_edge_policy() {
  static const auto p = std::make_shared<const edge_policy>();
  return p;
}

}  // namespace customs::daemon
