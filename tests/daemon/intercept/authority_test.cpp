// The interception CA and its leaf certificates.
#include <catch2/catch.hpp>

#include "daemon/intercept/authority.hpp"
#include "daemon/intercept/x509.hpp"
#include "tests/support/test_certs.hpp"

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

using namespace customs::daemon;
using namespace customs::daemon::intercept;
namespace fs = std::filesystem;

namespace {

interception_config make_ca_in(const fs::path& dir, std::uint64_t cache = 10000) {
  (void)write_ca_files(dir, make_ca("Test interception CA", std::chrono::hours(24 * 30)));
  interception_config c;
  c.ca_cert = dir / "ca.pem";
  c.ca_key = dir / "ca.key";
  c.leaf_cache = cache;
  return c;
}

// The certificate presented to a fresh SSL of the authority's context for host.
x509_ptr presented(authority& a, const std::string& host) {
  SSL* ssl = SSL_new(a.context()->native_handle());
  REQUIRE(ssl != nullptr);
  REQUIRE(a.present(ssl, host));
  X509* c = SSL_get_certificate(ssl);
  REQUIRE(c != nullptr);
  X509_up_ref(c);
  SSL_free(ssl);
  return x509_ptr(c);
}

bool verifies(X509* leaf, const fs::path& ca_file, const std::string& host) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_load_file(store, ca_file.c_str());
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, nullptr);
  X509_VERIFY_PARAM* p = X509_STORE_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set1_host(p, host.c_str(), host.size());
  X509_VERIFY_PARAM_set_purpose(p, X509_PURPOSE_SSL_SERVER);
  const bool ok = X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return ok;
}

}  // namespace

TEST_CASE("ca gen writes a CA whose key only the owner may read and never overwrites it", "[intercept]") {
  customs::testing::temp_dir dir;
  const auto [cert, key] = write_ca_files(dir.path() / "ca", make_ca("X", std::chrono::hours(24)));
  struct stat st {};
  REQUIRE(::stat(key.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat(cert.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  CHECK_THROWS_AS(write_ca_files(dir.path() / "ca", make_ca("X", std::chrono::hours(24))), std::runtime_error);
  const loaded_ca ca = load_ca(cert, key);
  CHECK(X509_check_ca(ca.cert.get()) != 0);
}

TEST_CASE("a CA key that group or others may read is refused", "[intercept]") {
  customs::testing::temp_dir dir;
  const auto [cert, key] = write_ca_files(dir.path(), make_ca("X", std::chrono::hours(24)));
  ::chmod(key.c_str(), 0640);
  try {
    (void)load_ca(cert, key);
    FAIL("loaded");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("chmod 600") != std::string::npos);
  }
}

TEST_CASE("a certificate that is not a CA cannot sign leaves", "[intercept]") {
  customs::testing::temp_dir dir;
  const auto pki = customs::testing::make_test_pki(dir.path());
  CHECK_THROWS_AS(load_ca(pki.server.cert, pki.server.key), std::runtime_error);
}

TEST_CASE("a minted leaf names the host, chains to the CA and uses ECDSA P-256", "[intercept]") {
  customs::testing::temp_dir dir;
  const auto cfg = make_ca_in(dir.path());
  authority a(cfg);
  const x509_ptr leaf = presented(a, "api.openai.com");
  CHECK(verifies(leaf.get(), cfg.ca_cert, "api.openai.com"));
  CHECK_FALSE(verifies(leaf.get(), cfg.ca_cert, "api.anthropic.com"));
  EVP_PKEY* k = X509_get0_pubkey(leaf.get());
  CHECK(EVP_PKEY_is_a(k, "EC"));
  char group[32] = {};
  size_t len = 0;
  REQUIRE(EVP_PKEY_get_group_name(k, group, sizeof group, &len) == 1);
  CHECK(std::string(group) == "prime256v1");
  // Valid for leaf_validity (24 h by default) from an hour before now.
  int days = 0, secs = 0;
  REQUIRE(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf.get()), X509_get0_notAfter(leaf.get())) == 1);
  CHECK(days * 86400 + secs == 25 * 3600);
  CHECK(X509_check_ca(leaf.get()) == 0);
}

