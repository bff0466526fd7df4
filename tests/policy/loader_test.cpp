#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "policy/authoring.hpp"
#include "policy/canonical.hpp"
#include "policy/jurisdictions.hpp"
#include "support.hpp"

using namespace customs::policy;
using namespace customs::policy::testing;

namespace {

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const char* minimal = R"(schema: customs/v1
pack: {id: mini, version: "1"}
detectors:
  - id: d.phone
    category: pi.phone
    pattern: '1[3-9]\d{9}'
rules:
  - id: r.phone
    when: {detectors: [d.phone]}
    then: {action: redact}
tests:
  - id: t.pos
    input: "13812345678"
    expect: {findings: [{detector: d.phone}]}
  - id: t.neg
    input: "12812345678"
    expect: {absent: [d.phone]}
)";

}  // namespace

// Each file under data/invalid/ names the diagnostics it must produce in
// "# expect: CODE LINE:COL" comments (errors, and warnings as "# expect-warning:").
// The loader must report exactly those: every error, each at its place.
TEST_CASE("invalid rule files report every error at its position (data-driven)", "[loader]") {
  const auto dir = source_dir() / "tests/policy/data/invalid";
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".yaml") continue;
    ++files;
    const std::string content = read(e.path());
    std::multiset<std::string> want;
    static const std::regex expect_re(R"(# expect(-warning)?: (\w+) (\d+:\d+))");
    for (std::sregex_iterator it(content.begin(), content.end(), expect_re), end; it != end; ++it)
      want.insert((*it)[3].str() + " " + (*it)[2].str());
    const std::vector<std::filesystem::path> p{e.path()};
    const auto r = load_rule_set(p);
    std::multiset<std::string> got;
    for (const auto& d : r.diagnostics) {
      if (d.code.starts_with("W_DETECTOR")) continue;  // coverage warnings are tested elsewhere
      got.insert(std::to_string(d.line) + ":" + std::to_string(d.col) + " " + d.code);
      CHECK(d.file == e.path().string());
    }
    INFO(e.path().filename().string());
    for (const auto& d : r.diagnostics) INFO(d.to_string());
    CHECK(got == want);
    CHECK_FALSE(r.ok());
    CHECK(r.rules == nullptr);
  }
  CHECK(files >= 7);
}

TEST_CASE("messages name the detector or rule and the YAML path", "[loader]") {
  const std::vector<std::filesystem::path> p{source_dir() / "tests/policy/data/invalid/regex.yaml"};
  const auto r = load_rule_set(p);
  bool seen = false;
  for (const auto& d : r.diagnostics) {
    if (d.code != "E_PATTERN_UNBOUNDED") continue;
    seen = true;
    CHECK(d.message.find("detector 'bad.unbounded'") != std::string::npos);
    CHECK(d.message.find("(pattern)") != std::string::npos);
    CHECK(d.to_string().find("regex.yaml:15:14: error: E_PATTERN_UNBOUNDED: detector 'bad.unbounded'") != std::string::npos);
  }
  CHECK(seen);
  // E_REGEX speaks of the pattern as written, once (it showed the pattern with
  // the full-width digit classes spliced in, twice).
  std::string regex_message;
  for (const auto& d : r.diagnostics)
    if (d.code == "E_REGEX") regex_message = d.message;
  CHECK(regex_message == "detector 'bad.syntax' (pattern): missing ): (\\d{3}");
  const std::vector<std::filesystem::path> q{source_dir() / "tests/policy/data/invalid/keys.yaml"};
  const auto k = load_rule_set(q);
  bool path_seen = false;
  for (const auto& d : k.diagnostics)
    if (d.code == "E_UNKNOWN_KEY" && d.message.find("rule 'r.one' (rules[0].when.destination)") != std::string::npos)
      path_seen = true;
  CHECK(path_seen);
}

