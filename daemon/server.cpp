#include "daemon/server.hpp"

#include "daemon/dialect/dialect.hpp"
#include "daemon/listen/edge.hpp"
#include "daemon/log.hpp"
#include "daemon/session.hpp"
#include "daemon/worker.hpp"

#include <pthread.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <random>

namespace customs::daemon {
namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

namespace {
constexpr auto tok = asio::as_tuple(asio::use_awaitable);
}

// ---- worker --------------------------------------------------------------------

worker::worker(unsigned i, metrics& m, std::atomic<std::uint64_t>& c, std::uint32_t nonce)
    : index(i), stats(m), shard(m.worker(i)), connections(c), nonce_(nonce) {}

worker::~worker() {
  stopping = true;
  gate->close();
  acceptors.clear();
  sweep_timer.reset();
  pools.clear();
  ioc_ptr.reset();
}

std::string worker::next_flow_id() {
  static constexpr char hex[] = "0123456789abcdef";
  std::string id(20, '0');
  const std::uint64_t n = ++flows_ & 0xFFFFFFFFFFull;
  for (int i = 0; i < 8; ++i) id[static_cast<std::size_t>(i)] = hex[(nonce_ >> (28 - 4 * i)) & 0xF];
  id[8] = hex[(index >> 4) & 0xF];
  id[9] = hex[index & 0xF];
  for (int i = 0; i < 10; ++i) id[static_cast<std::size_t>(10 + i)] = hex[(n >> (36 - 4 * i)) & 0xF];
  return id;
}

namespace {

void log_exception(std::string_view where, const std::exception_ptr& e) noexcept {
  if (!e) return;
  try {
    log_line line(log_level::error, "internal_error");
    line.kv("where", where);
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      line.kv("what", x.what());
    } catch (...) {
      line.kv("what", "unknown exception");
    }
  } catch (...) {
    // Logging itself failed (out of memory): the counter still moves.
  }
}

// The completion of a coroutine spawned on a worker: an exception that left it
// is logged and counted, never rethrown (that would end the worker's thread).
struct on_worker_exception {
  worker* w;
  const char* where;
  void operator()(const std::exception_ptr& e) const noexcept {
    if (!e) return;
    w->shard.internal_errors.add();
    log_exception(where, e);
  }
};

// Runs an io_context until it is stopped. A handler that throws (a bug, or an
// allocation that failed) is logged and counted, and the loop goes on: the
// operation that threw is lost (its coroutine is destroyed, and the flow in it
// ends through its flow_closer), the other connections are not.
//
// What the thread runs for its whole life (accept loops, timer chains) can be
// lost that way too: an exception thrown while a coroutine starts its next
// operation (Asio does that after the coroutine suspended) leaves through
// run(), and the coroutine's frames are destroyed. `recover` starts again what
// is no longer running. When it cannot (out of memory still), the loop runs
// the handlers for 50 ms at a time and tries again.
template <class Recover>
void run_guarded(boost::asio::io_context& ioc, counter& errors, const char* where, Recover recover) noexcept {
  bool pending = false;
  for (;;) {
    try {
      if (!pending) {
        ioc.run();
        return;
      }
      ioc.run_for(std::chrono::milliseconds(50));
      if (ioc.stopped()) return;
    } catch (...) {
      errors.add();
      log_exception(where, std::current_exception());
      pending = true;
    }
    if (pending) {
      try {
        recover();
        pending = false;
      } catch (...) {
        errors.add();
        log_exception(where, std::current_exception());
      }
    }
  }
}

// Over limits.connections: answer 503 without reading (plain listeners) and
// close. The write is non-blocking and best effort.
void refuse(tcp::socket& s, bool tls) {
  if (!tls) {
    static const std::string reply = [] {
      const std::string body = error_body(dialect::openai, 503, "customs: too many connections", "customs_overloaded");
      return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
             "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    }();
    (void)::send(s.native_handle(), reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  boost::system::error_code ec;
  s.shutdown(tcp::socket::shutdown_send, ec);
  s.close(ec);
}

void restart_accept_loops(worker& w);

asio::awaitable<void> accept_loop(worker& w, unsigned listener) {
  // Whichever way the loop's frame ends (returned, threw, destroyed while an
  // exception left run()), the worker knows it no longer accepts, and unless
  // it drains the loop is started again: from a handler posted here, or at
  // the next sweep tick if even that post cannot be made. (When an exception
  // leaves run(), Asio destroys the coroutine's frames later, from a handler
  // it posts: after run_guarded's recovery has looked.)
  struct running {
    worker& w;
    unsigned listener;
    ~running() {
      w.accepting[listener] = 0;
      if (w.draining || w.stopping) return;
      try {
        asio::post(w.ioc, [&w = w] { restart_accept_loops(w); });
      } catch (...) {
        // Out of memory: the sweep tick restarts it.
      }
    }
  } mark{w, listener};
  tcp::acceptor& acceptor = *w.acceptors[listener];
  asio::steady_timer backoff(w.ioc);
  for (;;) {
    tcp::socket socket(w.ioc);
    auto [ec] = co_await acceptor.async_accept(socket, tok);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open() || w.draining) co_return;
      // Out of descriptors or memory: wait a little instead of spinning.
      log_line(log_level::warn, "accept_failed").kv("error", ec.message());
      backoff.expires_after(std::chrono::milliseconds(50));
      auto [bec] = co_await backoff.async_wait(tok);
      (void)bec;
      continue;
    }
    const auto& rt = w.rt;
    const bool tls = rt->listener_tls[listener] != nullptr;
    if (w.connections.fetch_add(1, std::memory_order_relaxed) >= rt->cfg->limits.connections) {
      w.connections.fetch_sub(1, std::memory_order_relaxed);
      w.shard.connections_refused.add();
      w.shard.limit_hits[static_cast<std::size_t>(limit_key::connections)].add();
      refuse(socket, tls);
      continue;
    }
    connection_slot slot(w.connections);
    try {
      if (rt->cfg->listeners[listener].mode != listener_mode::reverse) {
        asio::co_spawn(w.ioc, run_edge(w, std::move(socket), listener, std::move(slot)), on_worker_exception{&w, "edge"});
      } else {
        asio::co_spawn(w.ioc, run_session(w, std::move(socket), listener, rt->listener_tls[listener], std::move(slot)),
                       on_worker_exception{&w, "session"});
      }
    } catch (...) {
      // The session could not even start (out of memory): this connection is
      // dropped (its slot was given back by whichever owner held it), the
      // listener goes on.
      w.shard.internal_errors.add();
      log_exception("accept", std::current_exception());
    }
  }
}

// A listener's socket is bound without SO_REUSEPORT (the workers accept on
// duplicates of one descriptor), so no other socket can bind its port while
// customsd runs, with or without port sharing: a second customsd started by
// mistake, perhaps with a config that does not enforce, cannot take part of
// the traffic. Before binding, customsd claims the address, to say why:
//  - a lock held for the life of the process: an abstract Unix socket named
//    after the address (bound once per network namespace, like the port, and
//    released by the kernel when the process ends, even by SIGKILL); it makes
//    two customsd starting at the same moment exclusive;
//  - a probe: binding the address without SO_REUSEPORT fails while any other
//    socket listens on it (customsd or not; also a wildcard listener on the
//    same port).
// Returns the lock's descriptor; throws std::runtime_error naming the reason.
int claim_listen_address(const std::string& name, const tcp::endpoint& ep) {
  const std::string where = "listener " + name + ": cannot listen on " + ep.address().to_string() + ":" +
                            std::to_string(ep.port()) + ": ";
  const int lock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lock < 0) throw std::runtime_error(where + "cannot create the address lock: " + std::strerror(errno));
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  const std::string id = "customsd/listen/" + ep.address().to_string() + "/" + std::to_string(ep.port());
  const std::size_t len = std::min(id.size(), sizeof un.sun_path - 1);
  std::memcpy(un.sun_path + 1, id.data(), len);  // sun_path[0] == 0: abstract namespace
  if (::bind(lock, reinterpret_cast<const sockaddr*>(&un),
             static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + len)) != 0) {
    const int e = errno;
    ::close(lock);
    if (e == EADDRINUSE) throw std::runtime_error(where + "another customsd is listening on it");
    throw std::runtime_error(where + "cannot take the address lock: " + std::strerror(e));
  }
  boost::system::error_code ec;
  asio::io_context probe_ctx(1);
  tcp::acceptor probe(probe_ctx);
  probe.open(ep.protocol(), ec);
  if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) probe.bind(ep, ec);
  if (ec) {
    ::close(lock);
    if (ec == asio::error::address_in_use) {
      throw std::runtime_error(where + "the address is in use by another process");
    }
    throw std::runtime_error(where + ec.message());
  }
  return lock;
}

