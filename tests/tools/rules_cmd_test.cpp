// customsctl rules check / test / explain: exit codes, output lines, --json shape.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <boost/json/parse.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "policy/authoring.hpp"
#include "policy/policy.hpp"
#include "tools/commands.hpp"

namespace json = boost::json;

namespace {

struct result {
  int code = 0;
  std::string out;
  std::string err;
  [[nodiscard]] std::vector<std::string> out_lines() const { return lines(out); }
  [[nodiscard]] std::vector<std::string> err_lines() const { return lines(err); }
  static std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> v;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
  }
};

// Runs `customsctl rules ARGS...` in-process, capturing stdout and stderr.
result rules(std::vector<std::string> args, const std::string& stdin_text = {}) {
  std::vector<std::string_view> views(args.begin(), args.end());
  std::ostringstream out, err;
  std::istringstream in(stdin_text);
  auto* old_out = std::cout.rdbuf(out.rdbuf());
  auto* old_err = std::cerr.rdbuf(err.rdbuf());
  auto* old_in = std::cin.rdbuf(in.rdbuf());
  result r;
  r.code = customs::tools::run_rules(views);
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  std::cin.rdbuf(old_in);
  r.out = out.str();
  r.err = err.str();
  return r;
}

const std::string source = CUSTOMS_SOURCE_DIR;
const std::string packs = source + "/rules";

struct temp_file {
  std::filesystem::path path;
  explicit temp_file(const std::string& content, const std::string& name = "pack.yaml") {
    std::random_device rd;
    const auto dir = std::filesystem::temp_directory_path() / ("customs-tools-test-" + std::to_string(rd()));
    std::filesystem::create_directories(dir);
    path = dir / name;
    std::ofstream(path) << content;
  }
  ~temp_file() {
    std::error_code ec;
    std::filesystem::remove_all(path.parent_path(), ec);
  }
};

const char* failing_pack = R"(schema: customs/v1
pack: {id: failing, version: "1"}
detectors:
  - {id: d.phone, category: pi.phone, pattern: '1[3-9]\d{9}'}
rules:
  - id: r.phone
    when: {detectors: [d.phone]}
    then: {action: redact}
tests:
  - id: t.good
    input: "13812345678"
    expect: {action: redact, findings: [{detector: d.phone, text: "13812345678"}]}
  - id: t.wrong-action
    input: "13812345678"
    expect: {action: block}
  - id: t.wrong-text
    input: "x 13812345678 y"
    expect: {findings: [{detector: d.phone, text: "13812345679"}], redacted: "x y"}
  - id: t.near-miss
    input: "12812345678"
    expect: {absent: [d.phone]}
)";

}  // namespace

TEST_CASE("rules check on the shipped packs prints one summary line and exits 0", "[tools][rules]") {
  const auto r = rules({"check", packs});
  CHECK(r.code == 0);
  CHECK(r.err.empty());
  REQUIRE(r.out_lines().size() == 1);
  const std::string line = r.out_lines()[0];
  CHECK(line.starts_with("ok: 5 packs (apac-identifiers 2025.2, cn-pipl-outbound 2025.1, eu-gdpr-transfers 2025.2, "
                         "secrets 2025.1, us-bulk-data 2025.3)"));
  const std::vector<std::filesystem::path> p{packs};
  const auto loaded = customs::policy::load_rule_set(p);
  REQUIRE(loaded.ok());
  CHECK(line.ends_with("hash " + loaded.rules->hash()));
}

TEST_CASE("rules check reports every error with its position and exits 1", "[tools][rules]") {
  const std::string file = source + "/tests/policy/data/invalid/references.yaml";
  const auto r = rules({"check", file});
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  const auto lines = r.err_lines();
  REQUIRE(lines.size() == 9);  // eight errors and the count
  CHECK(lines[0] == file + ":16:19: error: E_UNKNOWN_JURISDICTION: group 'group_a' (jurisdictions.group_a.members): 'QQ' is not an ISO 3166-1 alpha-2 code");
  for (std::size_t i = 0; i < 8; ++i) CHECK(lines[i].starts_with(file + ":"));
  CHECK(lines[2].find(": error: E_UNKNOWN_GROUP: rule 'r.one' (rules[0].when.src): no jurisdiction group 'group_b'") != std::string::npos);
  CHECK(lines[8] == "rules check: 8 errors, 0 warnings");
}

TEST_CASE("rules check: a missing path is an I/O error (exit 2), no path a usage error", "[tools][rules]") {
  auto r = rules({"check", source + "/no/such/rules"});
  CHECK(r.code == 2);
  CHECK(r.err.find("E_IO: no such file or folder") != std::string::npos);
  r = rules({"check"});
  CHECK(r.code == 2);
  CHECK(r.err.find("usage:") != std::string::npos);
  CHECK(rules({"check", "--bogus", packs}).code == 2);
  CHECK(rules({"frobnicate"}).code == 2);
  CHECK(rules({}).code == 2);
  const auto h = rules({"--help"});
  CHECK(h.code == 0);
  CHECK(h.out.starts_with("usage:"));
}

