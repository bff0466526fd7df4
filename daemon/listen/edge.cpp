#include "daemon/listen/edge.hpp"

#include "daemon/http_util.hpp"
#include "daemon/intercept/client_hello.hpp"
#include "daemon/listen/edge_runtime.hpp"
#include "daemon/listen/proxy_request.hpp"
#include "daemon/listen/resolve.hpp"
#include "daemon/log.hpp"
#include "daemon/session.hpp"
#include "daemon/stream.hpp"
#include "daemon/watchdog.hpp"
#include "daemon/worker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace customs::daemon {
namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;
using listen::edge_outcome;
using listen::edge_refusal;

namespace {

constexpr auto tok = asio::as_tuple(asio::use_awaitable);
constexpr std::uint8_t alert_access_denied = 49;
constexpr std::uint8_t alert_unrecognized_name = 112;

template <class E>
constexpr std::size_t idx(E e) noexcept {
  return static_cast<std::size_t>(e);
}

std::string endpoint_text(const asio::ip::address& a, std::uint16_t port) {
  return a.is_v6() ? "[" + a.to_string() + "]:" + std::to_string(port) : a.to_string() + ":" + std::to_string(port);
}

// An HTTP reply of the proxy itself (not of a provider).
std::string http_reply(unsigned status, std::string_view reason_code, std::string_view message,
                       const std::vector<std::string>& rules, std::string_view extra_header = {}) {
  std::string body = "customs: ";
  body += message;
  body += '\n';
  std::string h = "HTTP/1.1 " + std::to_string(status) + ' ';
  const auto reason = boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status));
  h.append(reason.data(), reason.size());
  h += "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Customs-Verdict: refused\r\n";
  append_header(h, "X-Customs-Reason", reason_code);
  if (!rules.empty()) {
    std::string r;
    for (const auto& x : rules) r += (r.empty() ? "" : ", ") + x;
    append_header(h, "X-Customs-Rule", r);
  }
  if (!extra_header.empty()) {
    h += extra_header;
    h += "\r\n";
  }
  h += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  return h + body;
}

local_response local_reply(unsigned status, std::string_view reason_code, std::string_view message,
                           const std::vector<std::string>& rules) {
  local_response r;
  r.status = status;
  r.headers.push_back({"Content-Type", "text/plain; charset=utf-8"});
  r.headers.push_back({"X-Customs-Verdict", "refused"});
  r.headers.push_back({"X-Customs-Reason", std::string(reason_code)});
  if (!rules.empty()) {
    std::string s;
    for (const auto& x : rules) s += (s.empty() ? "" : ", ") + x;
    r.headers.push_back({"X-Customs-Rule", s});
  }
  r.body = "customs: " + std::string(message) + "\n";
  return r;
}

// Whether a failed server handshake is the client rejecting the certificate
// (its alert names the certificate), rather than anything else going wrong.
bool rejected_certificate(const boost::system::error_code& ec) {
  if (ec.category() != asio::error::get_ssl_category()) return false;
  switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
      return true;
    default:
      return false;
  }
}

void set_rcvlowat(int fd, std::size_t n) noexcept {
  const int v = static_cast<int>(std::min<std::size_t>(n, 1u << 20));
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v);
}

std::string_view refusal_message(edge_refusal r) {
  switch (r) {
    case edge_refusal::policy: return "the destination is refused by policy";
    case edge_refusal::port: return "this port may not be reached through the proxy";
    case edge_refusal::loopback:
    case edge_refusal::link_local:
    case edge_refusal::private_net:
    case edge_refusal::unspecified:
    case edge_refusal::multicast: return "this address may not be reached through the proxy";
    case edge_refusal::own_listener: return "the proxy does not connect to itself";
    case edge_refusal::unknown_host: return "only hosts in the provider catalogue may be reached";
    case edge_refusal::sni_mismatch: return "the TLS server name is not the host that was asked for";
    case edge_refusal::untrusted: return "this client rejected the inspection certificate for this host";
    case edge_refusal::auth: return "proxy authentication required";
    case edge_refusal::bad_request: return "malformed proxy request";
    case edge_refusal::client_hello: return "no valid TLS ClientHello";
    case edge_refusal::resolve: return "the host cannot be resolved";
    case edge_refusal::count_: break;
  }
  return "refused";
}

}  // namespace