TEST_CASE("country code errors are one code, with the code meant where it is known", "[loader]") {
  const std::vector<std::filesystem::path> p{source_dir() / "tests/policy/data/invalid/country_codes.yaml"};
  const auto r = load_rule_set(p);
  std::vector<std::string> messages;
  for (const auto& d : r.diagnostics) messages.push_back(d.code + " " + d.message);
  const auto has = [&](std::string_view part) {
    for (const auto& m : messages)
      if (m.find(part) != std::string::npos) return true;
    return false;
  };
  for (const auto& m : messages) INFO(m);
  CHECK(has("E_UNKNOWN_JURISDICTION rule 'r.one' (rules[0].when.src): 'UK' is not an ISO 3166-1 alpha-2 code (did you mean GB?)"));
  CHECK(has("'EL' is not an ISO 3166-1 alpha-2 code (did you mean GR?)"));
  CHECK(has("'SGP' is not an ISO 3166-1 alpha-2 code (jurisdictions are two-letter codes)"));
  CHECK(has("W_YAML11_BOOLEAN"));
  CHECK(has("YAML 1.1 tools read a plain NO as a boolean; write \"NO\""));
}

TEST_CASE("lint: a character class that swallows a quantifier or group warns, separators in a class do not", "[loader]") {
  const auto warns = [](const std::string& pattern) {
    std::string y = minimal;
    const std::string from = "pattern: '1[3-9]\\d{9}'";
    y.replace(y.find(from), from.size(), "pattern: '" + pattern + "'");
    const auto r = load_yaml(y);
    if (!r.ok()) return std::string("(the pattern did not load)");
    std::string got;
    for (const auto& d : r.diagnostics)
      if (d.code == "W_PATTERN_CLASS") got = d.message;
    return got;
  };
  CHECK(warns("1[3-9\\d{9}]").find("the character class [3-9\\d{9}] holds") != std::string::npos);
  CHECK(warns("[A-Z(\\d{4})]").find("[A-Z(\\d{4})]") != std::string::npos);
  CHECK(warns("1[3|5]\\d{9}") != "");
  CHECK(warns("1[3-9]\\d{9}").empty());
  CHECK(warns("\\(?1[3-9]\\d{2}[ ().-]?\\d{7}").empty());
  CHECK(warns("1[3-9][[:digit:]]{9}").empty());
  CHECK(warns("1\\[3-9{9}").empty());  // an escaped '[' opens no class
  // Braces of \x{...} and \p{...} escapes belong to them.
  CHECK(warns("1[3-9\\x{2010}-\\x{2013}\\x{A0}]\\d{9}").empty());
  CHECK(warns("1[\\p{Nd}\\x{FF10}]\\d{9}").empty());
  CHECK(warns("1[\\x{A0}\\d{9}]") != "");  // a swallowed quantifier after one still warns
}

TEST_CASE("lint: a detector without context words that finds common words warns, naming one", "[loader]") {
  const auto r = load_yaml(R"(schema: customs/v1
pack: {id: words, version: "1"}
detectors:
  - id: d.hello
    category: misc.word
    keywords: [hello, xyzzy]
  - id: d.letters
    category: misc.word
    pattern: '[a-z]{4,8}'
  - id: d.zh
    category: misc.word
    keywords: ['我们']
  - id: d.letters.context
    category: misc.word
    pattern: '[a-z]{4,8}'
    context: {words: [codename], window: 16}
  - id: d.letters.validated
    category: misc.word
    pattern: '[a-z]{4,8}'
    validators: luhn
  - id: d.shouted
    category: misc.word
    keywords: [HELLO]
  - id: d.marker
    category: misc.word
    keywords: [TOP SECRET]
    ignore_case: true
  - id: d.code
    category: misc.code
    pattern: 'ab\d{6}'
    ignore_case: true
rules:
  - id: r.words
    when: {categories: [misc.*]}
    then: {action: tag}
)");
  for (const auto& d : r.diagnostics) INFO(d.to_string());
  REQUIRE(r.ok());  // a warning does not reject the set
  std::vector<std::string> got;
  std::map<int, std::string> messages;
  for (const auto& d : r.diagnostics) {
    if (d.code != "W_DETECTOR_COMMON_WORDS") continue;
    got.push_back(std::to_string(d.line) + ":" + std::to_string(d.col) + " " + d.code);
    messages[d.line] = d.to_string();
    CHECK(d.level == diagnostic::severity::warning);
  }
  // Keywords and patterns that find ordinary words, at the keywords or pattern;
  // not with context words, a validator that rejects the words, keywords in
  // capitals only, a phrase, or a pattern that needs digits.
  CHECK(got == std::vector<std::string>{"6:15 W_DETECTOR_COMMON_WORDS", "9:14 W_DETECTOR_COMMON_WORDS",
                                        "12:15 W_DETECTOR_COMMON_WORDS"});
  CHECK(messages[6].find("pack.yaml:6:15: warning: W_DETECTOR_COMMON_WORDS: detector 'd.hello' (keywords): "
                         "without context words it finds the common word 'hello'") != std::string::npos);
  CHECK(messages[9].find("detector 'd.letters' (pattern): without context words it finds the common word '") !=
        std::string::npos);
  CHECK(messages[12].find("the common word '我们'") != std::string::npos);
}

