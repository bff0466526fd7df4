// Volume counters: compiling them and what a flow carries to them (see
// volume.hpp for the semantics).
#include "policy/volume.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "policy/model.hpp"
#include "policy/text.hpp"
#include "policy/volume_compile.hpp"

namespace customs::policy {
namespace {

using detail::compiled_rule_set;
using detail::volume_def;
using detail::volume_level_def;
using detail::volume_window;

bool pattern_selects(std::string_view pattern, std::string_view category) {
  if (pattern.ends_with(".*")) {
    const auto base = pattern.substr(0, pattern.size() - 2);
    return category == base || (category.size() > base.size() && category.starts_with(base) && category[base.size()] == '.');
  }
  return pattern == category;
}

const compiled_rule_set* compiled(const rule_set& rules) { return dynamic_cast<const compiled_rule_set*>(&rules); }

bool in_codes(const std::vector<std::string>& codes, std::string_view c) {
  return std::binary_search(codes.begin(), codes.end(), c, std::less<>());
}

// Whether a counter's `when` holds for the flow.
bool applies(const volume_def& v, const flow_context& ctx) {
  const auto side = [](const volume_def::matcher_text& m, const std::vector<std::string>& in,
                       const std::vector<std::string>& not_in, std::string_view value) {
    if (!m.any && !in_codes(in, value)) return false;
    return !in_codes(not_in, value);
  };
  if (!side(v.src, v.src_in, v.src_not, ctx.src)) return false;
  if (!side(v.dst, v.dst_in, v.dst_not, ctx.dst)) return false;
  if (!v.tenants.any && !in_codes(v.tenants.in, ctx.tenant)) return false;
  return !in_codes(v.tenants.not_in, ctx.tenant);
}

std::int64_t now_of(const flow_context& ctx, std::int64_t fallback) {
  if (!ctx.now) return fallback;
  return std::chrono::duration_cast<std::chrono::seconds>(ctx.now->time_since_epoch()).count();
}

// A level's action for this flow after the exceptions that lower it, and those
// exceptions.
action effective(const compiled_rule_set& set, const volume_level_def& l, const flow_context& ctx, std::int64_t now,
                 std::vector<std::string>* lowered) {
  action a = l.act;
  for (const auto x : l.lowered_by) {
    const auto& e = set.exceptions[x];
    if (now >= e.expires_end) continue;
    if (!e.tenants.empty() && !std::binary_search(e.tenants.begin(), e.tenants.end(), ctx.tenant)) continue;
    if (!e.routes.empty() && !std::binary_search(e.routes.begin(), e.routes.end(), ctx.route)) continue;
    if (e.act >= l.act) continue;
    a = std::min(a, e.act);
    if (lowered != nullptr) lowered->push_back(e.id);
  }
  return a;
}

std::string two(unsigned n) { return (n < 10 ? "0" : "") + std::to_string(n); }

// Index of a finding's detector (detectors are sorted by id).
std::optional<std::size_t> detector_of(const compiled_rule_set& set, const std::string& id) {
  const auto it = std::lower_bound(set.detectors.begin(), set.detectors.end(), id,
                                   [](const auto& d, const std::string& x) { return d.id < x; });
  if (it == set.detectors.end() || it->id != id) return std::nullopt;
  return static_cast<std::size_t>(it - set.detectors.begin());
}

bool counts_finding(const compiled_rule_set& set, const volume_def& v, const finding& f) {
  if (f.applied >= action::redact) return false;  // the identifier does not leave
  const auto d = detector_of(set, f.detector);
  return d && v.selects[*d];
}

void sort_unique(std::vector<std::string>& s) {
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
}

}  // namespace

namespace detail {

std::vector<std::tuple<origin, std::string, std::string>> compile_volumes(compiled_rule_set& set) {
  std::vector<std::tuple<origin, std::string, std::string>> errors;
  std::map<std::string, const group_def*> groups;
  for (const auto& g : set.groups) groups.emplace(g.id, &g);
  const auto expand = [&](const std::vector<std::string>& names) {
    std::vector<std::string> out;
    for (const auto& n : names) {
      if (auto it = groups.find(n); it != groups.end()) out.insert(out.end(), it->second->members.begin(), it->second->members.end());
      else out.push_back(n);
    }
    sort_unique(out);
    return out;
  };
  std::map<std::string, const volume_def*> seen;
  for (auto& v : set.volumes) {
    origin at{v.file, v.line, v.col};
    if (auto [it, fresh] = seen.emplace(v.id, &v); !fresh) {
      errors.emplace_back(at, "E_DUPLICATE_ID", "volume counter '" + v.id + "': the id is already used at " +
                                                    it->second->file + ":" + std::to_string(it->second->line) + ":" +
                                                    std::to_string(it->second->col));
    }
    v.src_in = expand(v.src.in);
    v.src_not = expand(v.src.not_in);
    v.dst_in = expand(v.dst.in);
    v.dst_not = expand(v.dst.not_in);
    sort_unique(v.tenants.in);
    sort_unique(v.tenants.not_in);
    v.selects.assign(set.detectors.size(), false);
    for (std::size_t i = 0; i < set.detectors.size(); ++i) {
      const auto& d = set.detectors[i];
      bool named = v.detectors.empty() && v.categories.empty();
      named = named || std::binary_search(v.detectors.begin(), v.detectors.end(), d.id);
      named = named || std::any_of(v.categories.begin(), v.categories.end(),
                                   [&](const auto& c) { return pattern_selects(c, d.category); });
      v.selects[i] = named && (!v.sensitive || *v.sensitive == d.sensitive);
    }
    for (auto& l : v.levels) {
      l.lowered_by.clear();
      for (std::size_t x = 0; x < set.exceptions.size(); ++x) {
        const auto& e = set.exceptions[x];
        if (std::binary_search(e.rules.begin(), e.rules.end(), l.id)) {
          if (e.act == action::redact && l.act == action::block)
            errors.emplace_back(e.at, "E_VALUE", "exception '" + e.id + "' (action): volume level '" + l.id +
                                                     "' blocks a flow; lower it to tag or allow");
          l.lowered_by.push_back(static_cast<std::uint32_t>(x));
        }
      }
    }
  }
  return errors;
}

}  // namespace detail

bool has_volumes(const rule_set& rules) noexcept {
  const auto* set = compiled(rules);
  return set != nullptr && !set->volumes.empty();
}

std::vector<std::string> volume_counter_ids(const rule_set& rules) {
  std::vector<std::string> ids;
  if (const auto* set = compiled(rules))
    for (const auto& v : set->volumes) ids.push_back(v.id);
  return ids;
}

std::int64_t rolling_window_start(const time_zone& zone, std::int64_t now, std::uint32_t days,
                                  std::uint32_t months) noexcept {
  if (days > 0) return now - std::int64_t{days} * 86400;
  const auto day = zone.date_at(now);
  const std::int64_t since_midnight = now - zone.local_midnight(day.year, day.month, day.day);
  const std::int64_t back = std::int64_t{day.year} * 12 + (day.month - 1) - months;
  const int y = static_cast<int>(back / 12);
  const unsigned m = static_cast<unsigned>(back % 12) + 1;
  static constexpr unsigned lengths[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  unsigned last = lengths[m - 1];
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) last = 29;
  return zone.local_midnight(y, m, std::min(day.day, last)) + since_midnight;
}

std::vector<volume_demand> volume_demands(const rule_set& rules, const flow_context& ctx, const verdict& v,
                                          std::int64_t now_unix) {
  std::vector<volume_demand> out;
  const auto* set = compiled(rules);
  if (set == nullptr || set->volumes.empty() || ctx.dir != direction::request || v.act == action::block) return out;
  const std::int64_t now = now_of(ctx, now_unix);
  for (std::uint32_t i = 0; i < set->volumes.size(); ++i) {
    const volume_def& c = set->volumes[i];
    if (!applies(c, ctx)) continue;
    volume_demand d;
    for (const auto& f : v.findings) {
      if (!counts_finding(*set, c, f)) continue;
      std::string id = text::alnum_upper(f.text);
      if (id.empty()) continue;
      d.subjects.push_back(f.category + ":" + id);
    }
    if (d.subjects.empty()) continue;
    sort_unique(d.subjects);
    d.counter = i;
    d.counter_id = c.id;
    const auto add = [&](std::string_view name, std::string_view value) {
      if (!d.scope.empty()) d.scope += ',';
      d.scope += name;
      d.scope += '=';
      d.scope += value;
    };
    if (c.per_tenant) add("tenant", ctx.tenant);
    if (c.per_src) add("src", ctx.src);
    if (c.per_dst) add("dst", ctx.dst);
    const time_zone utc;
    const time_zone& zone = c.zone ? *c.zone : utc;
    switch (c.window) {
      case volume_window::calendar_year: {
        const auto day = zone.date_at(now);
        d.window = std::to_string(day.year);
        d.expires_at = zone.local_midnight(day.year + 1, 1, 1);
        break;
      }
      case volume_window::calendar_month: {
        const auto day = zone.date_at(now);
        d.window = std::to_string(day.year) + "-" + two(day.month);
        d.expires_at = day.month == 12 ? zone.local_midnight(day.year + 1, 1, 1)
                                       : zone.local_midnight(day.year, day.month + 1, 1);
        break;
      }
      case volume_window::rolling:
        d.window = "rolling-" + (c.rolling_days > 0 ? std::to_string(c.rolling_days) + "d"
                                                    : std::to_string(c.rolling_months) + "m");
        d.expire_before = rolling_window_start(zone, now, c.rolling_days, c.rolling_months);
        d.expires_at = now + std::int64_t{c.rolling_days > 0 ? c.rolling_days : c.rolling_months * 31} * 86400;
        break;
    }
    d.zone = zone.name();
    d.key = c.id + "|" + d.scope + "|" + d.window;
    for (const auto& l : c.levels) {
      if (effective(*set, l, ctx, now, nullptr) >= action::redact) {
        d.limit = l.at_least - 1;
        break;
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

void apply_volumes(const rule_set& rules, const flow_context& ctx, verdict& v, std::span<const volume_demand> demands,
                   std::span<const volume_count> counts) {
  const auto* set = compiled(rules);
  if (set == nullptr) return;
  const std::int64_t now =
      now_of(ctx, std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  const std::size_t n = std::min(demands.size(), counts.size());
  for (std::size_t i = 0; i < n; ++i) {
    const volume_demand& d = demands[i];
    const volume_count& c = counts[i];
    // Not added, but not over its own limit either: another counter stopped the
    // flow; this one is counted again in the next round.
    if (!c.added && c.after <= d.limit) continue;
    const volume_def& def = set->volumes[d.counter];
    volume_hit h;
    h.counter = d.counter_id;
    h.scope = d.scope;
    h.window = d.window;
    h.count = c.after;
    h.added = c.added ? c.after - c.before : 0;
    action worst = action::allow;
    for (const auto& l : def.levels) {
      if (l.at_least > c.after) break;
      std::vector<std::string> lowered;
      const action a = effective(*set, l, ctx, now, &lowered);
      h.level = l.id;
      v.exceptions.insert(v.exceptions.end(), lowered.begin(), lowered.end());
      if (a >= action::tag) {
        v.rules.push_back(l.id);
        v.tags.insert(v.tags.end(), l.tags.begin(), l.tags.end());
      }
      worst = std::max(worst, a);
    }
    h.act = worst;
    if (!c.added && worst == action::redact) {
      // The counter's subjects do not leave: their findings are redacted.
      for (auto& f : v.findings) {
        if (!counts_finding(*set, def, f)) continue;
        f.applied = action::redact;
        f.replacement = set->replacement(detail::redaction::label, f);
      }
    }
    v.act = std::max(v.act, worst);
    v.volumes.push_back(std::move(h));
  }
  sort_unique(v.rules);
  sort_unique(v.tags);
  sort_unique(v.exceptions);
}

void evaluate_volumes_in_memory(const rule_set& rules, const flow_context& ctx, verdict& v,
                                const std::map<std::string, std::uint64_t>& preset, std::int64_t now_unix) {
  std::map<std::string, std::set<std::string>> held;  // key -> subjects added by this evaluation
  for (std::size_t round = 0; round < 64; ++round) {
    const auto demands = volume_demands(rules, ctx, v, now_unix);
    if (demands.empty()) return;
    std::vector<volume_count> counts(demands.size());
    bool over = false;
    for (std::size_t i = 0; i < demands.size(); ++i) {
      const auto& d = demands[i];
      const auto it = preset.find(d.counter_id);
      const std::uint64_t base = it == preset.end() ? 0 : it->second;
      auto& mine = held[d.key];
      counts[i].before = base + mine.size();
      std::uint64_t fresh = 0;
      for (const auto& s : d.subjects) fresh += mine.contains(s) ? 0 : 1;
      counts[i].after = counts[i].before + fresh;
      over = over || counts[i].after > d.limit;
    }
    for (std::size_t i = 0; i < demands.size(); ++i) {
      counts[i].added = !over;
      if (!over) held[demands[i].key].insert(demands[i].subjects.begin(), demands[i].subjects.end());
    }
    apply_volumes(rules, ctx, v, demands, counts);
    if (!over || v.act == action::block) return;
  }
}

}  // namespace customs::policy
