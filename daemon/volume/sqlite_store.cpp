#include "daemon/volume/sqlite_store.hpp"

#include "audit/sqlite.hpp"
#include "daemon/volume/journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace customs::daemon::volume {
namespace {

namespace sql = audit::sql;

constexpr const char* schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS keys (
  id         INTEGER PRIMARY KEY,
  key        TEXT UNIQUE NOT NULL,
  expires_at INTEGER NOT NULL,
  rolling    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS seen (
  key        INTEGER NOT NULL,
  member     BLOB NOT NULL,
  at         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
  id         INTEGER PRIMARY KEY,
  ops        BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS journal_refusals (
  id         INTEGER PRIMARY KEY,
  refusals   INTEGER NOT NULL
);
)sql";

// Version 1 kept each key's members in a B-tree with an index by last
// sighting, written by every flow (about 7 pages a flow). Its rows move to
// the append-only log at open, in one transaction.
constexpr const char* migrate_v1_sql = R"sql(
INSERT INTO keys(id, key, expires_at, rolling) SELECT id, key, expires_at, 1 FROM counters;
INSERT INTO seen(key, member, at) SELECT counter, member, last_seen FROM members ORDER BY last_seen;
DROP TABLE members;
DROP TABLE counters;
)sql";

constexpr std::int32_t application_id = 0x43535456;  // "CSTV"
constexpr std::int64_t schema_version = 2;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Subject hashes are BLAKE2b output: their first bytes are a hash already.
struct member_hasher {
  std::size_t operator()(const subject_hash& h) const noexcept {
    std::size_t v = 0;
    std::memcpy(&v, h.data(), sizeof v);
    return v;
  }
};

// One counter key as answered from memory.
struct key_state {
  std::int64_t id = 0;
  std::int64_t expires_at = 0;
  std::unordered_map<subject_hash, std::int64_t, member_hasher> members;  // member -> last sighting
  // Rolling windows: (sighting, member) in the order written, oldest first; a
  // member whose last sighting is later than its entry here is pruned by its
  // later entry. Not kept for calendar windows (an op without expire_before).
  std::deque<std::pair<std::int64_t, subject_hash>> order;
  bool calendar = false;
};

// What one group commit writes, and whom it answers.
struct batch {
  struct key_row {
    std::int64_t id, expires_at;
    std::string key;
    bool rolling;
  };
  struct seen_row {
    std::int64_t key;
    subject_hash member;
    std::int64_t at;
  };
  std::vector<key_row> keys;  // new keys and later expiries
  std::vector<seen_row> seen;
  std::vector<std::string> journal;  // encoded entries (fallback stores)
  std::vector<std::pair<counter_store::completion, counter_result>> answers;
  [[nodiscard]] bool empty() const noexcept { return answers.empty() && keys.empty(); }
};

// One store per file: memory answers for the file, so a second store (another
// customsd, or the same one opening it twice) would count beside it and give
// key ids twice. An exclusive flock on the database file, held while the store
// lives; SQLite's own locks are fcntl locks, which flock does not touch. The
// descriptor is closed only after SQLite closed the file (closing any
// descriptor of a file drops the process's fcntl locks on it).
// A store of this process that holds the file is found before the file is
// opened (by device and inode): a refused open must not open and close a
// descriptor of the file, which would drop the fcntl locks the first store's
// SQLite holds on it (its SHARED lock in WAL mode: without it, another
// process closing its connection checkpoints and deletes the WAL under it).
class file_claim {
 public:
  explicit file_claim(const std::filesystem::path& file) {
    std::lock_guard lock(claims_mutex());
    struct stat st {};
    if (::stat(file.c_str(), &st) == 0 && claims().contains({st.st_dev, st.st_ino}))
      throw std::runtime_error(file.string() + ": in use by another counter store (in this process)");
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw std::runtime_error(file.string() + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0 || ::fstat(fd_, &st) != 0) {
      const int e = errno;
      ::close(fd_);
      throw std::runtime_error(file.string() + (e == EWOULDBLOCK ? ": in use by another counter store (another customsd?)"
                                                                 : std::string(": ") + std::strerror(e)));
    }
    id_ = {st.st_dev, st.st_ino};
    claims().insert(id_);
  }
  ~file_claim() {
    std::lock_guard lock(claims_mutex());
    ::close(fd_);
    claims().erase(id_);
  }
  file_claim(const file_claim&) = delete;
  file_claim& operator=(const file_claim&) = delete;

