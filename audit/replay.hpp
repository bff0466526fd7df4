#pragma once
// Replay: re-runs recorded flows through another rule set and lists the flows
// whose action would change. The rule engine is passed in as an evaluator so that
// audit/ does not depend on policy/ (customsctl wires policy::rule_set in; the
// tests use a fake). Needs payloads recorded with text ("full" mode): the
// "request_texts" and "response_texts" keys of the payload (see audit.hpp).

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "audit/reader.hpp"

namespace customs::audit {

// What the evaluator sees of one flow: its context and recorded texts.
struct replay_input {
  std::string flow_id;
  std::int64_t time_us = 0;  // of the flow's first record
  std::string route, src, dst, tenant;
  std::vector<std::string> request_texts;
  // Indices into request_texts of the texts customsd kept apart from the
  // conversation, joined only with each other (the payload's
  // "request_texts_apart": the request target and the header fields). Trails
  // written before it was recorded do not have it: customsd then joined every
  // text.
  std::vector<std::size_t> request_apart;
  std::vector<std::string> response_texts;
};

// What the evaluator decides: action name ("allow", "tag", "redact", "block")
// and the ids of the rules that fired.
struct replay_outcome {
  std::string action;
  std::vector<std::string> rules;
};
using replay_evaluator = std::function<replay_outcome(const replay_input&)>;

struct replay_change {
  std::string flow_id;
  std::int64_t time_us = 0;
  std::string old_action;
  std::vector<std::string> old_rules;
  std::string new_action;
  std::vector<std::string> new_rules;
};

struct replay_summary {
  std::uint64_t flows = 0;           // flows seen
  std::uint64_t replayed = 0;        // flows with recorded text, evaluated
  std::uint64_t changed = 0;
  std::uint64_t not_replayable = 0;  // no text recorded, erased, or undecryptable
  std::vector<replay_change> changes;  // in order of each flow's last record
  struct skipped_flow {
    std::string flow_id;
    std::string reason;
  };
  std::vector<skipped_flow> skipped;
};

// The reader must have an auditor key set. Flows are taken one at a time, in the
// order of each flow's last record, with all their records: memory holds one
// flow's texts (and the list of changes and skipped flows that is the result),
// whatever the trail holds. Throws std::runtime_error on a database error.
[[nodiscard]] replay_summary replay(reader& r, const record_filter& f, const replay_evaluator& eval);

}  // namespace customs::audit
