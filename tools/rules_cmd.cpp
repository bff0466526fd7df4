// customsctl rules check | test | explain: the compliance officer's tools for rule
// files. Output contracts (tests/tools/rules_cmd_test.cpp holds them to it):
//   check   stdout: one summary line when valid; stderr: every diagnostic as
//           "file:line:col: error|warning: CODE: message", then when invalid a
//           line "rules check: N errors, M warnings". --json: one JSON object.
//   test    stdout: "FAIL <id> (file:line:col): <what>" per failed expectation
//           ("ok <id>" too with --verbose), last line "N passed, N failed".
//   explain stdout: findings, rules, tags, exceptions, action, rule set; --json:
//           one JSON object {action, rules, findings[{detector, category,
//           sensitive, start, end, applied}], tags, exceptions, rule_set_id,
//           rule_set_hash, redacted?}.
// Exit codes: 0 ok, 1 invalid rules / failed tests, 2 usage or I/O error.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "policy/authoring.hpp"
#include "policy/input_file.hpp"
#include "policy/policy.hpp"
#include "policy/volume.hpp"
#include "tools/commands.hpp"

namespace customs::tools {

namespace {

namespace json = boost::json;

// The largest text `rules explain` reads from a file or standard input.
constexpr std::size_t max_explain_bytes = 16u << 20;
using policy::diagnostic;

constexpr std::string_view path_help = "PATH is a rule file or a folder of *.yaml / *.yml files, loaded as one set.\n";
constexpr std::string_view volume_help =
    "--volume COUNTER=N: the volume counter already holds N subjects (none of the text's).\n";
constexpr std::string_view check_synopsis = "customsctl rules check [--json] [--] PATH...\n";
constexpr std::string_view test_synopsis = "customsctl rules test [--verbose] [--volume COUNTER=N]... [--] PATH...\n";
constexpr std::string_view explain_synopsis =
    "customsctl rules explain --rules PATH [--rules PATH...] --from XX --to YY\n"
    "                 [--direction request|response] [--tenant T] [--route R]\n"
    "                 [--part KIND[=N]]... [--volume COUNTER=N]... [--json] (TEXT | --file F | -)\n";
constexpr std::string_view exit_help = "Exit codes: 0 ok, 1 invalid rules / failed tests, 2 usage or I/O error.\n";

const std::string usage = "usage: " + std::string(check_synopsis) + "       " + std::string(test_synopsis) +
                          "       " + std::string(explain_synopsis) + std::string(volume_help) +
                          std::string(path_help) + "customsctl rules <command> --help shows one command's usage.\n";
const std::string check_usage = "usage: " + std::string(check_synopsis) +
                                "Validates the rule files as one set: every error and warning with its\n"
                                "file:line:col, or one summary line (--json: one JSON object).\n" +
                                std::string(path_help) + std::string(exit_help);
const std::string test_usage = "usage: " + std::string(test_synopsis) +
                               "Runs the tests embedded in the rule files (--verbose: passes too).\n" +
                               std::string(volume_help) + std::string(path_help) + std::string(exit_help);
const std::string explain_usage = "usage: " + std::string(explain_synopsis) +
                                  "Shows the findings, rules, tags and action a text gets from XX to YY, and\n"
                                  "why; after -- the argument is the text, also if it starts with dashes.\n" +
                                  std::string(volume_help) + std::string(path_help) + std::string(exit_help);

bool is_help(std::string_view a) { return a == "--help" || a == "-h"; }

int help(const std::string& text) {
  std::cout << text;
  return 0;
}

int usage_error(const std::string& msg) {
  std::cerr << "customsctl rules: " << msg << "\n" << usage;
  return 2;
}

bool io_error(const policy::load_result& r) {
  for (const auto& d : r.diagnostics)
    if (d.level == diagnostic::severity::error && (d.code == "E_IO" || d.code == "E_NO_RULE_FILES")) return true;
  return false;
}

// Prints diagnostics to stderr; returns the exit code of a failed load (or 0).
int report_load(const policy::load_result& r, const char* cmd) {
  std::size_t errors = 0, warnings = 0;
  for (const auto& d : r.diagnostics) {
    std::cerr << d.to_string() << "\n";
    (d.level == diagnostic::severity::error ? errors : warnings) += 1;
  }
  if (r.ok()) return 0;
  std::cerr << "rules " << cmd << ": " << errors << (errors == 1 ? " error, " : " errors, ") << warnings
            << (warnings == 1 ? " warning\n" : " warnings\n");
  return io_error(r) ? 2 : 1;
}

std::string summary_line(const policy::rule_set& rs) {
  const auto s = policy::summarize(rs);
  std::ostringstream o;
  o << "ok: " << s.packs.size() << (s.packs.size() == 1 ? " pack (" : " packs (");
  for (std::size_t i = 0; i < s.packs.size(); ++i) o << (i ? ", " : "") << s.packs[i].first << " " << s.packs[i].second;
  o << "), " << s.groups << " groups, " << s.detectors << " detectors, " << s.rules << " rules, " << s.exceptions
    << " exceptions, " << s.tests << " tests; hash " << rs.hash();
  return o.str();
}

int check(std::span<const std::string_view> args) {
  bool as_json = false;
  std::vector<std::filesystem::path> paths;
  bool options_end = false;  // after `--` every argument is a path
  for (const auto a : args) {
    if (options_end) paths.emplace_back(a);
    else if (a == "--") options_end = true;
    else if (is_help(a)) return help(check_usage);
    else if (a == "--json") as_json = true;
    else if (a.starts_with("--")) return usage_error("unknown option " + std::string(a));
    else paths.emplace_back(a);
  }
  if (paths.empty()) return usage_error("rules check needs at least one PATH");
  const auto r = policy::load_rule_set(paths);
  if (as_json) {
    json::object o;
    o["valid"] = r.ok();
    json::array diags;
    for (const auto& d : r.diagnostics) {
      json::object j;
      j["file"] = d.file;
      j["line"] = d.line;
      j["col"] = d.col;
      j["level"] = d.level == diagnostic::severity::error ? "error" : "warning";
      j["code"] = d.code;
      j["message"] = d.message;
      diags.push_back(std::move(j));
    }
    o["diagnostics"] = std::move(diags);
    if (r.ok()) {
      const auto s = policy::summarize(*r.rules);
      o["rule_set_id"] = r.rules->id();
      o["rule_set_version"] = r.rules->version();
      o["rule_set_hash"] = r.rules->hash();
      o["detectors"] = s.detectors;
      o["rules"] = s.rules;
      o["exceptions"] = s.exceptions;
      o["tests"] = s.tests;
    }
    std::cout << json::serialize(o) << "\n";
    if (r.ok()) return 0;
    return io_error(r) ? 2 : 1;
  }
  if (const int rc = report_load(r, "check")) return rc;
  std::cout << summary_line(*r.rules) << "\n";
  return 0;
}

// "COUNTER=N" of --volume into `into`; false when malformed.
bool parse_volume(std::string_view a, std::map<std::string, std::uint64_t>& into) {
  const auto eq = a.find('=');
  if (eq == std::string_view::npos || eq == 0) return false;
  std::uint64_t n = 0;
  const auto num = a.substr(eq + 1);
  const auto res = std::from_chars(num.data(), num.data() + num.size(), n);
  if (res.ec != std::errc{} || res.ptr != num.data() + num.size() || num.empty()) return false;
  into[std::string(a.substr(0, eq))] = n;
  return true;
}

// Every --volume names a counter of the set; false (with a message) otherwise.
bool known_counters(const policy::rule_set& rs, const std::map<std::string, std::uint64_t>& volumes) {
  const auto ids = policy::volume_counter_ids(rs);
  for (const auto& [k, _] : volumes) {
    if (std::find(ids.begin(), ids.end(), k) == ids.end()) {
      usage_error("--volume: no volume counter '" + k + "' in the rule set");
      return false;
    }
  }
  return true;
}

int test(std::span<const std::string_view> args) {
  bool verbose = false;
  std::vector<std::filesystem::path> paths;
  std::map<std::string, std::uint64_t> volumes;
  bool options_end = false;  // after `--` every argument is a path
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto a = args[i];
    if (options_end) {
      paths.emplace_back(a);
    } else if (a == "--") {
      options_end = true;
    } else if (is_help(a)) {
      return help(test_usage);
    } else if (a == "--verbose" || a == "-v") {
      verbose = true;
    } else if (a == "--volume") {
      if (i + 1 >= args.size() || !parse_volume(args[++i], volumes)) return usage_error("--volume COUNTER=N");
    } else if (a.starts_with("--")) {
      return usage_error("unknown option " + std::string(a));
    } else {
      paths.emplace_back(a);
    }
  }
  if (paths.empty()) return usage_error("rules test needs at least one PATH");
  const auto r = policy::load_rule_set(paths);
  if (const int rc = report_load(r, "test")) return rc;
  if (!known_counters(*r.rules, volumes)) return 2;
  const auto rep = policy::run_rule_tests(*r.rules, volumes);
  for (const auto& t : rep.results) {
    const std::string at = t.file + ":" + std::to_string(t.line) + ":" + std::to_string(t.col);
    if (t.passed()) {
      if (verbose) std::cout << "ok " << t.id << "\n";
      continue;
    }
    for (const auto& f : t.failures) std::cout << "FAIL " << t.id << " (" << at << "): " << f << "\n";
  }
  std::cout << rep.passed << " passed, " << rep.failed << " failed\n";
  return rep.failed == 0 ? 0 : 1;
}

int explain(std::span<const std::string_view> args) {
  std::vector<std::filesystem::path> paths;
  policy::flow_context ctx;
  bool as_json = false, have_from = false, have_to = false;
  std::optional<std::string> text;
  std::optional<std::string> file;
  std::map<std::string, std::uint64_t> volumes;
  auto value = [&](std::size_t& i, std::string_view name) -> std::optional<std::string> {
    if (i + 1 >= args.size()) {
      usage_error(std::string(name) + " needs a value");
      return std::nullopt;
    }
    return std::string(args[++i]);
  };
  bool options_end = false;  // after `--` the argument is the text
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto a = args[i];
    if (options_end) {
      if (text) return usage_error("give the text once (quote it)");
      text = std::string(a);
    } else if (a == "--") {
      options_end = true;
    } else if (is_help(a)) {
      return help(explain_usage);
    } else if (a == "--rules") {
      auto v = value(i, a);
      if (!v) return 2;
      paths.emplace_back(*v);
    } else if (a == "--from" || a == "--to") {
      auto v = value(i, a);
      if (!v) return 2;
      (a == "--from" ? ctx.src : ctx.dst) = *v;
      (a == "--from" ? have_from : have_to) = true;
    } else if (a == "--direction") {
      auto v = value(i, a);
      if (!v) return 2;
      auto d = policy::parse_direction(*v);
      if (!d) return usage_error("--direction is request or response");
      ctx.dir = *d;
    } else if (a == "--tenant") {
      auto v = value(i, a);
      if (!v) return 2;
      ctx.tenant = *v;
    } else if (a == "--route") {
      auto v = value(i, a);
      if (!v) return 2;
      ctx.route = *v;
    } else if (a == "--part") {
      auto v = value(i, a);
      if (!v) return 2;
      std::string kind = *v;
      std::uint32_t n = 1;
      if (const auto eq = kind.find('='); eq != std::string::npos) {
        const std::string num = kind.substr(eq + 1);
        const auto res = std::from_chars(num.data(), num.data() + num.size(), n);
        if (res.ec != std::errc{} || res.ptr != num.data() + num.size()) return usage_error("--part KIND[=N]");
        kind.resize(eq);
      }
      ctx.non_text_parts[kind] += n;
    } else if (a == "--volume") {
      auto v = value(i, a);
      if (!v) return 2;
      if (!parse_volume(*v, volumes)) return usage_error("--volume COUNTER=N");
    } else if (a == "--file") {
      auto v = value(i, a);
      if (!v) return 2;
      file = *v;
    } else if (a == "--json") {
      as_json = true;
    } else if (a == "-") {
      file = "-";
    } else if (a.starts_with("--")) {
      return usage_error("unknown option " + std::string(a));
    } else {
      if (text) return usage_error("give the text once (quote it)");
      text = std::string(a);
    }
  }
  if (paths.empty()) return usage_error("explain needs --rules PATH");
  if (!have_from || !have_to) return usage_error("explain needs --from and --to");
  if (text.has_value() == file.has_value()) return usage_error("give the text as an argument, --file F or - (stdin)");
  if (file) {
    // A text to explain is at most what customsd takes as a request body.
    try {
      text = *file == "-" ? policy::read_input_stream(std::cin, "-", max_explain_bytes)
                          : policy::read_input_file(*file, max_explain_bytes);
    } catch (const policy::input_file_error& e) {
      std::cerr << e.file() << ": error: E_IO: " << e.why() << "\n";
      return 2;
    }
  }
  const auto r = policy::load_rule_set(paths);
  if (const int rc = report_load(r, "explain")) return rc;
  const auto& rs = *r.rules;
  if (!known_counters(rs, volumes)) return 2;
  auto e = rs.evaluate(*text, ctx);
  if (policy::has_volumes(rs)) {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    policy::evaluate_volumes_in_memory(rs, ctx, e.result, volumes, now);
    if (!e.result.volumes.empty()) e.redacted = rs.redact(*text, e.result.findings, 0);
  }
  const auto& v = e.result;

