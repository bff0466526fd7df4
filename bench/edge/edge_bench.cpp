// edge_bench: the client side and the helper servers of the edge benchmark
// (bench/edge/run.sh). Not a test: it prints figures.
//
//   edge_bench handshakes PROXY_PORT CA HOST_FMT NHOSTS CONNS THREADS [PORT]
//       CONNS connections through a forward proxy (CONNECT HOST:PORT, 443 by default, TLS
//       handshake verified against CA, close), THREADS at a time; HOST_FMT
//       contains one %d, replaced by i % NHOSTS (NHOSTS distinct names: a cold
//       leaf cache when NHOSTS >= CONNS). Prints connections/s and the p50 and
//       p99 time from connect to handshake done.
//   edge_bench requests PORT CA HOST N [connect TARGET_PORT]
//       N non-streamed chat completions on one kept-alive TLS connection: to
//       PORT directly (a reverse listener with TLS for HOST), or with
//       `connect` through a forward proxy at PORT (CONNECT HOST:TARGET_PORT). Prints
//       requests/s and the p50 request time.
//   edge_bench transfer PORT BYTES up|down [connect AUTHORITY]
//       BYTES through a data server (see serve) at PORT, or through a forward
//       proxy at PORT to AUTHORITY. Prints MB/s.
//   edge_bench hold PORT N AUTHORITY
//       N idle tunnels through a forward proxy; prints "holding N" and keeps
//       them until stdin closes.
//   edge_bench serve PORT
//       The data server: per connection, 'U' then bytes until EOF (answers
//       with one byte at the end), 'D' + 8-byte big-endian N (sends N bytes),
//       'I' (holds the connection until EOF).
//   edge_bench relay PORT TARGET_PORT
//       A plain TCP relay (read/write through a 64 KiB user-space buffer per
//       direction): the baseline for tunnels.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "edge_bench: %s\n", m.c_str());
  std::exit(2);
}

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect: " + std::string(std::strerror(errno)));
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) die("send: " + std::string(std::strerror(errno)));
    p += k;
    n -= static_cast<std::size_t>(k);
  }
}

// Sends CONNECT and reads the answer's head byte by byte (nothing past it).
void proxy_connect(int fd, const std::string& authority) {
  const std::string r = "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
  write_all(fd, r.data(), r.size());
  std::string head;
  char c;
  while (head.size() < 4096 && head.find("\r\n\r\n") == std::string::npos) {
    if (::recv(fd, &c, 1, 0) != 1) die("CONNECT: connection closed");
    head += c;
  }
  if (head.rfind("HTTP/1.1 200", 0) != 0 && head.rfind("HTTP/1.0 200", 0) != 0) die("CONNECT refused: " + head.substr(0, 40));
}

SSL_CTX* client_ctx(const char* ca) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (SSL_CTX_load_verify_file(ctx, ca) != 1) die(std::string("cannot load ") + ca);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);  // every handshake a full one
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  static constexpr unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
  return ctx;
}

SSL* tls_over(SSL_CTX* ctx, int fd, const std::string& host) {
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, host.c_str());
  SSL_set1_host(ssl, host.c_str());
  if (SSL_connect(ssl) != 1) {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    die("TLS handshake with " + host + ": " + buf);
  }
  return ssl;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

int handshakes(int argc, char** argv) {
  if (argc < 8) die("usage: handshakes PROXY_PORT CA HOST_FMT NHOSTS CONNS THREADS");
  const auto port = static_cast<std::uint16_t>(std::stoi(argv[2]));
  const char* ca = argv[3];
  const std::string fmt = argv[4];
  const int nhosts = std::stoi(argv[5]);
  const int conns = std::stoi(argv[6]);
  const int threads = std::stoi(argv[7]);
  const std::string target_port = argc > 8 ? argv[8] : "443";
  SSL_CTX* ctx = client_ctx(ca);
  std::atomic<int> next{0};
  std::mutex m;
  std::vector<double> times;
  const auto t0 = clock_type::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      std::vector<double> mine;
      for (int i = next++; i < conns; i = next++) {
        char host[256];
        std::snprintf(host, sizeof host, fmt.c_str(), i % nhosts);
        const auto s = clock_type::now();
        const int fd = connect_to(port);
        proxy_connect(fd, std::string(host) + ":" + target_port);
        SSL* ssl = tls_over(ctx, fd, host);
        mine.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - s).count());
        SSL_shutdown(ssl);
        SSL_free(ssl);
        ::close(fd);
      }
      std::lock_guard lock(m);
      times.insert(times.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : ts) t.join();
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::printf("handshakes=%d seconds=%.3f per_second=%.1f p50_ms=%.2f p99_ms=%.2f\n", conns, secs, conns / secs,
              percentile(times, 0.5), percentile(times, 0.99));
  return 0;
}