 private:
  static std::mutex& claims_mutex() {
    static std::mutex m;
    return m;
  }
  static std::set<std::pair<dev_t, ino_t>>& claims() {
    static std::set<std::pair<dev_t, ino_t>> s;
    return s;
  }
  int fd_ = -1;
  std::pair<dev_t, ino_t> id_{};
};

class sqlite_store final : public counter_store {
 public:
  sqlite_store(const std::filesystem::path& file, bool journal, std::uint64_t max_journal)
      : claim_(file), db_(file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX), journal_(journal),
        max_journal_(max_journal) {
    db_.exec("PRAGMA busy_timeout = 5000");
    const auto app = db_.query_int("PRAGMA application_id");
    const auto version = db_.query_int("PRAGMA user_version");
    const auto tables = db_.query_int("SELECT count(*) FROM sqlite_master");
    if (tables > 0 && (app != application_id || (version != 1 && version != schema_version)))
      throw std::runtime_error(file.string() + ": not a Customs volume counter database (or another version)");
    db_.exec("PRAGMA journal_mode = WAL");
    db_.exec("PRAGMA synchronous = NORMAL");
    db_.exec("BEGIN IMMEDIATE");
    try {
      db_.exec(schema_sql);
      if (tables > 0 && version == 1) db_.exec(migrate_v1_sql);
      if (tables == 0) db_.exec(("PRAGMA application_id = " + std::to_string(application_id)).c_str());
      db_.exec(("PRAGMA user_version = " + std::to_string(schema_version)).c_str());
      db_.exec("COMMIT");
    } catch (...) {
      (void)db_.try_exec("ROLLBACK");
      throw;
    }
    add_key_ = sql::statement(db_,
        "INSERT INTO keys(id, key, expires_at, rolling) VALUES(?1, ?2, ?3, ?4) "
        "ON CONFLICT(id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at), rolling = excluded.rolling");
    add_seen_ = sql::statement(db_, "INSERT INTO seen(key, member, at) VALUES(?1, ?2, ?3)");
    drop_key_ = sql::statement(db_, "DELETE FROM keys WHERE id = ?1");
    begin_ = sql::statement(db_, "BEGIN IMMEDIATE");
    commit_ = sql::statement(db_, "COMMIT");
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
    if (!load()) throw std::runtime_error(file.string() + ": the counter log cannot be read");
    sweep();
    // A log mostly made of superseded sightings is rewritten now, before any
    // flow waits on it.
    if (compaction_due()) (void)compact();
    writer_ = std::thread([this] { write_loop(); });
  }

  ~sqlite_store() override { close(); }

  counter_result add(const std::vector<counter_op>& ops) override {
    std::promise<counter_result> answer;
    auto got = answer.get_future();
    add_async(ops, [&answer](counter_result r) { answer.set_value(std::move(r)); });
    return got.get();
  }

  void add_async(std::vector<counter_op> ops, completion done) override {
    counter_result r;
    {
      std::lock_guard lock(mem_);
      if (!stop_) {
        if (answer(ops, r)) {
          // Counted in memory: the answer waits for the group commit that
          // makes the flow's sightings durable (a crash of customsd loses no
          // count a flow was let through with).
          pending_.answers.emplace_back(std::move(done), std::move(r));
          wake_.notify_one();
          return;
        }
      } else {
        r.error = store_errc::failed;
      }
    }
    done(std::move(r));
  }

  bool asynchronous() const noexcept override { return true; }

