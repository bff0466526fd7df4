// Names of the policy enums as they appear in rule files, audit records and
// customsctl output.
#include "policy/policy.hpp"

namespace customs::policy {

std::string_view to_string(direction d) noexcept {
  return d == direction::request ? "request" : "response";
}

std::string_view to_string(action a) noexcept {
  switch (a) {
    case action::allow: return "allow";
    case action::tag: return "tag";
    case action::redact: return "redact";
    case action::block: return "block";
  }
  return "allow";
}

std::optional<direction> parse_direction(std::string_view s) noexcept {
  if (s == "request") return direction::request;
  if (s == "response") return direction::response;
  return std::nullopt;
}

std::optional<action> parse_action(std::string_view s) noexcept {
  if (s == "allow") return action::allow;
  if (s == "tag") return action::tag;
  if (s == "redact") return action::redact;
  if (s == "block") return action::block;
  return std::nullopt;
}

}  // namespace customs::policy