// An error message of several lines (a rule set's errors, one per line) as
// separate errors: each is its own log line and its own line of POST /reload.
void append_lines(std::vector<std::string>& out, std::string_view text) {
  if (text.find_first_not_of('\n') == std::string_view::npos) {
    out.emplace_back("unknown error");  // never a rejection without a reason
    return;
  }
  while (!text.empty()) {
    const auto nl = text.find('\n');
    if (nl != 0) out.emplace_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

void schedule_sweep(worker& w) {
  w.sweep_timer->expires_after(std::chrono::seconds(1));
  w.sweep_timer->async_wait([&w](boost::system::error_code ec) {
    w.sweeping = false;
    if (ec) return;
    w.pools.sweep(clock::now(), w.rt->cfg->limits.upstream_idle_timeout);
    restart_accept_loops(w);
    schedule_sweep(w);
  });
  w.sweeping = true;
}

void spawn_accept(worker& w, unsigned listener);

// An accept loop that ended by an exception is started again (unless the
// worker drains: then its acceptors are closed and the loops end).
struct on_accept_end {
  worker* w;
  unsigned listener;
  void operator()(const std::exception_ptr& e) const {
    if (!e) return;
    w->shard.internal_errors.add();
    log_exception("accept", e);
    if (!w->draining && w->accepting[listener] == 0 && w->acceptors[listener]->is_open()) spawn_accept(*w, listener);
  }
};

void spawn_accept(worker& w, unsigned listener) {
  w.accepting[listener] = 1;
  try {
    asio::co_spawn(w.ioc, accept_loop(w, listener), on_accept_end{&w, listener});
  } catch (...) {
    w.accepting[listener] = 0;
    throw;
  }
}

// Starts every accept loop that ended while the worker is not draining.
// Throws when it cannot (out of memory): the caller's caller tries again.
void restart_accept_loops(worker& w) {
  if (w.draining || w.stopping) return;
  for (unsigned li = 0; li < w.acceptors.size(); ++li) {
    if (w.accepting[li] != 0 || !w.acceptors[li]->is_open()) continue;
    log_line(log_level::warn, "accept_restarted")
        .kv("worker", unsigned{w.index})
        .kv("listener", li < w.rt->cfg->listeners.size() ? w.rt->cfg->listeners[li].name : std::string());
    spawn_accept(w, li);
  }
}

// After an exception left the worker's run(): what it lost is started again.
// Throws when it cannot (run_guarded tries again).
void recover_worker(worker& w) {
  if (w.draining || w.stopping) return;
  restart_accept_loops(w);
  if (!w.sweeping) schedule_sweep(w);
}

}  // namespace

// ---- server --------------------------------------------------------------------

struct server::control_state {
  explicit control_state(asio::io_context& ioc) : drain_timer(ioc), watchdog_timer(ioc), signals(ioc) {}
  asio::steady_timer drain_timer;
  asio::steady_timer watchdog_timer;
  asio::signal_set signals;
  bool stopping_notified = false;
  std::atomic<bool> notify_failed{false};  // logged once
  // Armed waits (cleared when their handler runs): what recover_control()
  // arms again after an exception left the control thread's run().
  bool signals_armed = false;
  bool drain_armed = false;
  bool watchdog_armed = false;
  bool draining = false;
  bool forced = false;
  bool finished = false;
  clock::time_point deadline;
  // After the deadline cut the flows: how long they have to end before stop.
  std::chrono::milliseconds grace{2000};
};

server::server(config cfg, server_options opts)
    : opts_(std::move(opts)),
      cfg_(std::make_shared<const config>(std::move(cfg))),
      threads_(cfg_->effective_threads()),
      stats_(std::make_unique<metrics>(threads_)),
      control_(std::make_unique<asio::io_context>(1)),
      control_state_(std::make_unique<control_state>(*control_)) {
  set_log_level(cfg_->log.level);
  set_log_format(cfg_->log.format);
  auto rt = make_runtime(cfg_, generation_);
  last_rt_ = rt;
  std::random_device rd;
  const std::uint32_t nonce = rd();
  for (unsigned i = 0; i < threads_; ++i) {
    workers_.push_back(std::make_unique<worker>(i, *stats_, connections_, nonce));
    workers_.back()->rt = rt;
  }
  admin_ = std::make_unique<admin_server>(*control_, cfg_->admin.address, cfg_->admin.port);
  install_admin_handlers();
  if (opts_.config_applied) opts_.config_applied(*cfg_);
}

std::shared_ptr<const runtime> server::make_runtime(std::shared_ptr<const config> cfg, std::uint64_t generation) {
  const runtime* previous = last_rt_.get();
  if (opts_.filters_for_config) {
    const filter_chain_builder chain = opts_.filters_for_config(*cfg);
    auto edge = opts_.edge_for_config ? opts_.edge_for_config(*cfg) : nullptr;
    return build_runtime(std::move(cfg), *stats_, chain, generation, std::move(edge), previous);
  }
  return build_runtime(std::move(cfg), *stats_, opts_.filters, generation, nullptr, previous);
}

server::~server() {
  stop();
  wait();
  // Workers first: their sessions may still refer to metrics and runtime.
  workers_.clear();
  admin_.reset();
  control_state_.reset();
  control_.reset();
  for (const int fd : port_locks_) ::close(fd);
}

std::shared_ptr<const config> server::current_config() const {
  std::lock_guard lock(mutex_);
  return cfg_;
}

void server::add_admin_handler(http::verb method, std::string path, admin_handler h) {
  admin_->add(method, std::move(path), std::move(h));
}

void server::install_admin_handlers() {
  add_admin_handler(http::verb::get, "/healthz", [](const admin_request&) { return admin_reply{200, "text/plain; charset=utf-8", "ok\n"}; });
  add_admin_handler(http::verb::get, "/readyz", [this](const admin_request&) {
    if (stats_->draining.load()) return admin_reply{503, "text/plain; charset=utf-8", "draining\n"};
    if (!stats_->ready.load()) return admin_reply{503, "text/plain; charset=utf-8", "starting\n"};
    return admin_reply{200, "text/plain; charset=utf-8", "ready\n"};
  });
  add_admin_handler(http::verb::get, "/metrics", [this](const admin_request&) {
    return admin_reply{200, "text/plain; version=0.0.4; charset=utf-8", stats_->render()};
  });
  add_admin_handler(http::verb::post, "/reload", [this](const admin_request&) {
    const reload_result r = reload_from_file();
    std::string body;
    for (const auto& line : r.ok ? r.changes : r.errors) body += line + "\n";
    if (r.ok && r.changes.empty()) body = "no changes\n";
    return admin_reply{r.ok ? 200u : 400u, "text/plain; charset=utf-8", body};
  });
}

void server::start() {
  if (started_) return;
  const auto& listeners = cfg_->listeners;
  ports_.assign(listeners.size(), 0);
  for (std::size_t li = 0; li < listeners.size(); ++li) {
    const auto& l = listeners[li];
    boost::system::error_code ec;
    const auto addr = asio::ip::make_address(l.address, ec);
    if (ec) throw std::runtime_error("listener " + l.name + ": bad address " + l.address);
    std::uint16_t port = l.port;
    // Port 0 takes a free port: nobody else holds it.
    if (port != 0) port_locks_.push_back(claim_listen_address(l.name, tcp::endpoint(addr, port)));
    // One listening socket per listener, bound without SO_REUSEPORT, so no
    // other socket can join the port later; every worker accepts on its own
    // duplicate of the descriptor (the kernel hands each connection to one of
    // them).
    int bound = -1;
    for (auto& w : workers_) {
      auto a = std::make_unique<tcp::acceptor>(w->ioc);
      const tcp::endpoint ep(addr, port);
      if (bound < 0) {
        a->open(ep.protocol(), ec);
        if (!ec) a->set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) a->bind(ep, ec);
        if (!ec) a->listen(asio::socket_base::max_listen_connections, ec);
        if (!ec) bound = a->native_handle();
      } else {
        const int fd = ::fcntl(bound, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
          ec.assign(errno, boost::system::system_category());
        } else {
          a->assign(ep.protocol(), fd, ec);
          if (ec) ::close(fd);
        }
      }
      if (ec) {
        throw std::runtime_error("listener " + l.name + ": cannot listen on " + l.address + ":" +
                                 std::to_string(port) + ": " + ec.message());
      }
      port = a->local_endpoint().port();  // port 0: the port the socket got
      w->acceptors.push_back(std::move(a));
    }
    ports_[li] = port;
  }
  for (auto& w : workers_) {
    w->accepting.assign(w->acceptors.size(), 0);
    for (unsigned li = 0; li < w->acceptors.size(); ++li) spawn_accept(*w, li);
    schedule_sweep(*w);
  }
  admin_->start();
  for (auto& w : workers_) w->admin_port = admin_->port();
  if (opts_.handle_signals) watch_signals();
  // Named threads ("customs-w0", ...; at most 15 characters): top -H, perf and
  // /proc/PID/task/*/comm tell the workers, the control thread and the audit
  // threads apart.
  for (std::size_t wi = 0; wi < workers_.size(); ++wi) {
    worker* wp = workers_[wi].get();
    threads_running_.emplace_back([wp] {
      auto guard = asio::make_work_guard(wp->ioc);
      run_guarded(wp->ioc, wp->shard.internal_errors, "worker", [wp] { recover_worker(*wp); });
    });
    const std::string name = "customs-w" + std::to_string(wi);
    pthread_setname_np(threads_running_.back().native_handle(), name.substr(0, 15).c_str());
  }
  asio::io_context* control = control_.get();
  threads_running_.emplace_back([control, this] {
    auto guard = asio::make_work_guard(*control);
    run_guarded(*control, stats_->control_internal_errors, "control", [this] { recover_control(); });
  });
  pthread_setname_np(threads_running_.back().native_handle(), "customs-control");
  started_ = true;
  stats_->ready = true;
  for (std::size_t li = 0; li < listeners.size(); ++li) {
    log_line(log_level::info, "listening")
        .kv("listener", listeners[li].name)
        .kv("address", listeners[li].address)
        .kv("port", unsigned{ports_[li]})
        .kv("tls", listeners[li].tls.has_value())
        .kv("threads", threads_);
  }
  log_line(log_level::info, "admin_listening").kv("address", cfg_->admin.address).kv("port", unsigned{admin_->port()});
  // The audit trail (if any) was opened before the server was made: the
  // listeners, the admin listener and the trail are all in place.
  notify("READY=1\nSTATUS=ready (generation " + std::to_string(generation_) + ")");
  if (opts_.notify && opts_.notify->enabled() && opts_.notify->watchdog_period().count() > 0) {
    asio::post(*control_, [this] { schedule_watchdog(); });
  }
}

