// The official provider SDKs (openai, @anthropic-ai/sdk on Node.js) talking to
// customsd, which enforces the shipped rule packs plus a response-phone test
// pack, with auditing on, in front of the scripted fake provider:
//  - a stream redacted by customsd still parses without SDK errors, and the
//    phone number split across three deltas never reaches the client;
//  - a blocked request raises the SDK's API error with status 451;
//  - a stream cut for a secret raises the SDK's API error mid-stream.
// Each case then checks that the audit trail verifies. The same SDKs also go
// through customsd as a forward proxy (below).
#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "harness.hpp"
#include "tests/support/fake_provider.hpp"
#include "tests/support/test_certs.hpp"

#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace customs::testing;

namespace {

const std::string customsctl = std::string(CUSTOMS_BINARY_DIR) + "/tools/customsctl";

// customsd as a child process with the shipped packs plus the response-phone
// pack and an audit trail (keys made here), in its own folder.
struct sdk_daemon {
  fs::path dir;
  std::unique_ptr<customsd_process> daemon;

  explicit sdk_daemon(const std::string& name) : dir(test_dir(name)) {
    fs::remove_all(dir / "keys");
    fs::remove(dir / "audit.db");
    REQUIRE(run_program({customsctl, "keys", "gen", "--out", (dir / "keys").string()}).exit_code == 0);
  }
  ~sdk_daemon() {
    daemon.reset();
    fs::remove_all(dir);
  }
  // Writes the config (`listeners_and_routes` first) and starts customsd.
  void start(const std::string& listeners_and_routes) {
    std::ofstream(dir / "customsd.yaml")
        << "version: 1\n"
        << listeners_and_routes << "admin: {address: 127.0.0.1, port: 0}\n"
        << "rules: [\"" << CUSTOMS_SOURCE_DIR << "/rules\", \"" << CUSTOMS_SOURCE_DIR
        << "/tests/sdk/response-phone.yaml\"]\n"
        << "audit:\n"
        << "  path: \"" << (dir / "audit.db").string() << "\"\n"
        << "  auditor_keys: [\"" << (dir / "keys/auditor.pub").string() << "\"]\n"
        << "  sealing_key: \"" << (dir / "keys/sealing.key").string() << "\"\n"
        << "  signing_key: \"" << (dir / "keys/signing.key").string() << "\"\n"
        << "  content: full\n"
        << "threads: 1\n"
        << "log: {level: info, flows: false}\n";  // the harness reads event=listening (info)
    daemon = std::make_unique<customsd_process>(dir / "customsd.yaml");
  }
  void require_audit_verifies() {
    daemon.reset();  // stops customsd (SIGKILL): verify checks the chain up to the last commit
    const auto v = run_program({customsctl, "audit", "verify", "--db", (dir / "audit.db").string(),
                                "--seed", (dir / "keys/sealing.seed").string(), "--signer",
                                (dir / "keys/signing.pub").string()});
    INFO(v.out << v.err);
    REQUIRE(v.exit_code == 0);
  }
};

// customsd with rules and auditing, a default CN source on its listener, and
// routes to the fake provider (a US jurisdiction).
struct sdk_setup : sdk_daemon {
  fake_provider provider;

  sdk_setup() : sdk_daemon("sdk") {
    const std::string up = "http://127.0.0.1:" + std::to_string(provider.port());
    start("listeners:\n"
          "  - {name: edge, address: 127.0.0.1, port: 0, default_source: {jurisdiction: CN}}\n"
          "routes:\n"
          "  - {prefix: /openai/, upstream: \"" + up + "\", dialect: openai, jurisdiction: US}\n"
          "  - {prefix: /anthropic/, upstream: \"" + up + "\", dialect: anthropic, jurisdiction: US}\n");
  }

  // Runs the SDK probe; returns its one JSON line, parsed.
  json::object probe(const std::string& sdk, const std::string& prompt, const std::string& mode = "stream") {
    const std::string base = "http://127.0.0.1:" + std::to_string(daemon->port()) +
                             (sdk == "openai" ? "/openai/v1" : "/anthropic");
    const auto r = run_program({CUSTOMS_NODE, std::string(CUSTOMS_SDK_DIR) + "/sdk_probe.mjs", sdk, base,
                                prompt, mode});
    INFO("probe stderr: " << r.err << "\nprobe stdout: " << r.out);
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out).as_object();
  }
};

// The phone number 138 0013 8000, split across three deltas.
script phone_stream() {
  script s;
  s.deltas = {"Sure, call 138 0", "013 80", "00 any time."};
  return s;
}

void require_no_error(const json::object& out) {
  INFO(json::serialize(out));
  REQUIRE(out.at("error").is_null());
}

void require_api_error(const json::object& out, int status) {
  INFO(json::serialize(out));
  REQUIRE(out.at("error").is_object());
  const auto& e = out.at("error").as_object();
  CHECK(e.at("api_error").as_bool());
  if (status != 0) CHECK(e.at("status").as_int64() == status);
}

}  // namespace

TEST_CASE("SDKs parse a stream customsd redacted", "[sdk]") {
  for (const std::string sdk : {"openai", "anthropic"}) {
    DYNAMIC_SECTION(sdk) {
      sdk_setup s;
      s.provider.set_script(phone_stream());
      const auto out = s.probe(sdk, "What is your number?");
      require_no_error(out);
      const std::string text(out.at("text").as_string());
      CHECK(text.find("[REDACTED:pi.phone]") != std::string::npos);
      CHECK(text.find("8000") == std::string::npos);
      CHECK(text.rfind("Sure, call ", 0) == 0);
      CHECK(text.ends_with(" any time."));
      s.require_audit_verifies();
    }
  }
}

