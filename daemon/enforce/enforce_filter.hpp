#pragma once
// The enforcement filter: one per flow, on every route of a config that names
// rules. It resolves the flow's source, inspects and decides the request once,
// answers 451 / rewrites / tags, records "flow opened" in the audit trail and
// lets the request go (or answers) only once that record is durable; then it
// inspects the response (stream_guard for event streams, the whole body
// otherwise) and, for every flow, records "flow closed" with the final verdict.
//
// Response headers it sets on every enforced flow:
//   X-Customs-Verdict: allow | tag | redact | block | unscannable | refused
//                      (the request's verdict; a stream may still be cut later)
//   X-Customs-Rule:    rule ids that fired (tag, redact, block), comma-separated
//   X-Customs-Tags:    tags (also sent upstream with the request)
//   X-Customs-Response-Verdict / -Rule / -Tags: the same for a non-streamed
//                      response that was tagged, redacted or blocked.
//
// What is scanned and where a redaction cannot go: daemon/dialect/request.hpp
// and stream_guard.hpp. Bounds (each counted in customs_limit_hits_total):
//   findings_per_flow   per flow and direction; past it a block among what was
//                       found blocks, anything else is unscannable
//   content_bytes       text kept per flow and direction for content: full
//                       (kept_texts.hpp)
//   decoded_text_bytes  inline files decoded per request (too_much_text: unscannable)
//   inspect_pool        bodies of inspect_pool::offload_bytes or more are
//                       inspected on the pool; past its jobs, 503 customs_busy
//
// Final actions in the audit index: allow, tag, redact, block (the most severe
// of request and response), unscannable (not parsed; see `unscannable`),
// refused (no source, or the audit trail did not take the record: 403 / 503),
// error (an internal failure, or the flow failed before its request was read).

#include "daemon/config.hpp"
#include "daemon/enforce/enforce_metrics.hpp"
#include "daemon/enforce/sources.hpp"
#include "daemon/filter.hpp"
#include "daemon/volume/counting.hpp"
#include "policy/policy.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace customs::audit {
class writer;
}

namespace customs::daemon::enforce {

// What the flows of one config enforce with. Immutable once built; each flow
// keeps the snapshot it started with, so a reload never changes a flow in flight.
class inspect_pool;

struct policy_snapshot {
  policy::rule_set_ptr rules;
  source_resolver sources;
  unscannable_mode unscannable = unscannable_mode::block;
  audit_content content = audit_content::findings;
  std::uint64_t findings_per_flow = 10000;    // limits.findings_per_flow
  std::uint64_t content_bytes = 1 << 20;      // audit.content_bytes
  std::size_t decoded_text_bytes = 8u << 20;  // inline files per request (request.hpp)
  // Large request bodies are inspected here; null: on the flow's worker.
  std::shared_ptr<inspect_pool> pool;
  bool refuse_on_audit_failure = true;
  bool inject_stream_usage = true;         // metering.stream_usage: inject
  std::shared_ptr<audit::writer> audit;    // null only in tests of the filter alone
  std::shared_ptr<enforce_metrics> stats;  // never null
  // The volume counters; null when the config has no `volumes` (then the rule
  // set declares none: the enforcer refuses the other case).
  std::shared_ptr<volume::volume_counter> volumes;
  std::vector<std::string> rule_files;     // as configured
  std::chrono::system_clock::time_point loaded_at;
};

// The chain of a route: one enforcement filter per flow.
[[nodiscard]] std::vector<filter_factory> enforce_chain(std::shared_ptr<const policy_snapshot> snap,
                                                        const route_config& route);

}  // namespace customs::daemon::enforce