void server::notify(std::string_view state) {
  if (!opts_.notify || !opts_.notify->enabled()) return;
  if (const auto ec = opts_.notify->send(state); ec) {
    // Logged once: a manager that went away would otherwise fill the log
    // with one line per watchdog ping.
    if (control_state_->notify_failed.exchange(true)) return;
    log_line(log_level::warn, "notify_failed").kv("error", ec.message());
  }
}

// Every half period: WATCHDOG=1 if every worker ran the handler posted to it
// at the previous tick (the control thread itself runs this one). A worker
// stuck in a handler thus stops the pings and systemd restarts customsd.
void server::schedule_watchdog() {
  auto& cs = *control_state_;
  if (cs.finished) return;
  bool all = true;
  for (auto& w : workers_) all = w->answered.load(std::memory_order_acquire) && all;
  if (all) notify("WATCHDOG=1");
  for (auto& w : workers_) {
    worker* wp = w.get();
    if (!wp->answered.exchange(false, std::memory_order_acq_rel)) continue;  // still owes the last one
    asio::post(wp->ioc, [wp] { wp->answered.store(true, std::memory_order_release); });
  }
  cs.watchdog_timer.expires_after(opts_.notify->watchdog_period() / 2);
  cs.watchdog_timer.async_wait([this](boost::system::error_code ec) {
    control_state_->watchdog_armed = false;
    if (!ec) schedule_watchdog();
  });
  cs.watchdog_armed = true;
}

