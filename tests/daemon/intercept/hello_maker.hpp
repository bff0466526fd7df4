#pragma once
// Real TLS ClientHellos for the tests, made by OpenSSL's client on memory
// BIOs: with or without a server name, with ALPN protocols, and padded with an
// extension of any size (so that the hello needs more than one record).

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace customs::testing {

struct hello_options {
  std::optional<std::string> server_name = "api.openai.com";
  std::vector<std::string> alpn = {"h2", "http/1.1"};
  std::size_t padding = 0;  // bytes of an extra extension (type 60000)
};

namespace detail {
inline int add_padding(SSL*, unsigned int, const unsigned char** out, size_t* outlen, int*, void* arg) {
  const auto* data = static_cast<const std::string*>(arg);
  *out = reinterpret_cast<const unsigned char*>(data->data());
  *outlen = data->size();
  return 1;
}
inline void free_padding(SSL*, unsigned int, const unsigned char*, void*) {}
}  // namespace detail

// The bytes OpenSSL's client writes first (its ClientHello records).
inline std::string make_client_hello(const hello_options& o = {}) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) throw std::runtime_error("SSL_CTX_new");
  static std::string padding;
  padding.assign(o.padding, 'p');
  if (o.padding > 0 &&
      SSL_CTX_add_client_custom_ext(ctx, 60000, detail::add_padding, detail::free_padding, &padding, nullptr, nullptr) != 1) {
    SSL_CTX_free(ctx);
    throw std::runtime_error("custom extension");
  }
  SSL* ssl = SSL_new(ctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  if (o.server_name) SSL_set_tlsext_host_name(ssl, o.server_name->c_str());
  std::string wire;
  for (const auto& p : o.alpn) {
    wire += static_cast<char>(p.size());
    wire += p;
  }
  if (!wire.empty()) SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()), static_cast<unsigned>(wire.size()));
  SSL_set_connect_state(ssl);
  (void)SSL_do_handshake(ssl);  // wants to read: the hello is in `out`
  char* data = nullptr;
  const long n = BIO_get_mem_data(out, &data);
  std::string hello(data, static_cast<std::size_t>(n));
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return hello;
}

// The same handshake bytes carried in records of at most `n` bytes each.
inline std::string refragment(const std::string& records, std::size_t n) {
  std::string handshake;
  std::size_t pos = 0;
  while (pos + 5 <= records.size()) {
    const std::size_t len = (static_cast<unsigned char>(records[pos + 3]) << 8) | static_cast<unsigned char>(records[pos + 4]);
    handshake.append(records, pos + 5, len);
    pos += 5 + len;
  }
  std::string out;
  for (std::size_t at = 0; at < handshake.size(); at += n) {
    const std::size_t len = std::min(n, handshake.size() - at);
    out += '\x16';
    out += '\x03';
    out += '\x01';
    out += static_cast<char>(len >> 8);
    out += static_cast<char>(len & 0xff);
    out.append(handshake, at, len);
  }
  return out;
}

}  // namespace customs::testing
