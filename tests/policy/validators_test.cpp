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

namespace {
// An IBAN made of a country code and a BBAN: the check digits computed here
// (98 - (BBAN + country + "00") mod 97), so that only the BBAN can be wrong.
std::string make_iban(const std::string& country, const std::string& bban) {
  int r = 0;
  for (const char c : bban + country + "00")
    r = (c >= 'A' && c <= 'Z') ? (r * 100 + (c - 'A' + 10)) % 97 : (r * 10 + (c - '0')) % 97;
  const int cd = 98 - r;
  return country + static_cast<char>('0' + cd / 10) + static_cast<char>('0' + cd % 10) + bban;
}
// Weighted digit sum.
int wsum(const std::string& d, std::initializer_list<int> w) {
  int s = 0;
  std::size_t i = 0;
  for (const int x : w) s += (d[i++] - '0') * x;
  return s;
}
}  // namespace

TEST_CASE("iban checks the country's BBAN structure", "[validators]") {
  CHECK(iban_structure_ok(make_iban("DE", "123456789012345678")));
  CHECK(iban_ok(make_iban("DE", "1234567A9012345678")));              // passes MOD 97-10 ...
  CHECK_FALSE(iban_structure_ok(make_iban("DE", "1234567A9012345678")));  // ... but DE is 8!n10!n
  CHECK(iban_structure_ok(make_iban("NL", "ABNA0123456789")));
  CHECK_FALSE(iban_structure_ok(make_iban("NL", "1234" "0123456789")));  // 4!a10!n
  CHECK(iban_structure_ok(make_iban("GB", "WEST12345698765432")));
  CHECK_FALSE(iban_structure_ok(make_iban("GB", "WEST1234569876543A")));
  CHECK(iban_bban_format("BR") == "8!n5!n10!n1!a1!c");
  CHECK(validate(validator::iban, "nl" + make_iban("NL", "ABNA0123456789").substr(2)));  // lower case
}

TEST_CASE("iban checks national check digits where the country defines them", "[validators]") {
  // Belgium: the last two digits are the first ten mod 97 (97 for 0).
  const std::string be10 = "0123456789";
  const int be = std::stoi(be10) % 97;
  const std::string be_ok = be10 + (be < 10 ? "0" : "") + std::to_string(be == 0 ? 97 : be);
  CHECK(iban_structure_ok(make_iban("BE", be_ok)));
  std::string be_bad = be_ok;
  be_bad[11] = be_bad[11] == '9' ? '0' : static_cast<char>(be_bad[11] + 1);
  CHECK(iban_ok(make_iban("BE", be_bad)));
  CHECK_FALSE(iban_structure_ok(make_iban("BE", be_bad)));

  // Norway: weights 5 4 3 2 7 6 5 4 3 2, check 11 - sum mod 11.
  const std::string no10 = "8601111794";
  const int nv = 11 - wsum(no10, {5, 4, 3, 2, 7, 6, 5, 4, 3, 2}) % 11;
  if (nv != 10) {
    const std::string no_ok = no10 + static_cast<char>('0' + (nv == 11 ? 0 : nv));
    CHECK(iban_structure_ok(make_iban("NO", no_ok)));
    std::string no_bad = no_ok;
    no_bad[10] = no_bad[10] == '9' ? '0' : static_cast<char>(no_bad[10] + 1);
    CHECK_FALSE(iban_structure_ok(make_iban("NO", no_bad)));
  }

  // Spain: two control digits over 00 + bank + branch and over the account.
  auto es_dc = [](const std::string& ten) {
    const int v = 11 - wsum(ten, {1, 2, 4, 8, 5, 10, 9, 7, 3, 6}) % 11;
    return static_cast<char>('0' + (v == 11 ? 0 : v == 10 ? 1 : v));
  };
  const std::string bank = "2100", branch = "0418", account = "0200051332";
  const std::string es_ok = bank + branch + es_dc("00" + bank + branch) + es_dc(account) + account;
  CHECK(iban_structure_ok(make_iban("ES", es_ok)));
  std::string es_bad = es_ok;
  es_bad[8] = es_bad[8] == '9' ? '0' : static_cast<char>(es_bad[8] + 1);
  CHECK_FALSE(iban_structure_ok(make_iban("ES", es_bad)));

  // Portugal: the 21-digit BBAN is 1 mod 97 (ISO 7064 MOD 97-10).
  const std::string pt19 = "0002012312345678901";
  int r = 0;
  for (const char c : pt19 + "00") r = (r * 10 + (c - '0')) % 97;
  const int pk = 98 - r;
  const std::string pt_ok = pt19 + static_cast<char>('0' + pk / 10) + static_cast<char>('0' + pk % 10);
  CHECK(iban_structure_ok(make_iban("PT", pt_ok)));
  CHECK(make_iban("PT", pt_ok).substr(2, 2) == "50");  // a BBAN that is 1 mod 97 makes the IBAN digits 50
  std::string pt_bad = pt_ok;
  pt_bad[3] = pt_bad[3] == '9' ? '0' : static_cast<char>(pt_bad[3] + 1);
  CHECK_FALSE(iban_structure_ok(make_iban("PT", pt_bad)));

  // Countries without a national check: structure only.
  CHECK_FALSE(iban_national_check("DE"));
  CHECK_FALSE(iban_national_check("NL"));
  for (const char* c : {"BE", "ES", "FR", "IT", "NO", "PT", "CZ", "SK", "PL", "HU", "HR", "FI", "SI", "RS"})
    CHECK(iban_national_check(c));
}