// After an exception left the control thread's run(): the waits it lost are
// armed again. Throws when it cannot (run_guarded tries again).
void server::recover_control() {
  auto& cs = *control_state_;
  if (cs.finished) return;
  admin_->recover();
  if (opts_.handle_signals && !cs.signals_armed) watch_signals();
  if (cs.draining && !cs.drain_armed) poll_drain();
  if (opts_.notify && opts_.notify->enabled() && opts_.notify->watchdog_period().count() > 0 && !cs.watchdog_armed) {
    schedule_watchdog();
  }
}

std::uint16_t server::port(std::string_view listener) const {
  for (std::size_t i = 0; i < cfg_->listeners.size() && i < ports_.size(); ++i) {
    if (cfg_->listeners[i].name == listener) return ports_[i];
  }
  return 0;
}

std::uint16_t server::admin_port() const { return admin_->port(); }

void server::watch_signals() {
  auto& sigs = control_state_->signals;
  sigs.add(SIGTERM);
  sigs.add(SIGINT);
  sigs.add(SIGHUP);
  sigs.async_wait([this](boost::system::error_code ec, int sig) {
    control_state_->signals_armed = false;
    if (ec) return;
    if (sig == SIGHUP) {
      log_line(log_level::info, "signal").kv("signal", "SIGHUP");
      (void)reload_from_file();
    } else {
      log_line(log_level::info, "signal").kv("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      auto& cs = *control_state_;
      if (cs.draining) {
        if (cs.forced) {
          // A third signal, or a second one after the drain deadline: stop
          // now. Flows still open end as their coroutines are destroyed (each
          // still gets its closing record).
          finish();
          return;
        }
        // A second SIGTERM/SIGINT: cut every flow now; each ends as failed
        // (draining) through its filters' end-of-flow phase, so that its
        // closing audit record is written; then stop.
        log_line(log_level::warn, "drain_cut").kv("connections", connections_.load());
        cs.deadline = clock::now();
        cs.grace = std::chrono::milliseconds(500);
        poll_drain();
      } else {
        begin_drain();
      }
    }
    watch_signals();
  });
  control_state_->signals_armed = true;
}

void server::notify_reload_start() {
  notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(service_notifier::monotonic_usec()));
}

