#pragma once
// The rule engine behind `customsctl audit replay`: rule files loaded into an
// evaluator for audit::replay (which itself does not depend on policy/).

#include <filesystem>
#include <string>
#include <vector>

#include "audit/replay.hpp"

namespace customs::tools {

struct replay_engine {
  audit::replay_evaluator evaluate;
  std::string description;  // the rule set's id, version and hash
};

// Control plane: throws std::runtime_error carrying the rule files' diagnostics
// when they do not load.
[[nodiscard]] replay_engine make_replay_evaluator(const std::vector<std::filesystem::path>& rules);

}  // namespace customs::tools
