// The forward listener end to end: tunnels for hosts outside the catalogue,
// refusals before anything is relayed, interception of catalogued hosts
// through the enforcement pipeline, clients that reject the CA, and
// ClientHellos cut every way.
#include "edge_harness.hpp"

#include "bio_client.hpp"
#include "daemon/http_util.hpp"
#include "daemon/listen/proxy_auth.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <sys/socket.h>

#include <fstream>

using namespace customs::testing;
using namespace customs::testing::edge;
namespace cd = customs::daemon;

namespace {

// The phone number 138 0013 8000 split across three deltas.
script phone_stream() {
  script s;
  s.deltas = {"Sure, call 138 0", "013 80", "00 any time."};
  return s;
}

const std::string resident_id_prompt = "My resident ID is 11010519491231002X, please check it.";

bool is_edge(const any_record& r, std::string_view event, std::string_view reason = {}) {
  const auto* e = r.payload.if_contains("edge");
  if (e == nullptr || e->as_string() != event) return false;
  return reason.empty() || r.payload.at("reason").as_string() == reason;
}

std::uint64_t metric_of(std::uint16_t admin, const std::string& sample) { return metric(scrape(admin), sample); }

}  // namespace

TEST_CASE("a host outside the catalogue is tunnelled untouched: the client verifies the host's own certificate", "[edge][forward]") {
  edge_env env;
  edge_server srv(env.config());
  {
    http_client c(srv.port());
    const auto answer = c.proxy_connect("tunnel.test:443");
    REQUIRE(answer.status == 200);
    auto ctx = edge_env::trusting(env.pki.ca.cert);  // the real site's CA, not the interception CA
    c.start_tls(*ctx, "tunnel.test");
    const auto r = c.request("POST", "/v1/chat/completions", enforce::chat_body(resident_id_prompt, false),
                             {{"Content-Type", "application/json"}});
    CHECK(r.status == 200);
    CHECK(r.header("X-Customs-Verdict").empty());  // never seen by the pipeline
    REQUIRE(env.other_site.request_count() == 1);
    CHECK(env.other_site.requests()[0].body.find("11010519491231002X") != std::string::npos);
  }
  const auto recs = records_until(env.trail, [](const any_record& r) { return is_edge(r, "tunnel"); });
  const any_record* t = find_record(recs, [](const any_record& r) { return is_edge(r, "tunnel"); });
  REQUIRE(t != nullptr);
  CHECK(t->index.action == "tunnel");
  CHECK(t->index.route == "tunnel");
  CHECK(t->index.src == "CN");
  CHECK(t->payload.at("host").as_string() == "tunnel.test");
  CHECK(t->payload.at("bytes").as_object().at("up").as_int64() > 0);
  CHECK(t->payload.at("bytes").as_object().at("down").as_int64() > 0);
  CHECK(metric_of(srv.admin_port(), "customs_edge_connections_total{outcome=\"tunnelled\"}") == 1);
}

TEST_CASE("CONNECT to loopback, a private address, another port or the admin listener is refused", "[edge][forward]") {
  edge_env env;
  auto cfg = env.config();
  const std::uint16_t admin = closed_port();
  cfg.admin.port = admin;
  SECTION("loopback, private and link-local addresses") {
    edge_server srv(cfg);
    for (const auto& [authority, reason] : {std::pair{"127.0.0.1:443", "loopback"}, std::pair{"10.1.2.3:443", "private_network"},
                                           std::pair{"[::1]:443", "loopback"}, std::pair{"169.254.169.254:80", "link_local"}}) {
      INFO(authority);
      http_client c(srv.port());
      const auto r = c.proxy_connect(authority);
      CHECK(r.status == 403);
      CHECK(r.header("X-Customs-Reason") == reason);
      CHECK(r.header("X-Customs-Verdict") == "refused");
    }
    http_client c(srv.port());
    const auto r = c.proxy_connect("tunnel.test:22");
    CHECK(r.status == 403);
    CHECK(r.header("X-Customs-Reason") == "port");
    const auto recs = records_until(env.trail, [](const any_record& x) { return is_edge(x, "refused", "port"); });
    CHECK(find_record(recs, [](const any_record& x) { return is_edge(x, "refused", "loopback"); }) != nullptr);
    CHECK(find_record(recs, [](const any_record& x) { return is_edge(x, "refused", "private_network"); }) != nullptr);
    CHECK(metric_of(srv.admin_port(), "customs_edge_refusals_total{reason=\"loopback\"}") == 2);
  }
  SECTION("the admin listener, even where loopback is allowed") {
    cfg.interception->ports = {443, 80, admin};
    std::string why;
    cd::cidr_block lo;
    REQUIRE(cd::parse_cidr("127.0.0.0/8", lo, why));
    cfg.interception->allow_networks = {lo};
    edge_server srv(cfg);
    http_client c(srv.port());
    const auto r = c.proxy_connect("127.0.0.1:" + std::to_string(admin));
    CHECK(r.status == 403);
    CHECK(r.header("X-Customs-Reason") == "own_listener");
  }
}