TEST_CASE("rules check --json gives validity, diagnostics and the hash", "[tools][rules]") {
  auto r = rules({"check", "--json", packs});
  CHECK(r.code == 0);
  auto v = json::parse(r.out).as_object();
  CHECK(v.at("valid").as_bool());
  CHECK(v.at("diagnostics").as_array().empty());
  CHECK(v.at("rule_set_hash").as_string().size() == 64);
  CHECK(v.at("detectors").as_int64() == 35);  // the shipped packs
  r = rules({"check", "--json", source + "/tests/policy/data/invalid/regex.yaml"});
  CHECK(r.code == 1);
  v = json::parse(r.out).as_object();
  CHECK_FALSE(v.at("valid").as_bool());
  const auto& d = v.at("diagnostics").as_array();
  REQUIRE(d.size() == 6);
  CHECK(d[0].at("line").as_int64() == 12);
  CHECK(d[0].at("col").as_int64() == 14);
  CHECK(d[0].at("level").as_string() == "error");
  CHECK(d[0].at("code").as_string() == "E_REGEX");
  CHECK(v.contains("rule_set_hash") == false);
}

TEST_CASE("rules test passes on the shipped packs", "[tools][rules]") {
  const auto r = rules({"test", packs});
  CHECK(r.code == 0);
  const std::vector<std::filesystem::path> p{packs};
  const auto n = customs::policy::summarize(*customs::policy::load_rule_set(p).rules).tests;
  REQUIRE(n > 40);
  CHECK(r.out_lines() == std::vector<std::string>{std::to_string(n) + " passed, 0 failed"});
  const auto v = rules({"test", "--verbose", packs});
  CHECK(v.out_lines().size() == n + 1);
  CHECK(v.out_lines()[0].starts_with("ok "));
}

TEST_CASE("rules test prints each failure with its id and exits 1", "[tools][rules]") {
  temp_file f(failing_pack);
  const auto r = rules({"test", f.path.string()});
  CHECK(r.code == 1);
  const auto lines = r.out_lines();
  const std::string at = f.path.string();
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == "FAIL t.wrong-action (" + at + ":13:5): action: expected block, got redact (rules [r.phone])");
  CHECK(lines[1] == "FAIL t.wrong-text (" + at + ":16:5): findings: expected [d.phone \"13812345679\"], got [d.phone \"13812345678\" at 2]");
  CHECK(lines[2] == "FAIL t.wrong-text (" + at + ":16:5): redacted: expected \"x y\", got \"x [REDACTED:pi.phone] y\"");
  CHECK(lines[3] == "2 passed, 2 failed");
}

TEST_CASE("rules test on invalid rules prints the errors and exits 1", "[tools][rules]") {
  const auto r = rules({"test", source + "/tests/policy/data/invalid/duplicates.yaml"});
  CHECK(r.code == 1);
  CHECK(r.err.find("E_DUPLICATE_ID") != std::string::npos);
}

TEST_CASE("rules explain shows findings, rules, tags and the action", "[tools][rules]") {
  const auto r = rules({"explain", "--rules", packs, "--from", "CN", "--to", "US", "身份证 11010519491231002X 电话 13812345678"});
  CHECK(r.code == 0);
  const auto l = r.out_lines();
  REQUIRE(l.size() >= 9);
  CHECK(l[0] == "flow: request CN -> US");
  CHECK(l[1] == "findings:");
  CHECK(l[2] == "  cn.resident_id  pi.national_id (sensitive)  [10, 28)  **************002X  -> block");
  CHECK(l[3] == "  cn.mobile  pi.phone  [36, 47)  *******5678  -> redact");
  CHECK(l[4] == "rules:");
  CHECK(l[5].starts_with("  cn.pipl.personal.redact  redact  (PIPL art. 38"));
  CHECK(l[6].starts_with("  cn.pipl.sensitive.block  block  (PIPL art. 28"));
  CHECK(l[7] == "tags: pipl.personal, pipl.sensitive");
  CHECK(l[8] == "exceptions: none");
  CHECK(l[9] == "action: block");
  CHECK(r.out.find("11010519491231002X") == std::string::npos);  // never the whole match
}

