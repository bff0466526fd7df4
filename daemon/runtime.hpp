#pragma once
// The immutable snapshot that the data plane runs on: routes with their upstream
// targets (TLS contexts loaded), filter factories and metrics, and the listeners'
// TLS contexts. Built from a config at start-up and on each reload (control
// plane, may throw); a worker swaps its pointer, and each flow keeps the snapshot
// it started with.

#include "daemon/config.hpp"
#include "daemon/filter.hpp"
#include "daemon/metrics.hpp"

#include <boost/asio/ssl/context.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace customs::daemon {

struct upstream_target {
  upstream_url url;
  std::string host_header;  // "host" or "host:port" when the port is not the scheme's
  std::shared_ptr<boost::asio::ssl::context> tls;  // https upstreams only
  std::string pool_key;     // connections to the same key are interchangeable
  // Edge modes: the address (IP literal) to connect to instead of resolving
  // url.host, which still names the peer for SNI and certificate checks.
  std::string connect_address;
  std::uint16_t connect_port = 0;  // 0: url.port
  std::uint32_t mark = 0;  // SO_MARK of the connection (0: none)
};

struct edge_runtime;
class edge_policy;

struct route_runtime {
  std::shared_ptr<const route_config> cfg;
  upstream_target upstream;
  std::vector<filter_factory> filters;
  route_metrics* stats = nullptr;
};

struct runtime {
  std::shared_ptr<const config> cfg;
  std::vector<route_runtime> routes;  // longest prefix first
  std::vector<std::shared_ptr<boost::asio::ssl::context>> listener_tls;  // by listener index; null: plain
  route_metrics* unrouted = nullptr;  // requests that match no route
  std::uint64_t generation = 0;
  std::shared_ptr<const edge_runtime> edge;  // with forward or transparent listeners only

  // The route whose prefix is the longest that starts target, or null.
  [[nodiscard]] const route_runtime* match(std::string_view target) const noexcept;
};

// Throws std::runtime_error when a TLS file cannot be loaded (config_error
// for an invalid provider catalogue). With forward or transparent listeners it
// builds the edge part too, with `edge` (null: default_edge_policy) and the
// caches of `previous`.
[[nodiscard]] std::shared_ptr<const runtime> build_runtime(std::shared_ptr<const config> cfg,
                                                           metrics& stats,
                                                           const filter_chain_builder& chain,
                                                           std::uint64_t generation,
                                                           std::shared_ptr<const edge_policy> edge = nullptr,
                                                           const runtime* previous = nullptr);

// Human-readable differences between two configs, one item per change, for the
// reload log. Items about settings that cannot change live start with
// "restart needed: ".
[[nodiscard]] std::vector<std::string> describe_changes(const config& before, const config& after);

}  // namespace customs::daemon