// After STOPPING=1 the manager waits for the process to end: no READY=1 then.
void server::notify_reload_end(const reload_result& r) {
  if (stats_->draining.load()) return;
  notify(r.ok ? "READY=1\nSTATUS=reloaded (generation " + std::to_string(r.generation) + ")"
              : "READY=1\nSTATUS=reload rejected, kept generation " + std::to_string(r.generation));
}

// RELOADING=1 then READY=1 around every reload, applied or rejected (the
// service runs either way): systemd's `reload` waits between the two.
reload_result server::reload_from_file() {
  notify_reload_start();
  reload_result r = apply_file();
  notify_reload_end(r);
  return r;
}

reload_result server::reload(config next) {
  notify_reload_start();
  reload_result r = apply(std::move(next));
  notify_reload_end(r);
  return r;
}

reload_result server::apply_file() {
  const auto running = current_config();
  reload_result r;
  if (running->file.empty()) {
    r.errors.push_back("the running config was not loaded from a file");
    stats_->reloads_failed.add();
    std::lock_guard lock(reload_mutex_);
    r.generation = generation_;
    return r;
  }
  try {
    return apply(load_config(running->file));
  } catch (const config_error& e) {
    for (const auto& d : e.diagnostics()) r.errors.push_back(d.to_string());
  } catch (const std::exception& e) {
    append_lines(r.errors, e.what());
  }
  stats_->reloads_failed.add();
  for (const auto& e : r.errors) log_line(log_level::error, "reload_failed").kv("error", e);
  {
    std::lock_guard lock(reload_mutex_);
    r.generation = generation_;
  }
  log_line(log_level::error, "reload_rejected").kv("kept_generation", r.generation);
  return r;
}