// Reads one HTTP response with Content-Length; returns its status.
int read_response(SSL* ssl) {
  std::string r;
  char buf[16384];
  for (;;) {
    const int n = SSL_read(ssl, buf, sizeof buf);
    if (n <= 0) die("read: connection closed");
    r.append(buf, static_cast<std::size_t>(n));
    const auto end = r.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    const auto cl = r.find("Content-Length: ");
    if (cl == std::string::npos || cl > end) die("no Content-Length: " + r.substr(0, 200));
    if (r.size() >= end + 4 + std::stoul(r.substr(cl + 16))) return std::stoi(r.substr(9, 3));
  }
}

int requests(int argc, char** argv) {
  if (argc < 6) die("usage: requests PORT CA HOST N [connect]");
  const auto port = static_cast<std::uint16_t>(std::stoi(argv[2]));
  const std::string host = argv[4];
  const int n = std::stoi(argv[5]);
  const bool through = argc > 6 && std::string(argv[6]) == "connect";
  const std::string target_port = argc > 7 ? argv[7] : "443";
  SSL_CTX* ctx = client_ctx(argv[3]);
  const int fd = connect_to(port);
  if (through) proxy_connect(fd, host + ":" + target_port);
  SSL* ssl = tls_over(ctx, fd, host);
  const std::string body = R"({"model":"gpt-test","messages":[{"role":"user","content":"Say hello to the benchmark."}]})";
  const std::string path = through ? "/v1/chat/completions" : "/openai/v1/chat/completions";
  const std::string req = "POST " + path + " HTTP/1.1\r\nHost: " + host +
                          "\r\nContent-Type: application/json\r\nAuthorization: Bearer sk-bench\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
  std::vector<double> times;
  const auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i) {
    const auto s = clock_type::now();
    SSL_write(ssl, req.data(), static_cast<int>(req.size()));
    if (read_response(ssl) != 200) die("request not answered 200");
    times.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - s).count());
  }
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::printf("requests=%d seconds=%.3f per_second=%.1f p50_us=%.1f p99_us=%.1f\n", n, secs, n / secs,
              percentile(times, 0.5), percentile(times, 0.99));
  SSL_free(ssl);
  ::close(fd);
  return 0;
}

int transfer(int argc, char** argv) {
  if (argc < 5) die("usage: transfer PORT BYTES up|down [connect AUTHORITY]");
  const auto port = static_cast<std::uint16_t>(std::stoi(argv[2]));
  const std::uint64_t bytes = std::stoull(argv[3]);
  const bool up = std::string(argv[4]) == "up";
  const int fd = connect_to(port);
  if (argc > 6 && std::string(argv[5]) == "connect") proxy_connect(fd, argv[6]);
  std::vector<char> buf(256 * 1024, 'x');
  const auto t0 = clock_type::now();
  if (up) {
    write_all(fd, "U", 1);
    std::uint64_t left = bytes;
    while (left > 0) {
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size()));
      write_all(fd, buf.data(), k);
      left -= k;
    }
    ::shutdown(fd, SHUT_WR);
    char c;
    if (::recv(fd, &c, 1, 0) != 1) die("no end mark from the data server");
  } else {
    char cmd[9] = {'D'};
    for (int i = 0; i < 8; ++i) cmd[1 + i] = static_cast<char>((bytes >> (56 - 8 * i)) & 0xff);
    write_all(fd, cmd, sizeof cmd);
    std::uint64_t got = 0;
    while (got < bytes) {
      const ssize_t k = ::recv(fd, buf.data(), buf.size(), 0);
      if (k <= 0) die("download ended early");
      got += static_cast<std::uint64_t>(k);
    }
  }
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::printf("bytes=%llu seconds=%.3f mb_per_second=%.1f\n", static_cast<unsigned long long>(bytes), secs,
              static_cast<double>(bytes) / secs / 1e6);
  ::close(fd);
  return 0;
}

