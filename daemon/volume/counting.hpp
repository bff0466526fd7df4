#pragma once
// Counting a request flow's data subjects: the rounds of policy/volume.hpp
// against the configured store, with the subject hashes computed here (the
// identifiers themselves never leave this function), and on_unavailable when
// the store cannot answer.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon/volume/counter_store.hpp"
#include "daemon/volume/subject_key.hpp"
#include "policy/policy.hpp"

namespace customs::daemon::volume {

// What one flow did to the counters, for the audit trail and the metrics.
struct counting_outcome {
  bool refused = false;      // the store was unavailable and on_unavailable is refuse
  bool used_local = false;   // the store was unavailable; the local fallback counted
  std::string detail;        // why the store was unavailable
  std::uint32_t rounds = 0;
  // Per key the flow's subjects were added to: their hashes (what
  // `customsctl audit volumes` recomputes the counters from).
  struct added_key {
    std::string key, counter, scope, window, zone;
    std::vector<subject_hash> subjects;
  };
  std::vector<added_key> added;
  std::vector<std::string> errors;  // store errors met (unavailable, timeout, failed)
};

// One flow's counting in progress (see volume_counter::prepare).
struct counting_state {
  counting_outcome out;
  std::vector<policy::volume_demand> demands;  // of the round in progress
  std::vector<counter_op> ops;                 // what the store is asked, in the order of demands
  std::uint32_t round = 0;
  bool resend = false;  // the primary failed: send ops again, to the local store
};

// What merging the local fallback's journal into the primary store did
// (volume_counter::merge_local): entries added to the primary, entries the
// primary failed to take (kept, tried again; `refused` of them were answered
// with an error of their own rather than a timeout or a lost connection),
// entries unreadable (dropped), entries parked (refused
// journal_refusal_limit times: kept, no longer merged by this process),
// and local database errors while reading or forgetting the journal (the
// merge is tried again later; `error` says which).
struct merge_report {
  std::uint64_t merged = 0, failed = 0, unreadable = 0, refused = 0, parked = 0, local_errors = 0;
  std::string error;
};

class volume_counter {
 public:
  using merge_observer = std::function<void(const merge_report&)>;

  // primary: the configured store; local: the fallback when on_unavailable is
  // local (null with refuse), opened with a journal. on_merge, if set, hears
  // of every merge batch (on the primary store's thread or the merge thread).
  // With a local store, a merge thread runs merge_local without waiting for
  // flows: at start, when the primary becomes available again (reconnect),
  // right after a batch that merged something, and every merge_interval
  // (while the journal may hold entries). Flows never run it.
  volume_counter(std::shared_ptr<counter_store> primary, std::shared_ptr<counter_store> local,
                 std::shared_ptr<const subject_hasher> hasher, merge_observer on_merge = {},
                 std::chrono::milliseconds merge_interval = std::chrono::seconds(1));
  ~volume_counter();
  volume_counter(const volume_counter&) = delete;
  volume_counter& operator=(const volume_counter&) = delete;

  // The flows the local fallback counted while the primary was unavailable
  // reach the primary (the merge thread calls this; so can tests): the
  // entries the previous batch merged are forgotten (one local transaction),
  // the ones the primary refused get a refusal each (see
  // counter_store::note_refused: a refused entry goes behind the others, so
  // one the primary keeps refusing never holds them back, and is parked at
  // journal_refusal_limit), and the next merge_batch entries are read and
  // each added to the primary without a limit (the subjects already left; a
  // count pushed past a level by them is what the fleet really sent). An
  // entry leaves the journal only after the primary took it; one that failed
  // stays for the next merge. Adding a subject twice counts it once, so an
  // entry merged again (after a lost answer or a restart before it was
  // forgotten) changes nothing. A local database error while reading or
  // forgetting is reported (merge_report::local_errors) and the merge tried
  // again at the next interval: it never reads as an empty journal. At most
  // one batch is in flight; the primary's answers only record what happened
  // (no local I/O on the primary's thread, no reference to the counter).
  // Never throws.
  void merge_local() const noexcept;
  static constexpr std::size_t merge_batch = 64;

  // Data plane; never throws. v is the decided request verdict; it is escalated
  // in place (levels, redactions, block). Blocks on the store: for stores that
  // are not asynchronous(), tools and tests.
  [[nodiscard]] counting_outcome run(const policy::rule_set& rules, const policy::flow_context& ctx,
                                     policy::verdict& v, std::int64_t now_unix) const noexcept;

  // The same a round at a time, for a caller that does not wait for the store:
  //   counting_state st;
  //   while (c.prepare(rules, ctx, v, now, st)) {
  //     counter_result r = <c.store_for(st) answers st.ops, later or at once>;
  //     c.take(rules, ctx, v, st, std::move(r));
  //   }
  //   st.out is the outcome.
  // prepare: false when counting is over (nothing (more) to count, the flow is
  // blocked or refused, or the round limit was reached); true when st.ops are
  // to be sent to store_for(st). Never throws (fails closed: refused).
  [[nodiscard]] bool prepare(const policy::rule_set& rules, const policy::flow_context& ctx,
                             const policy::verdict& v, std::int64_t now_unix, counting_state& st) const noexcept;
  [[nodiscard]] counter_store& store_for(const counting_state& st) const noexcept {
    return st.out.used_local ? *local_ : *primary_;
  }
  // Takes the store's answer to st.ops: applies the counts to v, or on an
  // error switches to the local store (the next prepare re-sends the same
  // ops) or refuses the flow.
  void take(const policy::rule_set& rules, const policy::flow_context& ctx, policy::verdict& v,
            counting_state& st, counter_result r) const noexcept;

  [[nodiscard]] std::string_view backend() const noexcept { return primary_->backend(); }
  [[nodiscard]] counter_store& primary() noexcept { return *primary_; }

 private:
  std::shared_ptr<counter_store> primary_;
  std::shared_ptr<counter_store> local_;
  std::shared_ptr<const subject_hasher> hasher_;
  // Shared with the callbacks of a merge batch in flight and the primary's
  // on_available callback.
  struct merge_state {
    merge_observer on_merge;
    // The journal may hold entries (true at start: a previous run may have
    // left some); a merge batch is in flight.
    std::atomic<bool> journal_maybe{true}, merging{false};
    std::mutex mutex;
    std::vector<std::int64_t> taken;    // entries the primary took, to forget (under mutex)
    std::vector<std::int64_t> refused;  // entries the primary refused, to note (under mutex)
    // The merge thread's wake-up (under mutex).
    std::condition_variable wake_cv;
    bool wake = false, stop = false;
    void wake_up() noexcept {
      {
        std::lock_guard lock(mutex);
        wake = true;
      }
      wake_cv.notify_one();
    }
  };
  std::shared_ptr<merge_state> merge_;
  std::thread merger_;  // with a local store
  void run_merger(std::chrono::milliseconds interval) noexcept;
};

}  // namespace customs::daemon::volume