  std::error_code count(const std::string& key, std::int64_t expire_before, std::uint64_t& out) override {
    std::lock_guard lock(mem_);
    out = 0;
    // Memory was read back only in part after a failed write: no count.
    if (broken_) return store_errc::failed;
    const auto it = keys_.find(key);
    if (it == keys_.end()) return {};
    if (expire_before == 0) {
      out = it->second.members.size();
      return {};
    }
    for (const auto& [m, seen] : it->second.members) out += seen >= expire_before ? 1 : 0;
    return {};
  }

  std::string_view backend() const noexcept override { return "sqlite"; }

  // Writes what was answered and stops the writer. Adds after it fail.
  // Called on the writer thread (a completion held the last reference to
  // the store, and released it there): the writer cannot be joined; it
  // returns once the completions it is running returned, touching nothing of
  // the store, and what is pending is written here.
  void close() noexcept override {
    {
      std::lock_guard lock(mem_);
      stop_ = true;
    }
    wake_.notify_one();
    if (!writer_.joinable()) return;
    if (writer_.get_id() != std::this_thread::get_id()) {
      writer_.join();
      return;
    }
    gone_->store(true);
    writer_.detach();
    batch b;
    {
      std::lock_guard lock(mem_);
      std::swap(b, pending_);
    }
    bool ok = true;
    if (!b.empty()) {
      std::lock_guard db_lock(db_mutex_);
      ok = write(b);
    }
    answer_all(b, ok);
  }

  std::error_code journal(std::size_t max, std::vector<journal_entry>& out,
                          std::uint64_t& unreadable) noexcept override {
    unreadable = 0;
    out.clear();
    try {
      std::lock_guard lock(db_mutex_);
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
      std::lock_guard lock(db_mutex_);
      return drop_all(ids);
    } catch (...) {
      return store_errc::failed;
    }
  }

