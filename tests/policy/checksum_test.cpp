// The check-digit scheme engine (policy/checksum.hpp): each algorithm against
// numbers built here from its definition, and the error classes each detects.
#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "policy/checksum.hpp"
#include "policy/validators.hpp"

using namespace customs::policy;

namespace {

std::string random_digits(std::mt19937& rng, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s.push_back(static_cast<char>('0' + rng() % 10));
  return s;
}

// Every single-digit substitution of a valid number.
template <class Valid>
std::size_t undetected_substitutions(const std::string& n, Valid&& valid) {
  std::size_t missed = 0;
  for (std::size_t i = 0; i < n.size(); ++i)
    for (char c = '0'; c <= '9'; ++c) {
      if (c == n[i]) continue;
      std::string m = n;
      m[i] = c;
      if (valid(m)) ++missed;
    }
  return missed;
}

// Every swap of two adjacent different digits.
template <class Valid>
std::size_t undetected_transpositions(const std::string& n, Valid&& valid) {
  std::size_t missed = 0;
  for (std::size_t i = 0; i + 1 < n.size(); ++i) {
    if (n[i] == n[i + 1]) continue;
    std::string m = n;
    std::swap(m[i], m[i + 1]);
    if (valid(m)) ++missed;
  }
  return missed;
}

check_scheme weighted(std::vector<std::int64_t> weights, std::int64_t modulus, std::string table) {
  check_scheme s;
  s.weights = std::move(weights);
  s.modulus = modulus;
  for (const char c : table) s.check_table.emplace_back(1, c);
  return s;
}

}  // namespace

TEST_CASE("Verhoeff catches every single-digit error and adjacent transposition", "[checksum]") {
  std::mt19937 rng(7);
  for (int k = 0; k < 200; ++k) {
    const std::string body = random_digits(rng, 1 + rng() % 15);
    const std::string n = body + verhoeff_check_digit(body);
    REQUIRE(verhoeff_valid(n));
    CHECK(undetected_substitutions(n, verhoeff_valid) == 0);
    CHECK(undetected_transpositions(n, verhoeff_valid) == 0);
  }
  CHECK_FALSE(verhoeff_valid("1"));
  CHECK_FALSE(verhoeff_valid("12a4"));
}

TEST_CASE("Damm catches every single-digit error and adjacent transposition", "[checksum]") {
  std::mt19937 rng(8);
  for (int k = 0; k < 200; ++k) {
    const std::string body = random_digits(rng, 1 + rng() % 15);
    const std::string n = body + damm_check_digit(body);
    REQUIRE(damm_valid(n));
    CHECK(undetected_substitutions(n, damm_valid) == 0);
    CHECK(undetected_transpositions(n, damm_valid) == 0);
  }
}

TEST_CASE("Luhn catches every single-digit error", "[checksum]") {
  std::mt19937 rng(9);
  for (int k = 0; k < 200; ++k) {
    std::string n = "4" + random_digits(rng, 14);
    for (char c = '0'; c <= '9'; ++c)
      if (luhn_valid(n + c)) {
        n += c;
        break;
      }
    REQUIRE(luhn_valid(n));
    CHECK(undetected_substitutions(n, luhn_valid) == 0);
  }
  CHECK_FALSE(luhn_valid("0000000000000000"));
}

TEST_CASE("ISO 7064 MOD 11-2 as a pure system (radix 2, sum 1) agrees with its check table form", "[checksum]") {
  // GB 11643's check character, declared two ways.
  check_scheme pure;
  pure.values = check_scheme::default_values();
  pure.values['X'] = 10;
  pure.radix = 2;
  pure.modulus = 11;
  pure.sum_to = 1;
  const check_scheme table = weighted({7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}, 11, "10X98765432");
  std::mt19937 rng(11);
  for (int k = 0; k < 300; ++k) {
    const std::string body = random_digits(rng, 17);
    for (const char c : std::string("0123456789X")) {
      const std::string n = body + c;
      INFO(n);
      CHECK(pure.validate(n) == table.validate(n));
    }
  }
}

TEST_CASE("ISO 7064 MOD 97-10 with rotation and decimal expansion is the IBAN check", "[checksum]") {
  check_scheme s;
  s.rotate = 4;
  s.expand_decimal = true;
  s.radix = 10;
  s.modulus = 97;
  s.sum_to = 1;
  std::mt19937 rng(12);
  for (int k = 0; k < 200; ++k) {
    std::string bban = "ABCD" + random_digits(rng, 14);
    // Check digits: 98 - (bban + "DE00" as a number mod 97).
    int r = 0;
    for (const char c : bban + "DE00") r = (c >= 'A') ? (r * 100 + (c - 'A' + 10)) % 97 : (r * 10 + (c - '0')) % 97;
    const int cd = 98 - r;
    const std::string iban = "DE" + std::string(1, static_cast<char>('0' + cd / 10)) +
                             static_cast<char>('0' + cd % 10) + bban;
    INFO(iban);
    CHECK(s.validate(iban));
    CHECK(iban_ok(iban) == (iban.size() == 22));
    std::string bad = iban;
    bad[10] = bad[10] == '9' ? '0' : static_cast<char>(bad[10] + 1);
    CHECK_FALSE(s.validate(bad));
  }
}

