#pragma once
// Metrics of the edge modes (a section of /metrics; one shard per worker, see
// daemon/metrics.hpp for the sharding rules). No label holds a host name: the
// hosts of tunnelled connections are the clients' browsing, and their number
// is unbounded.
//
//   customs_edge_connections_total{outcome}   intercepted | tunnelled | refused | failed | forwarded
//                                             (forwarded: absolute-form http:// requests on a
//                                             forward listener, handled as sessions)
//   customs_edge_refusals_total{reason}       before decryption: policy, port, loopback, link_local,
//                                             private_network, unspecified, multicast, own_listener,
//                                             unknown_host, sni_mismatch, untrusted, auth,
//                                             bad_request, client_hello, resolve
//   customs_edge_handshakes_total{result}     client TLS handshakes of intercepted connections:
//                                             ok | untrusted (the client rejected the certificate) | failed
//   customs_client_hello_total{result}        complete | not_tls | invalid | too_large | timeout
//   customs_tunnels_active                    tunnels open now
//   customs_tunnel_bytes_total{direction}     up (client to destination) | down
//   customs_leaf_certificates_total{event}    minted | renewed | evicted | failed
//   customs_leaf_cache_hits_total, customs_leaf_cache_size
//   customs_untrusted_clients                 (client, host) pairs remembered as rejecting the CA

#include "daemon/listen/destination.hpp"
#include "daemon/metrics.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace customs::daemon::listen {

enum class edge_outcome : std::uint8_t { intercepted, tunnelled, refused, failed, forwarded, count_ };
enum class edge_refusal : std::uint8_t {
  policy, port, loopback, link_local, private_net, unspecified, multicast, own_listener,
  unknown_host, sni_mismatch, untrusted, auth, bad_request, client_hello, resolve, count_
};
enum class handshake_result : std::uint8_t { ok, untrusted, failed, count_ };
enum class hello_result_kind : std::uint8_t { complete, not_tls, invalid, too_large, timeout, count_ };

[[nodiscard]] std::string_view to_string(edge_refusal r) noexcept;
[[nodiscard]] edge_refusal from_refusal(refusal r) noexcept;

struct alignas(64) edge_shard {
  std::array<counter, static_cast<std::size_t>(edge_outcome::count_)> outcomes;
  std::array<counter, static_cast<std::size_t>(edge_refusal::count_)> refusals;
  std::array<counter, static_cast<std::size_t>(handshake_result::count_)> handshakes;
  std::array<counter, static_cast<std::size_t>(hello_result_kind::count_)> hellos;
  counter tunnels_active;
  counter bytes_up, bytes_down;
};

class edge_metrics {
 public:
  explicit edge_metrics(unsigned workers) : shards_(workers) {}
  [[nodiscard]] edge_shard& shard(unsigned w) noexcept { return shards_[w]; }
  // Extra gauges read at scrape time (the leaf cache, the untrusted memory of
  // the newest snapshot). Control plane; thread-safe.
  void set_extra(std::function<void(std::string&)> f);
  void render(std::string& out) const;

 private:
  std::vector<edge_shard> shards_;
  mutable std::mutex mutex_;
  std::function<void(std::string&)> extra_;
};

}  // namespace customs::daemon::listen
