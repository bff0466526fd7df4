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
                                              const std::filesystem::path& key) {
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
  return ctx;
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
