#pragma once
// Reading an audit database: the plaintext index fields for anyone who can read
// the file, and the decrypted payloads for holders of an auditor secret key.
// Opens the database read-only; safe while customsd writes. Does not verify
// (that is verifier.hpp's job), but a payload that does not decrypt is reported
// per record, never skipped silently.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "audit/audit.hpp"
#include "audit/format.hpp"
#include "crypto/crypto.hpp"

namespace customs::audit {

// Filters of show / export / replay / report; unset fields match everything.
struct record_filter {
  std::optional<std::int64_t> since_us;  // time >= since
  std::optional<std::int64_t> until_us;  // time < until
  std::optional<std::string> flow;
  std::optional<std::string> action;
  // With action: match only each flow's last flow record, the one that holds
  // its final verdict, so that a flow is listed once (a request blocked has
  // both its records marked block). Without: every record whose own action is
  // the one asked for.
  bool action_final = false;
  // Match only each flow's last flow record (flow_opened or flow_closed), the
  // one that holds its final verdict and that report counts the flow by: each
  // flow once, whatever action it has.
  bool last_of_flow = false;
  std::optional<std::string> src;
  std::optional<std::string> dst;
  std::optional<std::string> tenant;
  std::optional<std::string> rule;       // one of the record's rule ids
  bool include_internal = false;         // epoch_start records too
};

struct read_record {
  std::uint64_t seq = 0;
  record_kind kind = record_kind::flow_opened;
  std::uint64_t epoch = 0;
  std::int64_t time_us = 0;
  std::string flow_id;
  index_fields index;
  bool erased = false;           // the payload was erased
  // With a key: the decrypted payload (flow records), or for erasure records the
  // reason and erased seqs rendered as JSON. Without a key: empty.
  std::optional<std::string> payload;
  std::string payload_error;     // why a payload could not be read (with a key)
};

class reader {
 public:
  // Throws std::runtime_error when the file is missing or not an audit database.
  explicit reader(const std::filesystem::path& db);
  ~reader();
  reader(const reader&) = delete;
  reader& operator=(const reader&) = delete;

  // Enables decryption with an auditor secret key (its public key is derived).
  void set_auditor_key(const crypto::box_secret_key& sk);

  // Calls fn for each matching record in seq order until it returns false.
  // Throws std::runtime_error on a database error.
  void for_each(const record_filter& f, const std::function<bool(const read_record&)>& fn);

  // Calls fn with the id of each flow that has flow records (opened or closed)
  // matching f, in the order of each flow's last matching record, until fn
  // returns false. Streams: memory does not grow with the number of flows (the
  // grouping and ordering run in SQLite, which spills to temporary files).
  // Throws std::runtime_error on a database error.
  void for_each_flow(const record_filter& f, const std::function<bool(const std::string& flow_id)>& fn);

  // The flow ids that start with prefix: the one id equal to it if there is
  // one (an id is never taken for a prefix of a longer one), else how many ids
  // start with it and the smallest of them. Reads the flow_id index (a range,
  // not a scan). Throws std::runtime_error on a database error.
  struct flow_match {
    std::uint64_t count = 0;
    std::string id;  // when count == 1
  };
  [[nodiscard]] flow_match match_flow(const std::string& prefix);

  // The checkpoint of the greatest seq in the database (the storage order, id,
  // only breaks ties), with the signer recorded for its epoch.
  [[nodiscard]] std::optional<format::checkpoint> latest_checkpoint();

  // Aggregates per group, from each flow's last flow record (its final verdict).
  struct group_totals {
    std::vector<std::string> key;  // one value per --by dimension
    // Each flow counts under its final action: allowed + tagged + redacted +
    // blocked + unscannable + refused + failed ("error") + other (an action
    // this build does not know, or none stored) == flows.
    std::uint64_t flows = 0, blocked = 0, redacted = 0, tagged = 0;
    std::uint64_t allowed = 0, unscannable = 0, refused = 0, failed = 0, other = 0;
    // Sums over the flows whose provider reported usage; usage_unknown counts
    // the flows whose provider reported none (stored as tokens_unknown).
    std::uint64_t tokens_in = 0, tokens_out = 0;
    std::uint64_t usage_unknown = 0;
  };
  // by: any of "src", "dst", "tenant", "route", "day", "month", "year" (UTC). Throws
  // std::invalid_argument on an unknown dimension.
  [[nodiscard]] std::vector<group_totals> report(const std::vector<std::string>& by,
                                                 const record_filter& f);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace customs::audit