TEST_CASE("with unknown_hosts refuse, a CONNECT to a host outside the catalogue is refused and audited", "[edge][forward]") {
  edge_env env;
  auto cfg = env.config();
  cfg.interception->refuse_unknown_hosts = true;
  edge_server srv(cfg);
  {
    http_client c(srv.port());
    const auto r = c.proxy_connect("tunnel.test:443");
    CHECK(r.status == 403);
    CHECK(r.header("X-Customs-Reason") == "unknown_host");
    CHECK(r.header("X-Customs-Verdict") == "refused");
  }
  {
    // A catalogued host still passes.
    http_client c(srv.port());
    CHECK(c.proxy_connect("api.openai.com:443").status == 200);
  }
  CHECK(env.other_site.request_count() == 0);
  const auto recs = records_until(env.trail, [](const any_record& r) { return is_edge(r, "refused", "unknown_host"); });
  const any_record* rec = find_record(recs, [](const any_record& r) { return is_edge(r, "refused", "unknown_host"); });
  REQUIRE(rec != nullptr);
  CHECK(rec->index.action == "refused");
  CHECK(rec->payload.at("host").as_string() == "tunnel.test");
  CHECK(metric_of(srv.admin_port(), "customs_edge_refusals_total{reason=\"unknown_host\"}") == 1);
}

TEST_CASE("a host added to the catalogue is intercepted after a reload", "[edge][forward]") {
  edge_env env;
  auto cfg = env.config();
  const auto providers = env.dir.path() / "providers";
  std::filesystem::create_directories(providers);
  std::filesystem::copy_file(std::filesystem::path(CUSTOMS_SOURCE_DIR) / "config" / "providers" / "ai-providers.yaml",
                             providers / "ai-providers.yaml");
  cfg.providers = {providers};
  edge_server srv(cfg);
  {
    // Not catalogued yet: tunnelled, the client sees the site's own certificate.
    http_client c(srv.port());
    REQUIRE(c.proxy_connect("tunnel.test:443").status == 200);
    auto ctx = edge_env::trusting(env.pki.ca.cert);
    c.start_tls(*ctx, "tunnel.test");
    const auto r = c.request("POST", "/v1/chat/completions", enforce::chat_body("Hello", false),
                             {{"Content-Type", "application/json"}});
    CHECK(r.status == 200);
    CHECK(r.header("X-Customs-Verdict").empty());
  }
  std::ofstream(providers / "local.yaml")
      << "schema: customs/providers/v1\n"
      << "hosts:\n"
      << "  - {host: tunnel.test, provider: Test, dialect: openai, jurisdiction: US, sources: [test]}\n";
  const auto res = srv.server().reload(cfg);
  INFO((res.errors.empty() ? std::string() : res.errors.front()));
  REQUIRE(res.ok);
  {
    // Catalogued now: intercepted with a leaf from the interception CA and enforced.
    http_client c(srv.port());
    REQUIRE(c.proxy_connect("tunnel.test:443").status == 200);
    auto ctx = edge_env::trusting(env.ica / "ca.pem");
    c.start_tls(*ctx, "tunnel.test");
    const auto r = c.request("POST", "/v1/chat/completions", enforce::chat_body(resident_id_prompt, false),
                             {{"Content-Type", "application/json"}});
    CHECK(r.status == 451);
    CHECK(r.header("X-Customs-Verdict") == "block");
  }
  CHECK(env.other_site.request_count() == 1);  // only the request made before the reload
}

