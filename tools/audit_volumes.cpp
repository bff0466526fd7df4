// customsctl audit volumes, and report groups read from payloads.
#include "tools/audit_volumes.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "audit/format.hpp"
#include "crypto/key_file.hpp"
#include "policy/volume.hpp"

namespace customs::tools {
namespace {

namespace json = boost::json;

struct key_state {
  std::map<std::string, std::int64_t> last_seen;  // hex hash -> last flow time (unix seconds)
  std::uint64_t flows = 0;                        // flows that added to it
  std::uint64_t reported = 0;                     // the highest count customsd reported
  std::string level;                              // the level of that report
  std::string zone;                               // the window's time zone, as the latest flow recorded it
  std::int64_t zone_time = 0;                     // that flow's time
  bool without_zone = false;                      // a flow recorded no zone (written before zones were)
};

std::string date_part(std::int64_t time_us, std::size_t n) { return audit::format::format_time(time_us).substr(0, n); }

std::int64_t seconds_of(std::int64_t time_us) {
  return time_us / 1'000'000 - (time_us % 1'000'000 < 0 ? 1 : 0);
}

// A rolling window's length from its label: "rolling-365d" is {365, 0},
// "rolling-12m" {0, 12}; {0, 0} for calendar windows.
std::pair<std::uint32_t, std::uint32_t> rolling_length(const std::string& window) {
  if (!window.starts_with("rolling-") || window.size() < 10) return {0, 0};
  std::uint32_t n = 0;
  const char* b = window.data() + 8;
  const char* e = window.data() + window.size() - 1;
  if (std::from_chars(b, e, n).ptr != e || n == 0 || n > 100'000) return {0, 0};
  if (window.back() == 'd') return {n, 0};
  if (window.back() == 'm') return {0, n};
  return {0, 0};
}

// The first second a rolling window ending at `end` holds, reckoned as customsd
// reckons it (policy::rolling_window_start) in the zone the flows recorded.
// Flows written before the trail recorded zones, or a zone this machine cannot
// load, count months as 31 days: an upper bound that never drops a subject
// customsd still counted. `exact` says which.
std::int64_t window_start(const key_state& k, std::uint32_t days, std::uint32_t months, std::int64_t end,
                          std::map<std::string, std::optional<policy::time_zone>>& zones, bool& exact) {
  exact = true;
  if (days > 0) return policy::rolling_window_start(policy::time_zone(), end, days, 0);
  const std::optional<policy::time_zone>* zone = nullptr;
  if (!k.zone.empty()) {
    auto it = zones.find(k.zone);
    if (it == zones.end()) {
      std::string why;
      auto z = policy::time_zone::load(k.zone, why);
      // The name comes from the trail: written escaped, as a JSON string.
      if (!z)
        std::cerr << "customsctl: time zone " << json::serialize(json::string(k.zone)) << ": " << why
                  << "; months counted as 31 days\n";
      it = zones.emplace(k.zone, std::move(z)).first;
    }
    zone = &it->second;
  }
  if (k.without_zone || zone == nullptr || !zone->has_value()) {
    exact = false;
    return end - std::int64_t{months} * 31 * 86400;
  }
  return policy::rolling_window_start(**zone, end, 0, months);
}

std::string cell(const std::string& s) { return s.empty() ? "-" : s; }

enum class fmt { table, csv, json };

fmt format_of(const parsed_args& a) {
  const auto v = a.get("format").value_or("table");
  if (v == "table") return fmt::table;
  if (v == "csv") return fmt::csv;
  if (v == "json" || v == "jsonl") return fmt::json;
  throw usage_error("--format takes table, csv or json");
}

}  // namespace

int cmd_audit_volumes(const parsed_args& a, const audit::record_filter& filter) {
  const auto out = format_of(a);
  audit::reader r(a.require("db"));
  r.set_auditor_key(crypto::load_auditor_secret(a.require("key")));
  std::map<std::tuple<std::string, std::string, std::string>, key_state> keys;
  std::uint64_t flows = 0, unreadable = 0, erased = 0;
  std::int64_t last_time = 0;
  r.for_each(filter, [&](const audit::read_record& rec) {
    if (rec.kind != audit::record_kind::flow_opened) return true;
    ++flows;
    last_time = std::max(last_time, rec.time_us);
    if (rec.erased) {
      ++erased;
      return true;
    }
    if (!rec.payload) {
      ++unreadable;
      return true;
    }
    boost::system::error_code ec;
    const auto v = json::parse(*rec.payload, ec);
    if (ec || !v.is_object()) {
      ++unreadable;
      return true;
    }
    const auto& o = v.get_object();
    if (const auto* hits = o.if_contains("volumes"); hits && hits->is_array()) {
      for (const auto& h : hits->get_array()) {
        if (!h.is_object()) continue;
        const auto& ho = h.get_object();
        const auto str = [&](const char* k) {
          const auto* x = ho.if_contains(k);
          return x && x->is_string() ? std::string(x->get_string()) : std::string();
        };
        auto& k = keys[{str("counter"), str("scope"), str("window")}];
        if (const auto* c = ho.if_contains("count"); c && c->is_int64() && c->get_int64() >= 0 &&
                                                     static_cast<std::uint64_t>(c->get_int64()) >= k.reported) {
          k.reported = static_cast<std::uint64_t>(c->get_int64());
          k.level = str("level");
        }
      }
    }
    if (const auto* subs = o.if_contains("volume_subjects"); subs && subs->is_array()) {
      for (const auto& s : subs->get_array()) {
        if (!s.is_object()) continue;
        const auto& so = s.get_object();
        const auto str = [&](const char* k) {
          const auto* x = so.if_contains(k);
          return x && x->is_string() ? std::string(x->get_string()) : std::string();
        };
        auto& k = keys[{str("counter"), str("scope"), str("window")}];
        ++k.flows;
        const auto zone = str("zone");
        if (zone.empty()) {
          k.without_zone = true;
        } else if (k.zone.empty() || rec.time_us >= k.zone_time) {
          k.zone = zone;
          k.zone_time = rec.time_us;
        }
        const std::int64_t seen = seconds_of(rec.time_us);
        if (const auto* hs = so.if_contains("subjects"); hs && hs->is_array())
          for (const auto& h : hs->get_array())
            if (h.is_string()) {
              auto [it, fresh] = k.last_seen.try_emplace(std::string(h.get_string()), seen);
              if (!fresh) it->second = std::max(it->second, seen);
            }
      }
    }
    return true;
  });
  // Rolling windows count the subjects last seen within them, the window
  // ending at the end of the period read (--until, else the last flow), to
  // the second.
  const std::int64_t end = seconds_of(filter.until_us.value_or(last_time));
  struct row {
    std::string counter, scope, window, zone;
    std::uint64_t subjects, flows, reported;
    std::string level;
    std::optional<std::int64_t> start;  // rolling windows: the first second counted
    bool exact = true;
  };
  std::vector<row> rows;
  std::map<std::string, std::optional<policy::time_zone>> zones;
  bool approximate = false;
  for (const auto& [id, k] : keys) {
    row x{std::get<0>(id), std::get<1>(id), std::get<2>(id), k.zone, 0, k.flows, k.reported, k.level, {}, true};
    const auto [days, months] = rolling_length(x.window);
    if (days > 0 || months > 0) x.start = window_start(k, days, months, end, zones, x.exact);
    approximate = approximate || !x.exact;
    for (const auto& [_, t] : k.last_seen) x.subjects += (!x.start || t >= *x.start) ? 1 : 0;
    rows.push_back(std::move(x));
  }
  switch (out) {
    case fmt::json: {
      json::array arr;
      for (const auto& x : rows) {
        json::object o{{"counter", x.counter}, {"scope", x.scope}, {"window", x.window},
                       {"subjects", x.subjects}, {"flows", x.flows}, {"reported", x.reported},
                       {"level", x.level}};
        if (!x.zone.empty()) o["zone"] = x.zone;
        if (x.start) {
          o["window_start"] = audit::format::format_time(*x.start * 1'000'000);
          o["window_exact"] = x.exact;
        }
        arr.push_back(std::move(o));
      }
      json::object doc{{"volumes", std::move(arr)}, {"flows_read", flows}, {"erased", erased},
                       {"unreadable", unreadable}};
      std::cout << json::serialize(doc) << "\n";
      break;
    }
    case fmt::csv:
      std::cout << "counter,scope,window,subjects,flows,reported,level\r\n";
      for (const auto& x : rows)
        std::cout << x.counter << "," << x.scope << "," << x.window << "," << x.subjects << "," << x.flows << ","
                  << x.reported << "," << x.level << "\r\n";
      break;
    case fmt::table:
      std::cout << std::left << std::setw(28) << "COUNTER" << std::setw(28) << "SCOPE" << std::setw(14) << "WINDOW"
                << std::right << std::setw(12) << "SUBJECTS" << std::setw(10) << "FLOWS" << std::setw(12)
                << "REPORTED" << "  LEVEL\n";
      for (const auto& x : rows)
        std::cout << std::left << std::setw(28) << x.counter << std::setw(28) << cell(x.scope) << std::setw(14)
                  << (x.exact ? x.window : x.window + " ~") << std::right << std::setw(12) << x.subjects << std::setw(10) << x.flows
                  << std::setw(12) << x.reported << "  " << cell(x.level) << "\n";
      std::cout << flows << " flows read, " << erased << " erased (their subjects are not counted), " << unreadable
                << " unreadable\n";
      if (approximate)
        std::cout << "rolling month windows marked ~ hold flows that recorded no time zone: months counted as 31 "
                     "days, an upper bound (subjects up to 7 days older than customsd kept count too)\n";
      break;
  }
  return unreadable == 0 ? 0 : 1;
}

std::vector<audit::reader::group_totals> report_from_payloads(audit::reader& r, const std::vector<std::string>& by,
                                                              const audit::record_filter& f) {
  for (const auto& d : by)
    if (d != "src" && d != "dst" && d != "tenant" && d != "route" && d != "model" && d != "day" && d != "month" &&
        d != "year")
      throw std::invalid_argument("unknown report dimension \"" + d +
                                  "\" (use src, dst, tenant, route, model, day, month, year)");
  // Each flow's last record decides (its final verdict and usage); the model
  // is in the payloads.
  struct flow_state {
    audit::read_record last;
    std::string model;
  };
  std::map<std::string, flow_state> flows;
  std::vector<std::string> order;
  r.for_each(f, [&](const audit::read_record& rec) {
    if (rec.kind != audit::record_kind::flow_opened && rec.kind != audit::record_kind::flow_closed) return true;
    auto [it, fresh] = flows.try_emplace(rec.flow_id);
    if (fresh) order.push_back(rec.flow_id);
    it->second.last = rec;
    if (rec.payload) {
      boost::system::error_code ec;
      const auto v = json::parse(*rec.payload, ec);
      if (!ec && v.is_object())
        if (const auto* m = v.get_object().if_contains("model"); m && m->is_string()) it->second.model = m->get_string();
    }
    return true;
  });
  std::map<std::vector<std::string>, audit::reader::group_totals> groups;
  for (const auto& id : order) {
    const auto& fs = flows[id];
    const auto& x = fs.last.index;
    std::vector<std::string> key;
    for (const auto& d : by) {
      if (d == "src") key.push_back(x.src);
      else if (d == "dst") key.push_back(x.dst);
      else if (d == "tenant") key.push_back(x.tenant);
      else if (d == "route") key.push_back(x.route);
      else if (d == "model") key.push_back(fs.model);
      else if (d == "day") key.push_back(date_part(fs.last.time_us, 10));
      else if (d == "month") key.push_back(date_part(fs.last.time_us, 7));
      else key.push_back(date_part(fs.last.time_us, 4));
    }
    auto& g = groups[key];
    g.key = key;
    ++g.flows;
    g.blocked += x.action == "block";
    g.redacted += x.action == "redact";
    g.tagged += x.action == "tag";
    g.allowed += x.action == "allow";
    g.unscannable += x.action == "unscannable";
    g.refused += x.action == "refused";
    g.failed += x.action == "error";
    g.other = g.flows - g.allowed - g.tagged - g.redacted - g.blocked - g.unscannable - g.refused - g.failed;
    if (x.tokens_in == audit::tokens_unknown || x.tokens_out == audit::tokens_unknown) ++g.usage_unknown;
    if (x.tokens_in != audit::tokens_unknown) g.tokens_in += x.tokens_in;
    if (x.tokens_out != audit::tokens_unknown) g.tokens_out += x.tokens_out;
  }
  std::vector<audit::reader::group_totals> out;
  for (auto& [_, g] : groups) out.push_back(std::move(g));
  return out;
}

}  // namespace customs::tools
