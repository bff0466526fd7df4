#pragma once
// What rule authors' tools need beyond the data-plane contract (policy.hpp):
// the embedded tests of the rule files, and descriptions of what a loaded set
// holds. Used by customsctl rules check / test / explain.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/policy.hpp"

namespace customs::policy {

struct rule_test_result {
  std::string id;
  std::string file;
  int line = 0;
  int col = 0;
  // One line per failed expectation, e.g. "action: expected block, got redact".
  std::vector<std::string> failures;
  [[nodiscard]] bool passed() const noexcept { return failures.empty(); }
};

struct rule_test_report {
  std::vector<rule_test_result> results;  // in file order
  std::size_t passed = 0;
  std::size_t failed = 0;
};

// Runs every embedded test of a set loaded by load_rule_set. Each test's text is
// evaluated whole; a test given as `chunks` is also fed to a stream_scanner
// chunk by chunk, which must agree with the whole-text result. A test's
// expected findings are compared with the findings of the detectors of its own
// pack and of the detectors it names, so that packs loaded together keep their
// tests. Tests without `now` judge exception expiry at the current time.
// `volumes` sets the starting count of volume counters (counter id -> subjects
// already counted) for tests that do not set it themselves.
[[nodiscard]] rule_test_report run_rule_tests(const rule_set& rules,
                                              const std::map<std::string, std::uint64_t>& volumes = {});

struct rule_set_summary {
  std::vector<std::pair<std::string, std::string>> packs;  // id, version
  std::size_t groups = 0;
  std::size_t detectors = 0;
  std::size_t rules = 0;
  std::size_t exceptions = 0;
  std::size_t tests = 0;
  std::size_t volumes = 0;  // volume counters
};
[[nodiscard]] rule_set_summary summarize(const rule_set& rules);

struct rule_info {
  std::string id;
  std::string pack;
  std::string description;
  action act = action::allow;
  std::vector<std::string> references;
};
[[nodiscard]] std::optional<rule_info> describe_rule(const rule_set& rules, const std::string& id);

// A match shown without giving it away: letters and digits but the last four
// become '*', separators stay.
[[nodiscard]] std::string mask_match(std::string_view text);

}  // namespace customs::policy
