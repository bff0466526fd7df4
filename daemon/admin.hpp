#pragma once
// The admin listener (loopback by default): a tiny HTTP/1.1 server on the
// control thread, separate from the data plane. Handlers are looked up by
// method and exact path; customsd registers /healthz, /readyz, /metrics and
// POST /reload, and later parts add theirs (GET /rules) before start().

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/message.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

namespace customs::daemon {

struct admin_reply {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using admin_request = boost::beast::http::request<boost::beast::http::string_body>;
using admin_handler = std::function<admin_reply(const admin_request&)>;

class admin_server {
 public:
  // Binds now; throws std::runtime_error when it cannot.
  admin_server(boost::asio::io_context& ioc, const std::string& address, std::uint16_t port);
  ~admin_server();

  void add(boost::beast::http::verb method, std::string path, admin_handler h);
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  void start();
  void stop();
  // Starts the accept loop again if it ended by an exception (not stopped).
  void recover();

  struct state;  // shared with the connection coroutines

 private:
  std::shared_ptr<state> state_;
  std::uint16_t port_ = 0;
};

}  // namespace customs::daemon