TEST_CASE("lint: a rule whose when no flow can satisfy warns, a satisfiable one does not", "[loader]") {
  std::string all;
  for (char a = 'A'; a <= 'Z'; ++a)
    for (char b = 'A'; b <= 'Z'; ++b)
      if (const std::string c{a, b}; is_country_code(c)) all += (all.empty() ? "" : ", ") + c;
  std::string y = R"(schema: customs/v1
pack: {id: never, version: "1"}
jurisdictions:
  eu: {source: test, date: 2024-01-01, members: [DE, FR]}
  every: {source: test, date: 2024-01-01, members: [ALL]}
detectors:
  - id: d.phone
    category: pi.phone
    pattern: '1[3-9]\d{9}'
rules:
  - id: r.src.excluded
    when: {src: {in: [DE, FR], not: [eu]}}
    then: {action: block}
  - id: r.dst.everything.excluded
    when: {dst: {not: [every]}}
    then: {action: block}
  - id: r.tenant.excluded
    when: {tenants: {in: [acme], not: [acme]}}
    then: {action: block}
  - id: r.sensitive.none
    when: {detectors: [d.phone], sensitive: true}
    then: {action: block}
  - id: r.near.src
    when: {src: {in: [DE, FR, CH], not: [eu]}, dst: {not: [eu, CH]}, tenants: {not: [acme]}}
    then: {action: block}
  - id: r.near.sensitive
    when: {detectors: [d.phone], sensitive: false}
    then: {action: block}
)";
  y.replace(y.find("[ALL]"), 5, "[" + all + "]");
  const auto r = load_yaml(y);
  for (const auto& d : r.diagnostics) INFO(d.to_string());
  REQUIRE(r.ok());  // a warning does not reject the set
  std::vector<std::string> got;
  std::vector<std::string> messages;
  for (const auto& d : r.diagnostics) {
    if (d.code != "W_RULE_NEVER_FIRES") continue;
    got.push_back(std::to_string(d.line) + ":" + std::to_string(d.col) + " " + d.code);
    messages.push_back(d.message);
    CHECK(d.level == diagnostic::severity::warning);
  }
  CHECK(got == std::vector<std::string>{"12:17 W_RULE_NEVER_FIRES", "15:17 W_RULE_NEVER_FIRES",
                                        "18:21 W_RULE_NEVER_FIRES", "20:5 W_RULE_NEVER_FIRES"});
  REQUIRE(messages.size() == 4);
  CHECK(messages[0] == "rule 'r.src.excluded' (when.src): 'not' excludes every jurisdiction 'in' names, so the rule never fires");
  CHECK(messages[1] == "rule 'r.dst.everything.excluded' (when.dst): 'not' excludes every ISO 3166-1 code, so the rule never fires");
  CHECK(messages[2] == "rule 'r.tenant.excluded' (when.tenants): 'not' excludes every tenant 'in' names, so the rule never fires");
  CHECK(messages[3] == "rule 'r.sensitive.none' (when.sensitive): none of the detectors it names is sensitive: true, so it selects no finding and never fires");
}

