// Concurrent-streams probe for bench/proxy/run.sh (a benchmark, not a test).
//
// Opens --streams connections to 127.0.0.1:--port, sends one streamed chat
// completion on each, and waits until every stream has delivered its first SSE
// event, so that all of them are open at once inside the proxy. It then reads
// the resident memory (VmRSS, and the peak VmHWM) of --pid from /proc, prints
// one line, and closes every connection:
//   streams=N open=M rss_mib=.. hwm_mib=.. open_seconds=..
// The upstream should answer slowly (fake_provider --event-interval-ms large)
// so that the streams stay open while memory is read.
//
// Bounded: the run gives up after --max-seconds (default 120) and reports how
// many streams were open by then. Loopback only.

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

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t port = 0;
  int pid = 0;
  std::size_t streams = 10000;
  int max_seconds = 120;
  std::string path = "/openai/v1/chat/completions";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view a = argv[i];
    if (a == "--port") port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
    else if (a == "--pid") pid = std::atoi(argv[i + 1]);
    else if (a == "--streams") streams = static_cast<std::size_t>(std::atol(argv[i + 1]));
    else if (a == "--max-seconds") max_seconds = std::atoi(argv[i + 1]);
    else if (a == "--path") path = argv[i + 1];
    else die("unknown option " + std::string(a));
  }
  if (port == 0 || pid == 0) die("usage: hold_streams --port N --pid P [--streams N] [--path P] [--max-seconds S]");

  rlimit rl{};
  rl.rlim_cur = rl.rlim_max = streams + 256;
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) die("cannot raise the open-file limit to " + std::to_string(rl.rlim_cur));

  const std::string body = R"({"model":"bench","stream":true,"messages":[{"role":"user","content":"hold me"}]})";
  const std::string request = "POST " + path + " HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                              "Authorization: Bearer bench\r\nContent-Length: " + std::to_string(body.size()) +
                              "\r\n\r\n" + body;

  const int ep = ::epoll_create1(0);
  std::vector<stream> all(streams);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(max_seconds);
  std::size_t connected = 0, open = 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  epoll_event events[256];

  while (open < streams && std::chrono::steady_clock::now() < deadline) {
    // Connect in batches, so the proxy's accept queue never overflows.
    for (int batch = 0; batch < 200 && connected < streams && connected - open < 1000; ++batch) {
      stream& s = all[connected];
      s.fd = ::socket(AF_INET, SOCK_STREAM, 0);
      if (s.fd < 0) die("socket: " + std::string(std::strerror(errno)));
      if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        die("connect: " + std::string(std::strerror(errno)));
      if (::send(s.fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
        die("send");
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = connected;
      ::epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
      ++connected;
    }
    const int n = ::epoll_wait(ep, events, 256, 100);
    for (int i = 0; i < n; ++i) {
      stream& s = all[events[i].data.u64];
      char buf[4096];
      const ssize_t got = ::recv(s.fd, buf, sizeof buf, 0);
      if (got <= 0) die("stream " + std::to_string(events[i].data.u64) + " ended early");
      if (!s.open) {
        s.got.append(buf, static_cast<std::size_t>(got));
        if (s.got.find("\r\n200") == std::string::npos && s.got.rfind("HTTP/1.1 200", 0) != 0)
          die("stream answered: " + s.got.substr(0, s.got.find('\r')));
        if (s.got.find("data:") != std::string::npos) {
          s.open = true;
          s.got.clear();
          s.got.shrink_to_fit();
          ++open;
        }
      }
    }
  }
  const double open_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double rss = status_mib(pid, "VmRSS:");
  const double hwm = status_mib(pid, "VmHWM:");
  std::printf("streams=%zu open=%zu rss_mib=%.1f hwm_mib=%.1f open_seconds=%.1f\n", streams, open, rss, hwm,
              open_seconds);
  for (auto& s : all)
    if (s.fd >= 0) ::close(s.fd);
  return open == streams ? 0 : 1;
}
