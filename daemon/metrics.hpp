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
#include "daemon/framing_error.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
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

// Finer bounds for work measured in microseconds (inspection time per flow).
inline constexpr std::array<double, 16> cpu_buckets = {
    0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025,
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1};

class histogram {
 public:
  explicit histogram(const std::array<double, 16>& bounds = latency_buckets) noexcept : bounds_(&bounds) {}
  void observe(std::chrono::nanoseconds d) noexcept;
  [[nodiscard]] const std::array<double, 16>& bounds() const noexcept { return *bounds_; }
  // Per-bucket (not cumulative) counts; the last is +Inf.
  std::array<counter, latency_buckets.size() + 1> buckets;
  counter sum_ns;
  counter count;

 private:
  const std::array<double, 16>* bounds_;
};

// Prometheus text format pieces, for the sections other parts add.
void write_metric_header(std::string& out, std::string_view name, std::string_view type, std::string_view help);
void write_sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t v);
void write_gauge_value(std::string& out, std::string_view name, std::string_view labels, double v);
// Appends a label value with the format's escapes (\\, \", \n).
void append_label_value(std::string& out, std::string_view v);
// The _bucket, _sum and _count samples of the sum of `shards` (same bounds).
void write_histogram(std::string& out, std::string_view name, std::string_view labels,
                     const std::vector<const histogram*>& shards);

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

// The bound a message or connection hit: customs_limit_hits_total{limit=...},
// named by the limits.<key> of the bound (field_bytes: the documented constant
// max_field_bytes of daemon/http_framing.hpp).
enum class limit_key : std::uint8_t {
  header_bytes,
  header_fields,
  field_bytes,
  target_bytes,
  trailer_bytes,
  chunk_extension_bytes,
  request_body_bytes,
  response_header_bytes,
  response_body_bytes,
  sse_event_bytes,
  connections,
  count_,
};

[[nodiscard]] std::string_view to_string(limit_key k) noexcept;

// Which peer sent a message: a client or an upstream.
enum class wire_side : std::uint8_t { client, upstream };

// The bound behind a framing error (for is_limit(e) errors), by side.
[[nodiscard]] limit_key limit_of(framing_error e, wire_side side) noexcept;

struct alignas(64) worker_shard {
  // Counts a refused message: a limit hit or a framing rule broken.
  void framing_refused(framing_error e, wire_side side) noexcept;

  counter connections_active;
  counter connections_accepted;
  counter connections_refused;  // over limits.connections
  counter flows_active;
  counter streams_active;       // event-stream responses being relayed
  std::array<counter, static_cast<std::size_t>(limit_key::count_)> limit_hits;
  // By side, then by framing_error (the rules; limits go to limit_hits).
  std::array<std::array<counter, static_cast<std::size_t>(framing_error::count_)>, 2> framing_rejected;
  counter internal_errors;  // exceptions caught on this worker (a flow failed, the process did not)
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
  counter control_internal_errors;  // exceptions caught on the control thread
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};

  // Another part's metrics (enforcement, audit), appended to every scrape by
  // `render`, which must be thread-safe. Control plane.
  void add_section(std::function<void(std::string&)> render);

  [[nodiscard]] std::string render() const;

 private:
  std::vector<std::function<void(std::string&)>> sections_;  // guarded by mutex_
  mutable std::mutex mutex_;  // guards routes_ (control plane and scrapes only)
  std::map<std::string, std::unique_ptr<route_metrics>, std::less<>> routes_;
  std::vector<worker_shard> workers_;
};

}  // namespace customs::daemon
