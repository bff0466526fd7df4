#include "daemon/volume/counting.hpp"

#include <algorithm>
#include <chrono>

#include "policy/volume.hpp"

namespace customs::daemon::volume {

volume_counter::volume_counter(std::shared_ptr<counter_store> primary, std::shared_ptr<counter_store> local,
                               std::shared_ptr<const subject_hasher> hasher, merge_observer on_merge,
                               std::chrono::milliseconds merge_interval)
    : primary_(std::move(primary)),
      local_(std::move(local)),
      hasher_(std::move(hasher)),
      merge_(std::make_shared<merge_state>()) {
  merge_->on_merge = std::move(on_merge);
  merge_->journal_maybe = local_ != nullptr;
  if (!local_) return;
  // A reconnect wakes the merge thread (the state, not the counter, is
  // captured: the store may outlive this object).
  std::weak_ptr<merge_state> weak = merge_;
  primary_->on_available([weak] {
    if (auto m = weak.lock()) {
      m->journal_maybe = true;  // whatever was journalled meanwhile
      m->wake_up();
    }
  });
  merger_ = std::thread([this, merge_interval] { run_merger(merge_interval); });
}

volume_counter::~volume_counter() {
  if (!merger_.joinable()) return;
  primary_->on_available({});
  {
    std::lock_guard lock(merge_->mutex);
    merge_->stop = true;
  }
  merge_->wake_cv.notify_one();
  merger_.join();
}

void volume_counter::run_merger(std::chrono::milliseconds interval) noexcept {
  merge_state& m = *merge_;
  std::unique_lock lock(m.mutex);
  bool first = true;  // a journal a previous run left is merged at start
  while (!m.stop) {
    if (!first) m.wake_cv.wait_for(lock, interval, [&m] { return m.wake || m.stop; });
    first = false;
    if (m.stop) break;
    m.wake = false;
    lock.unlock();
    // A primary that cannot be asked would fail every entry at once: wait
    // for it (its reconnect wakes this thread).
    if (primary_->available()) merge_local();
    lock.lock();
  }
}

void volume_counter::merge_local() const noexcept {
  merge_state& m = *merge_;
  if (!local_ || m.merging.exchange(true)) return;
  const auto report = [&m](const merge_report& r) {
    if (!m.on_merge) return;
    try {
      m.on_merge(r);
    } catch (...) {
    }
  };
  try {
    {
      std::vector<std::int64_t> taken, refused;
      {
        std::lock_guard lock(m.mutex);
        taken.swap(m.taken);
        refused.swap(m.refused);
      }
      if (!taken.empty()) {
        if (const auto ec = local_->forget(taken)) {
          // Kept to forget next time (and merged again meanwhile, harmless).
          {
            std::lock_guard lock(m.mutex);
            m.taken.insert(m.taken.end(), taken.begin(), taken.end());
          }
          report(merge_report{0, 0, 0, 0, 0, 1, "forgetting merged journal entries: " + ec.message()});
        }
      }
      if (!refused.empty()) {
        std::vector<std::int64_t> parked;
        if (const auto ec = local_->note_refused(refused, parked)) {
          report(merge_report{0, 0, 0, 0, 0, 1, "noting refused journal entries: " + ec.message()});
        } else if (!parked.empty()) {
          report(merge_report{0, 0, 0, 0, parked.size(), 0, {}});
        }
      }
    }
    if (!m.journal_maybe.load()) {
      m.merging = false;
      return;
    }
    // Cleared before reading: a flow that journals after the read sets it
    // again (it sets it after its commit), so no entry is left behind.
    m.journal_maybe = false;
    std::uint64_t unreadable = 0;
    std::vector<counter_store::journal_entry> entries;
    if (const auto ec = local_->journal(merge_batch, entries, unreadable)) {
      // Not "the journal is empty": read again at the next interval.
      m.journal_maybe = true;
      m.merging = false;
      report(merge_report{0, 0, 0, 0, 0, 1, "reading the journal: " + ec.message()});
      return;
    }
    if (unreadable > 0) report(merge_report{0, 0, unreadable, 0, 0, 0, {}});
    if (!entries.empty() || unreadable > 0) m.journal_maybe = true;
    if (entries.empty()) {
      m.merging = false;
      return;
    }
    struct batch {
      std::atomic<std::size_t> left;
      std::atomic<std::uint64_t> merged{0}, failed{0}, refused{0};
      std::mutex mutex;
      std::string error;  // the first error of the batch (under mutex)
      explicit batch(std::size_t n) : left(n) {}
    };
    auto b = std::make_shared<batch>(entries.size());
    const auto finish = [](merge_state& st, batch& bt) {
      if (st.on_merge) {
        try {
          merge_report r{bt.merged.load(), bt.failed.load(), 0, bt.refused.load(), 0, 0, {}};
          {
            std::lock_guard lock(bt.mutex);
            r.error = bt.error;
          }
          st.on_merge(r);
        } catch (...) {
        }
      }
      st.merging = false;
      // What was taken is forgotten, and the next batch sent, at once; a
      // batch that took nothing waits for the interval (or a reconnect).
      if (bt.merged.load() > 0) st.wake_up();
    };
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::size_t sent = 0;
    try {
      for (auto& e : entries) {
        for (auto& op : e.ops) {
          op.limit = ~std::uint64_t{0};
          // A rolling key may be dropped a window's length after its last
          // sighting: the merge must not shorten what later flows set (Redis
          // sets the key's expiry to the op's), so it counts from now. A
          // calendar window ends when it ends.
          if (op.expire_before != 0 && now > op.now) op.expires_at += now - op.now;
        }
        const std::int64_t id = e.id;
        auto st = merge_;
        primary_->add_async(std::move(e.ops), [st, b, id, finish](counter_result r) {
          if (!r.error && r.added) {
            try {
              std::lock_guard lock(st->mutex);
              st->taken.push_back(id);
              ++b->merged;
            } catch (...) {
              ++b->failed;  // kept in the journal: merged again later
            }
          } else {
            ++b->failed;
            try {
              if (r.error == store_errc::refused) {
                ++b->refused;
                std::lock_guard lock(st->mutex);
                st->refused.push_back(id);
              }
              std::lock_guard lock(b->mutex);
              if (b->error.empty()) b->error = r.error ? r.error.message() : "not added";
            } catch (...) {
            }
          }
          if (--b->left == 0) finish(*st, *b);
        });
        ++sent;
      }
    } catch (...) {
      // Out of memory part way: the entries not sent count as failed.
      const std::size_t rest = entries.size() - sent;
      b->failed += rest;
      if (b->left.fetch_sub(rest) == rest) finish(m, *b);
    }
  } catch (...) {
    m.merging = false;
  }
}

namespace {
// A flow can meet each counter at most once per round; the bound keeps a rule
// set with many counters (or a store answering oddly) from looping.
constexpr std::uint32_t max_rounds = 64;

void refuse(counting_state& st, std::string why) {
  st.out.errors.push_back(why);
  st.out.detail = std::move(why);
  st.out.refused = true;
}
}  // namespace

bool volume_counter::prepare(const policy::rule_set& rules, const policy::flow_context& ctx,
                             const policy::verdict& v, std::int64_t now_unix, counting_state& st) const noexcept {
  if (st.out.refused) return false;
  if (st.resend) {
    st.resend = false;
    return true;
  }
  try {
    if (st.round >= max_rounds || v.act == policy::action::block) return false;
    st.demands = policy::volume_demands(rules, ctx, v, now_unix);
    if (st.demands.empty()) return false;
    ++st.round;
    ++st.out.rounds;
    st.ops.clear();
    st.ops.reserve(st.demands.size());
    for (const auto& d : st.demands) {
      counter_op op;
      op.key = d.key;
      op.limit = d.limit;
      op.now = now_unix;
      op.expire_before = d.expire_before;
      op.expires_at = d.expires_at;
      op.members.reserve(d.subjects.size());
      for (const auto& s : d.subjects) op.members.push_back(hasher_->hash(s));
      std::sort(op.members.begin(), op.members.end());
      op.members.erase(std::unique(op.members.begin(), op.members.end()), op.members.end());
      st.ops.push_back(std::move(op));
    }
    return true;
  } catch (...) {
    // Out of memory while hashing or building keys: fail closed.
    st.out.refused = true;
    st.out.detail = "internal error while counting";
    return false;
  }
}

void volume_counter::take(const policy::rule_set& rules, const policy::flow_context& ctx, policy::verdict& v,
                          counting_state& st, counter_result r) const noexcept {
  try {
    if (r.error && !st.out.used_local) {
      st.out.errors.emplace_back(r.error.message());
      st.out.detail = r.error.message();
      if (!local_) {
        st.out.refused = true;
        return;
      }
      st.out.used_local = true;
      st.resend = true;
      return;
    }
    if (r.error || r.counts.size() != st.ops.size()) {
      refuse(st, r.error ? r.error.message() : "counter store answered for another number of keys");
      return;
    }
    // What the fallback counted reaches the primary on the merge thread
    // (no local I/O on this one). A flow does not wake it: flows would then
    // pace the merge rounds, and a Redis refusing every script for a moment
    // would park the journal within a few flows instead of a few seconds.
    if (st.out.used_local) merge_->journal_maybe = true;
    policy::apply_volumes(rules, ctx, v, st.demands, r.counts);
    if (r.added) {
      for (std::size_t i = 0; i < st.demands.size(); ++i) {
        counting_outcome::added_key k;
        k.key = st.demands[i].key;
        k.counter = st.demands[i].counter_id;
        k.scope = st.demands[i].scope;
        k.window = st.demands[i].window;
        k.zone = st.demands[i].zone;
        k.subjects = std::move(st.ops[i].members);
        st.out.added.push_back(std::move(k));
      }
      // Every subject that leaves is counted: done.
      st.round = max_rounds;
    }
  } catch (...) {
    st.out.refused = true;
    st.out.detail = "internal error while counting";
  }
}

counting_outcome volume_counter::run(const policy::rule_set& rules, const policy::flow_context& ctx,
                                     policy::verdict& v, std::int64_t now_unix) const noexcept {
  counting_state st;
  while (prepare(rules, ctx, v, now_unix, st)) take(rules, ctx, v, st, store_for(st).add(st.ops));
  return std::move(st.out);
}

}  // namespace customs::daemon::volume
