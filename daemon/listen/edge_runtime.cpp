#include "daemon/listen/edge_runtime.hpp"

#include "daemon/log.hpp"
#include "daemon/tls.hpp"

namespace customs::daemon {

const route_runtime& edge_runtime::route_for(const catalogue_entry& e, std::string_view target) const noexcept {
  if (!e.is_api_path(target)) return uninspected;
  return routes[providers->index_of(e)];
}

untrusted_action edge_runtime::on_untrusted(const catalogue_entry& e) const noexcept {
  if (e.on_untrusted) return *e.on_untrusted;
  return settings.on_untrusted;
}

upstream_target make_edge_target(const edge_runtime& e, std::string_view host, std::uint16_t port, bool tls,
                                 const std::string& address, std::uint16_t connect_port) {
  upstream_target t;
  t.url.tls = tls;
  t.url.host = std::string(host);
  t.url.port = port;
  const bool v6 = host.find(':') != std::string_view::npos;
  const std::string h = v6 ? "[" + std::string(host) + "]" : std::string(host);
  t.host_header = port == (tls ? 443 : 80) ? h : h + ":" + std::to_string(port);
  if (tls) t.tls = e.upstream_tls;
  t.connect_address = address;
  t.connect_port = connect_port != port ? connect_port : 0;
  t.mark = e.settings.upstream_mark;
  // Connections to one name at one checked address are interchangeable.
  t.pool_key = std::string(tls ? "edge+https://" : "edge+http://") + h + ":" + std::to_string(port) + "@" + address +
               ":" + std::to_string(connect_port != 0 ? connect_port : port);
  return t;
}

std::shared_ptr<const edge_runtime> build_edge_runtime(const config& cfg, metrics& stats,
                                                       const filter_chain_builder& chain,
                                                       std::shared_ptr<const edge_policy> policy,
                                                       const edge_runtime* previous) {
  auto e = std::make_shared<edge_runtime>();
  e->settings = cfg.edge();
  e->providers = load_catalogue(cfg.providers);
  e->upstream_tls = make_client_tls(cfg.upstream_ca_bundle);
  e->policy = policy ? std::move(policy) : default_edge_policy();
  e->guard = listen::destination_guard(cfg);
  const interception_config& ic = cfg.edge();
  if (ic.decrypts()) {
    if (previous && previous->ca && previous->ca->settings() == ic) {
      e->ca = previous->ca;  // same CA and settings: keep the warm leaf cache
    } else {
      e->ca = std::make_shared<intercept::authority>(ic);
    }
  }
  e->untrusted = previous ? previous->untrusted : std::make_shared<intercept::untrusted_clients>();
  if (previous) {
    e->stats = previous->stats;
  } else {
    e->stats = std::make_shared<listen::edge_metrics>(stats.workers());
    stats.add_section([m = e->stats](std::string& out) { m->render(out); });
  }
  // The gauges of the shared caches, read at scrape time through the newest snapshot's objects.
  std::weak_ptr<intercept::authority> ca = e->ca;
  std::weak_ptr<intercept::untrusted_clients> untrusted = e->untrusted;
  e->stats->set_extra([ca, untrusted](std::string& out) {
    if (auto a = ca.lock()) {
      const auto c = a->stats();
      write_metric_header(out, "customs_leaf_certificates_total", "counter", "Leaf certificates minted from the interception CA");
      write_sample(out, "customs_leaf_certificates_total", "event=\"minted\"", c.minted);
      write_sample(out, "customs_leaf_certificates_total", "event=\"renewed\"", c.renewed);
      write_sample(out, "customs_leaf_certificates_total", "event=\"evicted\"", c.evicted);
      write_sample(out, "customs_leaf_certificates_total", "event=\"failed\"", c.failed);
      write_metric_header(out, "customs_leaf_cache_hits_total", "counter", "Intercepted connections served from the leaf cache");
      write_sample(out, "customs_leaf_cache_hits_total", "", c.hits);
      write_metric_header(out, "customs_leaf_cache_size", "gauge", "Leaf certificates cached");
      write_sample(out, "customs_leaf_cache_size", "", c.size);
    }
    if (auto u = untrusted.lock()) {
      write_metric_header(out, "customs_untrusted_clients", "gauge",
                          "Client and host pairs remembered as rejecting the interception CA");
      write_sample(out, "customs_untrusted_clients", "", u->size());
    }
  });
  for (const auto& l : cfg.listeners) {
    e->users.push_back(l.proxy_auth ? listen::proxy_users::load(l.proxy_auth->users) : nullptr);
  }

  // One route per catalogue entry.
  const auto& entries = e->providers->entries();
  e->routes.reserve(entries.size());
  for (const auto& entry : entries) {
    route_config rc;
    rc.prefix = entry.host;
    rc.upstream = "https://" + entry.host;
    rc.url.tls = true;
    rc.url.host = entry.host;
    rc.url.port = 443;
    rc.api = entry.api;
    rc.jurisdiction = entry.jurisdiction;
    rc.ca_bundle = cfg.upstream_ca_bundle;
    route_runtime r;
    r.cfg = std::make_shared<const route_config>(rc);
    r.upstream = make_edge_target(*e, entry.host, 443, true, {});
    r.filters = chain ? chain(rc) : default_filter_chain(rc);
    r.stats = &stats.route(rc.prefix);
    e->routes.push_back(std::move(r));
  }
  route_config un;
  un.prefix = "uninspected";
  un.upstream = "edge";
  un.jurisdiction = "";
  e->uninspected.cfg = std::make_shared<const route_config>(un);
  e->uninspected.filters = default_filter_chain(un);
  e->uninspected.stats = &stats.route(un.prefix);
  if (!ic.decrypts()) {
    log_line(log_level::warn, "interception_off")
        .kv("warning", "no interception CA: catalogued hosts are tunnelled like any other host, never inspected");
  }
  log_line(log_level::info, "catalogue_loaded").kv("hosts", static_cast<std::uint64_t>(entries.size()));
  return e;
}

}  // namespace customs::daemon
