#pragma once
// TLS contexts of customsd (OpenSSL through Asio). Control plane: built when the
// config is loaded; they throw std::runtime_error with a readable reason.
//
// Both sides: TLS 1.2 or newer only, no compression, no renegotiation.
// Upstreams: the peer certificate must chain to ca_bundle (or the system store)
// and match the host name (or IP literal) of the upstream URL; SNI is sent for
// names (prepare_client_tls, per connection).

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <filesystem>
#include <memory>
#include <string>

namespace customs::daemon {

// client_ca non-empty: mutual TLS; the handshake fails unless the client
// presents a certificate that chains to one of its certificates.
[[nodiscard]] std::shared_ptr<boost::asio::ssl::context> make_server_tls(
    const std::filesystem::path& cert, const std::filesystem::path& key,
    const std::filesystem::path& client_ca = {});

// The subject of the verified peer certificate of a finished handshake, as
// OpenSSL prints it in RFC 2253 form (most specific RDN first, e.g.
// "CN=bank-gw,O=Bank,C=DE"); empty when the peer sent none.
[[nodiscard]] std::string peer_subject(SSL* ssl);

// ca_bundle empty: the system's default verify paths.
[[nodiscard]] std::shared_ptr<boost::asio::ssl::context> make_client_tls(
    const std::filesystem::path& ca_bundle);

// Sets SNI and the expected peer name on a fresh client stream. False when
// OpenSSL refused (out of memory).
[[nodiscard]] bool prepare_client_tls(boost::asio::ssl::stream<boost::beast::tcp_stream>& s,
                                      const std::string& host);

}  // namespace customs::daemon
