#include "daemon/listen/edge_metrics.hpp"

namespace customs::daemon::listen {
namespace {

constexpr std::string_view outcome_names[] = {"intercepted", "tunnelled", "refused", "failed", "forwarded"};
constexpr std::string_view handshake_names[] = {"ok", "untrusted", "failed"};
constexpr std::string_view hello_names[] = {"complete", "not_tls", "invalid", "too_large", "timeout"};

template <std::size_t N, class Get>
void family(std::string& out, const std::vector<edge_shard>& shards, std::string_view name, std::string_view help,
            std::string_view label, const std::string_view (&names)[N], Get get) {
  write_metric_header(out, name, "counter", help);
  for (std::size_t i = 0; i < N; ++i) {
    std::uint64_t v = 0;
    for (const auto& s : shards) v += get(s)[i].get();
    std::string l(label);
    l += "=\"";
    l += names[i];
    l += '"';
    write_sample(out, name, l, v);
  }
}

}  // namespace

std::string_view to_string(edge_refusal r) noexcept {
  switch (r) {
    case edge_refusal::policy: return "policy";
    case edge_refusal::port: return "port";
    case edge_refusal::loopback: return "loopback";
    case edge_refusal::link_local: return "link_local";
    case edge_refusal::private_net: return "private_network";
    case edge_refusal::unspecified: return "unspecified";
    case edge_refusal::multicast: return "multicast";
    case edge_refusal::own_listener: return "own_listener";
    case edge_refusal::unknown_host: return "unknown_host";
    case edge_refusal::sni_mismatch: return "sni_mismatch";
    case edge_refusal::untrusted: return "untrusted";
    case edge_refusal::auth: return "auth";
    case edge_refusal::bad_request: return "bad_request";
    case edge_refusal::client_hello: return "client_hello";
    case edge_refusal::resolve: return "resolve";
    case edge_refusal::count_: break;
  }
  return "policy";
}

edge_refusal from_refusal(refusal r) noexcept {
  switch (r) {
    case refusal::port: return edge_refusal::port;
    case refusal::loopback: return edge_refusal::loopback;
    case refusal::link_local: return edge_refusal::link_local;
    case refusal::private_net: return edge_refusal::private_net;
    case refusal::unspecified: return edge_refusal::unspecified;
    case refusal::multicast: return edge_refusal::multicast;
    case refusal::own_listener: return edge_refusal::own_listener;
    case refusal::none:
    case refusal::count_: break;
  }
  return edge_refusal::policy;
}

void edge_metrics::render(std::string& out) const {
  family(out, shards_, "customs_edge_connections_total", "Connections of forward and transparent listeners by outcome",
         "outcome", outcome_names, [](const edge_shard& s) -> const auto& { return s.outcomes; });
  {
    constexpr auto n = static_cast<std::size_t>(edge_refusal::count_);
    std::string_view names[n];
    for (std::size_t i = 0; i < n; ++i) names[i] = to_string(static_cast<edge_refusal>(i));
    write_metric_header(out, "customs_edge_refusals_total", "counter", "Connections refused before decryption, by reason");
    for (std::size_t i = 0; i < n; ++i) {
      std::uint64_t v = 0;
      for (const auto& s : shards_) v += s.refusals[i].get();
      write_sample(out, "customs_edge_refusals_total", "reason=\"" + std::string(names[i]) + "\"", v);
    }
  }
  family(out, shards_, "customs_edge_handshakes_total", "Client TLS handshakes of intercepted connections",
         "result", handshake_names, [](const edge_shard& s) -> const auto& { return s.handshakes; });
  family(out, shards_, "customs_client_hello_total", "TLS ClientHellos read to decide a connection",
         "result", hello_names, [](const edge_shard& s) -> const auto& { return s.hellos; });
  std::uint64_t active = 0, up = 0, down = 0;
  for (const auto& s : shards_) {
    active += s.tunnels_active.get();
    up += s.bytes_up.get();
    down += s.bytes_down.get();
  }
  write_metric_header(out, "customs_tunnels_active", "gauge", "Tunnels open now (bytes relayed, never decrypted)");
  write_sample(out, "customs_tunnels_active", "", active);
  write_metric_header(out, "customs_tunnel_bytes_total", "counter", "Bytes relayed by tunnels");
  write_sample(out, "customs_tunnel_bytes_total", "direction=\"up\"", up);
  write_sample(out, "customs_tunnel_bytes_total", "direction=\"down\"", down);
  std::lock_guard lock(mutex_);
  if (extra_) extra_(out);
}

void edge_metrics::set_extra(std::function<void(std::string&)> f) {
  std::lock_guard lock(mutex_);
  extra_ = std::move(f);
}

}  // namespace customs::daemon::listen
