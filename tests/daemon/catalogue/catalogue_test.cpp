// The provider catalogue: the shipped file, lookups, and the loader's errors.
#include <catch2/catch.hpp>

#include "daemon/catalogue/catalogue.hpp"
#include "tests/support/test_certs.hpp"

#include <fstream>

using namespace customs::daemon;
namespace fs = std::filesystem;

namespace {

std::vector<config_diagnostic> errors_of(std::string_view yaml) {
  std::vector<catalogue_entry> out;
  std::vector<config_diagnostic> d;
  parse_catalogue(yaml, "c.yaml", out, d);
  return d;
}

std::vector<catalogue_entry> entries_of(std::string_view yaml) {
  std::vector<catalogue_entry> out;
  std::vector<config_diagnostic> d;
  parse_catalogue(yaml, "c.yaml", out, d);
  INFO((d.empty() ? std::string() : d.front().to_string()));
  REQUIRE(d.empty());
  return out;
}

constexpr std::string_view two_hosts = R"(schema: customs/providers/v1
hosts:
  - {host: "*.openai.azure.com", provider: Azure OpenAI, dialect: openai, jurisdiction: US, sources: [a]}
  - {host: "*.eu.openai.azure.com", provider: Azure OpenAI EU, dialect: openai, jurisdiction: SE, sources: [b]}
  - {host: contoso.openai.azure.com, provider: Contoso, dialect: openai, jurisdiction: DE, sources: [c]}
)";

}  // namespace

TEST_CASE("the shipped catalogue loads and names the providers it must", "[catalogue]") {
  const fs::path dir = fs::path(CUSTOMS_SOURCE_DIR) / "config" / "providers";
  const auto c = load_catalogue(std::vector<fs::path>{dir});
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"api.openai.com", "US"},           {"x.openai.azure.com", "US"},   {"api.anthropic.com", "US"},
      {"generativelanguage.googleapis.com", "US"}, {"aiplatform.googleapis.com", "US"},
      {"europe-west4-aiplatform.googleapis.com", "NL"}, {"api.mistral.ai", "FR"}, {"api.groq.com", "US"},
      {"api.together.xyz", "US"},         {"openrouter.ai", "US"},        {"api.deepseek.com", "CN"},
      {"dashscope.aliyuncs.com", "CN"},   {"api.moonshot.cn", "CN"},      {"open.bigmodel.cn", "CN"},
      {"qianfan.baidubce.com", "CN"},     {"ark.cn-beijing.volces.com", "CN"}, {"api.minimaxi.com", "CN"}};
  for (const auto& [host, jurisdiction] : expected) {
    INFO(host);
    const catalogue_entry* e = c->find(host);
    REQUIRE(e != nullptr);
    CHECK(e->jurisdiction == jurisdiction);
    CHECK_FALSE(e->sources.empty());
  }
  CHECK(c->find("api.anthropic.com")->api == dialect::anthropic);
  CHECK(c->find("generativelanguage.googleapis.com")->api == dialect::gemini);
  CHECK(c->find("api.deepseek.com")->api == dialect::openai);
  CHECK(c->find("example.com") == nullptr);
}

TEST_CASE("an exact host wins over patterns and the longest pattern wins among them", "[catalogue]") {
  const catalogue c(entries_of(two_hosts));
  CHECK(c.find("contoso.openai.azure.com")->jurisdiction == "DE");
  CHECK(c.find("other.openai.azure.com")->jurisdiction == "US");
  CHECK(c.find("a.b.openai.azure.com")->jurisdiction == "US");
  CHECK(c.find("x.eu.openai.azure.com")->jurisdiction == "SE");
  CHECK(c.find("openai.azure.com") == nullptr);  // a pattern needs a label before its suffix
  CHECK(c.find("eu.openai.azure.com")->jurisdiction == "US");
}

TEST_CASE("lookups ignore case and one trailing dot", "[catalogue]") {
  const catalogue c(entries_of(two_hosts));
  CHECK(c.find("CONTOSO.OpenAI.Azure.com.")->jurisdiction == "DE");
  CHECK(c.find("contoso.openai.azure.com..") == nullptr);
}

TEST_CASE("host names are checked as DNS names", "[catalogue]") {
  std::string out;
  CHECK(normalize_host("Api.OpenAI.com.", out));
  CHECK(out == "api.openai.com");
  CHECK(normalize_host(std::string(63, 'a') + ".com", out));
  CHECK_FALSE(normalize_host(std::string(64, 'a') + ".com", out));
  const std::string max = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                          std::string(61, 'd');  // 253 bytes
  REQUIRE(max.size() == 253);
  CHECK(normalize_host(max, out));
  CHECK_FALSE(normalize_host(max + "d", out));
  CHECK_FALSE(normalize_host("a..b", out));
  CHECK_FALSE(normalize_host("", out));
  CHECK_FALSE(normalize_host("a b.com", out));
  CHECK_FALSE(normalize_host("10.0.0.1:443", out));
}