  std::error_code note_refused(const std::vector<std::int64_t>& ids,
                               std::vector<std::int64_t>& parked) noexcept override {
    parked.clear();
    try {
      std::lock_guard lock(db_mutex_);
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
    std::lock_guard lock(mem_);
    return journal_rows_;
  }

 private:
  // Drops a rolling key's members last seen before `expire_before`, oldest
  // first. Under mem_.
  void prune(key_state& k, std::int64_t expire_before) {
    if (k.calendar) {
      // A key counted without a window until now: no order is kept.
      for (auto it = k.members.begin(); it != k.members.end();) {
        if (it->second < expire_before) {
          it = k.members.erase(it);
          ++dead_rows_;
          --live_;
        } else {
          ++it;
        }
      }
      return;
    }
    while (!k.order.empty() && k.order.front().first < expire_before) {
      const auto& [at, m] = k.order.front();
      const auto it = k.members.find(m);
      // The member's last sighting is this entry: it leaves the window.
      // Otherwise a later entry stands for it.
      // (Its superseded entries were counted dead when superseded.)
      if (it != k.members.end() && it->second == at) {
        k.members.erase(it);
        --live_;
        ++dead_rows_;
      }
      k.order.pop_front();
    }
  }

  // A rolling key's order keeps an entry for every sighting, superseded ones
  // included, until it leaves the window: a subject seen every second would
  // keep a window's length of entries (2.6 million in 30 days, 24 bytes
  // each). When superseded entries outnumber the members, the order is
  // rebuilt from the members, one entry each, by last sighting (which also
  // puts back in order the entries a clock that went back appended out of
  // order): memory follows the subjects, not their sightings. Amortised
  // O(log n) per sighting. Under mem_ (or before the writer starts).
  static void tidy(key_state& k) {
    if (k.calendar || k.order.size() <= 2 * k.members.size() + 4096) return;
    std::vector<std::pair<std::int64_t, subject_hash>> v;
    v.reserve(k.members.size());
    for (const auto& [m, at] : k.members) v.emplace_back(at, m);
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    k.order = std::deque<std::pair<std::int64_t, subject_hash>>(v.begin(), v.end());
  }

  // Answers ops from memory (see counter_store: all or none). True when the
  // members were added and the answer must wait for the group commit. Under
  // mem_.
  bool answer(const std::vector<counter_op>& ops, counter_result& r) {
    // At the bound nothing is counted: a count that cannot be journalled
    // would never reach the primary (see volumes.journal_max_entries).
    if (journal_ && journal_rows_ >= max_journal_) {
      r.error = store_errc::journal_full;
      return false;
    }
    // Memory could not be read back from the file after a failed write: no
    // count is answered until it is (fails closed).
    if (broken_) {
      r.error = store_errc::failed;
      return false;
    }
    bool over = false;
    r.counts.reserve(ops.size());
    for (const auto& op : ops) {
      policy::volume_count c;
      const auto it = keys_.find(op.key);
      if (it != keys_.end()) {
        if (op.expire_before != 0) prune(it->second, op.expire_before);
        c.before = it->second.members.size();
        std::uint64_t fresh = 0;
        for (const auto& m : op.members) fresh += it->second.members.contains(m) ? 0 : 1;
        c.after = c.before + fresh;
      } else {
        c.after = op.members.size();
      }
      over = over || c.after > op.limit;
      r.counts.push_back(c);
    }
    if (over) return false;  // none added; nothing to write
    for (const auto& op : ops) {
      auto [it, created] = keys_.try_emplace(op.key);
      key_state& k = it->second;
      bool changed = created;
      if (created) {
        k.id = next_id_++;
        k.expires_at = op.expires_at;
        k.calendar = op.expire_before == 0;
      } else if (op.expires_at > k.expires_at) {
        k.expires_at = op.expires_at;
        changed = true;
      }
      if (op.expire_before == 0 && !k.calendar) {
        k.calendar = true;
        k.order = {};
        changed = true;
      }
      if (changed) pending_.keys.push_back({k.id, k.expires_at, op.key, !k.calendar});
      for (const auto& m : op.members) {
        auto [mt, fresh] = k.members.try_emplace(m, op.now);
        if (fresh) {
          ++live_;
        } else if (op.expire_before != 0 && mt->second < op.now) {
          // Rolling window: a subject seen again counts from now on.
          mt->second = op.now;
          ++dead_rows_;
        } else {
          continue;
        }
        pending_.seen.push_back({k.id, m, op.now});
        if (!k.calendar) k.order.emplace_back(op.now, m);
      }
      tidy(k);
    }
    if (journal_) {
      pending_.journal.push_back(encode_journal(ops));
      ++journal_rows_;
    }
    r.added = true;
    for (auto& c : r.counts) c.added = true;
    return true;
  }

  // The writer thread: one transaction for everything answered since the
  // last one (group commit), then the answers.
  void write_loop() noexcept {
    // Outlives the store (see close()).
    const std::shared_ptr<std::atomic<bool>> gone = gone_;
    for (;;) {
      batch b;
      bool sweep_due = false, reload = false;
      {
        std::unique_lock lock(mem_);
        wake_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_ || !pending_.empty(); });
        if (pending_.empty()) {
          if (stop_) return;
          reload = broken_;
          sweep_due = unix_now() - last_sweep_ >= 3600;
          if (!sweep_due && !reload) continue;
        }
        std::swap(b, pending_);
      }
      if (reload) {
        std::lock_guard db_lock(db_mutex_);
        std::lock_guard lock(mem_);
        broken_ = !load();
        continue;
      }
      if (sweep_due) {
        std::lock_guard db_lock(db_mutex_);
        sweep();
        if (compaction_due()) (void)compact();
        continue;
      }
      bool ok = false;
      {
        std::lock_guard db_lock(db_mutex_);
        ok = write(b);
        if (!ok) {
          // Memory holds counts the file does not: every answer not yet
          // written fails, and memory is read back from the file (a count is
          // never answered from a sighting that a crash would lose).
          std::lock_guard lock(mem_);
          for (auto& a : pending_.answers) b.answers.push_back(std::move(a));
          pending_ = {};
          broken_ = !load();
        }
      }
      // The completions may release the store's last reference (here or
      // when they are destroyed): nothing of the store is touched after them
      // when it is gone.
      answer_all(b, ok);
      if (gone->load()) return;
    }
  }

