#pragma once
// Shared fixtures of the audit tests: a temporary folder with a key set (and a
// second auditor), a writer, and helpers that tamper with the database directly.

#include <sys/stat.h>

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>

#include "audit/format.hpp"
#include "audit/reader.hpp"
#include "audit/schema.hpp"
#include "audit/sqlite.hpp"
#include "audit/store.hpp"
#include "audit/verifier.hpp"
#include "crypto/key_file.hpp"

namespace customs::audit::testing {

namespace fs = std::filesystem;

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("customs-audit-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

// Waits until a number of durable handlers have run.
class ack_counter {
 public:
  writer::durable_handler handler(std::uint64_t* seq_out = nullptr) {
    return [this, seq_out](std::error_code ec, std::uint64_t seq) {
      std::lock_guard lk(mu_);
      if (ec) ++failed_;
      else ++ok_;
      if (seq_out) *seq_out = ec ? 0 : seq;
      cv_.notify_all();
    };
  }
  void wait_for(std::uint64_t total) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return ok_ + failed_ >= total; });
  }
  std::uint64_t ok() {
    std::lock_guard lk(mu_);
    return ok_;
  }
  std::uint64_t failed() {
    std::lock_guard lk(mu_);
    return failed_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t ok_ = 0, failed_ = 0;
};

inline std::string payload_for(std::uint64_t i) {
  return "{\"request_texts\":[\"hello " + std::to_string(i) +
         "\"],\"findings\":[],\"usage\":{\"n\":" + std::to_string(i) + "}}";
}

inline record make_record(std::uint64_t i, record_kind kind = record_kind::flow_opened) {
  record r;
  r.kind = kind;
  r.flow_id = "flow-" + std::to_string(i);
  r.index.route = "/v1/chat/completions";
  r.index.src = i % 2 ? "DE" : "CN";
  r.index.dst = "US";
  r.index.tenant = "tenant-" + std::to_string(i % 3);
  r.index.action = i % 5 == 0 ? "block" : "allow";
  if (i % 5 == 0) r.index.rules = {"pii.card", "cn.pipl.export"};
  r.index.rule_set_hash = "abc123";
  r.index.tokens_in = i;
  r.index.tokens_out = 2 * i;
  r.payload = payload_for(i);
  return r;
}

struct trail {
  temp_dir dir;
  fs::path keys = dir.path / "keys";
  fs::path keys2 = dir.path / "keys2";  // a second auditor
  fs::path db = dir.path / "audit.db";
  writer_options opts;

  trail() {
    (void)crypto::generate_key_set(keys);
    (void)crypto::generate_key_set(keys2, crypto::key_set::auditor);
    opts.db = db;
    opts.auditor_keys = {keys / "auditor.pub", keys2 / "auditor.pub"};
    opts.sealing_key = keys / "sealing.key";
    opts.signing_key = keys / "signing.key";
    opts.commit_interval = std::chrono::milliseconds(1);
    opts.epoch_records = 10;
  }

  // Writes flows [from, from + n): an opened and a closed record each, all durable.
  void write_flows(std::uint64_t from, std::uint64_t n, store* s = nullptr) {
    std::unique_ptr<store> own;
    if (!s) {
      own = store::open_store(opts);
      s = own.get();
    }
    ack_counter acks;
    for (std::uint64_t i = from; i < from + n; ++i) {
      REQUIRE_FALSE(s->append(make_record(i, record_kind::flow_opened), acks.handler()));
      REQUIRE_FALSE(s->append(make_record(i, record_kind::flow_closed), acks.handler()));
    }
    acks.wait_for(2 * n);
    REQUIRE(acks.failed() == 0);
    if (own) own->close();
  }

  crypto::sealing_state seed() const { return crypto::load_sealing_seed(keys / "sealing.seed"); }

  verify_summary verify(std::size_t max_failures = 1,
                        std::optional<format::checkpoint> held = std::nullopt) const {
    const auto s = seed();
    verify_options vo;
    vo.seed = &s;
    vo.signer = crypto::load_signing_public(keys / "signing.pub");
    vo.held = held;
    vo.max_failures = max_failures;
    return audit::verify(db, vo);
  }
};

// A read-write connection for tampering (only while no writer is open).
inline sql::database tamper_db(const fs::path& db) {
  return sql::database(db, SQLITE_OPEN_READWRITE);
}

