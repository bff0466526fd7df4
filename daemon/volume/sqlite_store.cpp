#include "daemon/volume/sqlite_store.hpp"

#include "audit/sqlite.hpp"
#include "daemon/volume/journal.hpp"

#include <chrono>
#include <algorithm>
#include <mutex>

namespace customs::daemon::volume {
namespace {

namespace sql = audit::sql;

constexpr const char* schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS counters (
  id         INTEGER PRIMARY KEY,
  key        TEXT UNIQUE NOT NULL,
  count      INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
  counter    INTEGER NOT NULL,
  member     BLOB NOT NULL,
  last_seen  INTEGER NOT NULL,
  PRIMARY KEY (counter, member)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_seen ON members(counter, last_seen);
CREATE TABLE IF NOT EXISTS journal (
  id         INTEGER PRIMARY KEY,
  ops        BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS journal_refusals (
  id         INTEGER PRIMARY KEY,
  refusals   INTEGER NOT NULL
);
)sql";

constexpr std::int32_t application_id = 0x43535456;  // "CSTV"

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class sqlite_store final : public counter_store {
 public:
  sqlite_store(const std::filesystem::path& file, bool journal, std::uint64_t max_journal)
      : db_(file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX), journal_(journal),
        max_journal_(max_journal) {
    db_.exec("PRAGMA busy_timeout = 5000");
    const auto app = db_.query_int("PRAGMA application_id");
    const auto version = db_.query_int("PRAGMA user_version");
    const auto tables = db_.query_int("SELECT count(*) FROM sqlite_master");
    if (tables > 0 && (app != application_id || version != 1))
      throw std::runtime_error(file.string() + ": not a Customs volume counter database (or another version)");
    db_.exec("PRAGMA journal_mode = WAL");
    db_.exec("PRAGMA synchronous = NORMAL");
    db_.exec(schema_sql);
    if (tables == 0) {
      db_.exec(("PRAGMA application_id = " + std::to_string(application_id)).c_str());
      db_.exec("PRAGMA user_version = 1");
    }
    find_ = sql::statement(db_, "SELECT id, count FROM counters WHERE key = ?1");
    create_ = sql::statement(db_, "INSERT INTO counters(key, count, expires_at) VALUES(?1, 0, ?2)");
    prune_ = sql::statement(db_, "DELETE FROM members WHERE counter = ?1 AND last_seen < ?2");
    insert_ = sql::statement(db_, "INSERT OR IGNORE INTO members(counter, member, last_seen) VALUES(?1, ?2, ?3)");
    touch_ = sql::statement(db_, "UPDATE members SET last_seen = ?3 WHERE counter = ?1 AND member = ?2 AND last_seen < ?3");
    update_ = sql::statement(db_, "UPDATE counters SET count = ?2, expires_at = max(expires_at, ?3) WHERE id = ?1");
    keep_ = sql::statement(db_, "INSERT INTO journal(ops) VALUES(?1)");
    forget_ = sql::statement(db_, "DELETE FROM journal WHERE id = ?1");
    forget_refusals_ = sql::statement(db_, "DELETE FROM journal_refusals WHERE id = ?1");
    read_journal_ = sql::statement(db_,
        "SELECT j.id, j.ops FROM journal j LEFT JOIN journal_refusals r ON r.id = j.id "
        "WHERE coalesce(r.refusals, 0) < ?2 ORDER BY coalesce(r.refusals, 0), j.id LIMIT ?1");
    refuse_ = sql::statement(db_,
        "INSERT INTO journal_refusals(id, refusals) SELECT id, 1 FROM journal WHERE id = ?1 "
        "ON CONFLICT(id) DO UPDATE SET refusals = refusals + 1 RETURNING refusals");
    // Parked entries get another chance with every start (what refused them
    // may have been fixed); refusals of entries gone are dropped.
    db_.exec("DELETE FROM journal_refusals");
    journal_rows_ = static_cast<std::uint64_t>(db_.query_int("SELECT count(*) FROM journal"));
    sweep();
  }

  counter_result add(const std::vector<counter_op>& ops) override {
    std::lock_guard lock(mutex_);
    counter_result r = run(ops);
    if (++ops_since_sweep_ >= 4096) {
      ops_since_sweep_ = 0;
      if (unix_now() - last_sweep_ >= 3600) sweep();
    }
    return r;
  }

  std::error_code count(const std::string& key, std::int64_t expire_before, std::uint64_t& out) override {
    std::lock_guard lock(mutex_);
    out = 0;
    sql::statement st(db_, "SELECT c.count, (SELECT count(*) FROM members m WHERE m.counter = c.id AND m.last_seen < ?2) "
                           "FROM counters c WHERE c.key = ?1");
    st.bind(1, key);
    st.bind(2, expire_before);
    const int rc = st.step();
    if (rc == SQLITE_ROW) out = static_cast<std::uint64_t>(st.column_int(0) - st.column_int(1));
    else if (rc != SQLITE_DONE) return store_errc::failed;
    return {};
  }

  std::string_view backend() const noexcept override { return "sqlite"; }
  void close() noexcept override {}

  std::error_code journal(std::size_t max, std::vector<journal_entry>& out,
                          std::uint64_t& unreadable) noexcept override {
    unreadable = 0;
    out.clear();
    try {
      std::lock_guard lock(mutex_);
      read_journal_.reset();
      read_journal_.bind(1, static_cast<std::int64_t>(std::min<std::size_t>(max, INT64_MAX)));
      read_journal_.bind(2, static_cast<std::int64_t>(journal_refusal_limit));
      std::vector<std::int64_t> bad;
      int rc = SQLITE_ROW;
      while ((rc = read_journal_.step()) == SQLITE_ROW) {
        const auto b = read_journal_.column_blob(1);
        auto ops = decode_journal(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
        if (ops) out.push_back({read_journal_.column_int(0), std::move(*ops)});
        else bad.push_back(read_journal_.column_int(0));
      }
      read_journal_.reset();
      // Only SQLITE_DONE is the end of the rows: anything else (a corrupt
      // page, an I/O error, a lock) is an error, never "no more entries".
      if (rc != SQLITE_DONE) {
        out.clear();
        return store_errc::failed;
      }
      if (!bad.empty()) {
        if (const auto ec = drop_all(bad)) return ec;  // read again next time, and counted then
      }
      unreadable = bad.size();
      return {};
    } catch (...) {
      // No memory.
      read_journal_.reset();
      out.clear();
      return store_errc::failed;
    }
  }

  std::error_code forget(const std::vector<std::int64_t>& ids) noexcept override {
    try {
      std::lock_guard lock(mutex_);
      return drop_all(ids);
    } catch (...) {
      return store_errc::failed;
    }
  }

  std::error_code note_refused(const std::vector<std::int64_t>& ids,
                               std::vector<std::int64_t>& parked) noexcept override {
    parked.clear();
    try {
      std::lock_guard lock(mutex_);
      if (db_.try_exec("BEGIN IMMEDIATE") != SQLITE_OK) return store_errc::failed;
      std::vector<std::int64_t> reached;
      for (const auto id : ids) {
        refuse_.reset();
        refuse_.bind(1, id);
        int rc = refuse_.step();
        if (rc == SQLITE_ROW) {
          if (refuse_.column_int(0) == static_cast<std::int64_t>(journal_refusal_limit)) reached.push_back(id);
          rc = refuse_.step();
        }
        refuse_.reset();
        if (rc != SQLITE_DONE) {
          (void)db_.try_exec("ROLLBACK");
          return store_errc::failed;
        }
      }
      if (db_.try_exec("COMMIT") != SQLITE_OK) {
        (void)db_.try_exec("ROLLBACK");
        return store_errc::failed;
      }
      parked = std::move(reached);
      return {};
    } catch (...) {
      (void)db_.try_exec("ROLLBACK");
      return store_errc::failed;
    }
  }

  std::uint64_t journal_size() const noexcept override {
    std::lock_guard lock(mutex_);
    return journal_rows_;
  }

 private:
  counter_result run(const std::vector<counter_op>& ops) {
    counter_result r;
    // At the bound nothing is counted: a count that cannot be journalled
    // would never reach the primary (see volumes.journal_max_entries).
    if (journal_ && journal_rows_ >= max_journal_) {
      r.error = store_errc::journal_full;
      return r;
    }
    if (db_.try_exec("BEGIN IMMEDIATE") != SQLITE_OK) {
      r.error = store_errc::failed;
      return r;
    }
    bool over = false;
    std::vector<std::pair<std::int64_t, std::int64_t>> ids;  // counter id, its new count
    for (const auto& op : ops) {
      std::int64_t id = 0, count = 0;
      if (!lookup(op, id, count) || !prune(op, id, count)) return fail(r);
      std::uint64_t fresh = 0;
      for (const auto& m : op.members) {
        insert_.reset();
        insert_.bind(1, id);
        insert_.bind(2, crypto::byte_view(m.data(), m.size()));
        insert_.bind(3, op.now);
        if (insert_.step() != SQLITE_DONE) return fail(r);
        if (sqlite3_changes(db_.get()) == 1) {
          ++fresh;
        } else if (op.expire_before != 0) {
          // Rolling window: a subject seen again counts from now on.
          touch_.reset();
          touch_.bind(1, id);
          touch_.bind(2, crypto::byte_view(m.data(), m.size()));
          touch_.bind(3, op.now);
          if (touch_.step() != SQLITE_DONE) return fail(r);
        }
      }
      policy::volume_count c;
      c.before = static_cast<std::uint64_t>(count);
      c.after = c.before + fresh;
      over = over || c.after > op.limit;
      r.counts.push_back(c);
      ids.emplace_back(id, static_cast<std::int64_t>(c.after));
    }
    if (over) {
      // None added: the inserts (and prunes) are undone.
      (void)db_.try_exec("ROLLBACK");
      return r;
    }
    for (std::size_t i = 0; i < ids.size(); ++i) {
      update_.reset();
      update_.bind(1, ids[i].first);
      update_.bind(2, ids[i].second);
      update_.bind(3, ops[i].expires_at);
      if (update_.step() != SQLITE_DONE) return fail(r);
    }
    if (journal_) {
      const std::string blob = encode_journal(ops);
      keep_.reset();
      keep_.bind(1, crypto::byte_view(reinterpret_cast<const std::uint8_t*>(blob.data()), blob.size()));
      if (keep_.step() != SQLITE_DONE) return fail(r);
    }
    if (db_.try_exec("COMMIT") != SQLITE_OK) return fail(r);
    if (journal_) ++journal_rows_;
    r.added = true;
    for (auto& c : r.counts) c.added = true;
    return r;
  }

  counter_result& fail(counter_result& r) {
    (void)db_.try_exec("ROLLBACK");
    r.counts.clear();
    r.added = false;
    r.error = store_errc::failed;
    return r;
  }

  bool lookup(const counter_op& op, std::int64_t& id, std::int64_t& count) {
    find_.reset();
    find_.bind(1, op.key);
    const int rc = find_.step();
    if (rc == SQLITE_ROW) {
      id = find_.column_int(0);
      count = find_.column_int(1);
      // Reset at once: a statement left on a row keeps its read transaction
      // open after COMMIT, which pins the WAL (no checkpoint can reset it: it
      // grew by every flow's pages, about 30 KB a flow, until the store was
      // closed) and keeps this connection on an old snapshot.
      find_.reset();
      return true;
    }
    if (rc != SQLITE_DONE) return false;
    create_.reset();
    create_.bind(1, op.key);
    create_.bind(2, op.expires_at);
    if (create_.step() != SQLITE_DONE) return false;
    id = sqlite3_last_insert_rowid(db_.get());
    count = 0;
    return true;
  }

  bool prune(const counter_op& op, std::int64_t id, std::int64_t& count) {
    if (op.expire_before == 0) return true;
    prune_.reset();
    prune_.bind(1, id);
    prune_.bind(2, op.expire_before);
    if (prune_.step() != SQLITE_DONE) return false;
    count -= sqlite3_changes(db_.get());
    return true;
  }

  // Drops keys whose window ended (a day late, for clocks that disagree).
  void sweep() noexcept {
    last_sweep_ = unix_now();
    const std::string cutoff = std::to_string(last_sweep_ - 86400);
    (void)db_.try_exec("BEGIN IMMEDIATE");
    (void)db_.try_exec(("DELETE FROM members WHERE counter IN (SELECT id FROM counters WHERE expires_at < " + cutoff + ")").c_str());
    (void)db_.try_exec(("DELETE FROM counters WHERE expires_at < " + cutoff).c_str());
    (void)db_.try_exec("COMMIT");
  }

  // Deletes journal entries (and their refusals) in one transaction: all or
  // none. Under mutex_.
  std::error_code drop_all(const std::vector<std::int64_t>& ids) {
    if (ids.empty()) return {};
    if (db_.try_exec("BEGIN IMMEDIATE") != SQLITE_OK) return store_errc::failed;
    std::uint64_t gone = 0;
    for (const auto id : ids) {
      forget_.reset();
      forget_.bind(1, id);
      const int rc = forget_.step();
      gone += static_cast<std::uint64_t>(sqlite3_changes(db_.get()));
      forget_refusals_.reset();
      forget_refusals_.bind(1, id);
      if (rc != SQLITE_DONE || forget_refusals_.step() != SQLITE_DONE) {
        (void)db_.try_exec("ROLLBACK");
        return store_errc::failed;
      }
    }
    if (db_.try_exec("COMMIT") != SQLITE_OK) {
      (void)db_.try_exec("ROLLBACK");
      return store_errc::failed;
    }
    journal_rows_ -= std::min(journal_rows_, gone);
    return {};
  }

  mutable std::mutex mutex_;
  sql::database db_;
  bool journal_ = false;
  std::uint64_t max_journal_ = 0;
  std::uint64_t journal_rows_ = 0;  // rows of the journal table (under mutex_)
  sql::statement find_, create_, prune_, insert_, touch_, update_, keep_, forget_, forget_refusals_, read_journal_,
      refuse_;
  std::uint64_t ops_since_sweep_ = 0;
  std::int64_t last_sweep_ = 0;
};

}  // namespace

std::unique_ptr<counter_store> open_sqlite_store(const std::filesystem::path& file, bool journal,
                                                 std::uint64_t max_journal_entries) {
  try {
    return std::make_unique<sqlite_store>(file, journal, max_journal_entries);
  } catch (const sql::sql_error& e) {
    throw std::runtime_error(file.string() + ": " + e.what());
  }
}

}  // namespace customs::daemon::volume
