// customsctl's entry: the command groups and the top-level usage.
#include <iostream>
#include <string_view>

#include "tools/commands.hpp"

namespace customs::tools {

namespace {
constexpr std::string_view usage =
    "usage: customsctl <group> <command> [options]\n"
    "\n"
    "  rules check PATH...             validate rule files\n"
    "  rules test PATH...              run the rule files' embedded tests\n"
    "  rules explain --rules PATH ...  show why a text gets its verdict\n"
    "  keys gen --out DIR              create auditor, sealing and signing keys\n"
    "  audit verify|checkpoint|show|export|replay|report|volumes|erase --db FILE ...\n"
    "                                  check, read and report on an audit trail\n"
    "  ca gen --out DIR                create the interception CA (ca.pem, ca.key)\n"
    "  proxy-user NAME TENANT          a forward-proxy users-file line (password on stdin)\n"
    "\n"
    "  customsctl <group> <command> --help   one command's usage (also -h)\n"
    "  --version                       print the version\n"
    "  --                              ends the options: what follows is an argument\n"
    "Exit codes: 0 ok, 1 the check failed, 2 usage or I/O error.\n";
}  // namespace

int run_customsctl(std::span<const std::string_view> args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << usage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "customsctl " << CUSTOMS_VERSION << "\n";
    return 0;
  }
  const auto rest = args.subspan(1);
  if (args[0] == "rules") return run_rules(rest);
  if (args[0] == "keys") return run_keys(rest);
  if (args[0] == "audit") return run_audit(rest);
  if (args[0] == "ca") return run_ca(rest);
  if (args[0] == "proxy-user") return run_proxy_user(rest);
  std::cerr << "customsctl: unknown command group '" << args[0] << "'\n" << usage;
  return 2;
}

}  // namespace customs::tools
