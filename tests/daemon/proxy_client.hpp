#pragma once
// Blocking HTTP/1.1 test client for customsd's integration tests: one
// connection (plain or TLS), raw bytes in and out, responses parsed by Beast.
// Every read has a deadline so that a broken server fails the test instead of
// hanging it.

#include <boost/asio/connect.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace customs::testing {

struct http_response {
  unsigned status = 0;
  boost::beast::http::fields headers;
  std::string body;  // de-chunked
  bool keep_alive = false;
  [[nodiscard]] std::string header(std::string_view name) const {
    auto it = headers.find(boost::beast::string_view(name.data(), name.size()));
    return it == headers.end() ? std::string() : std::string(it->value());
  }
};

class http_client {
 public:
  explicit http_client(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : timeout_(timeout), socket_(ioc_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    socket_.set_option(boost::asio::ip::tcp::no_delay(true));
  }

  http_client(std::uint16_t port, boost::asio::ssl::context& ctx, const std::string& host,
              std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : timeout_(timeout), socket_(ioc_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    tls_ = std::make_unique<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>>(socket_, ctx);
    SSL_set_tlsext_host_name(tls_->native_handle(), host.c_str());
    tls_->set_verify_mode(boost::asio::ssl::verify_peer);
    SSL_set1_host(tls_->native_handle(), host.c_str());
    const auto ec = run([&](auto h) { tls_->async_handshake(boost::asio::ssl::stream_base::client, h); });
    if (ec) throw std::runtime_error("TLS handshake: " + ec.message());
  }

  void send(std::string_view bytes) {
    const auto b = boost::asio::buffer(bytes.data(), bytes.size());
    const auto ec = run([&](auto h) {
      if (tls_) boost::asio::async_write(*tls_, b, [h](auto e, std::size_t) { h(e); });
      else boost::asio::async_write(socket_, b, [h](auto e, std::size_t) { h(e); });
    });
    if (ec) throw std::runtime_error("send: " + ec.message());
  }

  // A complete request with Content-Length.
  void send_request(std::string_view method, std::string_view target, std::string_view body,
                    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    std::string r(method);
    r += ' ';
    r += target;
    r += " HTTP/1.1\r\nHost: customs.test\r\n";
    for (const auto& [k, v] : headers) r += k + ": " + v + "\r\n";
    if (!body.empty() || method == "POST") r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    r += "\r\n";
    r += body;
    send(r);
  }

  http_response read_response() {
    boost::beast::http::response_parser<boost::beast::http::string_body> p;
    p.body_limit(64 << 20);
    const auto ec = run([&](auto h) {
      if (tls_) boost::beast::http::async_read(*tls_, buffer_, p, [h](auto e, std::size_t) { h(e); });
      else boost::beast::http::async_read(socket_, buffer_, p, [h](auto e, std::size_t) { h(e); });
    });
    if (ec) throw std::runtime_error("read_response: " + ec.message());
    http_response out;
    out.status = p.get().result_int();
    out.headers = p.get().base();
    out.body = p.get().body();
    out.keep_alive = p.get().keep_alive();
    return out;
  }

  http_response request(std::string_view method, std::string_view target, std::string_view body = {},
                        const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    send_request(method, target, body, headers);
    return read_response();
  }

  // Reads the head of a response, then body pieces one read at a time.
  void start_streamed_response() {
    stream_parser_.emplace();
    stream_parser_->body_limit(64 << 20);
    auto& p = *stream_parser_;
    const auto ec = run([&](auto h) {
      if (tls_) boost::beast::http::async_read_header(*tls_, buffer_, p, [h](auto e, std::size_t) { h(e); });
      else boost::beast::http::async_read_header(socket_, buffer_, p, [h](auto e, std::size_t) { h(e); });
    });
    if (ec) throw std::runtime_error("read_header: " + ec.message());
  }
  [[nodiscard]] unsigned streamed_status() const { return stream_parser_->get().result_int(); }
  // The next piece of the body; nullopt at its end. Throws on errors.
  std::optional<std::string> next_piece() {
    if (stream_parser_->is_done()) return std::nullopt;
    char buf[8192];
    auto& body = stream_parser_->get().body();
    body.data = buf;
    body.size = sizeof buf;
    auto& p = *stream_parser_;
    auto ec = run([&](auto h) {
      if (tls_) boost::beast::http::async_read_some(*tls_, buffer_, p, [h](auto e, std::size_t) { h(e); });
      else boost::beast::http::async_read_some(socket_, buffer_, p, [h](auto e, std::size_t) { h(e); });
    });
    if (ec == boost::beast::http::error::need_buffer) ec = {};
    if (ec) throw std::runtime_error("read body: " + ec.message());
    return std::string(buf, sizeof buf - body.size);
  }

  // True when the server closed the connection (reads EOF) within the timeout.
  bool closed_by_peer() {
    char c;
    std::size_t n = 0;
    if (buffer_.size() > 0) return false;
    const auto ec = run([&](auto h) {
      auto done = [h, &n](auto e, std::size_t k) { n = k; h(e); };
      if (tls_) tls_->async_read_some(boost::asio::buffer(&c, 1), done);
      else socket_.async_read_some(boost::asio::buffer(&c, 1), done);
    });
    return n == 0 && ec && ec != boost::asio::error::timed_out;
  }

  [[nodiscard]] std::uint16_t local_port() const { return socket_.local_endpoint().port(); }

  // Forward proxy: sends CONNECT authority and reads the proxy's answer (a 2xx
  // head has no body; the connection is a tunnel from then on).
  http_response proxy_connect(std::string_view authority,
                              const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    std::string r = "CONNECT " + std::string(authority) + " HTTP/1.1\r\nHost: " + std::string(authority) + "\r\n";
    for (const auto& [k, v] : headers) r += k + ": " + v + "\r\n";
    r += "\r\n";
    send(r);
    boost::beast::http::response_parser<boost::beast::http::string_body> p;
    auto ec = run([&](auto h) { boost::beast::http::async_read_header(socket_, buffer_, p, [h](auto e, std::size_t) { h(e); }); });
    if (ec) throw std::runtime_error("CONNECT answer: " + ec.message());
    http_response out;
    out.status = p.get().result_int();
    out.headers = p.get().base();
    if (out.status / 100 != 2) {
      ec = run([&](auto h) { boost::beast::http::async_read(socket_, buffer_, p, [h](auto e, std::size_t) { h(e); }); });
      if (ec && ec != boost::beast::http::error::end_of_stream) throw std::runtime_error("CONNECT body: " + ec.message());
      out.body = p.get().body();
    }
    return out;
  }

  // TLS from here on (over a tunnel): verifies the peer against ctx's trust
  // and `host`, sending `sni` (default: host) as the server name.
  void start_tls(boost::asio::ssl::context& ctx, const std::string& host, const std::string& sni = {}) {
    if (buffer_.size() != 0) throw std::runtime_error("bytes after the CONNECT answer");
    tls_ = std::make_unique<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>>(socket_, ctx);
    SSL_set_tlsext_host_name(tls_->native_handle(), (sni.empty() ? host : sni).c_str());
    tls_->set_verify_mode(boost::asio::ssl::verify_peer);
    SSL_set1_host(tls_->native_handle(), host.c_str());
    const auto ec = run([&](auto h) { tls_->async_handshake(boost::asio::ssl::stream_base::client, h); });
    if (ec) throw std::runtime_error("TLS handshake: " + ec.message());
  }

  [[nodiscard]] boost::asio::ip::tcp::socket& socket() { return socket_; }

 private:
  // Starts an operation (start(handler), handler(error_code)) and runs it to
  // completion or the timeout (then the socket is closed: error timed_out).
  template <class Start>
  boost::system::error_code run(Start&& start) {
    bool done = false;
    boost::system::error_code result;
    ioc_.restart();
    start([&done, &result](boost::system::error_code ec) {
      done = true;
      result = ec;
    });
    ioc_.run_for(timeout_);
    if (!done) {
      boost::system::error_code ignored;
      socket_.close(ignored);
      ioc_.restart();
      ioc_.run();
      return boost::asio::error::timed_out;
    }
    return result;
  }

  std::chrono::milliseconds timeout_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>> tls_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::response_parser<boost::beast::http::buffer_body>> stream_parser_;
};

}  // namespace customs::testing
