#include "daemon/enforce/enforcer.hpp"

#include "audit/audit.hpp"
#include "crypto/key_file.hpp"
#include "daemon/enforce/edge_enforce.hpp"
#include "daemon/enforce/inspect_pool.hpp"
#include "daemon/log.hpp"
#include "daemon/volume/redis_store.hpp"
#include "daemon/volume/sqlite_store.hpp"
#include "policy/authoring.hpp"
#include "policy/volume.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <ctime>

namespace customs::daemon::enforce {
namespace {

// "rules: N errors" and then every error, one per line (the reload's
// errors, as POST /reload prints them, are these lines).
std::string all_errors(const std::vector<policy::diagnostic>& d) {
  std::size_t errors = 0;
  std::string lines;
  for (const auto& x : d) {
    if (x.level != policy::diagnostic::severity::error) continue;
    ++errors;
    lines += "\n" + x.to_string();
  }
  return "rules: " + std::to_string(errors) + (errors == 1 ? " error" : " errors") + lines;
}

// The counter store of a config: its `volumes` section, or else the embedded
// default beside the audit trail (counters.db, and subject.key, created 0600
// when missing).
volumes_config effective_volumes(const config& cfg) {
  if (cfg.volumes) return *cfg.volumes;
  volumes_config v;
  const auto dir = cfg.audit ? cfg.audit->path.parent_path() : std::filesystem::path(".");
  v.path = dir / "counters.db";
  v.subject_key = dir / "subject.key";
  std::error_code ec;
  if (!std::filesystem::exists(v.subject_key, ec)) {
    (void)crypto::generate_key_set(dir, crypto::key_set::subject);
    log_line(log_level::warn, "volumes_key_created")
        .kv("path", v.subject_key.string())
        .kv("note", "a fleet sharing counters needs one subject.key on every host: configure volumes.subject_key");
  }
  return v;
}

std::shared_ptr<volume::volume_counter> open_volumes(const volumes_config& v,
                                                     const std::shared_ptr<enforce_metrics>& stats) {
  auto hasher = std::make_shared<const volume::subject_hasher>(v.subject_key);
  std::shared_ptr<volume::counter_store> primary, local;
  if (v.backend == volumes_config::backend_kind::redis) {
    primary = volume::open_redis_store(v);
    if (!v.refuse_on_unavailable)
      local = volume::open_sqlite_store(v.path, /*journal=*/true, v.journal_max_entries);
  } else {
    primary = volume::open_sqlite_store(v.path);
  }
  log_line(log_level::info, "volumes_open")
      .kv("backend", primary->backend())
      .kv("on_unavailable", v.refuse_on_unavailable ? "refuse" : "local");
  volume::volume_counter::merge_observer on_merge;
  if (local) {
    on_merge = [stats](const volume::merge_report& m) {
      stats->volume_merged += m.merged;
      stats->volume_merge_failed += m.failed;
      stats->volume_journal_unreadable += m.unreadable;
      stats->volume_merge_parked += m.parked;
      stats->volume_merge_local_errors += m.local_errors;
      if (m.merged > 0 || m.failed > 0 || m.unreadable > 0 || m.parked > 0 || m.local_errors > 0) {
        auto line = log_line(m.failed > 0 || m.unreadable > 0 || m.parked > 0 || m.local_errors > 0 ? log_level::warn
                                                                                                      : log_level::info,
                             "volumes_merged");
        line.kv("merged", m.merged)
            .kv("failed", m.failed)
            .kv("refused", m.refused)
            .kv("unreadable", m.unreadable)
            .kv("parked", m.parked)
            .kv("local_errors", m.local_errors);
        if (!m.error.empty()) line.kv("error", m.error);
        line.kv("note", "flows the local store counted while Redis was unavailable");
      }
    };
  }
  return std::make_shared<volume::volume_counter>(std::move(primary), std::move(local), std::move(hasher),
                                                  std::move(on_merge));
}

std::string utc(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

rules_error::rules_error(std::vector<policy::diagnostic> d)
    : std::runtime_error(all_errors(d)), diagnostics_(std::move(d)) {}

policy::load_result load_rules(const config& cfg) {
  auto r = policy::load_rule_set(cfg.rules);
  if (!r.ok()) throw rules_error(std::move(r.diagnostics));
  return r;
}

enforcer::enforcer(const config& cfg) {
  if (!cfg.enforcing() || !cfg.audit) throw std::runtime_error("enforcement needs rules and audit in the config");
  stats_ = std::make_shared<enforce_metrics>(cfg.effective_threads());
  // As many inspection threads as workers; a few large requests per thread
  // may wait (each holds its body, already bounded by request_body_bytes).
  pool_ = std::make_shared<inspect_pool>(cfg.effective_threads(), 4 * std::size_t{cfg.effective_threads()});
  // Rules first: a broken rule file should not leave a new audit trail behind.
  auto loaded = load_rules(cfg);
  preloaded_ = loaded.rules;
  preloaded_paths_ = cfg.rules;
  for (const auto& d : loaded.diagnostics) log_line(log_level::debug, "rules_warning").kv("diagnostic", d.to_string());

  const audit_config& a = *cfg.audit;
  audit::writer_options o;
  o.db = a.path;
  o.auditor_keys = a.auditor_keys;
  o.sealing_key = a.sealing_key;
  o.signing_key = a.signing_key;
  o.epoch_records = a.epoch_records;
  o.epoch_duration = std::chrono::duration_cast<std::chrono::seconds>(a.epoch_duration);
  o.commit_records = static_cast<std::uint32_t>(a.commit_records);
  o.commit_interval = a.commit_interval;
  o.queue_capacity = a.queue_capacity;
  o.queue_bytes = a.queue_bytes;
  o.index_fields = a.index_fields;
  // Health changes of the trail, logged once each (on the writer thread).
  o.on_health = [path = a.path.string()](const audit::trail_health& h) {
    if (h.lost) {
      log_line(log_level::error, "audit_trail_lost")
          .kv("path", path)
          .kv("reason", h.reason)
          .kv("action", "new flows are refused until customsd is restarted; the trail is not continued");
    } else if (h.read_only) {
      log_line(log_level::error, "audit_read_only")
          .kv("path", path)
          .kv("reason", h.reason)
          .kv("action", "new flows are refused until the database is writable again");
    } else {
      log_line(log_level::info, "audit_writable").kv("path", path);
    }
  };
  trail_ = std::shared_ptr<audit::writer>(audit::writer::open(o));
  stats_->set_writer(trail_);
  // After the trail: a second customsd on the same folder is told of the
  // trail it holds (the counter store beside it is held too).
  if (cfg.volumes || policy::has_volumes(*loaded.rules)) volumes_ = open_volumes(effective_volumes(cfg), stats_);
  log_line(log_level::info, "audit_open")
      .kv("path", a.path.string())
      .kv("content", to_string(a.content))
      .kv("on_failure", a.refuse_on_failure ? "refuse" : "allow")
      .kv("commit_interval_ms", static_cast<std::int64_t>(a.commit_interval.count()));
  if (!a.refuse_on_failure) {
    log_line(log_level::error, "audit_failures_allowed")
        .kv("warning",
            "audit.on_failure is allow: flows are forwarded even when the audit trail cannot record them");
  }
}

enforcer::~enforcer() { close(); }

void enforcer::close() {
  // Requests still being inspected append their records before the trail closes.
  if (pool_) pool_->stop();
  if (trail_) trail_->close();
}

daemon::server_options enforcer::server_options() {
  daemon::server_options o;
  o.handle_signals = false;
  o.filters_for_config = [this](const config& c) { return chain_for(c); };
  o.edge_for_config = [this](const config& c) -> std::shared_ptr<const edge_policy> {
    std::lock_guard lock(mutex_);
    if (built_for_ != &c || !built_) return nullptr;
    return make_edge_policy(built_);
  };
  o.config_applied = [this](const config& c) { applied(c); };
  o.describe_filter_changes = [this] { return rule_changes(); };
  return o;
}

std::vector<std::string> enforcer::rule_changes() const {
  std::lock_guard lock(mutex_);
  if (!built_ || !active_ || built_->rules->hash() == active_->rules->hash()) return {};
  const auto& a = *active_->rules;
  const auto& b = *built_->rules;
  return {"rules: " + a.id() + " " + a.hash().substr(0, 12) + " => " + b.id() + " " + b.hash().substr(0, 12)};
}

std::shared_ptr<const policy_snapshot> enforcer::build(const config& cfg, policy::rule_set_ptr rules) {
  auto s = std::make_shared<policy_snapshot>();
  s->rules = std::move(rules);
  s->sources = source_resolver(cfg);
  s->unscannable = cfg.unscannable;
  s->inject_stream_usage = cfg.metering.inject_stream_usage;
  stats_->models.set_limit(cfg.metering.max_models);
  stats_->tenants.set_limit(cfg.metering.max_tenants);
  if (cfg.audit) {
    s->content = cfg.audit->content;
    s->refuse_on_audit_failure = cfg.audit->refuse_on_failure;
    s->content_bytes = cfg.audit->content_bytes;
  }
  s->findings_per_flow = cfg.limits.findings_per_flow;
  s->pool = pool_;
  s->audit = trail_;
  s->stats = stats_;
  s->volumes = volumes_;
  for (const auto& p : cfg.rules) s->rule_files.push_back(p.string());
  s->loaded_at = std::chrono::system_clock::now();
  return s;
}

filter_chain_builder enforcer::chain_for(const config& cfg) {
  if (!cfg.enforcing()) {
    throw std::runtime_error("rules: the config no longer names rules; removing enforcement needs a restart");
  }
  policy::rule_set_ptr rules;
  {
    std::lock_guard lock(mutex_);
    if (preloaded_ && preloaded_paths_ == cfg.rules) rules = std::move(preloaded_);
    preloaded_.reset();
  }
  if (!rules) {
    auto r = policy::load_rule_set(cfg.rules);
    if (!r.ok()) {
      stats_->rule_loads.at(0, {"failed"}).add();
      for (const auto& d : r.diagnostics) {
        log_line(d.level == policy::diagnostic::severity::error ? log_level::error : log_level::debug, "rules_invalid")
            .kv("diagnostic", d.to_string());
      }
      log_line(log_level::error, "rules_rejected").kv("kept", active() ? active()->rules->hash() : std::string());
      throw rules_error(std::move(r.diagnostics));
    }
    rules = r.rules;
  }
  if (policy::has_volumes(*rules)) {
    std::lock_guard lock(mutex_);
    // The first rule set with counters opens the store; it stays for the
    // process (changing `volumes` needs a restart).
    if (!volumes_) volumes_ = open_volumes(effective_volumes(cfg), stats_);
  }
  stats_->rule_loads.at(0, {"ok"}).add();
  auto snap = build(cfg, rules);
  {
    std::lock_guard lock(mutex_);
    built_for_ = &cfg;
    built_ = snap;
  }
  log_line(log_level::info, "rules_loaded").kv("id", rules->id()).kv("version", rules->version()).kv("hash", rules->hash());
  return [snap](const route_config& r) { return enforce_chain(snap, r); };
}

void enforcer::applied(const config& cfg) {
  std::shared_ptr<const policy_snapshot> now;
  {
    std::lock_guard lock(mutex_);
    if (built_for_ != &cfg || !built_) return;
    active_ = built_;
    now = active_;
  }
  stats_->set_rule_set(now->rules->id(), now->rules->version(), now->rules->hash());
  log_line(log_level::info, "rules_active").kv("id", now->rules->id()).kv("hash", now->rules->hash());
}

std::size_t enforcer::inspecting() const noexcept { return pool_ ? pool_->jobs() : 0; }

std::shared_ptr<const policy_snapshot> enforcer::active() const {
  std::lock_guard lock(mutex_);
  return active_;
}

std::string enforcer::rules_json() const {
  const auto s = active();
  boost::json::object o;
  if (!s) return "{}\n";
  o["id"] = s->rules->id();
  o["version"] = s->rules->version();
  o["hash"] = s->rules->hash();
  o["max_hold_back"] = s->rules->max_hold_back();
  o["loaded_at"] = utc(s->loaded_at);
  boost::json::array files;
  for (const auto& f : s->rule_files) files.emplace_back(f);
  o["files"] = std::move(files);
  const auto sum = policy::summarize(*s->rules);
  boost::json::array packs;
  for (const auto& [id, version] : sum.packs) packs.push_back(boost::json::object{{"id", id}, {"version", version}});
  o["packs"] = std::move(packs);
  o["detectors"] = sum.detectors;
  o["rules"] = sum.rules;
  o["exceptions"] = sum.exceptions;
  return boost::json::serialize(o) + "\n";
}

void enforcer::install(server& s) {
  s.add_admin_handler(boost::beast::http::verb::get, "/rules", [this](const admin_request&) {
    return admin_reply{200, "application/json", rules_json()};
  });
  s.stats().add_section([stats = stats_](std::string& out) { stats->render(out); });
}

}  // namespace customs::daemon::enforce
