#include "daemon/session.hpp"

#include "daemon/dialect/dialect.hpp"
#include "daemon/http_util.hpp"
#include "daemon/listen/edge.hpp"
#include "daemon/listen/edge_runtime.hpp"
#include "daemon/log.hpp"
#include "daemon/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <charconv>
#include <span>

namespace customs::daemon {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

namespace {
constexpr std::size_t rbuf_size = 16 * 1024;
constexpr auto tok = asio::as_tuple(asio::use_awaitable);
}  // namespace

// ---- pending filter decisions ------------------------------------------------

namespace detail {

// Lives on the flow's worker: the posted continuation sets `result` (or
// `abandoned`) and wakes the waiting flow by cancelling the timer.
struct pending_decision {
  // The waiting flow's timer (in its coroutine frame) while it waits; only
  // touched on the worker's thread.
  asio::steady_timer* timer = nullptr;
  std::optional<request_status> result;
  bool abandoned = false;
  // The flow no longer waits for this decision (decided, failed, or the filter
  // answered without going pending): posted work is dropped.
  bool closed = false;
  void wake() {
    if (timer != nullptr) timer->cancel();
  }
};

struct resume_target {
  resume_target(std::shared_ptr<post_gate> g, std::shared_ptr<pending_decision> w, std::shared_ptr<request_state> r)
      : gate(std::move(g)), wait(std::move(w)), keep(std::move(r)) {}
  ~resume_target() {
    if (called.exchange(true)) return;
    // Every handle is gone and nobody decided: fail the flow rather than hang it.
    (void)gate->post([w = std::move(wait)] {
      if (!w->result) {
        w->abandoned = true;
        w->wake();
      }
    });
  }
  std::shared_ptr<post_gate> gate;  // a closed gate (server gone) drops the call
  std::shared_ptr<pending_decision> wait;
  std::shared_ptr<request_state> keep;  // the state a filter may still write to
  std::atomic<bool> called{false};
};

}  // namespace detail

void request_resume::operator()(request_status decision) const {
  if (!target_ || target_->called.exchange(true)) return;
  (void)target_->gate->post([w = target_->wait, decision] {
    if (w->result || w->abandoned) return;
    if (decision == request_status::pending) w->abandoned = true;  // not a decision
    else w->result = decision;
    w->wake();
  });
}

void request_resume::post(std::function<void()> fn) const {
  if (!target_ || !fn) return;
  (void)target_->gate->post([w = target_->wait, fn = std::move(fn)] {
    if (w->result || w->abandoned || w->closed) return;
    fn();
  });
}

// ---- one flow ------------------------------------------------------------------

struct flow {
  std::shared_ptr<const runtime> rt;
  const route_runtime* route = nullptr;
  // Where the request goes: the route's upstream, or (edge listeners) the
  // intercepted host or forwarded URL's destination (own_up).
  const upstream_target* up = nullptr;
  upstream_target own_up;
  std::string origin;  // edge listeners: the origin-form target sent upstream
  route_metrics* stats = nullptr;
  flow_info info;
  dialect api = dialect::openai;
  std::vector<std::unique_ptr<filter>> filters;
  std::shared_ptr<request_state> req;
  http::verb method = http::verb::unknown;
  unsigned version = 11;
  std::string path;  // target without the query, for logs
  clock::time_point start;
  clock::time_point deadline;
  std::chrono::system_clock::time_point started_at;
  clock::time_point upstream_sent;
  failure why = failure::none;
  flow_outcome outcome = flow_outcome::relayed;
  unsigned status = 0;  // sent to the client
  bool head_sent = false;
  bool stream_cut = false;
  bool keep_alive = true;
  std::uint64_t bytes_in = 0, bytes_out = 0, up_out = 0, up_in = 0, events = 0;
  std::chrono::nanoseconds ttfb{-1}, up_ttfb{-1};
  std::vector<header_field> add_headers;  // from every phase, for the client's response
  std::string detail;                     // failure detail for the log
  std::uint64_t event_index = 0;
  bool finished = false;  // finish() ran

