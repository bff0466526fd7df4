#include "daemon/volume/counting.hpp"

#include <algorithm>

#include "policy/volume.hpp"

namespace customs::daemon::volume {

volume_counter::volume_counter(std::shared_ptr<counter_store> primary, std::shared_ptr<counter_store> local,
                               std::shared_ptr<const subject_hasher> hasher)
    : primary_(std::move(primary)), local_(std::move(local)), hasher_(std::move(hasher)) {}

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
