#pragma once
// Compiling the volume counters of a loaded set (private to policy/): expands
// jurisdiction groups, resolves the detectors each counter selects and the
// exceptions that lower each level, checks ids. Called by the loader once the
// set's detectors, rules, groups and exceptions are read and sorted.

#include <string>
#include <tuple>
#include <vector>

#include "policy/model.hpp"

namespace customs::policy::detail {

// Errors as (origin, code, message).
[[nodiscard]] std::vector<std::tuple<origin, std::string, std::string>> compile_volumes(compiled_rule_set& set);

}  // namespace customs::policy::detail
