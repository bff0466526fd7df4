// Where a flow comes from: the enforcement config keys, the source resolver
// alone, and end to end (CIDR, trusted proxy headers honoured and ignored, mTLS
// certificate subject, default_source, refusal without one).
#include "enforce_harness.hpp"

#include "daemon/enforce/sources.hpp"

#include <boost/asio/ssl/context.hpp>

using namespace customs::testing;
using namespace customs::testing::enforce;
using customs::daemon::config_error;
using customs::daemon::parse_config;
using customs::daemon::enforce::source_origin;
using customs::daemon::enforce::source_resolver;

namespace {

const std::string source_id_prompt = "身份证号：11010519491231002X";

std::string config_text(const std::string& extra) {
  return "version: 1\n"
         "listeners:\n"
         "  - {name: edge, address: 127.0.0.1, port: 0, default_source: {jurisdiction: CN, tenant: acme}}\n"
         "routes:\n"
         "  - {prefix: /openai/, upstream: 'http://127.0.0.1:1', dialect: openai, jurisdiction: US}\n" +
         extra;
}

const std::string enforcement_keys =
    "rules: [rules/]\n"
    "audit:\n"
    "  path: /tmp/never-opened.db\n"
    "  auditor_keys: [keys/auditor.pub]\n"
    "  sealing_key: keys/sealing.key\n"
    "  signing_key: keys/signing.key\n";

std::vector<std::string> errors_of(const std::string& yaml) {
  try {
    (void)parse_config(yaml, "c.yaml", CUSTOMS_SOURCE_DIR);
  } catch (const config_error& e) {
    std::vector<std::string> out;
    for (const auto& d : e.diagnostics()) out.push_back(d.to_string());
    return out;
  }
  return {};
}

bool has(const std::vector<std::string>& errors, const std::string& needle) {
  for (const auto& e : errors) {
    if (e.find(needle) != std::string::npos) return true;
  }
  return false;
}

customs::daemon::flow_info flow_from(const std::string& ip, const std::string& subject = {}) {
  customs::daemon::flow_info f;
  f.listener = "edge";
  f.peer = boost::asio::ip::make_address(ip);
  f.client_subject = subject;
  return f;
}

}  // namespace

TEST_CASE("enforce config: every key is read, with defaults") {
  const auto c = parse_config(config_text(enforcement_keys +
                                          "  content: full\n"
                                          "  on_failure: allow\n"
                                          "  commit_interval: 1ms\n"
                                          "  index_fields: [route, action]\n"
                                          "sources:\n"
                                          "  - {cidr: 10.20.0.0/16, jurisdiction: CN, tenant: acme}\n"
                                          "  - {client_cert_subject: 'CN=bank-gw', jurisdiction: DE, tenant: bank}\n"
                                          "trusted_proxies: [127.0.0.1/32, '::1']\n"
                                          "unscannable: tag\n"),
                              "c.yaml", CUSTOMS_SOURCE_DIR);
  CHECK(c.enforcing());
  REQUIRE(c.audit);
  CHECK(c.audit->content == customs::daemon::audit_content::full);
  CHECK_FALSE(c.audit->refuse_on_failure);
  CHECK(c.audit->commit_interval == std::chrono::milliseconds(1));
  CHECK(c.audit->index_fields == std::vector<std::string>{"route", "action"});
  CHECK(c.audit->sealing_key == fs::path(CUSTOMS_SOURCE_DIR) / "keys/sealing.key");
  REQUIRE(c.sources.size() == 2);
  CHECK(c.sources[0].cidr->prefix == 16);
  CHECK(c.sources[1].client_cert_subject == "CN=bank-gw");
  CHECK(c.sources[1].source.tenant == "bank");
  REQUIRE(c.trusted_proxies.size() == 2);
  CHECK(c.trusted_proxies[1].v6);
  CHECK(c.trusted_proxies[1].prefix == 128);
  CHECK(c.unscannable == customs::daemon::unscannable_mode::tag);
  CHECK(c.listeners[0].default_source->jurisdiction == "CN");

  const auto d = parse_config(config_text(enforcement_keys), "c.yaml", CUSTOMS_SOURCE_DIR);
  CHECK(d.audit->content == customs::daemon::audit_content::findings);
  CHECK(d.audit->refuse_on_failure);
  CHECK(d.audit->commit_interval == std::chrono::milliseconds(0));
  CHECK(d.unscannable == customs::daemon::unscannable_mode::block);
}

