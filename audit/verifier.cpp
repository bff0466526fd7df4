// Checks a trail against the "valid if and only if" rule of format.hpp, rule by
// rule; the numbers in comments refer to that rule.
//
// The trail is outside input (a file handed to an auditor), so the verifier
// holds itself to bounds that do not grow with what the file claims:
//   - records and checkpoints are read in one pass each, in seq order (the
//     checkpoints are checked as the record scan reaches their seq: nothing is
//     kept per checkpoint);
//   - memory per record is bounded (format's field and payload bounds; a value
//     past them is a malformed record and is not loaded, the connection refuses
//     any value over max_value_bytes);
//   - what is kept across records: the erased payloads whose erasure record is
//     still ahead (seq and a hash of the flow id each), the first
//     max_listed_flows erased flow ids, the current epoch's signer;
//   - MAC key evolution is budgeted: at most max_epoch_jump steps at once and
//     evolve_budget_base + evolve_budget_per_record per record scanned in all,
//     so a trail that claims huge or alternating epochs costs time in
//     proportion to its size, not to the epochs it names.
#include "audit/verifier.hpp"

#include <algorithm>
#include <future>
#include <map>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "audit/row.hpp"
#include "audit/schema.hpp"
#include "audit/schema_check.hpp"
#include "audit/sqlite.hpp"

namespace customs::audit {

std::string_view to_string(failure_kind k) noexcept {
  switch (k) {
    case failure_kind::altered: return "altered";
    case failure_kind::missing: return "missing";
    case failure_kind::reordered: return "reordered";
    case failure_kind::truncated: return "truncated";
    case failure_kind::bad_mac: return "bad MAC";
    case failure_kind::bad_signature: return "bad signature";
  }
  return "altered";
}

namespace {

// How far around a record that breaks the chain the verifier looks for the
// record that belongs at its place (to tell "reordered" from "altered").
constexpr std::uint64_t reorder_window = 64;
// An epoch more than this far ahead of the last one seen is not evolved to; its
// MAC is reported bad. (A valid trail moves one epoch at a time.)
constexpr std::uint64_t max_epoch_jump = 1u << 16;
// Key evolution steps allowed in all: a trail has at least one record per
// epoch, so a valid trail never needs more than one step per record.
constexpr std::uint64_t evolve_budget_base = max_epoch_jump;
constexpr std::uint64_t evolve_budget_per_record = 4;

// The flow id of an erased record, kept until its erasure record is reached.
struct flow_digest {
  crypto::hash h{};
  friend bool operator==(const flow_digest&, const flow_digest&) = default;
};

flow_digest digest_of(std::string_view flow) {
  crypto::hasher h;
  h.update(crypto::byte_view(reinterpret_cast<const std::uint8_t*>(flow.data()), flow.size()));
  return {h.finish()};
}

class verifier {
 public:
  verifier(const std::filesystem::path& db, const verify_options& opts)
      : opts_(opts), path_(db), db_(sql::open_untrusted(db)) {
    // Pages are read with read(2), not through a memory map: a file truncated
    // while it is verified would end the process with SIGBUS.
  }

  verify_summary run() {
    if (db_.query_int("PRAGMA application_id") != format::application_id)
      throw std::runtime_error("not a customs audit database");
    const auto version = db_.query_int("PRAGMA user_version");
    if (version != format::schema_version)
      throw std::runtime_error("audit schema version " + std::to_string(version) +
                               " is not the one this build reads (" +
                               std::to_string(format::schema_version) + ")");
    // 1: exactly the format's tables and index: no other table, index, view or
    // trigger. If the two tables are not the format's own, their rows cannot be
    // read as records at all.
    if (!check_schema()) return finish_summary({});
    // 1: SQLite's own check reads every page; it runs on a second connection
    // beside the scan (a second core shortens verify by its share).
    auto integrity = std::async(std::launch::async, [this] {
      auto db2 = sql::open_untrusted(path_);
      // integrity_check, not quick_check: it also holds the records_flow
      // index to the table, which readers and erase look flows up through.
      return db2.query_text("PRAGMA integrity_check");
    });
    sum_.macs_checked = opts_.seed != nullptr;
    sum_.signer_trusted = opts_.signer.has_value();
    sum_.held_checkpoint_checked = opts_.held.has_value();
    if (opts_.seed) {
      key_epoch_ = 0;
      key_ = crypto::evolve_to(opts_.seed->key, 0, 0);
    }
    scan();
    finish();
    return finish_summary(integrity.get());
  }

