// The config loader: the documented shape, defaults, and every error with its
// file:line:col.
#include "daemon/config.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

using namespace customs::daemon;

namespace {

std::filesystem::path config_dir() {
  auto d = std::filesystem::temp_directory_path() / ("customs-config-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d;
}

config parse(const std::string& yaml) { return parse_config(yaml, "test.yaml", config_dir()); }

std::vector<std::string> errors(const std::string& yaml) {
  try {
    (void)parse(yaml);
  } catch (const config_error& e) {
    std::vector<std::string> out;
    for (const auto& d : e.diagnostics()) out.push_back(d.to_string());
    return out;
  }
  return {};
}

bool has(const std::vector<std::string>& v, const std::string& needle) {
  for (const auto& s : v) {
    if (s.find(needle) != std::string::npos) return true;
  }
  return false;
}

const std::string minimal = R"(version: 1
listeners:
  - {name: edge, address: 127.0.0.1, port: 8080}
routes:
  - prefix: /openai/
    upstream: https://api.openai.com
    dialect: openai
    jurisdiction: US
)";

}  // namespace

TEST_CASE("config: the documented shape loads, with defaults") {
  const auto dir = config_dir();
  std::ofstream(dir / "ca.pem") << "x";
  std::ofstream(dir / "server.pem") << "x";
  std::ofstream(dir / "server.key") << "x";
  const config c = parse(R"(version: 1
listeners:
  - name: edge
    address: 127.0.0.1
    port: 8080
    tls: {cert: server.pem, key: server.key}
  - {name: v6, address: "::1", port: 0}
admin: {address: 127.0.0.1, port: 9191}
routes:
  - prefix: /openai/
    upstream: https://api.openai.com
    dialect: openai
    jurisdiction: US
    ca_bundle: ca.pem
  - {prefix: /gemini/, upstream: "http://[::1]:8443/v1beta/", dialect: gemini, jurisdiction: DE}
limits:
  header_bytes: 8KiB
  request_body_bytes: 1048576
  sse_event_bytes: 64KiB
  connections: 100
  header_timeout: 250ms
  stream_gap_timeout: 2m
threads: 3
drain_timeout: 5s
log: {level: debug, flows: false}
)");
  REQUIRE(c.listeners.size() == 2);
  CHECK(c.listeners[0].tls->cert == (config_dir() / "server.pem").lexically_normal());
  CHECK(c.listeners[1].address == "::1");
  CHECK(c.admin.port == 9191);
  REQUIRE(c.routes.size() == 2);
  CHECK(c.routes[0].url.tls);
  CHECK(c.routes[0].url.host == "api.openai.com");
  CHECK(c.routes[0].url.port == 443);
  CHECK(c.routes[0].url.base_path.empty());
  CHECK(c.routes[0].ca_bundle.filename() == "ca.pem");
  CHECK(c.routes[1].api == dialect::gemini);
  CHECK(c.routes[1].url.host == "::1");
  CHECK(c.routes[1].url.port == 8443);
  CHECK(c.routes[1].url.base_path == "/v1beta");
  CHECK(c.limits.header_bytes == 8192);
  CHECK(c.limits.request_body_bytes == 1048576);
  CHECK(c.limits.sse_event_bytes == 65536);
  CHECK(c.limits.connections == 100);
  CHECK(c.limits.header_timeout == std::chrono::milliseconds(250));
  CHECK(c.limits.stream_gap_timeout == std::chrono::minutes(2));
  CHECK(c.limits.idle_timeout == limits_config{}.idle_timeout);  // default kept
  CHECK(c.threads == 3);
  CHECK(c.effective_threads() == 3);
  CHECK(c.drain_timeout == std::chrono::seconds(5));
  CHECK(c.log.level == log_level::debug);
  CHECK_FALSE(c.log.flows);

  const config m = parse(minimal);
  CHECK(m.admin.address == "127.0.0.1");
  CHECK(m.admin.port == 9090);
  CHECK(m.threads == 0);
  CHECK(m.effective_threads() >= 1);
  CHECK(m.limits == limits_config{});
}

TEST_CASE("config: unknown keys are rejected everywhere, all of them, with positions") {
  const auto e = errors(R"(version: 1
listeners:
  - {name: edge, address: 127.0.0.1, port: 8080, colour: blue}
routes:
  - prefix: /openai/
    upstream: https://api.openai.com
    dialect: openai
    jurisdiction: US
    retries: 3
limits: {header_bytes: 4096, speed: 9}
extra: true
)");
  REQUIRE(e.size() == 4);
  CHECK(has(e, "test.yaml:3:50: error: E_UNKNOWN_KEY: unknown key 'listeners[0].colour'"));
  CHECK(has(e, "test.yaml:9:5: error: E_UNKNOWN_KEY: unknown key 'routes[0].retries'"));
  CHECK(has(e, "test.yaml:10:30: error: E_UNKNOWN_KEY: unknown key 'limits.speed'"));
  CHECK(has(e, "test.yaml:11:1: error: E_UNKNOWN_KEY: unknown key 'extra'"));
}

