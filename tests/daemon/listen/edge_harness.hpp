#pragma once
// customsd with a forward listener, in-process, enforcing the shipped rule
// packs with a real audit trail: the fake provider serves TLS under the
// provider host names (api.openai.com, api.anthropic.com, api.deepseek.com:
// certificates from a test CA that customsd trusts as upstream_ca_bundle), a
// second TLS server plays a host outside the catalogue (tunnel.test), and the
// `resolve` map sends those names to loopback. Clients trust the interception
// CA made for the test (ica/ca.pem).

#include "../enforce_harness.hpp"

#include "daemon/intercept/x509.hpp"
#include "daemon/listen/edge.hpp"

#include <boost/asio/ssl/context.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace customs::testing::edge {

namespace fs = std::filesystem;
namespace json = boost::json;
using enforce::trail_files;

struct edge_env {
  temp_dir dir;
  test_pki pki = make_test_pki(dir.path() / "pki");
  cert_and_key provider_cert =
      issue_server_cert(pki, dir.path() / "pki", {"api.openai.com", "api.anthropic.com", "api.deepseek.com"}, "provider");
  cert_and_key tunnel_cert = issue_server_cert(pki, dir.path() / "pki", {"tunnel.test"}, "tunnel");
  fs::path ica = dir.path() / "ica";
  fake_provider provider{{.address = "127.0.0.1", .port = 0, .tls_cert = provider_cert.cert, .tls_key = provider_cert.key}};
  fake_provider other_site{{.address = "127.0.0.1", .port = 0, .tls_cert = tunnel_cert.cert, .tls_key = tunnel_cert.key}};
  trail_files trail{dir.path()};

  edge_env() { (void)daemon::intercept::write_ca_files(ica, daemon::intercept::make_ca("Test interception CA", std::chrono::hours(48))); }

  // Forward listener "wire" (every client CN unless sources say otherwise),
  // the shipped packs plus the response-phone pack and edge_rules.yaml.
  [[nodiscard]] daemon::config config() const {
    auto c = test_config();
    c.listeners.clear();
    daemon::listener_config l;
    l.name = "wire";
    l.address = "127.0.0.1";
    l.port = 0;
    l.mode = daemon::listener_mode::forward;
    l.default_source = daemon::source_spec{"CN", "demo"};
    c.listeners.push_back(l);
    daemon::interception_config ic;
    ic.ca_cert = ica / "ca.pem";
    ic.ca_key = ica / "ca.key";
    c.interception = ic;
    c.providers = {fs::path(CUSTOMS_SOURCE_DIR) / "config" / "providers"};
    c.upstream_ca_bundle = pki.ca.cert;
    const std::string p = "127.0.0.1";
    c.resolve = {{"api.openai.com", p, provider.port()},
                 {"api.anthropic.com", p, provider.port()},
                 {"api.deepseek.com", p, provider.port()},
                 {"tunnel.test", p, other_site.port()}};
    c.rules = {enforce::shipped_rules(), fs::path(CUSTOMS_SOURCE_DIR) / "tests" / "sdk" / "response-phone.yaml",
               fs::path(CUSTOMS_SOURCE_DIR) / "tests" / "daemon" / "listen" / "edge_rules.yaml"};
    c.audit = enforce::audit_settings(trail, daemon::audit_content::full);
    c.threads = 1;
    return c;
  }

  // A client TLS context trusting `ca`.
  static std::unique_ptr<boost::asio::ssl::context> trusting(const fs::path& ca) {
    auto ctx = std::make_unique<boost::asio::ssl::context>(boost::asio::ssl::context::tls_client);
    ctx->load_verify_file(ca.string());
    return ctx;
  }
};

// The enforcing server for an edge config; port() is the forward listener's.
class edge_server : public enforce::enforced_server {
 public:
  using enforced_server::enforced_server;
  [[nodiscard]] std::uint16_t port() { return server().port("wire"); }
};

struct any_record {
  audit::record_kind kind;
  audit::index_fields index;
  json::object payload;
  std::string flow;
};

// Every record of the trail (polling until `pred` holds for one, at most 5 s).
inline std::vector<any_record> records_until(const trail_files& t, const std::function<bool(const any_record&)>& pred) {
  std::vector<any_record> out;
  const auto key = crypto::load_auditor_secret(t.keys / "auditor.key");
  for (int i = 0; i < 250; ++i) {
    out.clear();
    bool found = false;
    {
      audit::reader r(t.db);
      r.set_auditor_key(key);
      r.for_each(audit::record_filter{}, [&](const audit::read_record& rec) {
        any_record a{rec.kind, rec.index, {}, rec.flow_id};
        if (rec.payload) a.payload = json::parse(*rec.payload).as_object();
        found = found || pred(a);
        out.push_back(std::move(a));
        return true;
      });
    }
    if (found) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return out;
}

inline const any_record* find_record(const std::vector<any_record>& v, const std::function<bool(const any_record&)>& pred) {
  for (const auto& r : v) {
    if (pred(r)) return &r;
  }
  return nullptr;
}

// A chat completion request through an intercepted connection.
inline std::string chat_request(const std::string& host, const std::string& prompt, bool stream) {
  const std::string body = enforce::chat_body(prompt, stream);
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: " + host +
         "\r\nContent-Type: application/json\r\nAuthorization: Bearer sk-test\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace customs::testing::edge