std::vector<std::uint16_t> own_ports(const worker& w) {
  std::vector<std::uint16_t> ports;
  ports.reserve(w.acceptors.size() + 1);
  for (const auto& a : w.acceptors) {
    boost::system::error_code ec;
    const auto ep = a->local_endpoint(ec);
    if (!ec) ports.push_back(ep.port());
  }
  if (w.admin_port != 0) ports.push_back(w.admin_port);
  return ports;
}

// ---- one connection ----------------------------------------------------------

struct edge_connection::attempt {
  std::shared_ptr<const runtime> rt;
  const edge_runtime* edge = nullptr;
  flow_info info;
  std::string host;  // normalised name, or an IP literal; empty when unknown
  bool ip_literal = false;
  std::uint16_t port = 0;
  const catalogue_entry* entry = nullptr;
  asio::ip::address dest;
  std::uint16_t dest_port = 0;
  bool dest_known = false;
  bool after_untrusted = false;  // tunnelled because the client rejected the CA before
  bool http_replies = true;      // forward mode before "200": refusals are HTTP replies
  intercept::client_hello hello;
  std::chrono::system_clock::time_point started_at = std::chrono::system_clock::now();
  clock::time_point start = clock::now();
  std::string outcome = "refused";
  std::string reason;
  listen::edge_shard* shard = nullptr;
};

edge_connection::edge_connection(worker& w, tcp::socket socket, unsigned listener, connection_slot slot)
    : w_(w), slot_(std::move(slot)), client_(std::move(socket)), upstream_(w.ioc), listener_(listener) {
  boost::system::error_code ec;
  if (auto ep = client_.remote_endpoint(ec); !ec) {
    peer_ = ep.address();
    peer_port_ = ep.port();
  }
  if (auto ep = client_.local_endpoint(ec); !ec) {
    local_ = ep.address();
    local_port_ = ep.port();
  }
  registration_ = w_.edges.insert(w_.edges.end(), this);
  registered_ = true;
  w_.shard.connections_active.add();
  w_.shard.connections_accepted.add();
}

edge_connection::~edge_connection() {
  unregister();
  boost::system::error_code ec;
  client_.close(ec);
  upstream_.close(ec);
  if (counted_) w_.shard.connections_active.sub();
}

void edge_connection::unregister() noexcept {
  if (!registered_) return;
  w_.edges.erase(registration_);
  registered_ = false;
}

void edge_connection::close_if_idle() {
  closing_ = true;
  if (relaying_) return;
  boost::system::error_code ec;
  client_.close(ec);
  upstream_.close(ec);
}

void edge_connection::force_close() {
  closing_ = true;
  boost::system::error_code ec;
  client_.close(ec);
  upstream_.close(ec);
}

asio::awaitable<void> run_edge(worker& w, tcp::socket socket, unsigned listener, connection_slot slot) {
  edge_connection c(w, std::move(socket), listener, std::move(slot));
  co_await c.run();
}

asio::awaitable<void> edge_connection::run() {
  if (w_.draining) co_return;
  const auto mode = w_.rt->cfg->listeners[listener_].mode;
  if (mode == listener_mode::transparent) co_await run_transparent();
  else co_await run_forward();
}

asio::awaitable<std::size_t> edge_connection::peek(std::size_t need, std::size_t max, clock::time_point deadline,
                                                   boost::system::error_code& ec) {
  ec = {};
  if (peek_.size() < max) peek_.resize(max);
  const int fd = client_.native_handle();
  set_rcvlowat(fd, need);
  watchdog wd(client_.get_executor(), client_);
  wd.expires_at(deadline);
  std::size_t have = 0;
  bool woke = false;
  for (;;) {
    auto [wec] = co_await client_.async_wait(tcp::socket::wait_read, tok);
    if (wec) {
      ec = wd.fired() ? boost::system::error_code(beast::error::timeout) : wec;
      break;
    }
    const ssize_t n = ::recv(fd, peek_.data(), max, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) {
      ec = asio::error::eof;
      break;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      ec.assign(errno, boost::system::system_category());
      break;
    }
    const auto got = static_cast<std::size_t>(n);
    if (got >= need || got == max) {
      have = got;
      break;
    }
    // Woken with fewer bytes than the low-water mark twice without progress:
    // the peer half-closed (a FIN makes the socket readable at any mark).
    if (woke && got == have) {
      ec = asio::error::eof;
      break;
    }
    woke = true;
    have = got;
  }
  set_rcvlowat(fd, 1);
  co_return have;
}