TEST_CASE("config: wrong types are rejected with positions") {
  const auto e = errors(R"(version: 1
listeners:
  - {name: edge, address: 127.0.0.1, port: http}
routes:
  - prefix: /openai/
    upstream: https://api.openai.com
    dialect: openai
    jurisdiction: US
limits:
  header_timeout: 10
  connections: "100"
  request_body_bytes: lots
threads: [1]
log: {flows: yes}
)");
  CHECK(has(e, "test.yaml:3:44: error: E_TYPE: listeners[0].port: expected a non-negative integer"));
  CHECK(has(e, "test.yaml:10:19: error: E_TYPE: limits.header_timeout: expected a duration"));
  CHECK(has(e, "test.yaml:11:16: error: E_TYPE: limits.connections: expected a non-negative integer"));
  CHECK(has(e, "test.yaml:12:23: error: E_TYPE: limits.request_body_bytes: expected a size"));
  CHECK(has(e, "test.yaml:13:10: error: E_TYPE: threads: expected a non-negative integer"));
  CHECK(has(e, "test.yaml:14:14: error: E_TYPE: log.flows: expected true or false"));
  CHECK(e.size() == 6);
}

TEST_CASE("config: values are checked") {
  const auto e = errors(R"(version: 2
listeners:
  - {name: edge, address: localhost, port: 70000}
  - {name: edge, address: 127.0.0.1, port: 1}
routes:
  - {prefix: openai, upstream: "ftp://x", dialect: klingon, jurisdiction: usa}
  - {prefix: /a/, upstream: "http://h", dialect: openai, jurisdiction: US, ca_bundle: nowhere.pem}
  - {prefix: /a/, upstream: "https://h:0", dialect: openai, jurisdiction: US}
  - {prefix: /b/../, upstream: "https://h/x?y", dialect: openai, jurisdiction: US}
)");
  CHECK(has(e, "3:"));
  CHECK(has(e, "E_VALUE: version: only version 1 is known"));
  CHECK(has(e, "E_VALUE: listeners[0].address: 'localhost' is not an IPv4 or IPv6 address"));
  CHECK(has(e, "E_VALUE: listeners[0].port: must be at most 65535"));
  CHECK(has(e, "E_DUPLICATE: listeners: name 'edge' appears twice"));
  CHECK(has(e, "E_VALUE: routes[0].prefix: must start and end with '/'"));
  CHECK(has(e, "E_VALUE: routes[0].upstream: scheme must be http or https"));
  CHECK(has(e, "E_VALUE: routes[0].dialect: 'klingon' is not one of openai, anthropic, gemini"));
  CHECK(has(e, "E_VALUE: routes[0].jurisdiction: expected an ISO 3166-1 alpha-2 code"));
  CHECK(has(e, "E_FILE: routes[1].ca_bundle: no such file"));
  CHECK(has(e, "E_DUPLICATE: routes: prefix /a/ appears twice"));
  CHECK(has(e, "E_VALUE: routes[2].upstream: port must be 1..65535"));
  CHECK(has(e, "E_VALUE: routes[3].prefix: must be a plain path"));
  CHECK(has(e, "E_VALUE: routes[3].upstream: no user info, query, fragment or blanks allowed"));
}

TEST_CASE("config: missing keys, duplicate keys and YAML syntax errors") {
  auto e = errors("version: 1\nroutes: []\n");
  CHECK(has(e, "test.yaml:1:1: error: E_MISSING: missing key 'listeners'"));

  e = errors(minimal + "threads: 1\nthreads: 2\n");
  CHECK(has(e, "test.yaml:10:1: error: E_DUPLICATE: duplicate key 'threads'"));

  e = errors("version: 1\nlisteners: [\n");
  REQUIRE(e.size() == 1);
  CHECK(has(e, "test.yaml:"));
  CHECK(has(e, "E_YAML"));

  e = errors("");
  CHECK(has(e, "E_MISSING: the file is empty"));

  e = errors(R"(version: 1
listeners:
  - {name: edge, address: 127.0.0.1, port: 1, tls: {cert: missing.pem}}
routes: []
)");
  CHECK(has(e, "E_MISSING: missing key 'listeners[0].tls.key'"));
  CHECK(has(e, "E_FILE: listeners[0].tls.cert: no such file"));
}

