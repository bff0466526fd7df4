#include "daemon/enforce/enforce_metrics.hpp"

#include "audit/audit.hpp"

namespace customs::daemon::enforce {

counter_family::counter_family(std::string name, std::string help, std::vector<std::string> labels,
                               unsigned workers)
    : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)), workers_(workers), index_(workers) {}

counter_family::series& counter_family::find_or_create(const std::string& key,
                                                       std::initializer_list<std::string_view> values) {
  std::lock_guard lock(mutex_);
  auto it = all_.find(key);
  if (it != all_.end()) return *it->second;
  auto s = std::make_unique<series>();
  std::size_t i = 0;
  for (const auto v : values) {
    if (i >= labels_.size()) break;
    if (i > 0) s->labels += ',';
    s->labels += labels_[i++];
    s->labels += "=\"";
    append_label_value(s->labels, v);
    s->labels += '"';
  }
  s->shards = std::make_unique<padded_counter[]>(workers_);
  return *all_.emplace(key, std::move(s)).first->second;
}

counter& counter_family::at(unsigned worker, std::initializer_list<std::string_view> values) {
  worker_index& w = index_[worker];
  w.key.clear();
  for (const auto v : values) {
    w.key.append(v.data(), v.size());
    w.key += '\x1f';
  }
  auto it = w.map.find(std::string_view(w.key));
  if (it == w.map.end()) it = w.map.emplace(w.key, &find_or_create(w.key, values)).first;
  return it->second->shards[worker].c;
}

void counter_family::ensure(std::initializer_list<std::string_view> values) {
  std::string key;
  for (const auto v : values) {
    key.append(v.data(), v.size());
    key += '\x1f';
  }
  (void)find_or_create(key, values);
}

void counter_family::render(std::string& out) const {
  write_metric_header(out, name_, "counter", help_);
  std::lock_guard lock(mutex_);
  for (const auto& [_, s] : all_) {
    std::uint64_t v = 0;
    for (unsigned w = 0; w < workers_; ++w) v += s->shards[w].c.get();
    write_sample(out, name_, s->labels, v);
  }
}

enforce_metrics::enforce_metrics(unsigned workers)
    : flows("customs_enforced_flows_total", "Enforced flows by route and final action.", {"route", "action"}, workers),
      pairs("customs_flow_pairs_total", "Enforced flows by source and destination jurisdiction.", {"src", "dst"}, workers),
      rules("customs_rule_flows_total", "Flows in which a rule fired.", {"rule"}, workers),
      findings("customs_findings_total", "Detector findings by direction.", {"detector", "direction"}, workers),
      audit_refusals("customs_audit_refusals_total",
                     "Flows refused with 503 because the audit trail did not take their record.", {"reason"}, workers),
      audit_failures("customs_audit_failures_total", "Audit records the trail did not take.", {"reason"}, workers),
      rule_loads("customs_rule_loads_total", "Rule set loads at start-up and reload, by result.", {"result"}, 1),
      tokens("customs_tokens_total", "Tokens reported by providers (in: prompt, out: completion).",
             {"route", "tenant", "src", "dst", "model", "direction"}, workers),
      usage_unknown("customs_usage_unknown_flows_total",
                    "Flows whose provider reported no token usage (counted apart, never as 0 tokens).",
                    {"route", "model"}, workers),
      volume_ops("customs_volume_ops_total", "Volume counter store calls by backend and result.", {"backend", "result"},
                 workers),
      volume_unavailable("customs_volume_unavailable_flows_total",
                         "Flows that met an unavailable counter store, by on_unavailable policy.", {"policy"}, workers),
      volume_levels("customs_volume_levels_total", "Flows that reached a volume level.", {"counter", "level"}, workers),
      limit_hits("customs_limit_hits_total",
                 "Flows that reached an enforcement bound, by bound (see the operator guide).", {"limit"}, workers),
      shards_(workers) {
  for (const char* l : {"findings_per_flow", "decoded_text_bytes", "audit_content_bytes", "inspect_queue"}) {
    limit_hits.ensure({l});
  }
  for (const char* r : {"queue_full", "store_failed", "closed", "trail_lost"}) {
    audit_refusals.ensure({r});
    audit_failures.ensure({r});
  }
  volume_unavailable.ensure({"refuse"});
  volume_unavailable.ensure({"local"});
  rule_loads.ensure({"ok"});
  rule_loads.ensure({"failed"});
}

