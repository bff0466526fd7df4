#include "daemon/metrics.hpp"

#include <cstdio>

namespace customs::daemon {

void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

namespace {

void append_number(std::string& out, double v) {
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "%.9g", v);
  out.append(buf, static_cast<std::size_t>(n));
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// "name{labels} " (no braces without labels).
void begin_sample(std::string& out, std::string_view name, std::string_view labels) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
}

void sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t v) {
  begin_sample(out, name, labels);
  out += std::to_string(v);
  out += '\n';
}

std::string route_label(const route_metrics& r) {
  std::string s = "route=\"";
  append_label_value(s, r.label().empty() ? std::string_view("none") : std::string_view(r.label()));
  s += '"';
  return s;
}

}  // namespace

void write_metric_header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  header(out, name, type, help);
}

void write_sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t v) {
  sample(out, name, labels, v);
}

void write_gauge_value(std::string& out, std::string_view name, std::string_view labels, double v) {
  begin_sample(out, name, labels);
  append_number(out, v);
  out += '\n';
}

void write_histogram(std::string& out, std::string_view name, std::string_view labels,
                     const std::vector<const histogram*>& shards) {
  if (shards.empty()) return;
  const auto& bounds = shards.front()->bounds();
  const std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b <= bounds.size(); ++b) {
    for (const auto* h : shards) cumulative += h->buckets[b].get();
    std::string l = prefix + "le=\"";
    if (b == bounds.size()) l += "+Inf";
    else append_number(l, bounds[b]);
    l += '"';
    sample(out, std::string(name) + "_bucket", l, cumulative);
  }
  std::uint64_t sum_ns = 0, count = 0;
  for (const auto* h : shards) {
    sum_ns += h->sum_ns.get();
    count += h->count.get();
  }
  write_gauge_value(out, std::string(name) + "_sum", labels, static_cast<double>(sum_ns) / 1e9);
  sample(out, std::string(name) + "_count", labels, count);
}

std::string_view to_string(limit_key k) noexcept {
  switch (k) {
    case limit_key::header_bytes: return "header_bytes";
    case limit_key::header_fields: return "header_fields";
    case limit_key::field_bytes: return "field_bytes";
    case limit_key::target_bytes: return "target_bytes";
    case limit_key::trailer_bytes: return "trailer_bytes";
    case limit_key::chunk_extension_bytes: return "chunk_extension_bytes";
    case limit_key::request_body_bytes: return "request_body_bytes";
    case limit_key::response_header_bytes: return "response_header_bytes";
    case limit_key::response_body_bytes: return "response_body_bytes";
    case limit_key::sse_event_bytes: return "sse_event_bytes";
    case limit_key::connections: return "connections";
    case limit_key::count_: break;
  }
  return "unknown";
}

limit_key limit_of(framing_error e, wire_side side) noexcept {
  switch (e) {
    case framing_error::too_many_fields: return limit_key::header_fields;
    case framing_error::field_too_large: return limit_key::field_bytes;
    case framing_error::target_too_long: return limit_key::target_bytes;
    case framing_error::trailer_too_large: return limit_key::trailer_bytes;
    case framing_error::chunk_extension_too_large: return limit_key::chunk_extension_bytes;
    default: break;
  }
  return side == wire_side::client ? limit_key::header_bytes : limit_key::response_header_bytes;
}

void worker_shard::framing_refused(framing_error e, wire_side side) noexcept {
  if (e == framing_error::none || e == framing_error::count_) return;
  if (is_limit(e)) limit_hits[static_cast<std::size_t>(limit_of(e, side))].add();
  else framing_rejected[static_cast<std::size_t>(side)][static_cast<std::size_t>(e)].add();
}

void histogram::observe(std::chrono::nanoseconds d) noexcept {
  const double s = static_cast<double>(d.count()) / 1e9;
  const auto& bounds = *bounds_;
  std::size_t i = 0;
  while (i < bounds.size() && s > bounds[i]) ++i;
  buckets[i].add();
  sum_ns.add(static_cast<std::uint64_t>(d.count() < 0 ? 0 : d.count()));
  count.add();
}

route_metrics::route_metrics(std::string label, unsigned workers)
    : label_(std::move(label)), shards_(workers) {}

metrics::metrics(unsigned workers) : workers_(workers) { (void)route(""); }

route_metrics& metrics::route(std::string_view label) {
  std::lock_guard lock(mutex_);
  auto it = routes_.find(label);
  if (it == routes_.end()) {
    it = routes_.emplace(std::string(label),
                         std::make_unique<route_metrics>(std::string(label), workers())).first;
  }
  return *it->second;
}

void metrics::add_section(std::function<void(std::string&)> render) {
  std::lock_guard lock(mutex_);
  sections_.push_back(std::move(render));
}

