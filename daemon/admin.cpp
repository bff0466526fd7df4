#include "daemon/admin.hpp"

#include "daemon/http_framing.hpp"
#include "daemon/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <list>

namespace customs::daemon {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct admin_server::state {
  explicit state(asio::io_context& c) : ioc(c), acceptor(c) {}
  asio::io_context& ioc;
  tcp::acceptor acceptor;
  std::map<std::pair<http::verb, std::string>, admin_handler> handlers;
  std::list<beast::tcp_stream*> connections;
  bool stopped = false;
  bool accepting = false;  // the accept loop runs
};

namespace {

constexpr auto tok = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> admin_session(std::shared_ptr<admin_server::state> st, tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  auto reg = st->connections.insert(st->connections.end(), &stream);
  // The same framing checks as the data plane (trailers dropped and bounded,
  // no field Beast cannot store), with small bounds: admin requests are tiny.
  framing_limits limits;
  limits.header_bytes = 8192;
  limits.header_fields = 100;
  limits.target_bytes = 4096;
  limits.trailer_bytes = 1024;
  limits.chunk_extension_bytes = 256;
  limits.body_bytes = 1 << 20;
  beast::flat_buffer buffer(read_buffer_bytes(limits));
  for (;;) {
    request_parser parser(limits);
    stream.expires_after(std::chrono::seconds(30));
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, tok);
    if (ec) break;
    const auto& req = parser.get();
    std::string path(req.target());
    path = path.substr(0, path.find('?'));
    admin_reply reply;
    auto it = st->handlers.find({req.method(), path});
    if (it != st->handlers.end()) {
      try {
        reply = it->second(req);
      } catch (const std::exception& e) {
        reply = {500, "text/plain; charset=utf-8", std::string("error: ") + e.what() + "\n"};
      }
    } else {
      bool other_method = false;
      for (const auto& [key, _] : st->handlers) other_method = other_method || key.second == path;
      reply = other_method ? admin_reply{405, "text/plain; charset=utf-8", "method not allowed\n"}
                           : admin_reply{404, "text/plain; charset=utf-8", "not found\n"};
    }
    http::response<http::string_body> res(static_cast<http::status>(reply.status), req.version());
    res.set(http::field::content_type, reply.content_type);
    res.set(http::field::cache_control, "no-store");
    res.body() = std::move(reply.body);
    res.keep_alive(req.keep_alive() && !st->stopped);
    res.prepare_payload();
    stream.expires_after(std::chrono::seconds(30));
    auto [wec, wn] = co_await http::async_write(stream, res, tok);
    if (wec || !res.keep_alive()) break;
  }
  st->connections.erase(reg);
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

void restart_admin_accept(const std::shared_ptr<admin_server::state>& st);

asio::awaitable<void> admin_accept(std::shared_ptr<admin_server::state> st) {
  // However the loop's frame ends (an exception, or destroyed after one left
  // the control thread's run()), it is started again unless the admin
  // listener stopped: from a posted handler, or at the control thread's next
  // recovery if even that post cannot be made.
  struct running {
    std::shared_ptr<admin_server::state> st;
    ~running() {
      st->accepting = false;
      if (st->stopped) return;
      try {
        asio::post(st->ioc, [st = st] { restart_admin_accept(st); });
      } catch (...) {
      }
    }
  } mark{st};
  for (;;) {
    tcp::socket socket(st->ioc);
    auto [ec] = co_await st->acceptor.async_accept(socket, tok);
    if (ec) {
      if (st->stopped || !st->acceptor.is_open()) co_return;
      continue;
    }
    asio::co_spawn(st->ioc, admin_session(st, std::move(socket)), asio::detached);
  }
}

void restart_admin_accept(const std::shared_ptr<admin_server::state>& st) {
  if (st->stopped || st->accepting || !st->acceptor.is_open()) return;
  st->accepting = true;
  try {
    asio::co_spawn(st->ioc, admin_accept(st), asio::detached);
  } catch (...) {
    st->accepting = false;
    throw;
  }
}

}  // namespace

admin_server::admin_server(asio::io_context& ioc, const std::string& address, std::uint16_t port)
    : state_(std::make_shared<state>(ioc)) {
  boost::system::error_code ec;
  const tcp::endpoint ep(asio::ip::make_address(address, ec), port);
  if (ec) throw std::runtime_error("admin: bad address " + address);
  auto& a = state_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("admin: cannot listen on " + address + ":" + std::to_string(port) + ": " + ec.message());
  port_ = a.local_endpoint().port();
}

admin_server::~admin_server() = default;

void admin_server::add(http::verb method, std::string path, admin_handler h) {
  state_->handlers[{method, std::move(path)}] = std::move(h);
}

void admin_server::start() { restart_admin_accept(state_); }

void admin_server::recover() { restart_admin_accept(state_); }

void admin_server::stop() {
  state_->stopped = true;
  boost::system::error_code ec;
  state_->acceptor.close(ec);
  for (auto* s : state_->connections) s->socket().close(ec);
}

}  // namespace customs::daemon
