#include "tests/support/test_certs.hpp"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>

namespace customs::testing {
namespace {

struct free_pkey { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct free_x509 { void operator()(X509* p) const { X509_free(p); } };
struct free_bio { void operator()(BIO* p) const { BIO_free(p); } };
struct free_bn { void operator()(BIGNUM* p) const { BN_free(p); } };
struct free_ext { void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); } };
using pkey_ptr = std::unique_ptr<EVP_PKEY, free_pkey>;
using x509_ptr = std::unique_ptr<X509, free_x509>;
using bio_ptr = std::unique_ptr<BIO, free_bio>;

[[noreturn]] void fail(const std::string& what) {
  std::string reason = what;
  if (const unsigned long e = ERR_get_error(); e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    reason += ": ";
    reason += buf;
  }
  ERR_clear_error();
  throw std::runtime_error("test certificates: " + reason);
}

pkey_ptr new_key() {
  pkey_ptr key(EVP_EC_gen("P-256"));
  if (!key) fail("EVP_EC_gen");
  return key;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, free_ext> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) fail(std::string("extension ") + value);
}

// The kinds of certificate the tests need, by their extensions.
enum class role { ca, server, client };

// A certificate for `key` with subject CN=cn; signed by issuer_key under
// issuer_cert, or self-signed when issuer_cert is null.
x509_ptr make_cert(EVP_PKEY* key, const std::string& cn, role r, X509* issuer_cert,
                   EVP_PKEY* issuer_key, const std::string& san = "DNS:localhost,IP:127.0.0.1") {
  x509_ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) fail("X509_new");

  std::unique_ptr<BIGNUM, free_bn> serial(BN_new());
  if (!serial || BN_rand(serial.get(), 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())))
    fail("serial number");
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), 2 * 24 * 3600))
    fail("validity");
  if (X509_set_pubkey(cert.get(), key) != 1) fail("X509_set_pubkey");

  X509_NAME* name = X509_get_subject_name(cert.get());
  const auto* o = reinterpret_cast<const unsigned char*>("Customs tests");
  const auto* c = reinterpret_cast<const unsigned char*>(cn.c_str());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, o, -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, c, -1, -1, 0) != 1)
    fail("subject name");
  X509* issuer = issuer_cert ? issuer_cert : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) != 1) fail("issuer name");

  add_ext(cert.get(), issuer, NID_subject_key_identifier, "hash");
  if (issuer_cert) add_ext(cert.get(), issuer, NID_authority_key_identifier, "keyid:always");
  switch (r) {
    case role::ca:
      add_ext(cert.get(), issuer, NID_basic_constraints, "critical,CA:TRUE");
      add_ext(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
      break;
    case role::server:
      add_ext(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE");
      add_ext(cert.get(), issuer, NID_key_usage, "critical,digitalSignature");
      add_ext(cert.get(), issuer, NID_ext_key_usage, "serverAuth");
      add_ext(cert.get(), issuer, NID_subject_alt_name, san.c_str());
      break;
    case role::client:
      add_ext(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE");
      add_ext(cert.get(), issuer, NID_key_usage, "critical,digitalSignature");
      add_ext(cert.get(), issuer, NID_ext_key_usage, "clientAuth");
      break;
  }
  if (X509_sign(cert.get(), issuer_cert ? issuer_key : key, EVP_sha256()) <= 0) fail("X509_sign");
  return cert;
}

cert_and_key write_pair(const std::filesystem::path& dir, const std::string& stem, X509* cert,
                        EVP_PKEY* key) {
  cert_and_key out{dir / (stem + ".pem"), dir / (stem + ".key")};
  {
    bio_ptr bio(BIO_new_file(out.cert.c_str(), "w"));
    if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("writing " + out.cert.string());
  }
  {
    bio_ptr bio(BIO_new_file(out.key.c_str(), "w"));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
      fail("writing " + out.key.string());
  }
  std::filesystem::permissions(out.key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace);
  return out;
}

x509_ptr read_cert(const std::filesystem::path& p) {
  bio_ptr bio(BIO_new_file(p.c_str(), "r"));
  x509_ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) fail("reading " + p.string());
  return cert;
}

pkey_ptr read_key(const std::filesystem::path& p) {
  bio_ptr bio(BIO_new_file(p.c_str(), "r"));
  pkey_ptr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) fail("reading " + p.string());
  return key;
}

}  // namespace

test_pki make_test_pki(const std::filesystem::path& dir, const std::string& client_cn) {
  std::filesystem::create_directories(dir);
  test_pki pki;

  const pkey_ptr ca_key = new_key();
  const x509_ptr ca = make_cert(ca_key.get(), "Customs Test CA", role::ca, nullptr, nullptr);
  pki.ca = write_pair(dir, "ca", ca.get(), ca_key.get());

  const pkey_ptr server_key = new_key();
  const x509_ptr server = make_cert(server_key.get(), "localhost", role::server, ca.get(), ca_key.get());
  pki.server = write_pair(dir, "server", server.get(), server_key.get());

  const pkey_ptr untrusted_key = new_key();
  const x509_ptr untrusted =
      make_cert(untrusted_key.get(), "localhost", role::server, nullptr, nullptr);
  pki.untrusted = write_pair(dir, "untrusted", untrusted.get(), untrusted_key.get());

  const pkey_ptr client_key = new_key();
  const x509_ptr client = make_cert(client_key.get(), client_cn, role::client, ca.get(), ca_key.get());
  pki.client = write_pair(dir, "client", client.get(), client_key.get());
  return pki;
}

cert_and_key issue_client_cert(const test_pki& pki, const std::filesystem::path& dir,
                               const std::string& cn, const std::string& file_stem) {
  std::filesystem::create_directories(dir);
  const x509_ptr ca = read_cert(pki.ca.cert);
  const pkey_ptr ca_key = read_key(pki.ca.key);
  const pkey_ptr key = new_key();
  const x509_ptr cert = make_cert(key.get(), cn, role::client, ca.get(), ca_key.get());
  return write_pair(dir, file_stem, cert.get(), key.get());
}

cert_and_key issue_server_cert(const test_pki& pki, const std::filesystem::path& dir,
                               const std::vector<std::string>& dns_names, const std::string& file_stem) {
  std::filesystem::create_directories(dir);
  const x509_ptr ca = read_cert(pki.ca.cert);
  const pkey_ptr ca_key = read_key(pki.ca.key);
  const pkey_ptr key = new_key();
  std::string san;
  for (const auto& n : dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + n;
  const x509_ptr cert = make_cert(key.get(), dns_names.empty() ? "server" : dns_names.front(), role::server, ca.get(),
                                  ca_key.get(), san);
  return write_pair(dir, file_stem, cert.get(), key.get());
}

temp_dir::temp_dir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "customs-test-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
  path_ = pattern;
}

temp_dir::~temp_dir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace customs::testing
