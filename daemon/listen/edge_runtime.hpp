#pragma once
// The part of the runtime snapshot that forward and transparent listeners run
// on: the provider catalogue with one route per entry (the entry's dialect and
// jurisdiction, the config's filter chain, metrics labelled with the entry's
// host), the interception authority, the upstream trust store, the access
// rules, proxy users and the edge policy. Built with the runtime (control
// plane, may throw); immutable afterwards, except the caches it shares with
// the next snapshot (leaf certificates, untrusted clients, metrics).

#include "daemon/catalogue/catalogue.hpp"
#include "daemon/config.hpp"
#include "daemon/filter.hpp"
#include "daemon/intercept/authority.hpp"
#include "daemon/listen/destination.hpp"
#include "daemon/listen/edge_metrics.hpp"
#include "daemon/listen/edge_policy.hpp"
#include "daemon/listen/proxy_auth.hpp"
#include "daemon/metrics.hpp"
#include "daemon/runtime.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace customs::daemon {

struct edge_runtime {
  interception_config settings;  // as configured (the defaults without the section)
  std::shared_ptr<const catalogue> providers;
  std::vector<route_runtime> routes;  // by catalogue entry index
  // Requests relayed without inspection: paths outside a catalogued host's
  // api_paths, and absolute-form http:// requests to hosts outside the catalogue.
  route_runtime uninspected;
  std::shared_ptr<boost::asio::ssl::context> upstream_tls;  // trust for intercepted upstreams
  std::shared_ptr<intercept::authority> ca;                 // null: nothing is decrypted
  std::shared_ptr<const edge_policy> policy;                // never null
  std::vector<std::shared_ptr<const listen::proxy_users>> users;  // by listener; null: no proxy auth
  std::shared_ptr<intercept::untrusted_clients> untrusted;
  std::shared_ptr<listen::edge_metrics> stats;
  listen::destination_guard guard;

  // The route for a request to a catalogued host (entry from providers->find).
  [[nodiscard]] const route_runtime& route_for(const catalogue_entry& e, std::string_view target) const noexcept;
  // What to do next time with a client that rejected the CA for this host.
  [[nodiscard]] untrusted_action on_untrusted(const catalogue_entry& e) const noexcept;
};

// Builds it for a config with an edge listener. `previous` (the running
// snapshot's, may be null) lends its caches when the settings they depend on
// did not change. Throws (control plane) when a file cannot be used.
[[nodiscard]] std::shared_ptr<const edge_runtime> build_edge_runtime(const config& cfg, metrics& stats,
                                                                     const filter_chain_builder& chain,
                                                                     std::shared_ptr<const edge_policy> policy,
                                                                     const edge_runtime* previous);

// An upstream target for an intercepted or forwarded request: TLS (verified
// against `host`) or plain, for host:port as the client asked (the Host
// header), connecting to address:connect_port (0: port).
[[nodiscard]] upstream_target make_edge_target(const edge_runtime& e, std::string_view host, std::uint16_t port,
                                               bool tls, const std::string& address, std::uint16_t connect_port = 0);

}  // namespace customs::daemon