TEST_CASE("enforce config: mistakes are reported with their position") {
  CHECK(has(errors_of(config_text("rules: [rules/]\n")), "c.yaml:6:8: error: E_MISSING: audit: required when rules are set"));
  CHECK(has(errors_of(config_text("rules: [no-such-folder/]\naudit: {path: a.db, auditor_keys: [k], sealing_key: s, signing_key: g}\n")),
            "c.yaml:6:9: error: E_FILE: rules[0]: no such file or folder"));
  CHECK(has(errors_of(config_text(enforcement_keys + "sources:\n  - {cidr: 10.20.1.0/16, jurisdiction: CN}\n")),
            "c.yaml:13:12: error: E_VALUE: sources[0].cidr: '10.20.1.0/16' has address bits set after the /16 prefix"));
  CHECK(has(errors_of(config_text(enforcement_keys + "sources:\n  - {cidr: 10.0.0.0/8, client_cert_subject: 'CN=x', jurisdiction: CN}\n")),
            "sources[0]: give exactly one of cidr and client_cert_subject"));
  CHECK(has(errors_of(config_text(enforcement_keys + "sources:\n  - {cidr: 10.0.0.0/8, jurisdiction: China}\n")),
            "sources[0].jurisdiction: expected an ISO 3166-1 alpha-2 code"));
  CHECK(has(errors_of(config_text(enforcement_keys + "  content: everything\n")), "E_VALUE: audit.content: expected none, findings or full"));
  CHECK(has(errors_of(config_text(enforcement_keys + "  retention: 30d\n")), "E_UNKNOWN_KEY: unknown key 'audit.retention'"));
  CHECK(has(errors_of(config_text(enforcement_keys + "trusted_proxies: [localhost]\n")), "trusted_proxies[0]: 'localhost' is not an IPv4 or IPv6 address"));
  CHECK(has(errors_of(config_text(enforcement_keys + "unscannable: maybe\n")), "unscannable: expected block, tag or allow"));
}

