#include "policy/validators.hpp"

#include <algorithm>
#include <array>
#include <string>

#include "policy/text.hpp"

namespace customs::policy {

std::optional<validator> parse_validator(std::string_view name) noexcept {
  for (const auto v : {validator::luhn, validator::gb11643, validator::iban_mod97, validator::iban, validator::us_ssn,
                       validator::es_dni})
    if (to_string(v) == name) return v;
  return std::nullopt;
}

std::string_view to_string(validator v) noexcept {
  switch (v) {
    case validator::luhn: return "luhn";
    case validator::gb11643: return "gb11643";
    case validator::iban_mod97: return "iban_mod97";
    case validator::iban: return "iban";
    case validator::us_ssn: return "us_ssn";
    case validator::es_dni: return "es_dni";
  }
  return "luhn";
}

std::string_view validator_names() noexcept { return "luhn, gb11643, iban_mod97, iban, us_ssn, es_dni"; }

namespace {

bool all_digits(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int number(std::string_view s) noexcept {
  int n = 0;
  for (const char c : s) n = n * 10 + (c - '0');
  return n;
}

check_scheme make_gb11643() {
  check_scheme s;
  s.id = "gb11643";
  s.lengths = {18};
  s.format_re = std::make_shared<RE2>("[0-9]{17}[0-9X]", RE2::Quiet);
  // Province-level prefixes of GB/T 2260 used in resident ID numbers, plus 71
  // (Taiwan), 81/82 (Hong Kong, Macao) and 83 (Taiwan residence permits, GB 11643).
  for (const char* p : {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34",
                        "35", "36", "37", "41", "42", "43", "44", "45", "46", "50", "51", "52",
                        "53", "54", "61", "62", "63", "64", "65", "71", "81", "82", "83"})
    s.prefixes.push_back({p, p, {}});
  check_scheme::date_rule d;
  d.at = 6;
  d.fmt = check_scheme::date_rule::form::yyyymmdd;
  d.min_year = 1900;
  d.max_year = 2099;
  s.date = d;
  // ISO 7064 MOD 11-2: weights 2^(17-i) mod 11; the check character for each
  // remainder of the weighted sum.
  s.weights = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  s.modulus = 11;
  for (const char c : std::string_view("10X98765432")) s.check_table.emplace_back(1, c);
  return s;
}

check_scheme make_es_dni() {
  check_scheme s;
  s.id = "es_dni";
  s.lengths = {9};
  s.format_re = std::make_shared<RE2>("[0-9XYZ][0-9]{7}[A-Z]", RE2::Quiet);
  // NIE: X, Y, Z stand for 0, 1, 2; the check letter of the 8-digit number mod 23.
  s.values = check_scheme::default_values();
  s.values['X'] = 0;
  s.values['Y'] = 1;
  s.values['Z'] = 2;
  s.radix = 10;
  s.modulus = 23;
  for (const char c : std::string_view("TRWAGMYFPDXBNJZSQVHLCKE")) s.check_table.emplace_back(1, c);
  return s;
}

}  // namespace

const check_scheme& gb11643_scheme() {
  static const check_scheme s = make_gb11643();
  return s;
}

const check_scheme& es_dni_scheme() {
  static const check_scheme s = make_es_dni();
  return s;
}

bool luhn_ok(std::string_view digits) noexcept { return luhn_valid(digits); }

bool gb11643_ok(std::string_view id) { return gb11643_scheme().validate(id); }

bool es_dni_ok(std::string_view id) { return es_dni_scheme().validate(id); }

bool us_ssn_ok(std::string_view d) noexcept {
  if (d.size() != 9 || !all_digits(d)) return false;
  const int area = number(d.substr(0, 3));
  const int group = number(d.substr(3, 2));
  const int serial = number(d.substr(5, 4));
  // Since SSN randomization (2011) areas 734-749 and 773-899 are issued too; only
  // 000, 666 and 900-999 are never valid.
  if (area == 0 || area == 666 || area >= 900) return false;
  if (group == 0 || serial == 0) return false;
  // Publicly voided: 078-05-1120 (printed on wallet inserts in 1938) and
  // 219-09-9999 (an advertising sample); the advertising range 987-65-4320 to
  // 4329 is in area 987, rejected above.
  if (d == "078051120" || d == "219099999") return false;
  return true;
}

bool validate_normalized(validator v, std::string_view s) {
  switch (v) {
    case validator::luhn: return luhn_ok(s);
    case validator::gb11643: return gb11643_ok(s);
    case validator::iban_mod97: return iban_ok(s);
    case validator::iban: return iban_structure_ok(s);
    case validator::us_ssn: return us_ssn_ok(s);
    case validator::es_dni: return es_dni_ok(s);
  }
  return false;
}

bool validate(validator v, std::string_view match) { return validate_normalized(v, text::alnum_upper(match)); }

}  // namespace customs::policy
