#pragma once
// One flow as replay() gathers it from its flow records (audit/replay.cpp):
// the part of replay that reads decrypted payloads, which whoever hands an
// auditor the database controls. replay() is the interface; this is exposed
// for the fuzz target (tests/fuzz/fuzz_replay_payload.cpp) and tests.

#include <string>
#include <vector>

#include "audit/reader.hpp"
#include "audit/replay.hpp"

namespace customs::audit {

struct replay_flow {
  replay_input in;
  std::string old_action;
  std::vector<std::string> old_rules;
  bool have_text = false;    // a payload had "request_texts" or "response_texts"
  bool have_record = false;
  std::string problem;  // why it cannot be replayed
  // Why customsd recorded no text, when its request verdict says: a request
  // that was unscannable, refused or failed has no texts in any payload mode.
  std::string no_text_reason;
};

// Adds one flow record (opened or closed; a flow's records in seq order) to
// `f`: the first record's flow id and time, the latest non-empty index fields
// and the latest action and rules, the payload's texts appended (strings only)
// and its "request_texts_apart" entries that are indices of this record's
// request texts (anything else in that list is ignored). A payload that is
// missing or not a JSON object sets `problem` (the first one stays). Never
// throws on any payload.
void absorb(replay_flow& f, const read_record& rec);

}  // namespace customs::audit