asio::awaitable<void> edge_connection::reply(std::string_view bytes) {
  if (bytes.empty() || !client_.is_open()) co_return;
  watchdog wd(client_.get_executor(), client_);
  wd.expires_at(clock::now() + w_.rt->cfg->limits.send_timeout);
  auto [ec, n] = co_await asio::async_write(client_, asio::buffer(bytes.data(), bytes.size()), tok);
  (void)ec;
  (void)n;
}

void edge_connection::record(attempt& a, int event, std::string_view reason, std::vector<std::string> rules) {
  edge_record r;
  r.target.flow = &a.info;
  r.target.mode = a.info.mode;
  r.target.host = a.host;
  r.target.port = a.port;
  r.target.provider = a.entry;
  r.target.destination = a.info.destination;
  r.event = static_cast<edge_event>(event);
  r.reason = reason;
  r.rules = std::move(rules);
  r.started_at = a.started_at;
  r.duration = clock::now() - a.start;
  a.edge->policy->record(r);
}

void edge_connection::refuse(attempt& a, std::string_view reason, std::string message, unsigned status,
                             std::vector<std::string> rules) {
  a.outcome = "refused";
  a.reason = std::string(reason);
  a.shard->outcomes[idx(edge_outcome::refused)].add();
  if (a.http_replies) {
    pending_reply_ = http_reply(status, reason, message, rules,
                                status == 407 ? "Proxy-Authenticate: Basic realm=\"" +
                                                    w_.rt->cfg->listeners[listener_].proxy_auth.value_or(proxy_auth_config{}).realm + "\""
                                              : std::string());
  } else {
    pending_reply_ = intercept::alert_record(reason == "sni_mismatch" ? alert_unrecognized_name : alert_access_denied);
  }
  log_line(log_level::warn, "edge_refused")
      .kv("flow", a.info.id)
      .kv("listener", a.info.listener)
      .kv("peer", peer_.to_string())
      .kv("host", a.entry != nullptr ? std::string_view(a.host) : std::string_view("uncatalogued"))
      .kv("reason", reason)
      .kv("detail", message);
  // Malformed requests and missing credentials are counted and logged, not
  // audited: they name no destination a decision was made about.
  if (reason != "bad_request" && reason != "auth" && reason != "client_hello") {
    record(a, static_cast<int>(edge_event::refused), reason, std::move(rules));
  }
}

asio::awaitable<void> edge_connection::hand_to_session() {
  // The session counts the connection from here on.
  unregister();
  w_.shard.connections_active.sub();
  w_.shard.connections_accepted.sub();
  counted_ = false;
  co_await run_session(w_, std::move(client_), listener_, nullptr, std::move(slot_));
}

// ---- forward listener ------------------------------------------------------------