TEST_CASE("the shipped packs with the demo pack load with no warning", "[loader]") {
  const std::vector<std::filesystem::path> p{source_dir() / "rules", source_dir() / "config/demo-rules"};
  const auto r = load_rule_set(p);
  for (const auto& d : r.diagnostics) INFO(d.to_string());
  REQUIRE(r.ok());
  CHECK(r.diagnostics.empty());
}

TEST_CASE("a minimal valid pack loads without diagnostics", "[loader]") {
  const auto r = load_yaml(minimal);
  for (const auto& d : r.diagnostics) INFO(d.to_string());
  REQUIRE(r.ok());
  CHECK(r.diagnostics.empty());
  CHECK(r.rules->id() == "mini");
  CHECK(r.rules->version() == "1");
  CHECK(r.rules->hash().size() == 64);
}

TEST_CASE("the shipped packs load with no error and no warning", "[loader]") {
  const std::vector<std::filesystem::path> p{source_dir() / "rules"};
  const auto r = load_rule_set(p);
  for (const auto& d : r.diagnostics) INFO(d.to_string());
  REQUIRE(r.ok());
  CHECK(r.diagnostics.empty());
  CHECK(r.rules->id() == "apac-identifiers+cn-pipl-outbound+eu-gdpr-transfers+secrets+us-bulk-data");
}

TEST_CASE("each shipped pack also loads on its own", "[loader]") {
  for (const char* f : {"apac-identifiers.yaml", "cn-pipl-outbound.yaml", "eu-gdpr-transfers.yaml", "secrets.yaml",
                        "us-bulk-data.yaml"}) {
    const std::vector<std::filesystem::path> p{source_dir() / "rules" / f};
    const auto r = load_rule_set(p);
    INFO(f);
    CHECK(r.ok());
  }
}

TEST_CASE("a regex over the program-size limit is an error at its pattern", "[loader]") {
  load_options o;
  o.max_program_size = 20;
  const auto r = load_yaml(minimal, o);
  CHECK_FALSE(r.ok());
  CHECK(codes(r) == std::vector<std::string>{"6:14 E_REGEX_TOO_BIG"});
  load_options big;
  big.max_program_size = 100000;
  CHECK(load_yaml(minimal, big).ok());
}

TEST_CASE("a regex over the memory budget is an error", "[loader]") {
  load_options o;
  o.regex_max_mem = 1024;
  const auto r = load_yaml(minimal, o);
  CHECK_FALSE(r.ok());
  REQUIRE(codes(r).size() == 1);
  CHECK(codes(r)[0] == "6:14 E_REGEX_TOO_BIG");
}

TEST_CASE("a match longer than the configured limit is an error", "[loader]") {
  load_options o;
  o.max_match_length = 20;  // \d{9} with full-width digits can take 27 bytes
  const auto r = load_yaml(minimal, o);
  CHECK(codes(r) == std::vector<std::string>{"6:14 E_PATTERN_TOO_LONG"});
}

TEST_CASE("duplicate ids across files name both places", "[loader]") {
  temp_dir d;
  d.write("a.yaml", minimal);
  std::string other = minimal;
  other.replace(other.find("id: mini"), 8, "id: mini2");
  other.replace(other.find("t.pos"), 5, "t.pos2");
  other.replace(other.find("t.neg"), 5, "t.neg2");
  d.write("b.yaml", other);
  const std::vector<std::filesystem::path> p{d.path()};
  const auto r = load_rule_set(p);
  CHECK_FALSE(r.ok());
  std::vector<std::string> dup;
  for (const auto& x : r.diagnostics)
    if (x.code == "E_DUPLICATE_ID") dup.push_back(std::filesystem::path(x.file).filename().string() + " " + x.message);
  REQUIRE(dup.size() == 2);
  CHECK(dup[0].starts_with("b.yaml detector 'd.phone': the id is already used at "));
  CHECK(dup[0].find("a.yaml:4:5") != std::string::npos);
  CHECK(dup[1].starts_with("b.yaml rule 'r.phone'"));
}

