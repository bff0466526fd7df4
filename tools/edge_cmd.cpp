// customsctl ca gen --out DIR [--name NAME] [--days N]
// customsctl proxy-user NAME TENANT        (the password on standard input)
#include <unistd.h>

#include <iostream>
#include <string>

#include "daemon/intercept/x509.hpp"
#include "daemon/listen/proxy_auth.hpp"
#include "tools/args.hpp"
#include "tools/commands.hpp"

namespace customs::tools {

namespace {
constexpr std::string_view ca_usage =
    "usage: customsctl ca gen --out DIR [--name NAME] [--days N]\n"
    "\n"
    "Creates the CA that customsd signs intercepted hosts' certificates with:\n"
    "  DIR/ca.pem   the CA certificate (0644): install it in the clients' trust stores\n"
    "  DIR/ca.key   its private key (0600): for customsd only (interception.ca_key)\n"
    "An ECDSA P-256 key, self-signed, valid for N days (default 3650), subject\n"
    "O=Customs, CN=NAME (default \"Customs interception CA\"). Existing files are\n"
    "never overwritten.\n";

constexpr std::string_view proxy_usage =
    "usage: customsctl proxy-user [--] NAME TENANT < password\n"
    "\n"
    "Prints the users-file line (listeners[].proxy_auth.users) for a forward-proxy\n"
    "user: NAME:<Argon2id hash of the password read from standard input>:TENANT.\n"
    "The password is the first line of standard input (without its line end).\n";
}  // namespace

int run_ca(std::span<const std::string_view> args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << ca_usage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] != "gen") {
    std::cerr << "customsctl ca: unknown command '" << args[0] << "'\n" << ca_usage;
    return 2;
  }
  try {
    const parsed_args a(args.subspan(1), {"out", "name", "days"});
    if (a.help()) {
      std::cout << ca_usage;
      return 0;
    }
    if (!a.positional().empty()) throw usage_error("unexpected argument '" + a.positional()[0] + "'");
    const auto out = a.require("out");
    const std::string name = a.get("name").value_or("Customs interception CA");
    long days = 3650;
    if (const auto d = a.get("days")) {
      try {
        days = std::stol(*d);
      } catch (...) {
        throw usage_error("--days takes a number of days");
      }
      if (days < 1 || days > 36500) throw usage_error("--days takes 1 to 36500");
    }
    const auto pem = daemon::intercept::make_ca(name, std::chrono::hours(24 * days));
    const auto [cert, key] = daemon::intercept::write_ca_files(out, pem);
    std::cout << "wrote " << cert.string() << "\nwrote " << key.string() << "\n";
    return 0;
  } catch (const usage_error& e) {
    std::cerr << "customsctl ca gen: " << e.what() << "\n" << ca_usage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "customsctl ca gen: error: " << e.what() << "\n";
    return 2;
  }
}

int run_proxy_user(std::span<const std::string_view> args) {
  if (wants_help(args)) {
    std::cout << proxy_usage;
    return 0;
  }
  // `--` ends the options: a NAME or TENANT after it may start with dashes.
  if (!args.empty() && args[0] == "--") args = args.subspan(1);
  if (args.size() != 2) {
    std::cerr << proxy_usage;
    return 2;
  }
  std::string password;
  if (!std::getline(std::cin, password) || password.empty()) {
    std::cerr << "customsctl proxy-user: no password on standard input\n";
    return 2;
  }
  if (!password.empty() && password.back() == '\r') password.pop_back();
  try {
    std::cout << daemon::listen::make_proxy_user_line(args[0], password, args[1]) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "customsctl proxy-user: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}

}  // namespace customs::tools
