// IBAN (ISO 13616): the registry's countries with their IBAN length and BBAN
// structure, and the national check digits inside the BBAN where a country
// defines them. Data from the SWIFT IBAN registry (structure in its notation:
// n digits, a upper-case letters, c letters or digits, "!" fixed length).
//
// National checks verified here: BE, BA, CZ, ES, FI, FR, HR, HU, IT, MC, ME, MK,
// NO, PL, PT, RS, SI, SK, SM, TL. Other countries (NL and DE among them) are
// checked for structure only: their account numbers carry no check digit that
// is the same for every bank.
#include <algorithm>
#include <array>
#include <string>

#include "policy/validators.hpp"

namespace customs::policy {

namespace {

enum class national : std::uint8_t {
  none,
  be,        // last 2 digits = first 10 mod 97 (0 -> 97)
  es,        // two control digits, weights 1 2 4 8 5 10 9 7 3 6 mod 11
  fr,        // RIB key: the 23 characters (letters as RIB digits) = 0 mod 97 (FR, MC)
  it,        // CIN letter over the 22 characters after it, odd/even tables mod 26 (IT, SM)
  no,        // weights 5 4 3 2 7 6 5 4 3 2 mod 11
  mod97_1,   // the BBAN (letters as 10..35) = 1 mod 97: ISO 7064 MOD 97-10 (PT, RS, ME, SI, BA, MK, TL)
  cz,        // prefix weights 10 5 8 4 2 1, account 6 3 7 9 10 5 8 4 2 1, each = 0 mod 11 (CZ, SK)
  hr,        // bank code and account each ISO 7064 MOD 11,10
  hu,        // weights 9 7 3 1 over the first 8 and the last 16 digits, each = 0 mod 10
  pl,        // sort code: weights 3 9 7 1 3 9 7, check (10 - sum mod 10) mod 10
  fi,        // Luhn over the 14 digits
};

struct country {
  char code[3];
  std::uint8_t length;
  const char* bban;
  national check;
};

constexpr country registry[] = {
    {"AD", 24, "4!n4!n12!c", national::none},      {"AE", 23, "3!n16!n", national::none},
    {"AL", 28, "8!n16!c", national::none},         {"AT", 20, "5!n11!n", national::none},
    {"AZ", 28, "4!a20!c", national::none},         {"BA", 20, "3!n3!n8!n2!n", national::mod97_1},
    {"BE", 16, "3!n7!n2!n", national::be},         {"BG", 22, "4!a4!n2!n8!c", national::none},
    {"BH", 22, "4!a14!c", national::none},         {"BI", 27, "5!n5!n11!n2!n", national::none},
    {"BR", 29, "8!n5!n10!n1!a1!c", national::none}, {"BY", 28, "4!c4!n16!c", national::none},
    {"CH", 21, "5!n12!c", national::none},         {"CR", 22, "4!n14!n", national::none},
    {"CY", 28, "3!n5!n16!c", national::none},      {"CZ", 24, "4!n6!n10!n", national::cz},
    {"DE", 22, "8!n10!n", national::none},         {"DJ", 27, "5!n5!n11!n2!n", national::none},
    {"DK", 18, "4!n9!n1!n", national::none},       {"DO", 28, "4!c20!n", national::none},
    {"EE", 20, "2!n2!n11!n1!n", national::none},   {"EG", 29, "4!n4!n17!n", national::none},
    {"ES", 24, "4!n4!n1!n1!n10!n", national::es},  {"FI", 18, "3!n11!n", national::fi},
    {"FK", 18, "2!a12!n", national::none},         {"FO", 18, "4!n9!n1!n", national::none},
    {"FR", 27, "5!n5!n11!c2!n", national::fr},     {"GB", 22, "4!a6!n8!n", national::none},
    {"GE", 22, "2!a16!n", national::none},         {"GI", 23, "4!a15!c", national::none},
    {"GL", 18, "4!n9!n1!n", national::none},       {"GR", 27, "3!n4!n16!c", national::none},
    {"GT", 28, "4!c20!c", national::none},         {"HR", 21, "7!n10!n", national::hr},
    {"HU", 28, "3!n4!n1!n15!n1!n", national::hu},  {"IE", 22, "4!a6!n8!n", national::none},
    {"IL", 23, "3!n3!n13!n", national::none},      {"IQ", 23, "4!a3!n12!n", national::none},
    {"IS", 26, "4!n2!n6!n10!n", national::none},   {"IT", 27, "1!a5!n5!n12!c", national::it},
    {"JO", 30, "4!a4!n18!c", national::none},      {"KW", 30, "4!a22!c", national::none},
    {"KZ", 20, "3!n13!c", national::none},         {"LB", 28, "4!n20!c", national::none},
    {"LC", 32, "4!a24!c", national::none},         {"LI", 21, "5!n12!c", national::none},
    {"LT", 20, "5!n11!n", national::none},         {"LU", 20, "3!n13!c", national::none},
    {"LV", 21, "4!a13!c", national::none},         {"LY", 25, "3!n3!n15!n", national::none},
    {"MC", 27, "5!n5!n11!c2!n", national::fr},     {"MD", 24, "2!c18!c", national::none},
    {"ME", 22, "3!n13!n2!n", national::mod97_1},   {"MK", 19, "3!n10!c2!n", national::mod97_1},
    {"MN", 20, "4!n12!n", national::none},         {"MR", 27, "5!n5!n11!n2!n", national::none},
    {"MT", 31, "4!a5!n18!c", national::none},      {"MU", 30, "4!a2!n2!n12!n3!n3!a", national::none},
    {"NI", 28, "4!a20!n", national::none},         {"NL", 18, "4!a10!n", national::none},
    {"NO", 15, "4!n6!n1!n", national::no},         {"OM", 23, "3!n16!c", national::none},
    {"PK", 24, "4!a16!c", national::none},         {"PL", 28, "8!n16!n", national::pl},
    {"PS", 29, "4!a21!c", national::none},         {"PT", 25, "4!n4!n11!n2!n", national::mod97_1},
    {"QA", 29, "4!a21!c", national::none},         {"RO", 24, "4!a16!c", national::none},
    {"RS", 22, "3!n13!n2!n", national::mod97_1},   {"RU", 33, "9!n5!n15!c", national::none},
    {"SA", 24, "2!n18!c", national::none},         {"SC", 31, "4!a2!n2!n16!n3!a", national::none},
    {"SD", 18, "2!n12!n", national::none},         {"SE", 24, "3!n16!n1!n", national::none},
    {"SI", 19, "5!n8!n2!n", national::mod97_1},    {"SK", 24, "4!n6!n10!n", national::cz},
    {"SM", 27, "1!a5!n5!n12!c", national::it},     {"SO", 23, "4!n3!n12!n", national::none},
    {"ST", 25, "4!n4!n11!n2!n", national::none},   {"SV", 28, "4!a20!n", national::none},
    {"TL", 23, "3!n14!n2!n", national::mod97_1},   {"TN", 24, "2!n3!n13!n2!n", national::none},
    {"TR", 26, "5!n1!n16!c", national::none},      {"UA", 29, "6!n19!c", national::none},
    {"VA", 22, "3!n15!n", national::none},         {"VG", 24, "4!a16!n", national::none},
    {"XK", 20, "4!n10!n2!n", national::none},      {"YE", 30, "4!a4!n18!c", national::none},
};

const country* find(std::string_view code) noexcept {
  for (const auto& c : registry)
    if (code == c.code) return &c;
  return nullptr;
}

bool digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool upper(char c) noexcept { return c >= 'A' && c <= 'Z'; }
bool digits(std::string_view s) noexcept { return std::all_of(s.begin(), s.end(), digit); }

// Whether bban has the structure fmt ("4!n6!n8!n").
bool structure(std::string_view fmt, std::string_view bban) noexcept {
  std::size_t pos = 0;
  for (std::size_t i = 0; i < fmt.size();) {
    std::size_t n = 0;
    while (i < fmt.size() && digit(fmt[i])) n = n * 10 + static_cast<std::size_t>(fmt[i++] - '0');
    if (i < fmt.size() && fmt[i] == '!') ++i;
    if (i >= fmt.size() || pos + n > bban.size()) return false;
    const char kind = fmt[i++];
    for (std::size_t k = 0; k < n; ++k) {
      const char c = bban[pos + k];
      const bool ok = kind == 'n' ? digit(c) : kind == 'a' ? upper(c) : (digit(c) || upper(c));
      if (!ok) return false;
    }
    pos += n;
  }
  return pos == bban.size();
}

int weighted(std::string_view d, std::initializer_list<int> w, bool cycle = false) noexcept {
  int sum = 0;
  std::size_t i = 0;
  for (const char c : d) {
    const auto idx = cycle ? i % w.size() : i;
    if (idx >= w.size()) break;
    sum += (c - '0') * *(w.begin() + static_cast<std::ptrdiff_t>(idx));
    ++i;
  }
  return sum;
}

int mod97(std::string_view s, int (*value)(char)) noexcept {
  int r = 0;
  for (const char c : s) {
    const int v = value(c);
    r = v < 10 ? (r * 10 + v) % 97 : (r * 100 + v) % 97;
  }
  return r;
}

int iso_value(char c) noexcept { return digit(c) ? c - '0' : c - 'A' + 10; }
// French RIB: letters count as digits, A and J as 1, B, K, S as 2, ...
int rib_value(char c) noexcept {
  if (digit(c)) return c - '0';
  static constexpr std::string_view map = "12345678912345678923456789";  // A..Z
  return map[static_cast<std::size_t>(c - 'A')] - '0';
}

bool hybrid_11_10(std::string_view d) noexcept {
  int p = 10, s = 0;
  for (const char c : d) {
    s = (p + (c - '0')) % 10;
    if (s == 0) s = 10;
    p = (2 * s) % 11;
  }
  return s == 1;
}

bool es_control(std::string_view ten, char expected) noexcept {
  const int v = 11 - weighted(ten, {1, 2, 4, 8, 5, 10, 9, 7, 3, 6}) % 11;
  const int c = v == 11 ? 0 : v == 10 ? 1 : v;
  return expected - '0' == c;
}

bool it_cin(std::string_view bban) noexcept {
  // Odd positions (1st, 3rd, ...) of the 22 characters after the CIN.
  static constexpr int odd[36] = {1,  0,  5,  7,  9,  13, 15, 17, 19, 21,                  // 0-9
                                  1,  0,  5,  7,  9,  13, 15, 17, 19, 21, 2,  4,  18, 20,  // A-N
                                  11, 3,  6,  8,  12, 14, 16, 10, 22, 25, 24, 23};         // O-Z
  int sum = 0;
  for (std::size_t i = 1; i < bban.size(); ++i) {
    const char c = bban[i];
    const int idx = digit(c) ? c - '0' : c - 'A' + 10;
    const bool is_odd = (i - 1) % 2 == 0;
    sum += is_odd ? odd[idx] : (digit(c) ? c - '0' : c - 'A');
  }
  return bban[0] == static_cast<char>('A' + sum % 26);
}

bool national_ok(national n, std::string_view b) noexcept {
  switch (n) {
    case national::none: return true;
    case national::be: {
      int r = 0;
      for (const char c : b.substr(0, 10)) r = (r * 10 + (c - '0')) % 97;
      if (r == 0) r = 97;
      return r == (b[10] - '0') * 10 + (b[11] - '0');
    }
    case national::es:
      return es_control("00" + std::string(b.substr(0, 8)), b[8]) && es_control(b.substr(10, 10), b[9]);
    case national::fr: return mod97(b, rib_value) == 0;
    case national::it: return it_cin(b);
    case national::no: {
      const int v = 11 - weighted(b.substr(0, 10), {5, 4, 3, 2, 7, 6, 5, 4, 3, 2}) % 11;
      if (v == 10) return false;  // never issued
      return (v == 11 ? 0 : v) == b[10] - '0';
    }
    case national::mod97_1: return mod97(b, iso_value) == 1;
    case national::cz:
      return weighted(b.substr(4, 6), {10, 5, 8, 4, 2, 1}) % 11 == 0 &&
             weighted(b.substr(10, 10), {6, 3, 7, 9, 10, 5, 8, 4, 2, 1}) % 11 == 0;
    case national::hr: return hybrid_11_10(b.substr(0, 7)) && hybrid_11_10(b.substr(7, 10));
    case national::hu:
      return weighted(b.substr(0, 8), {9, 7, 3, 1}, true) % 10 == 0 &&
             weighted(b.substr(8, 16), {9, 7, 3, 1}, true) % 10 == 0;
    case national::pl: return (10 - weighted(b.substr(0, 7), {3, 9, 7, 1, 3, 9, 7}) % 10) % 10 == b[7] - '0';
    case national::fi: return luhn_valid(b);
  }
  return true;
}

}  // namespace

int iban_length(std::string_view country) noexcept {
  const auto* c = find(country);
  return c ? c->length : 0;
}

std::string_view iban_bban_format(std::string_view country) noexcept {
  const auto* c = find(country);
  return c ? c->bban : "";
}

bool iban_national_check(std::string_view country) noexcept {
  const auto* c = find(country);
  return c != nullptr && c->check != national::none;
}

bool iban_bban_check_ok(std::string_view country, std::string_view bban) noexcept {
  const auto* c = find(country);
  if (c == nullptr || !structure(c->bban, bban)) return false;
  return national_ok(c->check, bban);
}

bool iban_ok(std::string_view iban) noexcept {
  if (iban.size() < 5) return false;
  const int len = iban_length(iban.substr(0, 2));
  if (len == 0 || static_cast<int>(iban.size()) != len) return false;
  if (!digits(iban.substr(2, 2))) return false;
  // Move the first four characters to the end, letters become 10..35, mod 97.
  int rem = 0;
  auto feed = [&rem](char c) {
    if (digit(c)) rem = (rem * 10 + (c - '0')) % 97;
    else if (upper(c)) rem = (rem * 100 + (c - 'A' + 10)) % 97;
    else rem = -1;
  };
  for (std::size_t i = 4; i < iban.size() && rem >= 0; ++i) feed(iban[i]);
  for (std::size_t i = 0; i < 4 && rem >= 0; ++i) feed(iban[i]);
  return rem == 1;
}

bool iban_structure_ok(std::string_view iban) noexcept {
  if (!iban_ok(iban)) return false;
  return iban_bban_check_ok(iban.substr(0, 2), iban.substr(4));
}

}  // namespace customs::policy
