// The audit store's writer: one thread that encrypts, chains, MACs and commits
// records in groups. The byte format it writes is specified at the top of
// format.hpp (with the "valid if and only if" rule) and the schema in schema.hpp.
//
// Life of an epoch (e):
//   start  a random data key and nonce prefix are drawn; an epoch_start record
//          carries the data key sealed to each auditor key; records of epoch e are
//          MACed with k_e (the sealing key's state, held in memory and on disk).
//   end    after epoch_records records or epoch_duration (or at close): the
//          sealing key file is replaced by k_{e+1} (crash-safe: tmp file, fsync,
//          rename, fsync folder) and k_e and the data key are wiped from memory;
//          then a signed checkpoint of the chain head (epoch e) is committed.
//          The order matters: a checkpoint of epoch e exists only once the key
//          file has left epoch e, so a key file at an epoch that a checkpoint
//          names was restored from a backup, not left by a crash.
//
// Recovery rule at open (e_file = the epoch in sealing.key, e_db = the epoch of
// the last record, e_cp = the greatest epoch a checkpoint names):
//   empty database      e_file must be 0: the trail starts at epoch 0 (a verifier
//                       requires it); otherwise refuse (use fresh keys).
//   e_file <  e_db, or  refuse: the key file is older than the trail (restored
//   e_file <= e_cp      from a backup?); the key of an epoch that was ended must
//                       never come back.
//   e_file == e_db      epoch e_db was never ended (a crash inside it): end it now
//                       (evolve the key file, checkpoint the head), then start
//                       epoch e_db + 1.
//   e_file >  e_db      the key was evolved but the next epoch_start was not
//                       committed (crash, or a clean close): checkpoint the head if
//                       no checkpoint covers it yet, start epoch e_file.
// Either way a new epoch starts at every open, so a data key is never reused
// across processes, and the chain continues from the last committed record.
//
// The trail's files are watched (check_trail): after every commit (five stat
// calls beside its fsync), before every batch that holds a record appended
// after the last check began (under load, the records of the next batch
// mostly came while the previous one committed), and every trail_check_interval
// without traffic, the paths of the database, its -wal and -shm files and the lock file
// must still name the files the writer opened (device and inode). A file
// deleted or replaced means that what the writer commits no longer reaches the
// trail at its path: the trail is lost, for good. The batch that noticed it is
// reported errc::trail_lost (its records went to the unlinked file), every later
// append is refused with trail_lost, and the writer never reopens the path by
// itself: a replaced trail must not be silently continued, and a restart decides
// by the recovery rule above (a deleted trail leaves an empty database and a key
// past epoch 0: refused). A database without any write permission bit, or on a
// read-only file system, is refused records (store_failed) while it stays so;
// the writer does not write into a file its operator made read-only.
//
// Errors: a batch whose insert or commit fails is rolled back as a whole; each of
// its records is reported to its durable handler as errc::store_failed, and the
// in-memory chain state (next seq, head) returns to the last committed state, so
// the next batch continues a valid chain once the database takes writes again.
// KNOWN WEAKNESS: records of a failed batch are reported, not retried: the caller
// (customsd) fails closed on them and may write them again.

#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "audit/format.hpp"
#include "audit/schema.hpp"
#include "audit/schema_check.hpp"
#include "audit/sqlite.hpp"
#include "audit/store.hpp"
#include "crypto/key_file.hpp"

namespace customs::audit {

namespace {

class audit_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "customs.audit"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::queue_full: return "audit queue is full";
      case errc::store_failed: return "audit store failed to write";
      case errc::closed: return "audit writer is closed";
      case errc::trail_lost: return "the audit trail was deleted or replaced under the writer";
    }
    return "unknown audit error";
  }
};

using clock = std::chrono::steady_clock;

// While a batch fills, the writer is woken every this many queued records.
constexpr std::size_t wake_stride = 64;

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A record waiting in the queue.
struct item {
  record rec;
  writer::durable_handler on_durable;
  std::int64_t time_us = 0;
  clock::time_point enqueued;
  std::size_t bytes = 0;  // counted against writer_options::queue_bytes until committed
  std::uint64_t order = 0;  // 1 for the first record appended, 2 for the next, ...
};

// What a record costs in the queue: its variable-size parts.
std::size_t record_bytes(const record& r) {
  std::size_t n = r.flow_id.size() + r.payload.size() + r.index.route.size() + r.index.src.size() +
                  r.index.dst.size() + r.index.tenant.size() + r.index.action.size() +
                  r.index.rule_set_hash.size();
  for (const auto& x : r.index.rules) n += x.size() + 1;
  return n;
}

// Which file a path names: its device and inode.
struct file_id {
  dev_t dev = 0;
  ino_t ino = 0;
  friend bool operator==(const file_id&, const file_id&) = default;
};

std::optional<file_id> identity_of(const std::filesystem::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return std::nullopt;
  return file_id{st.st_dev, st.st_ino};
}

std::filesystem::path with_suffix(const std::filesystem::path& p, const char* suffix) {
  std::filesystem::path q = p;
  q += suffix;
  return q;
}

// Holds an exclusive advisory lock (flock) on "<db>-writer.lock" so that two
// writers (two customsd on one audit.path, or customsd and customsctl audit
// erase) never interleave their chains. A separate file, because SQLite holds
// POSIX locks on the database itself and closing any other descriptor of it
// would drop them. Readers (verify, show, export, ...) do not take it.
class writer_lock {
 public:
  explicit writer_lock(const std::filesystem::path& db) : path_(with_suffix(db, "-writer.lock")) {
    // The file locked must be the one at the path: if it was removed or replaced
    // between open and flock, lock the new one.
    for (int attempt = 0;; ++attempt) {
      fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (fd_ < 0)
        throw std::runtime_error(path_.string() + ": cannot open lock file: " + std::strerror(errno));
      if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        ::close(fd_);
        fd_ = -1;
        if (e == EWOULDBLOCK)
          throw std::runtime_error(
              "audit database " + db.string() + " is in use by another process (it holds " +
              path_.string() + "): two writers would interleave their chains; stop the other "
              "customsd (or customsctl audit erase), or give this one its own audit.path");
        throw std::runtime_error(path_.string() + ": cannot lock: " + std::strerror(e));
      }
      struct stat st {};
      if (::fstat(fd_, &st) == 0) {
        id_ = file_id{st.st_dev, st.st_ino};
        if (identity_of(path_) == id_) return;
      }
      ::close(fd_);
      fd_ = -1;
      if (attempt == 2) throw std::runtime_error(path_.string() + ": the lock file keeps changing");
    }
  }
  ~writer_lock() {
    if (fd_ >= 0) ::close(fd_);
  }
  writer_lock(const writer_lock&) = delete;
  writer_lock& operator=(const writer_lock&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] file_id id() const noexcept { return id_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  file_id id_;
};