TEST_CASE("a host defined in two files is an error naming both places", "[catalogue]") {
  customs::testing::temp_dir dir;
  const std::string entry = "schema: customs/providers/v1\nhosts:\n  - {host: api.x.com, provider: X, dialect: openai, jurisdiction: US, sources: [s]}\n";
  std::ofstream(dir.path() / "a.yaml") << entry;
  std::ofstream(dir.path() / "b.yaml") << entry;
  try {
    (void)load_catalogue(std::vector<fs::path>{dir.path()});
    FAIL("loaded");
  } catch (const config_error& e) {
    REQUIRE(e.diagnostics().size() == 1);
    CHECK(e.diagnostics()[0].code == "E_DUPLICATE");
    CHECK(e.diagnostics()[0].file == (dir.path() / "b.yaml").string());
    CHECK(e.diagnostics()[0].message.find((dir.path() / "a.yaml").string() + ":3") != std::string::npos);
  }
}

TEST_CASE("catalogue errors carry their file position", "[catalogue]") {
  const auto d = errors_of(R"(schema: customs/providers/v1
hosts:
  - host: api.x.com
    provider: X
    dialect: klingon
    jurisdiction: usa
    colour: blue
)");
  std::vector<std::string> codes;
  for (const auto& x : d) codes.push_back(x.to_string());
  INFO(Catch::Detail::stringify(codes));
  REQUIRE(d.size() == 4);
  CHECK(d[0].to_string() == "c.yaml:5:14: error: E_VALUE: hosts[0].dialect: expected openai, anthropic or gemini");
  CHECK(d[1].line == 6);
  CHECK(d[1].code == "E_VALUE");
  CHECK(d[2].line == 7);
  CHECK(d[2].code == "E_UNKNOWN_KEY");
  CHECK(d[3].code == "E_MISSING");  // sources
}

TEST_CASE("a catalogue needs its schema line and valid host keys", "[catalogue]") {
  CHECK(errors_of("hosts: []\n").at(0).code == "E_SCHEMA");
  CHECK(errors_of("schema: customs/providers/v2\nhosts: []\n").at(0).code == "E_SCHEMA");
  CHECK(errors_of("schema: customs/providers/v1\nhosts:\n  - {host: '*.com', provider: X, dialect: openai, jurisdiction: US, sources: [s]}\n")
            .at(0).code == "E_VALUE");
  CHECK(errors_of("schema: customs/providers/v1\nhosts:\n  - {host: 'a b', provider: X, dialect: openai, jurisdiction: US, sources: [s]}\n")
            .at(0).code == "E_VALUE");
  CHECK(errors_of("schema: customs/providers/v1\nhosts:\n  - {host: a.com, provider: X, dialect: openai, jurisdiction: US, sources: []}\n")
            .at(0).code == "E_VALUE");
  CHECK(errors_of("schema: [\n").at(0).code == "E_YAML");
  CHECK(errors_of("").at(0).code == "E_YAML");
}

TEST_CASE("a catalogue whose aliases expand past the bound is refused before it is read", "[catalogue]") {
  std::string y = "schema: customs/providers/v1\na: &a [";
  for (int i = 0; i < 10; ++i) y += (i ? ", " : "") + std::string("'") + std::string(1000, 'x') + "'";
  y += "]\n";
  const char* names[] = {"a", "b", "c", "d", "e", "f"};
  for (int level = 1; level < 6; ++level) {
    y += std::string(names[level]) + ": &" + names[level] + " [";
    for (int i = 0; i < 10; ++i) y += (i ? ", *" : "*") + std::string(names[level - 1]);
    y += "]\n";
  }
  const auto e = errors_of(y);
  REQUIRE_FALSE(e.empty());
  CHECK(e.at(0).code == "E_YAML");
  CHECK_THAT(e.at(0).message, Catch::Contains("aliases expanded"));
}

TEST_CASE("api_paths limit inspection to the API part of a shared host", "[catalogue]") {
  const auto e = entries_of(R"(schema: customs/providers/v1
hosts:
  - {host: openrouter.ai, provider: OpenRouter, dialect: openai, jurisdiction: US, sources: [s], api_paths: [/api/]}
  - {host: api.x.com, provider: X, dialect: openai, jurisdiction: US, sources: [s]}
)");
  CHECK(e[0].is_api_path("/api/v1/chat/completions"));
  CHECK_FALSE(e[0].is_api_path("/chat"));
  CHECK_FALSE(e[0].is_api_path("/apix"));
  CHECK(e[1].is_api_path("/anything"));
  CHECK(errors_of("schema: customs/providers/v1\nhosts:\n  - {host: a.com, provider: X, dialect: openai, jurisdiction: US, sources: [s], api_paths: [api]}\n")
            .at(0).code == "E_VALUE");
}

TEST_CASE("on_untrusted takes tunnel or refuse", "[catalogue]") {
  const auto e = entries_of(
      "schema: customs/providers/v1\nhosts:\n  - {host: a.com, provider: X, dialect: openai, jurisdiction: US, sources: [s], on_untrusted: tunnel}\n");
  REQUIRE(e[0].on_untrusted.has_value());
  CHECK(*e[0].on_untrusted == untrusted_action::tunnel);
  CHECK(errors_of("schema: customs/providers/v1\nhosts:\n  - {host: a.com, provider: X, dialect: openai, jurisdiction: US, sources: [s], on_untrusted: maybe}\n")
            .at(0).code == "E_VALUE");
}