TEST_CASE("source resolver: network, certificate, trusted header, default, refusal") {
  auto c = parse_config(config_text(enforcement_keys +
                                    "sources:\n"
                                    "  - {cidr: 10.20.0.0/16, jurisdiction: CN, tenant: acme}\n"
                                    "  - {client_cert_subject: 'CN=bank-gw,O=Bank', jurisdiction: DE, tenant: bank}\n"
                                    "  - {cidr: '2001:db8::/32', jurisdiction: FR}\n"
                                    "trusted_proxies: [192.0.2.1/32]\n"),
                        "c.yaml", CUSTOMS_SOURCE_DIR);
  c.listeners[0].default_source = customs::daemon::source_spec{"US", ""};
  const source_resolver r(c);
  boost::beast::http::fields none;

  auto s = r.resolve(flow_from("10.20.3.4"), none);
  CHECK(s.origin == source_origin::network);
  CHECK(s.jurisdiction == "CN");
  CHECK(s.tenant == "acme");
  CHECK(r.resolve(flow_from("::ffff:10.20.3.4"), none).jurisdiction == "CN");
  CHECK(r.resolve(flow_from("2001:db8:1::5"), none).jurisdiction == "FR");
  s = r.resolve(flow_from("10.21.0.1"), none);
  CHECK(s.origin == source_origin::listener);
  CHECK(s.jurisdiction == "US");
  s = r.resolve(flow_from("10.21.0.1", "CN=bank-gw,O=Bank"), none);
  CHECK(s.origin == source_origin::certificate);
  CHECK(s.jurisdiction == "DE");
  CHECK(r.resolve(flow_from("10.21.0.1", "CN=bank-gw"), none).jurisdiction == "US");  // exact subjects only

  boost::beast::http::fields h;
  h.set("X-Customs-Source", "JP");
  h.set("X-Customs-Tenant", "t-1");
  s = r.resolve(flow_from("192.0.2.1"), h);
  CHECK(s.origin == source_origin::header);
  CHECK(s.jurisdiction == "JP");
  CHECK(s.tenant == "t-1");
  CHECK_FALSE(s.header_ignored);
  s = r.resolve(flow_from("10.20.3.4"), h);  // not a trusted proxy
  CHECK(s.origin == source_origin::network);
  CHECK(s.jurisdiction == "CN");
  CHECK(s.tenant == "acme");
  CHECK(s.header_ignored);
  boost::beast::http::fields tenant_only;
  tenant_only.set("X-Customs-Tenant", "t-2");
  s = r.resolve(flow_from("192.0.2.1"), tenant_only);
  CHECK(s.jurisdiction == "US");
  CHECK(s.tenant == "t-2");
  boost::beast::http::fields bad;
  bad.set("X-Customs-Source", "japan");
  s = r.resolve(flow_from("192.0.2.1"), bad);
  CHECK(s.origin == source_origin::none);
  CHECK(s.error.find("X-Customs-Source") != std::string::npos);

  c.listeners[0].default_source.reset();
  const source_resolver no_default(c);
  s = no_default.resolve(flow_from("10.21.0.1"), none);
  CHECK(s.origin == source_origin::none);
  CHECK(s.error.find("no default_source") != std::string::npos);

  boost::beast::http::fields mixed;
  mixed.set("X-Customs-Source", "CN");
  mixed.set("x-customs-whatever", "1");
  mixed.set("Authorization", "Bearer k");
  customs::daemon::enforce::strip_customs_headers(mixed);
  CHECK(mixed.count("X-Customs-Source") == 0);
  CHECK(mixed.count("X-Customs-Whatever") == 0);
  CHECK(mixed.count("Authorization") == 1);
}

TEST_CASE("enforce sources: a flow whose source cannot be resolved is refused (403) and audited") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = enforcing_config(t, provider.port());
  cfg.listeners[0].default_source.reset();
  enforced_server s(std::move(cfg));
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body("hello", false));
  INFO(r.body);
  CHECK(r.status == 403);
  CHECK(r.header("X-Customs-Verdict") == "refused");
  CHECK(r.body.find("customs_unknown_source") != std::string::npos);
  CHECK(provider.request_count() == 0);
  const auto recs = flow_records(t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].index.action == "refused");
  CHECK(recs[1].index.action == "refused");
  CHECK(recs[0].payload.at("detail").as_string().find("no default_source") != std::string::npos);
}

TEST_CASE("enforce sources: a CIDR entry names the source, its tenant reaches the trail") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto cfg = enforcing_config(t, provider.port());
  customs::daemon::source_rule rule;
  rule.cidr.emplace();
  std::string why;
  REQUIRE(customs::daemon::parse_cidr("127.0.0.0/8", *rule.cidr, why));
  rule.source = {"DE", "bank"};
  cfg.sources.push_back(rule);
  enforced_server s(std::move(cfg));
  // A CN rule does not apply to a DE source.
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body(source_id_prompt, false));
  CHECK(r.status == 200);
  const auto recs = flow_records(t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].index.src == "DE");
  CHECK(recs[0].index.tenant == "bank");
  CHECK(recs[0].payload.at("source").at("origin").as_string() == "network");
}