 private:
  void fail(failure_kind k, std::uint64_t seq, std::string detail) {
    sum_.failures.push_back({k, seq, std::move(detail)});
  }
  [[nodiscard]] bool enough() const { return sum_.failures.size() >= opts_.max_failures; }

  verify_summary finish_summary(const std::string& integrity) {
    if (!integrity.empty() && integrity != "ok") fail(failure_kind::altered, 0, "SQLite integrity check: " + integrity);
    std::stable_sort(sum_.failures.begin(), sum_.failures.end(),
                     [](const auto& a, const auto& b) { return a.seq < b.seq; });
    if (sum_.failures.size() > opts_.max_failures) sum_.failures.resize(opts_.max_failures);
    return std::move(sum_);
  }

  // False when the records or checkpoints table is not the format's.
  bool check_schema() {
    bool tables_ok = true;
    for (const auto& d : schema::differences(db_)) {
      fail(failure_kind::altered, 0, "the database " + d.what);
      if (d.table) tables_ok = false;
    }
    return tables_ok;
  }

  // The MAC key of an epoch, or null with the reason.
  const crypto::mac_key* key_for(std::uint64_t epoch, std::string& why) {
    const bool back = epoch < key_epoch_;  // only a tampered trail goes backwards
    const std::uint64_t from = back ? 0 : key_epoch_;
    const std::uint64_t steps = epoch - from;
    if (steps > max_epoch_jump) {
      why = "epoch " + std::to_string(epoch) + " is too far from epoch " + std::to_string(from) + " to evolve the key to";
      return nullptr;
    }
    if (evolved_ + steps > evolve_budget_base + evolve_budget_per_record * sum_.records) {
      why = "epoch " + std::to_string(epoch) + " needs more key evolution than the trail's size allows";
      return nullptr;
    }
    evolved_ += steps;
    if (back) key_ = crypto::evolve_to(opts_.seed->key, 0, 0);
    if (steps) key_ = crypto::evolve_to(key_, from, epoch);
    key_epoch_ = epoch;
    return &key_;
  }

  // The record that was written at seq n, if it stands elsewhere nearby: its
  // header rebuilt with seq n chains from prev to its own stored hash.
  std::optional<std::uint64_t> find_moved(std::uint64_t n, const crypto::hash& prev) {
    sql::statement st(db_, (std::string("SELECT ") + schema::record_columns_sized +
                            " FROM records WHERE seq BETWEEN ?1 AND ?2 AND seq != ?3")
                               .c_str());
    const std::uint64_t lo = n > reorder_window ? n - reorder_window : 1;
    const std::uint64_t hi = n > INT64_MAX - reorder_window ? INT64_MAX : n + reorder_window;
    st.bind(1, static_cast<std::int64_t>(lo));
    st.bind(2, static_cast<std::int64_t>(hi));
    st.bind(3, static_cast<std::int64_t>(n));
    stored_row row;
    crypto::bytes header;
    while (st.step() == SQLITE_ROW) {
      read_row(st, row);
      if (!row.well_formed) continue;
      const std::uint64_t at = row.h.seq;
      row.h.seq = n;
      format::encode_header(row.h, header);
      if (format::chain_hash(prev, header, row.payload_hash) == row.hash) return at;
    }
    return std::nullopt;
  }

  // The next stored checkpoint in seq order (false at the end).
  bool next_checkpoint() {
    const int rc = checkpoints_.step();
    if (rc == SQLITE_ROW) {
      read_checkpoint(checkpoints_, cp_);
      ++sum_.checkpoints;
      return true;
    }
    if (rc != SQLITE_DONE) throw std::runtime_error("cannot read checkpoints: " + db_.message());
    return false;
  }