reload_result server::apply(config next) {
  std::lock_guard reload_lock(reload_mutex_);
  reload_result r;
  const auto running = current_config();
  r.changes = describe_changes(*running, next);
  // What cannot change live stays as it runs.
  bool listeners_live = running->listeners.size() == next.listeners.size();
  for (std::size_t i = 0; listeners_live && i < next.listeners.size(); ++i) {
    const auto& a = running->listeners[i];
    const auto& b = next.listeners[i];
    listeners_live = a.name == b.name && a.address == b.address && a.port == b.port &&
                     a.tls.has_value() == b.tls.has_value() && a.mode == b.mode;
  }
  if (!listeners_live) next.listeners = running->listeners;
  next.admin = running->admin;
  next.threads = running->threads;
  if (next.file.empty()) next.file = running->file;

  auto cfg = std::make_shared<const config>(std::move(next));
  std::shared_ptr<const runtime> rt;
  try {
    rt = make_runtime(cfg, generation_ + 1);
  } catch (const std::exception& e) {
    r.changes.clear();
    append_lines(r.errors, e.what());
    r.generation = generation_;
    stats_->reloads_failed.add();
    for (const auto& line : r.errors) log_line(log_level::error, "reload_failed").kv("error", line);
    return r;
  }
  if (opts_.describe_filter_changes) {
    for (auto& c : opts_.describe_filter_changes()) r.changes.push_back(std::move(c));
  }
  ++generation_;
  r.generation = generation_;
  last_rt_ = rt;
  {
    std::lock_guard lock(mutex_);
    cfg_ = cfg;
  }
  set_log_level(cfg->log.level);
  set_log_format(cfg->log.format);
  if (opts_.config_applied) opts_.config_applied(*cfg);
  for (auto& w : workers_) {
    worker* wp = w.get();
    asio::post(wp->ioc, [wp, rt] {
      wp->rt = rt;
      wp->pools.retain(*rt);
    });
  }
  stats_->reloads_ok.add();
  // A change that did not take effect (the running setting was kept) needs
  // the operator's attention: warn, not info.
  for (const auto& c : r.changes) {
    log_line(c.starts_with("restart needed: ") ? log_level::warn : log_level::info, "reload_change").kv("change", c);
  }
  log_line(log_level::info, "reloaded").kv("generation", generation_).kv("changes", static_cast<std::uint64_t>(r.changes.size()));
  r.ok = true;
  return r;
}

