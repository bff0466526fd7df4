// Checks a trail against the "valid if and only if" rule of format.hpp, rule by
// rule; the numbers in comments refer to that rule.
#include "audit/verifier.hpp"

#include <algorithm>
#include <future>
#include <map>
#include <set>
#include <stdexcept>

#include "audit/row.hpp"
#include "audit/schema.hpp"
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
// An epoch more than this far ahead of the last one seen is not evolved to (it
// would take the verifier hours); its MAC is reported bad.
constexpr std::uint64_t max_epoch_jump = 1u << 22;

struct checkpoint_row {
  format::checkpoint cp;
  bool well_formed = true;
};

class verifier {
 public:
  verifier(const std::filesystem::path& db, const verify_options& opts)
      : opts_(opts), path_(db), db_(db, SQLITE_OPEN_READONLY) {
    sqlite3_busy_timeout(db_.get(), 5000);
    // Read through a memory map: no read(2) copy per page.
    db_.exec("PRAGMA mmap_size=1073741824");
  }

  verify_summary run() {
    if (db_.query_int("PRAGMA application_id") != format::application_id)
      throw std::runtime_error("not a customs audit database");
    const auto version = db_.query_int("PRAGMA user_version");
    if (version != format::schema_version)
      throw std::runtime_error("audit schema version " + std::to_string(version) +
                               " is not the one this build reads (" +
                               std::to_string(format::schema_version) + ")");
    // 1: SQLite's own check reads every page; it runs on a second connection
    // beside the scan (a second core shortens verify by its share).
    auto integrity = std::async(std::launch::async, [this] {
      sql::database db2(path_, SQLITE_OPEN_READONLY);
      sqlite3_busy_timeout(db2.get(), 5000);
      return db2.query_text("PRAGMA quick_check");
    });
    load_checkpoints();
    if (opts_.held) wanted_.insert(opts_.held->seq);
    sum_.macs_checked = opts_.seed != nullptr;
    if (opts_.seed) {
      key_epoch_ = 0;
      key_ = crypto::evolve_to(opts_.seed->key, 0, 0);
    }
    scan();
    finish();
    const std::string check = integrity.get();
    if (check != "ok") fail(failure_kind::altered, 0, "SQLite integrity check: " + check);
    std::stable_sort(sum_.failures.begin(), sum_.failures.end(),
                     [](const auto& a, const auto& b) { return a.seq < b.seq; });
    if (sum_.failures.size() > opts_.max_failures) sum_.failures.resize(opts_.max_failures);
    return std::move(sum_);
  }

 private:
  void fail(failure_kind k, std::uint64_t seq, std::string detail) {
    sum_.failures.push_back({k, seq, std::move(detail)});
  }
  [[nodiscard]] bool enough() const { return sum_.failures.size() >= opts_.max_failures; }

  void load_checkpoints() {
    sql::statement st(db_, "SELECT seq, epoch, time_us, head, signature FROM checkpoints ORDER BY id");
    int rc;
    while ((rc = st.step()) == SQLITE_ROW) {
      checkpoint_row r;
      r.well_formed = read_checkpoint_row(st, r.cp);
      wanted_.insert(r.cp.seq);
      checkpoints_.push_back(r);
    }
    if (rc != SQLITE_DONE) throw std::runtime_error("cannot read checkpoints: " + db_.message());
    sum_.checkpoints = checkpoints_.size();
  }

  const crypto::mac_key* key_for(std::uint64_t epoch) {
    if (epoch < key_epoch_) {  // only a tampered trail goes backwards
      key_ = crypto::evolve_to(opts_.seed->key, 0, 0);
      key_epoch_ = 0;
    }
    if (epoch == key_epoch_) return &key_;
    if (epoch - key_epoch_ > max_epoch_jump) return nullptr;
    key_ = crypto::evolve_to(key_, key_epoch_, epoch);
    key_epoch_ = epoch;
    return &key_;
  }

