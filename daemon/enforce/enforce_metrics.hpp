#pragma once
// Enforcement's metrics (a section of customsd's /metrics, see
// daemon/metrics.hpp for the sharding rules: every counter is written by one
// worker thread only).
//
//   customs_enforced_flows_total{route,action}   flows by final action
//   customs_flow_pairs_total{src,dst}            flows by source / destination jurisdiction
//   customs_rule_flows_total{rule}               flows in which a rule fired
//   customs_findings_total{detector,direction}   findings
//   customs_audit_refusals_total{reason}         flows refused (503) because the trail refused
//                                                their record: queue_full, store_failed, closed,
//                                                trail_lost
//   customs_audit_failures_total{reason}         records the trail did not take (also of
//                                                flows let through with on_failure: allow)
//   customs_source_headers_ignored_total         X-Customs-* source headers from untrusted peers
//   customs_unscanned_events_total               events forwarded uninspected (unscannable: tag/allow)
//   customs_inspect_offloaded_total              requests inspected on the inspection pool
//                                                (bodies of inspect_pool::offload_bytes or more)
//   customs_hold_back_seconds                    how long streamed text was held back (histogram)
//   customs_inspect_seconds                      inspection time per flow (histogram; CPU on the worker)
//   customs_audit_durable_wait_seconds           flow_opened append -> durable (histogram)
//   customs_audit_queue_depth, customs_audit_queue_bytes,
//   customs_audit_commit_latency_seconds (histogram of group commits),
//   customs_audit_records_committed_total, customs_audit_commits_total,
//   customs_audit_checkpoints_total (signed checkpoints),
//   customs_audit_wal_checkpoints_total (SQLite WAL checkpoints),
//   customs_audit_wal_restarts_total (commits that started the WAL again),
//   customs_audit_records_truncated_total, customs_audit_store_errors_total,
//   customs_audit_healthy, customs_audit_trail_lost   from the audit writer at scrape time
//   customs_tokens_total{route,tenant,src,dst,model,direction}
//                                                tokens the providers reported (direction in:
//                                                prompt, out: completion); model and tenant
//                                                values are bounded (metering.max_models /
//                                                max_tenants; later ones fold into "other")
//   customs_usage_unknown_flows_total{route,model} flows whose provider reported no usage
//   customs_volume_ops_total{backend,result}     counter store calls: added, limited (a level
//                                                stopped the flow, nothing added), unavailable
//   customs_volume_unavailable_flows_total{policy} flows that met an unavailable store:
//                                                refuse (503) or local (counted locally)
//   customs_volume_levels_total{counter,level}   flows that reached a volume level
//   customs_volume_merges_total{result}          journal entries of the local fallback (flows
//                                                counted during a Redis outage): merged into
//                                                Redis, failed (kept, tried again), unreadable
//                                                (dropped), parked (refused repeatedly, kept),
//                                                local_error (journal read / forget failed)
//   customs_rule_loads_total{result}             rule set loads at start-up and reload
//   customs_rule_set_info{id,version,hash}       1 for the active rule set
//   customs_limit_hits_total{limit}              flows that reached a bound: findings_per_flow
//                                                (limits.findings_per_flow, either direction),
//                                                decoded_text_bytes (inline files of a request),
//                                                audit_content_bytes (audit.content_bytes: texts
//                                                cut in the record), inspect_queue (large requests
//                                                refused because the inspection pool was full)
//
// Labelled series are created the first time a label set is seen: those known
// from the config (routes, actions) when it is loaded, rules and detectors when
// a flow first reports them (their number is bounded by the rule sets loaded),
// jurisdiction pairs likewise (bounded by 26 x 26 per destination). Each worker
// keeps its own index of them, so that the data plane takes a lock only when a
// label set is new to the process.

#include "daemon/enforce/metering.hpp"
#include "daemon/metrics.hpp"

#include <atomic>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace customs::audit {
class writer;
}

namespace customs::daemon::enforce {

struct alignas(64) padded_counter {
  counter c;
};

// One counter metric with labels, sharded per worker.
class counter_family {
 public:
  counter_family(std::string name, std::string help, std::vector<std::string> labels, unsigned workers);

  // The worker's shard of the series with these label values (as many as label
  // names), created on first use. Data plane: call only from `worker`'s thread.
  [[nodiscard]] counter& at(unsigned worker, std::initializer_list<std::string_view> values);
  // Creates the series (control plane, any thread) so that it renders as 0.
  void ensure(std::initializer_list<std::string_view> values);

  void render(std::string& out) const;

 private:
  struct series {
    std::string labels;  // rendered: name="value",...
    std::unique_ptr<padded_counter[]> shards;
  };
  series& find_or_create(const std::string& key, std::initializer_list<std::string_view> values);

  struct key_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct worker_index {
    std::string key;  // reused buffer
    std::unordered_map<std::string, series*, key_hash, std::equal_to<>> map;
  };

  std::string name_, help_;
  std::vector<std::string> labels_;
  unsigned workers_;
  mutable std::mutex mutex_;  // guards all_
  std::map<std::string, std::unique_ptr<series>, std::less<>> all_;
  std::vector<worker_index> index_;  // per worker, touched by that worker only
};

struct alignas(64) enforce_shard {
  enforce_shard() : hold_back(latency_buckets), inspect(cpu_buckets), audit_wait(latency_buckets) {}
  histogram hold_back;
  histogram inspect;
  histogram audit_wait;
  counter headers_ignored;
  counter unscanned_events;
  counter offloaded;
};

class enforce_metrics {
 public:
  explicit enforce_metrics(unsigned workers);

  counter_family flows;
  counter_family pairs;
  counter_family rules;
  counter_family findings;
  counter_family audit_refusals;
  counter_family audit_failures;
  counter_family rule_loads;
  counter_family tokens;
  counter_family usage_unknown;
  counter_family volume_ops;
  counter_family volume_unavailable;
  counter_family volume_levels;
  // Merges of the local fallback's journal (volume_counter::merge_local); they
  // run on the Redis store's thread or the merge thread, not a worker's.
  std::atomic<std::uint64_t> volume_merged{0}, volume_merge_failed{0}, volume_journal_unreadable{0},
      volume_merge_parked{0}, volume_merge_local_errors{0};
  // Bounded label values of tokens / usage_unknown (set from metering.*).
  label_bound models{50};
  label_bound tenants{200};
  counter_family limit_hits;

  [[nodiscard]] enforce_shard& shard(unsigned worker) noexcept { return shards_[worker]; }

  // The audit writer whose statistics are rendered (control plane).
  void set_writer(std::shared_ptr<audit::writer> w);
  // The active rule set (control plane).
  void set_rule_set(std::string id, std::string version, std::string hash);

  void render(std::string& out) const;

 private:
  std::vector<enforce_shard> shards_;
  mutable std::mutex mutex_;  // guards writer_ and the rule set info
  std::shared_ptr<audit::writer> writer_;
  std::string set_id_, set_version_, set_hash_;
};

}  // namespace customs::daemon::enforce