class store_impl final : public store {
 public:
  explicit store_impl(const writer_options& opts);
  ~store_impl() override { close(); }

  std::error_code append(record r, durable_handler on_durable) override;
  bool healthy() const noexcept override {
    return healthy_.load(std::memory_order_relaxed) && !lost_.load(std::memory_order_relaxed);
  }
  stats get_stats() const override;
  void close() override;
  erase_result erase_flow(std::string_view flow_id, std::string_view reason) override;
  void set_max_pages(std::uint32_t pages) override;
  std::uint64_t epoch() const noexcept override { return epoch_atomic_.load(); }

 private:
  // Committed chain state; the writer thread's working state returns to it when
  // a batch fails.
  struct chain_state {
    std::uint64_t next_seq = 1;
    crypto::hash head = format::zero_hash;
    std::uint64_t records_in_epoch = 0;
    bool epoch_start_pending = false;
    std::uint64_t last_epoch = 0;  // epoch of the record at next_seq - 1
  };

  // What check_trail found.
  enum class trail_state { ok, read_only, lost };
  // Why the store is unhealthy (writer thread).
  enum class cause { none, store_error, read_only, lost };

  void run();
  // last_order: the order of the last record the batch takes now (0: none).
  void begin_batch(std::uint64_t last_order = 0);
  void add_to_batch(item& it, std::uint64_t last_order);
  void commit_batch();
  [[nodiscard]] bool insert_record(record_kind kind, std::string_view flow_id,
                                   const index_fields& index, std::int64_t time_us,
                                   std::string_view plaintext, const crypto::bytes* clear_body,
                                   std::uint64_t* seq_out);
  [[nodiscard]] bool write_checkpoint(const char* reason);
  void start_epoch(std::uint64_t epoch);
  [[nodiscard]] bool write_epoch_start_now();
  // Ends the current epoch: evolve the key, then checkpoint. With start_next, a
  // new epoch starts once the key moved (its epoch_start is written at once, or
  // with the next batch). False if the key could not be replaced (the epoch goes
  // on) or the checkpoint could not be written (the next one covers its records).
  [[nodiscard]] bool end_epoch(const char* reason, bool start_next);
  void maybe_end_epoch();
  void run_task(const std::function<void()>& task) noexcept;
  void note_error(const std::string& what);
  void filter_index(index_fields& f) const;
  // The trail watch (see the top of this file). Writer thread (and the
  // constructor before the threads start).
  void remember_trail_files();
  [[nodiscard]] trail_state check_trail(std::string& why) const;
  // Runs check_trail and applies what it found; false unless the trail is ok.
  bool watch_trail();
  void set_health(cause c, const std::string& why);

  // Which index fields are stored (writer_options::index_fields), as bits.
  enum : unsigned {
    f_route = 1, f_src = 2, f_dst = 4, f_tenant = 8, f_action = 16, f_rules = 32,
    f_rule_set_hash = 64, f_tokens = 128
  };
  unsigned index_mask_ = 0;

  writer_options opts_;
  std::unique_ptr<writer_lock> lock_;
  sql::database db_;
  sql::statement insert_;
  sql::statement insert_checkpoint_;
  // A batch's BEGIN and COMMIT, prepared once (sqlite3_exec parses its SQL at
  // every call).
  sql::statement begin_;
  sql::statement commit_;
  // Runs a prepared statement that returns no rows: SQLITE_OK or its error.
  static int run_once(sql::statement& st) noexcept {
    const int rc = st.step();
    st.reset();
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
  }

  // Keys. sealing_ holds k_e for the current epoch e.
  std::vector<crypto::box_public_key> auditors_;
  crypto::sealing_state sealing_;
  crypto::sign_seed signing_;
  crypto::sign_public_key signer_{};
  crypto::aead_key data_key_;
  std::array<std::uint8_t, 16> nonce_prefix_{};
  std::uint64_t nonce_counter_ = 0;

  // Writer-thread state.
  std::uint64_t epoch_ = 0;
  chain_state committed_;
  chain_state work_;
  clock::time_point epoch_started_;
  bool in_txn_ = false;
  bool batch_failed_ = false;
  clock::time_point batch_deadline_;
  std::vector<item> batch_;
  std::uint64_t checkpointed_seq_ = 0;  // seq covered by the last checkpoint
  errc batch_errc_ = errc::store_failed;  // what a failed batch reports
  cause cause_ = cause::none;
  clock::time_point next_trail_check_;
  std::optional<file_id> db_id_, wal_id_, shm_id_;
  std::filesystem::path wal_path_, shm_path_;
  // Records appended so far (guarded by mu_), and how many of them had been
  // appended when the last check that found the trail ok began (writer
  // thread): a batch of those only is not checked again (begin_batch).
  std::uint64_t appended_ = 0;
  std::uint64_t checked_upto_ = 0;
  crypto::bytes header_buf_;
  crypto::bytes payload_buf_;
  std::string last_error_;

  // Shared with callers.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<item> queue_;
  std::size_t queued_bytes_ = 0;  // of queue_ and the batch in progress
  std::deque<std::function<void()>> tasks_;
  bool closing_ = false;
  bool closed_ = false;
  bool writer_idle_ = false;  // the writer thread waits with no batch open
  std::thread thread_;

