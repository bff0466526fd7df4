#include "daemon/upstream.hpp"

#include "daemon/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace customs::daemon {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

namespace {

// True when nothing is waiting on the socket and the peer has not closed it.
// A connection used less than a second ago is taken without asking the kernel
// (one syscall per request saved); the rare upstream that closed it in that
// second is covered by the one retry of a request sent on a pooled connection.
bool looks_alive(upstream_connection& c, clock::time_point now) {
  auto& sock = c.stream.tcp().socket();
  if (!sock.is_open() || c.buffer.size() != 0) return false;
  if (now - c.idle_since < std::chrono::seconds(1)) return true;
  char b;
  const ssize_t n = ::recv(sock.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

std::unique_ptr<upstream_connection> upstream_pool::take(clock::time_point now,
                                                         std::chrono::milliseconds idle_timeout) {
  while (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    if (now - c->idle_since < idle_timeout && looks_alive(*c, now)) return c;
    c->stream.close();
  }
  return nullptr;
}

void upstream_pool::put(std::unique_ptr<upstream_connection> c, clock::time_point now,
                        std::size_t max_idle) {
  if (max_idle == 0) {
    c->stream.close();
    return;
  }
  while (idle_.size() >= max_idle) {
    idle_.front()->stream.close();
    idle_.erase(idle_.begin());
  }
  c->idle_since = now;
  c->wd->expires_never();
  idle_.push_back(std::move(c));
}

void upstream_pool::sweep(clock::time_point now, std::chrono::milliseconds idle_timeout) {
  std::size_t keep = 0;
  for (auto& c : idle_) {
    if (now - c->idle_since < idle_timeout) idle_[keep++] = std::move(c);
    else c->stream.close();
  }
  idle_.resize(keep);
}

void upstream_pools::sweep(clock::time_point now, std::chrono::milliseconds idle_timeout) {
  for (auto it = pools_.begin(); it != pools_.end();) {
    it->second.sweep(now, idle_timeout);
    // Edge pools are made per destination on demand: drop the empty ones so
    // that the map stays as small as the idle connections it holds.
    if (it->second.idle() == 0 && it->first.starts_with("edge+")) it = pools_.erase(it);
    else ++it;
  }
}

void upstream_pools::retain(const runtime& rt) {
  for (auto it = pools_.begin(); it != pools_.end();) {
    bool used = false;
    for (const auto& r : rt.routes) used = used || r.upstream.pool_key == it->first;
    if (used) ++it;
    else it = pools_.erase(it);
  }
}

// The upstream read buffer's capacity, so the size of one read from it.
constexpr std::size_t upstream_read_bytes = 4096;

asio::awaitable<connect_result> connect_upstream(const upstream_target& target,
                                                 clock::time_point deadline) {
  connect_result out;
  auto ex = co_await asio::this_coro::executor;
  const auto tok = asio::as_tuple(asio::use_awaitable);

  // Resolve (immediate for IP literals). getaddrinfo cannot be interrupted; on
  // timeout the resolver is cancelled and its late answer ignored.
  auto resolver = std::make_shared<tcp::resolver>(ex);
  asio::steady_timer guard(ex);
  guard.expires_at(deadline);
  guard.async_wait([weak = std::weak_ptr<tcp::resolver>(resolver)](boost::system::error_code ec) {
    if (ec) return;
    if (auto r = weak.lock()) r->cancel();
  });
  const std::string port = std::to_string(target.connect_port != 0 ? target.connect_port : target.url.port);
  const std::string& name = target.connect_address.empty() ? target.url.host : target.connect_address;
  auto [rec, endpoints] = co_await resolver->async_resolve(name, port, tok);
  guard.cancel();
  if (rec) {
    out.error = clock::now() >= deadline ? connect_error::timeout : connect_error::unreachable;
    out.detail = "resolve " + target.url.host + ": " + rec.message();
    co_return out;
  }

  std::unique_ptr<upstream_connection> conn;
  if (target.tls) {
    conn = std::make_unique<upstream_connection>(any_stream(boost::beast::tcp_stream(ex), *target.tls));
  } else {
    conn = std::make_unique<upstream_connection>(any_stream(boost::beast::tcp_stream(ex)));
  }
  auto& tcp_layer = conn->stream.tcp();
  // Each address in turn. The socket is opened here, not inside the connect
  // operation, so that a failure to open one (out of file descriptors: EMFILE,
  // ENFILE) is reported as itself rather than as a cancelled connect.
  boost::system::error_code cec;
  boost::system::error_code ignored;
  for (const auto& entry : endpoints) {
    auto& sock = tcp_layer.socket();
    if (sock.is_open()) sock.close(ignored);
    sock.open(entry.endpoint().protocol(), cec);
    if (cec) {
      out.error = connect_error::unreachable;
      out.detail = "connect " + target.url.host + ":" + port + ": cannot open a socket: " + cec.message();
      continue;
    }
    if (target.mark != 0 && ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_MARK, &target.mark, sizeof target.mark) != 0) {
      out.error = connect_error::unreachable;
      out.detail = "connect " + target.url.host + ": cannot set SO_MARK (needs CAP_NET_ADMIN): " + std::strerror(errno);
      co_return out;
    }
    tcp_layer.expires_at(deadline);
    auto [e] = co_await tcp_layer.async_connect(entry.endpoint(), tok);
    cec = e;
    if (!cec) break;
    out.error = cec == boost::beast::error::timeout ? connect_error::timeout : connect_error::unreachable;
    out.detail = "connect " + target.url.host + ":" + port + ": " + cec.message();
    if (cec == boost::beast::error::timeout) break;
  }
  if (cec || endpoints.empty()) {
    if (endpoints.empty()) {
      out.error = connect_error::unreachable;
      out.detail = "resolve " + target.url.host + ": no addresses";
    }
    co_return out;
  }
  out.error = connect_error::none;
  out.detail.clear();
  tcp_layer.socket().set_option(tcp::no_delay(true), ignored);

  if (auto* tls = conn->stream.tls()) {
    if (!prepare_client_tls(*tls, target.url.host)) {
      out.error = connect_error::unreachable;
      out.detail = "TLS setup failed";
      co_return out;
    }
    tcp_layer.expires_at(deadline);
    auto [hec] = co_await tls->async_handshake(asio::ssl::stream_base::client, tok);
    if (hec) {
      out.error = hec == boost::beast::error::timeout ? connect_error::timeout : connect_error::unreachable;
      out.detail = "TLS handshake with " + target.url.host + ": " + hec.message();
      const long verify = SSL_get_verify_result(tls->native_handle());
      if (verify != X509_V_OK) {
        out.detail += " (";
        out.detail += X509_verify_cert_error_string(verify);
        out.detail += ")";
      }
      co_return out;
    }
  }
  // Beast reads at most the buffer's free capacity (at least 512 bytes); a
  // buffer that never grows (the parser moves body bytes out of it) would read a
  // stream 512 bytes at a time: two or three reads per typical event.
  conn->buffer.reserve(upstream_read_bytes);
  tcp_layer.expires_never();  // from here on: the connection's watchdog
  conn->wd = std::make_unique<watchdog>(ex, tcp_layer.socket());
  out.conn = std::move(conn);
  co_return out;
}

}  // namespace customs::daemon
