#pragma once
// customsd's metrics, rendered in the Prometheus text exposition format (0.0.4)
// on the admin listener's /metrics.
//
// Every metric object is created at start-up (routes: when a config naming them
// is loaded) and never freed while the server runs. The data plane updates only
// its own worker's shard, with relaxed single-writer stores: no locks, no shared
// cache lines on the hot path. A scrape sums the shards; it may see one flow's
// counters half-updated, never torn values.

#include "daemon/failure.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace customs::daemon {

// Written by one thread only, read by any.
class counter {
 public:
  void add(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

// Bucket upper bounds in seconds (shared by all latency histograms).
inline constexpr std::array<double, 16> latency_buckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1, 2.5, 5, 10, 30, 120};

class histogram {
 public:
  void observe(std::chrono::nanoseconds d) noexcept;
  // Per-bucket (not cumulative) counts; the last is +Inf.
  std::array<counter, latency_buckets.size() + 1> buckets;
  counter sum_ns;
  counter count;
};

inline constexpr std::size_t max_status = 600;

// One route's counters on one worker.
struct alignas(64) route_shard {
  std::array<counter, max_status> by_status;  // index: status sent (0: none)
  std::array<counter, static_cast<std::size_t>(failure::count_)> failures;
  counter bytes_in;            // from clients
  counter bytes_out;           // to clients
  counter upstream_bytes_in;   // response bodies from the upstream
  counter upstream_bytes_out;  // requests to the upstream
  counter upstream_connects;   // new upstream connections (not pooled reuse)
  counter upstream_reuses;     // requests sent on a pooled connection
  histogram duration;
  histogram ttfb;
};

class route_metrics {
 public:
  route_metrics(std::string label, unsigned workers);
  [[nodiscard]] route_shard& shard(unsigned worker) noexcept { return shards_[worker]; }
  [[nodiscard]] const std::string& label() const noexcept { return label_; }
  [[nodiscard]] const std::vector<route_shard>& shards() const noexcept { return shards_; }

 private:
  std::string label_;
  std::vector<route_shard> shards_;
};

struct alignas(64) worker_shard {
  counter connections_active;
  counter connections_accepted;
  counter connections_refused;  // over limits.connections
  counter flows_active;
  counter streams_active;       // event-stream responses being relayed
};

class metrics {
 public:
  explicit metrics(unsigned workers);

  // Control plane: the metrics of a route (created on first use, then kept, so
  // that counts survive reloads). Label "" is for requests that match no route.
  [[nodiscard]] route_metrics& route(std::string_view label);

  [[nodiscard]] worker_shard& worker(unsigned w) noexcept { return workers_[w]; }
  [[nodiscard]] unsigned workers() const noexcept { return static_cast<unsigned>(workers_.size()); }

  // Control plane counters (written by the control thread only).
  counter reloads_ok;
  counter reloads_failed;
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};

  [[nodiscard]] std::string render() const;

 private:
  mutable std::mutex mutex_;  // guards routes_ (control plane and scrapes only)
  std::map<std::string, std::unique_ptr<route_metrics>, std::less<>> routes_;
  std::vector<worker_shard> workers_;
};

}  // namespace customs::daemon