asio::awaitable<void> edge_connection::run_forward() {
  const auto rt = w_.rt;
  const limits_config& lim = rt->cfg->limits;
  const auto deadline = clock::now() + lim.header_timeout;
  const std::size_t limit = static_cast<std::size_t>(std::min<std::uint64_t>(lim.header_bytes, 1u << 20));
  constexpr std::string_view connect = "CONNECT ";
  boost::system::error_code ec;
  std::size_t have = co_await peek(1, limit, deadline, ec);
  if (ec) co_return;  // closed or silent: nothing to answer
  // Anything but CONNECT is an absolute-form request: the session routes it.
  while (have < connect.size() && std::string_view(peek_.data(), have) == connect.substr(0, have)) {
    have = co_await peek(have + 1, limit, deadline, ec);
    if (ec) co_return;
  }
  if (std::string_view(peek_.data(), connect.size()) != connect) {
    peek_.clear();
    peek_.shrink_to_fit();
    co_await hand_to_session();
    co_return;
  }
  attempt a;
  a.rt = rt;
  a.edge = rt->edge.get();
  a.shard = &a.edge->stats->shard(w_.index);
  a.info.id = w_.next_flow_id();
  a.info.listener = rt->cfg->listeners[listener_].name;
  a.info.peer = peer_;
  a.info.peer_port = peer_port_;
  a.info.worker = w_.index;
  a.info.mode = listener_mode::forward;
  // The head, byte-exact: nothing after it is consumed.
  listen::proxy_head head;
  listen::head_status hs = listen::head_status::incomplete;
  for (;;) {
    hs = listen::parse_proxy_head(std::string_view(peek_.data(), have), limit, head);
    if (hs != listen::head_status::incomplete) break;
    have = co_await peek(have + 1, limit, deadline, ec);
    if (ec) co_return;
  }
  if (hs != listen::head_status::complete) {
    a.shard->refusals[idx(edge_refusal::bad_request)].add();
    const bool large = hs == listen::head_status::too_large;
    refuse(a, "bad_request", large ? "request head too large" : "malformed CONNECT request", large ? 431 : 400);
    co_await reply(pending_reply_);
    co_return;
  }
  const std::string target(head.target);
  const std::string authorization(head.proxy_authorization);
  const std::size_t length = head.length;
  // Consume exactly the head: what follows belongs to the tunnel.
  std::size_t taken = 0;
  while (taken < length) {
    const ssize_t n = ::recv(client_.native_handle(), peek_.data(), length - taken, MSG_DONTWAIT);
    if (n <= 0) co_return;
    taken += static_cast<std::size_t>(n);
  }
  peek_.clear();
  peek_.shrink_to_fit();

  const edge_runtime& e = *a.edge;
  if (const auto& users = e.users[listener_]) {
    const auto tenant = users->check(authorization);
    if (!tenant) {
      a.shard->refusals[idx(edge_refusal::auth)].add();
      refuse(a, "auth", authorization.empty() ? "proxy authentication required" : "proxy credentials not accepted", 407);
      co_await reply(pending_reply_);
      co_return;
    }
    a.info.proxy_tenant = *tenant;
  }
  listen::authority auth;
  if (!listen::parse_authority(target, 0, auth)) {
    a.shard->refusals[idx(edge_refusal::bad_request)].add();
    refuse(a, "bad_request", "CONNECT needs host:port", 400);
    co_await reply(pending_reply_);
    co_return;
  }
  a.host = auth.host;
  a.ip_literal = auth.ip_literal;
  a.port = auth.port;
  a.info.host = a.host;
  if (!e.guard.port_allowed(a.port)) {
    a.shard->refusals[idx(edge_refusal::port)].add();
    refuse(a, "port", std::string(refusal_message(edge_refusal::port)), 403);
    co_await reply(pending_reply_);
    co_return;
  }
  a.entry = a.ip_literal ? nullptr : e.providers->find(a.host);
  co_await serve_connect(a);
}

asio::awaitable<void> edge_connection::serve_connect(attempt& a) {
  const edge_runtime& e = *a.edge;
  const limits_config& lim = a.rt->cfg->limits;
  if (!co_await admit(a)) co_return;
  const auto ports = own_ports(w_);
  const auto pinned = co_await listen::pin_destination(e.guard, a.host, a.port, local_, ports,
                                                       clock::now() + lim.upstream_connect_timeout);
  if (!pinned.ok) {
    if (pinned.refused != listen::refusal::none) {
      const edge_refusal r = listen::from_refusal(pinned.refused);
      a.shard->refusals[idx(r)].add();
      refuse(a, listen::to_string(r), std::string(refusal_message(r)), 403);
    } else {
      a.shard->refusals[idx(edge_refusal::resolve)].add();
      refuse(a, "resolve", pinned.detail, pinned.timeout ? 504 : 502);
    }
    co_await reply(pending_reply_);
    co_return;
  }
  a.dest = pinned.address;
  a.dest_port = pinned.port;
  a.dest_known = true;
  a.info.destination = endpoint_text(a.dest, a.dest_port);
  if (a.entry != nullptr && e.ca && !a.after_untrusted) {
    static constexpr std::string_view established = "HTTP/1.1 200 Connection established\r\n\r\n";
    co_await reply(established);
    a.http_replies = false;
    co_await intercept(a);
  } else {
    co_await tunnel(a);
  }
}

