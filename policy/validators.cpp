#include "policy/validators.hpp"

#include <algorithm>
#include <array>
#include <string>

#include "policy/text.hpp"

namespace customs::policy {

std::optional<validator> parse_validator(std::string_view name) noexcept {
  if (name == "luhn") return validator::luhn;
  if (name == "gb11643") return validator::gb11643;
  if (name == "iban_mod97") return validator::iban_mod97;
  if (name == "us_ssn") return validator::us_ssn;
  if (name == "es_dni") return validator::es_dni;
  return std::nullopt;
}

std::string_view to_string(validator v) noexcept {
  switch (v) {
    case validator::luhn: return "luhn";
    case validator::gb11643: return "gb11643";
    case validator::iban_mod97: return "iban_mod97";
    case validator::us_ssn: return "us_ssn";
    case validator::es_dni: return "es_dni";
  }
  return "luhn";
}

namespace {

bool all_digits(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int number(std::string_view s) noexcept {
  int n = 0;
  for (const char c : s) n = n * 10 + (c - '0');
  return n;
}

bool leap(int y) noexcept { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool real_date(int y, int m, int d) noexcept {
  static constexpr std::array<int, 12> days = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  const int last = days[static_cast<std::size_t>(m - 1)] + (m == 2 && leap(y) ? 1 : 0);
  return d <= last;
}

// Province-level prefixes of GB/T 2260 used in resident ID numbers, plus 71
// (Taiwan), 81/82 (Hong Kong, Macao) and 83 (Taiwan residence permits, GB 11643).
bool known_province(int p) noexcept {
  static constexpr std::array<int, 35> codes = {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34,
                                                35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
                                                53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83};
  return std::find(codes.begin(), codes.end(), p) != codes.end();
}

struct iban_country {
  char code[3];
  int length;
};
// ISO 13616 IBAN registry (SWIFT), country code and total IBAN length.
constexpr iban_country iban_countries[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16},
    {"BG", 22}, {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22},
    {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20},
    {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22},
    {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28},
    {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30},
    {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21},
    {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20}, {"MR", 27},
    {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PK", 24},
    {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"RU", 33},
    {"SA", 24}, {"SC", 31}, {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27},
    {"SO", 23}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29},
    {"VA", 22}, {"VG", 24}, {"XK", 20}, {"YE", 30},
};

}  // namespace

bool luhn_ok(std::string_view digits) noexcept {
  if (digits.size() < 2 || !all_digits(digits)) return false;
  // A number of zeros passes the checksum trivially and is never issued.
  if (digits.find_first_not_of('0') == std::string_view::npos) return false;
  int sum = 0;
  bool twice = false;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    int d = *it - '0';
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

bool gb11643_ok(std::string_view id) noexcept {
  if (id.size() != 18 || !all_digits(id.substr(0, 17))) return false;
  const char check = id[17];
  if (!(check == 'X' || (check >= '0' && check <= '9'))) return false;
  if (!known_province(number(id.substr(0, 2)))) return false;
  const int year = number(id.substr(6, 4));
  if (year < 1900 || year > 2099) return false;
  if (!real_date(year, number(id.substr(10, 2)), number(id.substr(12, 2)))) return false;
  // ISO 7064 MOD 11-2: weights 2^(17-i) mod 11.
  static constexpr std::array<int, 17> weights = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (std::size_t i = 0; i < 17; ++i) sum += (id[i] - '0') * weights[i];
  static constexpr std::string_view checks = "10X98765432";
  return checks[static_cast<std::size_t>(sum % 11)] == check;
}

int iban_length(std::string_view country) noexcept {
  for (const auto& c : iban_countries)
    if (country == c.code) return c.length;
  return 0;
}

bool iban_ok(std::string_view iban) noexcept {
  if (iban.size() < 5) return false;
  const int len = iban_length(iban.substr(0, 2));
  if (len == 0 || static_cast<int>(iban.size()) != len) return false;
  if (!all_digits(iban.substr(2, 2))) return false;
  // Move the first four characters to the end, letters become 10..35, mod 97.
  int rem = 0;
  auto feed = [&rem](char c) {
    if (c >= '0' && c <= '9') {
      rem = (rem * 10 + (c - '0')) % 97;
    } else if (c >= 'A' && c <= 'Z') {
      const int v = c - 'A' + 10;
      rem = (rem * 100 + v) % 97;
    } else {
      rem = -1;
    }
  };
  for (std::size_t i = 4; i < iban.size() && rem >= 0; ++i) feed(iban[i]);
  for (std::size_t i = 0; i < 4 && rem >= 0; ++i) feed(iban[i]);
  return rem == 1;
}

bool us_ssn_ok(std::string_view d) noexcept {
  if (d.size() != 9 || !all_digits(d)) return false;
  const int area = number(d.substr(0, 3));
  const int group = number(d.substr(3, 2));
  const int serial = number(d.substr(5, 4));
  // Since SSN randomization (2011) areas 734-749 and 773-899 are issued too; only
  // 000, 666 and 900-999 are never valid.
  if (area == 0 || area == 666 || area >= 900) return false;
  return group != 0 && serial != 0;
}

bool es_dni_ok(std::string_view id) noexcept {
  if (id.size() != 9) return false;
  std::string digits(id.substr(0, 8));
  // NIE: X, Y, Z stand for 0, 1, 2.
  if (digits[0] == 'X') digits[0] = '0';
  else if (digits[0] == 'Y') digits[0] = '1';
  else if (digits[0] == 'Z') digits[0] = '2';
  if (!all_digits(digits)) return false;
  static constexpr std::string_view letters = "TRWAGMYFPDXBNJZSQVHLCKE";
  return letters[static_cast<std::size_t>(number(digits) % 23)] == id[8];
}

bool validate(validator v, std::string_view match) {
  const std::string s = text::alnum_upper(match);
  switch (v) {
    case validator::luhn: return luhn_ok(s);
    case validator::gb11643: return gb11643_ok(s);
    case validator::iban_mod97: return iban_ok(s);
    case validator::us_ssn: return us_ssn_ok(s);
    case validator::es_dni: return es_dni_ok(s);
  }
  return false;
}

}  // namespace customs::policy