// Flips one bit of a blob column of one record.
inline void flip_blob_byte(const fs::path& db, std::uint64_t seq, const char* column, std::size_t at) {
  auto d = tamper_db(db);
  crypto::bytes blob;
  {
    sql::statement st(d, (std::string("SELECT ") + column + " FROM records WHERE seq = ?1").c_str());
    st.bind(1, static_cast<std::int64_t>(seq));
    REQUIRE(st.step() == SQLITE_ROW);
    const auto b = st.column_blob(0);
    blob.assign(b.begin(), b.end());
  }
  REQUIRE(at < blob.size());
  blob[at] ^= 0x01;
  sql::statement up(d, (std::string("UPDATE records SET ") + column + " = ?1 WHERE seq = ?2").c_str());
  up.bind(1, crypto::byte_view(blob));
  up.bind(2, static_cast<std::int64_t>(seq));
  REQUIRE(up.step() == SQLITE_DONE);
}

// What an attacker holding some MAC keys (and the signing key, which lives on
// the same host) does to hide a change: recompute every hash from `from` on,
// MAC each record with key_for(epoch), and re-sign every checkpoint.
inline void rechain(const fs::path& db, std::uint64_t from,
                    const std::function<const crypto::mac_key&(std::uint64_t epoch)>& key_for,
                    const crypto::sign_seed& signer) {
  auto d = tamper_db(db);
  d.exec("BEGIN");
  crypto::hash prev = format::zero_hash;
  if (from > 1) {
    sql::statement st(d, "SELECT hash FROM records WHERE seq = ?1");
    st.bind(1, static_cast<std::int64_t>(from - 1));
    REQUIRE(st.step() == SQLITE_ROW);
    REQUIRE(sql::column_hash(st, 0, prev));
  }
  sql::statement st(d, (std::string("SELECT ") + schema::record_columns +
                        " FROM records WHERE seq >= ?1 ORDER BY seq").c_str());
  st.bind(1, static_cast<std::int64_t>(from));
  sql::statement up(d, "UPDATE records SET payload_hash = ?1, hash = ?2, mac = ?3 WHERE seq = ?4");
  std::map<std::uint64_t, std::pair<crypto::hash, std::uint64_t>> hashes;
  crypto::bytes header;
  while (st.step() == SQLITE_ROW) {
    format::header_fields h;
    h.seq = static_cast<std::uint64_t>(st.column_int(schema::c_seq));
    h.kind = static_cast<record_kind>(st.column_int(schema::c_kind));
    h.epoch = static_cast<std::uint64_t>(st.column_int(schema::c_epoch));
    h.time_us = st.column_int(schema::c_time_us);
    h.flow_id = std::string(st.column_text(schema::c_flow_id));
    h.index.route = std::string(st.column_text(schema::c_route));
    h.index.src = std::string(st.column_text(schema::c_src));
    h.index.dst = std::string(st.column_text(schema::c_dst));
    h.index.tenant = std::string(st.column_text(schema::c_tenant));
    h.index.action = std::string(st.column_text(schema::c_action));
    h.index.rules = format::split_rules(st.column_text(schema::c_rules));
    h.index.rule_set_hash = std::string(st.column_text(schema::c_rule_set_hash));
    h.index.tokens_in = static_cast<std::uint64_t>(st.column_int(schema::c_tokens_in));
    h.index.tokens_out = static_cast<std::uint64_t>(st.column_int(schema::c_tokens_out));
    crypto::hash ph{};
    if (st.column_null(schema::c_payload)) REQUIRE(sql::column_hash(st, schema::c_payload_hash, ph));
    else ph = format::payload_hash(st.column_blob(schema::c_payload));
    format::encode_header(h, header);
    prev = format::chain_hash(prev, header, ph);
    const auto mac = format::record_mac(key_for(h.epoch), prev);
    hashes[h.seq] = {prev, h.epoch};
    up.bind(1, crypto::byte_view(ph));
    up.bind(2, crypto::byte_view(prev));
    up.bind(3, crypto::byte_view(mac));
    up.bind(4, static_cast<std::int64_t>(h.seq));
    REQUIRE(up.step() == SQLITE_DONE);
    up.reset();
  }
  // Re-sign the checkpoints so that they match the new chain.
  sql::statement cps(d, "SELECT id, seq, epoch, time_us FROM checkpoints");
  sql::statement cup(d, "UPDATE checkpoints SET head = ?1, signature = ?2 WHERE id = ?3");
  while (cps.step() == SQLITE_ROW) {
    format::checkpoint cp;
    cp.seq = static_cast<std::uint64_t>(cps.column_int(1));
    const auto it = hashes.find(cp.seq);
    if (it == hashes.end()) continue;
    cp.epoch = static_cast<std::uint64_t>(cps.column_int(2));
    cp.time_us = cps.column_int(3);
    cp.head = it->second.first;
    const auto sig = crypto::sign(signer, format::checkpoint_message(cp));
    cup.bind(1, crypto::byte_view(cp.head));
    cup.bind(2, crypto::byte_view(sig));
    cup.bind(3, cps.column_int(0));
    REQUIRE(cup.step() == SQLITE_DONE);
    cup.reset();
  }
  d.exec("COMMIT");
}

}  // namespace customs::audit::testing