  // Runs a batch's completions (failed ones when !ok) and destroys them.
  // Touches only `b`: the store may be destroyed meanwhile.
  static void answer_all(batch& b, bool ok) noexcept {
    auto answers = std::move(b.answers);
    b.answers.clear();
    for (auto& [done, r] : answers) {
      if (!ok) {
        r = {};
        r.error = store_errc::failed;
      }
      done(std::move(r));
    }
    answers.clear();
  }

  // One transaction. Under db_mutex_.
  bool write(const batch& b) {
    begin_.reset();
    const int began = begin_.step();
    begin_.reset();
    if (began != SQLITE_DONE) return false;
    for (const auto& k : b.keys) {
      add_key_.reset();
      add_key_.bind(1, k.id);
      add_key_.bind(2, k.key);
      add_key_.bind(3, k.expires_at);
      add_key_.bind(4, std::int64_t{k.rolling ? 1 : 0});
      if (add_key_.step() != SQLITE_DONE) return rollback();
    }
    for (const auto& s : b.seen) {
      add_seen_.reset();
      add_seen_.bind(1, s.key);
      add_seen_.bind(2, crypto::byte_view(s.member.data(), s.member.size()));
      add_seen_.bind(3, s.at);
      if (add_seen_.step() != SQLITE_DONE) return rollback();
    }
    for (const auto& blob : b.journal) {
      keep_.reset();
      keep_.bind(1, crypto::byte_view(reinterpret_cast<const std::uint8_t*>(blob.data()), blob.size()));
      if (keep_.step() != SQLITE_DONE) return rollback();
    }
    commit_.reset();
    const int committed = commit_.step();
    commit_.reset();
    if (committed != SQLITE_DONE) return rollback();
    rows_ += b.seen.size();
    return true;
  }

  bool rollback() {
    (void)db_.try_exec("ROLLBACK");
    return false;
  }

  // Reads the keys and the log into memory (at open, and after a failed
  // write). Rows of keys that are gone are superseded. Under db_mutex_ and
  // mem_ (or before the writer starts).
  bool load() noexcept {
    try {
      keys_.clear();
      live_ = dead_rows_ = rows_ = 0;
      next_id_ = 1;
      std::unordered_map<std::int64_t, key_state*> by_id;
      {
        sql::statement st(db_, "SELECT id, key, expires_at, rolling FROM keys");
        int rc = SQLITE_ROW;
        while ((rc = st.step()) == SQLITE_ROW) {
          auto& k = keys_[std::string(st.column_text(1))];
          k.id = st.column_int(0);
          k.expires_at = st.column_int(2);
          k.calendar = st.column_int(3) == 0;
          if (k.id == INT64_MAX) return false;  // no id after it (damaged or hostile file)
          by_id[k.id] = &k;
          next_id_ = std::max(next_id_, k.id + 1);
        }
        if (rc != SQLITE_DONE) return false;
      }
      sql::statement st(db_, "SELECT key, member, at FROM seen ORDER BY rowid");
      int rc = SQLITE_ROW;
      while ((rc = st.step()) == SQLITE_ROW) {
        ++rows_;
        const auto id = st.column_int(0);
        if (id == INT64_MAX) return false;
        next_id_ = std::max(next_id_, id + 1);  // never reuse the id of a dropped key
        const auto blob = st.column_blob(1);
        const auto it = by_id.find(id);
        if (it == by_id.end() || blob.size() != sizeof(subject_hash)) continue;
        subject_hash m;
        std::memcpy(m.data(), blob.data(), m.size());
        const auto at = st.column_int(2);
        key_state& k = *it->second;
        auto [mt, fresh] = k.members.try_emplace(m, at);
        if (!fresh) mt->second = std::max(mt->second, at);
        if (!k.calendar) k.order.emplace_back(at, m);
      }
      if (rc != SQLITE_DONE) return false;
      for (auto& [key, k] : keys_) {
        live_ += k.members.size();
        tidy(k);
      }
      dead_rows_ = rows_ - live_;
      journal_rows_ = static_cast<std::uint64_t>(db_.query_int("SELECT count(*) FROM journal"));
      return true;
    } catch (...) {
      return false;
    }
  }

