// The edge modes' config keys: listener modes, proxy_auth, interception,
// providers, upstream_ca_bundle, resolve and the edge limits.
#include <catch2/catch.hpp>

#include "daemon/config.hpp"
#include "tests/support/test_certs.hpp"

#include <fstream>

using namespace customs::daemon;

namespace {

struct files {
  customs::testing::temp_dir dir;
  files() {
    std::ofstream(dir.path() / "ca.pem") << "x";
    std::ofstream(dir.path() / "ca.key") << "x";
    std::ofstream(dir.path() / "users") << "x";
    std::filesystem::create_directories(dir.path() / "providers");
    std::filesystem::create_directories(dir.path() / "rules");
  }
  config parse(const std::string& yaml) const { return parse_config(yaml, "edge.yaml", dir.path()); }
  std::vector<std::string> errors(const std::string& yaml) const {
    try {
      (void)parse(yaml);
    } catch (const config_error& e) {
      std::vector<std::string> out;
      for (const auto& d : e.diagnostics()) out.push_back(d.to_string());
      return out;
    }
    return {};
  }
};

const std::string head = "version: 1\nroutes: []\n";
const std::string forward = "listeners:\n  - {name: wire, address: 127.0.0.1, port: 3128, mode: forward}\n";

bool has(const std::vector<std::string>& v, const std::string& needle) {
  for (const auto& s : v) {
    if (s.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("edge config: listener modes, the catalogue default and the interception section", "[edge_config]") {
  files f;
  const auto c = f.parse(head + forward +
                         "  - {name: t, address: 127.0.0.1, port: 15001, mode: transparent}\n"
                         "interception: {ca_cert: ca.pem, ca_key: ca.key, leaf_validity: 12h, leaf_cache: 50,"
                         " on_untrusted: tunnel, unknown_hosts: refuse, tunnel_records: false, ports: [443, 8443],"
                         " allow_networks: [10.0.0.0/8], upstream_mark: 42}\n"
                         "upstream_ca_bundle: ca.pem\n"
                         "resolve: {API.OpenAI.com: \"10.1.2.3:443\", b.example: \"[::1]\"}\n"
                         "limits: {client_hello_bytes: 16KiB, tunnel_idle_timeout: 5m}\n");
  REQUIRE(c.listeners.size() == 2);
  CHECK(c.listeners[0].mode == listener_mode::forward);
  CHECK(c.listeners[1].mode == listener_mode::transparent);
  CHECK(c.has_edge_listener());
  REQUIRE(c.providers.size() == 1);
  CHECK(c.providers[0] == default_providers_path());
  const auto& ic = c.edge();
  CHECK(ic.decrypts());
  CHECK(ic.leaf_validity == std::chrono::hours(12));
  CHECK(ic.leaf_cache == 50);
  CHECK(ic.on_untrusted == untrusted_action::tunnel);
  CHECK(ic.refuse_unknown_hosts);
  CHECK_FALSE(ic.tunnel_records);
  CHECK(ic.ports == std::vector<std::uint16_t>{443, 8443});
  CHECK(ic.allow_networks.size() == 1);
  CHECK(ic.upstream_mark == 42);
  REQUIRE(c.resolve.size() == 2);
  CHECK(c.resolve[0].host == "api.openai.com");
  CHECK(c.resolve[0].address == "10.1.2.3");
  CHECK(c.resolve[0].port == 443);
  CHECK(c.resolve[1].address == "::1");
  CHECK(c.resolve[1].port == 0);
  CHECK(c.limits.client_hello_bytes == 16 * 1024);
  CHECK(c.limits.tunnel_idle_timeout == std::chrono::minutes(5));
}

TEST_CASE("edge config: the defaults without an interception section", "[edge_config]") {
  files f;
  const auto c = f.parse(head + forward);
  CHECK_FALSE(c.edge().decrypts());
  CHECK(c.edge().on_untrusted == untrusted_action::refuse);
  CHECK_FALSE(c.edge().refuse_unknown_hosts);
  CHECK(c.edge().ports == std::vector<std::uint16_t>{443, 80});
  CHECK(c.limits.client_hello_bytes == 32 * 1024);
  CHECK(c.limits.tunnel_idle_timeout == std::chrono::minutes(10));
  const auto r = f.parse(head + "listeners:\n  - {name: e, address: 127.0.0.1, port: 1}\n");
  CHECK_FALSE(r.has_edge_listener());
  CHECK(r.providers.empty());
}

TEST_CASE("edge config: client_hello_bytes is taken from 1KiB to 64KiB", "[edge_config]") {
  files f;
  CHECK(f.parse(head + forward + "limits: {client_hello_bytes: 64KiB}\n").limits.client_hello_bytes == 65536);
  CHECK(has(f.errors(head + forward + "limits: {client_hello_bytes: 65537}\n"), "between 1KiB and 64KiB"));
  CHECK(f.parse(head + forward + "limits: {client_hello_bytes: 1KiB}\n").limits.client_hello_bytes == 1024);
  CHECK(has(f.errors(head + forward + "limits: {client_hello_bytes: 1023}\n"), "between 1KiB and 64KiB"));
}

TEST_CASE("edge config: mistakes are reported with their position", "[edge_config]") {
  files f;
  CHECK(has(f.errors(head + "listeners:\n  - {name: w, address: 127.0.0.1, port: 1, mode: sideways}\n"),
            "edge.yaml:4:50: error: E_VALUE: listeners[0].mode: expected reverse, forward or transparent"));
  CHECK(has(f.errors(head + "listeners:\n  - {name: w, address: 127.0.0.1, port: 1, mode: forward, tls: {cert: ca.pem, key: ca.key}}\n"),
            "only reverse listeners terminate TLS"));
  CHECK(has(f.errors(head + "listeners:\n  - {name: w, address: 127.0.0.1, port: 1, proxy_auth: {users: users}}\n"),
            "only forward listeners ask for proxy credentials"));
  CHECK(has(f.errors(head + forward + "interception: {ca_cert: ca.pem}\n"), "give both ca_cert and ca_key"));
  CHECK(has(f.errors(head + forward + "interception: {on_untrusted: maybe}\n"), "expected tunnel or refuse"));
  CHECK(has(f.errors(head + forward + "interception: {leaf_validity: 10m}\n"), "between 1h and 90 days"));
  CHECK(has(f.errors(head + forward + "interception: {ports: [0]}\n"), "a port from 1 to 65535"));
  CHECK(has(f.errors(head + forward + "resolve: {a.example: \"not-an-ip\"}\n"), "expected an IP address"));
  CHECK(has(f.errors(head + forward + "resolve: {a.example: \"10.0.0.1:0\"}\n"), "expected an IP address"));
  CHECK(has(f.errors(head + forward + "resolve: {\"a b\": \"10.0.0.1\"}\n"), "is not a host name"));
  CHECK(has(f.errors(head + forward + "providers: [missing/]\n"), "E_FILE"));
}

TEST_CASE("edge config: enforcing an edge listener needs an interception CA", "[edge_config]") {
  files f;
  const std::string audit =
      "audit: {path: a.db, auditor_keys: [a.pub], sealing_key: s.key, signing_key: g.key}\n";
  CHECK(has(f.errors(head + forward + "rules: [rules/]\n" + audit), "interception.ca_cert and interception.ca_key: required"));
  CHECK(f.errors(head + forward + "rules: [rules/]\n" + audit + "interception: {ca_cert: ca.pem, ca_key: ca.key}\n").empty());
}
