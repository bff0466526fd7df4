#pragma once
// Shared pieces of the hostile-input suite: customsd as a child process in
// front of the fake provider or a raw scripted upstream, raw client bytes in
// and a parsed response out, and the checks every test makes: what the client
// got, what reached the upstream, and that the process still serves.

#include "harness.hpp"
#include "tests/support/fake_provider.hpp"

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace customs::testing::hostile {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline std::string route_line(const std::string& prefix, std::uint16_t upstream_port,
                              const std::string& dialect = "openai") {
  return "  - {prefix: " + prefix + ", upstream: \"http://127.0.0.1:" + std::to_string(upstream_port) +
         "\", dialect: " + dialect + ", jurisdiction: US}\n";
}

// A config relaying /openai/ to the upstream (no enforcement), one worker;
// `limits` holds "key: value" lines of the limits mapping, `extra` top-level
// lines.
inline std::string relay_config(std::uint16_t upstream_port, const std::string& limits = {},
                                const std::string& extra = {}) {
  std::string s =
      "version: 1\n"
      "listeners:\n"
      "  - {name: edge, address: 127.0.0.1, port: 0}\n"
      "admin: {address: 127.0.0.1, port: 0}\n"
      "routes:\n" +
      route_line("/openai/", upstream_port) +
      "threads: 1\n"
      "drain_timeout: 5s\n"
      "log: {level: info, flows: false}\n";
  if (!limits.empty()) {
    s += "limits:\n";
    std::size_t start = 0;
    while (start < limits.size()) {
      const auto nl = limits.find('\n', start);
      s += "  " + limits.substr(start, nl == std::string::npos ? std::string::npos : nl - start) + "\n";
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
  return s + extra;
}

inline fs::path write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  return p;
}

// customsd --config <text> as a child process.
class daemon_under_test {
 public:
  explicit daemon_under_test(const std::string& config_text, const std::string& name = "hostile")
      : file_(write_file(test_dir(name) / ("customsd-" + std::to_string(++serial()) + ".yaml"), config_text)),
        p_(file_) {}
  [[nodiscard]] std::uint16_t port() const { return p_.port(); }
  [[nodiscard]] std::uint16_t admin_port() const { return p_.admin_port(); }
  [[nodiscard]] customsd_process& process() { return p_; }
  [[nodiscard]] const fs::path& file() const { return file_; }
  [[nodiscard]] std::string metrics() const { return scrape(p_.admin_port()); }

 private:
  static int& serial() {
    static int n = 0;
    return n;
  }
  fs::path file_;
  customsd_process p_;
};

// What came back for raw request bytes.
struct raw_reply {
  unsigned status = 0;  // 0: no complete response (the connection closed or timed out)
  http_response response;
  std::string raw;  // every byte received
  bool closed = false;  // the server closed the connection after the response(s)
  std::size_t sent = 0;  // request bytes the server took before answering or closing
};

// Parses every complete response in `raw` (one per pipelined request).
inline std::vector<http_response> parse_responses(std::string_view raw) {
  std::vector<http_response> out;
  while (!raw.empty()) {
    boost::beast::http::response_parser<boost::beast::http::string_body> p;
    p.body_limit(64 << 20);
    p.eager(true);
    boost::system::error_code ec;
    const std::size_t n = p.put(boost::asio::buffer(raw.data(), raw.size()), ec);
    if (ec || !p.is_done()) break;
    http_response r;
    r.status = p.get().result_int();
    r.headers = p.get().base();
    r.body = p.get().body();
    r.keep_alive = p.get().keep_alive();
    out.push_back(std::move(r));
    raw.remove_prefix(n);
  }
  return out;
}

// Sends `bytes` on a new connection, stopping when the server answers or
// closes (as a client would that sees its request refused; with
// `stop_on_answer` false it goes on sending, as a pipelining client does), then
// reads until `responses` responses are complete, the server closes, or
// `timeout`.
inline raw_reply exchange(std::uint16_t port, std::string_view bytes, std::size_t responses = 1,
                          bool stop_on_answer = true, std::chrono::milliseconds timeout = 10s) {
  raw_reply out;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const auto until = std::chrono::steady_clock::now() + timeout;
  bool writing = true;
  char buf[65536];
  std::size_t complete = 0, parsed = 0;  // responses complete so far, and the bytes they took
  const auto count_complete = [&] {
    for (;;) {
      boost::beast::http::response_parser<boost::beast::http::string_body> sp;
      sp.body_limit(64 << 20);
      sp.eager(true);
      boost::system::error_code ec;
      const std::string_view rest = std::string_view(out.raw).substr(parsed);
      const std::size_t n = sp.put(boost::asio::buffer(rest.data(), rest.size()), ec);
      if (ec || !sp.is_done()) return;
      parsed += n;
      ++complete;
    }
  };
  for (;;) {
    if (writing && out.sent == bytes.size()) writing = false;
    count_complete();
    if (!writing && complete >= responses) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, static_cast<short>(POLLIN | (writing ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    if (writing && (p.revents & POLLOUT) && !(p.revents & (POLLHUP | POLLERR))) {
      const std::size_t chunk = std::min<std::size_t>(bytes.size() - out.sent, 16384);
      const ssize_t n = ::send(fd, bytes.data() + out.sent, chunk, MSG_NOSIGNAL);
      if (n < 0) writing = false;
      else out.sent += static_cast<std::size_t>(n);
      if (!(p.revents & POLLIN)) continue;
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        out.closed = true;
        break;
      }
      out.raw.append(buf, static_cast<std::size_t>(n));
      if (stop_on_answer) writing = false;  // the server answered: stop sending
      continue;
    }
  }
  auto all = parse_responses(out.raw);
  if (!out.closed && !(complete > 0 && !all.empty() && all.back().keep_alive)) {
    // The last response did not keep the connection: closed right after it?
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) > 0) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) out.closed = true;
      else out.raw.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  all = parse_responses(out.raw);
  if (!all.empty()) {
    out.status = all.front().status;
    out.response = all.front();
  }
  return out;
}

// The process still answers requests (an unknown route: 404), and never
// reported an abort.
inline bool serving(daemon_under_test& d) {
  try {
    http_client c(d.port(), 5s);
    return c.request("GET", "/no-such-route/").status == 404;
  } catch (const std::exception&) {
    return false;
  }
}

// A chunked request to the chat route: the body in one chunk, then `tail`
// (the last chunk's line, trailers and final CRLF).
inline std::string chunked_request(const std::string& body, const std::string& tail = "0\r\n\r\n",
                                   const std::string& extra_headers = {}) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx", body.size());
  return "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: customs.test\r\nContent-Type: application/json\r\n" +
         extra_headers + "Transfer-Encoding: chunked\r\n\r\n" + size + "\r\n" + body + "\r\n" + tail;
}

