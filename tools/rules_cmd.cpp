#include <iostream>

#include "tools/commands.hpp"

namespace customs::tools {
// Placeholder until the rules commands land.
int run_rules(std::span<const std::string_view>) {
  std::cerr << "customsctl rules: not implemented yet\n";
  return 2;
}
}  // namespace customs::tools
