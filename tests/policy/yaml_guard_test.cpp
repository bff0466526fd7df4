// The check before yaml-cpp: documents whose root is not a block mapping are
// refused (yaml-cpp 0.7 never returns on some of them), block mappings pass.
#include "policy/policy.hpp"
#include "policy/yaml_guard.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <filesystem>
#include <fstream>
#include <string>

using customs::policy::check_yaml_top_level;

TEST_CASE("yaml guard: the inputs on which yaml-cpp 0.7 loops forever are refused with their line") {
  // Each of these hung YAML::LoadAll (found by fuzz_config / fuzz_catalogue).
  const std::array<std::pair<std::string, std::size_t>, 9> hangs{{
      {",", 1},
      {"  ,", 1},
      {"# c\n,", 2},
      {",a", 1},
      {"{a: b}\n,", 1},
      {"\"a\"\n,", 1},
      {"a: b\n---\n,", 3},
      {"a: b\n...\n,", 3},
      {", jurisdiction: XS, sources: [s]}\n  - {host: x.com}\n", 1},
  }};
  for (const auto& [text, line] : hangs) {
    INFO(text);
    const auto r = check_yaml_top_level(text);
    REQUIRE(r.has_value());
    CHECK(r->line == line);
    CHECK(!r->message.empty());
  }
  CHECK(check_yaml_top_level("--- {a: b}\n,").has_value());
  // A directive line inside a document, then a ',' line (found by
  // fuzz_catalogue in a 60-s run: yaml-cpp grew to 1 GiB and never returned).
  const std::array<std::pair<std::string, std::size_t>, 5> directive_hangs{{
      {"schema: cuspo/smtroviders/~5\nng\n%...\n\n, n}\n", 3},
      {"a: b\n%\n,\n", 2},
      {"a: b\nc\n%x\n,\n", 3},
      {"a: b\n c\n%\n, x\n", 3},
      {"a: b\n%YAML 1.2\n---\nc: d\n", 2},
  }};
  for (const auto& [text, line] : directive_hangs) {
    INFO(text);
    const auto d = check_yaml_top_level(text);
    REQUIRE(d.has_value());
    CHECK(d->line == line);
    CHECK_THAT(d->message, Catch::Contains("directive"));
  }
  // Directives before a document's root stay allowed, also after "...".
  CHECK_FALSE(check_yaml_top_level("%YAML 1.2\n---\na: b\n...\n%YAML 1.2\n---\nc: d\n").has_value());
  // A NUL before a key-like line hung yaml-cpp too (fuzz_volume_rules).
  const std::string nul("\0,\x01,\x01:\x01:::::::::", 16);
  const auto r = check_yaml_top_level(nul);
  REQUIRE(r.has_value());
  CHECK(r->line == 1);
}

TEST_CASE("yaml guard: block mappings pass, with comments, directives, markers, quoted keys and CRLF") {
  for (const std::string text : {"version: 1\n", "# head\n\nversion: 1\nlisteners:\n  - {name: a}\n",
                                 "%YAML 1.2\n---\nschema: x\n", "\xEF\xBB\xBFkey: value\r\nother:\r\n",
                                 "\"quoted key\": 1\n", "'it''s': 2\n", "a:\n  b: [c, d]\n  e: |\n    , not a token\n",
                                 "a: b, c\n", "", "# only a comment\n"}) {
    INFO(text);
    CHECK_FALSE(check_yaml_top_level(text).has_value());
  }
  // Every shipped rule pack passes (they are loaded by other tests too).
  for (const auto& f : std::filesystem::directory_iterator(std::filesystem::path(CUSTOMS_SOURCE_DIR) / "rules")) {
    if (f.path().extension() != ".yaml") continue;
    std::ifstream in(f.path(), std::ios::binary);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    INFO(f.path());
    CHECK_FALSE(check_yaml_top_level(text).has_value());
  }
}

