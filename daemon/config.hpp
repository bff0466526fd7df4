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
//   log: {level: info, flows: true, format: logfmt}   # format: logfmt | json
//
// Enforcement (`rules` and `audit` go together, without both customsd
// relays uninspected):
//
//   listeners[].default_source: {jurisdiction: CN, tenant: acme}  # tenant optional
//   listeners[].tls.client_ca: ca.pem  # mTLS: a client certificate chaining to it is required
//   sources:                       # first match wins
//     - {cidr: 10.20.0.0/16, jurisdiction: CN, tenant: acme}
//     - {client_cert_subject: "CN=bank-gw", jurisdiction: DE, tenant: bank}
//   trusted_proxies: [127.0.0.1/32]  # may set X-Customs-Source / X-Customs-Tenant
//   rules: [rules/]                # rule files or folders, loaded as one set
//   audit:
//     path: audit.db               # created when missing
//     auditor_keys: [keys/auditor.pub]
//     sealing_key: keys/sealing.key
//     signing_key: keys/signing.key
//     content: findings            # none | findings | full
//     on_failure: refuse           # refuse (503) | allow
//     epoch_records: 100000        # and epoch_duration, commit_records,
//     commit_interval: 0ms         # queue_capacity, queue_bytes, index_fields,
//                                  # content_bytes
//   unscannable: block             # block | tag | allow
//
// Forward proxy and transparent interception (the edge modes):
//
//   listeners[].mode: reverse      # reverse (default) | forward | transparent
//   listeners[].proxy_auth: {users: proxy-users, realm: customs}   # forward only:
//                                  # Proxy-Authorization Basic required (407 without)
//   interception:                  # needed to decrypt catalogued hosts
//     ca_cert: ca/ca.pem           # customsctl ca gen --out ca
//     ca_key: ca/ca.key            # must not be readable by group or others
//     leaf_validity: 24h           # minted leaf certificates; renewed at half-life
//     leaf_cache: 10000            # leaf certificates kept (least recently used go)
//     on_untrusted: refuse         # tunnel | refuse: clients that rejected the CA
//     unknown_hosts: tunnel        # tunnel | refuse: hosts not in the catalogue
//     tunnel_records: true         # an audit record per tunnel (metadata only)
//     ports: [443, 80]             # forward mode: the only ports a client may reach
//     allow_networks: []           # forward mode: private networks that may be reached
//     upstream_mark: 0             # SO_MARK on connections to destinations (0: none), so
//                                  # that a firewall redirect can exclude them
//   providers: [/usr/share/customs/providers/]   # the catalogue (default: the shipped one)
//   upstream_ca_bundle: ca.pem     # trust for intercepted upstreams; default: system store
//   resolve: {api.openai.com: "10.1.2.3:443"}   # host -> address (port optional)
//
// Relative file paths are taken from the config file's folder. Durations are
// strings with a unit (ms, s, m, h), e.g. "250ms", "30s"; sizes are integers
// (bytes) or strings with a binary unit ("64KiB", "16MiB", "1GiB").
//
// Control plane: the loader throws config_error listing every problem found,
// each as "file:line:col: error: CODE: message".
//
// To add a section: add the field here, its key to the allowed keys of its
// mapping in config.cpp, and a read_* function there; the walker reports unknown
// keys, wrong types and positions by itself.

#include "daemon/dialect/dialect.hpp"
#include "daemon/log.hpp"

#include <array>
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
  // PEM CA certificates: when set, clients must present a certificate that
  // chains to one of them (mTLS); its subject can name a source.
  std::filesystem::path client_ca;
  friend bool operator==(const tls_files&, const tls_files&) = default;
};

// Where a flow comes from: the source jurisdiction and the tenant (may be empty).
struct source_spec {
  std::string jurisdiction;  // ISO 3166-1 alpha-2
  std::string tenant;
  friend bool operator==(const source_spec&, const source_spec&) = default;
};

// An IPv4 or IPv6 network ("10.20.0.0/16", "::1/128"; a bare address is a host).
struct cidr_block {
  std::array<std::uint8_t, 16> bytes{};  // network address (IPv4 in the first 4)
  bool v6 = false;
  unsigned prefix = 0;  // bits
  std::string text;     // as written
  // Whether the address (4 or 16 bytes) lies in this network. IPv4-mapped IPv6
  // addresses (::ffff:a.b.c.d) must be passed as IPv4.
  [[nodiscard]] bool contains(const std::uint8_t* addr, bool addr_v6) const noexcept;
  friend bool operator==(const cidr_block& a, const cidr_block& b) { return a.text == b.text; }
};