void enforce_metrics::set_writer(std::shared_ptr<audit::writer> w) {
  std::lock_guard lock(mutex_);
  writer_ = std::move(w);
}

void enforce_metrics::set_rule_set(std::string id, std::string version, std::string hash) {
  std::lock_guard lock(mutex_);
  set_id_ = std::move(id);
  set_version_ = std::move(version);
  set_hash_ = std::move(hash);
}

void enforce_metrics::render(std::string& out) const {
  flows.render(out);
  pairs.render(out);
  rules.render(out);
  findings.render(out);
  audit_refusals.render(out);
  audit_failures.render(out);
  rule_loads.render(out);
  tokens.render(out);
  usage_unknown.render(out);
  volume_ops.render(out);
  volume_unavailable.render(out);
  volume_levels.render(out);
  limit_hits.render(out);

  auto sum = [&](counter enforce_shard::*m) {
    std::uint64_t v = 0;
    for (const auto& s : shards_) v += (s.*m).get();
    return v;
  };
  write_metric_header(out, "customs_source_headers_ignored_total", "counter",
                      "X-Customs-Source / X-Customs-Tenant headers ignored because the peer is not a trusted proxy.");
  write_sample(out, "customs_source_headers_ignored_total", "", sum(&enforce_shard::headers_ignored));
  write_metric_header(out, "customs_volume_merges_total", "counter",
                      "Journal entries of the local counter fallback (flows counted while Redis was unavailable) "
                      "merged into Redis, failed (kept for the next merge), unreadable (dropped), parked "
                      "(refused by Redis repeatedly: kept, not merged again until a restart), or local errors "
                      "(reading or forgetting the journal failed; tried again).");
  write_sample(out, "customs_volume_merges_total", "result=\"merged\"", volume_merged.load());
  write_sample(out, "customs_volume_merges_total", "result=\"failed\"", volume_merge_failed.load());
  write_sample(out, "customs_volume_merges_total", "result=\"unreadable\"", volume_journal_unreadable.load());
  write_sample(out, "customs_volume_merges_total", "result=\"parked\"", volume_merge_parked.load());
  write_sample(out, "customs_volume_merges_total", "result=\"local_error\"", volume_merge_local_errors.load());
  write_metric_header(out, "customs_unscanned_events_total", "counter",
                      "Stream events forwarded without inspection (unscannable: tag or allow).");
  write_sample(out, "customs_unscanned_events_total", "", sum(&enforce_shard::unscanned_events));
  write_metric_header(out, "customs_inspect_offloaded_total", "counter",
                      "Requests inspected on the inspection pool instead of their worker (large bodies).");
  write_sample(out, "customs_inspect_offloaded_total", "", sum(&enforce_shard::offloaded));

  struct hist {
    std::string_view name;
    histogram enforce_shard::*member;
    std::string_view help;
  };
  const hist hists[] = {
      {"customs_hold_back_seconds", &enforce_shard::hold_back,
       "How long streamed text was held back while a match could still cover it."},
      {"customs_inspect_seconds", &enforce_shard::inspect,
       "Time spent inspecting a flow (extraction, scanning, decisions, rewriting)."},
      {"customs_audit_durable_wait_seconds", &enforce_shard::audit_wait,
       "Time from appending a flow_opened record to it being durable."},
  };
  for (const auto& h : hists) {
    write_metric_header(out, h.name, "histogram", h.help);
    std::vector<const histogram*> v;
    for (const auto& s : shards_) v.push_back(&(s.*(h.member)));
    write_histogram(out, h.name, "", v);
  }

  std::lock_guard lock(mutex_);
  if (writer_) {
    const auto st = writer_->get_stats();
    write_metric_header(out, "customs_audit_queue_depth", "gauge", "Audit records waiting for the writer thread.");
    write_sample(out, "customs_audit_queue_depth", "", st.queue_depth);
    write_metric_header(out, "customs_audit_queue_bytes", "gauge",
                        "Bytes of the audit records waiting for the writer thread or its commit.");
    write_sample(out, "customs_audit_queue_bytes", "", st.queue_bytes);
    {
      // The writer thread's counts, in the histogram shape the worker metrics use.
      static_assert(audit::writer::commit_latency_bounds == latency_buckets);
      histogram commits(latency_buckets);
      for (std::size_t i = 0; i < st.commit_latency_buckets.size(); ++i) commits.buckets[i].add(st.commit_latency_buckets[i]);
      std::uint64_t n = 0;
      for (const auto c : st.commit_latency_buckets) n += c;
      commits.count.add(n);
      commits.sum_ns.add(static_cast<std::uint64_t>(st.commit_latency_sum.count()) * 1000);
      write_metric_header(out, "customs_audit_commit_latency_seconds", "histogram",
                          "Duration of audit group commits (write, fsync).");
      write_histogram(out, "customs_audit_commit_latency_seconds", "", {&commits});
    }
    write_metric_header(out, "customs_audit_records_committed_total", "counter", "Audit records committed.");
    write_sample(out, "customs_audit_records_committed_total", "", st.records_committed);
    write_metric_header(out, "customs_audit_commits_total", "counter", "Audit group commits.");
    write_sample(out, "customs_audit_commits_total", "", st.commits);
    write_metric_header(out, "customs_audit_checkpoints_total", "counter",
                        "Signed audit checkpoints written (chain head statements for auditors).");
    write_sample(out, "customs_audit_checkpoints_total", "", st.checkpoints);
    write_metric_header(out, "customs_audit_wal_checkpoints_total", "counter",
                        "SQLite WAL checkpoint runs of the audit store (WAL copied into the database file).");
    write_sample(out, "customs_audit_wal_checkpoints_total", "", st.wal_checkpoints);
    write_metric_header(out, "customs_audit_wal_restarts_total", "counter",
                        "Audit commits that started the SQLite WAL again from its first frame (the WAL was copied to its end).");
    write_sample(out, "customs_audit_wal_restarts_total", "", st.wal_restarts);
    write_metric_header(out, "customs_audit_records_truncated_total", "counter",
                        "Audit records held to the size bounds (an index field cut or the payload replaced).");
    write_sample(out, "customs_audit_records_truncated_total", "", st.records_truncated);
    write_metric_header(out, "customs_audit_store_errors_total", "counter", "Audit commits the database refused.");
    write_sample(out, "customs_audit_store_errors_total", "", st.store_errors);
    write_metric_header(out, "customs_audit_healthy", "gauge", "1 while the audit trail takes records.");
    write_sample(out, "customs_audit_healthy", "", writer_->healthy() ? 1 : 0);
    write_metric_header(out, "customs_audit_trail_lost", "gauge",
                        "1 once the audit database was deleted or replaced under customsd (until restart).");
    write_sample(out, "customs_audit_trail_lost", "", st.trail_lost ? 1 : 0);
  }
  if (!set_hash_.empty()) {
    write_metric_header(out, "customs_rule_set_info", "gauge", "The active rule set.");
    std::string l = "id=\"";
    append_label_value(l, set_id_);
    l += "\",version=\"";
    append_label_value(l, set_version_);
    l += "\",hash=\"";
    append_label_value(l, set_hash_);
    l += '"';
    write_sample(out, "customs_rule_set_info", l, 1);
  }
}

}  // namespace customs::daemon::enforce