int hold(int argc, char** argv) {
  if (argc < 5) die("usage: hold PORT N AUTHORITY");
  const auto port = static_cast<std::uint16_t>(std::stoi(argv[2]));
  const int n = std::stoi(argv[3]);
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    const int fd = connect_to(port);
    proxy_connect(fd, argv[4]);
    write_all(fd, "I", 1);
    fds.push_back(fd);
  }
  std::printf("holding %d\n", n);
  std::fflush(stdout);
  char c;
  while (::read(0, &c, 1) > 0) {
  }
  for (const int fd : fds) ::close(fd);
  return 0;
}

int listen_on(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4096) != 0) {
    die("listen: " + std::string(std::strerror(errno)));
  }
  return fd;
}

// One thread per connection: the data server serves one transfer at a time
// (and idle connections cost it a blocked thread each, which is fine for a
// few thousand).
void serve_one(int fd) {
  char cmd;
  if (::recv(fd, &cmd, 1, 0) != 1) {
    ::close(fd);
    return;
  }
  std::vector<char> buf(256 * 1024, 'y');
  if (cmd == 'U') {
    while (::recv(fd, buf.data(), buf.size(), 0) > 0) {
    }
    write_all(fd, "!", 1);
  } else if (cmd == 'D') {
    char len[8];
    std::size_t got = 0;
    while (got < 8) {
      const ssize_t k = ::recv(fd, len + got, 8 - got, 0);
      if (k <= 0) break;
      got += static_cast<std::size_t>(k);
    }
    std::uint64_t n = 0;
    for (char c : len) n = (n << 8) | static_cast<unsigned char>(c);
    while (n > 0) {
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, buf.size()));
      write_all(fd, buf.data(), k);
      n -= k;
    }
  } else {
    while (::recv(fd, buf.data(), 16, 0) > 0) {
    }
  }
  ::close(fd);
}

int serve(int argc, char** argv) {
  if (argc < 3) die("usage: serve PORT");
  const int l = listen_on(static_cast<std::uint16_t>(std::stoi(argv[2])));
  std::printf("serving\n");
  std::fflush(stdout);
  for (;;) {
    const int fd = ::accept(l, nullptr, nullptr);
    if (fd < 0) continue;
    std::thread(serve_one, fd).detach();
  }
}

void copy_one_way(int from, int to) {
  std::vector<char> buf(64 * 1024);
  for (;;) {
    const ssize_t k = ::recv(from, buf.data(), buf.size(), 0);
    if (k <= 0) break;
    write_all(to, buf.data(), static_cast<std::size_t>(k));
  }
  ::shutdown(to, SHUT_WR);
}

int relay(int argc, char** argv) {
  if (argc < 4) die("usage: relay PORT TARGET_PORT");
  const int l = listen_on(static_cast<std::uint16_t>(std::stoi(argv[2])));
  const auto target = static_cast<std::uint16_t>(std::stoi(argv[3]));
  std::printf("relaying\n");
  std::fflush(stdout);
  for (;;) {
    const int a = ::accept(l, nullptr, nullptr);
    if (a < 0) continue;
    std::thread([a, target] {
      const int b = connect_to(target);
      std::thread back(copy_one_way, b, a);
      copy_one_way(a, b);
      back.join();
      ::close(a);
      ::close(b);
    }).detach();
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: edge_bench handshakes|requests|transfer|hold|serve|relay ...");
  const std::string cmd = argv[1];
  if (cmd == "handshakes") return handshakes(argc, argv);
  if (cmd == "requests") return requests(argc, argv);
  if (cmd == "transfer") return transfer(argc, argv);
  if (cmd == "hold") return hold(argc, argv);
  if (cmd == "serve") return serve(argc, argv);
  if (cmd == "relay") return relay(argc, argv);
  die("unknown command " + cmd);
}