// "CN": an assigned ISO 3166-1 alpha-2 code (the rule loader's check,
// policy::is_country_code): "UK" and "ZZ" are not.
[[nodiscard]] bool valid_jurisdiction(std::string_view j) noexcept;
// 1 to 64 of [A-Za-z0-9._:-]: safe in headers, logs and metric labels.
[[nodiscard]] bool valid_tenant(std::string_view t) noexcept;

// Parses "a.b.c.d[/n]" or an IPv6 literal with optional "/n"; false with a reason.
[[nodiscard]] bool parse_cidr(std::string_view s, cidr_block& out, std::string& why);

// One entry of `sources`: exactly one of cidr and client_cert_subject is set.
struct source_rule {
  std::optional<cidr_block> cidr;
  // The client certificate's subject in RFC 2253 form, most specific RDN first
  // ("CN=bank-gw,O=Bank,C=DE"), compared exactly.
  std::string client_cert_subject;
  source_spec source;
  friend bool operator==(const source_rule&, const source_rule&) = default;
};

// How connections reach a listener.
enum class listener_mode : std::uint8_t {
  reverse,      // clients use customsd as their base URL; routes by path prefix
  forward,      // an HTTP proxy: CONNECT host:port and absolute-form http:// requests
  transparent,  // connections redirected by the firewall (SO_ORIGINAL_DST + SNI)
};
[[nodiscard]] std::string_view to_string(listener_mode m) noexcept;

// Proxy-Authorization (Basic) on a forward listener: users and their tenants.
struct proxy_auth_config {
  std::filesystem::path users;  // "name:$argon2id$...:tenant" lines (customsctl proxy-user)
  std::string realm = "customs";
  friend bool operator==(const proxy_auth_config&, const proxy_auth_config&) = default;
};

struct listener_config {
  std::string name;
  std::string address;
  std::uint16_t port = 0;
  std::optional<tls_files> tls;
  std::optional<source_spec> default_source;  // when nothing else resolves the source
  listener_mode mode = listener_mode::reverse;
  std::optional<proxy_auth_config> proxy_auth{};  // forward listeners only
  friend bool operator==(const listener_config&, const listener_config&) = default;
};

// What happens to the next connections of a client that rejected customsd's
// certificate for a host.
enum class untrusted_action : std::uint8_t { tunnel, refuse };
[[nodiscard]] std::string_view to_string(untrusted_action a) noexcept;

// TLS interception and the edge modes' access rules.
struct interception_config {
  std::filesystem::path ca_cert;  // both or neither: without them nothing is decrypted
  std::filesystem::path ca_key;
  std::chrono::milliseconds leaf_validity{24 * 3'600'000};
  std::uint64_t leaf_cache = 10000;
  untrusted_action on_untrusted = untrusted_action::refuse;
  bool refuse_unknown_hosts = false;  // unknown_hosts: refuse
  bool tunnel_records = true;
  std::vector<std::uint16_t> ports = {443, 80};
  std::vector<cidr_block> allow_networks;
  std::uint32_t upstream_mark = 0;  // SO_MARK of connections to destinations (needs CAP_NET_ADMIN)
  [[nodiscard]] bool decrypts() const noexcept { return !ca_cert.empty(); }
  friend bool operator==(const interception_config&, const interception_config&) = default;
};

