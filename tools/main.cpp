// customsctl: the compliance officer's and the auditor's tool.
#include <iostream>
#include <string_view>
#include <vector>

#include "tools/commands.hpp"

namespace {
constexpr std::string_view usage =
    "usage: customsctl <group> <command> [options]\n"
    "\n"
    "  rules check PATH...             validate rule files\n"
    "  rules test PATH...              run the rule files' embedded tests\n"
    "  rules explain --rules PATH ...  show why a text gets its verdict\n"
    "  keys gen --out DIR              create auditor, sealing and signing keys\n"
    "  audit verify|show|export|replay|report|volumes|erase|checkpoint ...\n"
    "  ca gen --out DIR                create the interception CA (ca.pem, ca.key)\n"
    "  proxy-user NAME TENANT          a forward-proxy users-file line (password on stdin)\n"
    "\n"
    "  --version                       print the version\n"
    "Exit codes: 0 ok, 1 the check failed, 2 usage or I/O error.\n";
}

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << usage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "customsctl " << CUSTOMS_VERSION << "\n";
    return 0;
  }
  const std::span<const std::string_view> rest(args.data() + 1, args.size() - 1);
  if (args[0] == "rules") return customs::tools::run_rules(rest);
  if (args[0] == "keys") return customs::tools::run_keys(rest);
  if (args[0] == "audit") return customs::tools::run_audit(rest);
  if (args[0] == "ca") return customs::tools::run_ca(rest);
  if (args[0] == "proxy-user") return customs::tools::run_proxy_user(rest);
  std::cerr << "customsctl: unknown command group '" << args[0] << "'\n" << usage;
  return 2;
}
