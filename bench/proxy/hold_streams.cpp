// Concurrent-streams probe for bench/proxy/run.sh (a benchmark, not a test).
//
// Opens --streams connections to 127.0.0.1:--port, sends one streamed chat
// completion on each, and waits until every stream has delivered its first SSE
// event, so that all of them are open at once inside the proxy. It then reads
// the resident memory (VmRSS, and the peak VmHWM) of --pid from /proc, prints
// one line, and closes every connection:
//   streams=N open=M rss_before_mib=.. rss_mib=.. hwm_mib=.. open_seconds=.. [error="..."]
// rss_before_mib is --pid's VmRSS before the first connection; rss_mib is read
// after every stream is open and they have all stayed open for --settle-ms
// (default 1000), so that the figure is not taken in the middle of a burst.
// The upstream should answer slowly (fake_provider --event-interval-ms large)
// so that the streams stay open while memory is read.
//
// Needs an open-file limit of at least --streams + 64 (raised to that if the
// hard limit allows; otherwise it stops with a clear message). The proxy needs
// twice as many (client and upstream side), which is the caller's business.
//
// Bounded: the run gives up after --max-seconds (default 120) and reports how
// many streams were open by then; each connect waits at most 10 s. A stream that
// is refused (a status other than 200) or ends while it should stay open stops
// the run with error="...". Exit 0 only when every stream was open. Loopback only.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "hold_streams: %s\n", why.c_str());
  std::exit(2);
}

// "VmRSS:   12345 kB" -> MiB
double status_mib(int pid, std::string_view key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::strtod(line.c_str() + key.size() + 1, nullptr) / 1024.0;
  }
  return -1;
}

struct stream {
  int fd = -1;
  std::string got;
  bool open = false;  // first SSE event received
};

std::string status_line(const std::string& got) { return got.substr(0, got.find('\r')); }

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t port = 0;
  int pid = 0;
  std::size_t streams = 10000;
  int max_seconds = 120;
  int settle_ms = 1000;
  std::string path = "/openai/v1/chat/completions";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view a = argv[i];
    if (a == "--port") port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
    else if (a == "--pid") pid = std::atoi(argv[i + 1]);
    else if (a == "--streams") streams = static_cast<std::size_t>(std::atol(argv[i + 1]));
    else if (a == "--max-seconds") max_seconds = std::atoi(argv[i + 1]);
    else if (a == "--path") path = argv[i + 1];
    else if (a == "--settle-ms") settle_ms = std::atoi(argv[i + 1]);
    else die("unknown option " + std::string(a));
  }
  if (port == 0 || pid == 0) die("usage: hold_streams --port N --pid P [--streams N] [--path P] [--max-seconds S] [--settle-ms MS]");

  // Raise only the soft limit: lowering the hard one could not be undone, and
  // raising it needs privileges.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) die("getrlimit: " + std::string(std::strerror(errno)));
  const rlim_t needed = static_cast<rlim_t>(streams) + 64;
  if (rl.rlim_cur < needed) {
    if (rl.rlim_max < needed)
      die("the open-file hard limit is " + std::to_string(rl.rlim_max) + ", " + std::to_string(needed) +
          " are needed for " + std::to_string(streams) + " streams");
    rl.rlim_cur = needed;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) die("setrlimit: " + std::string(std::strerror(errno)));
  }

  const std::string body = R"({"model":"bench","stream":true,"messages":[{"role":"user","content":"hold me"}]})";
  const std::string request = "POST " + path + " HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                              "Authorization: Bearer bench\r\nContent-Length: " + std::to_string(body.size()) +
                              "\r\n\r\n" + body;

  const int ep = ::epoll_create1(0);
  if (ep < 0) die("epoll_create1: " + std::string(std::strerror(errno)));
  std::vector<stream> all(streams);
  const double rss_before = status_mib(pid, "VmRSS:");
  std::string error;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(max_seconds);
  std::size_t connected = 0, open = 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  epoll_event events[256];

  // Reads what arrived on the ready streams; false (and `error`) when one was
  // refused or ended.
  const auto poll_once = [&](int timeout_ms) -> bool {
    const int n = ::epoll_wait(ep, events, 256, timeout_ms);
    for (int i = 0; i < n; ++i) {
      stream& s = all[events[i].data.u64];
      char buf[4096];
      const ssize_t got = ::recv(s.fd, buf, sizeof buf, 0);
      if (got <= 0) {
        error = "stream " + std::to_string(events[i].data.u64) + " ended " + (s.open ? "while open" : "before its first event") +
                (got < 0 ? ": " + std::string(std::strerror(errno)) : std::string()) +
                (s.got.empty() ? std::string() : " (answer: " + status_line(s.got) + ")");
        return false;
      }
      if (s.open) continue;  // later events are read and dropped
      s.got.append(buf, static_cast<std::size_t>(got));
      if (s.got.size() >= 12 && s.got.compare(0, 12, "HTTP/1.1 200") != 0) {
        error = "stream " + std::to_string(events[i].data.u64) + " answered: " + status_line(s.got);
        return false;
      }
      if (s.got.find("\r\n\r\n") != std::string::npos && s.got.find("data:") != std::string::npos) {
        s.open = true;
        s.got.clear();
        s.got.shrink_to_fit();
        ++open;
      }
    }
    return true;
  };

  while (error.empty() && open < streams && std::chrono::steady_clock::now() < deadline) {
    // Connect in batches, so the proxy's accept queue never overflows.
    for (int batch = 0; batch < 200 && connected < streams && connected - open < 1000; ++batch) {
      stream& s = all[connected];
      s.fd = ::socket(AF_INET, SOCK_STREAM, 0);
      if (s.fd < 0) die("socket: " + std::string(std::strerror(errno)));
      timeval connect_wait{10, 0};  // SO_SNDTIMEO bounds a blocking connect on Linux
      ::setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &connect_wait, sizeof connect_wait);
      if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        error = "connect " + std::to_string(connected) + ": " + std::strerror(errno);
        break;
      }
      if (::send(s.fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
        error = "send " + std::to_string(connected) + ": " + std::strerror(errno);
        break;
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = connected;
      if (::epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev) != 0) die("epoll_ctl: " + std::string(std::strerror(errno)));
      ++connected;
    }
    if (!error.empty()) break;
    (void)poll_once(100);
  }
  const double open_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Hold them all for settle_ms; a stream that ends meanwhile is an error.
  const auto settle_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(settle_ms);
  while (error.empty() && open == streams && std::chrono::steady_clock::now() < settle_until) {
    if (!poll_once(50)) break;
  }
  if (error.empty() && open < streams) error = "only " + std::to_string(open) + " streams open after " + std::to_string(max_seconds) + " s";
  const double rss = status_mib(pid, "VmRSS:");
  const double hwm = status_mib(pid, "VmHWM:");
  std::printf("streams=%zu open=%zu rss_before_mib=%.1f rss_mib=%.1f hwm_mib=%.1f open_seconds=%.1f%s\n", streams, open,
              rss_before, rss, hwm, open_seconds, error.empty() ? "" : (" error=\"" + error + "\"").c_str());
  for (auto& s : all)
    if (s.fd >= 0) ::close(s.fd);
  return error.empty() && open == streams ? 0 : 1;
}
