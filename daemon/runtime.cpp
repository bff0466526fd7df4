#include "daemon/runtime.hpp"

#include "daemon/listen/edge_runtime.hpp"
#include "daemon/tls.hpp"

#include <algorithm>
#include <map>

namespace customs::daemon {

const route_runtime* runtime::match(std::string_view target) const noexcept {
  for (const auto& r : routes) {
    if (target.starts_with(r.cfg->prefix)) return &r;
  }
  return nullptr;
}

std::shared_ptr<const runtime> build_runtime(std::shared_ptr<const config> cfg, metrics& stats,
                                             const filter_chain_builder& chain,
                                             std::uint64_t generation,
                                             std::shared_ptr<const edge_policy> edge,
                                             const runtime* previous) {
  auto rt = std::make_shared<runtime>();
  rt->generation = generation;
  rt->unrouted = &stats.route("");
  // Contexts are shared by routes with the same trust anchors.
  std::map<std::string, std::shared_ptr<boost::asio::ssl::context>> client_contexts;
  for (const auto& rc : cfg->routes) {
    route_runtime r;
    r.cfg = std::make_shared<const route_config>(rc);
    r.upstream.url = rc.url;
    const bool default_port = rc.url.port == (rc.url.tls ? 443 : 80);
    const bool v6 = rc.url.host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + rc.url.host + "]" : rc.url.host;
    r.upstream.host_header = default_port ? host : host + ":" + std::to_string(rc.url.port);
    r.upstream.pool_key = std::string(rc.url.tls ? "https://" : "http://") + host + ":" +
                          std::to_string(rc.url.port) + "|" + rc.ca_bundle.string();
    if (rc.url.tls) {
      auto& ctx = client_contexts[rc.ca_bundle.string()];
      if (!ctx) ctx = make_client_tls(rc.ca_bundle);
      r.upstream.tls = ctx;
    }
    r.filters = chain ? chain(rc) : default_filter_chain(rc);
    r.stats = &stats.route(rc.prefix);
    rt->routes.push_back(std::move(r));
  }
  std::stable_sort(rt->routes.begin(), rt->routes.end(), [](const auto& a, const auto& b) {
    return a.cfg->prefix.size() > b.cfg->prefix.size();
  });
  for (const auto& l : cfg->listeners) {
    rt->listener_tls.push_back(l.tls ? make_server_tls(l.tls->cert, l.tls->key, l.tls->client_ca) : nullptr);
  }
  if (cfg->has_edge_listener()) {
    rt->edge = build_edge_runtime(*cfg, stats, chain, std::move(edge), previous ? previous->edge.get() : nullptr);
  }
  rt->cfg = std::move(cfg);
  return rt;
}

namespace {

std::string describe_route(const route_config& r) {
  std::string s = r.prefix + " -> " + r.upstream + " (" + std::string(to_string(r.api)) + ", " + r.jurisdiction;
  if (!r.ca_bundle.empty()) s += ", ca_bundle " + r.ca_bundle.string();
  return s + ")";
}

std::string ms(duration d) { return std::to_string(d.count()) + "ms"; }

}  // namespace

std::vector<std::string> describe_changes(const config& before, const config& after) {
  std::vector<std::string> out;
  if (before.listeners != after.listeners) {
    // Certificates and keys of unchanged listeners are re-read on every reload.
    bool only_tls_files = before.listeners.size() == after.listeners.size();
    for (std::size_t i = 0; only_tls_files && i < before.listeners.size(); ++i) {
      const auto& a = before.listeners[i];
      const auto& b = after.listeners[i];
      only_tls_files = a.name == b.name && a.address == b.address && a.port == b.port &&
                       a.tls.has_value() == b.tls.has_value() && a.mode == b.mode;
    }
    if (only_tls_files) out.push_back("listener settings changed (certificate files, client_ca, default_source or proxy_auth)");
    else out.push_back("restart needed: listeners changed (kept the running ones)");
  }
  if (before.admin != after.admin) out.push_back("restart needed: admin listener changed (kept the running one)");
  if (before.threads != after.threads) out.push_back("restart needed: threads changed (kept the running number)");
  std::map<std::string, const route_config*> a, b;
  for (const auto& r : before.routes) a[r.prefix] = &r;
  for (const auto& r : after.routes) b[r.prefix] = &r;
  for (const auto& [p, r] : a) {
    auto it = b.find(p);
    if (it == b.end()) out.push_back("route removed: " + describe_route(*r));
    else if (!(*it->second == *r)) out.push_back("route changed: " + describe_route(*r) + " => " + describe_route(*it->second));
  }
  for (const auto& [p, r] : b) {
    if (!a.contains(p)) out.push_back("route added: " + describe_route(*r));
  }
  const auto& x = before.limits;
  const auto& y = after.limits;
#define CUSTOMS_LIMIT_SIZE(k) \
  if (x.k != y.k) out.push_back("limits." #k ": " + std::to_string(x.k) + " => " + std::to_string(y.k));
#define CUSTOMS_LIMIT_TIME(k) \
  if (x.k != y.k) out.push_back("limits." #k ": " + ms(x.k) + " => " + ms(y.k));
  CUSTOMS_LIMIT_SIZE(header_bytes)
  CUSTOMS_LIMIT_SIZE(header_fields)
  CUSTOMS_LIMIT_SIZE(target_bytes)
  CUSTOMS_LIMIT_SIZE(trailer_bytes)
  CUSTOMS_LIMIT_SIZE(chunk_extension_bytes)
  CUSTOMS_LIMIT_SIZE(request_body_bytes)
  CUSTOMS_LIMIT_SIZE(response_body_bytes)
  CUSTOMS_LIMIT_SIZE(response_header_bytes)
  CUSTOMS_LIMIT_SIZE(sse_event_bytes)
  CUSTOMS_LIMIT_SIZE(connections)
  CUSTOMS_LIMIT_SIZE(upstream_idle_per_route)
  CUSTOMS_LIMIT_TIME(header_timeout)
  CUSTOMS_LIMIT_TIME(body_timeout)
  CUSTOMS_LIMIT_TIME(idle_timeout)
  CUSTOMS_LIMIT_TIME(upstream_connect_timeout)
  CUSTOMS_LIMIT_TIME(upstream_first_byte_timeout)
  CUSTOMS_LIMIT_TIME(stream_gap_timeout)
  CUSTOMS_LIMIT_TIME(send_timeout)
  CUSTOMS_LIMIT_TIME(flow_timeout)
  CUSTOMS_LIMIT_TIME(upstream_idle_timeout)
  CUSTOMS_LIMIT_SIZE(client_hello_bytes)
  CUSTOMS_LIMIT_TIME(tunnel_idle_timeout)
#undef CUSTOMS_LIMIT_SIZE
#undef CUSTOMS_LIMIT_TIME
  if (before.drain_timeout != after.drain_timeout) {
    out.push_back("drain_timeout: " + ms(before.drain_timeout) + " => " + ms(after.drain_timeout));
  }
  if (before.log != after.log) {
    const auto describe = [](const log_config& l) {
      return "level " + std::string(to_string(l.level)) + " flows " + (l.flows ? "true" : "false") + " format " +
             std::string(to_string(l.format));
    };
    out.push_back("log: " + describe(before.log) + " => " + describe(after.log));
  }
  if (before.sources != after.sources) {
    out.push_back("sources: " + std::to_string(before.sources.size()) + " => " +
                  std::to_string(after.sources.size()) + " entries");
  }
  if (before.trusted_proxies != after.trusted_proxies) {
    out.push_back("trusted_proxies: " + std::to_string(before.trusted_proxies.size()) + " => " +
                  std::to_string(after.trusted_proxies.size()) + " networks");
  }
  if (before.rules != after.rules) out.push_back("rules: the list of rule files changed");
  if (before.unscannable != after.unscannable) {
    out.push_back("unscannable: " + std::string(to_string(before.unscannable)) + " => " +
                  std::string(to_string(after.unscannable)));
  }
  if (before.metering != after.metering) {
    out.push_back("metering: stream_usage " + std::string(before.metering.inject_stream_usage ? "inject" : "off") +
                  " => " + (after.metering.inject_stream_usage ? "inject" : "off") + ", max_models " +
                  std::to_string(before.metering.max_models) + " => " + std::to_string(after.metering.max_models) +
                  ", max_tenants " + std::to_string(before.metering.max_tenants) + " => " +
                  std::to_string(after.metering.max_tenants));
  }
  if (before.volumes != after.volumes) out.push_back("restart needed: volumes changed (kept the running counter store)");
  if (before.interception != after.interception) out.push_back("interception settings changed");
  if (before.providers != after.providers) out.push_back("providers: the list of catalogue files changed");
  if (before.upstream_ca_bundle != after.upstream_ca_bundle) {
    out.push_back("upstream_ca_bundle: " + before.upstream_ca_bundle.string() + " => " + after.upstream_ca_bundle.string());
  }
  if (before.resolve != after.resolve) {
    out.push_back("resolve: " + std::to_string(before.resolve.size()) + " => " + std::to_string(after.resolve.size()) +
                  " entries");
  }
  if (before.audit.has_value() != after.audit.has_value()) {
    out.push_back("restart needed: audit added or removed (kept the running setting)");
  } else if (before.audit && after.audit && !(*before.audit == *after.audit)) {
    auto a = *before.audit;
    auto b = *after.audit;
    if (a.content != b.content) {
      out.push_back("audit.content: " + std::string(to_string(a.content)) + " => " + std::string(to_string(b.content)));
    }
    if (a.refuse_on_failure != b.refuse_on_failure) {
      out.push_back(std::string("audit.on_failure: ") + (a.refuse_on_failure ? "refuse" : "allow") + " => " +
                    (b.refuse_on_failure ? "refuse" : "allow"));
    }
    a.content = b.content;
    a.refuse_on_failure = b.refuse_on_failure;
    if (!(a == b)) out.push_back("restart needed: audit trail settings changed (kept the running trail)");
  }
  return out;
}

}  // namespace customs::daemon