  // Checkpoints (stored ones and the held one) whose seq the scan has reached.
  void checkpoints_up_to(std::uint64_t seq, const stored_row* row) {
    while (have_cp_ && cp_.cp.seq <= seq) {
      const std::string what = "checkpoint at seq " + std::to_string(cp_.cp.seq);
      if (!cp_.well_formed) fail(failure_kind::altered, cp_.cp.seq, what + " is malformed");
      // Seqs start at 1: a checkpoint at 0 names no record (a moved one would
      // otherwise pass unchecked).
      else if (cp_.cp.seq == 0) fail(failure_kind::altered, 0, what + " names no record (seqs start at 1)");
      else if (row && cp_.cp.seq == seq) check_checkpoint(cp_.cp, *row, what, {});
      // A checkpoint of a seq the scan passed without seeing (missing) was
      // reported as missing records already.
      have_cp_ = next_checkpoint();
    }
    if (opts_.held && !held_done_ && opts_.held->seq <= seq) {
      held_done_ = true;
      if (opts_.held->seq == 0)
        fail(failure_kind::altered, 0, "the held checkpoint names no record (seqs start at 1)");
      else if (row && opts_.held->seq == seq)
        check_checkpoint(*opts_.held, *row, "the held checkpoint", opts_.held->signer);
    }
  }

  void check_checkpoint(const format::checkpoint& cp, const stored_row& row, const std::string& what,
                        const std::optional<crypto::sign_public_key>& fallback_signer) {
    if (row.hash != cp.head || row.h.epoch != cp.epoch) {
      fail(failure_kind::altered, cp.seq,
           what + " does not match record " + std::to_string(cp.seq) +
               " (the trail was rolled back, rebuilt or altered)");
      return;
    }
    std::optional<crypto::sign_public_key> key = opts_.signer;
    if (!key) key = fallback_signer;
    if (!key && signer_epoch_ == cp.epoch) key = signer_;
    if (!key) {
      fail(failure_kind::bad_signature, cp.seq, what + ": no signer key known for epoch " + std::to_string(cp.epoch));
      return;
    }
    if (!crypto::sign_verify(*key, format::checkpoint_message(cp), cp.sig))
      fail(failure_kind::bad_signature, cp.seq, what + " has a bad signature");
    else
      sum_.last_signed_seq = std::max(sum_.last_signed_seq, cp.seq);
  }

