#include "daemon/tls.hpp"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <stdexcept>

namespace customs::daemon {
namespace ssl = boost::asio::ssl;

namespace {

void harden(ssl::context& ctx) {
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::no_compression);
  if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1) {
    throw std::runtime_error("cannot require TLS 1.2");
  }
  SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_RENEGOTIATION);
}

}  // namespace

std::shared_ptr<ssl::context> make_server_tls(const std::filesystem::path& cert,
                                              const std::filesystem::path& key,
                                              const std::filesystem::path& client_ca) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  harden(*ctx);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cert.string(), ec);
  if (ec) throw std::runtime_error(cert.string() + ": cannot load certificate chain: " + ec.message());
  ctx->use_private_key_file(key.string(), ssl::context::pem, ec);
  if (ec) throw std::runtime_error(key.string() + ": cannot load private key: " + ec.message());
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    throw std::runtime_error(key.string() + ": private key does not match " + cert.string());
  }
  if (!client_ca.empty()) {
    ctx->load_verify_file(client_ca.string(), ec);
    if (ec) throw std::runtime_error(client_ca.string() + ": cannot load client CA certificates: " + ec.message());
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(client_ca.string().c_str());
    if (names == nullptr) throw std::runtime_error(client_ca.string() + ": no CA certificate in the file");
    SSL_CTX_set_client_CA_list(ctx->native_handle(), names);  // takes ownership
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    // Session resumption with client verification needs a context id.
    static constexpr unsigned char sid[] = "customsd";
    SSL_CTX_set_session_id_context(ctx->native_handle(), sid, sizeof sid - 1);
  }
  return ctx;
}

std::string peer_subject(SSL* h) {
  X509* cert = SSL_get0_peer_certificate(h);
  if (cert == nullptr || SSL_get_verify_result(h) != X509_V_OK) return {};
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return {};
  std::string out;
  if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    if (n > 0 && data != nullptr) out.assign(data, static_cast<std::size_t>(n));
  }
  BIO_free(bio);
  return out;
}

std::shared_ptr<ssl::context> make_client_tls(const std::filesystem::path& ca_bundle) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  harden(*ctx);
  boost::system::error_code ec;
  if (ca_bundle.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec) throw std::runtime_error("cannot load the system's CA store: " + ec.message());
  } else {
    ctx->load_verify_file(ca_bundle.string(), ec);
    if (ec) throw std::runtime_error(ca_bundle.string() + ": cannot load CA bundle: " + ec.message());
  }
  ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  return ctx;
}

bool prepare_client_tls(ssl::stream<boost::beast::tcp_stream>& s, const std::string& host) {
  SSL* h = s.native_handle();
  unsigned char ip[16];
  const bool is_ip = inet_pton(AF_INET, host.c_str(), ip) == 1 || inet_pton(AF_INET6, host.c_str(), ip) == 1;
  if (is_ip) {
    // RFC 6066: no SNI for IP literals; the certificate must name the address.
    X509_VERIFY_PARAM* param = SSL_get0_param(h);
    return X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1;
  }
  if (SSL_set_tlsext_host_name(h, host.c_str()) != 1) return false;
  SSL_set_hostflags(h, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return SSL_set1_host(h, host.c_str()) == 1;
}

}  // namespace customs::daemon
