// customsd as a process: command line, exit codes, config errors on stderr,
// SIGHUP reload and SIGTERM with nothing in flight.
#include "harness.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

using namespace customs::testing;

namespace {

std::filesystem::path write_config(const std::string& name, const std::string& text) {
  const auto p = test_dir("process") / name;
  std::ofstream(p) << text;
  return p;
}

std::string config_text(const std::string& routes, const std::string& extra = {}) {
  return "version: 1\n"
         "listeners:\n"
         "  - {name: edge, address: 127.0.0.1, port: 0}\n"
         "admin: {address: 127.0.0.1, port: 0}\n"
         "routes:\n" + routes +
         "threads: 1\n"
         "drain_timeout: 5s\n" + extra;
}

}  // namespace

TEST_CASE("process: --version, usage errors and missing files") {
  auto r = run_program({customsd_path(), "--version"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.starts_with("customsd "));
  r = run_program({customsd_path()});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("usage: customsd") != std::string::npos);
  r = run_program({customsd_path(), "--bogus"});
  CHECK(r.exit_code == 2);
  r = run_program({customsd_path(), "--config", "/nonexistent/customsd.yaml", "--check-config"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("/nonexistent/customsd.yaml: error: E_IO") != std::string::npos);
}

TEST_CASE("process: --check-config accepts a valid file and lists every error of an invalid one") {
  const auto good = write_config("good.yaml", config_text("  - {prefix: /openai/, upstream: \"http://127.0.0.1:9\", dialect: openai, jurisdiction: US}\n"));
  auto r = run_program({customsd_path(), "--config", good.string(), "--check-config"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("ok") != std::string::npos);

  const auto bad = write_config("bad.yaml", config_text(
      "  - {prefix: /openai/, upstream: \"http://127.0.0.1:9\", dialect: openai, jurisdiction: US, colour: red}\n"
      "  - {prefix: /b/, upstream: \"gopher://x\", dialect: openai, jurisdiction: US}\n",
      "limits: {idle_timeout: 5}\n"));
  r = run_program({customsd_path(), "--config", bad.string(), "--check-config"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find(bad.string() + ":6:91: error: E_UNKNOWN_KEY: unknown key 'routes[0].colour'") != std::string::npos);
  CHECK(r.err.find(bad.string() + ":7:29: error: E_VALUE: routes[1].upstream: scheme must be http or https") != std::string::npos);
  CHECK(r.err.find(bad.string() + ":10:24: error: E_TYPE: limits.idle_timeout") != std::string::npos);
  // Running with it fails the same way.
  r = run_program({customsd_path(), "--config", bad.string()});
  CHECK(r.exit_code == 1);
}

TEST_CASE("process: a listener that cannot bind is an I/O error (exit 2)") {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor taken(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const auto port = taken.local_endpoint().port();
  const auto cfg = write_config("busy.yaml",
      "version: 1\nlisteners:\n  - {name: edge, address: 127.0.0.1, port: " + std::to_string(port) +
      "}\nadmin: {address: 127.0.0.1, port: 0}\nroutes: []\n");
  const auto r = run_program({customsd_path(), "--config", cfg.string()});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("cannot listen") != std::string::npos);
}

TEST_CASE("process: SIGHUP reloads routes and logs the change, a broken file keeps the running config") {
  const std::string closed = std::to_string(closed_port());
  const auto file = write_config("reload.yaml", config_text("  - {prefix: /a/, upstream: \"http://127.0.0.1:" + closed + "\", dialect: openai, jurisdiction: US}\n"));
  customsd_process p(file);
  {
    http_client c(p.port());
    CHECK(c.request("GET", "/b/x").status == 404);
  }
  std::ofstream(file) << config_text(
      "  - {prefix: /a/, upstream: \"http://127.0.0.1:" + closed + "\", dialect: openai, jurisdiction: US}\n"
      "  - {prefix: /b/, upstream: \"http://127.0.0.1:" + closed + "\", dialect: gemini, jurisdiction: DE}\n");
  p.signal(SIGHUP);
  const auto change = p.wait_for_log("event=reload_change", std::chrono::seconds(10));
  CHECK(change.find("route added: /b/") != std::string::npos);
  p.wait_for_log("event=reloaded", std::chrono::seconds(10));
  {
    http_client c(p.port());
    const auto r = c.request("GET", "/b/x");
    CHECK(r.status == 502);  // routed now (to a closed port), in Gemini's shape
    CHECK(r.body.find("\"status\":\"UNAVAILABLE\"") != std::string::npos);
  }
  // A broken file: reported, and /b/ still routes.
  std::ofstream(file) << "version: 1\nlisteners: nope\n";
  p.signal(SIGHUP);
  const auto failed = p.wait_for_log("event=reload_failed", std::chrono::seconds(10));
  CHECK(failed.find("E_TYPE") != std::string::npos);
  {
    http_client c(p.port());
    CHECK(c.request("GET", "/b/x").status == 502);
  }
  http_client admin(p.admin_port());
  const auto m = admin.request("GET", "/metrics").body;
  CHECK(metric(m, R"(customs_reloads_total{result="ok"})") == 1);
  CHECK(metric(m, R"(customs_reloads_total{result="failed"})") == 1);
  p.signal(SIGTERM);
  CHECK(p.wait_exit(std::chrono::seconds(10)) == 0);
}

TEST_CASE("process: the shipped configs are valid") {
  for (const char* name : {"config/customsd.yaml", "config/providers.example.yaml"}) {
    const auto r = run_program({customsd_path(), "--config", std::string(CUSTOMS_SOURCE_DIR) + "/" + name, "--check-config"});
    INFO(name << ": " << r.err);
    CHECK(r.exit_code == 0);
  }
}

TEST_CASE("process: customsd's threads are named (top -H, perf and /proc tell them apart)") {
  const auto file = write_config("threads.yaml", std::string("version: 1\n"
                                                             "listeners:\n"
                                                             "  - {name: edge, address: 127.0.0.1, port: 0}\n"
                                                             "admin: {address: 127.0.0.1, port: 0}\n"
                                                             "routes:\n"
                                                             "  - {prefix: /a/, upstream: \"http://127.0.0.1:" +
                                                             std::to_string(closed_port()) +
                                                             "\", dialect: openai, jurisdiction: US}\n"
                                                             "threads: 2\n"
                                                             "drain_timeout: 5s\n"));
  customsd_process p(file);
  std::multiset<std::string> names;
  for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(p.pid()) + "/task")) {
    std::ifstream in(t.path() / "comm");
    std::string name;
    std::getline(in, name);
    names.insert(name);
  }
  CHECK(names.count("customs-w0") == 1);
  CHECK(names.count("customs-w1") == 1);
  CHECK(names.count("customs-control") == 1);
  p.signal(SIGTERM);
  CHECK(p.wait_exit(std::chrono::seconds(10)) == 0);
}