// One entry of `resolve`: connections to `host` go to address:port instead of
// what DNS says (port 0: the port that was asked for).
struct resolve_entry {
  std::string host;     // lower case
  std::string address;  // IPv4 or IPv6 literal
  std::uint16_t port = 0;
  friend bool operator==(const resolve_entry&, const resolve_entry&) = default;
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

// The largest config file read (a larger one is an I/O error).
inline constexpr std::size_t max_config_bytes = 1u << 20;

// The range the body and event limits may be set to (the loader refuses values
// outside). Bodies and events are held whole while they are inspected.
struct limit_bounds {
  static constexpr std::uint64_t min_body_bytes = 1024;
  static constexpr std::uint64_t max_body_bytes = 1ull << 30;
  static constexpr std::uint64_t min_sse_event_bytes = 256;
  static constexpr std::uint64_t max_sse_event_bytes = 64ull << 20;
};

// Every bound of the data plane, with its config key (limits.<key>).
struct limits_config {
  std::uint64_t header_bytes = 16 * 1024;           // request line + headers (at most 1 MiB)
  std::uint64_t header_fields = 100;                // header fields of a request or response
  std::uint64_t target_bytes = 8 * 1024;            // the request target (path and query)
  std::uint64_t trailer_bytes = 4 * 1024;           // trailer section of a chunked body, either direction
  std::uint64_t chunk_extension_bytes = 1024;       // chunk extensions of one chunked body, summed
  std::uint64_t request_body_bytes = 16 << 20;      // a bigger body: 413
  std::uint64_t response_body_bytes = 16 << 20;     // non-streamed bodies a filter inspects whole
  std::uint64_t response_header_bytes = 64 * 1024;  // upstream status line + headers (at most 1 MiB)
  std::uint64_t sse_event_bytes = 1 << 20;          // one SSE block, line ends included
  std::uint64_t connections = 10000;                // client connections at once; more: refused
  std::uint64_t upstream_idle_per_route = 64;       // idle pooled connections per route and thread
  // Enforcement: findings collected per flow and direction. Past it the scan
  // stops; a block among what was found blocks, anything else makes the flow
  // (or the rest of the stream) unscannable (docs/operator-guide.md).
  std::uint64_t findings_per_flow = 10000;
  duration header_timeout{10'000};           // first byte to end of headers
  duration body_timeout{60'000};             // reading the request body
  duration idle_timeout{60'000};             // keep-alive: between requests
  duration upstream_connect_timeout{5'000};  // resolve + connect + TLS handshake
  duration upstream_first_byte_timeout{300'000};  // request sent -> response headers
  duration stream_gap_timeout{120'000};      // between two reads of a response body
  duration send_timeout{60'000};             // one write to the client
  duration flow_timeout{1'800'000};          // whole flow, request to last byte
  duration upstream_idle_timeout{30'000};    // pooled connection unused for longer: closed
  // Edge modes.
  std::uint64_t client_hello_bytes = 32 * 1024;  // a TLS ClientHello (all its records) read before deciding
  duration tunnel_idle_timeout{600'000};     // a tunnel with no byte either way for longer: closed
  friend bool operator==(const limits_config&, const limits_config&) = default;
};

// What the audit trail keeps of a flow's content (always: verdicts, rule ids,
// detector names and positions, usage, bytes, timings).
enum class audit_content : std::uint8_t {
  none,      // no text at all
  findings,  // the matched text of each finding
  full,      // and every request and response text (needed by audit replay)
};

struct audit_config {
  std::filesystem::path path;  // the SQLite database; created when missing
  std::vector<std::filesystem::path> auditor_keys;
  std::filesystem::path sealing_key;
  std::filesystem::path signing_key;
  audit_content content = audit_content::findings;
  bool refuse_on_failure = true;  // on_failure: refuse (503) or allow
  std::uint64_t epoch_records = 100000;
  duration epoch_duration{3'600'000};
  std::uint64_t commit_records = 512;
  duration commit_interval{0};  // 0: commit as soon as the writer caught up
  std::uint64_t queue_capacity = 65536;
  std::uint64_t queue_bytes = 256u << 20;  // bytes of records waiting (audit.queue_bytes)
  static constexpr std::uint64_t min_queue_bytes = 64u << 20;
  static constexpr std::uint64_t max_queue_bytes = 64ull << 30;
  // content: full: text kept per flow and direction for the audit record; past
  // it a text is cut and its length and BLAKE2b hash are recorded instead.
  std::uint64_t content_bytes = 1 << 20;
  std::vector<std::string> index_fields = {"route", "src", "dst", "tenant", "action",
                                           "rules", "rule_set_hash", "tokens"};
  friend bool operator==(const audit_config&, const audit_config&) = default;
};

// What happens to a body, endpoint or event that cannot be parsed.
enum class unscannable_mode : std::uint8_t {
  block,  // refused (451, or the stream is cut)
  tag,    // forwarded with X-Customs-Tags: unscannable
  allow,  // forwarded
};

[[nodiscard]] std::string_view to_string(audit_content c) noexcept;
[[nodiscard]] std::string_view to_string(unscannable_mode m) noexcept;

// Token metering (see daemon/enforce/metering.hpp):
//   metering:
//     stream_usage: inject   # inject | off: ask OpenAI chat streams for usage
//     max_models: 50         # model label values of the token metrics; more: "other"
//     max_tenants: 200       # tenant label values likewise
struct metering_config {
  bool inject_stream_usage = true;
  std::uint64_t max_models = 50;
  std::uint64_t max_tenants = 200;
  friend bool operator==(const metering_config&, const metering_config&) = default;
};

// Volume counters (rules with `volumes:`; see daemon/volume/):
//   volumes:
//     backend: sqlite            # sqlite (one host) | redis (a fleet)
//     path: counters.db          # sqlite: the database; redis: the local fallback
//     subject_key: keys/subject.key   # 0600; the same file on every host of a fleet
//     url: redis://127.0.0.1:6379/0   # redis
//     tls: {ca: ca.pem, cert: client.pem, key: client.key}   # redis over TLS (rediss://)
//     password_file: redis.pass  # redis AUTH, optional
//     budget: 50ms               # redis: the longest a flow waits for an answer
//     on_unavailable: refuse     # redis unreachable or late: refuse (503) | local
//     journal_max_entries: 1000000   # local: flows the fallback keeps for Redis, at most;
//                                    # past it a flow that needs a counter is refused (503)
struct volumes_tls {
  std::filesystem::path ca;
  std::filesystem::path cert;
  std::filesystem::path key;
  friend bool operator==(const volumes_tls&, const volumes_tls&) = default;
};

struct volumes_config {
  enum class backend_kind : std::uint8_t { sqlite, redis };
  backend_kind backend = backend_kind::sqlite;
  std::filesystem::path path;
  std::filesystem::path subject_key;
  std::string url;
  std::optional<volumes_tls> tls;
  std::filesystem::path password_file;
  duration budget{50};
  bool refuse_on_unavailable = true;
  std::uint64_t journal_max_entries = 1'000'000;  // 1 .. 100,000,000
  friend bool operator==(const volumes_config&, const volumes_config&) = default;
};

struct log_config {
  log_level level = log_level::info;
  bool flows = true;  // one line per finished flow
  log_format format = log_format::logfmt;
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
  // Enforcement (see the top of this file).
  std::vector<source_rule> sources;
  std::vector<cidr_block> trusted_proxies;
  std::vector<std::filesystem::path> rules;  // files or folders; empty: no enforcement
  std::optional<audit_config> audit;
  unscannable_mode unscannable = unscannable_mode::block;
  metering_config metering;
  std::optional<volumes_config> volumes;
  // Edge modes (see the top of this file).
  std::optional<interception_config> interception;
  std::vector<std::filesystem::path> providers;  // the catalogue; filled with the default when an edge listener needs it
  std::filesystem::path upstream_ca_bundle;      // empty: the system store
  std::vector<resolve_entry> resolve;

  [[nodiscard]] bool enforcing() const noexcept { return !rules.empty(); }
  // A forward or transparent listener exists.
  [[nodiscard]] bool has_edge_listener() const noexcept;
  // The interception settings in force (the defaults when the section is absent).
  [[nodiscard]] const interception_config& edge() const noexcept;

  [[nodiscard]] unsigned effective_threads() const noexcept;
};

// Reads and validates a config file. Throws config_io_error when it cannot be
// read and config_error when it is not valid.
[[nodiscard]] config load_config(const std::filesystem::path& file);

// The same on text; file_name is used in diagnostics, base_dir resolves relative
// paths (files named in the config must exist).
[[nodiscard]] config parse_config(std::string_view yaml, const std::string& file_name,
                                  const std::filesystem::path& base_dir);

// The catalogue used when an edge listener exists and `providers` is not set.
[[nodiscard]] std::filesystem::path default_providers_path();

// Parses "http(s)://host[:port][/path]"; false when it is not such a URL.
[[nodiscard]] bool parse_upstream_url(std::string_view s, upstream_url& out, std::string& why);

}  // namespace customs::daemon
