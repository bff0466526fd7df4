#pragma once
// One worker thread of customsd: its own io_context, acceptors, sessions,
// upstream pools and metric shard. Everything here is touched only on the
// worker's thread, except what is posted to its io_context.

#include "daemon/metrics.hpp"
#include "daemon/runtime.hpp"
#include "daemon/tunnel/relay.hpp"
#include "daemon/upstream.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace customs::daemon {

class session;
class edge_connection;

// Lets other threads post to a worker for as long as it exists: filters keep
// request_resume handles that may be called (or dropped) after the server is
// gone. Only the pending-decision path goes through it (a lock per post).
class post_gate {
 public:
  explicit post_gate(boost::asio::io_context& ioc) : ioc_(&ioc) {}
  template <class F>
  bool post(F&& f) {
    std::lock_guard lock(mutex_);
    if (ioc_ == nullptr) return false;
    boost::asio::post(*ioc_, std::forward<F>(f));
    return true;
  }
  void close() {
    std::lock_guard lock(mutex_);
    ioc_ = nullptr;
  }

 private:
  std::mutex mutex_;
  boost::asio::io_context* ioc_;
};

// A place in limits.connections, taken by the accept loop. It moves with the
// connection (into the edge connection's coroutine, then into the session's)
// and is given back when its last owner ends, however that happens: returned,
// thrown, destroyed with its io_context, or never started because the
// coroutine's frame could not be allocated (a by-value coroutine parameter is
// destroyed by the caller then).
class connection_slot {
 public:
  explicit connection_slot(std::atomic<std::uint64_t>& taken) noexcept : taken_(&taken) {}
  connection_slot(connection_slot&& o) noexcept : taken_(o.taken_) { o.taken_ = nullptr; }
  connection_slot(const connection_slot&) = delete;
  connection_slot& operator=(const connection_slot&) = delete;
  connection_slot& operator=(connection_slot&&) = delete;
  ~connection_slot() {
    if (taken_ != nullptr) taken_->fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t>* taken_;
};

struct worker {
  worker(unsigned index, metrics& stats, std::atomic<std::uint64_t>& connections, std::uint32_t nonce);
  // The io_context runs on one thread and every socket and timer is used only
  // there: reactor locking is off (BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO); the
  // scheduler still locks, so other threads may post() to it.
  // Destroys the io_context first: that ends the sessions' coroutine frames
  // while everything they touch still exists.
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  std::unique_ptr<boost::asio::io_context> ioc_ptr = std::make_unique<boost::asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO);
  boost::asio::io_context& ioc = *ioc_ptr;
  std::shared_ptr<post_gate> gate = std::make_shared<post_gate>(ioc);
  unsigned index;
  metrics& stats;
  worker_shard& shard;
  std::shared_ptr<const runtime> rt;       // current snapshot; replaced by reload
  upstream_pools pools;
  std::atomic<std::uint64_t>& connections;  // client connections of all workers
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors;  // by listener index
  std::list<session*> sessions;
  std::list<edge_connection*> edges;  // forward and transparent connections before a session, and tunnels
  tunnel::pipe_pool pipes;
  std::uint16_t admin_port = 0;       // set at start: edge connections never loop back to it
  std::unique_ptr<boost::asio::steady_timer> sweep_timer = std::make_unique<boost::asio::steady_timer>(ioc);
  // What runs on this worker for as long as it lives, and may be ended by an
  // exception that escapes a handler (an allocation that failed while an
  // operation was being started): the server starts it again (server.cpp,
  // recover_worker). By listener index: an accept loop is running.
  std::vector<char> accepting;
  bool sweeping = false;  // the idle-pool sweep timer is armed
  bool draining = false;
  // The service manager's watchdog: cleared by the control thread, set again
  // by a handler it posts here; a worker that stops running handlers stops
  // the pings, and systemd restarts customsd.
  std::atomic<bool> answered{true};
  bool stopping = false;  // the io_context is being destroyed: flows still open are cut by shutdown

  // 20 hex digits: process nonce (32 bits), worker (8 bits), counter (40 bits).
  [[nodiscard]] std::string next_flow_id();

 private:
  std::uint32_t nonce_;
  std::uint64_t flows_ = 0;
};

}  // namespace customs::daemon
