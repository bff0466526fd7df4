#pragma once
// A small HTTP/1.1 client for tests (plain or TLS, built on Beast) that keeps
// what a proxy test needs to see: the status, the headers, the body bytes as
// received, the chunk boundaries of a chunked body, and the error that ended the
// exchange (timeout, reset, truncation). Every exchange has a deadline, so a
// stalled server fails a test instead of hanging it. Also an SSE parser.

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace customs::testing {

struct client_tls {
  std::filesystem::path ca_file;  // the only trust anchors for the server certificate
  // The name checked against the server certificate (DNS name or IP address);
  // also sent as SNI when it is a DNS name.
  std::string verify_name = "localhost";
  std::optional<std::filesystem::path> client_cert, client_key;  // for mTLS
};

struct client_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::optional<client_tls> tls;
  std::chrono::milliseconds timeout{5000};  // per connect and per exchange
};

// Options for a client of a server on 127.0.0.1:port, plain or verifying the
// server with `ca_file` under `verify_name`.
[[nodiscard]] inline client_options loopback(std::uint16_t port,
                                             std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  client_options o;
  o.port = port;
  o.timeout = timeout;
  return o;
}
[[nodiscard]] inline client_options loopback_tls(std::uint16_t port, std::filesystem::path ca_file,
                                                 std::string verify_name = "localhost") {
  client_options o = loopback(port);
  o.tls.emplace();
  o.tls->ca_file = std::move(ca_file);
  o.tls->verify_name = std::move(verify_name);
  return o;
}

using header_list = std::vector<std::pair<std::string, std::string>>;

struct http_result {
  boost::system::error_code ec;  // what ended the exchange early; empty when complete
  bool complete = false;         // the whole response was read
  unsigned status = 0;           // 0 when no response header arrived
  header_list headers;
  std::string body;  // body bytes received (de-chunked), also when incomplete
  // For a chunked body, the payload of every chunk in order, as the chunk
  // boundaries on the wire delimit them (a chunk still arriving is the last).
  std::vector<std::string> chunks;
  bool chunked = false;
  bool keep_alive = false;
  // The first value of a header (case-insensitive name), "" when absent.
  [[nodiscard]] std::string header(std::string_view name) const;
};

class http_client {
 public:
  explicit http_client(client_options opts);
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  // TCP connect, then the TLS handshake with certificate and name verification.
  [[nodiscard]] boost::system::error_code connect();
  // Sends one request on the open connection and reads its response through its
  // end, the first error, or the timeout (which closes the connection).
  http_result request(std::string_view method, std::string_view target, std::string_view body = {},
                      const header_list& headers = {},
                      std::optional<std::chrono::milliseconds> timeout = {});
  http_result post(std::string_view target, std::string_view json_body,
                   std::optional<std::chrono::milliseconds> timeout = {}) {
    return request("POST", target, json_body, {}, timeout);
  }
  [[nodiscard]] bool is_open() const;
  void close();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Server-sent events as the WHATWG event-stream format defines them: lines end
// in CRLF, LF or CR; `event:` and `data:` fields (one optional space after the
// colon is dropped; data lines join with LF); lines starting with ':' are
// comments; a blank line dispatches an event when it has data. Bytes after the
// last blank line are returned in `rest` (an event not yet complete).
struct sse_event {
  std::string event;  // "" when the event had no `event:` line
  std::string data;
};
[[nodiscard]] std::vector<sse_event> parse_sse(std::string_view body, std::string* rest = nullptr);

}  // namespace customs::testing