  // A log mostly made of superseded rows (and more than a few of them).
  bool compaction_due() {
    std::lock_guard lock(mem_);
    return dead_rows_ > 65536 && dead_rows_ > live_;
  }

  // Rewrites the log with one row per live member (superseded sightings and
  // rows of dropped keys go). Under db_mutex_, on the writer thread or before
  // it starts: the members are copied under mem_, then written without it;
  // sightings answered meanwhile are written again by the next batch, which
  // is harmless.
  bool compact() noexcept {
    try {
      std::vector<batch::seen_row> rows;
      {
        std::lock_guard lock(mem_);
        rows.reserve(live_);
        for (const auto& [key, k] : keys_)
          for (const auto& [m, at] : k.members) rows.push_back({k.id, m, at});
      }
      std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.at < b.at; });
      if (db_.try_exec("BEGIN IMMEDIATE") != SQLITE_OK) return false;
      if (db_.try_exec("DELETE FROM seen") != SQLITE_OK) return rollback();
      for (const auto& s : rows) {
        add_seen_.reset();
        add_seen_.bind(1, s.key);
        add_seen_.bind(2, crypto::byte_view(s.member.data(), s.member.size()));
        add_seen_.bind(3, s.at);
        if (add_seen_.step() != SQLITE_DONE) return rollback();
      }
      if (db_.try_exec("COMMIT") != SQLITE_OK) return rollback();
      std::lock_guard lock(mem_);
      rows_ = rows.size();
      dead_rows_ = rows_ - std::min<std::uint64_t>(rows_, live_);
      return true;
    } catch (...) {
      return false;
    }
  }

  // Drops keys whose window ended (a day late, for clocks that disagree):
  // from memory, and their key rows; their sightings are superseded rows
  // until the next compaction. Under db_mutex_ (or before the writer starts).
  void sweep() noexcept {
    last_sweep_ = unix_now();
    const std::int64_t cutoff = last_sweep_ - 86400;
    std::vector<std::int64_t> gone;
    {
      std::lock_guard lock(mem_);
      for (auto it = keys_.begin(); it != keys_.end();) {
        if (it->second.expires_at < cutoff) {
          gone.push_back(it->second.id);
          live_ -= it->second.members.size();
          dead_rows_ += it->second.members.size();
          it = keys_.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (gone.empty() || db_.try_exec("BEGIN IMMEDIATE") != SQLITE_OK) return;
    for (const auto id : gone) {
      drop_key_.reset();
      drop_key_.bind(1, id);
      (void)drop_key_.step();
    }
    if (db_.try_exec("COMMIT") != SQLITE_OK) (void)db_.try_exec("ROLLBACK");
  }

  // Deletes journal entries (and their refusals) in one transaction: all or
  // none. Under db_mutex_.
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
    std::lock_guard lock(mem_);
    journal_rows_ -= std::min(journal_rows_, gone);
    return {};
  }

  file_claim claim_;  // declared before db_: released after it is closed
  // Lock order: db_mutex_, then mem_.
  std::mutex db_mutex_;  // the connection and its statements
  sql::database db_;
  bool journal_ = false;
  std::uint64_t max_journal_ = 0;
  sql::statement add_key_, add_seen_, drop_key_, begin_, commit_, keep_, forget_, forget_refusals_, read_journal_, refuse_;
  std::int64_t last_sweep_ = 0;  // writer thread (or before it starts)

  mutable std::mutex mem_;  // everything below
  std::condition_variable wake_;
  std::unordered_map<std::string, key_state> keys_;
  std::int64_t next_id_ = 1;
  std::uint64_t live_ = 0;       // members held, all keys
  std::uint64_t rows_ = 0;       // rows of the log
  std::uint64_t dead_rows_ = 0;  // rows of the log that no longer stand for a member
  std::uint64_t journal_rows_ = 0;  // journal entries, written or pending
  batch pending_;
  bool stop_ = false;
  bool broken_ = false;  // memory could not be read back after a failed write
  // Set when the store was closed on its writer thread: the writer returns.
  std::shared_ptr<std::atomic<bool>> gone_ = std::make_shared<std::atomic<bool>>(false);
  std::thread writer_;
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