TEST_CASE("ISO 7064 MOD 37-2 over the alphanumeric alphabet", "[checksum]") {
  // Pure system: radix 2, modulus 37, check character from 0-9, A-Z and *.
  check_scheme s;
  s.values = check_scheme::default_values();
  s.radix = 2;
  s.modulus = 37;
  s.sum_to = 1;
  // Build valid strings: find the check value v (0..35 here) that makes the sum 1.
  std::mt19937 rng(13);
  int built = 0;
  for (int k = 0; k < 200; ++k) {
    std::string body;
    for (int i = 0; i < 10; ++i) body.push_back("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[rng() % 36]);
    for (const char c : std::string("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")) {
      if (!s.validate(body + c)) continue;
      ++built;
      // Any other check character fails.
      for (const char d : std::string("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        if (d != c) CHECK_FALSE(s.validate(body + d));
    }
  }
  CHECK(built > 150);  // the value 36 (*) is not in this alphabet: about 1 in 37 has no check here
}

TEST_CASE("ISO 7064 MOD 11,10 hybrid finds one check digit per body and catches single errors", "[checksum]") {
  check_scheme s;
  s.algorithm = check_scheme::algo::iso7064_hybrid;
  s.modulus = 10;
  std::mt19937 rng(14);
  for (int k = 0; k < 200; ++k) {
    const std::string body = random_digits(rng, 10);
    int valid = 0;
    std::string n;
    for (char c = '0'; c <= '9'; ++c)
      if (s.validate(body + c)) ++valid, n = body + c;
    REQUIRE(valid == 1);
    CHECK(undetected_substitutions(n, [&](const std::string& m) { return s.validate(m); }) == 0);
  }
}

TEST_CASE("weighted sums may have negative weights and a target sum", "[checksum]") {
  // Dutch BSN: weights 9..2 and -1, sum 0 mod 11.
  check_scheme s;
  s.weights = {9, 8, 7, 6, 5, 4, 3, 2, -1};
  s.modulus = 11;
  s.sum_to = 0;
  std::mt19937 rng(15);
  int found = 0;
  for (int k = 0; k < 2000 && found < 50; ++k) {
    const std::string n = random_digits(rng, 9);
    long sum = 0;
    for (int i = 0; i < 8; ++i) sum += (n[static_cast<std::size_t>(i)] - '0') * (9 - i);
    sum -= n[8] - '0';
    const bool expected = ((sum % 11) + 11) % 11 == 0;
    CHECK(s.validate(n) == expected);
    found += expected ? 1 : 0;
  }
  CHECK(found > 10);
}

TEST_CASE("padding counts virtual characters before short forms", "[checksum]") {
  // Hong Kong: a one-letter number counts a space (36) with weight 9.
  check_scheme s = weighted({9, 8, 7, 6, 5, 4, 3, 2}, 11, "0A987654321");
  s.pad_length = 9;
  s.pad_value = 36;
  auto check_of = [](const std::string& body) {
    std::vector<int> v;
    if (body.size() == 7) v.push_back(36);
    for (const char c : body) v.push_back(c >= 'A' ? c - 'A' + 10 : c - '0');
    int sum = 0;
    for (std::size_t i = 0; i < v.size(); ++i) sum += v[i] * static_cast<int>(9 - i);
    return "0A987654321"[sum % 11];
  };
  for (const std::string body : {"K765432", "P301256", "XA987654", "AB123456"}) {
    const std::string n = body + check_of(body);
    INFO(n);
    CHECK(s.validate(n));
    CHECK_FALSE(s.validate(body + (check_of(body) == '0' ? '1' : '0')));
  }
}

TEST_CASE("position values cycle and positions can count from the right", "[checksum]") {
  // Luhn as data: from the right, every second digit doubled (digit sum), sum 0 mod 10.
  check_scheme s;
  s.position_values.push_back(check_scheme::default_values());
  check_scheme::value_map doubled = check_scheme::default_values();
  for (int d = 0; d <= 9; ++d) doubled[static_cast<std::size_t>('0' + d)] = static_cast<std::int16_t>(d * 2 > 9 ? d * 2 - 9 : d * 2);
  s.position_values.push_back(doubled);
  s.from_right = true;
  s.weights = {1};
  s.modulus = 10;
  s.sum_to = 0;
  std::mt19937 rng(16);
  for (int k = 0; k < 300; ++k) {
    const std::string n = random_digits(rng, 12 + rng() % 8);
    if (n.find_first_not_of('0') == std::string::npos) continue;
    INFO(n);
    CHECK(s.validate(n) == luhn_valid(n));
  }
}

TEST_CASE("structure: lengths, prefix ranges with lengths, format and dates", "[checksum]") {
  check_scheme s;
  s.algorithm = check_scheme::algo::none;
  s.prefixes.push_back({"51", "55", {16}});
  s.prefixes.push_back({"2221", "2720", {16}});
  s.prefixes.push_back({"4", "4", {13, 16, 19}});
  CHECK(s.validate("5100000000000000"));
  CHECK(s.validate("5599999999999999"));
  CHECK_FALSE(s.validate("5600000000000000"));
  CHECK(s.validate("2221000000000000"));
  CHECK(s.validate("2720999999999999"));
  CHECK_FALSE(s.validate("2721000000000000"));
  CHECK_FALSE(s.validate("22210000000000"));  // length
  CHECK(s.validate("4000000000000"));
  CHECK_FALSE(s.validate("40000000000000"));

  check_scheme d;
  d.algorithm = check_scheme::algo::none;
  check_scheme::date_rule r;
  r.at = 0;
  r.fmt = check_scheme::date_rule::form::yymmdd;
  r.month_offsets = {0, 20};
  d.date = r;
  CHECK(d.validate("000229"));  // 2000 was a leap year: two-digit years allow 29 February when divisible by 4
  CHECK_FALSE(d.validate("010229"));
  CHECK(d.validate("013231"));        // month 32 = December with offset 20
  CHECK_FALSE(d.validate("012231"));  // month 22 = February: no 31st
  CHECK_FALSE(d.validate("011331"));
  CHECK_FALSE(d.validate("010431"));
  CHECK_FALSE(d.validate("0104"));  // too short for the date

  check_scheme f;
  f.algorithm = check_scheme::algo::none;
  f.format_re = std::make_shared<RE2>("[A-Z][0-9]{3}");
  CHECK(f.validate("A123"));
  CHECK_FALSE(f.validate("A12"));
  CHECK_FALSE(f.validate("1234"));
}

TEST_CASE("substitutions replace fixed text at a position before the check", "[checksum]") {
  // French NIR: department 2A counts 19, 2B counts 18; key = 97 - (13 digits mod 97).
  check_scheme s;
  s.substitutions.push_back({5, "2A", "19"});
  s.substitutions.push_back({5, "2B", "18"});
  s.weights = {50, 5, 49, 34, 81, 76, 27, 90, 9, 30, 3, 10, 1, 10, 1};
  s.modulus = 97;
  s.sum_to = 0;
  auto key = [](std::string body) {
    if (body.compare(5, 2, "2A") == 0) body.replace(5, 2, "19");
    if (body.compare(5, 2, "2B") == 0) body.replace(5, 2, "18");
    long long n = std::stoll(body);
    const int k = 97 - static_cast<int>(n % 97);
    return std::string(1, static_cast<char>('0' + k / 10)) + static_cast<char>('0' + k % 10);
  };
  for (const std::string body : {"1850578006084", "2860475113052", "18502" "2A" "004123", "29912" "2B" "123456"}) {
    INFO(body);
    CHECK(s.validate(body + key(body)));
    std::string wrong = key(body);
    wrong[1] = wrong[1] == '9' ? '0' : static_cast<char>(wrong[1] + 1);
    CHECK_FALSE(s.validate(body + wrong));
  }
}

TEST_CASE("scheme consistency errors name what is wrong", "[checksum]") {
  check_scheme s;
  s.modulus = 11;
  CHECK(s.consistency_error().find("weights or a radix") != std::string::npos);
  s.weights = {1};
  CHECK(s.consistency_error().find("sum_to or check_table") != std::string::npos);
  s.check_table = {"1", "0"};
  CHECK(s.consistency_error().find("one entry per remainder") != std::string::npos);
  s.check_table.assign(11, "0");
  CHECK(s.consistency_error().empty());
  s.prefixes.push_back({"55", "51", {}});
  CHECK_FALSE(s.consistency_error().empty());
}

TEST_CASE("schemes never read past the text and reject non-ASCII", "[checksum]") {
  const check_scheme s = weighted({1, 2, 3}, 10, "0123456789");
  CHECK_FALSE(s.validate(""));
  CHECK_FALSE(s.validate("\xE4\xB8\xAD" "1"));
  CHECK_FALSE(s.validate("a1"));  // lower case is not a value: callers upper-case first
}
