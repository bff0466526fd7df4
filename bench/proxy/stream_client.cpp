// Streaming latency probe for bench/proxy/run.sh (a benchmark, not a test).
//
// Sends `--requests` streamed chat completions, one after the other on one
// keep-alive connection, to 127.0.0.1:--port --path. The upstream (fake_provider
// --stamp) writes "customs_sent_ns":<CLOCK_MONOTONIC ns> into every chunk just
// before sending it; this client takes CLOCK_MONOTONIC when the bytes completing
// the event arrive. Same host, same clock: receive minus sent is the delivery
// latency of each event. Run once directly against the upstream and once through
// customsd, the difference is what customsd adds per event.
//
// Through an enforcing customsd each event is still forwarded when it arrives,
// but with only the text that is already safe (a partial word is held until a
// later event shows no match can cover it). The per-event figure is therefore
// the processing delay of the event that carries the text, measured against
// that event's own stamp; the hold-back (how long text waits for later upstream
// events) is excluded here and reported by customsd's customs_hold_back_seconds
// histogram. Text still held when a channel closes is sent as an extra delta
// event right before the closing event; that event copies the members of the
// channel's first chunk, stamp included, so a stamp not newer than one already
// seen in the stream marks such a flush event: it is measured against the stamp
// of the next event (the one whose arrival released it) and counted as
// flushed=N.
//
// Prints one line:
//   requests=N events=M flushed=F ttfb_p50_us=.. ttfb_p99_us=.. event_p50_us=.. event_p99_us=.. event_max_us=..
// TTFB is request written -> response head received.
//
// Bounded: every receive waits at most 10 s; the whole run stops after
// --max-seconds (default 60).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "stream_client: %s\n", why.c_str());
  std::exit(2);
}

double percentile(std::vector<std::int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto idx = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return static_cast<double>(v[std::min(idx, v.size() - 1)]) / 1000.0;
}

class connection {
 public:
  explicit connection(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) die("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect: " + std::string(std::strerror(errno)));
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~connection() { ::close(fd_); }
  void write_all(std::string_view s) {
    while (!s.empty()) {
      const ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) die("send: " + std::string(std::strerror(errno)));
      s.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  // Appends what arrives to buf; returns the arrival time.
  std::int64_t read_more(std::string& buf) {
    char tmp[16384];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    const std::int64_t t = now_ns();
    if (n == 0) die("connection closed by the server");
    if (n < 0) die("recv: " + std::string(std::strerror(errno)));
    buf.append(tmp, static_cast<std::size_t>(n));
    return t;
  }

 private:
  int fd_ = -1;
};

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t port = 0;
  std::string path = "/v1/chat/completions";
  int requests = 200;
  int max_seconds = 60;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view k(argv[i]);
    if (k == "--port") port = static_cast<std::uint16_t>(std::atoi(argv[i + 1]));
    else if (k == "--path") path = argv[i + 1];
    else if (k == "--requests") requests = std::atoi(argv[i + 1]);
    else if (k == "--max-seconds") max_seconds = std::atoi(argv[i + 1]);
    else die("unknown option " + std::string(k));
  }
  if (port == 0) die("usage: stream_client --port P [--path /v1/chat/completions] [--requests N] [--max-seconds S]");

  const std::string body =
      R"({"model":"bench","stream":true,"messages":[{"role":"user","content":"measure me"}]})";
  const std::string request = "POST " + path +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Authorization: Bearer bench\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  constexpr std::string_view stamp = "\"customs_sent_ns\":";
  std::vector<std::int64_t> ttfb, event_latency;
  connection c(port);
  const std::int64_t stop_at = now_ns() + static_cast<std::int64_t>(max_seconds) * 1'000'000'000;
  std::string in;
  int done = 0;
  std::size_t flushed = 0;
  for (; done < requests && now_ns() < stop_at; ++done) {
    in.clear();
    const std::int64_t sent = now_ns();
    c.write_all(request);
    // Head.
    std::size_t head_end;
    std::int64_t t = 0;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) t = c.read_more(in);
    ttfb.push_back(t - sent);
    if (in.compare(0, 12, "HTTP/1.1 200") != 0) die("unexpected status: " + in.substr(0, in.find("\r\n")));
    std::string head = in.substr(0, head_end);
    for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (head.find("transfer-encoding: chunked") == std::string::npos) die("expected a chunked response");
    std::string raw = in.substr(head_end + 4);
    // Chunked body: decode, and split the SSE text into events at blank lines.
    std::string sse;
    std::size_t scanned = 0;
    bool finished = false;
    std::int64_t arrival = t;
    std::int64_t newest_stamp = 0;                // of this stream
    std::vector<std::int64_t> flush_arrivals;     // flush events waiting for the next stamp
    while (!finished) {
      // Decode every complete chunk in raw.
      for (;;) {
        const auto line_end = raw.find("\r\n");
        if (line_end == std::string::npos) break;
        const std::size_t size = std::strtoul(raw.c_str(), nullptr, 16);
        if (raw.size() < line_end + 2 + size + 2) break;
        sse.append(raw, line_end + 2, size);
        raw.erase(0, line_end + 2 + size + 2);
        if (size == 0) {
          finished = true;
          break;
        }
      }
      // Every newly complete event arrived now.
      for (;;) {
        const auto end = sse.find("\n\n", scanned);
        if (end == std::string::npos) break;
        const std::string_view ev(sse.data() + scanned, end - scanned);
        const auto at = ev.find(stamp);
        if (at != std::string_view::npos) {
          const std::int64_t sent_ns = std::strtoll(ev.data() + at + stamp.size(), nullptr, 10);
          if (sent_ns <= newest_stamp) {
            flush_arrivals.push_back(arrival);
            ++flushed;
          } else {
            for (const std::int64_t a : flush_arrivals) event_latency.push_back(a - sent_ns);
            flush_arrivals.clear();
            event_latency.push_back(arrival - sent_ns);
            newest_stamp = sent_ns;
          }
        }
        scanned = end + 2;
      }
      if (!finished) arrival = c.read_more(raw);
    }
  }
  std::printf("requests=%d events=%zu flushed=%zu ttfb_p50_us=%.1f ttfb_p99_us=%.1f event_p50_us=%.1f event_p99_us=%.1f event_max_us=%.1f\n",
              done, event_latency.size(), flushed, percentile(ttfb, 0.5), percentile(ttfb, 0.99),
              percentile(event_latency, 0.5), percentile(event_latency, 0.99),
              percentile(event_latency, 1.0));
  return event_latency.empty() ? 1 : 0;
}
