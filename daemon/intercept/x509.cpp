#include "daemon/intercept/x509.hpp"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace customs::daemon::intercept {
namespace {

struct bio_free {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct ext_free {
  void operator()(X509_EXTENSION* e) const noexcept { X509_EXTENSION_free(e); }
};
struct bn_free {
  void operator()(BIGNUM* b) const noexcept { BN_free(b); }
};
using bio_ptr = std::unique_ptr<BIO, bio_free>;

bool add_ext(X509* cert, X509* issuer, int nid, const char* value) noexcept {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ext_free> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

bool random_serial(X509* cert) noexcept {
  std::unique_ptr<BIGNUM, bn_free> serial(BN_new());
  // 127 bits: positive, and unpredictable (CA/Browser Forum asks for 64 bits of entropy).
  return serial && BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
         BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) != nullptr;
}

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what + ": " + openssl_error()); }

std::string to_pem(X509* cert) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("PEM_write_bio_X509");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string to_pem(EVP_PKEY* key) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    fail("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// Creates `file` exclusively with `mode` and writes `text` (fsynced).
void create_exclusive(const std::filesystem::path& file, const std::string& text, mode_t mode) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    throw std::runtime_error(file.string() + ": " + std::strerror(errno) +
                             (errno == EEXIST ? " (an existing CA is never overwritten)" : ""));
  }
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t done = 0;
  while (ok && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok) throw std::runtime_error(file.string() + ": cannot write: " + std::strerror(saved));
}

std::chrono::system_clock::time_point to_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return std::chrono::system_clock::time_point::max();
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

std::string openssl_error() {
  std::string s;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!s.empty()) s += "; ";
    s += buf;
  }
  return s.empty() ? "unknown OpenSSL error" : s;
}

pkey_ptr generate_p256() noexcept { return pkey_ptr(EVP_EC_gen("P-256")); }

pem_pair make_ca(std::string_view common_name, std::chrono::hours validity) {
  pkey_ptr key = generate_p256();
  if (!key) fail("EVP_EC_gen");
  x509_ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1 || !random_serial(cert.get())) fail("X509_new");
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) ||
      !X509_time_adj_ex(X509_getm_notAfter(cert.get()), static_cast<int>(validity.count() / 24),
                        static_cast<long>(validity.count() % 24) * 3600, nullptr)) {
    fail("validity");
  }
  if (X509_set_pubkey(cert.get(), key.get()) != 1) fail("X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string cn(common_name.substr(0, 64));
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("Customs"), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) != 1) {
    fail("subject name");
  }
  if (X509_set_issuer_name(cert.get(), name) != 1) fail("issuer name");
  if (!add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
      !add_ext(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !add_ext(cert.get(), cert.get(), NID_subject_key_identifier, "hash")) {
    fail("CA extensions");
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) fail("X509_sign");
  return {to_pem(cert.get()), to_pem(key.get())};
}

std::pair<std::filesystem::path, std::filesystem::path> write_ca_files(const std::filesystem::path& dir,
                                                                       const pem_pair& ca) {
  std::filesystem::create_directories(dir);
  const auto cert = dir / "ca.pem";
  const auto key = dir / "ca.key";
  std::error_code ec;
  if (std::filesystem::exists(cert, ec) || std::filesystem::exists(key, ec)) {
    throw std::runtime_error(dir.string() + ": ca.pem or ca.key exists (an existing CA is never overwritten)");
  }
  create_exclusive(key, ca.key, 0600);
  create_exclusive(cert, ca.cert, 0644);
  return {cert, key};
}

loaded_ca load_ca(const std::filesystem::path& cert_file, const std::filesystem::path& key_file) {
  loaded_ca out;
  struct stat st {};
  if (::stat(key_file.c_str(), &st) != 0) {
    throw std::runtime_error(key_file.string() + ": cannot read the CA key: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) throw std::runtime_error(key_file.string() + ": the CA key is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw std::runtime_error(key_file.string() + ": the CA key may be read by others (mode " + mode +
                             "); run: chmod 600 " + key_file.string());
  }
  {
    bio_ptr bio(BIO_new_file(cert_file.c_str(), "r"));
    if (!bio) throw std::runtime_error(cert_file.string() + ": cannot read the CA certificate");
    out.cert.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!out.cert) throw std::runtime_error(cert_file.string() + ": not a PEM certificate: " + openssl_error());
  }
  {
    bio_ptr bio(BIO_new_file(key_file.c_str(), "r"));
    if (!bio) throw std::runtime_error(key_file.string() + ": cannot read the CA key");
    out.key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!out.key) throw std::runtime_error(key_file.string() + ": not a PEM private key: " + openssl_error());
  }
  if (X509_check_private_key(out.cert.get(), out.key.get()) != 1) {
    ERR_clear_error();
    throw std::runtime_error(key_file.string() + ": the key does not match " + cert_file.string());
  }
  if (X509_check_ca(out.cert.get()) == 0) {
    throw std::runtime_error(cert_file.string() + ": not a CA certificate (basicConstraints CA:TRUE is needed)");
  }
  out.not_after = to_time_point(X509_get0_notAfter(out.cert.get()));
  if (out.not_after <= std::chrono::system_clock::now()) {
    throw std::runtime_error(cert_file.string() + ": the CA certificate has expired");
  }
  return out;
}

x509_ptr mint_leaf(const loaded_ca& ca, EVP_PKEY* leaf_key, std::string_view host,
                   std::chrono::system_clock::time_point now, std::chrono::milliseconds validity) noexcept {
  try {
    x509_ptr cert(X509_new());
    if (!cert || X509_set_version(cert.get(), 2) != 1 || !random_serial(cert.get())) return nullptr;
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    auto end = now + validity;
    if (end > ca.not_after) end = ca.not_after;
    const long span = static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(end - now).count());
    if (!X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -3600, &t) ||
        !X509_time_adj_ex(X509_getm_notAfter(cert.get()), 0, span, &t)) {
      return nullptr;
    }
    if (X509_set_pubkey(cert.get(), leaf_key) != 1) return nullptr;
    X509_NAME* name = X509_get_subject_name(cert.get());
    const std::string h(host);
    if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>("Customs interception"), -1, -1, 0) != 1) {
      return nullptr;
    }
    if (h.size() <= 64 &&
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(h.c_str()),
                                   -1, -1, 0) != 1) {
      return nullptr;
    }
    if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.cert.get())) != 1) return nullptr;
    const std::string san = "DNS:" + h;
    if (!add_ext(cert.get(), ca.cert.get(), NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(cert.get(), ca.cert.get(), NID_key_usage, "critical,digitalSignature") ||
        !add_ext(cert.get(), ca.cert.get(), NID_ext_key_usage, "serverAuth") ||
        !add_ext(cert.get(), ca.cert.get(), NID_subject_alt_name, san.c_str()) ||
        !add_ext(cert.get(), ca.cert.get(), NID_subject_key_identifier, "hash") ||
        !add_ext(cert.get(), ca.cert.get(), NID_authority_key_identifier, "keyid:always")) {
      return nullptr;
    }
    if (X509_sign(cert.get(), ca.key.get(), EVP_sha256()) <= 0) return nullptr;
    return cert;
  } catch (...) {
    return nullptr;
  }
}

}  // namespace customs::daemon::intercept
