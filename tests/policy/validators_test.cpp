#include <catch2/catch.hpp>

#include "policy/sha256.hpp"
#include "policy/text.hpp"
#include "policy/validators.hpp"

using namespace customs::policy;

TEST_CASE("gb11643 accepts valid resident ids, X check digit included", "[validators]") {
  CHECK(validate(validator::gb11643, "11010519491231002X"));
  CHECK(validate(validator::gb11643, "11010519491231002x"));
  CHECK(validate(validator::gb11643, "44030419900307123X"));
  CHECK(validate(validator::gb11643, "310115198502154325"));
  CHECK(validate(validator::gb11643, "110105 19491231 002X"));  // grouped
  CHECK(validate(validator::gb11643, "１１０１０５１９４９１２３１００２Ｘ"));  // full-width
}

TEST_CASE("gb11643 rejects a wrong check digit", "[validators]") {
  CHECK_FALSE(gb11643_ok("110105194912310021"));
  CHECK_FALSE(gb11643_ok("310115198502154324"));
}

namespace {
// 17 digits plus their ISO 7064 MOD 11-2 check character: only the property under
// test can make such an id invalid.
std::string with_check(const std::string& base) {
  const int w[] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (base[static_cast<std::size_t>(i)] - '0') * w[i];
  return base + "10X98765432"[sum % 11];
}
}  // namespace

TEST_CASE("gb11643 rejects impossible birth dates", "[validators]") {
  CHECK(gb11643_ok(with_check("11010519990228123")));        // the control: 1999-02-28
  CHECK_FALSE(gb11643_ok(with_check("11010519990231123")));  // 1999-02-31
  CHECK(with_check("11010519990231123") == "110105199902311232");
  CHECK_FALSE(gb11643_ok(with_check("11010519000229123")));  // 1900 is not a leap year
  CHECK_FALSE(gb11643_ok(with_check("11010518991231123")));  // before 1900
  CHECK_FALSE(gb11643_ok(with_check("11010519991301123")));  // month 13
  CHECK_FALSE(gb11643_ok(with_check("11010519990400123")));  // day 0
  CHECK_FALSE(gb11643_ok(with_check("11010519990431123")));  // April has 30 days
}

TEST_CASE("gb11643 accepts 29 February of a leap year", "[validators]") {
  CHECK(gb11643_ok(with_check("11010520000229123")));
  CHECK(gb11643_ok(with_check("11010519960229123")));
}

TEST_CASE("gb11643 rejects unknown province prefixes", "[validators]") {
  CHECK(gb11643_ok(with_check("11010519900307123")));        // the control: 11 is Beijing
  CHECK_FALSE(gb11643_ok(with_check("99010519900307123")));  // no province 99
  CHECK_FALSE(gb11643_ok(with_check("00010519900307123")));
  CHECK_FALSE(gb11643_ok(with_check("16010519900307123")));  // between Inner Mongolia (15) and Liaoning (21)
}

TEST_CASE("gb11643 rejects wrong lengths and letters", "[validators]") {
  CHECK_FALSE(gb11643_ok("11010519491231002"));
  CHECK_FALSE(gb11643_ok("11010519491231002XX"));
  CHECK_FALSE(gb11643_ok("1101051949123100AX"));
}

TEST_CASE("luhn accepts valid numbers and rejects failures and all zeros", "[validators]") {
  CHECK(luhn_ok("4111111111111111"));
  CHECK(luhn_ok("6222021234567890128"));
  CHECK(luhn_ok("378282246310005"));
  CHECK_FALSE(luhn_ok("4111111111111112"));
  CHECK_FALSE(luhn_ok("0000000000000000"));
  CHECK_FALSE(luhn_ok("0"));
  CHECK_FALSE(luhn_ok("41111111111111a1"));
  CHECK(validate(validator::luhn, "4111 1111-1111 1111"));
  CHECK(validate(validator::luhn, "４１１１１１１１１１１１１１１１"));
}

TEST_CASE("iban_mod97 checks country, its length and the check digits", "[validators]") {
  CHECK(iban_ok("DE89370400440532013000"));
  CHECK(iban_ok("GB82WEST12345698765432"));
  CHECK(iban_ok("FR1420041010050500013M02606"));
  CHECK(iban_ok("ES9121000418450200051332"));
  CHECK(iban_ok("NL91ABNA0417164300"));
  CHECK_FALSE(iban_ok("DE89370400440532013001"));   // check digits
  CHECK_FALSE(iban_ok("DE8937040044053201300"));    // DE is 22 long
  CHECK_FALSE(iban_ok("DE893704004405320130000"));
  CHECK_FALSE(iban_ok("XX89370400440532013000"));   // no such country
  CHECK(iban_length("NO") == 15);
  CHECK(iban_length("MT") == 31);
  CHECK(iban_length("RU") == 33);
  CHECK(validate(validator::iban_mod97, "de89 3704 0044 0532 0130 00"));
}

TEST_CASE("us_ssn rules out never-issued areas, groups and serials", "[validators]") {
  CHECK(us_ssn_ok("536221234"));
  CHECK(us_ssn_ok("001010001"));
  CHECK(us_ssn_ok("740123456"));  // 734-749 issued since randomization
  CHECK(us_ssn_ok("899123456"));  // 773-899 likewise
  CHECK(us_ssn_ok("772814521"));
  CHECK_FALSE(us_ssn_ok("000123456"));
  CHECK_FALSE(us_ssn_ok("666123456"));
  CHECK_FALSE(us_ssn_ok("900123456"));
  CHECK_FALSE(us_ssn_ok("999123456"));
  CHECK_FALSE(us_ssn_ok("123004567"));
  CHECK_FALSE(us_ssn_ok("123450000"));
  CHECK(validate(validator::us_ssn, "536-22-1234"));
}

TEST_CASE("es_dni checks the letter of DNI and NIE numbers", "[validators]") {
  CHECK(es_dni_ok("12345678Z"));
  CHECK(es_dni_ok("00000023T"));
  CHECK(es_dni_ok("X1234567L"));
  CHECK(es_dni_ok("Y7654321G"));
  CHECK_FALSE(es_dni_ok("12345678A"));
  CHECK_FALSE(es_dni_ok("X1234567A"));
  CHECK_FALSE(es_dni_ok("1234567Z"));
  CHECK(validate(validator::es_dni, "12345678-z"));
}

TEST_CASE("validator names parse both ways", "[validators]") {
  for (const auto v : {validator::luhn, validator::gb11643, validator::iban_mod97, validator::us_ssn, validator::es_dni})
    CHECK(parse_validator(to_string(v)) == v);
  CHECK_FALSE(parse_validator("mod11"));
}

TEST_CASE("sha256 matches the FIPS 180-4 examples", "[hash]") {
  CHECK(sha256::hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256::hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256::hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256::hex(std::string(1000000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("text helpers fold full-width forms and never read out of bounds", "[text]") {
  CHECK(text::alnum_upper("a-1 ＢＣ２") == "A1BC2");
  CHECK(text::word_starts_at("ab", 1));
  CHECK_FALSE(text::word_starts_at("ab", 2));
  CHECK(text::word_ends_before("x１", 4));
  CHECK_FALSE(text::word_ends_before("\xEF\xBC", 2));  // truncated sequence
  CHECK(text::complete_prefix("ab\xE4\xB8") == 2);     // incomplete 3-byte character
  CHECK(text::complete_prefix("ab\xE4\xB8\xAD") == 5);
  CHECK(text::complete_prefix("ab\x80\x80\x80\x80") == 6);  // invalid bytes count as complete
  CHECK(text::count_chars("中a") == 2);
}
