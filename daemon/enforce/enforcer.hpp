#pragma once
// Enforcement's control plane: the audit trail (opened once at start-up, kept
// across reloads), the rule set of each config (loaded when the config is loaded
// or reloaded, through server_options::filters_for_config: a rule set with any
// error rejects the reload and the running set stays), the metrics section, and
// the admin endpoint GET /rules (the active set's id, version and hash).
//
//   enforcer e(cfg);                    // loads the rules, opens the trail (throws)
//   server s(cfg, e.server_options());
//   e.install(s);                       // GET /rules, metrics; before s.start()
//   s.start(); s.wait();
//   e.close();                          // flushes the trail, closing checkpoint
//
// Changing `audit` (other than content and on_failure) needs a restart; the
// trail in use stays open until then.

#include "daemon/config.hpp"
#include "daemon/enforce/enforce_filter.hpp"
#include "daemon/server.hpp"
#include "policy/policy.hpp"

#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace customs::daemon::enforce {

// The rule files do not load: every diagnostic (errors and warnings).
class rules_error : public std::runtime_error {
 public:
  explicit rules_error(std::vector<policy::diagnostic> d);
  [[nodiscard]] const std::vector<policy::diagnostic>& diagnostics() const noexcept { return diagnostics_; }

 private:
  std::vector<policy::diagnostic> diagnostics_;
};

// Loads a config's rule set; throws rules_error (control plane).
[[nodiscard]] policy::load_result load_rules(const config& cfg);

class enforcer {
 public:
  // Loads cfg's rules (throws rules_error) and opens its audit trail (throws
  // std::runtime_error). cfg must name rules and audit (config::enforcing()).
  explicit enforcer(const config& cfg);
  ~enforcer();
  enforcer(const enforcer&) = delete;
  enforcer& operator=(const enforcer&) = delete;

  // filters_for_config and config_applied bound to this enforcer, which must
  // outlive the server.
  [[nodiscard]] daemon::server_options server_options();
  // Adds GET /rules and the metrics section. Before server::start().
  void install(server& s);

  // The chain builder for a config (what filters_for_config calls).
  [[nodiscard]] filter_chain_builder chain_for(const config& cfg);
  // cfg (last passed to chain_for) is now the running config.
  void applied(const config& cfg);
  // The rule set chain_for last built against the active one: one item when
  // their hashes differ (a reload that changed rule files' contents).
  [[nodiscard]] std::vector<std::string> rule_changes() const;

  // The snapshot new flows use.
  [[nodiscard]] std::shared_ptr<const policy_snapshot> active() const;
  [[nodiscard]] const std::shared_ptr<audit::writer>& trail() const noexcept { return trail_; }
  [[nodiscard]] enforce_metrics& stats() noexcept { return *stats_; }
  [[nodiscard]] volume::volume_counter* volumes() noexcept { return volumes_.get(); }
  // Large requests being inspected (or waiting) on the inspection pool.
  [[nodiscard]] std::size_t inspecting() const noexcept;
  // The inspection pool itself (tests fill it to reach its bound).
  [[nodiscard]] inspect_pool& pool() noexcept { return *pool_; }

  // Flushes and closes the audit trail (after the server stopped).
  void close();

 private:
  [[nodiscard]] std::shared_ptr<const policy_snapshot> build(const config& cfg, policy::rule_set_ptr rules);
  [[nodiscard]] std::string rules_json() const;

  std::shared_ptr<enforce_metrics> stats_;
  std::shared_ptr<inspect_pool> pool_;  // large request bodies are inspected here
  std::shared_ptr<audit::writer> trail_;
  std::shared_ptr<volume::volume_counter> volumes_;  // null without `volumes` in the config
  policy::rule_set_ptr preloaded_;  // the constructor's load, used by the first chain_for
  std::vector<std::filesystem::path> preloaded_paths_;
  mutable std::mutex mutex_;
  const config* built_for_ = nullptr;  // the config chain_for last built `built_` for
  std::shared_ptr<const policy_snapshot> built_;
  std::shared_ptr<const policy_snapshot> active_;
};

}  // namespace customs::daemon::enforce