  // WAL checkpoints run on their own connection and thread (PASSIVE: they never
  // block the writer), so that copying the WAL into the database and its fsync
  // stay out of the group-commit path. A pass that ends with only a short tail
  // of frames left (commits that came while it copied) hands that tail to the
  // writer (tail_due_), which copies it between two batches: only a WAL copied
  // to its end is started again from its first frame by the next commit. Under
  // steady load the background passes alone are always overtaken, and the WAL
  // would grow until the hard limit, every commit appending to the file (a
  // costlier flush: the file system's journal commits with it).
  void run_checkpointer();
  void finish_checkpoint();
  static int on_wal_commit(void* self, sqlite3*, const char*, int pages);
  sql::database ckpt_db_;
  std::thread checkpointer_;
  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  bool ckpt_wanted_ = false;
  bool ckpt_stop_ = false;
  std::atomic<bool> tail_due_{false};
  std::atomic<int> wal_frames_{0};  // frames in the WAL after the last commit (set by the writer)
  std::atomic<int> commit_frames_{0};  // frames the last commit added
  std::atomic<std::uint64_t> wal_restarts_{0};
  std::atomic<bool> healthy_{true};
  std::atomic<bool> lost_{false};
  std::atomic<std::uint64_t> epoch_atomic_{0};
  std::atomic<std::uint64_t> records_committed_{0};
  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> checkpoints_{0};
  std::atomic<std::uint64_t> wal_checkpoints_{0};
  std::atomic<std::uint64_t> records_truncated_{0};
  std::atomic<std::uint64_t> append_refused_{0};
  std::atomic<std::uint64_t> store_errors_{0};
  std::atomic<std::int64_t> last_commit_latency_us_{0};
  std::array<std::atomic<std::uint64_t>, writer::commit_latency_bounds.size() + 1> commit_buckets_{};
  std::atomic<std::uint64_t> commit_latency_sum_us_{0};
};