asio::awaitable<bool> edge_connection::admit(attempt& a) {
  const edge_runtime& e = *a.edge;
  const auto refused = [&](edge_refusal r, std::string message, std::vector<std::string> rules = {}) {
    a.shard->refusals[idx(r)].add();
    refuse(a, listen::to_string(r), std::move(message), 403, std::move(rules));
  };
  if (a.entry == nullptr) {
    if (!e.settings.refuse_unknown_hosts) co_return true;
    refused(edge_refusal::unknown_host, std::string(refusal_message(edge_refusal::unknown_host)));
    co_await reply(pending_reply_);
    co_return false;
  }
  edge_target t;
  t.flow = &a.info;
  t.mode = a.info.mode;
  t.host = a.host;
  t.port = a.port;
  t.provider = a.entry;
  t.destination = a.info.destination;
  const edge_decision d = e.policy->decide(t);
  if (d.refuse) {
    refused(edge_refusal::policy, d.reason.empty() ? std::string(refusal_message(edge_refusal::policy)) : d.reason, d.rules);
    co_await reply(pending_reply_);
    co_return false;
  }
  if (e.ca && e.untrusted->contains(peer_, a.host, clock::now())) {
    if (e.on_untrusted(*a.entry) == untrusted_action::refuse) {
      refused(edge_refusal::untrusted, std::string(refusal_message(edge_refusal::untrusted)));
      co_await reply(pending_reply_);
      co_return false;
    }
    a.after_untrusted = true;
  }
  co_return true;
}

// ---- transparent listener ------------------------------------------------------------

asio::awaitable<void> edge_connection::run_transparent() {
  attempt a;
  a.rt = w_.rt;
  a.edge = a.rt->edge.get();
  a.shard = &a.edge->stats->shard(w_.index);
  a.info.id = w_.next_flow_id();
  a.info.listener = a.rt->cfg->listeners[listener_].name;
  a.info.peer = peer_;
  a.info.peer_port = peer_port_;
  a.info.worker = w_.index;
  a.info.mode = listener_mode::transparent;
  a.http_replies = false;
  const edge_runtime& e = *a.edge;
  if (!listen::original_destination(client_.native_handle(), a.dest, a.dest_port)) co_return;
  a.dest_known = true;
  a.port = a.dest_port;
  a.info.destination = endpoint_text(a.dest, a.dest_port);
  // A connection made to the listener itself (not redirected) would loop.
  const auto ports = own_ports(w_);
  if (e.guard.check(a.dest, a.dest_port, true, local_, ports) != listen::refusal::none) {
    a.shard->refusals[idx(edge_refusal::own_listener)].add();
    refuse(a, "own_listener", std::string(refusal_message(edge_refusal::own_listener)), 403);
    co_return;  // no TLS alert: this is not a client of a redirected flow
  }
  if (!co_await read_hello(a)) co_return;
  if (a.hello.has_server_name) {
    std::string name;
    if (normalize_host(a.hello.server_name, name)) a.host = std::move(name);
  }
  a.info.host = a.host;
  a.entry = a.host.empty() ? nullptr : e.providers->find(a.host);
  if (a.entry != nullptr) {
    // Where the intercepted host really is: the resolve map, else the
    // address the client was going to.
    if (const resolve_entry* m = e.guard.mapped(a.host)) {
      boost::system::error_code ec;
      const auto addr = asio::ip::make_address(m->address, ec);
      if (!ec) {
        a.dest = addr;
        if (m->port != 0) a.dest_port = m->port;
        a.info.destination = endpoint_text(a.dest, a.dest_port);
      }
    }
  }
  if (!co_await admit(a)) co_return;
  if (a.entry != nullptr && e.ca && !a.after_untrusted) co_await intercept(a);
  else co_await tunnel(a);
}

