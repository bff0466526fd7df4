#pragma once
// A TLS client over a plain socket whose bytes the test controls: OpenSSL runs
// on memory BIOs, and the test decides how the ClientHello reaches the wire
// (cut into many TCP segments, re-cut into many TLS records, padded past one
// record). After the hello it finishes the handshake and exchanges one
// HTTP/1.1 request. Blocking, with deadlines; for tests only.

#include "tests/daemon/intercept/hello_maker.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>

namespace customs::testing {

class bio_tls_client {
 public:
  // fd: a connected socket (after CONNECT's 200 when through a forward proxy).
  bio_tls_client(int fd, const std::filesystem::path& ca, const std::string& verify_host, const hello_options& o)
      : fd_(fd) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_file(ctx_, ca.c_str());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    padding_.assign(o.padding, 'p');
    if (o.padding > 0) {
      SSL_CTX_add_client_custom_ext(ctx_, 60000, detail::add_padding, detail::free_padding, &padding_, nullptr, nullptr);
    }
    ssl_ = SSL_new(ctx_);
    rbio_ = BIO_new(BIO_s_mem());
    wbio_ = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_, rbio_, wbio_);
    if (o.server_name) SSL_set_tlsext_host_name(ssl_, o.server_name->c_str());
    SSL_set1_host(ssl_, verify_host.c_str());
    std::string wire;
    for (const auto& p : o.alpn) {
      wire += static_cast<char>(p.size());
      wire += p;
    }
    if (!wire.empty()) SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()), static_cast<unsigned>(wire.size()));
    SSL_set_connect_state(ssl_);
    (void)SSL_do_handshake(ssl_);
    hello_ = take_output();
  }
  ~bio_tls_client() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  bio_tls_client(const bio_tls_client&) = delete;
  bio_tls_client& operator=(const bio_tls_client&) = delete;

  [[nodiscard]] const std::string& hello() const { return hello_; }

  // Sends `bytes` in writes of `piece` bytes with `pause` between them (each
  // write its own TCP segment: the caller sets TCP_NODELAY).
  void send_cut(const std::string& bytes, std::size_t piece, std::chrono::milliseconds pause) {
    for (std::size_t at = 0; at < bytes.size(); at += piece) {
      send_all(bytes.substr(at, piece));
      if (pause.count() > 0 && at + piece < bytes.size()) std::this_thread::sleep_for(pause);
    }
  }

  // Runs the handshake to its end; false when it failed (reason in error()).
  bool finish_handshake(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      const int r = SSL_do_handshake(ssl_);
      send_all(take_output());
      if (r == 1) return true;
      const int e = SSL_get_error(ssl_, r);
      if (e != SSL_ERROR_WANT_READ) {
        error_ = "handshake: " + std::to_string(e) + " " + ssl_error();
        return false;
      }
      if (!feed(until)) {
        error_ = "handshake: the server closed the connection";
        return false;
      }
    }
    error_ = "handshake: timeout";
    return false;
  }

  // Sends a request, returns the whole response (Content-Length framed).
  std::string roundtrip(const std::string& request, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    SSL_write(ssl_, request.data(), static_cast<int>(request.size()));
    send_all(take_output());
    std::string response;
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      char buf[16384];
      int n;
      while ((n = SSL_read(ssl_, buf, sizeof buf)) > 0) response.append(buf, static_cast<std::size_t>(n));
      send_all(take_output());
      const auto head_end = response.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        const auto cl = response.find("Content-Length: ");
        if (cl != std::string::npos && cl < head_end) {
          const std::size_t len = std::stoul(response.substr(cl + 16));
          if (response.size() >= head_end + 4 + len) return response;
        }
      }
      if (std::chrono::steady_clock::now() >= until || !feed(until)) return response;
    }
  }

  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] long verify_result() const { return SSL_get_verify_result(ssl_); }

 private:
  std::string take_output() {
    char* data = nullptr;
    const long n = BIO_get_mem_data(wbio_, &data);
    std::string out(data, static_cast<std::size_t>(n));
    (void)BIO_reset(wbio_);
    return out;
  }
  void send_all(const std::string& b) {
    std::size_t done = 0;
    while (done < b.size()) {
      const ssize_t n = ::send(fd_, b.data() + done, b.size() - done, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      done += static_cast<std::size_t>(n);
    }
  }
  // Reads what the socket has into the SSL's input; false on EOF or timeout.
  bool feed(std::chrono::steady_clock::time_point until) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    pollfd p{fd_, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[16384];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    BIO_write(rbio_, buf, static_cast<int>(n));
    return true;
  }
  static std::string ssl_error() {
    std::string s;
    while (const unsigned long e = ERR_get_error()) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      s += buf;
      s += ' ';
    }
    return s;
  }

  int fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;
  BIO* wbio_ = nullptr;
  std::string padding_;
  std::string hello_;
  std::string error_;
};

}  // namespace customs::testing
