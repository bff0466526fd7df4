#include <iostream>

#include "tools/commands.hpp"

namespace customs::tools {
// Placeholder until the audit commands land.
int run_audit(std::span<const std::string_view>) {
  std::cerr << "customsctl audit: not implemented yet\n";
  return 2;
}
}  // namespace customs::tools
