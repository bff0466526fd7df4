// The generated test certificates verify (or not) the way TLS tests rely on.

#include "tests/support/test_certs.hpp"

#include <catch2/catch.hpp>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace customs::testing::test {
namespace {

struct free_x509 { void operator()(X509* p) const { X509_free(p); } };
using x509_ptr = std::unique_ptr<X509, free_x509>;

x509_ptr load(const std::filesystem::path& p) {
  FILE* f = std::fopen(p.c_str(), "r");
  REQUIRE(f != nullptr);
  x509_ptr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  REQUIRE(cert);
  return cert;
}

// Verifies `leaf` against `ca` alone, for the given purpose (X509_PURPOSE_*);
// returns the X509_V_* result.
int verify(X509* leaf, X509* ca, int purpose) {
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  X509_STORE_add_cert(store.get(), ca);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                       X509_STORE_CTX_free);
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr);
  X509_STORE_CTX_set_purpose(ctx.get(), purpose);
  X509_verify_cert(ctx.get());
  return X509_STORE_CTX_get_error(ctx.get());
}

std::string common_name(X509* cert) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

}  // namespace

TEST_CASE("make_test_pki writes a CA, a server, an untrusted and a client certificate") {
  temp_dir dir;
  const test_pki pki = make_test_pki(dir.path(), "tenant-a.example");
  for (const auto* p : {&pki.ca, &pki.server, &pki.untrusted, &pki.client}) {
    CHECK(std::filesystem::exists(p->cert));
    CHECK(std::filesystem::exists(p->key));
    CHECK((std::filesystem::status(p->key).permissions() & std::filesystem::perms::group_read) ==
          std::filesystem::perms::none);
  }
  const auto ca = load(pki.ca.cert);
  const auto server = load(pki.server.cert);
  const auto untrusted = load(pki.untrusted.cert);
  const auto client = load(pki.client.cert);

  CHECK(X509_check_ca(ca.get()) == 1);
  CHECK(verify(server.get(), ca.get(), X509_PURPOSE_SSL_SERVER) == X509_V_OK);
  CHECK(X509_check_host(server.get(), "localhost", 0, 0, nullptr) == 1);
  CHECK(X509_check_ip_asc(server.get(), "127.0.0.1", 0) == 1);
  CHECK(X509_check_host(server.get(), "example.com", 0, 0, nullptr) == 0);
  // A server certificate is no client certificate and no CA.
  CHECK(verify(server.get(), ca.get(), X509_PURPOSE_SSL_CLIENT) != X509_V_OK);
  CHECK(X509_check_ca(server.get()) == 0);

  CHECK(verify(untrusted.get(), ca.get(), X509_PURPOSE_SSL_SERVER) != X509_V_OK);
  CHECK(X509_check_host(untrusted.get(), "localhost", 0, 0, nullptr) == 1);

  CHECK(verify(client.get(), ca.get(), X509_PURPOSE_SSL_CLIENT) == X509_V_OK);
  CHECK(common_name(client.get()) == "tenant-a.example");

  const auto other = issue_client_cert(pki, dir.path(), "tenant-b.example", "tenant-b");
  CHECK(other.cert.filename() == "tenant-b.pem");
  const auto b = load(other.cert);
  CHECK(verify(b.get(), ca.get(), X509_PURPOSE_SSL_CLIENT) == X509_V_OK);
  CHECK(common_name(b.get()) == "tenant-b.example");
}

TEST_CASE("temp_dir removes its contents") {
  std::filesystem::path kept;
  {
    temp_dir dir;
    kept = dir.path();
    CHECK(std::filesystem::is_directory(kept));
    (void)make_test_pki(kept / "nested");
  }
  CHECK_FALSE(std::filesystem::exists(kept));
}

}  // namespace customs::testing::test