TEST_CASE("a folder loads every yaml file inside, sorted, as one set", "[loader]") {
  temp_dir d;
  d.write("z/second.yml", R"(schema: customs/v1
pack: {id: b-pack, version: "2"}
rules:
  - id: r.uses.a
    when: {detectors: [d.phone], src: [shared_group]}
    then: {action: block}
)");
  std::string first = minimal;
  first += "jurisdictions:\n  shared_group: {source: s, date: 2024-01-01, members: [CN]}\n";
  d.write("a/first.yaml", first);
  d.write("notes.txt", "not a rule file");
  const std::vector<std::filesystem::path> p{d.path()};
  const auto r = load_rule_set(p);
  for (const auto& x : r.diagnostics) INFO(x.to_string());
  REQUIRE(r.ok());
  CHECK(r.rules->id() == "b-pack+mini");
  CHECK(r.rules->version() == "2+1");
}

TEST_CASE("missing paths and empty folders are I/O errors", "[loader]") {
  temp_dir d;
  const std::vector<std::filesystem::path> p{d.path() / "nope.yaml", d.path()};
  const auto r = load_rule_set(p);
  CHECK_FALSE(r.ok());
  std::vector<std::string> c;
  for (const auto& x : r.diagnostics) c.push_back(x.code);
  CHECK(c == std::vector<std::string>{"E_IO", "E_NO_RULE_FILES"});
}

TEST_CASE("an expired exception is a warning, a current one is not", "[loader]") {
  std::string y = minimal;
  y += R"(exceptions:
  - id: x.old
    rules: [r.phone]
    tenants: [acme]
    reason: pilot
    expires: 2024-06-30
)";
  load_options before;
  before.now = day(2024, 6, 30);
  const auto a = load_yaml(y, before);
  REQUIRE(a.ok());
  CHECK(codes(a, false).empty());
  load_options after;
  after.now = day(2024, 7, 1);
  const auto b = load_yaml(y, after);
  REQUIRE(b.ok());  // a warning does not reject the set
  CHECK(codes(b, false) == std::vector<std::string>{"19:5 W_EXCEPTION_EXPIRED"});
  CHECK(b.diagnostics[0].level == diagnostic::severity::warning);
  CHECK(b.diagnostics[0].to_string().find(": warning: W_EXCEPTION_EXPIRED: exception 'x.old'") != std::string::npos);
}

TEST_CASE("coverage warnings: unused detectors and missing positive or negative tests", "[loader]") {
  const auto r = load_yaml(R"(schema: customs/v1
pack: {id: cov, version: "1"}
detectors:
  - id: d.used
    category: pi.phone
    pattern: '1[3-9]\d{9}'
  - id: d.unused
    category: pi.other
    pattern: 'zz\d{4}'
rules:
  - id: r.one
    when: {detectors: [d.used]}
    then: {action: tag}
tests:
  - id: t.pos
    input: "13812345678"
    expect: {findings: [{detector: d.used}]}
)");
  REQUIRE(r.ok());
  CHECK(codes(r, false) == std::vector<std::string>{"4:5 W_DETECTOR_NO_NEGATIVE_TEST", "7:5 W_DETECTOR_UNUSED",
                                                    "7:5 W_DETECTOR_UNTESTED", "7:5 W_DETECTOR_NO_NEGATIVE_TEST"});
}

TEST_CASE("diagnostic::to_string has the file:line:col: level: CODE: message shape", "[loader]") {
  diagnostic d;
  d.file = "a.yaml";
  d.line = 3;
  d.col = 7;
  d.code = "E_X";
  d.message = "bad";
  CHECK(d.to_string() == "a.yaml:3:7: error: E_X: bad");
  d.level = diagnostic::severity::warning;
  d.line = 0;
  CHECK(d.to_string() == "a.yaml: warning: E_X: bad");
}