TEST_CASE("an intercepted request that must not leave is answered 451 and never reaches the provider", "[edge][forward]") {
  edge_env env;
  edge_server srv(env.config());
  http_client c(srv.port());
  REQUIRE(c.proxy_connect("api.openai.com:443").status == 200);
  auto ctx = edge_env::trusting(env.ica / "ca.pem");
  c.start_tls(*ctx, "api.openai.com");
  const auto r = c.request("POST", "/v1/chat/completions", enforce::chat_body(resident_id_prompt, false),
                           {{"Content-Type", "application/json"}, {"Authorization", "Bearer sk-test"}});
  CHECK(r.status == 451);
  CHECK(r.header("X-Customs-Verdict") == "block");
  CHECK(env.provider.request_count() == 0);
  const std::string flow = r.header("X-Customs-Flow");
  const auto recs = enforce::flow_records(env.trail, flow);
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].index.route == "api.openai.com");
  CHECK(recs[0].index.dst == "US");
  CHECK(recs[0].payload.at("mode").as_string() == "forward");
  CHECK(recs[0].payload.at("host").as_string() == "api.openai.com");
  CHECK(recs[1].index.action == "block");
}

TEST_CASE("an intercepted streamed answer is redacted on the way back, and the trail verifies", "[edge][forward]") {
  edge_env env;
  env.provider.set_script(phone_stream());
  {
    edge_server srv(env.config());
    http_client c(srv.port());
    REQUIRE(c.proxy_connect("api.openai.com:443").status == 200);
    auto ctx = edge_env::trusting(env.ica / "ca.pem");
    c.start_tls(*ctx, "api.openai.com");
    const auto r = c.request("POST", "/v1/chat/completions", enforce::chat_body("What is your number?", true),
                             {{"Content-Type", "application/json"}});
    REQUIRE(r.status == 200);
    const auto v = enforce::reassemble(enforce::all_apis()[0], r.body);
    CHECK(v.text == "Sure, call [REDACTED:pi.phone] any time.");
    CHECK(v.ended);
    REQUIRE(env.provider.request_count() == 1);
    // What went upstream: the origin-form path, the provider's own Host, no X-Forwarded-For.
    const auto req = env.provider.requests()[0];
    CHECK(req.target == "/v1/chat/completions");
    bool xff = false;
    for (const auto& [k, val] : req.headers) {
      if (cd::iequals(k, "host")) CHECK(val == "api.openai.com");
      xff = xff || cd::iequals(k, "x-forwarded-for");
    }
    CHECK_FALSE(xff);
    // A second request on the same intercepted connection.
    const auto again = c.request("POST", "/v1/chat/completions", enforce::chat_body("Hello", false),
                                 {{"Content-Type", "application/json"}});
    CHECK(again.status == 200);
  }
  const auto v = enforce::verify_trail(env.trail);
  INFO((v.failures.empty() ? std::string() : v.failures.front().detail));
  CHECK(v.ok());
}