TEST_CASE("SDKs raise an API error with status 451 for a blocked request", "[sdk]") {
  for (const std::string sdk : {"openai", "anthropic"}) {
    DYNAMIC_SECTION(sdk) {
      sdk_setup s;
      const auto out = s.probe(sdk, "My resident ID is 11010519491231002X, please check it.");
      require_api_error(out, 451);
      CHECK(s.provider.request_count() == 0);
      s.require_audit_verifies();
    }
  }
}

TEST_CASE("SDKs raise an API error when customsd cuts a stream that produces a secret", "[sdk]") {
  for (const std::string sdk : {"openai", "anthropic"}) {
    DYNAMIC_SECTION(sdk) {
      sdk_setup s;
      script sc;
      sc.deltas = {"Here is the key: AKIA", "UJZDE8GX", "D6NCF10E and more text after it."};
      s.provider.set_script(sc);
      const auto out = s.probe(sdk, "Give me a key");
      require_api_error(out, 0);  // raised from the stream's error event: no HTTP status
      const std::string text(out.at("text").as_string());
      CHECK(text.find("AKIA") == std::string::npos);
      CHECK(text.find("more text") == std::string::npos);
      s.require_audit_verifies();
    }
  }
}

// ---- through customsd's forward listener ------------------------------------
//
// The SDKs keep their default base URLs (https://api.openai.com/v1,
// https://api.anthropic.com) and go through customsd as an HTTP proxy (undici's
// ProxyAgent sends CONNECT), trusting the interception CA through
// NODE_EXTRA_CA_CERTS. The fake provider serves both host names over TLS
// (a test CA that customsd trusts as upstream_ca_bundle), reached through the
// `resolve` map.

namespace {

struct sdk_proxy_setup : sdk_daemon {
  test_pki pki = make_test_pki(dir / "pki");
  cert_and_key provider_cert = issue_server_cert(pki, dir / "pki", {"api.openai.com", "api.anthropic.com"}, "provider");
  fake_provider provider{{.address = "127.0.0.1", .port = 0, .tls_cert = provider_cert.cert, .tls_key = provider_cert.key}};

  sdk_proxy_setup() : sdk_daemon("sdk-proxy") {
    fs::remove_all(dir / "ica");
    REQUIRE(run_program({customsctl, "ca", "gen", "--out", (dir / "ica").string()}).exit_code == 0);
    const std::string at = "127.0.0.1:" + std::to_string(provider.port());
    start("listeners:\n"
          "  - {name: wire, address: 127.0.0.1, port: 0, mode: forward, default_source: {jurisdiction: CN}}\n"
          "routes: []\n"
          "interception: {ca_cert: \"" + (dir / "ica/ca.pem").string() + "\", ca_key: \"" + (dir / "ica/ca.key").string() + "\"}\n"
          "providers: [\"" + std::string(CUSTOMS_SOURCE_DIR) + "/config/providers\"]\n"
          "upstream_ca_bundle: \"" + pki.ca.cert.string() + "\"\n"
          "resolve: {api.openai.com: \"" + at + "\", api.anthropic.com: \"" + at + "\"}\n");
  }

  json::object probe(const std::string& sdk, const std::string& prompt) {
    const std::string base = sdk == "openai" ? "https://api.openai.com/v1" : "https://api.anthropic.com";
    const std::string proxy = "http://127.0.0.1:" + std::to_string(daemon->port());
    ::setenv("NODE_EXTRA_CA_CERTS", (dir / "ica/ca.pem").c_str(), 1);
    const auto r = run_program({CUSTOMS_NODE, std::string(CUSTOMS_SDK_DIR) + "/sdk_probe.mjs", sdk, base, prompt, "stream", proxy});
    ::unsetenv("NODE_EXTRA_CA_CERTS");
    INFO("probe stderr: " << r.err << "\nprobe stdout: " << r.out);
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out).as_object();
  }
};

}  // namespace

TEST_CASE("SDKs through the forward proxy parse a stream customsd intercepted and redacted", "[sdk][edge]") {
  for (const std::string sdk : {"openai", "anthropic"}) {
    DYNAMIC_SECTION(sdk) {
      sdk_proxy_setup s;
      s.provider.set_script(phone_stream());
      const auto out = s.probe(sdk, "What is your number?");
      require_no_error(out);
      const std::string text(out.at("text").as_string());
      CHECK(text == "Sure, call [REDACTED:pi.phone] any time.");
      REQUIRE(s.provider.request_count() == 1);
      s.require_audit_verifies();
    }
  }
}

TEST_CASE("SDKs through the forward proxy raise an API error with status 451 for a blocked request", "[sdk][edge]") {
  for (const std::string sdk : {"openai", "anthropic"}) {
    DYNAMIC_SECTION(sdk) {
      sdk_proxy_setup s;
      const auto out = s.probe(sdk, "My resident ID is 11010519491231002X, please check it.");
      require_api_error(out, 451);
      CHECK(s.provider.request_count() == 0);
      s.require_audit_verifies();
    }
  }
}
