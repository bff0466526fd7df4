// --help and -h on every customsctl command and subcommand: the usage of that
// subcommand on stdout, exit 0; `--` ends the options (a later --help is an
// argument, not a request for help).
#include <catch2/catch.hpp>

#include "audit_tools_support.hpp"

using namespace customs::tools::testing;

namespace {
run_result rules_cmd(std::vector<std::string> args) { return run_captured(customs::tools::run_rules, std::move(args)); }
run_result ca_cmd(std::vector<std::string> args) { return run_captured(customs::tools::run_ca, std::move(args)); }
run_result proxy_user_cmd(std::vector<std::string> args) {
  return run_captured(customs::tools::run_proxy_user, std::move(args));
}
run_result group_cmd(const std::string& group, std::vector<std::string> args) {
  if (group == "rules") return rules_cmd(std::move(args));
  if (group == "keys") return keys_cmd(std::move(args));
  if (group == "audit") return audit_cmd(std::move(args));
  if (group == "ca") return ca_cmd(std::move(args));
  return proxy_user_cmd(std::move(args));
}
}  // namespace

TEST_CASE("--help and -h after any subcommand print its usage on stdout and exit 0", "[tools][help]") {
  const std::vector<std::pair<std::string, std::string>> subs = {
      {"rules", "check"},  {"rules", "test"},     {"rules", "explain"}, {"keys", "gen"},
      {"audit", "verify"}, {"audit", "checkpoint"}, {"audit", "show"},  {"audit", "export"},
      {"audit", "replay"}, {"audit", "report"},   {"audit", "volumes"}, {"audit", "erase"},
      {"ca", "gen"}};
  for (const auto& [group, sub] : subs) {
    for (const std::string flag : {"--help", "-h"}) {
      // Alone, and after other options (even with required ones missing).
      for (const auto& args : std::vector<std::vector<std::string>>{{sub, flag}, {sub, "--db", "x.db", flag}}) {
        if (group != "audit" && args.size() > 2) continue;
        const auto r = group_cmd(group, args);
        INFO(group << " " << sub << " " << flag << "\nout: " << r.out << "\nerr: " << r.err);
        CHECK(r.code == 0);
        CHECK(r.err.empty());
        // The usage of that subcommand, not of the whole group.
        CHECK_THAT(r.out, Catch::StartsWith("usage: customsctl " + group + " " + sub + " "));
      }
    }
  }
  for (const std::string flag : {"--help", "-h"}) {
    const auto p = proxy_user_cmd({flag});
    CHECK(p.code == 0);
    CHECK_THAT(p.out, Catch::StartsWith("usage: customsctl proxy-user "));
    const auto p2 = proxy_user_cmd({"alice", flag});
    CHECK(p2.code == 0);
    CHECK_THAT(p2.out, Catch::StartsWith("usage: customsctl proxy-user "));
  }
}

TEST_CASE("each audit subcommand's help names its own options", "[tools][help]") {
  CHECK_THAT(audit_cmd({"verify", "--help"}).out, Catch::Contains("--checkpoint FILE"));
  CHECK_THAT(audit_cmd({"verify", "--help"}).out, !Catch::Contains("--rules"));
  CHECK_THAT(audit_cmd({"replay", "--help"}).out, Catch::Contains("--rules PATH"));
  CHECK_THAT(audit_cmd({"show", "--help"}).out, Catch::Contains("FILTERS"));
  CHECK_THAT(audit_cmd({"report", "--help"}).out, Catch::Contains("--by"));
  CHECK_THAT(audit_cmd({"erase", "--help"}).out, Catch::Contains("--reason TEXT"));
  CHECK_THAT(rules_cmd({"explain", "-h"}).out, Catch::Contains("--from XX --to YY"));
}

TEST_CASE("after -- a --help is an argument, not a request for help", "[tools][help]") {
  const auto show = audit_cmd({"show", "--db", "x.db", "--", "--help"});
  CHECK(show.code == 2);
  CHECK_THAT(show.err, Catch::Contains("unexpected argument '--help'"));
  const auto keys = keys_cmd({"gen", "--out", "/nonexistent/k", "--", "-h"});
  CHECK(keys.code == 2);
  CHECK_THAT(keys.err, Catch::Contains("unexpected argument '-h'"));
  const auto check = rules_cmd({"check", "--", "--help"});
  CHECK(check.code == 2);  // a path named --help, which does not exist
  CHECK_THAT(check.err, Catch::Contains("--help"));
  CHECK_THAT(check.err, Catch::Contains("E_IO"));
}

TEST_CASE("customsctl --help lists the command groups on stdout, and no argument is a usage error", "[tools][help]") {
  const auto r = run_captured(customs::tools::run_customsctl, {"--help"});
  CHECK(r.code == 0);
  for (const char* c : {"rules check", "rules test", "rules explain", "keys gen", "audit verify", "ca gen", "proxy-user"})
    CHECK_THAT(r.out, Catch::Contains(c));
  CHECK_THAT(r.out, Catch::Contains("customsctl <group> <command> --help"));
  CHECK(run_captured(customs::tools::run_customsctl, {"-h"}).code == 0);
  const auto none = run_captured(customs::tools::run_customsctl, {});
  CHECK(none.code == 2);
  CHECK_THAT(none.err, Catch::StartsWith("usage: customsctl"));
  const auto nested = run_captured(customs::tools::run_customsctl, {"audit", "report", "--help"});
  CHECK(nested.code == 0);
  CHECK_THAT(nested.out, Catch::StartsWith("usage: customsctl audit report "));
}
