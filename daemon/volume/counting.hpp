#pragma once
// Counting a request flow's data subjects: the rounds of policy/volume.hpp
// against the configured store, with the subject hashes computed here (the
// identifiers themselves never leave this function), and on_unavailable when
// the store cannot answer.

#include <memory>
#include <string>
#include <vector>

#include "daemon/volume/counter_store.hpp"
#include "daemon/volume/subject_key.hpp"
#include "policy/policy.hpp"

namespace customs::daemon::volume {

// What one flow did to the counters, for the audit trail and the metrics.
struct counting_outcome {
  bool refused = false;      // the store was unavailable and on_unavailable is refuse
  bool used_local = false;   // the store was unavailable; the local fallback counted
  std::string detail;        // why the store was unavailable
  std::uint32_t rounds = 0;
  // Per key the flow's subjects were added to: their hashes (what
  // `customsctl audit volumes` recomputes the counters from).
  struct added_key {
    std::string key, counter, scope, window;
    std::vector<subject_hash> subjects;
  };
  std::vector<added_key> added;
  std::vector<std::string> errors;  // store errors met (unavailable, timeout, failed)
};

class volume_counter {
 public:
  // primary: the configured store; local: the fallback when on_unavailable is
  // local (null with refuse).
  volume_counter(std::shared_ptr<counter_store> primary, std::shared_ptr<counter_store> local,
                 std::shared_ptr<const subject_hasher> hasher);

  // Data plane; never throws. v is the decided request verdict; it is escalated
  // in place (levels, redactions, block).
  [[nodiscard]] counting_outcome run(const policy::rule_set& rules, const policy::flow_context& ctx,
                                     policy::verdict& v, std::int64_t now_unix) const noexcept;

  [[nodiscard]] std::string_view backend() const noexcept { return primary_->backend(); }
  [[nodiscard]] counter_store& primary() noexcept { return *primary_; }

 private:
  std::shared_ptr<counter_store> primary_;
  std::shared_ptr<counter_store> local_;
  std::shared_ptr<const subject_hasher> hasher_;
};

}  // namespace customs::daemon::volume