  if (as_json) {
    json::object o;
    o["action"] = policy::to_string(v.act);
    o["rules"] = json::array(v.rules.begin(), v.rules.end());
    json::array fs;
    for (const auto& f : v.findings) {
      json::object j;
      j["detector"] = f.detector;
      j["category"] = f.category;
      j["sensitive"] = f.sensitive;
      j["start"] = f.start;
      j["end"] = f.end;
      j["applied"] = policy::to_string(f.applied);
      fs.push_back(std::move(j));
    }
    o["findings"] = std::move(fs);
    o["tags"] = json::array(v.tags.begin(), v.tags.end());
    o["exceptions"] = json::array(v.exceptions.begin(), v.exceptions.end());
    o["rule_set_id"] = rs.id();
    o["rule_set_hash"] = v.rule_set_hash;
    if (v.act == policy::action::redact) o["redacted"] = e.redacted;
    if (!v.volumes.empty()) {
      json::array hs;
      for (const auto& h : v.volumes)
        hs.push_back(json::object{{"counter", h.counter}, {"scope", h.scope}, {"window", h.window},
                                  {"count", h.count}, {"added", h.added}, {"level", h.level},
                                  {"action", policy::to_string(h.act)}});
      o["volumes"] = std::move(hs);
    }
    std::cout << json::serialize(o) << "\n";
    return 0;
  }
  std::cout << "flow: " << policy::to_string(ctx.dir) << " " << ctx.src << " -> " << ctx.dst;
  if (!ctx.tenant.empty()) std::cout << ", tenant " << ctx.tenant;
  if (!ctx.route.empty()) std::cout << ", route " << ctx.route;
  for (const auto& [k, n] : ctx.non_text_parts) std::cout << ", " << n << " " << k;
  std::cout << "\nfindings:" << (v.findings.empty() ? " none\n" : "\n");
  for (const auto& f : v.findings)
    std::cout << "  " << f.detector << "  " << f.category << (f.sensitive ? " (sensitive)" : "") << "  [" << f.start
              << ", " << f.end << ")  " << policy::mask_match(f.text) << "  -> " << policy::to_string(f.applied) << "\n";
  std::cout << "rules:" << (v.rules.empty() ? " none\n" : "\n");
  for (const auto& id : v.rules) {
    const auto info = policy::describe_rule(rs, id);
    std::cout << "  " << id;
    if (info) {
      std::cout << "  " << policy::to_string(info->act);
      for (std::size_t i = 0; i < info->references.size(); ++i)
        std::cout << (i ? "; " : "  (") << info->references[i] << (i + 1 == info->references.size() ? ")" : "");
    }
    std::cout << "\n";
  }
  auto joined = [](const std::vector<std::string>& xs) {
    std::string s;
    for (const auto& x : xs) s += (s.empty() ? "" : ", ") + x;
    return s.empty() ? std::string("none") : s;
  };
  std::cout << "tags: " << joined(v.tags) << "\n";
  std::cout << "exceptions: " << joined(v.exceptions) << "\n";
  if (!v.volumes.empty()) {
    std::cout << "volumes:\n";
    for (const auto& h : v.volumes) {
      std::cout << "  " << h.counter << (h.scope.empty() ? "" : " [" + h.scope + "]") << " " << h.window << ": "
                << h.count << " subjects" << (h.added > 0 ? " (" + std::to_string(h.added) + " added)" : std::string(" (none added)"));
      if (!h.level.empty()) std::cout << ", level " << h.level << " -> " << policy::to_string(h.act);
      std::cout << "\n";
    }
  }
  std::cout << "action: " << policy::to_string(v.act) << "\n";
  if (v.act == policy::action::redact) std::cout << "redacted: " << e.redacted << "\n";
  std::cout << "rule set: " << rs.id() << " " << rs.version() << " " << v.rule_set_hash << "\n";
  return 0;
}

}  // namespace

int run_rules(std::span<const std::string_view> args) {
  if (args.empty()) return usage_error("missing command (check, test or explain)");
  const auto rest = args.subspan(1);
  if (args[0] == "check") return check(rest);
  if (args[0] == "test") return test(rest);
  if (args[0] == "explain") return explain(rest);
  if (is_help(args[0])) return help(usage);
  return usage_error("unknown command '" + std::string(args[0]) + "'");
}

}  // namespace customs::tools