asio::awaitable<bool> edge_connection::read_hello(attempt& a) {
  const limits_config& lim = a.rt->cfg->limits;
  const auto deadline = clock::now() + lim.header_timeout;
  const auto limit = static_cast<std::size_t>(lim.client_hello_bytes);
  boost::system::error_code ec;
  std::size_t need = 1;
  for (;;) {
    const std::size_t have = co_await peek(need, limit, deadline, ec);
    const auto r = intercept::parse_client_hello(std::string_view(peek_.data(), have), limit, a.hello);
    if (r.status == intercept::hello_status::need_more && !ec) {
      need = r.need;
      continue;
    }
    peek_.clear();
    peek_.shrink_to_fit();
    switch (r.status) {
      case intercept::hello_status::complete:
        a.shard->hellos[idx(listen::hello_result_kind::complete)].add();
        co_return true;
      case intercept::hello_status::not_tls:
        a.shard->hellos[idx(listen::hello_result_kind::not_tls)].add();
        // Not TLS at all: nothing names a host; relayed (or refused) as unknown.
        co_return true;
      case intercept::hello_status::need_more:
        if (ec == beast::error::timeout) {
          a.shard->hellos[idx(listen::hello_result_kind::timeout)].add();
          a.shard->refusals[idx(edge_refusal::client_hello)].add();
          refuse(a, "client_hello", "no complete ClientHello in time", 400);
          co_await reply(pending_reply_);
        }
        co_return false;  // gone before the hello was complete
      case intercept::hello_status::too_large:
        a.shard->hellos[idx(listen::hello_result_kind::too_large)].add();
        a.shard->refusals[idx(edge_refusal::client_hello)].add();
        refuse(a, "client_hello", "ClientHello over limits.client_hello_bytes", 400);
        co_await reply(pending_reply_);
        co_return false;
      case intercept::hello_status::invalid:
        a.shard->hellos[idx(listen::hello_result_kind::invalid)].add();
        a.shard->refusals[idx(edge_refusal::client_hello)].add();
        refuse(a, "client_hello", "malformed ClientHello", 400);
        co_await reply(pending_reply_);
        co_return false;
    }
    co_return false;
  }
}

// ---- interception --------------------------------------------------------------------

asio::awaitable<void> edge_connection::intercept(attempt& a) {
  const edge_runtime& e = *a.edge;
  const limits_config& lim = a.rt->cfg->limits;
  if (a.info.mode == listener_mode::forward) {
    if (!co_await read_hello(a)) co_return;
    // The server name must be the host the client asked the proxy for; a
    // client that names another host in TLS is not talking to this one.
    if (a.hello.has_server_name) {
      std::string name;
      if (!normalize_host(a.hello.server_name, name) || name != a.host) {
        a.shard->refusals[idx(edge_refusal::sni_mismatch)].add();
        refuse(a, "sni_mismatch", std::string(refusal_message(edge_refusal::sni_mismatch)), 403);
        co_await reply(pending_reply_);
        co_return;
      }
    }
  }
  const std::shared_ptr<asio::ssl::context> ctx = e.ca->context();
  asio::ssl::stream<beast::tcp_stream> tls(beast::tcp_stream(std::move(client_)), *ctx);
  client_ = tcp::socket(w_.ioc);
  if (!e.ca->present(tls.native_handle(), a.host)) {
    a.shard->outcomes[idx(edge_outcome::failed)].add();
    a.shard->handshakes[idx(listen::handshake_result::failed)].add();
    co_return;
  }
  tls.next_layer().expires_after(lim.header_timeout);
  auto [hec] = co_await tls.async_handshake(asio::ssl::stream_base::server, tok);
  tls.next_layer().expires_never();
  if (hec) {
    if (rejected_certificate(hec)) {
      a.shard->handshakes[idx(listen::handshake_result::untrusted)].add();
      a.shard->outcomes[idx(edge_outcome::failed)].add();
      e.untrusted->remember(peer_, a.host, clock::now());
      log_line(log_level::warn, "edge_untrusted")
          .kv("flow", a.info.id)
          .kv("listener", a.info.listener)
          .kv("peer", peer_.to_string())
          .kv("host", a.host)
          .kv("next", to_string(e.on_untrusted(*a.entry)))
          .kv("error", hec.message());
      record(a, static_cast<int>(edge_event::untrusted), "untrusted");
    } else {
      a.shard->handshakes[idx(listen::handshake_result::failed)].add();
      a.shard->outcomes[idx(edge_outcome::failed)].add();
      log_line(log_level::debug, "edge_handshake_failed")
          .kv("flow", a.info.id)
          .kv("peer", peer_.to_string())
          .kv("host", a.host)
          .kv("error", hec.message());
    }
    co_return;
  }
  a.shard->handshakes[idx(listen::handshake_result::ok)].add();
  a.shard->outcomes[idx(edge_outcome::intercepted)].add();
  edge_binding b;
  b.host = a.host;
  b.target = make_edge_target(e, a.host, a.port, true, a.dest.to_string(), a.dest_port);
  b.destination = a.info.destination;
  b.proxy_tenant = a.info.proxy_tenant;
  unregister();
  w_.shard.connections_active.sub();
  w_.shard.connections_accepted.sub();
  counted_ = false;
  co_await run_session(w_, any_stream(std::move(tls)), listener_, ctx, std::move(b), std::move(slot_));
}

