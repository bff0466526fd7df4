#pragma once
// The certificates of TLS interception (OpenSSL 3): the operator's CA, made by
// `customsctl ca gen` or brought by the operator, and the leaf certificates
// customsd mints from it for the hosts it intercepts.
//
// CA (make_ca): ECDSA P-256 key, self-signed, basicConstraints critical
// CA:TRUE pathlen:0, keyUsage critical keyCertSign + cRLSign, subject key id.
// Written as ca.pem (0644) and ca.key (PKCS#8 PEM, 0600); existing files are
// never overwritten.
//
// Leaf (mint_leaf): version 3, random 127-bit serial, subject O=Customs
// interception + CN=host (the CN only when it fits its 64-character bound),
// subjectAltName DNS:host, basicConstraints critical CA:FALSE, keyUsage
// critical digitalSignature, extendedKeyUsage serverAuth, subject and authority
// key ids, SHA-256 signature; valid from an hour before `now` (clock skew) for
// `validity`, never beyond the CA's own end.

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace customs::daemon::intercept {

struct pkey_free {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct x509_free {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

// A fresh ECDSA P-256 key; null when OpenSSL fails.
[[nodiscard]] pkey_ptr generate_p256() noexcept;

struct pem_pair {
  std::string cert;  // PEM certificate
  std::string key;   // PEM PKCS#8 private key
};

// A new CA (control plane: throws std::runtime_error with OpenSSL's reason).
[[nodiscard]] pem_pair make_ca(std::string_view common_name, std::chrono::hours validity);

// Writes DIR/ca.pem (0644) and DIR/ca.key (0600), creating DIR; refuses (throws
// std::runtime_error) when either file exists. Returns the two paths.
std::pair<std::filesystem::path, std::filesystem::path> write_ca_files(const std::filesystem::path& dir,
                                                                       const pem_pair& ca);

struct loaded_ca {
  x509_ptr cert;
  pkey_ptr key;
  std::chrono::system_clock::time_point not_after;
};

// Loads the CA customsd signs with (control plane, throws std::runtime_error
// naming the file): the key file must be a regular file that neither group
// nor others may read, the key must match the certificate, and the
// certificate must be a CA (basicConstraints CA:TRUE).
[[nodiscard]] loaded_ca load_ca(const std::filesystem::path& cert, const std::filesystem::path& key);

// A leaf for `host` (a normalised DNS name) with `leaf_key`'s public key,
// signed by the CA; null when OpenSSL fails (data plane: never throws).
[[nodiscard]] x509_ptr mint_leaf(const loaded_ca& ca, EVP_PKEY* leaf_key, std::string_view host,
                                 std::chrono::system_clock::time_point now,
                                 std::chrono::milliseconds validity) noexcept;

// The last OpenSSL error as text (and the error queue cleared).
[[nodiscard]] std::string openssl_error();

}  // namespace customs::daemon::intercept
