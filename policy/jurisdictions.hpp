#pragma once
// ISO 3166-1 alpha-2 country codes: the one check of a jurisdiction code, used
// by the rule loader and by customsd's config and source resolution.
#include <string_view>

namespace customs::policy {
// True for the officially assigned ISO 3166-1 alpha-2 codes, plus XK (Kosovo,
// user-assigned but used by the European Commission and most registries).
[[nodiscard]] bool is_country_code(std::string_view code) noexcept;

// For a code that is not one, the code that was most likely meant, else empty:
// the exceptionally reserved UK (GB) and EL (GR), and lower-case spellings.
[[nodiscard]] std::string_view country_code_hint(std::string_view code) noexcept;
}  // namespace customs::policy