TEST_CASE("the canonical hash ignores formatting and tests", "[loader][hash]") {
  const auto a = load_yaml(minimal);
  // Same content: other key order, flow vs block style, quoting, comments, and a
  // different test section.
  const auto b = load_yaml(R"(# a comment
pack:
  version: '1'
  id: "mini"
schema: "customs/v1"
rules:
  - then:
      action: redact
    id: r.phone
    when:
      detectors:
        - d.phone
detectors: [{pattern: "1[3-9]\\d{9}", id: d.phone, category: pi.phone, sensitive: false}]
tests:
  - id: other
    input: "x"
    expect: {absent: [d.phone]}
)");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a.rules->hash() == b.rules->hash());
}

TEST_CASE("any semantic change alters the canonical hash", "[loader][hash]") {
  const auto base = load_yaml(minimal);
  REQUIRE(base.ok());
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"action: redact", "action: block"},
      {"'1[3-9]\\d{9}'", "'1[3-8]\\d{9}'"},
      {"category: pi.phone", "category: pi.mobile"},
      {"when: {detectors: [d.phone]}", "when: {detectors: [d.phone], src: [CN]}"},
      {"when: {detectors: [d.phone]}", "when: {detectors: [d.phone], direction: request}"},
      {"then: {action: redact}", "then: {action: redact, redaction: last4}"},
      {"then: {action: redact}", "then: {action: redact, tags: [t]}"},
      {"version: \"1\"", "version: \"2\""},
      {"    pattern: '1[3-9]\\d{9}'", "    pattern: '1[3-9]\\d{9}'\n    allow: [\"13800000000\"]"},
      {"    pattern: '1[3-9]\\d{9}'", "    pattern: '1[3-9]\\d{9}'\n    digit_separators: false"},
  };
  std::set<std::string> seen{base.rules->hash()};
  for (const auto& [from, to] : edits) {
    std::string y = minimal;
    const auto pos = y.find(from);
    REQUIRE(pos != std::string::npos);
    y.replace(pos, from.size(), to);
    const auto r = load_yaml(y);
    INFO(to);
    REQUIRE(r.ok());
    CHECK(seen.insert(r.rules->hash()).second);
  }
}

TEST_CASE("the hash is SHA-256 over the domain-separated canonical form", "[loader][hash]") {
  const auto r = load_yaml(minimal);
  REQUIRE(r.ok());
  const auto& rs = compiled(*r.rules);
  const std::string form = detail::canonical_form(rs);
  CHECK(form.starts_with("{\"packs\":[{\"check_digits\":[],\"description\":\"\",\"detectors\":[{\"allow\":[],\"category\":\"pi.phone\""));
  CHECK(r.rules->hash() == detail::canonical_hash(rs));
}

namespace {
const char* with_scheme = R"(schema: customs/v1
pack: {id: schemes, version: "1"}
check_digits:
  - id: s.mod11
    description: weights 2..7 from the right, check (11 - sum mod 11), 10 and 11 written 0
    length: 8
    format: '[0-9]{8}'
    weights: [2, 7, 6, 5, 4, 3, 2]
    modulus: 11
    check_table: "00987654321"
    examples:
      valid: ["12345674"]
      invalid: ["12345675"]
detectors:
  - id: d.account
    category: financial.account
    pattern: '\d{8}'
    validators: [s.mod11]
rules:
  - id: r.account
    when: {detectors: [d.account]}
    then: {action: redact}
tests:
  - id: t.pos
    input: "account 12345674"
    expect: {findings: [{detector: d.account, text: "12345674"}]}
  - id: t.neg
    input: "account 12345675"
    expect: {absent: [d.account]}
)";
// Replaces the first occurrence of from (which must be there).
void subst(std::string& s, const std::string& from, const std::string& to) {
  const auto pos = s.find(from);
  REQUIRE(pos != std::string::npos);
  s.replace(pos, from.size(), to);
}
}  // namespace