TEST_CASE("config: a file that cannot be read is an I/O error, not a config error") {
  CHECK_THROWS_AS(load_config(config_dir() / "does-not-exist.yaml"), config_io_error);
  const auto f = config_dir() / "ok.yaml";
  std::ofstream(f) << minimal;
  const config c = load_config(f);
  CHECK(c.file == f);
}

TEST_CASE("config: upstream URLs") {
  upstream_url u;
  std::string why;
  REQUIRE(parse_upstream_url("HTTPS://Example.com:8443/base/path/", u, why));
  CHECK(u.tls);
  CHECK(u.host == "Example.com");
  CHECK(u.port == 8443);
  CHECK(u.base_path == "/base/path");
  REQUIRE(parse_upstream_url("http://10.0.0.1", u, why));
  CHECK(u.port == 80);
  CHECK_FALSE(parse_upstream_url("http://user@h", u, why));
  CHECK_FALSE(parse_upstream_url("http://h:", u, why));
  CHECK_FALSE(parse_upstream_url("http://[::1", u, why));
  CHECK_FALSE(parse_upstream_url("http://", u, why));
  CHECK_FALSE(parse_upstream_url("h:80", u, why));
  CHECK_FALSE(parse_upstream_url("http://h/a/%2e%2e/", u, why));
}

TEST_CASE("config: a route or source jurisdiction must be an assigned ISO 3166-1 code, as in rule files") {
  auto e = errors(R"(version: 1
listeners:
  - {name: edge, address: 127.0.0.1, port: 1, default_source: {jurisdiction: ZZ}}
routes:
  - {prefix: /a/, upstream: "http://h", dialect: openai, jurisdiction: UK}
  - {prefix: /b/, upstream: "http://h", dialect: openai, jurisdiction: gb}
  - {prefix: /c/, upstream: "http://h", dialect: openai, jurisdiction: GB}
)");
  CHECK(has(e, "test.yaml:3:78: error: E_VALUE: listeners[0].default_source.jurisdiction: expected an ISO 3166-1 alpha-2 code such as US, not 'ZZ'"));
  CHECK(has(e, "test.yaml:5:72: error: E_VALUE: routes[0].jurisdiction: expected an ISO 3166-1 alpha-2 code such as US, not 'UK' (did you mean GB?)"));
  CHECK(has(e, "routes[1].jurisdiction: expected an ISO 3166-1 alpha-2 code such as US, not 'gb' (did you mean GB?)"));
  CHECK(e.size() == 3);
  CHECK_FALSE(valid_jurisdiction("UK"));
  CHECK_FALSE(valid_jurisdiction("ZZ"));
  CHECK(valid_jurisdiction("GB"));
  CHECK(valid_jurisdiction("XK"));
}

TEST_CASE("config: a file whose aliases expand past the bound is refused before it is read") {
  // Found attacking the rule loader (the same YAML reader): strings repeated
  // through aliases are copied once per use.
  std::string y = "version: 1\na: &a [";
  for (int i = 0; i < 10; ++i) y += (i ? ", " : "") + std::string("'") + std::string(1000, 'x') + "'";
  y += "]\n";
  const char* names[] = {"a", "b", "c", "d", "e", "f"};
  for (int level = 1; level < 6; ++level) {
    y += std::string(names[level]) + ": &" + names[level] + " [";
    for (int i = 0; i < 10; ++i) y += (i ? ", *" : "*") + std::string(names[level - 1]);
    y += "]\n";
  }
  const auto e = errors(y);
  REQUIRE(e.size() == 1);
  CHECK(has(e, "E_YAML: with its aliases expanded"));
}

TEST_CASE("config: a second YAML document is an error") {
  const auto e = errors(minimal + "---\nthreads: 4\n");
  REQUIRE(e.size() == 1);
  CHECK(has(e, "test.yaml:10:1: error: E_YAML: a config file holds one YAML document"));
}

TEST_CASE("config: request_body_bytes 0 is refused, like every body limit under 1 KiB") {
  const auto e = errors(minimal + "limits: {request_body_bytes: 0}\n");
  CHECK(has(e, "E_VALUE: limits.request_body_bytes: must be at least 1024"));
  CHECK(e.size() == 1);
}

TEST_CASE("config: the body and event limits are accepted at their bounds") {
  const auto c = parse(minimal + "limits: {request_body_bytes: 1GiB, response_body_bytes: 1KiB, "
                                 "sse_event_bytes: 64MiB}\n");
  CHECK(c.limits.request_body_bytes == 1ull << 30);
  CHECK(c.limits.response_body_bytes == 1024);
  CHECK(c.limits.sse_event_bytes == 64ull << 20);
  const auto d = parse(minimal + "limits: {request_body_bytes: 1KiB, response_body_bytes: 1GiB, "
                                 "sse_event_bytes: 256}\n");
  CHECK(d.limits.request_body_bytes == 1024);
  CHECK(d.limits.response_body_bytes == 1ull << 30);
  CHECK(d.limits.sse_event_bytes == 256);
}