inline const std::string& chat_json() {
  static const std::string s = R"({"model":"m","messages":[{"role":"user","content":"hello"}]})";
  return s;
}

inline std::string content_length_request(const std::string& body, const std::string& extra_headers = {},
                                          const std::string& target = "/openai/v1/chat/completions") {
  return "POST " + target + " HTTP/1.1\r\nHost: customs.test\r\nContent-Type: application/json\r\n" + extra_headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// A header name found in any request the provider recorded.
inline bool provider_saw_header(const fake_provider& p, std::string_view name) {
  for (const auto& r : p.requests()) {
    for (const auto& [k, v] : r.headers) {
      if (boost::beast::iequals(k, name)) return true;
    }
  }
  return false;
}

// An upstream that answers every request with scripted bytes, recording the
// raw requests it received; for misbehaviour a real provider would not show.
class raw_upstream {
 public:
  // Each connection: read one request (head and Content-Length body), send
  // reply(n) for the n-th request overall, then close when close_after.
  explicit raw_upstream(std::function<std::string(std::size_t)> reply, bool close_after = false)
      : reply_(std::move(reply)), close_after_(close_after) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd_, 16) != 0) {
      throw std::runtime_error("raw_upstream: bind");
    }
    socklen_t len = sizeof sa;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~raw_upstream() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::size_t connections() const { return connections_.load(); }
  [[nodiscard]] std::vector<std::string> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++connections_;
      serve(c);
      ::close(c);
    }
  }
  void serve(int c) {
    std::string in;
    char buf[65536];
    while (!stop_) {
      // One request: the head, then Content-Length bytes.
      std::size_t head_end;
      while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
        pollfd p{c, POLLIN, 0};
        if (::poll(&p, 1, 5000) <= 0) return;
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) return;
        in.append(buf, static_cast<std::size_t>(n));
      }
      std::size_t length = 0;
      const auto cl = in.find("Content-Length: ");
      if (cl != std::string::npos && cl < head_end) length = std::stoul(in.substr(cl + 16));
      while (in.size() < head_end + 4 + length) {
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) return;
        in.append(buf, static_cast<std::size_t>(n));
      }
      std::size_t index;
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(in.substr(0, head_end + 4 + length));
        index = requests_.size() - 1;
      }
      in.erase(0, head_end + 4 + length);
      const std::string out = reply_(index);
      std::size_t sent = 0;
      while (sent < out.size()) {
        const ssize_t n = ::send(c, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return;
        sent += static_cast<std::size_t>(n);
      }
      if (close_after_) return;
    }
  }

  std::function<std::string(std::size_t)> reply_;
  bool close_after_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> connections_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

// A complete chunked answer: JSON body in one chunk, then `tail`.
inline std::string chunked_answer(const std::string& body, const std::string& tail = "0\r\n\r\n",
                                  const std::string& extra_headers = {}) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx", body.size());
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra_headers +
         "Transfer-Encoding: chunked\r\n\r\n" + size + "\r\n" + body + "\r\n" + tail;
}

inline std::string content_length_answer(const std::string& body, const std::string& extra_headers = {}) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra_headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// The metric series of a limit's hits.
inline std::string hits(const std::string& key) { return "customs_limit_hits_total{limit=\"" + key + "\"}"; }

}  // namespace customs::testing::hostile