TEST_CASE("a check-digit scheme declared in the file validates a detector's matches", "[loader][checksum]") {
  // 1*2 + 2*7 + 3*6 + 4*5 + 5*4 + 6*3 + 7*2 = 106; 106 mod 11 = 7; check 11 - 7 = 4.
  const auto r = load_yaml(with_scheme);
  for (const auto& d : r.diagnostics) INFO(d.to_string());
  REQUIRE(r.ok());
  CHECK(r.diagnostics.empty());
  const auto f = r.rules->scan("a 12345674 b 12345675 c 1234 5674", 0);
  REQUIRE(f.size() == 2);
  CHECK(f[0].text == "12345674");
  CHECK(f[1].text == "1234 5674");  // a separator between digits is allowed by default
  CHECK(run_rule_tests(*r.rules).failed == 0);
}

TEST_CASE("a scheme's examples are checked at load time, each at its line", "[loader][checksum]") {
  std::string y = with_scheme;
  subst(y, "valid: [\"12345674\"]", "valid: [\"12345673\"]");
  const auto r = load_yaml(y);
  CHECK_FALSE(r.ok());
  CHECK(codes(r) == std::vector<std::string>{"12:15 E_CHECK_DIGITS_EXAMPLE"});
  REQUIRE_FALSE(r.diagnostics.empty());
  CHECK(r.diagnostics[0].message.find("check-digit scheme 's.mod11'") != std::string::npos);
  CHECK(r.diagnostics[0].message.find("'12345673' is rejected") != std::string::npos);
}

TEST_CASE("changing a scheme changes the hash, its examples do not", "[loader][checksum][hash]") {
  const auto base = load_yaml(with_scheme);
  REQUIRE(base.ok());
  std::string w = with_scheme;
  subst(w, "weights: [2, 7, 6, 5, 4, 3, 2]", "weights: [3, 7, 6, 5, 4, 3, 2]");
  // The examples follow the new weights (12345673 valid now), else the set does not load.
  subst(w, "valid: [\"12345674\"]", "valid: [\"12345673\"]");
  subst(w, "invalid: [\"12345675\"]", "invalid: [\"12345674\"]");
  const auto changed = load_yaml(w);
  for (const auto& d : changed.diagnostics) INFO(d.to_string());
  REQUIRE(changed.ok());
  CHECK(changed.rules->hash() != base.rules->hash());
  std::string e = with_scheme;
  subst(e, "invalid: [\"12345675\"]", "invalid: [\"12345675\", \"1\"]");
  const auto examples = load_yaml(e);
  REQUIRE(examples.ok());
  CHECK(examples.rules->hash() == base.rules->hash());
}

TEST_CASE("schemes are shared across the files of a set", "[loader][checksum]") {
  temp_dir d;
  d.write("a.yaml", R"(schema: customs/v1
pack: {id: a, version: "1"}
check_digits:
  - {id: shared.luhn, algorithm: luhn}
)");
  d.write("b.yaml", R"(schema: customs/v1
pack: {id: b, version: "1"}
detectors:
  - {id: d.card, category: financial.card, pattern: '\d{16}', validators: [shared.luhn]}
rules:
  - {id: r.card, when: {detectors: [d.card]}, then: {action: block}}
)");
  const std::vector<std::filesystem::path> p{d.path()};
  const auto r = load_rule_set(p);
  for (const auto& x : r.diagnostics) INFO(x.to_string());
  REQUIRE(r.ok());
  CHECK(r.rules->scan("4111 1111 1111 1111", 0).size() == 1);
  CHECK(r.rules->scan("4111 1111 1111 1112", 0).empty());
}

TEST_CASE("digit_separators: false keeps a pattern to the separators it writes", "[loader]") {
  std::string y = minimal;
  const auto r = load_yaml(y);
  REQUIRE(r.ok());
  CHECK(r.rules->scan("call 138 1234 5678", 0).size() == 1);
  subst(y, "    pattern: '1[3-9]\\d{9}'", "    pattern: '1[3-9]\\d{9}'\n    digit_separators: false");
  const auto strict = load_yaml(y);
  REQUIRE(strict.ok());
  CHECK(strict.rules->scan("call 138 1234 5678", 0).empty());
  CHECK(strict.rules->scan("call 13812345678", 0).size() == 1);
}
