#pragma once
// Check-digit schemes (private to policy/): the declarative form of a national
// identifier's structure and check digits, as rule files declare it under
// `check_digits:` (docs/rules.md) and as the built-in validators use it.
//
// A scheme judges the NORMALIZED form of a match: its letters and digits only,
// ASCII, letters upper case (text::alnum_upper). In order:
//   1. length      one of `lengths` (empty: any)
//   2. format      the whole form matches the `format` regex (RE2, optional)
//   3. prefixes    it starts with one of the `prefixes` ranges, with one of that
//                  range's lengths (issuer ranges of cards, region codes)
//   4. date        the digits at `date.at` are a real calendar date
//   5. substitute  fixed replacements at positions (French NIR: 2A -> 19)
//   6. rotate      the first `rotate` characters move to the end (ISO 13616)
//   7. pad         virtual characters of value `pad.value` on the left, up to
//                  `pad.length` characters (Hong Kong identity card)
//   8. the check:
//      weighted       each character becomes a number (`values`, or per
//                     position `position_values`, cycled), optionally expanded
//                     to its decimal digits; the numbers are multiplied by
//                     `weights` (cycled) or by radix^k mod modulus (`radix`,
//                     k counted from the right, ISO 7064 pure systems) and
//                     summed modulo `modulus`. With `sum_to`, every character
//                     counts and the sum must equal it; with `check_table`, the
//                     last characters are the check and must equal
//                     check_table[sum of the others].
//      luhn           ISO/IEC 7812 Luhn (digits; all zeros rejected)
//      verhoeff       Verhoeff's dihedral-group check (digits)
//      damm           Damm's quasigroup check (digits)
//      iso7064_hybrid ISO 7064 hybrid system MOD (M+1),M: M = `modulus`
//                     (10 for MOD 11,10; 36 for MOD 37,36), values as above
// Positions count from the left, or from the right with `from_right`.
// A pure function of the normalized form; never throws.

#include <re2/re2.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace customs::policy {

struct check_scheme {
  enum class algo : std::uint8_t { weighted, luhn, verhoeff, damm, iso7064_hybrid, none };
  // Value of each ASCII character; -1: not allowed there.
  using value_map = std::array<std::int16_t, 128>;

  struct prefix_range {
    std::string lo;  // digits or letters, same length as hi
    std::string hi;
    std::vector<std::uint16_t> lengths;  // sorted; empty: any length
  };
  struct substitution {
    std::size_t at = 0;
    std::string from;
    std::string to;  // same length as from
  };
  struct date_rule {
    enum class form : std::uint8_t { yyyymmdd, yymmdd, ddmmyyyy, ddmmyy, yyyymm, yymm };
    std::size_t at = 0;
    form fmt = form::yyyymmdd;
    int min_year = 0;  // four-digit forms only; 0: no bound
    int max_year = 0;
    std::vector<int> month_offsets = {0};  // accepted: month - offset in 1..12
    std::vector<int> day_offsets = {0};    // accepted: day - offset a real day
  };

  std::string id;
  std::vector<std::uint16_t> lengths;  // sorted; empty: any
  std::string format;                  // RE2 syntax; empty: none
  std::shared_ptr<const RE2> format_re;
  std::vector<prefix_range> prefixes;  // empty: any
  std::optional<date_rule> date;
  std::vector<substitution> substitutions;
  std::size_t rotate = 0;
  std::size_t pad_length = 0;
  std::int64_t pad_value = 0;

  algo algorithm = algo::weighted;
  value_map values{};                     // see default_values()
  std::vector<value_map> position_values; // cycled by position; overrides values
  bool expand_decimal = false;
  bool from_right = false;
  std::vector<std::int64_t> weights;  // cycled
  std::int64_t radix = 0;             // instead of weights
  std::int64_t modulus = 0;
  std::optional<std::int64_t> sum_to;
  std::vector<std::string> check_table;  // by remainder; entries of equal length

  check_scheme() { values = default_values(); }

  // Digits 0-9 are 0-9, letters A-Z are 10-35, everything else not allowed.
  [[nodiscard]] static value_map default_values() noexcept;
  // Values from an alphabet: its i-th character is worth i.
  [[nodiscard]] static value_map alphabet_values(std::string_view alphabet) noexcept;

  // True when the normalized form passes every part of the scheme.
  [[nodiscard]] bool validate(std::string_view normalized) const;
  // The structural parts alone (length, format, prefixes, date), for messages.
  [[nodiscard]] bool structure_ok(std::string_view normalized) const;
  // Checks the scheme's own consistency; returns an error message or "".
  [[nodiscard]] std::string consistency_error() const;
};

[[nodiscard]] std::string_view to_string(check_scheme::algo a) noexcept;
[[nodiscard]] std::optional<check_scheme::algo> parse_algo(std::string_view s) noexcept;
[[nodiscard]] std::optional<check_scheme::date_rule::form> parse_date_form(std::string_view s) noexcept;
[[nodiscard]] std::string_view to_string(check_scheme::date_rule::form f) noexcept;

// The check algorithms on their own (digits as ASCII), for the validators and tests.
[[nodiscard]] bool luhn_valid(std::string_view digits) noexcept;
[[nodiscard]] bool verhoeff_valid(std::string_view digits) noexcept;
[[nodiscard]] bool damm_valid(std::string_view digits) noexcept;
// The digit that makes digits + it valid, for generators and tests.
[[nodiscard]] char verhoeff_check_digit(std::string_view digits) noexcept;
[[nodiscard]] char damm_check_digit(std::string_view digits) noexcept;
// Whether y-m-d is a calendar date (Gregorian).
[[nodiscard]] bool real_date(int y, int m, int d) noexcept;

}  // namespace customs::policy
