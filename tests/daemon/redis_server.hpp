#pragma once
// A real redis-server (Debian package redis-server) for the tests, on a free
// loopback port, with its data in a temporary folder (append-only file, fsynced
// at every write so that a stop and start keep every count). Stopped and the
// folder removed at the end of the scope.

#include "daemon/config.hpp"
#include "daemon/volume/counter_store.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace customs::testing {

class redis_server {
 public:
  // tls: the server listens with TLS only, with this certificate (its CA is
  // what clients must trust); client certificates are not required.
  struct tls_files {
    std::filesystem::path cert, key, ca;
  };
  explicit redis_server(std::optional<tls_files> tls = std::nullopt) : tls_(std::move(tls)), dir_(std::filesystem::temp_directory_path() / ("customs-redis-" + std::to_string(::getpid()) + "-" + std::to_string(++serial()))) {
    std::filesystem::create_directories(dir_);
    {
      boost::asio::io_context ioc;
      boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
      port_ = a.local_endpoint().port();
    }
    start();
  }
  ~redis_server() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  static std::string binary() {
    for (const char* p : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"})
      if (::access(p, X_OK) == 0) return p;
    throw std::runtime_error("redis-server is not installed (tools/scripts/install-deps.sh installs it)");
  }

  void start() {
    if (pid_ > 0) return;
    std::vector<std::string> args = {binary(), "--port", tls_ ? "0" : std::to_string(port_), "--bind", "127.0.0.1",
                                     "--dir", dir_.string(), "--save", "", "--appendonly", "yes",
                                     "--appendfsync", "always", "--daemonize", "no", "--logfile",
                                     (dir_ / "redis.log").string()};
    if (tls_) {
      for (const auto& a : {std::string("--tls-port"), std::to_string(port_), std::string("--tls-cert-file"),
                            tls_->cert.string(), std::string("--tls-key-file"), tls_->key.string(),
                            std::string("--tls-ca-cert-file"), tls_->ca.string(), std::string("--tls-auth-clients"),
                            std::string("no")})
        args.push_back(a);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("cannot start redis-server");
  }

  // SIGKILL: the server dies mid-run, as a crash would take it.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string url() const {
    return (tls_ ? "rediss://127.0.0.1:" : "redis://127.0.0.1:") + std::to_string(port_);
  }

  [[nodiscard]] daemon::volumes_config config() const {
    daemon::volumes_config c;
    c.backend = daemon::volumes_config::backend_kind::redis;
    c.url = url();
    c.budget = std::chrono::milliseconds(500);
    return c;
  }

  // Waits (at most 10 s) until the store answers.
  bool wait_ready(daemon::volume::counter_store& s) const {
    for (int i = 0; i < 400; ++i) {
      std::uint64_t n = 0;
      if (!s.count("__probe__", 0, n)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }

 private:
  static int& serial() {
    static int n = 0;
    return n;
  }
  std::optional<tls_files> tls_;
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// A server that accepts Redis connections and reads what is sent, but never
// answers: Redis stalled (a long command, a full disk, a paused process), for
// the tests of what waits and what does not. Tells when a script arrived.
class silent_redis {
 public:
  silent_redis() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener_ < 0) throw std::runtime_error("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listener_, 16) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("bind/listen");
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~silent_redis() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    close_connections();
    thread_.join();
    ::close(listener_);
  }
  silent_redis(const silent_redis&) = delete;
  silent_redis& operator=(const silent_redis&) = delete;

  [[nodiscard]] std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  // Scripts (EVAL / EVALSHA) received so far.
  [[nodiscard]] int scripts() const { return scripts_.load(); }
  // Waits (at most `limit`) until at least n scripts arrived.
  bool wait_scripts(int n, std::chrono::milliseconds limit) const {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (scripts_.load() < n) {
      if (std::chrono::steady_clock::now() >= until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }
  // Closes every accepted connection (the client sees it drop).
  void close_connections() {
    std::lock_guard lock(mutex_);
    for (int fd : conns_) ::shutdown(fd, SHUT_RDWR);
  }

 private:
  void serve() {
    std::vector<std::thread> readers;
    while (!stopping_) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) break;
      {
        std::lock_guard lock(mutex_);
        conns_.push_back(fd);
      }
      readers.emplace_back([this, fd] {
        std::string seen;
        char buf[4096];
        while (!stopping_) {
          pollfd p{fd, POLLIN, 0};
          if (::poll(&p, 1, 100) <= 0) continue;
          const ssize_t n = ::read(fd, buf, sizeof buf);
          if (n <= 0) break;
          seen.append(buf, static_cast<std::size_t>(n));
          for (std::size_t at; (at = seen.find("EVAL")) != std::string::npos;) {
            ++scripts_;
            seen.erase(0, at + 4);
          }
          if (seen.size() > 8) seen.erase(0, seen.size() - 8);
        }
      });
    }
    for (auto& t : readers) t.join();
    std::lock_guard lock(mutex_);
    for (int fd : conns_) ::close(fd);
  }

  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> scripts_{0};
  std::mutex mutex_;
  std::vector<int> conns_;
  std::thread thread_;
};

}  // namespace customs::testing
