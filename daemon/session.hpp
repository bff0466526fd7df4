#pragma once
// One client connection: HTTP/1.1 requests one after the other (keep-alive),
// each a flow through the route's filter chain to the upstream and back.
// Lives on one worker thread, as a coroutine (run()).

#include "daemon/failure.hpp"
#include "daemon/filter.hpp"
#include "daemon/http_framing.hpp"
#include "daemon/runtime.hpp"
#include "daemon/sse.hpp"
#include "daemon/stream.hpp"
#include "daemon/upstream.hpp"
#include "daemon/watchdog.hpp"
#include "daemon/worker.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <array>
#include <exception>
#include <chrono>
#include <list>
#include <memory>
#include <optional>
#include <string>

namespace customs::daemon {

namespace detail {
struct pending_decision;

}  // namespace detail

struct flow;

// An intercepted connection of a forward or transparent listener: the client's
// TLS handshake is done (with a leaf minted for `host`), and every request on
// it goes to `host` through the catalogue entry's route.
struct edge_binding {
  std::string host;         // the intercepted host (normalised)
  upstream_target target;   // TLS to host, at the checked address
  std::string destination;  // "address:port", for the audit trail
  std::string proxy_tenant; // from Proxy-Authorization (forward listeners)
};

class session {
 public:
  session(worker& w, boost::asio::ip::tcp::socket socket, unsigned listener,
          std::shared_ptr<boost::asio::ssl::context> tls);
  // An intercepted connection (see edge_binding); `tls` keeps the stream's
  // context alive.
  session(worker& w, any_stream client, unsigned listener, std::shared_ptr<boost::asio::ssl::context> tls,
          edge_binding bound);
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  boost::asio::awaitable<void> run();

  // Drain: closes the connection if it waits for a request; otherwise the
  // connection closes after the response in flight.
  void close_if_idle();
  // Drain deadline: closes the connection and the upstream one now.
  void force_close();

 private:
  session(worker& w, any_stream client, unsigned listener, std::shared_ptr<boost::asio::ssl::context> tls,
          std::optional<edge_binding> bound, bool handshaken);
  enum class framing : std::uint8_t { none, content_length, chunked, until_close };
  friend struct flow_closer;

  boost::asio::awaitable<bool> serve_one();
  // Edge listeners: the route and upstream of a request (see flow::up). False:
  // refused, and the reply is in `refusal`.
  void bind_edge_route(flow& f, const runtime& rt, std::string_view target);
  boost::asio::awaitable<bool> route_forward_request(flow& f, std::string_view target,
                                                     std::string_view proxy_authorization, local_response& refusal);
  // One request and its answer, once the flow exists (serve_one guards it).
  boost::asio::awaitable<bool> handle(flow& f);
  // An exception escaped handle(): 500 if nothing was sent yet, else the
  // connection is cut; the flow ends (on_flow_end) as internal_error.
  boost::asio::awaitable<void> fail_internal(flow& f, std::exception_ptr error);
  // Why a client message could not be read, counted in the metrics.
  [[nodiscard]] failure client_read_failure(const boost::system::error_code& ec);
  // Records why an upstream body read failed (f.fail), counted in the metrics.
  void upstream_read_failed(flow& f, upstream_connection& c, const boost::system::error_code& ec);
  boost::asio::awaitable<bool> run_request_phase(flow& f);
  bool make_filters(flow& f);
  boost::asio::awaitable<failure> open_exchange(flow& f, std::optional<response_parser>& p,
                                                std::unique_ptr<upstream_connection>& conn);
  boost::asio::awaitable<void> relay_events(flow& f, upstream_connection& c, response_parser& p, framing out);
  boost::asio::awaitable<void> relay_bytes(flow& f, upstream_connection& c, response_parser& p, framing out);
  boost::asio::awaitable<bool> read_whole(flow& f, upstream_connection& c, response_parser& p, std::string& body);
  boost::asio::awaitable<void> send_error(flow& f, failure why, std::string_view detail);
  boost::asio::awaitable<void> send_local(flow& f, const local_response& r);
  boost::asio::awaitable<bool> send(flow& f, std::string_view a, std::string_view b = {},
                                    std::string_view c = {}, std::string_view d = {},
                                    std::string_view e = {});
  boost::asio::awaitable<bool> send_chunk(flow& f, framing out, std::string_view payload, bool last);

  void build_head(flow& f, unsigned status, const boost::beast::http::fields* upstream,
                  const std::vector<header_field>& add, framing fr, std::uint64_t length);
  void build_upstream_head(flow& f);
  bool run_event(flow& f, const sse_block& ev, std::size_t from);
  // Why a read of an upstream body failed.
  [[nodiscard]] failure read_failure(const flow& f, const boost::system::error_code& ec) const;
  bool run_stream_end(flow& f);
  // Ends the flow: on_flow_end of every filter, metrics, the flow log line.
  // Once per flow (later calls do nothing); never throws.
  void finish(flow& f) noexcept;
  void finish_flow(flow& f);
  std::chrono::steady_clock::time_point until(const flow& f, std::chrono::milliseconds d) const;

  worker& w_;
  std::shared_ptr<boost::asio::ssl::context> tls_ctx_;  // outlives client_
  any_stream client_;
  unsigned listener_;
  boost::asio::ip::address peer_;
  std::uint16_t peer_port_ = 0;
  std::string peer_ip_;
  std::string client_subject_;  // of a verified client certificate (mTLS)
  boost::beast::flat_buffer buf_;   // client bytes read, not yet parsed
  std::unique_ptr<char[]> rbuf_;     // upstream body bytes, one read at a time
  std::string head_;                 // response head waiting to be sent with the first body bytes
  std::string payload_;              // body bytes of one client write
  std::string upstream_head_;
  std::array<char, 24> chunk_size_{};
  std::optional<sse_parser> sse_;
  std::list<session*>::iterator registration_;
  upstream_connection* upstream_ = nullptr;         // in use by the flow in flight
  std::shared_ptr<detail::pending_decision> wait_;  // a pending filter decision
  watchdog client_wd_;  // deadlines of client reads and writes (after the TLS handshake)
  bool idle_ = true;
  bool closing_ = false;  // drain: no further request on this connection
  bool forced_ = false;   // drain deadline: the flow in flight is being cut
  bool first_request_ = true;
  bool handshaken_ = false;            // the client's TLS handshake was done before the session
  std::optional<edge_binding> bound_;  // intercepted connections
};

// Runs a session to its end (the spawned coroutine of an accepted connection).
// `slot` is the connection's place in limits.connections, given back when the
// session ends.
boost::asio::awaitable<void> run_session(worker& w, boost::asio::ip::tcp::socket socket,
                                         unsigned listener,
                                         std::shared_ptr<boost::asio::ssl::context> tls, connection_slot slot);
// The same for an intercepted connection.
boost::asio::awaitable<void> run_session(worker& w, any_stream client, unsigned listener,
                                         std::shared_ptr<boost::asio::ssl::context> tls, edge_binding bound,
                                         connection_slot slot);

}  // namespace customs::daemon
