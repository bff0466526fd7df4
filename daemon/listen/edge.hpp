#pragma once
// Connections of forward and transparent listeners, up to the point where they
// become a session (intercepted: TLS terminated with a minted leaf, then the
// same pipeline as a reverse route) or a tunnel (bytes relayed, never
// decrypted), or are refused.
//
// Forward listener (an HTTP proxy):
//   CONNECT host:port   proxy credentials (407), the port (403), the catalogue,
//                       policy before decryption (403), the destination's
//                       addresses (403 for loopback, private, ... and customsd
//                       itself; 502/504 when it cannot be reached), then
//                       "200 Connection established" and
//                         - a catalogued host: its ClientHello is read (peeked,
//                           not consumed), its server name must be the host
//                           (or absent), a leaf is presented, and the
//                           connection is handed to a session;
//                         - any other host: a tunnel.
//   other methods       absolute-form http:// requests: the connection is handed
//                       to a session at once, which routes each request by its
//                       URL (session::route_forward_request).
// Transparent listener (a firewall redirect or TPROXY):
//   the original destination (SO_ORIGINAL_DST), then the ClientHello's server
//   name decides as above; refusals are a TLS alert (access_denied), since
//   the client expects a TLS server, not an HTTP proxy.
//
// A client that rejects the leaf (an alert about the certificate during the
// handshake) is counted, logged with the host, recorded as uninspected, and
// remembered: its next connections to that host are tunnelled or refused as
// the catalogue entry's on_untrusted (else interception.on_untrusted) says.
//
// Nothing here reads a byte of a tunnel or of a TLS handshake it does not
// terminate: the ClientHello is peeked (MSG_PEEK) with SO_RCVLOWAT set to the
// bytes still missing, so the relay or the TLS stack reads it whole.

#include "daemon/filter.hpp"
#include "daemon/runtime.hpp"
#include "daemon/worker.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <vector>

namespace customs::daemon {

struct worker;

class edge_connection {
 public:
  edge_connection(worker& w, boost::asio::ip::tcp::socket socket, unsigned listener, connection_slot slot);
  ~edge_connection();
  edge_connection(const edge_connection&) = delete;
  edge_connection& operator=(const edge_connection&) = delete;

  boost::asio::awaitable<void> run();

  // Drain: close now unless a tunnel is relaying (it may finish until the deadline).
  void close_if_idle();
  // Drain deadline: close everything now.
  void force_close();

 private:
  struct attempt;
  boost::asio::awaitable<void> run_forward();
  boost::asio::awaitable<void> run_transparent();
  boost::asio::awaitable<void> serve_connect(attempt& a);
  // The catalogue, policy before decryption and the untrusted memory: false
  // when the connection is refused (the reply was sent).
  boost::asio::awaitable<bool> admit(attempt& a);
  boost::asio::awaitable<void> intercept(attempt& a);
  boost::asio::awaitable<void> tunnel(attempt& a);
  boost::asio::awaitable<void> hand_to_session();
  // Peeks until the socket holds at least `need` bytes (or EOF, an error, the
  // deadline); returns what it holds (up to `max`) in peek_.
  boost::asio::awaitable<std::size_t> peek(std::size_t need, std::size_t max, std::chrono::steady_clock::time_point deadline,
                                           boost::system::error_code& ec);
  // Reads the ClientHello; false when the connection is refused or gone.
  boost::asio::awaitable<bool> read_hello(attempt& a);
  boost::asio::awaitable<void> reply(std::string_view bytes);
  void refuse(attempt& a, std::string_view reason, std::string message, unsigned status,
              std::vector<std::string> rules = {});
  void record(attempt& a, int event, std::string_view reason, std::vector<std::string> rules = {});
  void unregister() noexcept;

  worker& w_;
  connection_slot slot_;  // moves on to the session when the connection is handed over
  boost::asio::ip::tcp::socket client_;
  boost::asio::ip::tcp::socket upstream_;
  unsigned listener_;
  boost::asio::ip::address peer_;
  std::uint16_t peer_port_ = 0;
  boost::asio::ip::address local_;
  std::uint16_t local_port_ = 0;
  std::vector<char> peek_;
  std::string pending_reply_;  // set by refuse(), sent by the caller
  std::list<edge_connection*>::iterator registration_;
  bool registered_ = false;
  bool counted_ = true;     // counted in connections_active (the session counts it once handed over)
  bool relaying_ = false;   // a tunnel is open
  bool closing_ = false;
};

// The spawned coroutine of an accepted connection on an edge listener.
boost::asio::awaitable<void> run_edge(worker& w, boost::asio::ip::tcp::socket socket, unsigned listener,
                                      connection_slot slot);

// The ports customsd listens on (its listeners and admin listener), which no
// edge connection may loop back to.
[[nodiscard]] std::vector<std::uint16_t> own_ports(const worker& w);

namespace listen {

// An absolute-form request on a forward listener, routed (route non-null) or
// refused (`refusal` is the reply: 400, 403, 407, 502, 504).
struct forward_decision {
  const route_runtime* route = nullptr;
  upstream_target target;
  std::string origin;  // origin-form target for the upstream
  local_response refusal;
};

// Checks the credentials, the URL, the port, the catalogue, the policy and the
// destination of one absolute-form request, filling info.host,
// info.destination and info.proxy_tenant. Never throws.
[[nodiscard]] boost::asio::awaitable<forward_decision> route_forward(
    const edge_runtime& e, worker& w, unsigned listener, flow_info& info, std::string_view target,
    std::string_view proxy_authorization, boost::asio::ip::tcp::socket& client,
    std::chrono::steady_clock::time_point deadline);

}  // namespace listen
}  // namespace customs::daemon