TEST_CASE("proxy credentials are required when configured and name the tenant", "[edge][forward]") {
  edge_env env;
  auto cfg = env.config();
  const auto users = env.dir.path() / "users";
  std::ofstream(users) << cd::listen::make_proxy_user_line("alice", "s3cret", "acme") << "\n";
  std::filesystem::permissions(users, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace);
  cfg.listeners[0].proxy_auth = cd::proxy_auth_config{users, "customs-test"};
  edge_server srv(cfg);
  {
    http_client c(srv.port());
    const auto r = c.proxy_connect("tunnel.test:443");
    CHECK(r.status == 407);
    CHECK(r.header("Proxy-Authenticate") == "Basic realm=\"customs-test\"");
  }
  {
    http_client c(srv.port());
    const auto r = c.proxy_connect("tunnel.test:443", {{"Proxy-Authorization", "Basic YWxpY2U6d3Jvbmc="}});  // alice:wrong
    CHECK(r.status == 407);
  }
  {
    http_client c(srv.port());
    const auto r = c.proxy_connect("api.openai.com:443", {{"Proxy-Authorization", "Basic YWxpY2U6czNjcmV0"}});  // alice:s3cret
    CHECK(r.status == 200);
  }
}

TEST_CASE("a destination rule refuses a CONNECT before anything is decrypted, and the refusal is audited", "[edge][forward]") {
  edge_env env;
  auto cfg = env.config();
  const auto users = env.dir.path() / "users";
  std::ofstream(users) << cd::listen::make_proxy_user_line("alice", "s3cret", "acme") << "\n"
                       << cd::listen::make_proxy_user_line("bob", "s3cret", "globex") << "\n";
  std::filesystem::permissions(users, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace);
  cfg.listeners[0].proxy_auth = cd::proxy_auth_config{users, "customs"};
  edge_server srv(cfg);
  {
    http_client c(srv.port());
    const auto r = c.proxy_connect("api.deepseek.com:443", {{"Proxy-Authorization", "Basic YWxpY2U6czNjcmV0"}});  // acme
    CHECK(r.status == 403);
    CHECK(r.header("X-Customs-Reason") == "policy");
    CHECK(r.header("X-Customs-Rule") == "test.acme.no-concern");
  }
  {
    // Another tenant, or another destination, passes.
    http_client c(srv.port());
    CHECK(c.proxy_connect("api.deepseek.com:443", {{"Proxy-Authorization", "Basic Ym9iOnMzY3JldA=="}}).status == 200);  // bob
    http_client d(srv.port());
    CHECK(d.proxy_connect("api.openai.com:443", {{"Proxy-Authorization", "Basic YWxpY2U6czNjcmV0"}}).status == 200);
  }
  CHECK(env.provider.request_count() == 0);
  const auto recs = records_until(env.trail, [](const any_record& r) { return is_edge(r, "refused", "policy"); });
  const any_record* rec = find_record(recs, [](const any_record& r) { return is_edge(r, "refused", "policy"); });
  REQUIRE(rec != nullptr);
  CHECK(rec->index.action == "refused");
  CHECK(rec->index.tenant == "acme");
  CHECK(rec->index.dst == "CN");
  CHECK(rec->index.route == "api.deepseek.com");
  CHECK(rec->index.rules == std::vector<std::string>{"test.acme.no-concern"});
}

TEST_CASE("a client that rejects the interception CA is counted, audited as uninspected and refused next time", "[edge][forward]") {
  edge_env env;
  edge_server srv(env.config());
  {
    http_client c(srv.port());
    REQUIRE(c.proxy_connect("api.openai.com:443").status == 200);
    auto ctx = edge_env::trusting(env.pki.ca.cert);  // does not trust the interception CA
    CHECK_THROWS(c.start_tls(*ctx, "api.openai.com"));
  }
  CHECK(await_metric(srv.admin_port(), "customs_edge_handshakes_total{result=\"untrusted\"}", 1) == 1);
  const auto recs = records_until(env.trail, [](const any_record& r) { return is_edge(r, "untrusted"); });
  const any_record* rec = find_record(recs, [](const any_record& r) { return is_edge(r, "untrusted"); });
  REQUIRE(rec != nullptr);
  CHECK(rec->index.action == "uninspected");
  CHECK(rec->index.route == "api.openai.com");
  // on_untrusted defaults to refuse: the next CONNECT from this client is refused.
  http_client again(srv.port());
  const auto r = again.proxy_connect("api.openai.com:443");
  CHECK(r.status == 403);
  CHECK(r.header("X-Customs-Reason") == "untrusted");
}

