#pragma once
// Volume counters as loaded (private to policy/; see volume.hpp for what they
// mean). Read by loader.cpp, compiled and evaluated by volume.cpp, hashed by
// canonical.cpp.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/policy.hpp"
#include "policy/time_zone.hpp"

namespace customs::policy::detail {

struct volume_level_def {
  std::string id;  // a rule id: exceptions lower it like a rule
  std::string description;
  std::uint64_t at_least = 0;  // reached when the count is >= this
  std::string threshold_text;  // "reaching: 100000" / "exceeding: 1000000", as written
  action act = action::tag;
  bool require_exception = false;  // written as require_exception: block unless lowered
  std::vector<std::string> tags;        // sorted, unique
  std::vector<std::string> references;  // as written
  int line = 0, col = 0;
  std::vector<std::uint32_t> lowered_by;  // compiled: exceptions naming it
};

enum class volume_window : std::uint8_t { calendar_year, calendar_month, rolling };

struct volume_def {
  std::string id;
  std::string pack;
  std::string description;
  std::string file;
  int line = 0, col = 0;
  // What counts: findings of the selected detectors.
  std::vector<std::string> detectors;   // sorted
  std::vector<std::string> categories;  // sorted ("pi.*" allowed)
  std::optional<bool> sensitive;
  std::vector<bool> selects;            // compiled, per detector index
  // Which flows: like a rule's when (request direction only).
  struct matcher_text {
    bool any = true;
    std::vector<std::string> in, not_in;
  };
  matcher_text src, dst, tenants;                // as written
  std::vector<std::string> src_in, src_not, dst_in, dst_not;  // compiled: codes
  // How subjects are split into separate counts.
  bool per_tenant = false, per_src = false, per_dst = false;
  volume_window window = volume_window::calendar_year;
  std::string time_zone_name = "UTC";
  std::shared_ptr<const time_zone> zone;  // compiled
  std::uint32_t rolling_days = 0;         // rolling windows of N days, or
  std::uint32_t rolling_months = 0;       // of N calendar months (the same day N months back)
  std::string rolling_text;               // as written: "12 months", "90 days"
  std::vector<volume_level_def> levels;   // sorted by at_least
  std::vector<std::string> references;
};

}  // namespace customs::policy::detail