TEST_CASE("leaves are cached per host", "[intercept]") {
  customs::testing::temp_dir dir;
  authority a(make_ca_in(dir.path()));
  const x509_ptr first = presented(a, "api.openai.com");
  const x509_ptr again = presented(a, "api.openai.com");
  const x509_ptr other = presented(a, "api.anthropic.com");
  CHECK(X509_cmp(first.get(), again.get()) == 0);
  CHECK(X509_cmp(first.get(), other.get()) != 0);
  const auto s = a.stats();
  CHECK(s.minted == 2);
  CHECK(s.hits == 1);
  CHECK(s.size == 2);
}

TEST_CASE("the leaf cache holds leaf_cache entries and drops the least recently used", "[intercept]") {
  customs::testing::temp_dir dir;
  authority a(make_ca_in(dir.path(), 2));
  (void)presented(a, "a.example");
  (void)presented(a, "b.example");
  (void)presented(a, "a.example");  // a is now the most recent
  (void)presented(a, "c.example");  // b goes
  auto s = a.stats();
  CHECK(s.size == 2);
  CHECK(s.evicted == 1);
  (void)presented(a, "a.example");
  CHECK(a.stats().hits == 2);
  (void)presented(a, "b.example");  // minted again
  CHECK(a.stats().minted == 4);
}

TEST_CASE("a client that trusts the CA completes a handshake and gets http/1.1", "[intercept]") {
  customs::testing::temp_dir dir;
  const auto cfg = make_ca_in(dir.path());
  authority a(cfg);
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  REQUIRE(SSL_CTX_load_verify_file(cctx, cfg.ca_cert.c_str()) == 1);
  SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, nullptr);
  SSL* c = SSL_new(cctx);
  SSL_set_tlsext_host_name(c, "api.openai.com");
  SSL_set1_host(c, "api.openai.com");
  static constexpr unsigned char protos[] = "\x02h2\x08http/1.1";
  SSL_set_alpn_protos(c, protos, sizeof protos - 1);
  SSL* s = SSL_new(a.context()->native_handle());
  REQUIRE(a.present(s, "api.openai.com"));
  BIO *c2s = nullptr, *s2c = nullptr;
  BIO_new_bio_pair(&c2s, 0, &s2c, 0);
  SSL_set_bio(c, c2s, c2s);
  SSL_set_bio(s, s2c, s2c);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  for (int i = 0; i < 20 && !(SSL_is_init_finished(c) && SSL_is_init_finished(s)); ++i) {
    (void)SSL_do_handshake(c);
    (void)SSL_do_handshake(s);
  }
  CHECK(SSL_is_init_finished(c));
  CHECK(SSL_get_verify_result(c) == X509_V_OK);
  const unsigned char* proto = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(c, &proto, &len);
  CHECK(std::string(reinterpret_cast<const char*>(proto), len) == "http/1.1");
  SSL_free(c);
  SSL_free(s);
  SSL_CTX_free(cctx);
}

TEST_CASE("clients that rejected the CA are remembered per host for a while", "[intercept]") {
  untrusted_clients u;
  const auto t0 = std::chrono::steady_clock::now();
  const auto a = boost::asio::ip::make_address("10.0.0.1");
  const auto b = boost::asio::ip::make_address("10.0.0.2");
  u.remember(a, "api.openai.com", t0);
  CHECK(u.contains(a, "api.openai.com", t0));
  CHECK_FALSE(u.contains(a, "api.anthropic.com", t0));
  CHECK_FALSE(u.contains(b, "api.openai.com", t0));
  CHECK_FALSE(u.contains(a, "api.openai.com", t0 + untrusted_clients::ttl + std::chrono::seconds(1)));
  CHECK(u.size() == 1);
}
