// customsctl: the compliance officer's and the auditor's tool (tools/ctl.cpp).
#include <string_view>
#include <vector>

#include "tools/commands.hpp"

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  return customs::tools::run_customsctl(args);
}