  void fail(failure f, std::string d = {}) {
    if (why == failure::none) {
      why = f;
      outcome = flow_outcome::failed;
      detail = std::move(d);
    }
  }
};

namespace {

unsigned status_for(failure f) {
  switch (f) {
    case failure::bad_request: return 400;
    case failure::header_too_large: return 431;
    case failure::header_timeout: return 408;
    case failure::body_too_large: return 413;
    case failure::unknown_route: return 404;
    case failure::upstream_unreachable: return 502;
    case failure::upstream_timeout: return 504;
    case failure::upstream_bad_response: return 502;
    case failure::upstream_reset: return 502;
    case failure::stream_gap_timeout: return 504;
    case failure::flow_timeout: return 504;
    case failure::event_too_large: return 502;
    case failure::response_too_large: return 502;
    case failure::filter_error: return 500;
    case failure::filter_timeout: return 504;
    case failure::draining: return 503;
    case failure::target_too_long: return 414;
    case failure::trailer_too_large: return 431;
    case failure::chunk_extension_too_large: return 400;
    case failure::bad_framing: return 400;
    case failure::unsupported_coding: return 501;
    case failure::internal_error: return 500;
    case failure::client_gone:
    case failure::none:
    case failure::count_: break;
  }
  return 500;
}

std::string_view message_for(failure f) {
  switch (f) {
    case failure::bad_request: return "customs: malformed request";
    case failure::header_too_large: return "customs: request headers too large";
    case failure::header_timeout: return "customs: request not received in time";
    case failure::body_too_large: return "customs: request body too large";
    case failure::unknown_route: return "customs: no route for this path";
    case failure::upstream_unreachable: return "customs: upstream unreachable";
    case failure::upstream_timeout: return "customs: upstream did not answer in time";
    case failure::upstream_bad_response: return "customs: upstream sent an invalid response";
    case failure::upstream_reset: return "customs: upstream closed the connection";
    case failure::stream_gap_timeout: return "customs: upstream stream stalled";
    case failure::flow_timeout: return "customs: request took too long";
    case failure::event_too_large: return "customs: upstream event too large";
    case failure::response_too_large: return "customs: upstream response too large to inspect";
    case failure::filter_error: return "customs: internal error";
    case failure::filter_timeout: return "customs: decision not made in time";
    case failure::draining: return "customs: shutting down";
    case failure::target_too_long: return "customs: request target too long";
    case failure::trailer_too_large: return "customs: request trailers too large";
    case failure::chunk_extension_too_large: return "customs: chunk extensions too large";
    case failure::bad_framing: return "customs: ambiguous or malformed request framing";
    case failure::unsupported_coding: return "customs: transfer coding not implemented";
    case failure::internal_error: return "customs: internal error";
    default: return "customs: error";
  }
}

std::string code_for(failure f) { return "customs_" + std::string(to_string(f)); }

std::chrono::nanoseconds since(clock::time_point t) { return clock::now() - t; }

bool is_disconnect(const boost::system::error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == http::error::end_of_stream ||
         ec == http::error::partial_message || ec == asio::ssl::error::stream_truncated ||
         ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor;
}

// Runs one filter phase; an exception fails the flow.
template <class F>
bool guarded(flow& f, const char* phase, F&& call) noexcept {
  try {
    call();
    return true;
  } catch (const std::exception& e) {
    log_line(log_level::error, "filter_error").kv("flow", f.info.id).kv("phase", phase).kv("what", e.what());
  } catch (...) {
    log_line(log_level::error, "filter_error").kv("flow", f.info.id).kv("phase", phase);
  }
  f.fail(failure::filter_error, phase);
  return false;
}

void merge_headers(std::vector<header_field>& into, std::vector<header_field>&& from) {
  for (auto& h : from) into.push_back(std::move(h));
}

}  // namespace

// ---- session -------------------------------------------------------------------

namespace {
any_stream client_stream(tcp::socket socket, const std::shared_ptr<asio::ssl::context>& tls) {
  return tls ? any_stream(beast::tcp_stream(std::move(socket)), *tls) : any_stream(beast::tcp_stream(std::move(socket)));
}
}  // namespace

session::session(worker& w, tcp::socket socket, unsigned listener, std::shared_ptr<asio::ssl::context> tls)
    : session(w, client_stream(std::move(socket), tls), listener, tls, std::nullopt, false) {}

session::session(worker& w, any_stream client, unsigned listener, std::shared_ptr<asio::ssl::context> tls,
                 edge_binding bound)
    : session(w, std::move(client), listener, std::move(tls), std::move(bound), true) {}

session::session(worker& w, any_stream client, unsigned listener, std::shared_ptr<asio::ssl::context> tls,
                 std::optional<edge_binding> bound, bool handshaken)
    : w_(w),
      tls_ctx_(std::move(tls)),
      client_(std::move(client)),
      listener_(listener),
      rbuf_(new char[rbuf_size]),
      client_wd_(client_.get_executor(), client_.tcp().socket()),
      handshaken_(handshaken),
      bound_(std::move(bound)) {
  boost::system::error_code ec;
  auto ep = client_.tcp().socket().remote_endpoint(ec);
  if (!ec) {
    peer_ = ep.address();
    peer_port_ = ep.port();
    peer_ip_ = peer_.to_string();
  }
  client_.tcp().socket().set_option(tcp::no_delay(true), ec);
  head_.reserve(1024);
  payload_.reserve(rbuf_size + 64);
  upstream_head_.reserve(2048);
  registration_ = w_.sessions.insert(w_.sessions.end(), this);
  w_.shard.connections_active.add();
  w_.shard.connections_accepted.add();
}

session::~session() {
  w_.sessions.erase(registration_);
  w_.shard.connections_active.sub();
  client_.close();
}

void session::close_if_idle() {
  closing_ = true;
  if (idle_) client_.close();
}

void session::force_close() {
  closing_ = true;
  forced_ = true;
  client_.close();
  if (upstream_ != nullptr) upstream_->stream.close();
  if (wait_) wait_->wake();
}

clock::time_point session::until(const flow& f, std::chrono::milliseconds d) const {
  const auto t = clock::now() + d;
  return t < f.deadline ? t : f.deadline;
}

namespace {

// Logs an exception caught on a worker and counts it.
void report_internal_error(worker& w, const std::exception_ptr& e, std::string_view where,
                           std::string_view flow_id = {}) noexcept {
  w.shard.internal_errors.add();
  try {
    log_line line(log_level::error, "internal_error");
    line.kv("where", where);
    if (!flow_id.empty()) line.kv("flow", flow_id);
    try {
      if (e) std::rethrow_exception(e);
    } catch (const std::exception& x) {
      line.kv("what", x.what());
    } catch (...) {
      line.kv("what", "unknown exception");
    }
  } catch (...) {
    // Nothing is left to report with.
  }
}

// Reads a message head into `buf` until the scanner finds it complete and
// checked, then parses it with `parser` (Beast); the bytes of the body that
// came with it stay in `buf`. Deadlines are the caller's (watchdogs).
template <class Stream, class Parser>
asio::awaitable<boost::system::error_code> read_head(Stream& stream, beast::flat_buffer& buf, Parser& parser,
                                                     head_scanner& scanner, std::size_t& head_bytes) {
  for (;;) {
    const auto st = scanner.scan(std::string_view(static_cast<const char*>(buf.data().data()), buf.size()));
    if (st == head_scanner::status::failed) co_return make_error_code(scanner.error());
    if (st == head_scanner::status::complete) {
      boost::system::error_code ec;
      parser.eager(false);
      const std::size_t used = parser.put(asio::buffer(buf.data().data(), scanner.head_bytes()), ec);
      buf.consume(used);
      head_bytes += used;
      // The head is complete: Beast wanting more means it read it differently.
      if (ec == http::error::need_more) ec = boost::system::errc::make_error_code(boost::system::errc::protocol_error);
      co_return ec;
    }
    const std::size_t room = buf.max_size() - buf.size();
    if (room == 0) co_return make_error_code(framing_error::head_too_large);
    auto space = buf.prepare(std::min<std::size_t>(room, 4096));
    auto [ec, n] = co_await stream.async_read_some(space, tok);
    buf.commit(n);
    if (ec == asio::error::eof) {
      // As Beast reports it: closed between messages, or inside one.
      co_return buf.size() == 0 ? http::error::end_of_stream : http::error::partial_message;
    }
    if (ec) co_return ec;
  }
}

}  // namespace

// Ends a flow that serve_one's coroutine leaves without having ended it: an
// exception, or the coroutine destroyed with its io_context at shutdown. The
// flow still reaches on_flow_end (its closing audit record).
struct flow_closer {
  session& s;
  flow& f;
  flow_closer(session& se, flow& fl) : s(se), f(fl) {}
  flow_closer(const flow_closer&) = delete;
  flow_closer& operator=(const flow_closer&) = delete;
  ~flow_closer() {
    if (f.finished) return;
    const bool shutdown = s.w_.stopping || s.forced_ || s.w_.draining;
    if (!shutdown) s.w_.shard.internal_errors.add();
    f.fail(shutdown ? failure::draining : failure::internal_error, "flow abandoned");
    f.stream_cut = f.stream_cut || f.head_sent;
    s.finish(f);
  }
};

asio::awaitable<void> run_session(worker& w, tcp::socket socket, unsigned listener,
                                  std::shared_ptr<asio::ssl::context> tls, [[maybe_unused]] connection_slot slot) {
  std::exception_ptr error;
  try {
    session s(w, std::move(socket), listener, std::move(tls));
    co_await s.run();
  } catch (...) {
    error = std::current_exception();
  }
  if (error) report_internal_error(w, error, "session");
}

asio::awaitable<void> run_session(worker& w, any_stream client, unsigned listener,
                                  std::shared_ptr<asio::ssl::context> tls, edge_binding bound, [[maybe_unused]] connection_slot slot) {
  std::exception_ptr error;
  try {
    session s(w, std::move(client), listener, std::move(tls), std::move(bound));
    co_await s.run();
  } catch (...) {
    error = std::current_exception();
  }
  if (error) report_internal_error(w, error, "session");
}

asio::awaitable<void> session::run() {
  if (auto* tls = client_.tls(); tls != nullptr && !handshaken_) {
    client_.tcp().expires_after(w_.rt->cfg->limits.header_timeout);
    auto [ec] = co_await tls->async_handshake(asio::ssl::stream_base::server, tok);
    if (ec) {
      log_line(log_level::debug, "tls_handshake_failed").kv("peer", peer_ip_).kv("error", ec.message());
      co_return;
    }
    client_.tcp().expires_never();  // from here on: client_wd_
    client_subject_ = peer_subject(tls->native_handle());
  }
  while (!closing_) {
    const bool keep = co_await serve_one();
    if (!keep) break;
  }
}

asio::awaitable<bool> session::serve_one() {
  // The read buffer's bound follows the limits of the snapshot in use.
  buf_.max_size(std::max(read_buffer_bytes(request_framing(w_.rt->cfg->limits)), buf_.size()));
  // Wait for the first byte of the next request: idle until then.
  if (buf_.size() == 0) {
    idle_ = true;
    if (w_.draining || closing_) co_return false;
    const limits_config& idle_lim = w_.rt->cfg->limits;
    client_wd_.expires_at(clock::now() + (first_request_ ? idle_lim.header_timeout : idle_lim.idle_timeout));
    auto space = buf_.prepare(std::min<std::size_t>(4096, buf_.max_size()));
    auto [ec, n] = co_await client_.async_read_some(space, tok);
    if (ec) co_return false;  // closed, reset, idle timeout or drained: nothing to answer
    buf_.commit(n);
  }
  idle_ = false;
  first_request_ = false;
  // The snapshot of this request: taken after the idle wait, so that a reload
  // in between applies.
  std::shared_ptr<const runtime> rt = w_.rt;
  const limits_config& lim = rt->cfg->limits;

  flow f;
  f.rt = rt;
  f.stats = rt->unrouted;
  f.start = clock::now();
  f.started_at = std::chrono::system_clock::now();
  f.deadline = f.start + lim.flow_timeout;
  f.info.id = w_.next_flow_id();
  f.info.listener = rt->cfg->listeners[listener_].name;
  f.info.peer = peer_;
  f.info.peer_port = peer_port_;
  f.info.client_tls = client_.is_tls();
  f.info.client_subject = client_subject_;
  f.info.worker = w_.index;
  f.info.mode = rt->cfg->listeners[listener_].mode;
  if (bound_) {
    f.info.host = bound_->host;
    f.info.destination = bound_->destination;
    f.info.proxy_tenant = bound_->proxy_tenant;
  }
  w_.shard.flows_active.add();
  // From here on the flow ends through finish(), whatever happens: no
  // exception leaves this coroutine with the flow unrecorded.
  flow_closer closer(*this, f);
  std::exception_ptr error;
  bool keep = false;
  try {
    keep = co_await handle(f);
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    co_await fail_internal(f, error);
    keep = false;
  }
  co_return keep;
}

asio::awaitable<void> session::fail_internal(flow& f, std::exception_ptr error) {
  report_internal_error(w_, error, "flow", f.info.id);
  // What the failed step held may be gone with its frame.
  if (upstream_ != nullptr) upstream_ = nullptr;
  wait_.reset();
  f.fail(failure::internal_error, "exception");
  f.why = failure::internal_error;
  f.outcome = flow_outcome::failed;
  f.keep_alive = false;
  closing_ = true;
  if (!f.finished) {
    if (f.bytes_out == 0) {
      // Nothing of the answer left yet: a 500 in the route's dialect.
      head_.clear();
      f.head_sent = false;
      co_await send_error(f, failure::internal_error, "exception");
    } else {
      // The answer started: the client sees it cut (no last chunk, or fewer
      // bytes than announced).
      f.stream_cut = true;
    }
    finish(f);
  }
  client_.close();
}

failure session::client_read_failure(const boost::system::error_code& ec) {
  framing_error e = framing_error_of(ec);
  if (e == framing_error::read_buffer_full) {
    e = classify_full_buffer(std::string_view(static_cast<const char*>(buf_.data().data()), buf_.size()));
  }
  if (e != framing_error::none) w_.shard.framing_refused(e, wire_side::client);
  switch (e) {
    case framing_error::head_too_large:
    case framing_error::too_many_fields:
    case framing_error::field_too_large:
      return failure::header_too_large;
    case framing_error::target_too_long: return failure::target_too_long;
    case framing_error::trailer_too_large: return failure::trailer_too_large;
    case framing_error::chunk_extension_too_large: return failure::chunk_extension_too_large;
    case framing_error::unsupported_coding: return failure::unsupported_coding;
    case framing_error::bad_line_ending:
    case framing_error::obs_fold:
    case framing_error::bad_transfer_encoding:
    case framing_error::bad_host:
    case framing_error::bad_content_length:
    case framing_error::bad_chunk:
      return failure::bad_framing;
    case framing_error::read_buffer_full:
    case framing_error::none:
    case framing_error::count_:
      break;
  }
  if (ec == http::error::body_limit) {
    w_.shard.limit_hits[static_cast<std::size_t>(limit_key::request_body_bytes)].add();
    return failure::body_too_large;
  }
  if (ec == beast::error::timeout) return failure::header_timeout;
  if (is_disconnect(ec)) return failure::client_gone;
  if (ec == boost::system::errc::not_enough_memory) return failure::internal_error;
  return failure::bad_request;
}

asio::awaitable<bool> session::handle(flow& f) {
  const std::shared_ptr<const runtime>& rt = f.rt;
  const limits_config& lim = rt->cfg->limits;
  const framing_limits client_limits = request_framing(lim);
  request_parser parser(client_limits);
  client_wd_.expires_at(f.start + lim.header_timeout);
  std::size_t head_bytes = 0;
  head_scanner scanner(client_limits, true);
  const auto hec_read = co_await read_head(client_, buf_, parser, scanner, head_bytes);
  const auto hec = client_wd_.fired() && hec_read ? boost::system::error_code(beast::error::timeout) : hec_read;
  f.bytes_in = head_bytes;
  auto& msg = parser.get();
  f.method = msg.method();
  f.version = msg.version();
  {
    const std::string_view target(msg.target().data(), msg.target().size());
    f.path = std::string(target.substr(0, target.find('?')));
    if (f.path.size() > 256) f.path.resize(256);
    if (!hec || hec == http::error::body_limit) {
      if (bound_) {
        bind_edge_route(f, *rt, target);
      } else if (f.info.mode == listener_mode::reverse) {
        f.route = rt->match(target);
        if (f.route != nullptr) {
          f.up = &f.route->upstream;
          f.origin = std::string(target);
        }
      }
      if (f.route != nullptr) {
        f.stats = f.route->stats;
        f.api = f.route->cfg->api;
        f.info.route = f.route->cfg;
      }
    }
  }

  if (hec == http::error::body_limit && f.route != nullptr) {
    // The route is known: its filters see this flow end too.
    (void)make_filters(f);
  }
  if (hec) {
    f.keep_alive = false;
    const failure why = client_read_failure(hec);
    f.fail(why, hec.message());
    if (f.why != failure::client_gone) co_await send_error(f, f.why, hec.message());
    finish(f);
    co_return false;
  }
  f.keep_alive = msg.keep_alive();
  const bool has_body = parser.chunked() || parser.content_length().value_or(0) > 0;

  if (!bound_ && f.info.mode == listener_mode::forward) {
    // An absolute-form request on a forward listener: its own destination.
    local_response refusal;
    const std::string_view auth(msg[http::field::proxy_authorization].data(), msg[http::field::proxy_authorization].size());
    if (!co_await route_forward_request(f, std::string_view(msg.target().data(), msg.target().size()), auth, refusal)) {
      if (has_body) f.keep_alive = false;
      f.outcome = flow_outcome::answered;
      co_await send_local(f, refusal);
      finish(f);
      co_return f.keep_alive;
    }
  }

  if (f.route == nullptr || !safe_target(f.origin)) {
    // Answered without reading the body: the connection cannot be reused when
    // one follows.
    if (has_body) f.keep_alive = false;
    f.fail(f.route == nullptr ? failure::unknown_route : failure::bad_request);
    co_await send_error(f, f.why, f.route == nullptr ? "no route" : "target not allowed");
    finish(f);
    co_return f.keep_alive;
  }

  // The route's filters exist from here on, so that on_flow_end sees every
  // outcome below, rejected bodies included.
  if (!make_filters(f)) {
    f.keep_alive = f.keep_alive && !has_body;
    co_await send_error(f, f.why, "filter");
    finish(f);
    co_return f.keep_alive;
  }

  if (!parser.is_done()) {
    if (iequals(msg[http::field::expect], "100-continue")) {
      static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      client_wd_.expires_at(until(f, lim.send_timeout));
      auto [wec, wn] = co_await asio::async_write(client_, asio::buffer(cont.data(), cont.size()), tok);
      if (wec) {
        f.fail(failure::client_gone, wec.message());
        finish(f);
        co_return false;
      }
    }
    client_wd_.expires_at(until(f, lim.body_timeout));
    auto [bec_read, body_bytes] = co_await http::async_read(client_, buf_, parser, tok);
    const auto bec = client_wd_.fired() && bec_read ? boost::system::error_code(beast::error::timeout) : bec_read;
    f.bytes_in += body_bytes;
    if (bec) {
      f.keep_alive = false;
      f.fail(client_read_failure(bec), bec.message());
      if (f.why != failure::client_gone) co_await send_error(f, f.why, bec.message());
      finish(f);
      co_return false;
    }
  }

  // Phase 1: the request, through the chain.
  f.req = std::make_shared<request_state>();
  request_state& req = *f.req;
  req.flow = &f.info;
  req.method = f.method;
  req.version = f.version;
  req.target = std::string(msg.target());
  if (f.info.mode == listener_mode::reverse) {
    map_target(req.target, f.route->cfg->prefix, f.route->upstream.url.base_path, req.upstream_target);
  } else {
    req.upstream_target = f.origin;
  }
  req.headers = std::move(static_cast<http::fields&>(msg.base()));
  req.body = std::move(msg.body());

  const bool proceed = co_await run_request_phase(f);
  if (!proceed) {
    finish(f);
    co_return f.keep_alive && !closing_;
  }

  // Upstream exchange: connection, request, response head.
  build_upstream_head(f);
  std::optional<response_parser> rp;
  std::unique_ptr<upstream_connection> conn;
  const failure ex = co_await open_exchange(f, rp, conn);
  if (ex != failure::none) {
    f.fail(ex, f.detail);
    co_await send_error(f, f.why, f.detail);
    finish(f);
    co_return f.keep_alive && !closing_;
  }
  upstream_ = conn.get();
  auto& res = rp->get();
  const unsigned up_status = res.result_int();
  const std::string_view content_type(res[http::field::content_type].data(), res[http::field::content_type].size());

  // Phase 2: the response head.
  response_head_state head;
  head.flow = &f.info;
  head.status = up_status;
  head.headers = &res.base();
  const bool no_body = f.method == http::verb::head || up_status == 204 || up_status == 304;
  head.kind = no_body ? body_kind::none : is_event_stream(content_type) ? body_kind::event_stream : body_kind::whole;
  bool inspect = false;
  for (auto& flt : f.filters) {
    response_head_status hs = response_head_status::proceed;
    if (!guarded(f, "response_head", [&] { hs = flt->on_response_head(head); })) break;
    inspect = inspect || hs == response_head_status::inspect_body;
  }
  merge_headers(f.add_headers, std::move(head.add_headers));
  if (f.why != failure::none) {
    conn->stream.close();
    upstream_ = nullptr;
    co_await send_error(f, f.why, f.detail);
    finish(f);
    co_return false;
  }

  const bool client_11 = f.version >= 11;
  bool reusable = false;
  if (head.kind == body_kind::none) {
    // HEAD keeps the upstream's Content-Length: it describes the GET answer.
    build_head(f, up_status, &res.base(), f.add_headers, framing::none, 0);
    if (f.method == http::verb::head && res.has_content_length()) {
      head_.insert(head_.size() - 2, "Content-Length: " + std::string(res[http::field::content_length]) + "\r\n");
    }
    if (co_await send(f, {})) f.outcome = flow_outcome::relayed;
    reusable = rp->is_done() && res.keep_alive();
  } else if (head.kind == body_kind::event_stream) {
    const framing out = client_11 ? framing::chunked : framing::until_close;
    build_head(f, up_status, &res.base(), f.add_headers, out, 0);
    co_await relay_events(f, *conn, *rp, out);
    reusable = f.why == failure::none && !f.stream_cut && rp->is_done() && res.keep_alive();
  } else if (inspect) {
    std::string body;
    if (co_await read_whole(f, *conn, *rp, body)) {
      response_body_state bs;
      bs.flow = &f.info;
      bs.status = up_status;
      bs.body = std::move(body);
      for (auto& flt : f.filters) {
        if (!guarded(f, "response_body", [&] { flt->on_response_body(bs); })) break;
      }
      reusable = rp->is_done() && res.keep_alive();
      if (f.why == failure::none) {
        merge_headers(f.add_headers, std::move(bs.add_headers));
        // A filter that answers in customsd's name (a block, a changed status)
        // sends none of the upstream's headers: not its Server, nor its
        // request ids, caching or encodings, which describe another answer.
        const bool local = bs.local_answer || bs.status != up_status;
        build_head(f, bs.status, local ? nullptr : &res.base(), f.add_headers, framing::content_length,
                   bs.body.size());
        (void)co_await send(f, bs.body);
      } else {
        co_await send_error(f, f.why, f.detail);
      }
    } else {
      co_await send_error(f, f.why, f.detail);
    }
  } else {
    framing out = framing::chunked;
    if (res.has_content_length()) out = framing::content_length;
    else if (!client_11) out = framing::until_close;
    build_head(f, up_status, &res.base(), f.add_headers, out, rp->content_length().value_or(0));
    co_await relay_bytes(f, *conn, *rp, out);
    reusable = f.why == failure::none && rp->is_done() && res.keep_alive();
  }

  upstream_ = nullptr;
  if (reusable && conn->buffer.size() == 0 && !closing_) {
    w_.pools.pool(f.up->pool_key).put(std::move(conn), clock::now(), lim.upstream_idle_per_route);
  } else {
    conn->stream.close();
  }
  finish(f);
  co_return f.keep_alive && !closing_;
}

void session::bind_edge_route(flow& f, const runtime& rt, std::string_view target) {
  if (!rt.edge) return;
  const catalogue_entry* e = rt.edge->providers->find(bound_->host);
  if (e == nullptr) return;  // no longer in the catalogue (a reload): 404
  f.route = &rt.edge->route_for(*e, target);
  f.up = &bound_->target;
  f.origin = std::string(target);
}

asio::awaitable<bool> session::route_forward_request(flow& f, std::string_view target,
                                                     std::string_view proxy_authorization, local_response& refusal) {
  const edge_runtime& e = *f.rt->edge;
  const auto now = clock::now();
  listen::forward_decision d = co_await listen::route_forward(
      e, w_, listener_, f.info, target, proxy_authorization, client_.tcp().socket(),
      now + f.rt->cfg->limits.upstream_connect_timeout < f.deadline ? now + f.rt->cfg->limits.upstream_connect_timeout
                                                                    : f.deadline);
  if (d.route == nullptr) {
    refusal = std::move(d.refusal);
    co_return false;
  }
  f.route = d.route;
  f.stats = f.route->stats;
  f.api = f.route->cfg->api;
  f.info.route = f.route->cfg;
  f.own_up = std::move(d.target);
  f.up = &f.own_up;
  f.origin = std::move(d.origin);
  co_return true;
}

bool session::make_filters(flow& f) {
  f.filters.reserve(f.route->filters.size());
  for (const auto& make : f.route->filters) {
    std::unique_ptr<filter> made;
    if (!guarded(f, "create", [&] { made = make(f.info); })) return false;
    if (made) f.filters.push_back(std::move(made));
  }
  return true;
}

asio::awaitable<bool> session::run_request_phase(flow& f) {
  request_state& req = *f.req;
  for (auto& flt : f.filters) {
    auto wait = std::make_shared<detail::pending_decision>();
    request_status st = request_status::proceed;
    {
      request_resume resume(std::make_shared<detail::resume_target>(w_.gate, wait, f.req));
      if (!guarded(f, "request", [&] { st = flt->on_request(req, resume); })) {
        co_await send_error(f, f.why, "filter");
        co_return false;
      }
      // Our handle goes here; if the filter kept none, the decision is abandoned.
    }
    if (st != request_status::pending) wait->closed = true;
    if (st == request_status::pending) {
      wait_ = wait;
      // The continuation is posted to this thread, so it cannot run before the
      // wait below has started.
      asio::steady_timer timer(client_.get_executor());
      wait->timer = &timer;
      while (!wait->result && !wait->abandoned && !forced_) {
        timer.expires_at(f.deadline);
        auto [ec] = co_await timer.async_wait(tok);
        if (!ec) break;  // the deadline passed
      }
      wait->timer = nullptr;
      wait->closed = true;
      wait_.reset();
      if (wait->result) {
        st = *wait->result;
      } else {
        f.fail(wait->abandoned ? failure::filter_error : forced_ ? failure::draining : failure::filter_timeout,
               "pending request decision");
        co_await send_error(f, f.why, f.detail);
        co_return false;
      }
    }
    if (st == request_status::respond) {
      f.outcome = flow_outcome::answered;
      merge_headers(f.add_headers, std::move(req.response_headers));
      co_await send_local(f, req.response);
      co_return false;
    }
  }
  merge_headers(f.add_headers, std::move(req.response_headers));
  co_return true;
}

void session::build_upstream_head(flow& f) {
  const request_state& req = *f.req;
  const auto& up = *f.up;
  std::string& h = upstream_head_;
  h.clear();
  const auto method = http::to_string(req.method);
  h.append(method.data(), method.size());
  h += ' ';
  h += req.upstream_target;
  h += " HTTP/1.1\r\nHost: ";
  h += up.host_header;
  h += "\r\n";
  const hop_by_hop hop(req.headers);
  std::string_view forwarded_for;
  for (const auto& field : req.headers) {
    if (hop.contains(field)) continue;
    switch (field.name()) {
      case http::field::host:
      case http::field::content_length:
      case http::field::expect:
        continue;
      default:
        break;
    }
    const std::string_view name(field.name_string().data(), field.name_string().size());
    if (iequals(name, "x-forwarded-for")) {
      // Several X-Forwarded-For lines are one list; keep the last (normally only one).
      forwarded_for = std::string_view(field.value().data(), field.value().size());
      continue;
    }
    if (named_in(name, req.upstream_headers)) continue;
    append_header(h, name, std::string_view(field.value().data(), field.value().size()));
  }
  if (f.info.mode == listener_mode::reverse) {
    h += "X-Forwarded-For: ";
    if (!forwarded_for.empty()) {
      h += forwarded_for;
      h += ", ";
    }
    h += peer_ip_;
    h += "\r\n";
  } else if (!forwarded_for.empty()) {
    // A forward proxy or interceptor does not reveal the client's address to
    // the provider; what the client sent itself passes on unchanged.
    append_header(h, "X-Forwarded-For", forwarded_for);
  }
  for (const auto& x : req.upstream_headers) append_header(h, x.name, x.value);
  const bool body_expected = !req.body.empty() || req.method == http::verb::post ||
                             req.method == http::verb::put || req.method == http::verb::patch;
  if (body_expected) {
    char num[24];
    const auto r = std::to_chars(num, num + sizeof num, req.body.size());
    h += "Content-Length: ";
    h.append(num, r.ptr);
    h += "\r\n";
  }
  h += "\r\n";
}

asio::awaitable<failure> session::open_exchange(flow& f, std::optional<response_parser>& p,
                                                std::unique_ptr<upstream_connection>& conn) {
  const limits_config& lim = f.rt->cfg->limits;
  const framing_limits upstream_limits = response_framing(lim);
  const auto& target = *f.up;
  auto& shard = f.stats->shard(w_.index);
  for (int attempt = 0; attempt < 2; ++attempt) {
    conn = w_.pools.pool(target.pool_key).take(clock::now(), lim.upstream_idle_timeout);
    const bool reused = conn != nullptr;
    if (!reused) {
      const auto deadline = until(f, lim.upstream_connect_timeout);
      connect_result cr = co_await connect_upstream(target, deadline);
      if (!cr.conn) {
        f.detail = std::move(cr.detail);
        if (forced_) co_return failure::draining;
        if (cr.error == connect_error::timeout) {
          co_return clock::now() >= f.deadline ? failure::flow_timeout : failure::upstream_timeout;
        }
        co_return failure::upstream_unreachable;
      }
      conn = std::move(cr.conn);
      shard.upstream_connects.add();
    } else {
      shard.upstream_reuses.add();
    }
    upstream_ = conn.get();
    ++conn->requests;
    const bool retry_allowed = reused && attempt == 0;
    conn->buffer.max_size(std::max(read_buffer_bytes(upstream_limits), conn->buffer.size()));

    f.upstream_sent = clock::now();
    conn->wd->expires_at(until(f, lim.upstream_first_byte_timeout));
    std::array<asio::const_buffer, 2> out{asio::buffer(upstream_head_), asio::buffer(f.req->body)};
    boost::system::error_code wec_io;
    std::size_t wn = conn->stream.write_now(out, wec_io);
    if (wec_io == asio::error::would_block || wec_io == asio::error::try_again) wec_io = {};
    if (!wec_io && wn < asio::buffer_size(out)) {
      beast::buffers_suffix<std::array<asio::const_buffer, 2>> rest(out);
      rest.consume(wn);
      auto [e, more] = co_await asio::async_write(conn->stream, rest, tok);
      wec_io = e;
      wn += more;
    }
    const auto wec = wec_io && conn->wd->fired() ? boost::system::error_code(beast::error::timeout) : wec_io;
    f.up_out += wn;
    if (wec) {
      conn->stream.close();
      upstream_ = nullptr;
      if (retry_allowed && !forced_ && wec != beast::error::timeout) continue;  // stale pooled connection
      f.detail = "send: " + wec.message();
      if (forced_) co_return failure::draining;
      if (wec == beast::error::timeout) co_return clock::now() >= f.deadline ? failure::flow_timeout : failure::upstream_timeout;
      co_return reused ? failure::upstream_reset : failure::upstream_unreachable;
    }

    // The head; 1xx interim responses (103 Early Hints ...) are skipped.
    for (;;) {
      p.emplace(upstream_limits);
      if (f.method == http::verb::head) p->skip(true);
      head_scanner scanner(upstream_limits, false);
      std::size_t rn = 0;
      const auto rec_io = co_await read_head(conn->stream, conn->buffer, *p, scanner, rn);
      const auto rec = rec_io && conn->wd->fired() ? boost::system::error_code(beast::error::timeout) : rec_io;
      if (rec) {
        conn->stream.close();
        upstream_ = nullptr;
        // A pooled connection the upstream closed just before our request.
        if (retry_allowed && !forced_ && (rec == http::error::end_of_stream || rec == asio::error::connection_reset)) {
          break;
        }
        f.detail = "response head: " + rec.message();
        if (forced_) co_return failure::draining;
        if (const framing_error fe = framing_error_of(rec); fe != framing_error::none) {
          w_.shard.framing_refused(fe, wire_side::upstream);
          co_return failure::upstream_bad_response;
        }
        if (rec == beast::error::timeout) {
          co_return clock::now() >= f.deadline ? failure::flow_timeout : failure::upstream_timeout;
        }
        if (is_disconnect(rec)) co_return failure::upstream_reset;
        co_return failure::upstream_bad_response;
      }
      const unsigned st = p->get().result_int();
      if (st >= 100 && st < 200) {
        if (st == 101) {
          conn->stream.close();
          upstream_ = nullptr;
          f.detail = "upstream switched protocols";
          co_return failure::upstream_bad_response;
        }
        continue;
      }
      f.up_ttfb = since(f.upstream_sent);
      co_return failure::none;
    }
  }
  co_return failure::upstream_reset;
}

void session::build_head(flow& f, unsigned status, const http::fields* upstream,
                         const std::vector<header_field>& add, framing fr, std::uint64_t length) {
  std::string& h = head_;
  h.clear();
  h += "HTTP/1.1 ";
  char num[24];
  auto r = std::to_chars(num, num + sizeof num, status);
  h.append(num, r.ptr);
  h += ' ';
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  if (reason.starts_with("<")) h += "Status";
  else h.append(reason.data(), reason.size());
  h += "\r\n";
  if (upstream != nullptr) {
    const hop_by_hop hop(*upstream);
    for (const auto& field : *upstream) {
      if (hop.contains(field) || field.name() == http::field::content_length) continue;
      const std::string_view name(field.name_string().data(), field.name_string().size());
      if (named_in(name, add)) continue;
      append_header(h, name, std::string_view(field.value().data(), field.value().size()));
    }
  }
  for (const auto& x : add) append_header(h, x.name, x.value);
  append_header(h, "X-Customs-Flow", f.info.id);
  switch (fr) {
    case framing::content_length:
      r = std::to_chars(num, num + sizeof num, length);
      h += "Content-Length: ";
      h.append(num, r.ptr);
      h += "\r\n";
      break;
    case framing::chunked:
      h += "Transfer-Encoding: chunked\r\n";
      break;
    case framing::until_close:
      f.keep_alive = false;
      break;
    case framing::none:
      break;
  }
  if (w_.draining || closing_) f.keep_alive = false;
  if (!f.keep_alive) h += "Connection: close\r\n";
  else if (f.version < 11) h += "Connection: keep-alive\r\n";
  h += "\r\n";
  f.status = status;
  f.head_sent = true;
}

asio::awaitable<bool> session::send(flow& f, std::string_view a, std::string_view b, std::string_view c,
                                    std::string_view d, std::string_view e) {
  std::array<asio::const_buffer, 6> bufs;
  std::size_t n = 0;
  const bool with_head = !head_.empty();
  if (with_head) bufs[n++] = asio::buffer(head_);
  for (std::string_view s : {a, b, c, d, e}) {
    if (!s.empty()) bufs[n++] = asio::buffer(s.data(), s.size());
  }
  if (n == 0) co_return true;
  const limits_config& lim = f.rt->cfg->limits;
  const std::span<const asio::const_buffer> all(bufs.data(), n);
  boost::system::error_code ec;
  std::size_t written = client_.write_now(all, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
  if (!ec && written < asio::buffer_size(all)) {
    beast::buffers_suffix<std::span<const asio::const_buffer>> rest(all);
    rest.consume(written);
    client_wd_.expires_at(until(f, lim.send_timeout));
    auto [wec, more] = co_await asio::async_write(client_, rest, tok);
    ec = wec;
    written += more;
  }
  f.bytes_out += written;
  if (with_head) {
    head_.clear();
    if (f.ttfb.count() < 0) f.ttfb = since(f.start);
  }
  if (ec) {
    f.fail(failure::client_gone, ec.message());
    f.keep_alive = false;
    co_return false;
  }
  co_return true;
}

asio::awaitable<bool> session::send_chunk(flow& f, framing out, std::string_view payload, bool last) {
  static constexpr std::string_view crlf = "\r\n";
  static constexpr std::string_view terminator = "0\r\n\r\n";
  if (out != framing::chunked) co_return co_await send(f, payload);
  std::string_view size_line;
  if (!payload.empty()) {
    auto r = std::to_chars(chunk_size_.data(), chunk_size_.data() + chunk_size_.size() - 2, payload.size(), 16);
    *r.ptr++ = '\r';
    *r.ptr++ = '\n';
    size_line = std::string_view(chunk_size_.data(), static_cast<std::size_t>(r.ptr - chunk_size_.data()));
  }
  co_return co_await send(f, size_line, payload, payload.empty() ? std::string_view{} : crlf,
                          last ? terminator : std::string_view{});
}

bool session::run_event(flow& f, const sse_block& ev, std::size_t from) {
  for (std::size_t i = from; i < f.filters.size(); ++i) {
    event_state st;
    st.flow = &f.info;
    st.event = &ev;
    st.index = f.event_index;
    event_status s = event_status::pass;
    if (!guarded(f, "event", [&] { s = f.filters[i]->on_event(st); })) {
      f.stream_cut = true;
      return false;
    }
    if (s == event_status::pass) continue;
    if (s == event_status::stop) {
      for (const auto& o : st.out) payload_ += o;
      f.stream_cut = true;
      if (f.why == failure::none) f.outcome = flow_outcome::cut;
      return false;
    }
    // replace: each block goes through the rest of the chain.
    if (i + 1 == f.filters.size()) {
      for (const auto& o : st.out) payload_ += o;
      return true;
    }
    sse_parser sub(f.rt->cfg->limits.sse_event_bytes);
    for (const auto& o : st.out) {
      std::string_view rest(o);
      while (!rest.empty()) {
        const auto r = sub.feed(rest);
        rest.remove_prefix(r.consumed);
        if (r.what == sse_parser::status::event) {
          if (!run_event(f, sub.event(), i + 1)) return false;
        } else if (r.what == sse_parser::status::too_large) {
          f.fail(failure::filter_error, "replacement event too large");
          f.stream_cut = true;
          return false;
        }
      }
      if (sub.finish() && !run_event(f, sub.event(), i + 1)) return false;
    }
    return true;
  }
  payload_ += ev.raw;
  return true;
}

bool session::run_stream_end(flow& f) {
  for (std::size_t i = 0; i < f.filters.size(); ++i) {
    stream_end_state st;
    st.flow = &f.info;
    event_status s = event_status::pass;
    if (!guarded(f, "stream_end", [&] { s = f.filters[i]->on_stream_end(st); })) {
      f.stream_cut = true;
      return false;
    }
    for (const auto& o : st.out) payload_ += o;
    if (s == event_status::stop) {
      f.stream_cut = true;
      if (f.why == failure::none) f.outcome = flow_outcome::cut;
      return false;
    }
  }
  return true;
}

void session::upstream_read_failed(flow& f, upstream_connection& c, const boost::system::error_code& ec) {
  framing_error e = framing_error_of(ec);
  if (e == framing_error::read_buffer_full) {
    e = classify_full_buffer(std::string_view(static_cast<const char*>(c.buffer.data().data()), c.buffer.size()));
  }
  if (e != framing_error::none && !forced_) {
    w_.shard.framing_refused(e, wire_side::upstream);
    f.fail(failure::upstream_bad_response, std::string(to_string(e)));
    return;
  }
  f.fail(read_failure(f, ec), ec.message());
}

failure session::read_failure(const flow& f, const boost::system::error_code& ec) const {
  if (ec == beast::error::timeout) {
    return clock::now() >= f.deadline ? failure::flow_timeout : failure::stream_gap_timeout;
  }
  if (forced_) return failure::draining;
  if (is_disconnect(ec)) return failure::upstream_reset;
  return failure::upstream_bad_response;
}

asio::awaitable<void> session::relay_events(flow& f, upstream_connection& c, response_parser& p, framing out) {
  const limits_config& lim = f.rt->cfg->limits;
  if (!sse_ || sse_->max_event_bytes() != lim.sse_event_bytes) sse_.emplace(lim.sse_event_bytes);
  else sse_->reset();
  struct active_stream {
    counter& gauge;
    explicit active_stream(counter& g) : gauge(g) { gauge.add(); }
    ~active_stream() { gauge.sub(); }
  } active(w_.shard.streams_active);
  const unsigned error_status_fallback = 502;
  if (c.buffer.size() == 0 && !p.is_done()) {
    // No body bytes yet: the client gets the head now rather than with the
    // first event.
    if (!co_await send(f, {})) co_return;
  }
  for (;;) {
    boost::system::error_code ec;
    std::size_t got = 0;
    if (!p.is_done()) {
      auto& body = p.get().body();
      body.data = rbuf_.get();
      body.size = rbuf_size;
      // Nothing is read from the upstream before the client took the last write:
      // backpressure.
      c.wd->expires_at(until(f, lim.stream_gap_timeout));
      auto [rec, rn] = co_await http::async_read_some(c.stream, c.buffer, p, tok);
      ec = rec == http::error::need_buffer ? boost::system::error_code{} : rec;
      if (ec && c.wd->fired()) ec = beast::error::timeout;
      got = rbuf_size - p.get().body().size;
    }
    payload_.clear();
    bool stop = false;
    const auto feed = [&](std::size_t n) {
      f.up_in += n;
      std::string_view in(rbuf_.get(), n);
      while (!in.empty() && !stop) {
        const auto r = sse_->feed(in);
        in.remove_prefix(r.consumed);
        if (r.what == sse_parser::status::event) {
          ++f.events;
          stop = !run_event(f, sse_->event(), 0);
          ++f.event_index;
        } else if (r.what == sse_parser::status::too_large) {
          f.fail(failure::event_too_large, "over limits.sse_event_bytes");
          w_.shard.limit_hits[static_cast<std::size_t>(limit_key::sse_event_bytes)].add();
          stop = true;
        }
      }
    };
    feed(got);
    // Chunks that came with the same read are parsed now, without waiting for
    // more input (the parser stops after each chunk), so events that arrived
    // together leave together in one write. Beast's eager mode would instead
    // wait for the next chunk's header before returning.
    while (!stop && !ec && !p.is_done() && c.buffer.size() > 0 && payload_.size() < rbuf_size) {
      auto& body = p.get().body();
      body.data = rbuf_.get();
      body.size = rbuf_size;
      boost::system::error_code pec;
      const std::size_t used = p.put(c.buffer.data(), pec);
      c.buffer.consume(used);
      if (pec == http::error::need_buffer || pec == http::error::need_more) pec = {};
      if (pec) {
        ec = pec;
        break;
      }
      const std::size_t more = rbuf_size - p.get().body().size;
      feed(more);
      if (used == 0 && more == 0) break;  // the rest of an element has not arrived
    }
    bool done = false;
    // The provider's stream ended inside its last event (no blank line after
    // it), which went to the client as it came: whatever customsd sends after
    // it (text the filters still held, an error event) would be read as part
    // of that event, and dropped with it, so a blank line comes first.
    bool tail_open = false;
    if (!stop && !ec && p.is_done()) {
      if (sse_->finish()) {
        ++f.events;
        tail_open = !sse_->event().terminated;
        stop = !run_event(f, sse_->event(), 0);
        ++f.event_index;
      }
      if (!stop) {
        const std::size_t mark = payload_.size();
        stop = !run_stream_end(f);
        if (tail_open && payload_.size() > mark) {
          payload_.insert(mark, "\n\n");
          tail_open = false;
        }
      }
      done = !stop;
    }
    if (!stop && ec) {
      upstream_read_failed(f, c, ec);
      stop = true;
    }
    if (stop) {
      f.stream_cut = true;
      if (f.why != failure::none && f.why != failure::client_gone) {
        // The client's stream ends with the dialect's error event, never with a
        // normal end marker.
        const unsigned st = status_for(f.why);
        if (tail_open) payload_ += "\n\n";
        payload_ += stream_error_event(f.api, st == 0 ? error_status_fallback : st, message_for(f.why),
                                       code_for(f.why));
      }
    }
    const bool last = stop || done;
    if (!payload_.empty() || last || !head_.empty()) {
      if (!co_await send_chunk(f, out, payload_, last)) break;
    }
    if (last) break;
  }
}

asio::awaitable<void> session::relay_bytes(flow& f, upstream_connection& c, response_parser& p, framing out) {
  const limits_config& lim = f.rt->cfg->limits;
  if (c.buffer.size() == 0 && !p.is_done()) {
    if (!co_await send(f, {})) co_return;
  }
  for (;;) {
    boost::system::error_code ec;
    std::size_t got = 0;
    if (!p.is_done()) {
      auto& body = p.get().body();
      body.data = rbuf_.get();
      body.size = rbuf_size;
      c.wd->expires_at(until(f, lim.stream_gap_timeout));
      auto [rec, rn] = co_await http::async_read_some(c.stream, c.buffer, p, tok);
      ec = rec == http::error::need_buffer ? boost::system::error_code{} : rec;
      if (ec && c.wd->fired()) ec = beast::error::timeout;
      got = rbuf_size - p.get().body().size;
    }
    f.up_in += got;
    if (ec) {
      upstream_read_failed(f, c, ec);
      f.keep_alive = false;
      if (got == 0 && !head_.empty() && f.bytes_out == 0) {
        // Nothing of the answer left yet: the client gets the error instead.
        head_.clear();
        f.head_sent = false;
        co_await send_error(f, f.why, f.detail);
        break;
      }
      // Framing cannot carry an error now: the client sees a truncated body
      // (no terminating chunk, or fewer bytes than Content-Length).
      if (got > 0 || !head_.empty()) (void)co_await send_chunk(f, out, std::string_view(rbuf_.get(), got), false);
      break;
    }
    const bool last = p.is_done();
    if (got > 0 || last || !head_.empty()) {
      if (!co_await send_chunk(f, out, std::string_view(rbuf_.get(), got), last)) break;
    }
    if (last) break;
  }
}

asio::awaitable<bool> session::read_whole(flow& f, upstream_connection& c, response_parser& p, std::string& body) {
  const limits_config& lim = f.rt->cfg->limits;
  if (auto len = p.content_length(); len && *len > lim.response_body_bytes) {
    f.fail(failure::response_too_large);
    w_.shard.limit_hits[static_cast<std::size_t>(limit_key::response_body_bytes)].add();
    co_return false;
  }
  while (!p.is_done()) {
    auto& b = p.get().body();
    b.data = rbuf_.get();
    b.size = rbuf_size;
    c.wd->expires_at(until(f, lim.stream_gap_timeout));
    auto [rec_io, rn] = co_await http::async_read_some(c.stream, c.buffer, p, tok);
    const auto rec = rec_io && c.wd->fired() ? boost::system::error_code(beast::error::timeout) : rec_io;
    const std::size_t got = rbuf_size - p.get().body().size;
    f.up_in += got;
    if (body.size() + got > lim.response_body_bytes) {
      f.fail(failure::response_too_large);
      w_.shard.limit_hits[static_cast<std::size_t>(limit_key::response_body_bytes)].add();
      co_return false;
    }
    body.append(rbuf_.get(), got);
    if (rec && rec != http::error::need_buffer) {
      upstream_read_failed(f, c, rec);
      co_return false;
    }
  }
  co_return true;
}

asio::awaitable<void> session::send_error(flow& f, failure why, std::string_view detail) {
  if (why == failure::client_gone) co_return;
  (void)detail;  // in the flow log line, not in the reply
  if (f.head_sent && head_.empty()) {
    // The response started: only the connection can be closed.
    f.keep_alive = false;
    co_return;
  }
  local_response r;
  r.status = status_for(why);
  r.headers.push_back({"Content-Type", "application/json"});
  r.body = error_body(f.api, r.status, message_for(why), code_for(why));
  co_await send_local(f, r);
}

asio::awaitable<void> session::send_local(flow& f, const local_response& r) {
  std::vector<header_field> add = f.add_headers;
  for (const auto& h : r.headers) {
    if (!iequals(h.name, "content-length") && !iequals(h.name, "transfer-encoding") &&
        !iequals(h.name, "connection")) {
      add.push_back(h);
    }
  }
  build_head(f, r.status, nullptr, add, framing::content_length, r.body.size());
  (void)co_await send(f, r.body);
}

void session::finish(flow& f) noexcept {
  if (f.finished) return;
  f.finished = true;
  w_.shard.flows_active.sub();
  try {
    finish_flow(f);
  } catch (...) {
    // A flow log line or a metric that could not be written; the flow ended.
    w_.shard.internal_errors.add();
  }
}

void session::finish_flow(flow& f) {
  const auto duration = since(f.start);
  if (f.outcome == flow_outcome::relayed && f.why != failure::none) f.outcome = flow_outcome::failed;
  flow_report report;
  if (f.route != nullptr) report.dst_jurisdiction = f.route->cfg->jurisdiction;
  flow_summary s;
  s.flow = &f.info;
  s.report = &report;
  s.outcome = f.outcome;
  s.failure = to_string(f.why);
  s.status = f.status;
  s.stream_cut = f.stream_cut;
  s.bytes_in = f.bytes_in;
  s.bytes_out = f.bytes_out;
  s.upstream_bytes_out = f.up_out;
  s.upstream_bytes_in = f.up_in;
  s.events = f.events;
  s.started_at = f.started_at;
  s.duration = duration;
  s.ttfb = f.ttfb;
  s.upstream_ttfb = f.up_ttfb;
  for (auto& flt : f.filters) flt->on_flow_end(s);  // noexcept by contract

  auto& shard = f.stats->shard(w_.index);
  shard.by_status[f.status < max_status ? f.status : 0].add();
  if (f.why != failure::none) shard.failures[static_cast<std::size_t>(f.why)].add();
  shard.bytes_in.add(f.bytes_in);
  shard.bytes_out.add(f.bytes_out);
  shard.upstream_bytes_in.add(f.up_in);
  shard.upstream_bytes_out.add(f.up_out);
  shard.duration.observe(duration);
  if (f.ttfb.count() >= 0) shard.ttfb.observe(f.ttfb);

  if (f.rt->cfg->log.flows || f.why != failure::none) {
    const log_level level = f.why == failure::none || f.why == failure::client_gone ? log_level::info : log_level::warn;
    log_line line(level, "flow_end");
    line.kv("flow", f.info.id)
        .kv("listener", f.info.listener)
        .kv("peer", peer_ip_)
        .kv("route", f.route != nullptr ? std::string_view(f.route->cfg->prefix) : std::string_view("none"))
        .kv("method", std::string_view(http::to_string(f.method).data(), http::to_string(f.method).size()))
        .kv("path", f.path);
    // What the filters know (enforcement): who, where to, and what was decided.
    if (!report.src_jurisdiction.empty()) line.kv("src", report.src_jurisdiction);
    if (!report.dst_jurisdiction.empty()) line.kv("dst", report.dst_jurisdiction);
    if (!report.tenant.empty()) line.kv("tenant", report.tenant);
    if (!report.verdict.empty()) line.kv("verdict", report.verdict).kv("rules", report.rules);
    line.kv("status", f.status).kv("outcome", to_string(f.outcome));
    if (f.why != failure::none) line.kv("reason", to_string(f.why));
    if (!f.detail.empty()) line.kv("detail", f.detail);
    line.kv("bytes_in", f.bytes_in).kv("bytes_out", f.bytes_out).kv("events", f.events).kv("cut", f.stream_cut);
    if (report.tokens_in >= 0) line.kv("tokens_in", report.tokens_in);
    if (report.tokens_out >= 0) line.kv("tokens_out", report.tokens_out);
    if (f.up_ttfb.count() >= 0) line.ms("upstream_ttfb_ms", f.up_ttfb.count());
    if (f.ttfb.count() >= 0) line.ms("ttfb_ms", f.ttfb.count());
    if (report.inspect.count() >= 0) line.ms("inspect_ms", report.inspect.count());
    if (report.audit_wait.count() >= 0) line.ms("audit_wait_ms", report.audit_wait.count());
    line.ms("duration_ms", duration.count());
  }
}

}  // namespace customs::daemon
