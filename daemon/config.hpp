#pragma once
// customsd's configuration: the YAML file's shape, its defaults and its loader.
//
//   version: 1
//   listeners:                     # at least one
//     - name: edge                 # unique; appears in logs and metrics
//       address: 127.0.0.1         # IPv4 or IPv6 literal
//       port: 8080                 # 0 = any free port (tests)
//       tls: {cert: server.pem, key: server.key}   # optional: HTTPS listener
//   admin: {address: 127.0.0.1, port: 9090}       # optional; these defaults
//   routes:                        # longest matching prefix wins
//     - prefix: /openai/           # starts and ends with '/'
//       upstream: https://api.openai.com          # http or https, optional base path
//       dialect: openai            # openai | anthropic | gemini
//       jurisdiction: US           # ISO 3166-1 alpha-2 of the processing location
//       ca_bundle: ca.pem          # optional, https only; else the system store
//   limits: {...}                  # see limits_config; every key optional
//   threads: 0                     # worker threads; 0 = number of cores
//   drain_timeout: 30s             # SIGTERM: how long streams in flight may finish
//   log: {level: info, flows: true}
//
// Relative file paths are taken from the config file's folder. Durations are
// strings with a unit (ms, s, m, h), e.g. "250ms", "30s"; sizes are integers
// (bytes) or strings with a binary unit ("64KiB", "16MiB", "1GiB").
//
// Control plane: the loader throws config_error listing every problem found,
// each as "file:line:col: error: CODE: message".
//
// To add a section (issue 5: sources, trusted_proxies, rules, audit, unscannable,
// listeners[].default_source, tls.client_ca): add the field here, its key to the
// allowed keys of its mapping in config.cpp, and a read_* function there; the
// walker reports unknown keys, wrong types and positions by itself.

#include "daemon/dialect/dialect.hpp"
#include "daemon/log.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace customs::daemon {

// One problem in a config file.
struct config_diagnostic {
  std::string file;
  int line = 0;  // 1-based; 0 when the file could not be read at all
  int col = 0;
  std::string code;  // E_YAML, E_UNKNOWN_KEY, E_TYPE, E_MISSING, E_VALUE, E_DUPLICATE, E_FILE
  std::string message;
  // "file:line:col: error: CODE: message" ("file: error: ..." without a position)
  [[nodiscard]] std::string to_string() const;
};

// The file is not valid: every diagnostic found (exit code 1).
class config_error : public std::runtime_error {
 public:
  explicit config_error(std::vector<config_diagnostic> d);
  [[nodiscard]] const std::vector<config_diagnostic>& diagnostics() const noexcept { return diagnostics_; }

 private:
  std::vector<config_diagnostic> diagnostics_;
};

// The file could not be read (exit code 2).
class config_io_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct tls_files {
  std::filesystem::path cert;  // PEM certificate chain
  std::filesystem::path key;   // PEM private key
  friend bool operator==(const tls_files&, const tls_files&) = default;
};

struct listener_config {
  std::string name;
  std::string address;
  std::uint16_t port = 0;
  std::optional<tls_files> tls;
  friend bool operator==(const listener_config&, const listener_config&) = default;
};

struct admin_config {
  std::string address = "127.0.0.1";
  std::uint16_t port = 9090;
  friend bool operator==(const admin_config&, const admin_config&) = default;
};

// An upstream URL taken apart: scheme://host[:port][/base/path]
struct upstream_url {
  bool tls = false;       // https
  std::string host;       // name or IP literal (without brackets)
  std::uint16_t port = 0; // explicit or 80 / 443
  std::string base_path;  // "" or "/v1beta" (never ends with '/')
  friend bool operator==(const upstream_url&, const upstream_url&) = default;
};

struct route_config {
  std::string prefix;    // "/openai/"
  std::string upstream;  // as written
  upstream_url url;
  dialect api = dialect::openai;
  std::string jurisdiction;        // "US"
  std::filesystem::path ca_bundle; // empty: the system store
  friend bool operator==(const route_config&, const route_config&) = default;
};

using duration = std::chrono::milliseconds;

// Every bound of the data plane, with its config key (limits.<key>).
struct limits_config {
  std::uint64_t header_bytes = 16 * 1024;           // request line + headers
  std::uint64_t request_body_bytes = 16 << 20;      // a bigger body: 413
  std::uint64_t response_body_bytes = 16 << 20;     // non-streamed bodies a filter inspects whole
  std::uint64_t response_header_bytes = 64 * 1024;  // upstream status line + headers
  std::uint64_t sse_event_bytes = 1 << 20;          // one SSE block, line ends included
  std::uint64_t connections = 10000;                // client connections at once; more: refused
  std::uint64_t upstream_idle_per_route = 64;       // idle pooled connections per route and thread
  duration header_timeout{10'000};           // first byte to end of headers
  duration body_timeout{60'000};             // reading the request body
  duration idle_timeout{60'000};             // keep-alive: between requests
  duration upstream_connect_timeout{5'000};  // resolve + connect + TLS handshake
  duration upstream_first_byte_timeout{300'000};  // request sent -> response headers
  duration stream_gap_timeout{120'000};      // between two reads of a response body
  duration send_timeout{60'000};             // one write to the client
  duration flow_timeout{1'800'000};          // whole flow, request to last byte
  duration upstream_idle_timeout{30'000};    // pooled connection unused for longer: closed
  friend bool operator==(const limits_config&, const limits_config&) = default;
};

struct log_config {
  log_level level = log_level::info;
  bool flows = true;  // one line per finished flow
  friend bool operator==(const log_config&, const log_config&) = default;
};

struct config {
  std::filesystem::path file;  // where it was loaded from (for reload)
  int version = 1;
  std::vector<listener_config> listeners;
  admin_config admin;
  std::vector<route_config> routes;
  limits_config limits;
  unsigned threads = 0;  // as written; see effective_threads()
  duration drain_timeout{30'000};
  log_config log;

  [[nodiscard]] unsigned effective_threads() const noexcept;
};

// Reads and validates a config file. Throws config_io_error when it cannot be
// read and config_error when it is not valid.
[[nodiscard]] config load_config(const std::filesystem::path& file);

// The same on text; file_name is used in diagnostics, base_dir resolves relative
// paths (files named in the config must exist).
[[nodiscard]] config parse_config(std::string_view yaml, const std::string& file_name,
                                  const std::filesystem::path& base_dir);

// Parses "http(s)://host[:port][/path]"; false when it is not such a URL.
[[nodiscard]] bool parse_upstream_url(std::string_view s, upstream_url& out, std::string& why);

}  // namespace customs::daemon
