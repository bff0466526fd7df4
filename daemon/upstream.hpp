#pragma once
// Connections to upstreams: opening them (resolve, connect, TLS handshake with
// verification, all under one deadline) and keeping idle ones for reuse.
//
// Pools belong to one worker thread (no locks): one pool per upstream identity
// (runtime's pool_key), at most limits.upstream_idle_per_route idle connections,
// each closed after limits.upstream_idle_timeout unused. The most recently used
// connection is reused first. A pooled connection that the upstream closed (or
// that has unexpected bytes waiting) is dropped when taken.

#include "daemon/runtime.hpp"
#include "daemon/stream.hpp"
#include "daemon/watchdog.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace customs::daemon {

struct upstream_connection {
  explicit upstream_connection(any_stream s) : stream(std::move(s)) {}
  any_stream stream;
  std::unique_ptr<watchdog> wd;      // deadlines of reads and writes once connected
  boost::beast::flat_buffer buffer;  // bytes read from the upstream, not yet parsed
  std::chrono::steady_clock::time_point idle_since{};
  std::uint64_t requests = 0;        // requests sent on it so far
};

class upstream_pool {
 public:
  // An idle live connection, or null.
  [[nodiscard]] std::unique_ptr<upstream_connection> take(std::chrono::steady_clock::time_point now,
                                                          std::chrono::milliseconds idle_timeout);
  void put(std::unique_ptr<upstream_connection> c, std::chrono::steady_clock::time_point now,
           std::size_t max_idle);
  // Closes connections idle for longer than idle_timeout.
  void sweep(std::chrono::steady_clock::time_point now, std::chrono::milliseconds idle_timeout);
  [[nodiscard]] std::size_t idle() const noexcept { return idle_.size(); }

 private:
  std::vector<std::unique_ptr<upstream_connection>> idle_;  // oldest first
};

// A worker's pools, by pool_key.
class upstream_pools {
 public:
  [[nodiscard]] upstream_pool& pool(const std::string& key) { return pools_[key]; }
  void sweep(std::chrono::steady_clock::time_point now, std::chrono::milliseconds idle_timeout);
  // Drops pools whose key is not used by `rt` (after a reload).
  void retain(const runtime& rt);
  void clear() { pools_.clear(); }

 private:
  std::unordered_map<std::string, upstream_pool> pools_;
};

enum class connect_error : std::uint8_t { none, unreachable, timeout };

struct connect_result {
  std::unique_ptr<upstream_connection> conn;
  connect_error error = connect_error::none;
  std::string detail;  // why, for the log (e.g. "certificate verify failed")
};

// Opens a new connection; never throws. The whole of it must finish by deadline.
[[nodiscard]] boost::asio::awaitable<connect_result> connect_upstream(
    const upstream_target& target, std::chrono::steady_clock::time_point deadline);

}  // namespace customs::daemon
