#pragma once
// customsctl's command groups. Each takes the arguments after its group name and
// returns the process exit code: 0 ok, 1 the check failed, 2 usage or I/O error.
#include <span>
#include <string_view>

namespace customs::tools {
// All of customsctl: args are argv[1..].
[[nodiscard]] int run_customsctl(std::span<const std::string_view> args);
[[nodiscard]] int run_rules(std::span<const std::string_view> args);
[[nodiscard]] int run_keys(std::span<const std::string_view> args);
[[nodiscard]] int run_audit(std::span<const std::string_view> args);
[[nodiscard]] int run_ca(std::span<const std::string_view> args);
[[nodiscard]] int run_proxy_user(std::span<const std::string_view> args);
}  // namespace customs::tools