TEST_CASE("rules explain --json has action, rules, findings, tags and the hash", "[tools][rules]") {
  const auto r = rules({"explain", "--json", "--rules", packs, "--from", "DE", "--to", "US", "--direction", "request",
                        "IBAN DE89 3704 0044 0532 0130 00, mail a.b@c.de"});
  CHECK(r.code == 0);
  const auto v = json::parse(r.out).as_object();
  CHECK(v.at("action").as_string() == "redact");
  CHECK(v.at("rules").as_array().size() == 2);
  CHECK(v.at("rules").as_array()[0].as_string() == "eu.gdpr.transfer.email");
  const auto& f = v.at("findings").as_array();
  REQUIRE(f.size() == 2);
  CHECK(f[0].at("detector").as_string() == "eu.iban");
  CHECK(f[0].at("category").as_string() == "financial.iban");
  CHECK(f[0].at("start").as_int64() == 5);
  CHECK(f[0].at("end").as_int64() == 32);
  CHECK(f[1].at("detector").as_string() == "eu.email");
  CHECK(v.at("tags").as_array().size() == 1);
  const std::vector<std::filesystem::path> p{packs};
  CHECK(v.at("rule_set_hash").as_string() == customs::policy::load_rule_set(p).rules->hash());
  CHECK(v.at("redacted").as_string() == "IBAN **** **** **** **** **30 00, mail a.b@c.de");
}

TEST_CASE("rules explain reads --file and stdin", "[tools][rules]") {
  temp_file f("AKIAUJZDE8GXD6NCF10E");
  auto r = rules({"explain", "--json", "--rules", packs, "--from", "US", "--to", "US", "--file", f.path.string()});
  CHECK(r.code == 0);
  CHECK(json::parse(r.out).at("action").as_string() == "block");
  r = rules({"explain", "--json", "--rules", packs, "--from", "US", "--to", "US", "-"}, "nothing to see");
  CHECK(r.code == 0);
  CHECK(json::parse(r.out).at("action").as_string() == "allow");
  CHECK(json::parse(r.out).at("findings").as_array().empty());
}

TEST_CASE("rules explain matches non-text parts, tenants and routes", "[tools][rules]") {
  temp_file f(R"(schema: customs/v1
pack: {id: parts, version: "1"}
rules:
  - id: r.files
    when: {parts: [file], tenants: [acme]}
    then: {action: block}
exceptions:
  - {id: x.lab, rules: [r.files], routes: [/lab], reason: test, expires: 2999-12-31}
)");
  auto r = rules({"explain", "--json", "--rules", f.path.string(), "--from", "DE", "--to", "US", "--tenant", "acme",
                  "--part", "file=2", "hi"});
  CHECK(json::parse(r.out).at("action").as_string() == "block");
  r = rules({"explain", "--json", "--rules", f.path.string(), "--from", "DE", "--to", "US", "--tenant", "acme",
             "--part", "image", "hi"});
  CHECK(json::parse(r.out).at("action").as_string() == "allow");
  r = rules({"explain", "--json", "--rules", f.path.string(), "--from", "DE", "--to", "US", "--tenant", "acme",
             "--route", "/lab", "--part", "file", "hi"});
  const auto v = json::parse(r.out);
  CHECK(v.at("action").as_string() == "allow");
  CHECK(v.at("exceptions").as_array().size() == 1);
}

TEST_CASE("rules explain usage errors exit 2", "[tools][rules]") {
  CHECK(rules({"explain", "--rules", packs, "--to", "US", "x"}).code == 2);             // no --from
  CHECK(rules({"explain", "--from", "CN", "--to", "US", "x"}).code == 2);               // no --rules
  CHECK(rules({"explain", "--rules", packs, "--from", "CN", "--to", "US"}).code == 2);  // no text
  CHECK(rules({"explain", "--rules", packs, "--from", "CN", "--to", "US", "a", "b"}).code == 2);
  CHECK(rules({"explain", "--rules", packs, "--from", "CN", "--to", "US", "--direction", "up", "x"}).code == 2);
  CHECK(rules({"explain", "--rules", packs, "--from", "CN", "--to", "US", "--file", "/no/such/file"}).code == 2);
  CHECK(rules({"explain", "--rules", packs, "--from"}).code == 2);
  CHECK(rules({"explain", "--rules", source + "/tests/policy/data/invalid/keys.yaml", "--from", "CN", "--to", "US", "x"}).code == 1);
}