TEST_CASE("with on_untrusted tunnel, a client that rejected the CA reaches the provider uninspected next time", "[edge][forward]") {
  edge_env env;
  auto cfg = env.config();
  cfg.interception->on_untrusted = cd::untrusted_action::tunnel;
  edge_server srv(cfg);
  auto real_ca = edge_env::trusting(env.pki.ca.cert);
  {
    http_client c(srv.port());
    REQUIRE(c.proxy_connect("api.openai.com:443").status == 200);
    CHECK_THROWS(c.start_tls(*real_ca, "api.openai.com"));
  }
  REQUIRE(await_metric(srv.admin_port(), "customs_edge_handshakes_total{result=\"untrusted\"}", 1) == 1);
  {
    http_client c(srv.port());
    REQUIRE(c.proxy_connect("api.openai.com:443").status == 200);
    c.start_tls(*real_ca, "api.openai.com");  // the provider's own certificate
    const auto r = c.request("POST", "/v1/chat/completions", enforce::chat_body("Hello", false),
                             {{"Content-Type", "application/json"}});
    CHECK(r.status == 200);
    CHECK(r.header("X-Customs-Verdict").empty());
  }
  const auto recs = records_until(env.trail, [](const any_record& r) { return is_edge(r, "tunnel", "untrusted"); });
  const any_record* rec = find_record(recs, [](const any_record& r) { return is_edge(r, "tunnel", "untrusted"); });
  REQUIRE(rec != nullptr);
  CHECK(rec->index.action == "uninspected");
  CHECK(rec->index.dst == "US");
}

TEST_CASE("a TLS server name other than the CONNECT host is refused with an alert", "[edge][forward]") {
  edge_env env;
  edge_server srv(env.config());
  http_client c(srv.port());
  REQUIRE(c.proxy_connect("api.openai.com:443").status == 200);
  auto ctx = edge_env::trusting(env.ica / "ca.pem");
  CHECK_THROWS(c.start_tls(*ctx, "api.anthropic.com"));  // SNI api.anthropic.com to api.openai.com
  CHECK(await_metric(srv.admin_port(), "customs_edge_refusals_total{reason=\"sni_mismatch\"}", 1) == 1);
  CHECK(env.provider.request_count() == 0);
}