store_impl::store_impl(const writer_options& opts) : opts_(opts) {
  crypto::init();
  if (opts_.auditor_keys.empty())
    throw std::runtime_error("audit: at least one auditor public key is needed");
  if (opts_.auditor_keys.size() > format::max_auditors)
    throw std::runtime_error("audit: too many auditor keys (at most 64)");
  if (opts_.commit_records == 0) opts_.commit_records = 1;
  if (opts_.epoch_records == 0) opts_.epoch_records = 1;
  if (opts_.queue_capacity == 0) opts_.queue_capacity = 1;
  if (opts_.queue_bytes == 0) opts_.queue_bytes = 1;
  if (opts_.trail_check_interval.count() <= 0) opts_.trail_check_interval = std::chrono::milliseconds(1000);
  for (const auto& name : opts_.index_fields) {
    static constexpr std::pair<std::string_view, unsigned> names[] = {
        {"route", f_route},   {"src", f_src},       {"dst", f_dst},
        {"tenant", f_tenant}, {"action", f_action}, {"rules", f_rules},
        {"rule_set_hash", f_rule_set_hash},         {"tokens", f_tokens}};
    unsigned bit = 0;
    for (const auto& [n, b] : names)
      if (name == n) bit = b;
    if (!bit)
      throw std::runtime_error("audit: unknown index field \"" + name +
                               "\" (use route, src, dst, tenant, action, rules, rule_set_hash, tokens)");
    index_mask_ |= bit;
  }
  for (const auto& p : opts_.auditor_keys) auditors_.push_back(crypto::load_auditor_public(p));
  sealing_ = crypto::load_sealing_key(opts_.sealing_key);
  signing_ = crypto::load_signing_key(opts_.signing_key);
  signer_ = crypto::sign_public_from_seed(signing_);

  // The lock file sits beside the database file itself, not beside a
  // symbolic link to it: two writers that name one trail by two paths (a
  // link, "..") take one lock. (A second mount of the folder still escapes it.)
  {
    std::error_code ec;
    auto real = std::filesystem::weakly_canonical(opts_.db, ec);
    if (!ec) opts_.db = std::move(real);
  }
  lock_ = std::make_unique<writer_lock>(opts_.db);
  db_ = sql::database(opts_.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  sqlite3_busy_timeout(db_.get(), 5000);
  try {
    const auto app_id = db_.query_int("PRAGMA application_id");
    const auto user_version = db_.query_int("PRAGMA user_version");
    const auto tables = db_.query_int("SELECT count(*) FROM sqlite_schema");
    if (tables == 0 && app_id == 0 && user_version == 0) {
      db_.exec("PRAGMA journal_mode=WAL");
      db_.exec("BEGIN IMMEDIATE");
      db_.exec(schema::create_sql);
      db_.exec(("PRAGMA application_id=" + std::to_string(format::application_id)).c_str());
      db_.exec(("PRAGMA user_version=" + std::to_string(format::schema_version)).c_str());
      db_.exec("COMMIT");
    } else if (app_id != format::application_id) {
      throw std::runtime_error("is not a customs audit database (application_id " +
                               std::to_string(app_id) + ")");
    } else if (user_version != format::schema_version) {
      throw std::runtime_error("has audit schema version " + std::to_string(user_version) +
                               ", this build reads version " +
                               std::to_string(format::schema_version));
    } else if (const auto diff = schema::differences(db_); !diff.empty()) {
      // Not written to: an added trigger, say, would run on the writer's inserts.
      throw std::runtime_error(diff.front().what + "; run customsctl audit verify");
    }
    if (db_.query_text("PRAGMA journal_mode=WAL") != "wal")
      throw std::runtime_error("cannot switch to WAL mode");
    db_.exec("PRAGMA synchronous=FULL");
    // Erased payloads are overwritten, not just unlinked from the b-tree.
    db_.exec("PRAGMA secure_delete=ON");
    db_.exec("PRAGMA wal_autocheckpoint=0");
    sqlite3_wal_hook(db_.get(), &store_impl::on_wal_commit, this);
    ckpt_db_ = sql::database(opts_.db, SQLITE_OPEN_READWRITE);
    sqlite3_busy_timeout(ckpt_db_.get(), 5000);
    ckpt_db_.exec("PRAGMA synchronous=FULL");
    ckpt_db_.exec("PRAGMA wal_autocheckpoint=0");
    insert_ = sql::statement(
        db_, "INSERT INTO records (seq, kind, epoch, time_us, flow_id, route, src, dst, tenant, "
             "action, rules, rule_set_hash, tokens_in, tokens_out, payload_hash, payload, hash, "
             "mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
             "?16, ?17, ?18)");
    insert_checkpoint_ = sql::statement(
        db_, "INSERT INTO checkpoints (seq, epoch, time_us, head, signature, reason) "
             "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    begin_ = sql::statement(db_, "BEGIN IMMEDIATE");
    commit_ = sql::statement(db_, "COMMIT");

    // Where the chain stands.
    bool empty = true;
    std::uint64_t db_epoch = 0;
    std::optional<std::uint64_t> checkpoint_epoch;  // the greatest epoch a checkpoint names
    {
      sql::statement last(db_, "SELECT seq, epoch, hash FROM records ORDER BY seq DESC LIMIT 1");
      if (last.step() == SQLITE_ROW) {
        empty = false;
        committed_.next_seq = static_cast<std::uint64_t>(last.column_int(0)) + 1;
        db_epoch = static_cast<std::uint64_t>(last.column_int(1));
        if (!sql::column_hash(last, 2, committed_.head))
          throw std::runtime_error("the last record's hash is malformed; run customsctl audit verify");
      }
      sql::statement cp(db_, "SELECT coalesce(max(seq), 0), max(epoch) FROM checkpoints");
      if (cp.step() == SQLITE_ROW) {
        checkpointed_seq_ = static_cast<std::uint64_t>(cp.column_int(0));
        if (!cp.column_null(1)) checkpoint_epoch = static_cast<std::uint64_t>(cp.column_int(1));
      }
    }
    committed_.last_epoch = db_epoch;
    work_ = committed_;
    epoch_ = db_epoch;
    epoch_started_ = clock::now();
    if (empty) {
      if (sealing_.epoch != 0)
        throw std::runtime_error(
            "is empty but " + opts_.sealing_key.string() + " is already at epoch " +
            std::to_string(sealing_.epoch) +
            ": a new trail starts at epoch 0; create fresh keys with customsctl keys gen");
      start_epoch(0);
    } else if (sealing_.epoch < db_epoch) {
      throw std::runtime_error("holds epoch " + std::to_string(db_epoch) + " but " +
                               opts_.sealing_key.string() + " is at epoch " +
                               std::to_string(sealing_.epoch) +
                               " (restored from a backup?); records MACed with it would not verify");
    } else if (checkpoint_epoch && sealing_.epoch <= *checkpoint_epoch) {
      throw std::runtime_error("has a checkpoint of epoch " + std::to_string(*checkpoint_epoch) +
                               ", which is signed only after the key has left that epoch, but " +
                               opts_.sealing_key.string() + " is at epoch " +
                               std::to_string(sealing_.epoch) +
                               " (restored from a backup?); the key of an ended epoch is never used again");
    } else if (sealing_.epoch == db_epoch) {
      if (!end_epoch("open", true)) throw std::runtime_error(last_error_);
    } else {
      if (checkpointed_seq_ < committed_.next_seq - 1 && !write_checkpoint("open"))
        throw std::runtime_error(last_error_);
      start_epoch(sealing_.epoch);
    }
    if (!write_epoch_start_now()) throw std::runtime_error(last_error_);
    remember_trail_files();
    // The checks so far had no files to compare: the first batch is checked.
    checked_upto_ = 0;
  } catch (const std::exception& e) {
    throw std::runtime_error("audit database " + opts_.db.string() + ": " + e.what());
  }
  next_trail_check_ = clock::now() + opts_.trail_check_interval;
  // Named by the creating thread, so the names are set when open returns.
  checkpointer_ = std::thread([this] { run_checkpointer(); });
  pthread_setname_np(checkpointer_.native_handle(), "customs-ckpt");
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "customs-audit");
}

void store_impl::filter_index(index_fields& f) const {
  if (!(index_mask_ & f_route)) f.route.clear();
  if (!(index_mask_ & f_src)) f.src.clear();
  if (!(index_mask_ & f_dst)) f.dst.clear();
  if (!(index_mask_ & f_tenant)) f.tenant.clear();
  if (!(index_mask_ & f_action)) f.action.clear();
  if (!(index_mask_ & f_rules)) f.rules.clear();
  if (!(index_mask_ & f_rule_set_hash)) f.rule_set_hash.clear();
  if (!(index_mask_ & f_tokens)) f.tokens_in = f.tokens_out = 0;
}

std::error_code store_impl::append(record r, durable_handler on_durable) {
  if (r.kind != record_kind::flow_opened && r.kind != record_kind::flow_closed) {
    append_refused_.fetch_add(1, std::memory_order_relaxed);
    return std::make_error_code(std::errc::invalid_argument);
  }
  if (format::bound_record(r)) records_truncated_.fetch_add(1, std::memory_order_relaxed);
  const std::size_t bytes = record_bytes(r);
  std::unique_lock lk(mu_);
  if (closing_ || closed_) {
    append_refused_.fetch_add(1, std::memory_order_relaxed);
    return make_error_code(errc::closed);
  }
  if (lost_.load(std::memory_order_relaxed)) {
    append_refused_.fetch_add(1, std::memory_order_relaxed);
    return make_error_code(errc::trail_lost);
  }
  if (queue_.size() >= opts_.queue_capacity || queued_bytes_ + bytes > opts_.queue_bytes) {
    append_refused_.fetch_add(1, std::memory_order_relaxed);
    return make_error_code(errc::queue_full);
  }
  queue_.push_back(item{std::move(r), std::move(on_durable), now_us(), clock::now(), bytes, ++appended_});
  queued_bytes_ += bytes;  // after the push: a push that throws counts nothing
  // Wake the writer when it idles, when a batch is full, and every wake_stride
  // records while a batch fills (so that it encrypts and inserts them while the
  // batch waits for its deadline); not for every record: a wake-up costs more
  // than a record.
  const std::size_t n = queue_.size();
  const bool wake = writer_idle_ || n >= opts_.commit_records || n % wake_stride == 0;
  lk.unlock();
  if (wake) cv_.notify_one();
  return {};
}

writer::stats store_impl::get_stats() const {
  stats s;
  {
    std::lock_guard lk(mu_);
    s.queue_depth = queue_.size();
    s.queue_bytes = queued_bytes_;
  }
  s.records_committed = records_committed_.load();
  s.commits = commits_.load();
  s.checkpoints = checkpoints_.load();
  s.wal_checkpoints = wal_checkpoints_.load();
  s.wal_restarts = wal_restarts_.load();
  s.records_truncated = records_truncated_.load();
  s.trail_lost = lost_.load();
  s.append_refused = append_refused_.load();
  s.store_errors = store_errors_.load();
  s.last_commit_latency = std::chrono::microseconds(last_commit_latency_us_.load());
  for (std::size_t i = 0; i < commit_buckets_.size(); ++i) s.commit_latency_buckets[i] = commit_buckets_[i].load();
  s.commit_latency_sum = std::chrono::microseconds(commit_latency_sum_us_.load());
  return s;
}

void store_impl::close() {
  {
    std::lock_guard lk(mu_);
    if (closed_) return;
    closing_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lk(mu_);
  closed_ = true;
  {
    std::lock_guard ck(ckpt_mu_);
    ckpt_stop_ = true;
  }
  ckpt_cv_.notify_one();
  if (checkpointer_.joinable()) checkpointer_.join();
  if (lost_.load()) {
    // SQLite deletes the WAL file by name when its last connection closes; the
    // name may now belong to the file that replaced ours. Keep it.
    int persist = 1;
    (void)sqlite3_file_control(db_.get(), "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    persist = 1;
    (void)sqlite3_file_control(ckpt_db_.get(), "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  }
  ckpt_db_ = {};
  // Let another writer (a later customsd, customsctl audit erase) take over.
  // Closing the last connection checkpoints the WAL into the database.
  insert_ = {};
  insert_checkpoint_ = {};
  begin_ = {};
  commit_ = {};
  db_ = {};
  lock_.reset();
}

void store_impl::note_error(const std::string& what) {
  last_error_ = what;
  store_errors_.fetch_add(1, std::memory_order_relaxed);
  set_health(cause::store_error, what);
}

void store_impl::set_health(cause c, const std::string& why) {
  if (cause_ == cause::lost) return;  // for good
  // Lasting changes only: to lost, to read-only, from read-only to writable.
  const bool report = c != cause_ && (c == cause::lost || c == cause::read_only ||
                                      (c == cause::none && cause_ == cause::read_only));
  cause_ = c;
  if (c == cause::lost) lost_.store(true, std::memory_order_relaxed);
  healthy_.store(c == cause::none, std::memory_order_relaxed);
  if (!report || !opts_.on_health) return;
  trail_health h;
  h.healthy = c == cause::none;
  h.lost = c == cause::lost;
  h.read_only = c == cause::read_only;
  if (!h.healthy) h.reason = why;
  try {
    opts_.on_health(h);
  } catch (...) {
    // Reporting must not stop the writer.
  }
}

void store_impl::remember_trail_files() {
  wal_path_ = with_suffix(opts_.db, "-wal");
  shm_path_ = with_suffix(opts_.db, "-shm");
  db_id_ = identity_of(opts_.db);
  wal_id_ = identity_of(wal_path_);
  shm_id_ = identity_of(shm_path_);
  if (!db_id_) throw std::runtime_error("cannot stat the database file: " + std::string(std::strerror(errno)));
}

store_impl::trail_state store_impl::check_trail(std::string& why) const {
  // The database is looked up once, for its identity and its mode.
  struct stat st {};
  const bool db_found = ::stat(opts_.db.c_str(), &st) == 0;
  const int db_errno = db_found ? 0 : errno;
  const auto lost_file = [&](const std::filesystem::path& p, const std::optional<file_id>& want,
                             const char* what, const struct stat* known, int known_errno) {
    if (!want) return false;
    struct stat own {};
    int err = known_errno;
    if (known == nullptr && ::stat(p.c_str(), &own) != 0) err = errno;
    const struct stat& sp = known != nullptr ? *known : own;
    if (err != 0) {
      if (err != ENOENT && err != ENOTDIR) return false;  // cannot tell: the database check decides
      why = std::string(what) + " " + p.string() + " was deleted";
      return true;
    }
    if (file_id{sp.st_dev, sp.st_ino} != *want) {
      why = std::string(what) + " " + p.string() + " was replaced by another file";
      return true;
    }
    return false;
  };
  if (lost_file(opts_.db, db_id_, "the audit database", &st, db_errno) ||
      lost_file(wal_path_, wal_id_, "the audit database's WAL file", nullptr, 0) ||
      lost_file(shm_path_, shm_id_, "the audit database's shared-memory file", nullptr, 0) ||
      (lock_ && lost_file(lock_->path(), lock_->id(), "the audit writer's lock file", nullptr, 0)))
    return trail_state::lost;
  if (!db_found) {
    why = "cannot check the audit database " + opts_.db.string() + ": " + std::strerror(db_errno);
    return trail_state::read_only;
  }
  if ((st.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)) == 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    why = "the audit database " + opts_.db.string() + " is read-only (mode " + mode + ")";
    return trail_state::read_only;
  }
  struct statvfs fs {};
  if (::statvfs(opts_.db.c_str(), &fs) == 0 && (fs.f_flag & ST_RDONLY)) {
    why = "the file system of the audit database " + opts_.db.string() + " is read-only";
    return trail_state::read_only;
  }
  return trail_state::ok;
}

bool store_impl::watch_trail() {
  if (cause_ == cause::lost) return false;
  std::uint64_t upto = 0;
  {
    std::lock_guard lk(mu_);
    upto = appended_;
  }
  std::string why;
  switch (check_trail(why)) {
    case trail_state::ok:
      if (cause_ == cause::read_only) set_health(cause::none, {});
      checked_upto_ = upto;
      return true;
    case trail_state::read_only:
      if (cause_ != cause::read_only) {
        last_error_ = why;
        store_errors_.fetch_add(1, std::memory_order_relaxed);
        set_health(cause::read_only, why);
      }
      return false;
    case trail_state::lost:
      last_error_ = why;
      store_errors_.fetch_add(1, std::memory_order_relaxed);
      set_health(cause::lost, why);
      return false;
  }
  return false;
}

void store_impl::start_epoch(std::uint64_t epoch) {
  epoch_ = epoch;
  epoch_atomic_.store(epoch);
  crypto::random_bytes({data_key_.data(), data_key_.size()});
  crypto::random_bytes(nonce_prefix_);
  nonce_counter_ = 0;
  work_.records_in_epoch = 0;
  work_.epoch_start_pending = true;
  committed_.records_in_epoch = 0;
  committed_.epoch_start_pending = true;
  epoch_started_ = clock::now();
}

bool store_impl::insert_record(record_kind kind, std::string_view flow_id,
                               const index_fields& index, std::int64_t time_us,
                               std::string_view plaintext, const crypto::bytes* clear_body,
                               std::uint64_t* seq_out) {
  const std::uint64_t seq = work_.next_seq;
  format::encode_header(kind, seq, epoch_, time_us, flow_id, index, header_buf_);

  const crypto::bytes* body = clear_body;
  if (!clear_body) {
    std::array<std::uint8_t, crypto::aead_nonce_bytes> nonce{};
    std::memcpy(nonce.data(), nonce_prefix_.data(), nonce_prefix_.size());
    const std::uint64_t n = nonce_counter_++;
    for (int i = 0; i < 8; ++i) nonce[16 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
    payload_buf_.resize(nonce.size());
    std::memcpy(payload_buf_.data(), nonce.data(), nonce.size());
    crypto::aead_encrypt(data_key_, nonce, plaintext, header_buf_, payload_buf_);
    body = &payload_buf_;
  }
  const auto ph = format::payload_hash(*body);
  const auto hash = format::chain_hash(work_.head, header_buf_, ph);
  const auto mac = format::record_mac(sealing_.key, hash);
  const std::string rules = format::join_rules(index.rules);

  insert_.bind(1, static_cast<std::int64_t>(seq));
  insert_.bind(2, static_cast<std::int64_t>(kind));
  insert_.bind(3, static_cast<std::int64_t>(epoch_));
  insert_.bind(4, time_us);
  insert_.bind(5, flow_id);
  insert_.bind(6, std::string_view(index.route));
  insert_.bind(7, std::string_view(index.src));
  insert_.bind(8, std::string_view(index.dst));
  insert_.bind(9, std::string_view(index.tenant));
  insert_.bind(10, std::string_view(index.action));
  insert_.bind(11, std::string_view(rules));
  insert_.bind(12, std::string_view(index.rule_set_hash));
  insert_.bind(13, static_cast<std::int64_t>(index.tokens_in));
  insert_.bind(14, static_cast<std::int64_t>(index.tokens_out));
  insert_.bind(15, crypto::byte_view(ph));
  insert_.bind(16, crypto::byte_view(*body));
  insert_.bind(17, crypto::byte_view(hash));
  insert_.bind(18, crypto::byte_view(mac));
  const int rc = insert_.step();
  insert_.reset();
  if (rc != SQLITE_DONE) {
    note_error("cannot insert audit record: " + db_.message());
    return false;
  }
  if (seq_out) *seq_out = seq;
  work_.head = hash;
  work_.last_epoch = epoch_;
  ++work_.next_seq;
  ++work_.records_in_epoch;
  return true;
}

void store_impl::begin_batch(std::uint64_t last_order) {
  in_txn_ = true;
  batch_failed_ = false;
  batch_errc_ = errc::store_failed;
  if (cause_ == cause::lost) {
    batch_errc_ = errc::trail_lost;
    batch_failed_ = true;
    return;
  }
  // The files are checked before anything is written (a database made
  // read-only takes nothing from then on), and again after the commit (a file
  // deleted or replaced meanwhile took the batch). Under load the records of
  // the next batch were appended while the previous one committed, before
  // the check that followed that commit began: that check stands for this
  // one (whatever changed before those records were appended, it saw). A
  // batch that holds a record appended after that check began is checked.
  const bool fresh = cause_ == cause::none && last_order != 0 && last_order <= checked_upto_;
  if (!fresh && !watch_trail()) {
    if (cause_ == cause::lost) batch_errc_ = errc::trail_lost;
    batch_failed_ = true;
    return;
  }
  if (run_once(begin_) != SQLITE_OK) {
    note_error("cannot begin audit transaction: " + db_.message());
    batch_failed_ = true;
    return;
  }
  if (work_.epoch_start_pending) {
    format::epoch_start_body b;
    b.signer = signer_;
    for (const auto& pk : auditors_) {
      format::sealed_data_key k;
      k.auditor = pk;
      const auto box = crypto::seal(data_key_.view(), pk);
      std::memcpy(k.box.data(), box.data(), k.box.size());
      b.keys.push_back(k);
    }
    const auto body = format::encode_epoch_start(b);
    if (!insert_record(record_kind::epoch_start, "", {}, now_us(), {}, &body, nullptr)) {
      batch_failed_ = true;
      return;
    }
    work_.epoch_start_pending = false;
  }
}

void store_impl::add_to_batch(item& it, std::uint64_t last_order) {
  if (!in_txn_) {
    begin_batch(last_order);
    batch_deadline_ = it.enqueued + opts_.commit_interval;
  }
  if (!batch_failed_) {
    filter_index(it.rec.index);
    if (!insert_record(it.rec.kind, it.rec.flow_id, it.rec.index, it.time_us, it.rec.payload,
                       nullptr, nullptr))
      batch_failed_ = true;
  }
  batch_.push_back(std::move(it));
}

void store_impl::commit_batch() {
  if (!in_txn_) return;
  const auto t0 = clock::now();
  if (!batch_failed_ && run_once(commit_) != SQLITE_OK) {
    note_error("cannot commit audit records: " + db_.message());
    batch_failed_ = true;
  }
  // Committed, but to the trail at its path? A deleted or replaced file takes
  // commits as well; then these records are not in the trail.
  if (!batch_failed_) {
    (void)watch_trail();
    if (cause_ == cause::lost) {
      batch_failed_ = true;
      batch_errc_ = errc::trail_lost;
    }
  }
  next_trail_check_ = clock::now() + opts_.trail_check_interval;
  in_txn_ = false;
  std::error_code ec;
  std::uint64_t first_seq = 0;
  if (batch_failed_) {
    if (!sqlite3_get_autocommit(db_.get())) (void)db_.try_exec("ROLLBACK");
    work_ = committed_;
    ec = make_error_code(batch_errc_);
  } else {
    first_seq = committed_.next_seq + (committed_.epoch_start_pending ? 1 : 0);
    committed_ = work_;
    records_committed_.fetch_add(batch_.size(), std::memory_order_relaxed);
    commits_.fetch_add(1, std::memory_order_relaxed);
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - t0).count();
    last_commit_latency_us_.store(took);
    const double seconds = static_cast<double>(took) / 1e6;
    std::size_t bucket = 0;
    while (bucket < commit_latency_bounds.size() && seconds > commit_latency_bounds[bucket]) ++bucket;
    commit_buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
    commit_latency_sum_us_.fetch_add(static_cast<std::uint64_t>(took), std::memory_order_relaxed);
    // Records were taken: the store is healthy again, unless the watch found the
    // database read-only just now (these records are in it; the next batch is not).
    if (cause_ != cause::read_only) set_health(cause::none, {});
  }
  std::size_t done_bytes = 0;
  for (const auto& it : batch_) done_bytes += it.bytes;
  if (done_bytes) {
    std::lock_guard lk(mu_);
    queued_bytes_ -= done_bytes;
  }
  for (std::size_t i = 0; i < batch_.size(); ++i) {
    auto& it = batch_[i];
    if (!it.on_durable) continue;
    try {
      it.on_durable(ec, ec ? 0 : first_seq + i);
    } catch (...) {
      // A handler must not throw (it runs on the writer thread); its exception is
      // contained so that other records are still acknowledged.
    }
  }
  batch_.clear();
  batch_failed_ = false;
}

bool store_impl::write_epoch_start_now() {
  if (!work_.epoch_start_pending) return true;
  begin_batch();
  const bool ok = !batch_failed_;
  commit_batch();
  return ok && !work_.epoch_start_pending;
}

bool store_impl::write_checkpoint(const char* reason) {
  format::checkpoint cp;
  cp.seq = committed_.next_seq - 1;
  cp.epoch = committed_.last_epoch;
  cp.time_us = now_us();
  cp.head = committed_.head;
  cp.sig = crypto::sign(signing_, format::checkpoint_message(cp));
  insert_checkpoint_.bind(1, static_cast<std::int64_t>(cp.seq));
  insert_checkpoint_.bind(2, static_cast<std::int64_t>(cp.epoch));
  insert_checkpoint_.bind(3, cp.time_us);
  insert_checkpoint_.bind(4, crypto::byte_view(cp.head));
  insert_checkpoint_.bind(5, crypto::byte_view(cp.sig));
  insert_checkpoint_.bind(6, std::string_view(reason));
  const int rc = insert_checkpoint_.step();
  insert_checkpoint_.reset();
  if (rc != SQLITE_DONE) {
    note_error("cannot write audit checkpoint: " + db_.message());
    return false;
  }
  checkpointed_seq_ = cp.seq;
  checkpoints_.fetch_add(1, std::memory_order_relaxed);
  checked_upto_ = 0;  // a write since the last check: the next batch is checked first
  return true;
}

bool store_impl::end_epoch(const char* reason, bool start_next) {
  // First the key leaves epoch e (once: a retry after a failed checkpoint does
  // not evolve it again) ...
  if (sealing_.epoch == epoch_) {
    crypto::sealing_state next;
    next.epoch = sealing_.epoch + 1;
    next.key = crypto::evolve(sealing_.key, sealing_.epoch);
    try {
      crypto::replace_sealing_key(opts_.sealing_key, next);
    } catch (const std::exception& e) {
      note_error(e.what());
      return false;  // stays in this epoch; retried at the next epoch-end check
    }
    // The old key is overwritten in place (secret's move assignment) and the source wiped.
    sealing_ = std::move(next);
    data_key_.wipe();
  }
  // ... then the checkpoint covers the last committed record (autocommit: one
  // statement, one durable transaction). If it fails, the next checkpoint covers
  // these records too.
  // Not into a trail the last check found read-only or lost (found in
  // review: an epoch that ended by time wrote its checkpoint into a database
  // made read-only); the next open checkpoints what this one could not.
  const bool ok = checkpointed_seq_ >= committed_.next_seq - 1 || (cause_ == cause::none && write_checkpoint(reason));
  if (start_next) start_epoch(sealing_.epoch);
  return ok;
}

void store_impl::maybe_end_epoch() {
  const bool by_count = committed_.records_in_epoch >= opts_.epoch_records;
  const bool by_time = committed_.records_in_epoch > 1 &&
                       clock::now() - epoch_started_ >= opts_.epoch_duration;
  if (!by_count && !by_time) return;
  (void)end_epoch("epoch end", true);
  (void)write_epoch_start_now();
}

void store_impl::run_task(const std::function<void()>& task) noexcept {
  try {
    task();
  } catch (...) {
    // Tasks report through their own promise.
  }
}

void store_impl::run() {
  std::vector<item> taken;
  taken.reserve(opts_.commit_records);
  for (;;) {
    std::deque<std::function<void()>> tasks;
    bool closing = false;
    bool queue_left = false;
    {
      std::unique_lock lk(mu_);
      const auto ready = [this] { return !queue_.empty() || closing_ || !tasks_.empty(); };
      if (in_txn_) {
        cv_.wait_until(lk, batch_deadline_, ready);
      } else {
        writer_idle_ = true;
        auto until = next_trail_check_;
        if (committed_.records_in_epoch > 1) until = std::min(until, epoch_started_ + opts_.epoch_duration);
        cv_.wait_until(lk, until, ready);
        writer_idle_ = false;
      }
      const std::size_t room = opts_.commit_records - batch_.size();
      while (!queue_.empty() && taken.size() < room) {
        taken.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queue_left = !queue_.empty();
      tasks.swap(tasks_);
      closing = closing_;
    }
    for (auto& it : taken) {
      add_to_batch(it, taken.back().order);
      // An epoch ends at exactly epoch_records records: cut the batch there.
      if (in_txn_ && work_.records_in_epoch >= opts_.epoch_records) {
        commit_batch();
        maybe_end_epoch();
      }
    }
    taken.clear();
    if (in_txn_ && (batch_.size() >= opts_.commit_records || clock::now() >= batch_deadline_ ||
                    closing || !tasks.empty()))
      commit_batch();
    if (!in_txn_) {
      finish_checkpoint();
      for (const auto& t : tasks) run_task(t);
      maybe_end_epoch();
      if (clock::now() >= next_trail_check_) {
        (void)watch_trail();
        next_trail_check_ = clock::now() + opts_.trail_check_interval;
      }
    }
    if (closing && !queue_left && !in_txn_) break;
  }
  // Clean shutdown: a closing checkpoint and the key evolved past this epoch, so
  // the key left on disk cannot forge anything written so far.
  if (work_.epoch_start_pending) (void)write_epoch_start_now();
  (void)end_epoch("close", false);
}

// WAL frames after which a checkpoint is started (SQLite's default autocheckpoint).
constexpr int checkpoint_pages = 1000;
// Past this, the writer checkpoints itself: the background checkpointer is not
// keeping up (each of its runs was overtaken by new commits).
constexpr int checkpoint_pages_hard = 64 * checkpoint_pages;

// A background pass that leaves at most this many frames, or at most what the
// last commit wrote (large batches under a full queue), hands them to the
// writer (about 0.3 ms of copying for 128 here, once per WAL cycle); one that
// leaves more is followed by another pass at the next commit.
constexpr int checkpoint_tail_pages = 128;
constexpr int checkpoint_pages_tail_anyway = 4 * checkpoint_pages;

int store_impl::on_wal_commit(void* arg, sqlite3* db, const char*, int pages) {
  auto* self = static_cast<store_impl*>(arg);
  // Fewer frames than after the commit before: this commit started the WAL
  // again from its first frame.
  const int before = self->wal_frames_.load(std::memory_order_relaxed);
  if (pages < before) self->wal_restarts_.fetch_add(1, std::memory_order_relaxed);
  self->commit_frames_.store(pages < before ? pages : pages - before, std::memory_order_relaxed);
  self->wal_frames_.store(pages, std::memory_order_relaxed);
  if (pages >= checkpoint_pages_hard) {
    sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    self->wal_checkpoints_.fetch_add(1, std::memory_order_relaxed);
  } else if (pages >= checkpoint_pages && pages < checkpoint_pages_tail_anyway &&
             !self->tail_due_.load(std::memory_order_relaxed)) {
    {
      std::lock_guard lk(self->ckpt_mu_);
      self->ckpt_wanted_ = true;
    }
    self->ckpt_cv_.notify_one();
  }
  return SQLITE_OK;
}

void store_impl::run_checkpointer() {
  std::unique_lock lk(ckpt_mu_);
  for (;;) {
    ckpt_cv_.wait(lk, [this] { return ckpt_wanted_ || ckpt_stop_; });
    if (ckpt_stop_) return;
    ckpt_wanted_ = false;
    lk.unlock();
    // Failures (disk full, busy) are harmless here: the WAL keeps the data, and
    // the next commit asks again. Nothing is copied into a database the store
    // does not write to (read-only, lost).
    if (healthy()) {
      int log = 0;
      int copied = 0;
      const int rc = sqlite3_wal_checkpoint_v2(ckpt_db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
      wal_checkpoints_.fetch_add(1, std::memory_order_relaxed);
      // `log` is the WAL as this pass found it; commits went on meanwhile.
      const int frames = std::max(log, wal_frames_.load(std::memory_order_relaxed));
      const int tail = std::max(checkpoint_tail_pages, commit_frames_.load(std::memory_order_relaxed));
      if (rc == SQLITE_OK && copied < frames && frames - copied <= tail)
        tail_due_.store(true, std::memory_order_relaxed);
    }
    lk.lock();
    // The writer copies the tail: no pass of this thread meanwhile (it would
    // hold the checkpoint lock the writer's pass needs).
    if (tail_due_.load(std::memory_order_relaxed)) ckpt_wanted_ = false;
  }
}

// Writer thread, between batches (its records' handlers have run): the tail a
// background pass left. Copied to the WAL's end (no reader holds an older
// snapshot, no pass of the checkpointer runs), the next commit starts the WAL
// again. Past checkpoint_pages_tail_anyway frames (passes that never come
// close to the end: a queue that never empties) the writer copies without
// an offer, and the checkpointer is not woken any more: a pass of it still
// running makes the writer's a no-op (busy), and the writer tries again after
// its next batch.
void store_impl::finish_checkpoint() {
  const bool offered = tail_due_.load(std::memory_order_relaxed);
  if (!offered && wal_frames_.load(std::memory_order_relaxed) < checkpoint_pages_tail_anyway) return;
  if (healthy()) {
    (void)sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    wal_checkpoints_.fetch_add(1, std::memory_order_relaxed);
  }
  if (offered) tail_due_.store(false, std::memory_order_relaxed);
}

void store_impl::set_max_pages(std::uint32_t pages) {
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  {
    std::lock_guard lk(mu_);
    if (closing_ || closed_) throw std::runtime_error("audit writer is closed");
    tasks_.push_back([this, pages, done] {
      const std::string sql = "PRAGMA max_page_count=" + std::to_string(pages ? pages : 0xfffffffeu);
      (void)db_.try_exec(sql.c_str());
      done->set_value();
    });
  }
  cv_.notify_one();
  fut.get();
}

store::erase_result store_impl::erase_flow(std::string_view flow_id_view, std::string_view reason_view) {
  auto done = std::make_shared<std::promise<erase_result>>();
  auto fut = done->get_future();
  std::string flow_id(flow_id_view), reason(reason_view);
  {
    std::lock_guard lk(mu_);
    if (closing_ || closed_) throw std::runtime_error("audit writer is closed");
    tasks_.push_back([this, flow_id, reason, done] {
      try {
        erase_result res;
        {
          // `+flow_id`: the table's own column, not the records_flow index (a
          // hostile file's index may name other flows' rows, or hide some).
          sql::statement q(db_, "SELECT seq FROM records WHERE +flow_id = ?1 AND kind IN (1, 2) "
                                "AND payload IS NOT NULL ORDER BY seq");
          q.bind(1, std::string_view(flow_id));
          int rc;
          while ((rc = q.step()) == SQLITE_ROW) res.erased.push_back(static_cast<std::uint64_t>(q.column_int(0)));
          if (rc != SQLITE_DONE) throw std::runtime_error("cannot read records: " + db_.message());
        }
        if (res.erased.empty())
          throw std::runtime_error("flow " + flow_id + " has no stored payload to erase");
        begin_batch();
        bool ok = !batch_failed_;
        if (ok) {
          sql::statement upd(db_, "UPDATE records SET payload = NULL WHERE +flow_id = ?1 AND kind IN (1, 2)");
          upd.bind(1, std::string_view(flow_id));
          ok = upd.step() == SQLITE_DONE;
          if (!ok) note_error("cannot erase payloads: " + db_.message());
        }
        if (ok) {
          index_fields idx;
          idx.action = "erase";
          const auto body = format::encode_erasure({reason, res.erased});
          ok = insert_record(record_kind::erasure, flow_id, idx, now_us(), {}, &body, &res.erasure_seq);
        }
        if (!ok) batch_failed_ = true;
        commit_batch();
        if (!ok) throw std::runtime_error("cannot erase flow " + flow_id + ": " + last_error_);
        // Old page images of the erased payloads may remain in the WAL until it is
        // checkpointed; move them into the (secure_delete) main file now.
        if (cause_ == cause::none) (void)db_.try_exec("PRAGMA wal_checkpoint(TRUNCATE)");
        done->set_value(std::move(res));
      } catch (...) {
        done->set_exception(std::current_exception());
      }
    });
  }
  cv_.notify_one();
  return fut.get();
}

}  // namespace

const std::error_category& audit_category() noexcept {
  static const audit_category_impl cat;
  return cat;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), audit_category()}; }

std::unique_ptr<store> store::open_store(const writer_options& opts) {
  return std::make_unique<store_impl>(opts);
}

std::unique_ptr<writer> writer::open(const writer_options& opts) { return store::open_store(opts); }

}  // namespace customs::audit