  void scan() {
    checkpoints_ = sql::statement(
        db_, (std::string("SELECT ") + schema::checkpoint_columns + " FROM checkpoints ORDER BY seq, id").c_str());
    have_cp_ = next_checkpoint();
    sql::statement st(db_, (std::string("SELECT ") + schema::record_columns_sized +
                            " FROM records ORDER BY seq")
                               .c_str());
    stored_row row;
    crypto::bytes header;
    std::uint64_t expected = 1;
    crypto::hash prev = format::zero_hash;
    bool prev_known = true;
    std::optional<std::uint64_t> cur_epoch;
    int rc = SQLITE_DONE;
    while (!enough() && (rc = st.step()) == SQLITE_ROW) {
      // seq is the table's INTEGER PRIMARY KEY (the rowid): an integer, in
      // ascending order, but it may be 0 or negative in a hostile file.
      const std::int64_t raw_seq = st.column_int(schema::c_seq);
      if (raw_seq < 1) {
        ++sum_.records;
        fail(failure_kind::altered, 0, "a record has seq " + std::to_string(raw_seq) + " (seqs start at 1)");
        continue;
      }
      read_row(st, row);
      const auto seq = static_cast<std::uint64_t>(raw_seq);
      const bool first = sum_.records == 0;
      ++sum_.records;
      sum_.last_seq = seq;
      if (first) sum_.first_time_us = row.h.time_us;
      sum_.last_time_us = row.h.time_us;
      if (!row.well_formed) {
        fail(failure_kind::altered, seq, "record is malformed: " + row.problem);
        checkpoints_up_to(seq, nullptr);
        prev = row.hash;
        expected = seq + 1;
        continue;
      }
      if (seq != expected) {  // 2
        fail(failure_kind::missing, expected,
             seq == expected + 1 ? "record " + std::to_string(expected) + " is missing"
                                 : "records " + std::to_string(expected) + " to " +
                                       std::to_string(seq - 1) + " are missing");
        prev_known = false;
        checkpoints_up_to(seq - 1, nullptr);
      }
      // 4: payload against its hash; 5: erased payloads are collected here.
      if (!row.payload_null) {
        if (format::payload_hash(row.payload) != row.payload_hash)
          fail(failure_kind::altered, seq, "payload does not match its hash");
      } else if (row.h.kind == record_kind::flow_opened || row.h.kind == record_kind::flow_closed) {
        erased_pending_[seq] = digest_of(row.h.flow_id);
      } else {
        fail(failure_kind::altered, seq, "payload of a " +
                                             std::string(format::kind_name(row.h.kind)) +
                                             " record was removed");
      }
      // 4: the chain.
      format::encode_header(row.h, header);
      if (prev_known && format::chain_hash(prev, header, row.payload_hash) != row.hash) {
        if (const auto at = find_moved(seq, prev))
          fail(failure_kind::reordered, seq,
               "the record written as " + std::to_string(seq) + " stands at " + std::to_string(*at));
        else
          fail(failure_kind::altered, seq,
               "record does not match the chain (a header or index field, the payload hash or "
               "the stored hash was changed)");
      }
      // 3: epochs.
      if (row.h.kind == record_kind::epoch_start) {
        if (first && row.h.epoch != 0)
          fail(failure_kind::altered, seq, "the trail must begin with epoch 0");
        else if (!first && cur_epoch && row.h.epoch <= *cur_epoch)
          fail(failure_kind::altered, seq, "epoch " + std::to_string(row.h.epoch) +
                                               " does not follow epoch " + std::to_string(*cur_epoch));
        if (const auto body = format::decode_epoch_start(row.payload)) {
          signer_ = body->signer;
          signer_epoch_ = row.h.epoch;
        } else if (!row.payload_null) {
          fail(failure_kind::altered, seq, "epoch_start record is malformed");
        }
        cur_epoch = row.h.epoch;
        ++sum_.epochs;
      } else {
        if (first)
          fail(failure_kind::altered, seq, "the trail must begin with an epoch_start record");
        else if (cur_epoch && row.h.epoch != *cur_epoch)
          fail(failure_kind::altered, seq, "record claims epoch " + std::to_string(row.h.epoch) +
                                               " inside epoch " + std::to_string(*cur_epoch));
        if (row.h.kind == record_kind::erasure) note_erasure(row);
        else ++sum_.flows_records;
      }
      // 4: the MAC under the epoch's key.
      if (opts_.seed) {
        std::string why;
        const auto* k = key_for(row.h.epoch, why);
        if (!k)
          fail(failure_kind::bad_mac, seq, "MAC not checked: " + why);
        else if (!crypto::equal(format::record_mac(*k, row.hash), row.mac))
          fail(failure_kind::bad_mac, seq,
               "MAC does not verify under the key of epoch " + std::to_string(row.h.epoch));
      }
      // 6, 7: checkpoints of this seq.
      checkpoints_up_to(seq, &row);
      prev = row.hash;
      prev_known = true;
      expected = seq + 1;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
      throw std::runtime_error("cannot read records after seq " + std::to_string(sum_.last_seq) + ": " +
                               db_.message());
    scan_complete_ = !enough();
  }

  void note_erasure(const stored_row& row) {
    const auto body = format::decode_erasure(row.payload);
    if (!body) {
      if (!row.payload_null) fail(failure_kind::altered, row.h.seq, "erasure record is malformed");
      return;
    }
    const auto flow = digest_of(row.h.flow_id);
    bool any = false;
    for (const auto s : body->seqs) {
      const auto it = erased_pending_.find(s);
      if (it != erased_pending_.end() && it->second == flow) {
        erased_pending_.erase(it);
        ++sum_.erased_payloads;
        any = true;
      } else if (s < row.h.seq && payload_still_present(s, row.h.flow_id)) {
        // The store nulls the payloads and commits the erasure record in one
        // transaction: a listed payload of the flow that is there again was
        // put back (say, from a copy taken before the erasure).
        fail(failure_kind::altered, s,
             "payload of a flow record is present although erasure record " + std::to_string(row.h.seq) +
                 " lists it as erased");
      }
    }
    if (!any) return;
    ++sum_.erasure_records;
    if (listed_flows_.size() < verify_summary::max_listed_flows && listed_flows_.insert(flow.h).second)
      sum_.erased_flows.push_back(row.h.flow_id);
  }

  // Whether record `seq` is a flow record of `flow_id` whose payload is stored.
  bool payload_still_present(std::uint64_t seq, std::string_view flow_id) {
    if (seq > static_cast<std::uint64_t>(INT64_MAX)) return false;
    if (!payload_of_.get()) payload_of_ = sql::statement(db_, "SELECT kind, flow_id, payload IS NOT NULL FROM records WHERE seq = ?1");
    payload_of_.reset();
    payload_of_.bind(1, static_cast<std::int64_t>(seq));
    if (payload_of_.step() != SQLITE_ROW) return false;
    const bool present = sqlite3_column_type(payload_of_.get(), 0) == SQLITE_INTEGER &&
                         (payload_of_.column_int(0) == 1 || payload_of_.column_int(0) == 2) &&
                         sqlite3_column_type(payload_of_.get(), 1) == SQLITE_TEXT &&
                         payload_of_.column_text(1) == flow_id && payload_of_.column_int(2) == 1;
    payload_of_.reset();
    return present;
  }

  void finish() {
    if (!scan_complete_) return;
    for (const auto& [seq, flow] : erased_pending_)
      fail(failure_kind::altered, seq, "payload of a flow record was removed without an erasure record");
    // 6, 7: checkpoints past the end of the trail.
    const std::string ends = "the trail ends at seq " + std::to_string(sum_.last_seq) + " but ";
    while (have_cp_ && !enough()) {
      if (!cp_.well_formed)
        fail(failure_kind::altered, cp_.cp.seq, "checkpoint at seq " + std::to_string(cp_.cp.seq) + " is malformed");
      else
        fail(failure_kind::truncated, sum_.last_seq + 1,
             ends + "checkpoint at seq " + std::to_string(cp_.cp.seq) + " covers it (" +
                 format::format_time(cp_.cp.time_us) + ")");
      have_cp_ = next_checkpoint();
    }
    if (opts_.held && !held_done_) {
      fail(failure_kind::truncated, sum_.last_seq + 1,
           ends + "the held checkpoint covers seq " + std::to_string(opts_.held->seq) + " (" +
               format::format_time(opts_.held->time_us) + ")");
    }
  }

  const verify_options& opts_;
  std::filesystem::path path_;
  sql::database db_;
  verify_summary sum_;
  sql::statement checkpoints_;
  sql::statement payload_of_;  // payload_still_present
  stored_checkpoint cp_;
  bool have_cp_ = false;
  bool held_done_ = false;
  crypto::sign_public_key signer_{};
  std::optional<std::uint64_t> signer_epoch_;
  std::map<std::uint64_t, flow_digest> erased_pending_;
  std::set<crypto::hash> listed_flows_;
  crypto::mac_key key_;
  std::uint64_t key_epoch_ = 0;
  std::uint64_t evolved_ = 0;
  bool scan_complete_ = false;
};

}  // namespace

verify_summary verify(const std::filesystem::path& db, const verify_options& opts) {
  std::error_code ec;
  if (!std::filesystem::exists(db, ec))
    throw std::runtime_error(db.string() + ": no such audit database");
  try {
    verifier v(db, opts);
    return v.run();
  } catch (const sql::sql_error& e) {
    throw std::runtime_error(db.string() + ": " + e.what());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(db.string() + ": " + e.what());
  }
}

}  // namespace customs::audit
