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

#include <yaml-cpp/yaml.h>

namespace customs::policy {

struct yaml_refusal {
  std::size_t line = 0;  // 1-based
  std::string message;
};

[[nodiscard]] std::optional<yaml_refusal> check_yaml_top_level(std::string_view text);

// Aliases (*a) repeat an anchored node (&a) without copying it in yaml-cpp's
// tree, but a reader that takes its strings copies them once per alias: a 1 MB
// file can stand for gigabytes (a string repeated through aliases, or nested
// lists of aliases). This walks the tree as a reader would, every alias
// expanded, and refuses it (with the line of the node where the limit was
// passed) once its scalars add up to more than max_bytes bytes or it has more
// than max_nodes nodes. The walk stops there, so it costs at most max_nodes
// steps.
struct yaml_expansion_limits {
  std::size_t max_bytes = 0;
  std::size_t max_nodes = 0;
};
[[nodiscard]] std::optional<yaml_refusal> check_yaml_expansion(const YAML::Node& root,
                                                               const yaml_expansion_limits& limits);
// The bounds the config and catalogue loaders hold their files to (rule packs
// take theirs from load_options): 16 MiB of strings, 4 Mi nodes.
inline constexpr yaml_expansion_limits file_expansion_limits{16u << 20, 4u << 20};

}  // namespace customs::policy
