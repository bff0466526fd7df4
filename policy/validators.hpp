#pragma once
// The built-in validators for detector matches (private to policy/). Each
// decides on the normalized form of a match (text::alnum_upper: letters and
// digits, ASCII, letters upper case). Pure functions of the match: the
// streaming scanner relies on that. Where a validator is a check-digit scheme
// it is one (checksum.hpp), the same engine that runs the schemes rule files
// declare.

#include <cstdint>
#include <optional>
#include <string_view>

#include "policy/checksum.hpp"

namespace customs::policy {

enum class validator : std::uint8_t {
  luhn,        // ISO/IEC 7812 Luhn check; an all-zero number is rejected
  gb11643,     // PRC resident ID: 18 chars, ISO 7064 MOD 11-2 check, birth date, province
  iban_mod97,  // ISO 13616: known country, its length, ISO 7064 MOD 97-10 == 1
  iban,        // iban_mod97 plus the country's BBAN structure and national check digits
  us_ssn,      // area/group/serial rules and the publicly voided numbers
  es_dni,      // Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter)
};

[[nodiscard]] std::optional<validator> parse_validator(std::string_view name) noexcept;
[[nodiscard]] std::string_view to_string(validator v) noexcept;
// The built-in names, comma-separated, for messages.
[[nodiscard]] std::string_view validator_names() noexcept;

// True when the normalized form passes the validator.
[[nodiscard]] bool validate_normalized(validator v, std::string_view normalized);
// True when the match (as it appears in the text) passes the validator.
[[nodiscard]] bool validate(validator v, std::string_view match);

// The individual checks, on the normalized form; exposed for unit tests.
[[nodiscard]] bool luhn_ok(std::string_view digits) noexcept;
[[nodiscard]] bool gb11643_ok(std::string_view id);
[[nodiscard]] bool iban_ok(std::string_view iban) noexcept;          // length + mod 97
[[nodiscard]] bool iban_structure_ok(std::string_view iban) noexcept;  // + BBAN structure + national check
[[nodiscard]] bool us_ssn_ok(std::string_view digits) noexcept;
[[nodiscard]] bool es_dni_ok(std::string_view id);
// The IBAN length registered for a country (ISO 13616 registry), 0 when unknown.
[[nodiscard]] int iban_length(std::string_view country) noexcept;
// The BBAN format of a country in the registry's notation ("8!n10!n"), "" when unknown.
[[nodiscard]] std::string_view iban_bban_format(std::string_view country) noexcept;
// Whether the country's BBAN carries national check digits that iban_structure_ok verifies.
[[nodiscard]] bool iban_national_check(std::string_view country) noexcept;
// The national check of a BBAN alone (true for countries without one).
[[nodiscard]] bool iban_bban_check_ok(std::string_view country, std::string_view bban) noexcept;

// The built-in schemes (checksum.hpp), for tests and documentation.
[[nodiscard]] const check_scheme& gb11643_scheme();
[[nodiscard]] const check_scheme& es_dni_scheme();

}  // namespace customs::policy
