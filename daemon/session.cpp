#include "daemon/session.hpp"

#include "daemon/dialect/dialect.hpp"
#include "daemon/http_util.hpp"
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

session::session(worker& w, tcp::socket socket, unsigned listener,
                 std::shared_ptr<asio::ssl::context> tls)
    : w_(w),
      tls_ctx_(std::move(tls)),
      client_(tls_ctx_ ? any_stream(beast::tcp_stream(std::move(socket)), *tls_ctx_)
                       : any_stream(beast::tcp_stream(std::move(socket)))),
      listener_(listener),
      rbuf_(new char[rbuf_size]),
      client_wd_(client_.get_executor(), client_.tcp().socket()) {
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
  w_.connections.fetch_sub(1, std::memory_order_relaxed);
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

asio::awaitable<void> run_session(worker& w, tcp::socket socket, unsigned listener,
                                  std::shared_ptr<asio::ssl::context> tls) {
  session s(w, std::move(socket), listener, std::move(tls));
  co_await s.run();
}

asio::awaitable<void> session::run() {
  if (auto* tls = client_.tls()) {
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
  // Wait for the first byte of the next request: idle until then.
  if (buf_.size() == 0) {
    idle_ = true;
    if (w_.draining || closing_) co_return false;
    const limits_config& idle_lim = w_.rt->cfg->limits;
    client_wd_.expires_at(clock::now() + (first_request_ ? idle_lim.header_timeout : idle_lim.idle_timeout));
    auto space = buf_.prepare(4096);
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
  w_.shard.flows_active.add();

  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(std::min<std::uint64_t>(lim.header_bytes, UINT32_MAX)));
  parser.body_limit(lim.request_body_bytes);
  client_wd_.expires_at(f.start + lim.header_timeout);
  auto [hec_read, head_bytes] = co_await http::async_read_header(client_, buf_, parser, tok);
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
      f.route = rt->match(target);
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
    if (hec == http::error::body_limit) f.fail(failure::body_too_large);
    else if (hec == http::error::header_limit || hec == http::error::buffer_overflow) f.fail(failure::header_too_large);
    else if (hec == beast::error::timeout) f.fail(failure::header_timeout);
    else if (is_disconnect(hec)) f.fail(failure::client_gone, hec.message());
    else f.fail(failure::bad_request, hec.message());
    if (f.why != failure::client_gone) co_await send_error(f, f.why, hec.message());
    finish(f);
    co_return false;
  }
  f.keep_alive = msg.keep_alive();
  const bool has_body = parser.chunked() || parser.content_length().value_or(0) > 0;

  if (f.route == nullptr || !safe_target(msg.target())) {
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
      if (bec == http::error::body_limit) f.fail(failure::body_too_large);
      else if (bec == beast::error::timeout) f.fail(failure::header_timeout);
      else if (is_disconnect(bec)) f.fail(failure::client_gone, bec.message());
      else f.fail(failure::bad_request, bec.message());
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
  map_target(req.target, f.route->cfg->prefix, f.route->upstream.url.base_path, req.upstream_target);
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
        build_head(f, bs.status, &res.base(), f.add_headers, framing::content_length, bs.body.size());
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
    w_.pools.pool(f.route->upstream.pool_key)
        .put(std::move(conn), clock::now(), lim.upstream_idle_per_route);
  } else {
    conn->stream.close();
  }
  finish(f);
  co_return f.keep_alive && !closing_;
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
  const auto& up = f.route->upstream;
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
  h += "X-Forwarded-For: ";
  if (!forwarded_for.empty()) {
    h += forwarded_for;
    h += ", ";
  }
  h += peer_ip_;
  h += "\r\n";
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
  const auto& target = f.route->upstream;
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
      p.emplace();
      p->header_limit(static_cast<std::uint32_t>(std::min<std::uint64_t>(lim.response_header_bytes, UINT32_MAX)));
      p->body_limit(boost::none);
      if (f.method == http::verb::head) p->skip(true);
      auto [rec_io, rn] = co_await http::async_read_header(conn->stream, conn->buffer, *p, tok);
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
  w_.shard.streams_active.add();
  const unsigned error_status_fallback = 502;
  if (c.buffer.size() == 0 && !p.is_done()) {
    // No body bytes yet: the client gets the head now rather than with the
    // first event.
    if (!co_await send(f, {})) {
      w_.shard.streams_active.sub();
      co_return;
    }
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
    if (!stop && !ec && p.is_done()) {
      if (sse_->finish()) {
        ++f.events;
        stop = !run_event(f, sse_->event(), 0);
        ++f.event_index;
      }
      if (!stop) stop = !run_stream_end(f);
      done = !stop;
    }
    if (!stop && ec) {
      f.fail(read_failure(f, ec), ec.message());
      stop = true;
    }
    if (stop) {
      f.stream_cut = true;
      if (f.why != failure::none && f.why != failure::client_gone) {
        // The client's stream ends with the dialect's error event, never with a
        // normal end marker.
        const unsigned st = status_for(f.why);
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
  w_.shard.streams_active.sub();
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
      f.fail(read_failure(f, ec), ec.message());
      // Framing cannot carry an error now: the client sees a truncated body
      // (no terminating chunk, or fewer bytes than Content-Length).
      f.keep_alive = false;
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
      co_return false;
    }
    body.append(rbuf_.get(), got);
    if (rec && rec != http::error::need_buffer) {
      f.fail(read_failure(f, rec), rec.message());
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

void session::finish(flow& f) {
  const auto duration = since(f.start);
  if (f.outcome == flow_outcome::relayed && f.why != failure::none) f.outcome = flow_outcome::failed;
  flow_summary s;
  s.flow = &f.info;
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
  for (auto& flt : f.filters) flt->on_flow_end(s);

  auto& shard = f.stats->shard(w_.index);
  shard.by_status[f.status < max_status ? f.status : 0].add();
  if (f.why != failure::none) shard.failures[static_cast<std::size_t>(f.why)].add();
  shard.bytes_in.add(f.bytes_in);
  shard.bytes_out.add(f.bytes_out);
  shard.upstream_bytes_in.add(f.up_in);
  shard.upstream_bytes_out.add(f.up_out);
  shard.duration.observe(duration);
  if (f.ttfb.count() >= 0) shard.ttfb.observe(f.ttfb);
  w_.shard.flows_active.sub();

  if (f.rt->cfg->log.flows || f.why != failure::none) {
    const log_level level = f.why == failure::none || f.why == failure::client_gone ? log_level::info : log_level::warn;
    log_line line(level, "flow_end");
    line.kv("flow", f.info.id)
        .kv("listener", f.info.listener)
        .kv("peer", peer_ip_)
        .kv("route", f.route != nullptr ? std::string_view(f.route->cfg->prefix) : std::string_view("none"))
        .kv("method", std::string_view(http::to_string(f.method).data(), http::to_string(f.method).size()))
        .kv("path", f.path)
        .kv("status", f.status)
        .kv("outcome", to_string(f.outcome));
    if (f.why != failure::none) line.kv("reason", to_string(f.why));
    if (!f.detail.empty()) line.kv("detail", f.detail);
    line.kv("bytes_in", f.bytes_in).kv("bytes_out", f.bytes_out).kv("events", f.events).kv("cut", f.stream_cut);
    if (f.up_ttfb.count() >= 0) line.ms("upstream_ttfb_ms", f.up_ttfb.count());
    if (f.ttfb.count() >= 0) line.ms("ttfb_ms", f.ttfb.count());
    line.ms("duration_ms", duration.count());
  }
}

}  // namespace customs::daemon
