#pragma once
// Check-digit and structure validators for detector matches (private to policy/).
// Each takes the matched text as it appears (separators, full-width digits) and
// decides on its letters and digits only (text::alnum_upper). Pure functions of
// the match: the streaming scanner relies on that.

#include <cstdint>
#include <optional>
#include <string_view>

namespace customs::policy {

enum class validator : std::uint8_t {
  luhn,        // ISO/IEC 7812 Luhn check; an all-zero number is rejected
  gb11643,     // PRC resident ID: 18 chars, ISO 7064 MOD 11-2 check, birth date, province
  iban_mod97,  // ISO 13616: known country, its length, ISO 7064 MOD 97-10 == 1
  us_ssn,      // area not 000/666/900-999, group not 00, serial not 0000
  es_dni,      // Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter)
};

[[nodiscard]] std::optional<validator> parse_validator(std::string_view name) noexcept;
[[nodiscard]] std::string_view to_string(validator v) noexcept;

// True when the match passes the validator.
[[nodiscard]] bool validate(validator v, std::string_view match);

// The individual checks, on the normalized form (ASCII, upper case, no separators);
// exposed for unit tests.
[[nodiscard]] bool luhn_ok(std::string_view digits) noexcept;
[[nodiscard]] bool gb11643_ok(std::string_view id) noexcept;
[[nodiscard]] bool iban_ok(std::string_view iban) noexcept;
[[nodiscard]] bool us_ssn_ok(std::string_view digits) noexcept;
[[nodiscard]] bool es_dni_ok(std::string_view id) noexcept;
// The IBAN length registered for a country (ISO 13616 registry), 0 when unknown.
[[nodiscard]] int iban_length(std::string_view country) noexcept;

}  // namespace customs::policy