TEST_CASE("config: the body and event limits are refused just past their bounds") {
  auto e = errors(minimal + "limits: {request_body_bytes: 1023, response_body_bytes: 1023, sse_event_bytes: 255}\n");
  CHECK(has(e, "E_VALUE: limits.request_body_bytes: must be at least 1024"));
  CHECK(has(e, "E_VALUE: limits.response_body_bytes: must be at least 1024"));
  CHECK(has(e, "E_VALUE: limits.sse_event_bytes: must be at least 256"));
  CHECK(e.size() == 3);
  e = errors(minimal + "limits: {request_body_bytes: 1073741825, response_body_bytes: 1073741825, "
                       "sse_event_bytes: 67108865}\n");
  CHECK(has(e, "E_VALUE: limits.request_body_bytes: must be at most 1073741824"));
  CHECK(has(e, "E_VALUE: limits.response_body_bytes: must be at most 1073741824"));
  CHECK(has(e, "E_VALUE: limits.sse_event_bytes: must be at most 67108864"));
  CHECK(e.size() == 3);
}

TEST_CASE("config: the admin listener may not share a listener's port on an overlapping address") {
  const std::string listeners = R"(version: 1
listeners:
  - {name: edge, address: 0.0.0.0, port: 8080}
  - {name: v6, address: "::1", port: 8443}
routes: []
)";
  CHECK(has(errors(listeners + "admin: {address: 127.0.0.1, port: 8080}\n"),
            "test.yaml:6:8: error: E_DUPLICATE: admin: 127.0.0.1:8080 overlaps listener edge (0.0.0.0:8080)"));
  CHECK(has(errors(listeners + "admin: {address: \"::\", port: 8443}\n"), "admin: [::]:8443 overlaps listener v6 ([::1]:8443)"));
  CHECK(has(errors(listeners + "admin: {address: \"::ffff:10.0.0.1\", port: 8080}\n"), "overlaps listener edge"));
  // Another address of the same family on the port, or another family: fine.
  CHECK(errors(listeners + "admin: {address: \"::1\", port: 8080}\n").empty());
  CHECK(errors(listeners + "admin: {address: 127.0.0.1, port: 8443}\n").empty());
  CHECK(errors(listeners + "admin: {address: 127.0.0.1, port: 9090}\n").empty());
  // Two listeners likewise.
  CHECK(has(errors(R"(version: 1
listeners:
  - {name: a, address: 127.0.0.2, port: 8080}
  - {name: b, address: 0.0.0.0, port: 8080}
routes: []
)"),
            "E_DUPLICATE: listeners: b (0.0.0.0:8080) overlaps listener a (127.0.0.2:8080)"));
  // Port 0 picks a free port: never a conflict.
  CHECK(errors("version: 1\nlisteners:\n  - {name: a, address: 127.0.0.1, port: 0}\nadmin: {address: 127.0.0.1, port: 0}\nroutes: []\n").empty());
}

TEST_CASE("config: a config path naming a FIFO or a device is an I/O error, without blocking or reading it") {
  const auto fifo = config_dir() / "config.fifo";
  std::filesystem::remove(fifo);
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(load_config(fifo), Catch::Contains("E_IO") && Catch::Contains("a FIFO, not a regular file"));
  CHECK_THROWS_WITH(load_config("/dev/zero"), Catch::Contains("a character device, not a regular file"));
  std::filesystem::remove(fifo);
}

TEST_CASE("config: a config file over 1 MiB is an I/O error") {
  const auto f = config_dir() / "huge.yaml";
  {
    std::ofstream out(f);
    out << minimal << "# " << std::string(max_config_bytes, 'x') << "\n";
  }
  CHECK_THROWS_WITH(load_config(f), Catch::Contains("E_IO") && Catch::Contains("larger than the limit"));
  std::filesystem::resize_file(f, max_config_bytes);  // at the limit: read
  CHECK(load_config(f).routes.size() == 1);
}

TEST_CASE("config: audit.queue_bytes is read within its bounds") {
  const std::string keys = "rules: [.]\naudit: {path: a.db, auditor_keys: [k], sealing_key: s, signing_key: g, queue_bytes: ";
  CHECK(parse(minimal + keys + "128MiB}\n").audit->queue_bytes == 128u << 20);
  CHECK(has(errors(minimal + keys + "1MiB}\n"), "E_VALUE: audit.queue_bytes: must be at least 67108864"));
  CHECK(has(errors(minimal + keys + "65GiB}\n"), "E_VALUE: audit.queue_bytes: must be at most"));
}
