#include "policy/jurisdictions.hpp"

namespace customs::policy {

bool is_country_code(std::string_view code) noexcept {
  // The 249 officially assigned codes (ISO 3166-1:2020 and its newsletters), in
  // alphabetical order, two letters each; plus XK.
  static constexpr std::string_view codes =
      "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCH"
      "CICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGN"
      "GPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLI"
      "LKLRLSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOM"
      "PAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTD"
      "TFTGTHTJTKTLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSXKYEYTZAZMZW";
  if (code.size() != 2) return false;
  for (std::size_t i = 0; i + 1 < codes.size(); i += 2)
    if (codes[i] == code[0] && codes[i + 1] == code[1]) return true;
  return false;
}

}  // namespace customs::policy
