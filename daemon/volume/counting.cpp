#include "daemon/volume/counting.hpp"

#include <algorithm>

#include "policy/volume.hpp"

namespace customs::daemon::volume {

volume_counter::volume_counter(std::shared_ptr<counter_store> primary, std::shared_ptr<counter_store> local,
                               std::shared_ptr<const subject_hasher> hasher)
    : primary_(std::move(primary)), local_(std::move(local)), hasher_(std::move(hasher)) {}

counting_outcome volume_counter::run(const policy::rule_set& rules, const policy::flow_context& ctx,
                                     policy::verdict& v, std::int64_t now_unix) const noexcept {
  counting_outcome out;
  try {
    for (std::uint32_t round = 0; round < 64; ++round) {
      const auto demands = policy::volume_demands(rules, ctx, v, now_unix);
      if (demands.empty()) break;
      ++out.rounds;
      std::vector<counter_op> ops;
      ops.reserve(demands.size());
      for (const auto& d : demands) {
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
        ops.push_back(std::move(op));
      }
      counter_result r = out.used_local ? local_->add(ops) : primary_->add(ops);
      if (r.error && !out.used_local) {
        out.errors.emplace_back(r.error.message());
        out.detail = r.error.message();
        if (!local_) {
          out.refused = true;
          return out;
        }
        out.used_local = true;
        r = local_->add(ops);
      }
      if (r.error || r.counts.size() != ops.size()) {
        out.errors.emplace_back(r.error ? r.error.message() : "counter store answered for another number of keys");
        out.detail = out.errors.back();
        out.refused = true;
        return out;
      }
      policy::apply_volumes(rules, ctx, v, demands, r.counts);
      if (r.added) {
        for (std::size_t i = 0; i < demands.size(); ++i) {
          counting_outcome::added_key k;
          k.key = demands[i].key;
          k.counter = demands[i].counter_id;
          k.scope = demands[i].scope;
          k.window = demands[i].window;
          k.subjects = std::move(ops[i].members);
          out.added.push_back(std::move(k));
        }
        break;
      }
      if (v.act == policy::action::block) break;
    }
  } catch (...) {
    // Out of memory while hashing or building keys: fail closed.
    out.refused = true;
    out.detail = "internal error while counting";
  }
  return out;
}

}  // namespace customs::daemon::volume
