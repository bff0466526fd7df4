#include "tools/replay_engine.hpp"

#include <stdexcept>

namespace customs::tools {

// KNOWN GAP: the policy engine (policy::load_rule_set, rule_set::scan/decide) is
// being built on another branch; until it lands, replay reports that it cannot
// run (exit 2) instead of pretending to evaluate.
replay_engine make_replay_evaluator(const std::vector<std::filesystem::path>&) {
  throw std::runtime_error(
      "replay needs the policy engine, which this build of customsctl does not include yet");
}

}  // namespace customs::tools