// ---- tunnels ---------------------------------------------------------------------

asio::awaitable<void> edge_connection::tunnel(attempt& a) {
  const limits_config& lim = a.rt->cfg->limits;
  const edge_runtime& e = *a.edge;
  const tcp::endpoint to(a.dest, a.dest_port);
  boost::system::error_code ec;
  upstream_.open(to.protocol(), ec);
  if (!ec && e.settings.upstream_mark != 0 &&
      ::setsockopt(upstream_.native_handle(), SOL_SOCKET, SO_MARK, &e.settings.upstream_mark,
                   sizeof e.settings.upstream_mark) != 0) {
    ec.assign(errno, boost::system::system_category());
  }
  if (!ec) {
    watchdog wd(upstream_.get_executor(), upstream_);
    wd.expires_at(clock::now() + lim.upstream_connect_timeout);
    auto [cec] = co_await upstream_.async_connect(to, tok);
    ec = cec && wd.fired() ? boost::system::error_code(beast::error::timeout) : cec;
  }
  if (ec) {
    a.outcome = "failed";
    a.shard->outcomes[idx(edge_outcome::failed)].add();
    log_line(log_level::warn, "edge_connect_failed")
        .kv("flow", a.info.id)
        .kv("peer", peer_.to_string())
        .kv("destination", a.info.destination)
        .kv("error", ec.message());
    if (a.http_replies) {
      const bool slow = ec == beast::error::timeout;
      pending_reply_ = http_reply(slow ? 504 : 502, slow ? "upstream_timeout" : "upstream_unreachable",
                                  "the destination cannot be reached", {});
      co_await reply(pending_reply_);
    }
    co_return;
  }
  upstream_.set_option(tcp::no_delay(true), ec);
  client_.set_option(tcp::no_delay(true), ec);
  if (a.http_replies) {
    static constexpr std::string_view established = "HTTP/1.1 200 Connection established\r\n\r\n";
    co_await reply(established);
    if (!client_.is_open()) co_return;
  }
  a.shard->outcomes[idx(edge_outcome::tunnelled)].add();
  a.shard->tunnels_active.add();
  relaying_ = true;
  const tunnel::relay_result r = co_await tunnel::relay(client_, upstream_, w_.pipes, lim.tunnel_idle_timeout);
  relaying_ = false;
  a.shard->tunnels_active.sub();
  a.shard->bytes_up.add(r.up);
  a.shard->bytes_down.add(r.down);
  edge_record rec;
  rec.target.flow = &a.info;
  rec.target.mode = a.info.mode;
  rec.target.host = a.host;
  rec.target.port = a.port;
  rec.target.provider = a.entry;
  rec.target.destination = a.info.destination;
  rec.event = edge_event::tunnel;
  rec.reason = a.after_untrusted ? "untrusted" : a.entry != nullptr ? "not_decrypted" : "uncatalogued";
  rec.bytes_up = r.up;
  rec.bytes_down = r.down;
  rec.started_at = a.started_at;
  rec.duration = clock::now() - a.start;
  if (e.settings.tunnel_records) e.policy->record(rec);
  if (a.rt->cfg->log.flows) {
    log_line(log_level::info, "tunnel_end")
        .kv("flow", a.info.id)
        .kv("listener", a.info.listener)
        .kv("peer", peer_.to_string())
        .kv("host", a.entry != nullptr ? std::string_view(a.host) : std::string_view("uncatalogued"))
        .kv("reason", rec.reason)
        .kv("bytes_up", r.up)
        .kv("bytes_down", r.down)
        .kv("idle_timeout", r.idle_timeout)
        .ms("duration_ms", rec.duration.count());
  }
}