TEST_CASE("yaml guard: the rule loader reports the refusal as E_YAML at its line") {
  const auto dir = std::filesystem::temp_directory_path() / ("customs-yaml-guard-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "pack.yaml";
  std::ofstream(file) << "# a pack\n{id: x}\n,\n";
  const std::array paths{file};
  const auto r = customs::policy::load_rule_set(paths);
  CHECK_FALSE(r.ok());
  REQUIRE(r.diagnostics.size() == 1);
  CHECK(r.diagnostics[0].code == "E_YAML");
  CHECK(r.diagnostics[0].line == 2);
  std::filesystem::remove_all(dir);
}

TEST_CASE("yaml guard: aliases count once per use and the expansion limits hold at the bound") {
  using customs::policy::check_yaml_expansion;
  // A map, its key a (1 byte), a list and three strings of 4 bytes: 6 nodes, 13 bytes.
  const YAML::Node root = YAML::Load("a: [&x abcd, *x, *x]");
  CHECK_FALSE(check_yaml_expansion(root, {13, 6}).has_value());
  const auto bytes = check_yaml_expansion(root, {12, 6});
  REQUIRE(bytes.has_value());
  CHECK(bytes->message.find("more than 12 bytes") != std::string::npos);
  CHECK(bytes->line == 1);
  const auto nodes = check_yaml_expansion(root, {13, 5});
  REQUIRE(nodes.has_value());
  CHECK(nodes->message.find("more than 5 nodes") != std::string::npos);
}

TEST_CASE("yaml guard: a rule file that repeats a string or nested lists through aliases is refused") {
  const auto dir = std::filesystem::temp_directory_path() / ("customs-yaml-alias-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "pack.yaml";
  const std::string head =
      "schema: customs/v1\npack:\n  id: bomb\n  version: '1'\n  description: d\n"
      "detectors:\n  - id: bomb.d\n    description: d\n    category: secret.token\n    keywords: [zzzq]\n"
      "rules:\n  - id: bomb.r\n    description: d\n    when: {direction: both, detectors: [bomb.d]}\n"
      "    then: {action: tag, tags: [t]}\n";
  const std::array paths{file};
  {
    // As the security report's generator: one test's chunks, a 100 KB string and
    // 200 aliases of it (20 MB expanded, over the default 16 MiB) in a 101 KB file.
    std::string chunks = "[&c " + std::string(100000, 'x');
    for (int i = 0; i < 200; ++i) chunks += ", *c";
    chunks += "]";
    std::ofstream(file) << head << "tests:\n  - id: bomb.t\n    src: DE\n    dst: US\n    expect: {action: allow}\n"
                        << "    chunks: " << chunks << "\n";
    const auto r = customs::policy::load_rule_set(paths);
    CHECK_FALSE(r.ok());
    REQUIRE(r.diagnostics.size() == 1);
    CHECK(r.diagnostics[0].code == "E_YAML");
    CHECK(r.diagnostics[0].message.find(std::to_string(customs::policy::load_options{}.max_expanded_bytes)) !=
          std::string::npos);
    // The same file under a higher limit loads (the limit is the only objection).
    customs::policy::load_options big;
    big.max_expanded_bytes = 64u << 20;
    const auto ok = customs::policy::load_rule_set(paths, big);
    for (const auto& d : ok.diagnostics) CHECK(d.code != "E_YAML");
  }
  {
    // Nested lists of aliases (ten to the ninth strings): refused by the node count.
    std::string lol = "x0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int level = 1; level <= 9; ++level) {
      lol += "x" + std::to_string(level) + ": &a" + std::to_string(level) + " [";
      for (int k = 0; k < 10; ++k) lol += (k ? ", *a" : "*a") + std::to_string(level - 1);
      lol += "]\n";
    }
    std::ofstream(file) << head << lol;
    const auto r = customs::policy::load_rule_set(paths);
    CHECK_FALSE(r.ok());
    REQUIRE(r.diagnostics.size() == 1);
    CHECK(r.diagnostics[0].code == "E_YAML");
    CHECK(r.diagnostics[0].message.find("nodes") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}
