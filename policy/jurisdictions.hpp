#pragma once
// ISO 3166-1 alpha-2 country codes (private to policy/).
#include <string_view>

namespace customs::policy {
// True for the officially assigned ISO 3166-1 alpha-2 codes, plus XK (Kosovo,
// user-assigned but used by the European Commission and most registries).
[[nodiscard]] bool is_country_code(std::string_view code) noexcept;
}  // namespace customs::policy
