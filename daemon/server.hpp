#pragma once
// customsd as an object: worker threads (one io_context each, every worker
// accepting on a duplicate of each listener's one socket), a
// control thread (admin listener, signals, drain, reload), and the runtime
// snapshot they share. Tests run it in-process; main.cpp wraps it.
//
// Live changes (reload): routes, limits, log settings, drain_timeout and the
// listeners' certificate files. Not live (kept, reported "restart needed"):
// listener names/addresses/ports/TLS on-off, the admin listener, threads.

#include "daemon/admin.hpp"
#include "daemon/config.hpp"
#include "daemon/filter.hpp"
#include "daemon/metrics.hpp"
#include "daemon/notify.hpp"
#include "daemon/runtime.hpp"

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace customs::daemon {

struct worker;

struct server_options {
  filter_chain_builder filters;  // empty: default_filter_chain (pass-through)
  // Called once per config load and reload (control plane), before any route's
  // chain is built; returns the builder for that config (e.g. one holding the
  // rule set the config names). Throwing rejects the config: at start-up the
  // constructor throws, on reload the running config and chains stay. When set,
  // `filters` is not used.
  std::function<filter_chain_builder(const config&)> filters_for_config;
  // With filters_for_config: the edge policy for the same config (policy before
  // decryption, records of tunnels and refusals); called right after it.
  // Unset or null: default_edge_policy.
  std::function<std::shared_ptr<const edge_policy>(const config&)> edge_for_config;
  bool handle_signals = false;   // SIGTERM/SIGINT: drain; SIGHUP: reload from the config file
  // Called (control plane) each time a config became the running one: at
  // construction and after each successful reload, with the config that
  // filters_for_config was last called with for it.
  std::function<void(const config&)> config_applied;
  // Called (control plane) on reload after filters_for_config built the chains
  // of the new config, before it is applied: what changed in what the filters
  // use besides the config itself (the contents of rule files), one item per
  // change; reported with the config's own changes.
  std::function<std::vector<std::string>()> describe_filter_changes;
  // The service manager (systemd Type=notify): READY=1 when start() bound
  // everything, RELOADING=1/READY=1 around each reload, STOPPING=1 when the
  // drain or stop begins, WATCHDOG=1 pings (see notify.hpp). Null or
  // disabled: none.
  std::shared_ptr<const service_notifier> notify;
};

struct reload_result {
  bool ok = false;
  std::vector<std::string> changes;  // when ok
  std::vector<std::string> errors;   // when not
  std::uint64_t generation = 0;      // the running generation afterwards
};

class server {
 public:
  // Control plane: builds the runtime (throws std::runtime_error when a TLS
  // file cannot be used).
  server(config cfg, server_options opts = {});
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds the listeners and the admin listener (throws std::runtime_error when
  // one cannot bind) and starts the threads. Ready when it returns.
  void start();

  [[nodiscard]] std::uint16_t port(std::string_view listener) const;
  [[nodiscard]] std::uint16_t admin_port() const;

  // Adds an admin endpoint; only before start().
  void add_admin_handler(boost::beast::http::verb method, std::string path, admin_handler h);

  // Applies a new config (thread-safe, serialised). What cannot change live is
  // kept and reported.
  reload_result reload(config next);
  // Re-reads the file the running config came from.
  reload_result reload_from_file();

  // Stop accepting, let flows in flight finish up to drain_timeout, then stop.
  // Thread-safe, returns at once; wait() returns when done.
  void drain();
  // Stop now (flows in flight are cut). Thread-safe.
  void stop();
  // Blocks until the server stopped (after drain() or stop()).
  void wait();

  [[nodiscard]] metrics& stats() noexcept { return *stats_; }
  [[nodiscard]] std::shared_ptr<const config> current_config() const;

 private:
  void begin_drain();
  void poll_drain();
  void finish();
  void install_admin_handlers();
  void watch_signals();
  void notify(std::string_view state);
  void notify_reload_start();
  void notify_reload_end(const reload_result& r);
  void schedule_watchdog();
  void recover_control();
  [[nodiscard]] reload_result apply(config next);
  [[nodiscard]] reload_result apply_file();
  [[nodiscard]] std::shared_ptr<const runtime> make_runtime(std::shared_ptr<const config> cfg, std::uint64_t generation);

  server_options opts_;
  std::shared_ptr<const config> cfg_;  // running config (guarded by mutex_)
  std::shared_ptr<const runtime> last_rt_;  // the newest snapshot (guarded by reload_mutex_): its caches carry over
  unsigned threads_;
  std::unique_ptr<metrics> stats_;
  std::atomic<std::uint64_t> connections_{0};
  std::uint64_t generation_ = 1;
  std::vector<std::unique_ptr<worker>> workers_;
  std::unique_ptr<boost::asio::io_context> control_;
  std::unique_ptr<admin_server> admin_;
  struct control_state;
  std::unique_ptr<control_state> control_state_;
  std::vector<std::thread> threads_running_;
  std::vector<std::uint16_t> ports_;
  std::vector<int> port_locks_;  // one per listener with a fixed port (see claim_listen_address)
  mutable std::mutex mutex_;
  std::mutex reload_mutex_;
  bool started_ = false;
  bool joined_ = false;
};

}  // namespace customs::daemon
