#pragma once
// Verification of an audit database against the "valid if and only if" rule of
// format.hpp. Reads the database only (read-only open; safe while customsd
// writes). Names the first failing record and the kind of failure. The file is
// taken as hostile: its schema must be exactly the format's, every value is
// bounded, and memory does not grow with the number of records or checkpoints
// (see verifier.cpp for the bounds).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/format.hpp"
#include "crypto/crypto.hpp"
#include "crypto/key_file.hpp"

namespace customs::audit {

enum class failure_kind {
  altered,        // a record, its payload, an index field or a stored hash changed
  missing,        // a seq is absent from the middle of the chain
  reordered,      // records stand at other seqs than the ones they were written at
  truncated,      // records after the last one present were removed
  bad_mac,        // a record's MAC does not verify under its epoch's key
  bad_signature,  // a checkpoint's signature does not verify
};
[[nodiscard]] std::string_view to_string(failure_kind k) noexcept;

struct verify_failure {
  failure_kind kind = failure_kind::altered;
  std::uint64_t seq = 0;  // the first record concerned
  std::string detail;
};

struct verify_options {
  // The sealing seed (epoch-0 MAC key). Without it, MACs are not checked.
  const crypto::sealing_state* seed = nullptr;
  // The signer key the auditor trusts. Without it, checkpoints are checked against
  // the key recorded in each epoch's epoch_start record (which an attacker holding
  // the database could have replaced).
  std::optional<crypto::sign_public_key> signer;
  // A checkpoint the auditor kept elsewhere: detects truncation and rollback.
  std::optional<format::checkpoint> held;
  // Stop after this many failures (1: the first one only).
  std::size_t max_failures = 1;
};

struct verify_summary {
  std::uint64_t records = 0;
  std::uint64_t last_seq = 0;
  std::uint64_t epochs = 0;
  std::uint64_t flows_records = 0;    // flow_opened + flow_closed records
  std::int64_t first_time_us = 0;
  std::int64_t last_time_us = 0;
  std::uint64_t erased_payloads = 0;  // records whose payload was erased (legitimately)
  std::uint64_t erasure_records = 0;  // erasure records that erased a payload
  // The erased flows, the first max_listed_flows of them (a hostile trail may
  // claim any number).
  static constexpr std::size_t max_listed_flows = 100;
  std::vector<std::string> erased_flows;
  std::uint64_t checkpoints = 0;
  // The greatest seq a checkpoint with a good signature names (stored or
  // held): records past it are covered by no signature, only by the MACs,
  // which whoever holds the sealing seed can recompute.
  std::uint64_t last_signed_seq = 0;
  bool macs_checked = false;
  bool signer_trusted = false;        // checkpoints were checked against verify_options::signer
  bool held_checkpoint_checked = false;
  std::vector<verify_failure> failures;  // ordered by seq
  [[nodiscard]] bool ok() const noexcept { return failures.empty(); }
  // How many records verified before the first failure: records 1..s-1 for a
  // first failure at record s (every one of them was read and passed, or a
  // failure would name a smaller seq; `missing` names the first absent seq,
  // `truncated` the seq after the last one present), none for a failure at
  // record 0 (the file as a whole: schema, integrity), all when none failed.
  // Not `records`: that counts every record read, the failing one and, with
  // --all, the ones after it too.
  // Known limit: an erased payload whose erasure record would come later is
  // only judged at the end of the scan, which stops at the first failure
  // without --all, so such a record before s counts as verified.
  [[nodiscard]] std::uint64_t verified_before_failure() const noexcept {
    if (failures.empty()) return records;
    const std::uint64_t s = failures.front().seq;
    return s == 0 ? 0 : s - 1;
  }
};

// Throws std::runtime_error if the database cannot be opened or read at all, or is
// not a customs audit database; every other problem is a verify_failure.
[[nodiscard]] verify_summary verify(const std::filesystem::path& db, const verify_options& opts);

}  // namespace customs::audit