std::string metrics::render() const {
  std::string out;
  out.reserve(16384);
  std::lock_guard lock(mutex_);

  auto sum_workers = [&](auto member) {
    std::uint64_t v = 0;
    for (const auto& w : workers_) v += (w.*member).get();
    return v;
  };
  // No customs_up: Prometheus records `up` for every target it scrapes.
  header(out, "customs_build_info", "gauge", "Always 1; the version of the running customsd in a label.");
  sample(out, "customs_build_info", "version=\"" CUSTOMS_VERSION "\"", 1);
  header(out, "customs_ready", "gauge", "1 when listeners accept and customsd is not draining.");
  sample(out, "customs_ready", "", ready.load() && !draining.load() ? 1 : 0);
  header(out, "customs_connections_active", "gauge", "Client connections open.");
  sample(out, "customs_connections_active", "", sum_workers(&worker_shard::connections_active));
  header(out, "customs_connections_accepted_total", "counter", "Client connections accepted.");
  sample(out, "customs_connections_accepted_total", "", sum_workers(&worker_shard::connections_accepted));
  header(out, "customs_connections_refused_total", "counter",
         "Client connections refused because limits.connections were open.");
  sample(out, "customs_connections_refused_total", "", sum_workers(&worker_shard::connections_refused));
  header(out, "customs_flows_active", "gauge", "Requests being handled.");
  sample(out, "customs_flows_active", "", sum_workers(&worker_shard::flows_active));
  header(out, "customs_streams_active", "gauge", "Event-stream responses being relayed.");
  sample(out, "customs_streams_active", "", sum_workers(&worker_shard::streams_active));
  header(out, "customs_limit_hits_total", "counter",
         "Messages or connections refused or cut because they went past a bound, by limits key.");
  for (std::size_t k = 0; k < static_cast<std::size_t>(limit_key::count_); ++k) {
    std::uint64_t v = 0;
    for (const auto& w : workers_) v += w.limit_hits[k].get();
    sample(out, "customs_limit_hits_total",
           "limit=\"" + std::string(to_string(static_cast<limit_key>(k))) + "\"", v);
  }
  header(out, "customs_framing_rejected_total", "counter",
         "Messages refused for their HTTP framing (smuggling-shaped or malformed), by side and rule.");
  for (std::size_t side = 0; side < 2; ++side) {
    for (std::size_t e = 1; e < static_cast<std::size_t>(framing_error::count_); ++e) {
      if (is_limit(static_cast<framing_error>(e))) continue;
      std::uint64_t v = 0;
      for (const auto& w : workers_) v += w.framing_rejected[side][e].get();
      sample(out, "customs_framing_rejected_total",
             std::string("side=\"") + (side == 0 ? "client" : "upstream") + "\",rule=\"" +
                 std::string(to_string(static_cast<framing_error>(e))) + "\"",
             v);
    }
  }
  header(out, "customs_internal_errors_total", "counter",
         "Exceptions caught inside customsd: the flow concerned failed, the process went on.");
  sample(out, "customs_internal_errors_total", "",
         sum_workers(&worker_shard::internal_errors) + control_internal_errors.get());
  header(out, "customs_reloads_total", "counter", "Config reloads, by result.");
  sample(out, "customs_reloads_total", "result=\"ok\"", reloads_ok.get());
  sample(out, "customs_reloads_total", "result=\"failed\"", reloads_failed.get());

  header(out, "customs_requests_total", "counter",
         "Requests by route and HTTP status sent to the client (0: no status was sent).");
  for (const auto& [_, r] : routes_) {
    const std::string rl = route_label(*r);
    for (std::size_t s = 0; s < max_status; ++s) {
      std::uint64_t v = 0;
      for (const auto& sh : r->shards()) v += sh.by_status[s].get();
      if (v == 0) continue;
      sample(out, "customs_requests_total", rl + ",status=\"" + std::to_string(s) + "\"", v);
    }
  }
  header(out, "customs_flow_failures_total", "counter", "Failed flows by route and reason.");
  for (const auto& [_, r] : routes_) {
    const std::string rl = route_label(*r);
    for (std::size_t f = 1; f < static_cast<std::size_t>(failure::count_); ++f) {
      std::uint64_t v = 0;
      for (const auto& sh : r->shards()) v += sh.failures[f].get();
      if (v == 0) continue;
      sample(out, "customs_flow_failures_total",
             rl + ",reason=\"" + std::string(to_string(static_cast<failure>(f))) + "\"", v);
    }
  }
  struct byte_counter {
    std::string_view name;
    counter route_shard::*member;
    std::string_view help;
  };
  const byte_counter byte_counters[] = {
      {"customs_received_bytes_total", &route_shard::bytes_in, "Bytes received from clients (request heads and bodies)."},
      {"customs_sent_bytes_total", &route_shard::bytes_out, "Bytes sent to clients (response heads and bodies)."},
      {"customs_upstream_received_bytes_total", &route_shard::upstream_bytes_in, "Response body bytes received from upstreams."},
      {"customs_upstream_sent_bytes_total", &route_shard::upstream_bytes_out, "Request bytes sent to upstreams."},
      {"customs_upstream_connects_total", &route_shard::upstream_connects, "New upstream connections."},
      {"customs_upstream_reuses_total", &route_shard::upstream_reuses, "Requests sent on a pooled upstream connection."},
  };
  for (const auto& bc : byte_counters) {
    header(out, bc.name, "counter", bc.help);
    for (const auto& [_, r] : routes_) {
      std::uint64_t v = 0;
      for (const auto& sh : r->shards()) v += (sh.*(bc.member)).get();
      sample(out, bc.name, route_label(*r), v);
    }
  }
  struct hist {
    std::string_view name;
    histogram route_shard::*member;
    std::string_view help;
  };
  const hist hists[] = {
      {"customs_request_duration_seconds", &route_shard::duration,
       "Time from the end of the request head to the last response byte sent."},
      {"customs_ttfb_seconds", &route_shard::ttfb,
       "Time from the end of the request head to the first response byte sent."},
  };
  for (const auto& h : hists) {
    header(out, h.name, "histogram", h.help);
    for (const auto& [_, r] : routes_) {
      std::vector<const histogram*> shards;
      for (const auto& sh : r->shards()) shards.push_back(&(sh.*(h.member)));
      write_histogram(out, h.name, route_label(*r), shards);
    }
  }
  for (const auto& s : sections_) s(out);
  return out;
}

}  // namespace customs::daemon
