// customsd: the Customs daemon. A thin main over daemon/server.hpp and, when the
// config names rules and an audit trail, daemon/enforce/enforcer.hpp.
//
//   customsd --config FILE          run (SIGTERM/SIGINT drain, SIGHUP reloads)
//   customsd --config FILE --check-config   also loads the rule files (-t, as nginx)
//   customsd --version | --help
//
// Under systemd (Type=notify) it reports readiness, reloads, stopping and
// watchdog pings over $NOTIFY_SOCKET (daemon/notify.hpp).
//
// Exit codes: 0 ok (also after a drain); 1 the config or its rules are invalid;
// 2 usage or I/O error (unreadable file, a listener that cannot bind, an audit
// trail or key that cannot be opened).

#include "daemon/catalogue/catalogue.hpp"
#include "daemon/config.hpp"
#include "daemon/enforce/enforcer.hpp"
#include "daemon/log.hpp"
#include "daemon/notify.hpp"
#include "daemon/server.hpp"

#include <csignal>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

namespace {

void usage(std::ostream& out) {
  out << "usage: customsd --config FILE [--check-config | -t]\n"
         "       customsd --version\n"
         "       customsd --help\n";
}

void help(std::ostream& out) {
  usage(out);
  out << "\n"
         "customsd: the Customs compliance filter for AI traffic.\n"
         "\n"
         "options:\n"
         "  -c, --config FILE    the daemon's YAML config (also --config=FILE)\n"
         "  -t, --check-config   load the config, its rule files and provider catalogue,\n"
         "                       report every error, and exit (0 valid, 1 invalid, 2 I/O)\n"
         "  -V, --version        print the version and exit\n"
         "  -h, --help           print this help and exit\n"
         "\n"
         "signals: SIGHUP reloads the config and rules; SIGTERM or SIGINT drains\n"
         "(a second one cuts the flows in flight).\n"
         "environment: NOTIFY_SOCKET, WATCHDOG_USEC (systemd Type=notify and WatchdogSec=).\n"
         "exit codes: 0 ok, 1 invalid config or rules, 2 usage or I/O error.\n";
}

void print_rules_error(const customs::daemon::enforce::rules_error& e) {
  for (const auto& d : e.diagnostics()) std::cerr << d.to_string() << "\n";
}

void print_config_error(const customs::daemon::config_error& e) {
  for (const auto& d : e.diagnostics()) std::cerr << d.to_string() << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace customs::daemon;
  std::string file;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a(argv[i]);
    if (a == "--version" || a == "-V") {
      std::cout << "customsd " << CUSTOMS_VERSION << "\n";
      return 0;
    }
    if (a == "--help" || a == "-h") {
      help(std::cout);
      return 0;
    }
    if (a == "--check-config" || a == "-t") {
      check = true;
    } else if ((a == "--config" || a == "-c") && i + 1 < argc) {
      file = argv[++i];
    } else if (a.starts_with("--config=")) {
      file = std::string(a.substr(9));
    } else {
      std::cerr << "customsd: unknown argument '" << a << "'\n";
      usage(std::cerr);
      return 2;
    }
  }
  if (file.empty()) {
    usage(std::cerr);
    return 2;
  }

  config cfg;
  try {
    cfg = load_config(file);
  } catch (const config_error& e) {
    print_config_error(e);
    return 1;
  } catch (const config_io_error& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  if (check) {
    std::string rules = "no rules";
    if (cfg.enforcing()) {
      try {
        const auto r = enforce::load_rules(cfg);
        rules = "rule set " + r.rules->id() + " " + r.rules->hash().substr(0, 12);
      } catch (const enforce::rules_error& e) {
        print_rules_error(e);
        return 1;
      }
    }
    std::string providers;
    if (cfg.has_edge_listener()) {
      try {
        const auto c = load_catalogue(cfg.providers);
        providers = ", " + std::to_string(c->entries().size()) + " catalogued hosts";
      } catch (const config_error& e) {
        print_config_error(e);
        return 1;
      } catch (const config_io_error& e) {
        std::cerr << e.what() << "\n";
        return 2;
      }
    }
    std::cout << file << ": ok (" << cfg.listeners.size() << " listeners, " << cfg.routes.size() << " routes, "
              << rules << providers << ")\n";
    return 0;
  }

  // Writes to a client or upstream that went away must fail with EPIPE, not
  // kill the process; a write past a file size limit (RLIMIT_FSIZE, systemd's
  // LimitFSIZE=) must fail with EFBIG (the audit trail then refuses records, as
  // on a full disk), not kill it.
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGXFSZ, SIG_IGN);
  // Every line in the config's format and level, from the first (the audit
  // trail's, written while the enforcer opens it).
  set_log_level(cfg.log.level);
  set_log_format(cfg.log.format);
  std::unique_ptr<enforce::enforcer> enf;
  try {
    server_options opts;
    if (cfg.enforcing()) {
      enf = std::make_unique<enforce::enforcer>(cfg);
      opts = enf->server_options();
    } else {
      log_line(log_level::warn, "not_enforcing")
          .kv("warning", "the config names no rules: customsd relays without inspection or audit");
    }
    opts.handle_signals = true;
    std::string notify_problem;
    opts.notify = service_notifier::from_environment(notify_problem);
    if (!notify_problem.empty()) log_line(log_level::warn, "notify_disabled").kv("error", notify_problem);
    server s(std::move(cfg), std::move(opts));
    if (enf) enf->install(s);
    s.start();
    s.wait();
  } catch (const enforce::rules_error& e) {
    print_rules_error(e);
    return 1;
  } catch (const config_error& e) {
    print_config_error(e);
    return 1;
  } catch (const std::exception& e) {
    log_line(log_level::error, "fatal").kv("error", e.what());
    std::cerr << "customsd: " << e.what() << "\n";
    return 2;
  }
  if (enf) enf->close();
  log_line(log_level::info, "stopped");
  return 0;
}