TEST_CASE("rules explain --volume sets a counter's state and shows the level reached", "[tools][rules]") {
  const std::string ssn = "Employee SSN 536-22-1234";
  auto below = rules({"explain", "--json", "--rules", packs, "--from", "US", "--to", "CN", "--tenant", "acme",
                      "--volume", "us.bulk.identifiers=99999", ssn});
  CHECK(below.code == 0);
  auto v = json::parse(below.out).as_object();
  CHECK(v.at("action").as_string() == "tag");
  auto above = rules({"explain", "--rules", packs, "--from", "US", "--to", "CN", "--tenant", "acme", "--volume",
                      "us.bulk.identifiers=100000", ssn});
  CHECK(above.code == 0);
  INFO(above.out);
  CHECK(above.out.find("  us.bulk.identifiers.bulk  block  (28 CFR 202.205(f)") != std::string::npos);
  CHECK(above.out.find("  us.bulk.identifiers [tenant=acme,dst=CN] rolling-12m: 100001 subjects (none added), level "
                       "us.bulk.identifiers.bulk -> block") != std::string::npos);
  CHECK(above.out.find("action: block") != std::string::npos);
}

TEST_CASE("rules explain and test refuse --volume for an unknown counter or without a number", "[tools][rules]") {
  CHECK(rules({"explain", "--rules", packs, "--from", "US", "--to", "CN", "--volume", "no.such=3", "x"}).code == 2);
  CHECK(rules({"explain", "--rules", packs, "--from", "US", "--to", "CN", "--volume", "us.bulk.identifiers", "x"}).code == 2);
  CHECK(rules({"test", "--volume", "no.such=3", packs}).code == 2);
}

TEST_CASE("rules test --volume sets the counters of tests that set none", "[tools][rules]") {
  // With every US counter past its threshold, the tests that expect a tag for
  // US identifiers to a country of concern fail; the others still pass.
  const auto r = rules({"test", "--volume", "us.bulk.identifiers=100000", packs});
  CHECK(r.code == 1);
  CHECK(r.out.find("FAIL us.phone.tagged") != std::string::npos);
  CHECK(r.out.find("FAIL us.ssn.below-bulk") == std::string::npos);  // sets its own state
}

TEST_CASE("rules check refuses a FIFO or a device named as a rule file, without blocking or reading it", "[tools][rules]") {
  temp_file dir_holder("x");
  const auto fifo = dir_holder.path.parent_path() / "rules.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto r = rules({"check", fifo.string()});
  CHECK(r.code == 2);
  CHECK(r.err.find(fifo.string() + ": error: E_IO: is a FIFO, not a regular file") != std::string::npos);
  r = rules({"check", "/dev/zero"});
  CHECK(r.code == 2);
  CHECK(r.err.find("/dev/zero: error: E_IO: is a character device, not a regular file") != std::string::npos);
}

TEST_CASE("rules check refuses a rule file over the size limit", "[tools][rules]") {
  const customs::policy::load_options defaults;
  temp_file f("schema: customs/v1\n# " + std::string(defaults.max_file_size, 'x') + "\n");
  const auto r = rules({"check", f.path.string()});
  CHECK(r.code == 2);
  CHECK(r.err.find("E_IO: is " + std::to_string(defaults.max_file_size + 22) + " bytes, larger than the limit of " +
                   std::to_string(defaults.max_file_size)) != std::string::npos);
}

TEST_CASE("rules explain refuses a FIFO or a device as --file, and a text over 16 MiB on stdin", "[tools][rules]") {
  temp_file dir_holder("x");
  const auto fifo = dir_holder.path.parent_path() / "text.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  for (const std::string& file : {fifo.string(), std::string("/dev/zero")}) {
    const auto r = rules({"explain", "--rules", packs, "--from", "US", "--to", "US", "--file", file});
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK(r.err.find(file + ": error: E_IO: is a") != std::string::npos);
  }
  auto r = rules({"explain", "--rules", packs, "--from", "US", "--to", "US", "-"}, std::string((16u << 20) + 1, 'a'));
  CHECK(r.code == 2);
  CHECK(r.err.find("-: error: E_IO: is larger than 16777216 bytes") != std::string::npos);
  r = rules({"explain", "--json", "--rules", packs, "--from", "US", "--to", "US", "-"}, std::string(16u << 20, 'a'));
  CHECK(r.code == 0);  // at the limit
}

TEST_CASE("rules commands take -- as the end of options: a text or path after it may start with dashes", "[tools][rules]") {
  const auto c = rules({"check", "--", packs});
  CHECK(c.code == 0);
  CHECK(c.err.empty());
  const auto t = rules({"test", "--", packs});
  CHECK(t.code == 0);
  const auto e = rules({"explain", "--rules", packs, "--from", "CN", "--to", "US", "--", "--json 电话 13812345678"});
  CHECK(e.code == 0);
  REQUIRE(e.out_lines().size() >= 3);
  CHECK(e.out_lines()[0] == "flow: request CN -> US");
  CHECK(e.out_lines()[2] == "  cn.mobile  pi.phone  [14, 25)  *******5678  -> redact");
  // Before `--` an unknown option is still refused.
  CHECK(rules({"check", "--bogus", packs}).code == 2);
}
