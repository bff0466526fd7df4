#include <iostream>

#include "tools/commands.hpp"

namespace customs::tools {
// Placeholder until the keys commands land.
int run_keys(std::span<const std::string_view>) {
  std::cerr << "customsctl keys: not implemented yet\n";
  return 2;
}
}  // namespace customs::tools
