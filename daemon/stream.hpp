#pragma once
// A connection that is plain TCP or TLS over TCP, chosen at run time, usable
// wherever Asio and Beast want an AsyncReadStream / AsyncWriteStream. Timeouts
// are those of the Beast tcp_stream underneath (tcp().expires_after(...)).

#include <boost/asio/async_result.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <cstddef>
#include <utility>
#include <variant>

namespace customs::daemon {

class any_stream {
 public:
  using tls_stream = boost::asio::ssl::stream<boost::beast::tcp_stream>;
  using executor_type = boost::beast::tcp_stream::executor_type;

  explicit any_stream(boost::beast::tcp_stream tcp) : s_(std::in_place_type<boost::beast::tcp_stream>, std::move(tcp)) {}
  any_stream(boost::beast::tcp_stream tcp, boost::asio::ssl::context& ctx)
      : s_(std::in_place_type<tls_stream>, std::move(tcp), ctx) {}

  // A TLS stream set up elsewhere (an intercepted connection, handshake done).
  explicit any_stream(tls_stream&& s) : s_(std::in_place_type<tls_stream>, std::move(s)) {}

  any_stream(any_stream&&) = default;
  any_stream& operator=(any_stream&&) = default;

  [[nodiscard]] executor_type get_executor() noexcept { return tcp().get_executor(); }

  [[nodiscard]] boost::beast::tcp_stream& tcp() noexcept {
    if (auto* t = std::get_if<tls_stream>(&s_)) return t->next_layer();
    return std::get<boost::beast::tcp_stream>(s_);
  }
  [[nodiscard]] tls_stream* tls() noexcept { return std::get_if<tls_stream>(&s_); }
  [[nodiscard]] bool is_tls() const noexcept { return std::holds_alternative<tls_stream>(s_); }

  template <class MutableBufferSequence, class ReadToken>
  auto async_read_some(const MutableBufferSequence& buffers, ReadToken&& token) {
    return boost::asio::async_initiate<ReadToken, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const MutableBufferSequence& b) {
          if (auto* t = std::get_if<tls_stream>(&s_)) t->async_read_some(b, std::move(handler));
          else std::get<boost::beast::tcp_stream>(s_).async_read_some(b, std::move(handler));
        },
        token, buffers);
  }

  template <class ConstBufferSequence, class WriteToken>
  auto async_write_some(const ConstBufferSequence& buffers, WriteToken&& token) {
    return boost::asio::async_initiate<WriteToken, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBufferSequence& b) {
          if (auto* t = std::get_if<tls_stream>(&s_)) t->async_write_some(b, std::move(handler));
          else std::get<boost::beast::tcp_stream>(s_).async_write_some(b, std::move(handler));
        },
        token, buffers);
  }

  // Plain TCP only: writes what the kernel takes now, without blocking and
  // without going through the event loop (a write that completes at once would
  // otherwise still cost a posted completion and an extra epoll_wait). Returns
  // the bytes written; ec is would_block when the socket is full. TLS: 0.
  template <class ConstBufferSequence>
  std::size_t write_now(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    ec = {};
    if (is_tls()) return 0;
    auto& sock = std::get<boost::beast::tcp_stream>(s_).socket();
    if (!sock.non_blocking()) {
      sock.non_blocking(true, ec);
      if (ec) return 0;
    }
    return sock.write_some(buffers, ec);
  }

  // Closes the socket now (no TLS close_notify); pending operations complete
  // with an error.
  void close() noexcept {
    boost::system::error_code ec;
    tcp().socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    tcp().socket().close(ec);
  }

 private:
  std::variant<boost::beast::tcp_stream, tls_stream> s_;
};

}  // namespace customs::daemon