TEST_CASE("iban checks the French RIB key and the Italian CIN", "[validators]") {
  // France: bank, branch, account (letters count as RIB digits), key: the 23
  // characters are 0 mod 97.
  const std::string fr21 = "20041010050500013M026";
  int r = 0;
  static constexpr std::string_view rib = "12345678912345678923456789";
  for (const char c : fr21 + "00") r = (r * 10 + (c >= 'A' ? rib[static_cast<std::size_t>(c - 'A')] - '0' : c - '0')) % 97;
  const int key = 97 - r;
  const std::string fr_ok = fr21 + static_cast<char>('0' + key / 10) + static_cast<char>('0' + key % 10);
  CHECK(iban_structure_ok(make_iban("FR", fr_ok)));
  CHECK(iban_structure_ok(make_iban("MC", fr_ok)));
  std::string fr_bad = fr_ok;
  fr_bad[0] = fr_bad[0] == '9' ? '0' : static_cast<char>(fr_bad[0] + 1);
  CHECK_FALSE(iban_structure_ok(make_iban("FR", fr_bad)));

  // Italy: the CIN letter over the 22 characters after it (odd/even tables, mod 26).
  const std::string it22 = "0542811101000000123456";
  static constexpr int odd[10] = {1, 0, 5, 7, 9, 13, 15, 17, 19, 21};
  int sum = 0;
  for (std::size_t i = 0; i < it22.size(); ++i) sum += i % 2 == 0 ? odd[it22[i] - '0'] : it22[i] - '0';
  const std::string it_ok = std::string(1, static_cast<char>('A' + sum % 26)) + it22;
  CHECK(iban_structure_ok(make_iban("IT", it_ok)));
  CHECK(iban_structure_ok(make_iban("SM", it_ok)));
  std::string it_bad = it_ok;
  it_bad[0] = it_bad[0] == 'Z' ? 'A' : static_cast<char>(it_bad[0] + 1);
  CHECK_FALSE(iban_structure_ok(make_iban("IT", it_bad)));
}

TEST_CASE("us_ssn rejects the publicly voided numbers", "[validators]") {
  CHECK_FALSE(us_ssn_ok("078051120"));
  CHECK_FALSE(us_ssn_ok("219099999"));
  CHECK_FALSE(us_ssn_ok("987654320"));
  CHECK_FALSE(us_ssn_ok("987654329"));
  CHECK(us_ssn_ok("078051121"));  // the neighbours were issued
  CHECK(us_ssn_ok("219099998"));
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
  for (const auto v : {validator::luhn, validator::gb11643, validator::iban_mod97, validator::iban, validator::us_ssn,
                       validator::es_dni})
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
