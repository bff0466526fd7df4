#pragma once
// Volume counters (public contract): rule files declare counters of distinct
// data subjects across flows, per scope and window, with levels that escalate
// the action once a threshold is reached (CAC 2024: 100,000 / 1,000,000
// individuals since 1 January; 28 CFR 202.205: more than 100 ... 100,000 U.S.
// persons in 12 months). policy/ says which subjects a flow carries to which
// counter and what a count means; the counter store itself (and the keyed
// hashing of identifiers) lives in the daemon, which alone does I/O.
//
// Life of a request flow with counters (daemon/volume/):
//   v = rules.decide(ctx, findings)
//   repeat:                                    (at most once per counter)
//     demands = volume_demands(rules, ctx, v)  the subjects whose identifiers
//                                              would leave, per counter key
//     if demands empty: done
//     counts = store.add(demands)              atomic: all added, or none when
//                                              any count would pass its limit
//     apply_volumes(rules, ctx, v, demands, counts)
//     if every demand was added or v.act is block: done
// A counter over its limit redacts or blocks per its level; its subjects then
// no longer leave, and the next round counts the others without them.
//
// Semantics: a counter holds the subjects whose identifiers left in its window
// (for rolling windows, with the time each was last seen). A subject counts once
// per window however often it travels. A level with action redact or block
// (after exceptions) is a limit: a flow whose new subjects would bring the count
// to the level is redacted or blocked and adds nothing, so the count never
// passes the first such level; subjects already counted travel freely. Levels
// with action tag are reached and passed (the flow is tagged and counted).

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "policy/policy.hpp"
#include "policy/time_zone.hpp"

namespace customs::policy {

// What one flow carries to one counter key.
struct volume_demand {
  std::uint32_t counter = 0;  // index of the counter in the rule set
  std::string counter_id;
  // counter id, scope and window, joined with '|': what the store keys on,
  // e.g. "cn.cac.personal|tenant=acme|2026" or "us.bulk.identifiers|dst=CN|rolling-365d".
  std::string key;
  std::string scope;   // "tenant=acme,src=CN,dst=US" restricted to the counter's `per`; "" pooled
  std::string window;  // "2026" (calendar year), "2026-05" (month), "rolling-365d"
  std::string zone;    // the time zone the window is reckoned in ("Asia/Shanghai", "UTC")
  // Rolling windows: subjects last seen before this instant (unix seconds) no
  // longer count. 0 for calendar windows.
  std::int64_t expire_before = 0;
  // When the window's key may be discarded (unix seconds): the end of a calendar
  // window, or now + the rolling length.
  std::int64_t expires_at = 0;
  // Normalised identifiers ("<category>:<letters and digits>"), sorted, unique.
  // The daemon stores keyed hashes of them, never these.
  std::vector<std::string> subjects;
  // The most subjects the key may hold after this flow for the flow to go
  // ahead (the first level with redact or block, minus one); max when none.
  std::uint64_t limit = ~std::uint64_t{0};
};

struct volume_count {
  std::uint64_t before = 0;  // subjects in the window before this flow
  std::uint64_t after = 0;   // with this flow's subjects (whether or not they were added)
  bool added = false;        // this flow's subjects were added
};

// The first instant (unix seconds) that a rolling window ending at `now` holds:
// `days` days back, else the same local time of day on the same day of the
// month `months` months back in `zone` (the last day of that month when it is
// shorter). customsd keeps a subject last seen at or after it; `customsctl audit
// volumes` recounts with the same instant.
[[nodiscard]] std::int64_t rolling_window_start(const time_zone& zone, std::int64_t now, std::uint32_t days,
                                                std::uint32_t months) noexcept;

// Whether the set declares any counter (flows pay nothing otherwise).
[[nodiscard]] bool has_volumes(const rule_set& rules) noexcept;

// The demands of a request flow: for every counter whose `when` holds, the
// subjects of findings it counts whose action leaves the identifier in clear
// (allow or tag). Empty for blocked verdicts and responses.
[[nodiscard]] std::vector<volume_demand> volume_demands(const rule_set& rules, const flow_context& ctx,
                                                        const verdict& v, std::int64_t now_unix);

// Applies the counts returned for `demands` (same order) to the verdict: levels
// reached add their rule id (the level id), tags and action; a limit passed
// redacts the counter's findings or blocks the flow. Records every counter the
// flow touched in v.volumes.
void apply_volumes(const rule_set& rules, const flow_context& ctx, verdict& v,
                   std::span<const volume_demand> demands, std::span<const volume_count> counts);

// For rule tests and `explain`: runs the rounds above against counters held in
// memory, each key starting at `preset[counter id]` subjects (none of them the
// flow's), 0 when not given.
void evaluate_volumes_in_memory(const rule_set& rules, const flow_context& ctx, verdict& v,
                                const std::map<std::string, std::uint64_t>& preset, std::int64_t now_unix);

// The ids of the set's counters (for argument checking in customsctl).
[[nodiscard]] std::vector<std::string> volume_counter_ids(const rule_set& rules);

}  // namespace customs::policy
