// customsctl keys gen --out DIR [--only auditor|sealing|signing|subject]
#include <iostream>

#include "crypto/key_file.hpp"
#include "tools/args.hpp"
#include "tools/commands.hpp"

namespace customs::tools {

namespace {
constexpr std::string_view keys_usage =
    "usage: customsctl keys gen --out DIR [--only auditor|sealing|signing|subject]\n"
    "\n"
    "Creates, in DIR (never overwriting a file):\n"
    "  auditor.pub, auditor.key   X25519 auditor key pair; the .key stays with the auditors\n"
    "  sealing.key, sealing.seed  forward-secure MAC key: .key for customsd (evolved in\n"
    "                             place), .seed for the auditors (audit verify --seed)\n"
    "  signing.key, signing.pub   Ed25519 checkpoint key pair: .key for customsd,\n"
    "                             .pub for the auditors (audit verify --signer)\n"
    "--only auditor makes one more auditor key pair (several may be configured).\n"
    "--only subject makes subject.key, the key of the volume counters' subject hashes\n"
    "(one per fleet: copy the same file to every host that shares counters).\n"
    "Secret files are written 0600.\n"
    "Exit codes: 0 ok, 2 usage or I/O error (also when a file exists).\n";
}  // namespace

int run_keys(std::span<const std::string_view> args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << keys_usage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] != "gen") {
    std::cerr << "customsctl keys: unknown command '" << args[0] << "'\n" << keys_usage;
    return 2;
  }
  try {
    const parsed_args a(args.subspan(1), {"out", "only"});
    if (a.help()) {
      std::cout << keys_usage;
      return 0;
    }
    if (!a.positional().empty()) throw usage_error("unexpected argument '" + a.positional()[0] + "'");
    const auto out = a.require("out");
    auto which = crypto::key_set::all;
    if (const auto only = a.get("only")) {
      if (*only == "auditor") which = crypto::key_set::auditor;
      else if (*only == "sealing") which = crypto::key_set::sealing;
      else if (*only == "signing") which = crypto::key_set::signing;
      else if (*only == "subject") which = crypto::key_set::subject;
      else throw usage_error("--only takes auditor, sealing, signing or subject");
    }
    for (const auto& p : crypto::generate_key_set(out, which)) std::cout << "wrote " << p.string() << "\n";
    return 0;
  } catch (const usage_error& e) {
    std::cerr << "customsctl keys gen: " << e.what() << "\n" << keys_usage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "customsctl keys gen: error: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace customs::tools
