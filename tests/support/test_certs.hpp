#pragma once
// Certificates for TLS tests, generated at test time with OpenSSL 3 (EVP_PKEY,
// X509): P-256 keys, SHA-256 signatures, valid from one hour ago for two days.
// Nothing is committed to the tree; every test run makes its own.

#include <filesystem>
#include <string>
#include <vector>

namespace customs::testing {

struct cert_and_key {
  std::filesystem::path cert;  // PEM certificate
  std::filesystem::path key;   // PEM private key (PKCS#8, unencrypted, mode 0600)
};

struct test_pki {
  cert_and_key ca;         // self-signed CA: basicConstraints CA:TRUE, keyCertSign
  cert_and_key server;     // CN=localhost, SAN DNS:localhost + IP:127.0.0.1, serverAuth, by ca
  cert_and_key untrusted;  // self-signed, same names as server, trusted by nobody
  cert_and_key client;     // CN as given, clientAuth, by ca (for mTLS)
};

// Writes ca.pem/ca.key, server.pem/server.key, untrusted.pem/untrusted.key and
// client.pem/client.key into `dir` (created if missing). Throws
// std::runtime_error with OpenSSL's reason when generation fails.
[[nodiscard]] test_pki make_test_pki(const std::filesystem::path& dir,
                                     const std::string& client_cn = "customs-test-client");

// Another client certificate (clientAuth, subject CN=cn) signed by pki.ca, as
// `<file_stem>.pem` / `<file_stem>.key` in `dir`.
[[nodiscard]] cert_and_key issue_client_cert(const test_pki& pki, const std::filesystem::path& dir,
                                             const std::string& cn, const std::string& file_stem);

// A server certificate (serverAuth, SAN DNS:<each name>, CN the first name)
// signed by pki.ca, as `<file_stem>.pem` / `<file_stem>.key` in `dir`.
[[nodiscard]] cert_and_key issue_server_cert(const test_pki& pki, const std::filesystem::path& dir,
                                             const std::vector<std::string>& dns_names, const std::string& file_stem);

// A fresh directory under the system temporary directory, removed with its
// contents by the destructor.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace customs::testing
