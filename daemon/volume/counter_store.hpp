#pragma once
// The volume counter store: sets of keyed subject hashes per counter key (see
// policy/volume.hpp for what a key and a count mean). Two backends:
//   sqlite  embedded, one host (sqlite_store.cpp)
//   redis   shared by a fleet, atomic server-side script (redis_store.cpp)
// Both make one call atomic: every op's members are added, or none of them when
// any op's count would pass its limit, so two hosts crossing a threshold at the
// same moment cannot both see "below".

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "policy/volume.hpp"

namespace customs::daemon::volume {

// A data subject as stored: the first 16 bytes of BLAKE2b-256(key = subject
// key, "customs/volume/subject/v1\0" || normalised identifier). 128 bits keep
// collisions out of reach (about 1.5e-25 for 10 million subjects in one key).
using subject_hash = std::array<std::uint8_t, 16>;

struct counter_op {
  std::string key;  // policy::volume_demand::key
  std::vector<subject_hash> members;  // sorted, unique
  std::uint64_t limit = ~std::uint64_t{0};
  std::int64_t now = 0;            // unix seconds: last-seen time of the members
  std::int64_t expire_before = 0;  // rolling windows: members last seen before this no longer count
  std::int64_t expires_at = 0;     // when the key may be discarded
};

struct counter_result {
  std::error_code error;  // set: the store could not answer (counts are empty)
  bool added = false;     // every op's members were added
  std::vector<policy::volume_count> counts;  // per op, in order
};

class counter_store {
 public:
  // Receives the answer of add_async; called exactly once.
  using completion = std::function<void(counter_result)>;

  virtual ~counter_store() = default;
  // Runs ops atomically (see above) and waits for the answer. Never throws.
  // Blocks the calling thread for the time the store takes: the next group
  // commit (sqlite), or at most the configured budget (redis). For the
  // control plane, tools, tests and benches; the data plane uses add_async on
  // stores that are asynchronous().
  [[nodiscard]] virtual counter_result add(const std::vector<counter_op>& ops) = 0;
  // The same without waiting: `done` runs exactly once with the answer, on the
  // store's own thread (or on the caller's, before add_async returns, when the
  // store answers at once: unreachable, closed, or a synchronous store). A
  // remote store answers within its budget: a later answer is a timeout.
  virtual void add_async(std::vector<counter_op> ops, completion done) { done(add(ops)); }
  // Whether add() waits for another thread (a network round trip, a group
  // commit): then a worker thread must not call it, and goes through add_async.
  [[nodiscard]] virtual bool asynchronous() const noexcept { return false; }
  // The subjects a key holds now (for tests, the bench and the admin view).
  [[nodiscard]] virtual std::error_code count(const std::string& key, std::int64_t expire_before,
                                              std::uint64_t& out) = 0;
  [[nodiscard]] virtual std::string_view backend() const noexcept = 0;
  virtual void close() noexcept = 0;

  // Whether the store can be asked now (Redis: connected). A store that is
  // not may still be asked (it answers unavailable at once); the merge of the
  // local journal waits for this instead of failing a batch every time.
  [[nodiscard]] virtual bool available() const noexcept { return true; }
  // `f` runs (on the store's own thread) each time the store becomes
  // available again: Redis reconnected. Replaces the previous one. Never
  // throws; f must not throw nor block.
  virtual void on_available(std::function<void()> f) noexcept { (void)f; }

  // A fallback store's journal: the flows it counted while the primary store
  // was unavailable, kept (in the same transaction as the count) until they
  // are added to the primary (volume_counter merges them once the primary
  // answers again). Stores without a journal hold none.
  struct journal_entry {
    std::int64_t id = 0;
    std::vector<counter_op> ops;  // as counted; limit is max
  };
  // Up to `max` entries into `out`: those the primary refused fewer times
  // first (see note_refused), then the oldest; parked entries (refused
  // journal_refusal_limit times) are left out. Entries that cannot be read
  // back are dropped and counted in `unreadable`. A database error is
  // returned (store_errc::failed) with `out` empty and nothing dropped: it is
  // never "the journal is empty". Never throws.
  [[nodiscard]] virtual std::error_code journal(std::size_t max, std::vector<journal_entry>& out,
                                                std::uint64_t& unreadable) noexcept {
    (void)max;
    out.clear();
    unreadable = 0;
    return {};
  }
  // The entries were added to the primary: forget them (one transaction: all
  // or none). An error (store_errc::failed) means none was forgotten; they
  // are merged again later, which is harmless (a subject added twice counts
  // once). Never throws.
  [[nodiscard]] virtual std::error_code forget(const std::vector<std::int64_t>& ids) noexcept {
    (void)ids;
    return {};
  }
  // The primary answered these entries with an error of their own (not a
  // timeout or a lost connection): one more refusal each (one transaction).
  // `parked` gets the ids that reached journal_refusal_limit with it. Never
  // throws.
  [[nodiscard]] virtual std::error_code note_refused(const std::vector<std::int64_t>& ids,
                                                     std::vector<std::int64_t>& parked) noexcept {
    (void)ids;
    parked.clear();
    return {};
  }
  // Journal entries held now (parked ones included). Never throws.
  [[nodiscard]] virtual std::uint64_t journal_size() const noexcept { return 0; }
};

enum class store_errc {
  unavailable = 1,  // the store cannot be reached or answered with an error
  timeout,          // no answer within the budget
  failed,           // a local database error
  refused,          // the store answered this call with an error (Redis: an error reply)
  journal_full,     // the local fallback's journal holds journal_max_entries: nothing counted
};

// Refusals of one journal entry by the primary after which it is parked: kept
// in the journal, no longer merged by this process (a restart tries it again).
inline constexpr std::uint32_t journal_refusal_limit = 5;
[[nodiscard]] const std::error_category& store_category() noexcept;
[[nodiscard]] std::error_code make_error_code(store_errc e) noexcept;

}  // namespace customs::daemon::volume

template <>
struct std::is_error_code_enum<customs::daemon::volume::store_errc> : std::true_type {};