  // The record that was written at seq n, if it stands elsewhere nearby: its
  // header rebuilt with seq n chains from prev to its own stored hash.
  std::optional<std::uint64_t> find_moved(std::uint64_t n, const crypto::hash& prev) {
    sql::statement st(db_, (std::string("SELECT ") + schema::record_columns +
                            " FROM records WHERE seq BETWEEN ?1 AND ?2 AND seq != ?3")
                               .c_str());
    st.bind(1, static_cast<std::int64_t>(n > reorder_window ? n - reorder_window : 1));
    st.bind(2, static_cast<std::int64_t>(n + reorder_window));
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

  void scan() {
    sql::statement st(db_, (std::string("SELECT ") + schema::record_columns +
                            " FROM records ORDER BY seq")
                               .c_str());
    stored_row row;
    crypto::bytes header;
    std::uint64_t expected = 1;
    crypto::hash prev = format::zero_hash;
    bool prev_known = true;
    std::optional<std::uint64_t> cur_epoch;
    int rc;
    while (!enough() && (rc = st.step()) == SQLITE_ROW) {
      read_row(st, row);
      const auto seq = row.h.seq;
      const bool first = sum_.records == 0;
      ++sum_.records;
      sum_.last_seq = seq;
      if (first) sum_.first_time_us = row.h.time_us;
      sum_.last_time_us = row.h.time_us;
      if (!row.well_formed) {
        fail(failure_kind::altered, seq, "record is malformed: " + row.problem);
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
      }
      // 4: payload against its hash; 5: erased payloads are collected here.
      if (!row.payload_null) {
        if (format::payload_hash(row.payload) != row.payload_hash)
          fail(failure_kind::altered, seq, "payload does not match its hash");
      } else if (row.h.kind == record_kind::flow_opened || row.h.kind == record_kind::flow_closed) {
        erased_pending_[seq] = row.h.flow_id;
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
        if (const auto body = format::decode_epoch_start(row.payload))
          signers_[row.h.epoch] = body->signer;
        else if (!row.payload_null)
          fail(failure_kind::altered, seq, "epoch_start record is malformed");
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
        const auto* k = key_for(row.h.epoch);
        if (!k || !crypto::equal(format::record_mac(*k, row.hash), row.mac))
          fail(failure_kind::bad_mac, seq,
               "MAC does not verify under the key of epoch " + std::to_string(row.h.epoch));
      }
      if (wanted_.count(seq)) hashes_[seq] = {row.hash, row.h.epoch};
      prev = row.hash;
      prev_known = true;
      expected = seq + 1;
    }
    scan_complete_ = !enough();
  }

  void note_erasure(const stored_row& row) {
    const auto body = format::decode_erasure(row.payload);
    if (!body) {
      if (!row.payload_null) fail(failure_kind::altered, row.h.seq, "erasure record is malformed");
      return;
    }
    bool any = false;
    for (const auto s : body->seqs) {
      const auto it = erased_pending_.find(s);
      if (it != erased_pending_.end() && it->second == row.h.flow_id) {
        erased_pending_.erase(it);
        ++sum_.erased_payloads;
        any = true;
      }
    }
    if (any && std::find(sum_.erased_flows.begin(), sum_.erased_flows.end(), row.h.flow_id) ==
                   sum_.erased_flows.end())
      sum_.erased_flows.push_back(row.h.flow_id);
  }

  void check_checkpoint(const format::checkpoint& cp, bool well_formed, const std::string& what,
                        const std::optional<crypto::sign_public_key>& fallback_signer) {
    if (!well_formed) {
      fail(failure_kind::altered, cp.seq, what + " is malformed");
      return;
    }
    if (cp.seq > sum_.last_seq) {
      if (scan_complete_)
        fail(failure_kind::truncated, sum_.last_seq + 1,
             "the trail ends at seq " + std::to_string(sum_.last_seq) + " but " + what +
                 " covers seq " + std::to_string(cp.seq) + " (" + format::format_time(cp.time_us) + ")");
      return;
    }
    const auto it = hashes_.find(cp.seq);
    if (it == hashes_.end()) return;  // that part was not scanned (stopped early) or is missing
    if (it->second.first != cp.head || it->second.second != cp.epoch) {
      fail(failure_kind::altered, cp.seq,
           what + " does not match record " + std::to_string(cp.seq) +
               " (the trail was rolled back, rebuilt or altered)");
      return;
    }
    std::optional<crypto::sign_public_key> key = opts_.signer;
    if (!key) key = fallback_signer;
    if (!key) {
      const auto s = signers_.find(cp.epoch);
      if (s != signers_.end()) key = s->second;
    }
    if (!key) {
      fail(failure_kind::bad_signature, cp.seq, what + ": no signer key known for epoch " +
                                                    std::to_string(cp.epoch));
      return;
    }
    if (!crypto::sign_verify(*key, format::checkpoint_message(cp), cp.sig))
      fail(failure_kind::bad_signature, cp.seq, what + " has a bad signature");
  }

  void finish() {
    if (scan_complete_)
      for (const auto& [seq, flow] : erased_pending_)
        fail(failure_kind::altered, seq,
             "payload of flow " + flow + " was removed without an erasure record");
    for (const auto& r : checkpoints_)
      check_checkpoint(r.cp, r.well_formed, "checkpoint at seq " + std::to_string(r.cp.seq), {});
    sum_.signer_trusted = opts_.signer.has_value();
    if (opts_.held) {
      sum_.held_checkpoint_checked = true;
      check_checkpoint(*opts_.held, true, "the held checkpoint", opts_.held->signer);
    }
  }

  const verify_options& opts_;
  std::filesystem::path path_;
  sql::database db_;
  verify_summary sum_;
  std::vector<checkpoint_row> checkpoints_;
  std::set<std::uint64_t> wanted_;  // seqs whose hash a checkpoint repeats
  std::map<std::uint64_t, std::pair<crypto::hash, std::uint64_t>> hashes_;
  std::map<std::uint64_t, crypto::sign_public_key> signers_;
  std::map<std::uint64_t, std::string> erased_pending_;
  crypto::mac_key key_;
  std::uint64_t key_epoch_ = 0;
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
