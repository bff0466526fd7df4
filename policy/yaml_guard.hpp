#pragma once
// A check of YAML text before yaml-cpp parses it.
//
// yaml-cpp 0.7 (Debian 12) never returns on a ',' at the top level of a
// document whose root is not a block collection: ",", "  ,", "{a: b}\n,",
// "\"a\"\n,", "a: b\n---\n,", "a: b\n...\n," each loop forever (found by the
// fuzz targets of the config and catalogue loaders). Every YAML file Customs
// reads (config, rule packs, provider catalogues) is a block mapping at the
// top, and with such a root the same inputs end in a parse error. So each
// document must begin, after blank lines, comments and directives, with a
// `key:` line at column 0; anything else is refused with a clear message
// before yaml-cpp sees the text.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace customs::policy {

struct yaml_refusal {
  std::size_t line = 0;  // 1-based
  std::string message;
};

[[nodiscard]] std::optional<yaml_refusal> check_yaml_top_level(std::string_view text);

}  // namespace customs::policy
