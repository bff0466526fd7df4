#pragma once
// The public contract of the audit store (audit/) for its writers: customsd and
// the load generator. The reader, verifier, replay and the file format are
// declared in their own headers; docs/audit-format.md specifies the format.
// audit/ never includes daemon headers.

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace customs::audit {

enum class record_kind : std::uint8_t {
  flow_opened = 1,  // request verdict; written (durably) before anything is forwarded
  flow_closed = 2,  // final verdict, usage, bytes, timings, whether the stream was cut
  erasure = 3,      // a flow's payloads were erased (customsctl audit erase)
  // Written by the store itself, never by callers of writer::append: the start of
  // an epoch, carrying its data key sealed to each auditor key.
  epoch_start = 16,
};

// Plaintext fields that auditors can search without a key. Which of them are
// stored is configurable (writer_options::index_fields); the others are left empty.
struct index_fields {
  std::string route;
  std::string src;
  std::string dst;
  std::string tenant;
  std::string action;  // allow | tag | redact | block | unscannable | error | refused ...
  std::vector<std::string> rules;  // rule ids that fired
  std::string rule_set_hash;
  // Tokens the provider reported; tokens_unknown when it reported none (a flow
  // that was never answered, a provider or stream without usage), which reports
  // keep apart from 0.
  std::uint64_t tokens_in = 0;
  std::uint64_t tokens_out = 0;
};

inline constexpr std::uint64_t tokens_unknown = ~std::uint64_t{0};

// What a writer hands in. The store adds sequence number, time, epoch, hashes, MAC.
// Sizes are bounded (format.hpp): an index field longer than
// format::max_field_bytes is cut (rule ids are dropped whole), a payload longer
// than format::max_payload_bytes is replaced by a marker object (see
// format::payload_over_limit); both are counted in stats::records_truncated.
//
// payload is a JSON object, encrypted at rest. Keys that replay relies on:
//   "request_texts":  [string, ...]  the outbound texts of the flow (flow_opened)
//   "request_texts_apart": [index, ...]  those joined with each other only (flow_opened)
//   "response_texts": [string, ...]  the returned texts (flow_closed)
//   "findings": [{"detector","category","direction","part","start","end","text"}]
// Any other keys (usage, bytes, timings, "cut", errors) are free-form detail.
struct record {
  record_kind kind = record_kind::flow_opened;
  std::string flow_id;
  index_fields index;
  std::string payload;
};

// A lasting change of the trail's state, reported through
// writer_options::on_health: lost, read-only, and writable again after being
// read-only. (Failing commits, e.g. on a full disk, come and go with each batch
// and are reported per record instead.)
struct trail_health {
  bool healthy = true;
  bool lost = false;       // the trail is lost (errc::trail_lost): for good
  bool read_only = false;  // the database is read-only: records are refused while it lasts
  std::string reason;      // why it is unhealthy (empty when healthy)
};

struct writer_options {
  std::filesystem::path db;
  std::vector<std::filesystem::path> auditor_keys;  // X25519 public key files
  std::filesystem::path sealing_key;                // evolved in place each epoch
  std::filesystem::path signing_key;                // Ed25519 checkpoint key
  std::uint64_t epoch_records = 100000;             // epoch ends at N records ...
  std::chrono::seconds epoch_duration{3600};        // ... or after T, whichever first
  std::uint32_t commit_records = 512;               // group commit at N records ...
  std::chrono::milliseconds commit_interval{2};     // ... or T, whichever first
  std::size_t queue_capacity = 65536;               // records waiting ...
  std::size_t queue_bytes = 256u << 20;             // ... and their bytes; past either: queue_full
  // How often the writer checks, without traffic, that its files are still the
  // ones it opened and still writable (it also checks around every commit).
  std::chrono::milliseconds trail_check_interval{1000};
  // Names of the index fields stored in plaintext; the default is all of them.
  std::vector<std::string> index_fields = {"route", "src", "dst", "tenant", "action",
                                           "rules", "rule_set_hash", "tokens"};
  // Called on the writer thread on each lasting change of the trail's state
  // (see trail_health; keep it short, it must not call back into the writer).
  std::function<void(const trail_health&)> on_health;
};

// Error codes reported to callers of writer::append and its durable handlers.
enum class errc {
  queue_full = 1,  // the bounded queue is full: the record was not taken
  store_failed,    // the database refused a write (disk full, I/O error, read-only, ...)
  closed,          // the writer is closed
  // The database, its WAL or shared-memory file, or the writer's lock file was
  // deleted or replaced under the writer: what it commits no longer reaches the
  // trail at its path. Permanent: the writer takes no record until it is
  // reopened, and a new open decides by the ordinary rules (store.cpp).
  trail_lost,
};
[[nodiscard]] const std::error_category& audit_category() noexcept;
[[nodiscard]] std::error_code make_error_code(errc e) noexcept;

// One writer per database. A single writer thread encrypts, chains, MACs and
// commits; callers never block on disk.
class writer {
 public:
  virtual ~writer() = default;

  // Control plane: opens or creates the database and loads the keys. Throws
  // std::runtime_error with a clear message on any problem (bad key file, loose
  // permissions, schema version mismatch, ...).
  [[nodiscard]] static std::unique_ptr<writer> open(const writer_options& opts);

  // Called once the record is durable (ec empty, seq its sequence number) or has
  // failed (ec set). Runs on the writer thread: keep it short, post elsewhere.
  using durable_handler = std::function<void(std::error_code ec, std::uint64_t seq)>;

  // Never blocks. Returns an error at once if the record cannot be queued
  // (queue full, writer failed or closed); then the handler is not called.
  [[nodiscard]] virtual std::error_code append(record r, durable_handler on_durable = {}) = 0;

  // Whether the store currently takes records (false while it is failing).
  [[nodiscard]] virtual bool healthy() const noexcept = 0;

  using health = trail_health;

  // Upper bounds (seconds) of the commit latency histogram's buckets.
  static constexpr std::array<double, 16> commit_latency_bounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120};
  struct stats {
    std::size_t queue_depth = 0;
    std::size_t queue_bytes = 0;
    std::uint64_t records_committed = 0;
    std::uint64_t commits = 0;
    std::uint64_t checkpoints = 0;      // signed audit checkpoints written (table checkpoints)
    std::uint64_t wal_checkpoints = 0;  // SQLite WAL checkpoint runs (copying the WAL into the file)
    std::uint64_t wal_restarts = 0;     // commits that started the WAL again from its first frame
    std::uint64_t append_refused = 0;   // queue full, failing, lost or closed
    std::uint64_t store_errors = 0;
    std::uint64_t records_truncated = 0;  // records with a field cut or the payload replaced
    bool trail_lost = false;
    std::chrono::microseconds last_commit_latency{0};
    // Every commit's duration: per-bucket counts (not cumulative; the last is
    // +Inf) and their sum.
    std::array<std::uint64_t, commit_latency_bounds.size() + 1> commit_latency_buckets{};
    std::chrono::microseconds commit_latency_sum{0};
  };
  [[nodiscard]] virtual stats get_stats() const = 0;

  // Flushes the queue, writes a closing checkpoint and stops the thread.
  virtual void close() = 0;
};

}  // namespace customs::audit

template <>
struct std::is_error_code_enum<customs::audit::errc> : std::true_type {};
