#include "policy/jurisdictions.hpp"

namespace customs::policy {

namespace {

// The 249 officially assigned codes (ISO 3166-1:2020 and its newsletters), in
// alphabetical order, two letters each; plus XK.
constexpr std::string_view codes =
    "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCH"
    "CICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGN"
    "GPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLI"
    "LKLRLSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOM"
    "PAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTD"
    "TFTGTHTJTKTLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSXKYEYTZAZMZW";

// The code as it stands in `codes`, or empty.
std::string_view find_code(char a, char b) noexcept {
  for (std::size_t i = 0; i + 1 < codes.size(); i += 2)
    if (codes[i] == a && codes[i + 1] == b) return codes.substr(i, 2);
  return {};
}

char upper(char c) noexcept { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

}  // namespace

bool is_country_code(std::string_view code) noexcept {
  return code.size() == 2 && !find_code(code[0], code[1]).empty();
}

std::string_view country_code_hint(std::string_view code) noexcept {
  if (code.size() != 2) return {};
  const char a = upper(code[0]), b = upper(code[1]);
  // Exceptionally reserved: the United Kingdom and Greece as the EU writes them.
  if (a == 'U' && b == 'K') return find_code('G', 'B');
  if (a == 'E' && b == 'L') return find_code('G', 'R');
  if (a == code[0] && b == code[1]) return {};  // already upper case: no other guess
  return find_code(a, b);
}

}  // namespace customs::policy
