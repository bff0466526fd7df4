#pragma once
// Shared pieces of customsd's integration tests: configs built in code, an
// in-process server, metric lookups, and customsd as a child process.

#include "daemon/config.hpp"
#include "daemon/server.hpp"
#include "proxy_client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace customs::testing {

inline daemon::route_config make_route(const std::string& prefix, const std::string& upstream,
                                       daemon::dialect api = daemon::dialect::openai) {
  daemon::route_config r;
  r.prefix = prefix;
  r.upstream = upstream;
  std::string why;
  if (!daemon::parse_upstream_url(upstream, r.url, why)) throw std::runtime_error(why);
  r.api = api;
  r.jurisdiction = "US";
  return r;
}

// One plain listener "edge" and the admin listener on free loopback ports.
inline daemon::config test_config(std::vector<daemon::route_config> routes = {}) {
  daemon::config c;
  c.listeners.push_back({"edge", "127.0.0.1", 0, std::nullopt, std::nullopt});
  c.admin = {"127.0.0.1", 0};
  c.routes = std::move(routes);
  c.threads = 1;
  c.log.level = daemon::log_level::error;
  c.log.flows = false;
  c.drain_timeout = std::chrono::seconds(5);
  return c;
}

// A loopback port nobody listens on (bound, then released).
inline std::uint16_t closed_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// customsd in-process.
class running_server {
 public:
  explicit running_server(daemon::config c, daemon::server_options o = {})
      : srv_(std::make_unique<daemon::server>(std::move(c), std::move(o))) {
    srv_->start();
  }
  ~running_server() {
    srv_->stop();
    srv_->wait();
  }
  [[nodiscard]] std::uint16_t port(std::string_view listener = "edge") const { return srv_->port(listener); }
  [[nodiscard]] std::uint16_t admin_port() const { return srv_->admin_port(); }
  [[nodiscard]] daemon::server& get() { return *srv_; }

 private:
  std::unique_ptr<daemon::server> srv_;
};

inline std::string scrape(std::uint16_t admin_port) {
  http_client c(admin_port);
  return c.request("GET", "/metrics").body;
}

// The value of one sample ("name{labels}" exactly as rendered), 0 when absent.
inline std::uint64_t metric(const std::string& text, const std::string& sample) {
  const auto at = text.find("\n" + sample + " ");
  if (at == std::string::npos) return 0;
  return std::stoull(text.substr(at + sample.size() + 2));
}

// The sample's value once it equals `expected` (polling up to 5 s), else its
// last value. Flow counters move just after the flow's last byte was sent.
inline std::uint64_t await_metric(std::uint16_t admin_port, const std::string& sample, std::uint64_t expected) {
  std::uint64_t v = 0;
  for (int i = 0; i < 250; ++i) {
    v = metric(scrape(admin_port), sample);
    if (v == expected) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return v;
}

// ---- customsd as a child process -------------------------------------------

// The customsd binary of this build, or CUSTOMSD_UNDER_TEST when set (to run
// a regression test against an older build).
inline std::string customsd_path() {
  if (const char* other = std::getenv("CUSTOMSD_UNDER_TEST"); other != nullptr && *other != 0) return other;
  return std::string(CUSTOMS_BINARY_DIR) + "/daemon/customsd";
}

struct process_result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs a program to its end (at most 30 s), capturing stdout and stderr.
inline process_result run_program(std::vector<std::string> args) {
  const auto dir = std::filesystem::temp_directory_path();
  const auto out_file = dir / ("customs-out-" + std::to_string(::getpid()));
  const auto err_file = dir / ("customs-err-" + std::to_string(::getpid()));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) throw std::runtime_error("spawn failed");
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  for (int i = 0; i < 3000; ++i) {
    if (::waitpid(pid, &status, WNOHANG) == pid) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (i == 2999) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
  }
  process_result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out_file);
  r.err = slurp(err_file);
  std::filesystem::remove(out_file);
  std::filesystem::remove(err_file);
  return r;
}