namespace {

// CONNECT through the proxy on a raw socket; returns the socket's descriptor
// (owned by `s`).
int connect_through(boost::asio::ip::tcp::socket& s, std::uint16_t port, const std::string& authority) {
  s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  s.set_option(boost::asio::ip::tcp::no_delay(true));
  const std::string req = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
  boost::asio::write(s, boost::asio::buffer(req));
  std::string head;
  char ch;
  while (head.find("\r\n\r\n") == std::string::npos && boost::asio::read(s, boost::asio::buffer(&ch, 1)) == 1) head += ch;
  REQUIRE(head.rfind("HTTP/1.1 200", 0) == 0);
  return s.native_handle();
}

// A CONNECT to api.openai.com through srv, then a TLS client on it whose
// ClientHello the test sends itself (see bio_tls_client).
struct raw_tunnel {
  raw_tunnel(edge_server& srv, const edge_env& env, const hello_options& o = {})
      : fd(connect_through(s, srv.port(), "api.openai.com:443")), tls(fd, env.ica / "ca.pem", "api.openai.com", o) {}
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket s{ioc};
  int fd;
  bio_tls_client tls;
};

void require_intercepted_roundtrip(bio_tls_client& t, const std::string& host) {
  INFO(t.error());
  REQUIRE(t.finish_handshake());
  CHECK(t.verify_result() == X509_V_OK);
  const std::string r = t.roundtrip(edge::chat_request(host, "Hello", false));
  INFO(r);
  CHECK(r.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(r.find("X-Customs-Verdict: allow") != std::string::npos);
  CHECK(r.find("Hello from the fake provider.") != std::string::npos);
}

}  // namespace

TEST_CASE("a ClientHello split across many TCP segments is read whole", "[edge][forward]") {
  edge_env env;
  edge_server srv(env.config());
  raw_tunnel r(srv, env);
  REQUIRE(r.tls.hello().size() > 200);
  r.tls.send_cut(r.tls.hello(), 7, std::chrono::milliseconds(2));  // dozens of segments
  require_intercepted_roundtrip(r.tls, "api.openai.com");
}

TEST_CASE("a ClientHello fragmented into many TLS records is read whole", "[edge][forward]") {
  edge_env env;
  edge_server srv(env.config());
  raw_tunnel r(srv, env);
  r.tls.send_cut(refragment(r.tls.hello(), 40), 100, std::chrono::milliseconds(1));
  require_intercepted_roundtrip(r.tls, "api.openai.com");
}

TEST_CASE("a ClientHello larger than one TLS record is read whole", "[edge][forward]") {
  edge_env env;
  edge_server srv(env.config());
  hello_options o;
  o.padding = 20000;
  raw_tunnel r(srv, env, o);
  REQUIRE(r.tls.hello().size() > 16384 + 5);
  r.tls.send_cut(r.tls.hello(), 4096, std::chrono::milliseconds(1));
  require_intercepted_roundtrip(r.tls, "api.openai.com");
}

TEST_CASE("a ClientHello over limits.client_hello_bytes is refused with an alert", "[edge][forward]") {
  edge_env env;
  auto cfg = env.config();
  cfg.limits.client_hello_bytes = 4096;
  edge_server srv(cfg);
  hello_options o;
  o.padding = 5000;
  raw_tunnel r(srv, env, o);
  r.tls.send_cut(r.tls.hello(), 1 << 20, std::chrono::milliseconds(0));
  CHECK_FALSE(r.tls.finish_handshake(std::chrono::seconds(5)));
  CHECK(await_metric(srv.admin_port(), "customs_client_hello_total{result=\"too_large\"}", 1) == 1);
}

TEST_CASE("a ClientHello without a server name is intercepted as the CONNECT host", "[edge][forward]") {
  edge_env env;
  edge_server srv(env.config());
  hello_options o;
  o.server_name.reset();
  raw_tunnel r(srv, env, o);
  r.tls.send_cut(r.tls.hello(), 1 << 20, std::chrono::milliseconds(0));
  require_intercepted_roundtrip(r.tls, "api.openai.com");
}

TEST_CASE("absolute-form requests on a forward listener are routed by their URL", "[edge][forward]") {
  edge_env env;
  // A plain-HTTP provider for api.openai.com: what http:// asks for.
  fake_provider plain;
  auto cfg = env.config();
  cfg.resolve[0].port = plain.port();
  edge_server srv(cfg);
  http_client c(srv.port());
  const auto blocked = c.request("POST", "http://api.openai.com/v1/chat/completions", enforce::chat_body(resident_id_prompt, false),
                                 {{"Content-Type", "application/json"}});
  CHECK(blocked.status == 451);
  const auto ok = c.request("POST", "http://api.openai.com/v1/chat/completions", enforce::chat_body("Hello", false),
                            {{"Content-Type", "application/json"}});
  CHECK(ok.status == 200);
  REQUIRE(plain.request_count() == 1);
  CHECK(plain.requests()[0].target == "/v1/chat/completions");
  http_client d(srv.port());
  const auto refused = d.request("GET", "http://10.1.2.3/", "");
  CHECK(refused.status == 403);
  CHECK(refused.header("X-Customs-Reason") == "private_network");
}

TEST_CASE("a tunnel without a byte either way for limits.tunnel_idle_timeout is closed", "[edge][forward]") {
  edge_env env;
  auto cfg = env.config();
  cfg.limits.tunnel_idle_timeout = std::chrono::milliseconds(300);
  edge_server srv(cfg);
  http_client c(srv.port(), std::chrono::seconds(5));
  REQUIRE(c.proxy_connect("tunnel.test:443").status == 200);
  CHECK(c.closed_by_peer());  // within the client's 5 s deadline
  CHECK(await_metric(srv.admin_port(), "customs_tunnels_active", 0) == 0);
}