void server::drain() {
  asio::post(*control_, [this] { begin_drain(); });
}

void server::begin_drain() {
  auto& cs = *control_state_;
  if (cs.draining || cs.finished) return;
  cs.draining = true;
  stats_->draining = true;
  if (!cs.stopping_notified) {
    cs.stopping_notified = true;
    notify("STOPPING=1\nSTATUS=draining");
  }
  cs.deadline = clock::now() + current_config()->drain_timeout;
  log_line(log_level::info, "draining")
      .kv("connections", connections_.load())
      .kv("timeout_ms", static_cast<std::int64_t>(current_config()->drain_timeout.count()));
  for (auto& w : workers_) {
    worker* wp = w.get();
    asio::post(wp->ioc, [wp] {
      wp->draining = true;
      boost::system::error_code ec;
      for (auto& a : wp->acceptors) a->close(ec);
      // Copy: closing may end sessions, which unregister themselves later.
      const std::vector<session*> sessions(wp->sessions.begin(), wp->sessions.end());
      for (auto* s : sessions) s->close_if_idle();
      const std::vector<edge_connection*> edges(wp->edges.begin(), wp->edges.end());
      for (auto* e : edges) e->close_if_idle();
    });
  }
  poll_drain();
}

void server::poll_drain() {
  auto& cs = *control_state_;
  if (cs.finished) return;
  if (connections_.load() == 0) {
    log_line(log_level::info, "drained");
    finish();
    return;
  }
  const auto now = clock::now();
  if (now >= cs.deadline && !cs.forced) {
    cs.forced = true;
    log_line(log_level::warn, "drain_deadline").kv("connections", connections_.load());
    for (auto& w : workers_) {
      worker* wp = w.get();
      asio::post(wp->ioc, [wp] {
        const std::vector<session*> sessions(wp->sessions.begin(), wp->sessions.end());
        for (auto* s : sessions) s->force_close();
        const std::vector<edge_connection*> edges(wp->edges.begin(), wp->edges.end());
        for (auto* e : edges) e->force_close();
      });
    }
  }
  if (cs.forced && now >= cs.deadline + cs.grace) {
    finish();
    return;
  }
  cs.drain_timer.expires_after(std::chrono::milliseconds(10));
  cs.drain_timer.async_wait([this](boost::system::error_code ec) {
    control_state_->drain_armed = false;
    if (!ec) poll_drain();
  });
  cs.drain_armed = true;
}

void server::finish() {
  auto& cs = *control_state_;
  if (cs.finished) return;
  cs.finished = true;
  stats_->ready = false;
  if (!cs.stopping_notified) {
    cs.stopping_notified = true;
    notify("STOPPING=1");
  }
  boost::system::error_code ec;
  cs.signals.cancel(ec);
  cs.drain_timer.cancel();
  cs.watchdog_timer.cancel();
  admin_->stop();
  for (auto& w : workers_) w->ioc.stop();
  control_->stop();
}

void server::stop() {
  if (!started_) return;
  asio::post(*control_, [this] { finish(); });
}

void server::wait() {
  if (!started_ || joined_) return;
  for (auto& t : threads_running_) t.join();
  joined_ = true;
}

}  // namespace customs::daemon