// customsd --config FILE running as a child; its stderr is read through a
// pipe by a thread of its own, so that a customsd that logs a lot never blocks
// on a full pipe while the test is not looking at its log.
class customsd_process {
 public:
  // `env`: NAME=value entries added to the test's environment.
  explicit customsd_process(const std::filesystem::path& config, const std::vector<std::string>& env = {}) {
    int fds[2];
    // Close-on-exec: other children (a second customsd) must not keep the pipe open.
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    // Not the test's own stdout: a customsd left behind by a test that died
    // must not hold CTest's output pipe open (CTest would wait for it until
    // the test's timeout instead of reporting the failure).
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    std::string bin = customsd_path(), flag = "--config", file = config.string();
    char* argv[] = {bin.data(), flag.data(), file.data(), nullptr};
    std::vector<std::string> env_strings = env;
    std::vector<char*> envp;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view have(*e);
      bool replaced = false;
      for (const auto& x : env) replaced = replaced || have.substr(0, have.find('=') + 1) == x.substr(0, x.find('=') + 1);
      if (!replaced) envp.push_back(*e);
    }
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv, envp.data()) != 0) throw std::runtime_error("spawn customsd");
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    err_ = fds[0];
    reader_ = std::thread([this] {
      char buf[4096];
      for (;;) {
        const ssize_t n = ::read(err_, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        std::lock_guard lock(mutex_);
        if (n <= 0) {
          eof_ = true;
          cv_.notify_all();
          return;
        }
        log_.append(buf, static_cast<std::size_t>(n));
        cv_.notify_all();
      }
    });
    try {
      const std::string listening = wait_for_log("event=listening", std::chrono::seconds(20));
      port_ = port_of(listening);
      admin_port_ = port_of(wait_for_log("event=admin_listening", std::chrono::seconds(5)));
    } catch (...) {
      // The destructor does not run for a half-made object: never leave an
      // orphan customsd holding the test runner's pipes.
      end();
      throw;
    }
  }
  ~customsd_process() { end(); }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::uint16_t admin_port() const { return admin_port_; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  void signal(int sig) { ::kill(pid_, sig); }

  // The first stderr line (from the start) that contains `needle`; throws after `timeout`.
  std::string wait_for_log(const std::string& needle, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(mutex_);
    for (;;) {
      std::size_t start = 0;
      while (true) {
        const auto nl = log_.find('\n', start);
        if (nl == std::string::npos) break;
        const std::string line = log_.substr(start, nl - start);
        if (line.find(needle) != std::string::npos && consumed_lines_.insert(start).second) return line;
        start = nl + 1;
      }
      if (cv_.wait_until(lock, until) == std::cv_status::timeout) {
        throw std::runtime_error("no log line with '" + needle + "'; log:\n" + log_);
      }
    }
  }

  // Waits for the process to end (at most `timeout`); its exit code, -1 otherwise.
  int wait_exit(std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    int st = 0;
    while (std::chrono::steady_clock::now() < until) {
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        // Keep what it wrote last: the pipe ends with the process.
        if (reader_.joinable()) reader_.join();
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
  [[nodiscard]] std::string log() const {
    std::lock_guard lock(mutex_);
    return log_;
  }

 private:
  void end() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
      pid_ = -1;
    }
    if (reader_.joinable()) reader_.join();
    if (err_ >= 0) ::close(err_);
    err_ = -1;
  }
  static std::uint16_t port_of(const std::string& line) {
    const auto at = line.find(" port=");
    if (at == std::string::npos) throw std::runtime_error("no port in: " + line);
    return static_cast<std::uint16_t>(std::stoul(line.substr(at + 6)));
  }
  pid_t pid_ = -1;
  int err_ = -1;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::string log_;  // guarded by mutex_
  bool eof_ = false;
  std::set<std::size_t> consumed_lines_;
  std::thread reader_;
  std::uint16_t port_ = 0, admin_port_ = 0;
};

inline std::filesystem::path test_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() /
           ("customs-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace customs::testing