TEST_CASE("enforce sources: X-Customs-Source is honoured from a trusted proxy, ignored from others, and never forwarded") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  // JP: no shipped rule acts on a PRC resident ID sent from JP to US, so the
  // request goes on without a tag header of customsd's own.
  const header_list spoof = {{"X-Customs-Source", "JP"}, {"X-Customs-Tenant", "bank"}};
  SECTION("trusted") {
    auto cfg = enforcing_config(t, provider.port());
    cfg.trusted_proxies.emplace_back();
    std::string why;
    REQUIRE(customs::daemon::parse_cidr("127.0.0.1/32", cfg.trusted_proxies.back(), why));
    enforced_server s(std::move(cfg));
    const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body(source_id_prompt, false), spoof);
    CHECK(r.status == 200);
    const auto recs = flow_records(t, r.header("X-Customs-Flow"));
    REQUIRE(recs.size() == 2);
    CHECK(recs[0].index.src == "JP");
    CHECK(recs[0].index.tenant == "bank");
    CHECK(metric(scrape(s.admin_port()), "customs_source_headers_ignored_total") == 0);
  }
  SECTION("untrusted") {
    auto cfg = enforcing_config(t, provider.port());
    cfg.trusted_proxies.emplace_back();
    std::string why;
    REQUIRE(customs::daemon::parse_cidr("10.0.0.0/8", cfg.trusted_proxies.back(), why));
    enforced_server s(std::move(cfg));
    auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body(source_id_prompt, false), spoof);
    CHECK(r.status == 451);  // judged as the default CN source
    r = post(s.port(), "/openai-us/v1/chat/completions", chat_body("hello", false), spoof);
    CHECK(r.status == 200);
    const auto recs = flow_records(t, r.header("X-Customs-Flow"));
    REQUIRE(recs.size() == 2);
    CHECK(recs[0].index.src == "CN");
    CHECK(recs[0].index.tenant == "demo");
    CHECK(metric(scrape(s.admin_port()), "customs_source_headers_ignored_total") == 2);
  }
  for (const auto& req : provider.requests()) {
    for (const auto& [k, v] : req.headers) {
      INFO(k << ": " << v);
      CHECK_FALSE(boost::beast::iequals(k.substr(0, 10), "x-customs-"));
    }
  }
}

TEST_CASE("enforce sources: an mTLS client certificate's subject names the source") {
  temp_dir dir;
  trail_files t(dir.path());
  const auto pki = make_test_pki(dir.path() / "pki", "bank-gw");
  const auto other = issue_client_cert(pki, dir.path() / "pki", "someone-else", "other");
  fake_provider provider;
  auto cfg = enforcing_config(t, provider.port());
  cfg.listeners[0].tls = customs::daemon::tls_files{pki.server.cert, pki.server.key, pki.ca.cert};
  customs::daemon::source_rule rule;
  rule.client_cert_subject = "CN=bank-gw,O=Customs tests";  // as OpenSSL prints the test certificate
  rule.source = {"DE", "bank"};
  cfg.sources.push_back(rule);
  enforced_server s(std::move(cfg));

  const auto request = [&](const cert_and_key* client) {
    boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
    ctx.load_verify_file(pki.ca.cert.string());
    if (client != nullptr) {
      ctx.use_certificate_file(client->cert.string(), boost::asio::ssl::context::pem);
      ctx.use_private_key_file(client->key.string(), boost::asio::ssl::context::pem);
    }
    http_client c(s.port(), ctx, "localhost");
    return c.request("POST", "/openai-us/v1/chat/completions", chat_body(source_id_prompt, false),
                     {{"Content-Type", "application/json"}});
  };
  auto r = request(&pki.client);
  CHECK(r.status == 200);  // DE: the CN rule does not apply
  auto recs = flow_records(t, r.header("X-Customs-Flow"));
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].index.src == "DE");
  CHECK(recs[0].payload.at("source").at("client_cert_subject").as_string() == "CN=bank-gw,O=Customs tests");
  r = request(&other);
  CHECK(r.status == 451);  // another certificate: the listener's default (CN)
  // No certificate: no handshake.
  CHECK_THROWS(request(nullptr));
}