// ---- absolute-form requests (sessions on forward listeners) ---------------------

namespace listen {

asio::awaitable<forward_decision> route_forward(const edge_runtime& e, worker& w, unsigned listener, flow_info& info,
                                                std::string_view target, std::string_view proxy_authorization,
                                                tcp::socket& client, clock::time_point deadline) {
  forward_decision d;
  edge_shard& shard = e.stats->shard(w.index);
  const auto refuse = [&](edge_refusal r, unsigned status, std::string message, std::vector<std::string> rules = {}) {
    shard.refusals[idx(r)].add();
    shard.outcomes[idx(edge_outcome::refused)].add();
    d.refusal = local_reply(status, to_string(r), message, rules);
    if (r == edge_refusal::auth) {
      const auto& cfg = w.rt->cfg->listeners[listener];
      d.refusal.headers.push_back(
          {"Proxy-Authenticate", "Basic realm=\"" + cfg.proxy_auth.value_or(proxy_auth_config{}).realm + "\""});
    }
    edge_record rec;
    rec.target.flow = &info;
    rec.target.mode = listener_mode::forward;
    rec.target.host = info.host;
    rec.target.provider = info.host.empty() ? nullptr : e.providers->find(info.host);
    rec.event = edge_event::refused;
    rec.reason = to_string(r);
    rec.rules = std::move(rules);
    rec.started_at = std::chrono::system_clock::now();
    if (r != edge_refusal::auth && r != edge_refusal::bad_request) e.policy->record(rec);
  };
  if (const auto& users = e.users[listener]) {
    const auto tenant = users->check(proxy_authorization);
    if (!tenant) {
      refuse(edge_refusal::auth, 407, proxy_authorization.empty() ? "proxy authentication required" : "proxy credentials not accepted");
      co_return d;
    }
    info.proxy_tenant = *tenant;
  }
  authority a;
  std::string origin;
  if (!parse_absolute_http(target, a, origin)) {
    refuse(edge_refusal::bad_request, 400, "a forward proxy takes CONNECT host:port or an absolute http:// URL");
    co_return d;
  }
  info.host = a.host;
  if (!e.guard.port_allowed(a.port)) {
    refuse(edge_refusal::port, 403, std::string(refusal_message(edge_refusal::port)));
    co_return d;
  }
  const catalogue_entry* entry = a.ip_literal ? nullptr : e.providers->find(a.host);
  if (entry == nullptr && e.settings.refuse_unknown_hosts) {
    refuse(edge_refusal::unknown_host, 403, std::string(refusal_message(edge_refusal::unknown_host)));
    co_return d;
  }
  if (entry != nullptr) {
    edge_target t;
    t.flow = &info;
    t.mode = listener_mode::forward;
    t.host = a.host;
    t.port = a.port;
    t.provider = entry;
    const edge_decision pd = e.policy->decide(t);
    if (pd.refuse) {
      refuse(edge_refusal::policy, 403, pd.reason.empty() ? std::string(refusal_message(edge_refusal::policy)) : pd.reason,
             pd.rules);
      co_return d;
    }
  }
  boost::system::error_code ec;
  const auto local = client.local_endpoint(ec).address();
  const auto ports = own_ports(w);
  const auto pinned = co_await pin_destination(e.guard, a.host, a.port, local, ports, deadline);
  if (!pinned.ok) {
    if (pinned.refused != refusal::none) {
      const edge_refusal r = from_refusal(pinned.refused);
      refuse(r, 403, std::string(refusal_message(r)));
    } else {
      refuse(edge_refusal::resolve, pinned.timeout ? 504 : 502, pinned.detail);
    }
    co_return d;
  }
  info.destination = endpoint_text(pinned.address, pinned.port);
  d.target = make_edge_target(e, a.host, a.port, false, pinned.address.to_string(), pinned.port);
  d.route = entry != nullptr ? &e.route_for(*entry, origin) : &e.uninspected;
  d.origin = std::move(origin);
  shard.outcomes[idx(edge_outcome::forwarded)].add();
  co_return d;
}

}  // namespace listen
}  // namespace customs::daemon
