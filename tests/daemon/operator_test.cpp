// What operators used to nginx, systemd and Prometheus expect of customsd: the
// command line (-t, --help), build information in the metrics, the systemd
// notify protocol (against a fake notify socket), log formats (logfmt and
// JSON, flow_end fields) and the headers of customsd's own answers.
#include "enforce_harness.hpp"

#include "daemon/log.hpp"
#include "daemon/notify.hpp"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <optional>

using namespace customs::testing;
using namespace customs::testing::enforce;
using namespace customs::daemon;

namespace operator_test {

// A service manager's notify socket, as systemd makes it: an AF_UNIX datagram
// socket, bound to a path or to an abstract name ('@' in NOTIFY_SOCKET).
class notify_socket {
 public:
  explicit notify_socket(bool abstract) {
    static std::atomic<int> n{0};
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket");
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    socklen_t len = 0;
    const std::string id = std::to_string(::getpid()) + "-" + std::to_string(n++);
    if (abstract) {
      const std::string name = "customs-notify-test-" + id;
      std::memcpy(un.sun_path + 1, name.data(), name.size());
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
      address_ = "@" + name;
    } else {
      path_ = test_dir("operator") / ("notify-" + id + ".sock");
      std::filesystem::remove(path_);
      std::memcpy(un.sun_path, path_.c_str(), path_.string().size());
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.string().size() + 1);
      address_ = path_.string();
    }
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&un), len) != 0) throw std::runtime_error("bind");
  }
  ~notify_socket() {
    ::close(fd_);
    if (!path_.empty()) std::filesystem::remove(path_);
  }
  [[nodiscard]] const std::string& address() const { return address_; }

  // The next datagram, or nothing after `timeout`.
  std::optional<std::string> next(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }
  // The next datagram that is not a watchdog ping.
  std::optional<std::string> next_state(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    for (;;) {
      auto m = next(timeout);
      if (!m || *m != "WATCHDOG=1") return m;
    }
  }

 private:
  int fd_ = -1;
  std::filesystem::path path_;
  std::string address_;
};

// The WATCHDOG=1 datagrams that arrive within `window` (0: those queued now).
int count_pings(notify_socket& sock, std::chrono::milliseconds window) {
  const auto until = std::chrono::steady_clock::now() + window;
  int pings = 0;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    const auto m = sock.next(std::max(left, std::chrono::milliseconds(0)));
    if (!m) return pings;
    if (*m == "WATCHDOG=1") ++pings;
  }
}

// customsd's log lines (process-wide) read from a pipe while it lives.
class log_capture {
 public:
  log_capture() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    read_ = fds[0];
    write_ = fds[1];
    set_log_fd(write_);
    reader_ = std::thread([this] {
      char buf[4096];
      for (;;) {
        const ssize_t n = ::read(read_, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        std::lock_guard lock(mutex_);
        text_.append(buf, static_cast<std::size_t>(n));
        cv_.notify_all();
      }
    });
  }
  ~log_capture() {
    set_log_fd(-1);
    set_log_format(log_format::logfmt);
    set_log_level(log_level::error);
    ::close(write_);
    reader_.join();
    ::close(read_);
  }
  // The first complete line holding `needle`, or "" after 10 s.
  std::string line_with(const std::string& needle) {
    std::unique_lock lock(mutex_);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      std::size_t start = 0;
      for (auto nl = text_.find('\n'); nl != std::string::npos; nl = text_.find('\n', start)) {
        const std::string line = text_.substr(start, nl - start);
        if (line.find(needle) != std::string::npos) return line;
        start = nl + 1;
      }
      if (cv_.wait_until(lock, until) == std::cv_status::timeout) return {};
    }
  }
  std::string text() {
    std::lock_guard lock(mutex_);
    return text_;
  }

 private:
  int read_ = -1, write_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::string text_;
};

std::filesystem::path write_file(const std::string& name, const std::string& text) {
  const auto p = test_dir("operator") / name;
  std::ofstream(p) << text;
  return p;
}

const std::string minimal_config =
    "version: 1\n"
    "listeners:\n"
    "  - {name: edge, address: 127.0.0.1, port: 0}\n"
    "admin: {address: 127.0.0.1, port: 0}\n"
    "routes:\n"
    "  - {prefix: /openai/, upstream: \"http://127.0.0.1:9\", dialect: openai, jurisdiction: US}\n"
    "threads: 1\n"
    "drain_timeout: 5s\n";

// logfmt's value at `key` in `line`, unquoted and unescaped ("" if absent).
std::string logfmt_value(const std::string& line, const std::string& key) {
  const auto at = line.find(" " + key + "=");
  if (at == std::string::npos) return {};
  std::size_t i = at + key.size() + 2;
  if (i >= line.size() || line[i] != '"') return line.substr(i, line.find(' ', i) - i);
  std::string v;
  for (++i; i < line.size() && line[i] != '"'; ++i) {
    if (line[i] != '\\') {
      v += line[i];
      continue;
    }
    const char e = line[++i];
    if (e == 'n') v += '\n';
    else if (e == 'r') v += '\r';
    else if (e == 't') v += '\t';
    else if (e == 'x') {
      v += static_cast<char>(std::stoi(line.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else v += e;
  }
  return v;
}

}  // namespace operator_test

using namespace operator_test;

// ---- command line ------------------------------------------------------------

TEST_CASE("operator: customsd -t checks the config as --check-config does") {
  const auto good = write_file("t-good.yaml", minimal_config);
  auto r = run_program({customsd_path(), "-t", "--config", good.string()});
  CHECK(r.exit_code == 0);
  CHECK(r.out == good.string() + ": ok (1 listeners, 1 routes, no rules)\n");
  const auto bad = write_file("t-bad.yaml", minimal_config + "colour: red\n");
  r = run_program({customsd_path(), "--config", bad.string(), "-t"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("E_UNKNOWN_KEY") != std::string::npos);
}

TEST_CASE("operator: customsd --help lists its options and exits 0") {
  const auto r = run_program({customsd_path(), "--help"});
  CHECK(r.exit_code == 0);
  for (const char* option : {"--config", "--check-config", "-t", "--version", "--help", "NOTIFY_SOCKET"}) {
    INFO(option);
    CHECK(r.out.find(option) != std::string::npos);
  }
}

// ---- metrics -----------------------------------------------------------------

TEST_CASE("operator: metrics carry customs_build_info with the version, and no customs_up") {
  running_server s(test_config());
  const auto m = scrape(s.admin_port());
  CHECK(m.find("# TYPE customs_build_info gauge\n") != std::string::npos);
  CHECK(metric(m, std::string("customs_build_info{version=\"") + CUSTOMS_VERSION + "\"}") == 1);
  // Prometheus records `up` for every target it scrapes.
  CHECK(m.find("customs_up ") == std::string::npos);
  CHECK(m.find("customs_up\n") == std::string::npos);
}

// ---- systemd notify ------------------------------------------------------------

TEST_CASE("operator: the notifier sends one datagram to a path socket and to an abstract one") {
  for (const bool abstract : {false, true}) {
    INFO((abstract ? "abstract" : "path"));
    notify_socket sock(abstract);
    const service_notifier n(sock.address());
    REQUIRE(n.enabled());
    CHECK_FALSE(n.send("READY=1\nSTATUS=x"));
    CHECK(sock.next() == std::optional<std::string>("READY=1\nSTATUS=x"));
  }
  CHECK_THROWS_AS(service_notifier("relative/path"), std::invalid_argument);
  CHECK_THROWS_AS(service_notifier("vsock:2:1234"), std::invalid_argument);
  CHECK_FALSE(service_notifier().enabled());
  CHECK_FALSE(service_notifier().send("READY=1"));  // disabled: nothing, no error
  // Nobody listening: an error to report, not an exception or a stall.
  const service_notifier gone("@customs-notify-test-nobody-" + std::to_string(::getpid()));
  CHECK(gone.send("READY=1"));
}

TEST_CASE("operator: the server notifies READY=1 once listening, RELOADING=1 and READY=1 around a reload, STOPPING=1 at the drain") {
  notify_socket sock(true);
  server_options o;
  o.notify = std::make_shared<service_notifier>(sock.address());
  auto s = std::make_unique<server>(test_config(), std::move(o));
  CHECK_FALSE(sock.next(std::chrono::milliseconds(100)));  // not before start()
  s->start();
  const auto ready = sock.next();
  REQUIRE(ready);
  CHECK(ready->starts_with("READY=1\n"));

  // A reload that applies, then one that is rejected: both end with READY=1.
  auto r = s->reload(test_config());
  CHECK(r.ok);
  const auto reloading = sock.next();
  REQUIRE(reloading);
  CHECK(reloading->starts_with("RELOADING=1\nMONOTONIC_USEC="));
  const auto usec = std::stoull(reloading->substr(std::strlen("RELOADING=1\nMONOTONIC_USEC=")));
  CHECK(usec > 0);
  CHECK(usec <= service_notifier::monotonic_usec());
  const auto reloaded = sock.next();
  REQUIRE(reloaded);
  CHECK(reloaded->starts_with("READY=1\n"));
  r = s->reload_from_file();  // the config came from no file: rejected
  CHECK_FALSE(r.ok);
  CHECK(sock.next().value_or("").starts_with("RELOADING=1\n"));
  const auto kept = sock.next();
  CHECK(kept.value_or("").starts_with("READY=1\n"));
  CHECK(kept.value_or("").find("rejected") != std::string::npos);

  s->drain();
  CHECK(sock.next().value_or("").starts_with("STOPPING=1"));
  s->wait();
  s.reset();
  CHECK_FALSE(sock.next(std::chrono::milliseconds(100)));  // STOPPING=1 once
}

TEST_CASE("operator: the server pings the watchdog every half period while its threads run") {
  notify_socket sock(false);
  server_options o;
  o.notify = std::make_shared<service_notifier>(sock.address(), std::chrono::milliseconds(200));
  auto c = test_config();
  c.threads = 2;
  running_server s(std::move(c), std::move(o));
  CHECK(sock.next().value_or("").starts_with("READY=1"));
  // Every 100 ms: about 15 in 1.5 s; a loaded machine may delay a few.
  const int pings = operator_test::count_pings(sock, std::chrono::milliseconds(1500));
  CHECK(pings >= 7);
  CHECK(pings <= 17);
}

namespace operator_test {

// Holds its worker thread (a bug's busy loop or a blocking call) for `hold`,
// then answers 200 itself.
class stalling_filter final : public filter {
 public:
  stalling_filter(std::chrono::milliseconds hold, std::atomic<bool>& entered) : hold_(hold), entered_(entered) {}
  request_status on_request(request_state& req, const request_resume&) override {
    entered_ = true;
    std::this_thread::sleep_for(hold_);
    req.response.status = 200;
    req.response.headers = {{"Content-Type", "text/plain"}};
    req.response.body = "ok";
    return request_status::respond;
  }

 private:
  std::chrono::milliseconds hold_;
  std::atomic<bool>& entered_;
};

}  // namespace operator_test

TEST_CASE("operator: a worker thread that stops running handlers stops the watchdog pings until it runs again") {
  notify_socket sock(true);
  server_options o;
  o.notify = std::make_shared<service_notifier>(sock.address(), std::chrono::milliseconds(200));
  // The stall is long against the windows below, and the test waits until the
  // worker is inside it (a slow sanitizer build may take a while to connect).
  std::atomic<bool> entered{false};
  o.filters = [&entered](const route_config&) {
    return std::vector<filter_factory>{[&entered](const flow_info&) {
      return std::make_unique<operator_test::stalling_filter>(std::chrono::milliseconds(2500), entered);
    }};
  };
  running_server s(test_config({make_route("/stall/", "http://127.0.0.1:9")}), std::move(o));
  CHECK(sock.next().value_or("").starts_with("READY=1"));
  CHECK(operator_test::count_pings(sock, std::chrono::milliseconds(400)) >= 2);  // pinging while idle

  std::thread client([&] {
    http_client c(s.port());
    CHECK(c.request("GET", "/stall/x").status == 200);
  });
  // Within two ticks of the stall the pings stop: one may still go out for
  // the handler the worker ran just before it.
  for (int i = 0; i < 1000 && !entered; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!entered) {
    client.join();
    FAIL("the request never reached the stalling filter");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  (void)operator_test::count_pings(sock, std::chrono::milliseconds(0));
  CHECK(operator_test::count_pings(sock, std::chrono::milliseconds(500)) == 0);
  client.join();
  CHECK(operator_test::count_pings(sock, std::chrono::milliseconds(600)) >= 2);  // running again
}

TEST_CASE("operator: customsd under systemd's NOTIFY_SOCKET and WATCHDOG_USEC reports ready, reloads, watchdog and stopping") {
  notify_socket sock(true);
  const auto file = write_file("notify.yaml", minimal_config);
  customsd_process p(file, {"NOTIFY_SOCKET=" + sock.address(), "WATCHDOG_USEC=400000"});
  CHECK(sock.next_state().value_or("").starts_with("READY=1"));
  // A ping within the half period (200 ms), with some slack for a loaded machine.
  CHECK(sock.next(std::chrono::seconds(2)) == std::optional<std::string>("WATCHDOG=1"));
  p.signal(SIGHUP);
  CHECK(sock.next_state().value_or("").starts_with("RELOADING=1\nMONOTONIC_USEC="));
  CHECK(sock.next_state().value_or("").starts_with("READY=1"));
  p.signal(SIGTERM);
  CHECK(sock.next_state().value_or("").starts_with("STOPPING=1"));
  CHECK(p.wait_exit(std::chrono::seconds(10)) == 0);
}

TEST_CASE("operator: a NOTIFY_SOCKET of an unsupported form is logged and customsd runs without it") {
  const auto file = write_file("notify-bad.yaml", minimal_config);
  customsd_process p(file, {"NOTIFY_SOCKET=vsock:2:1"});
  const auto line = p.wait_for_log("event=notify_disabled", std::chrono::seconds(5));
  CHECK(line.find("level=warn") != std::string::npos);
  p.signal(SIGTERM);
  CHECK(p.wait_exit(std::chrono::seconds(10)) == 0);
}

// ---- log formats -------------------------------------------------------------

TEST_CASE("operator: config log.format takes logfmt or json") {
  auto c = load_config(write_file("fmt-json.yaml", minimal_config + "log: {format: json}\n"));
  CHECK(c.log.format == log_format::json);
  c = load_config(write_file("fmt-default.yaml", minimal_config));
  CHECK(c.log.format == log_format::logfmt);
  try {
    (void)load_config(write_file("fmt-bad.yaml", minimal_config + "log: {format: xml}\n"));
    FAIL("accepted format: xml");
  } catch (const config_error& e) {
    REQUIRE(!e.diagnostics().empty());
    CHECK(e.diagnostics()[0].to_string().find("E_VALUE: log.format: expected logfmt or json") != std::string::npos);
  }
}

TEST_CASE("operator: hostile values stay in one log line in both formats and read back as written") {
  const std::string hostile = "/a\"b\\c d=e\nlevel=error x\r\t\x01\x1b[31m\x7f/";
  const std::string not_utf8 = "t\xff\xfe" "en\xc3";  // invalid bytes, a cut sequence
  log_capture cap;
  set_log_level(log_level::info);

  set_log_format(log_format::logfmt);
  log_line(log_level::info, "hostile_logfmt").kv("route", hostile).kv("tenant", not_utf8).kv("n", 3)
      .kv("rules", std::vector<std::string>{"a.b", "c"}).kv("cut", true).ms("ms", 1500000);
  const auto l = cap.line_with("event=hostile_logfmt");
  REQUIRE(!l.empty());
  CHECK(l.find('\r') == std::string::npos);
  CHECK(l.find('\x01') == std::string::npos);
  CHECK(l.find('\x1b') == std::string::npos);
  CHECK(logfmt_value(l, "route") == hostile);
  CHECK(logfmt_value(l, "level") == "info");  // the injected "level=error" is inside a quoted value
  CHECK(logfmt_value(l, "n") == "3");
  CHECK(logfmt_value(l, "rules") == "a.b,c");
  CHECK(logfmt_value(l, "cut") == "true");
  CHECK(logfmt_value(l, "ms") == "1.500");

  set_log_format(log_format::json);
  log_line(log_level::warn, "hostile_json").kv("route", hostile).kv("tenant", not_utf8).kv("n", 3)
      .kv("rules", std::vector<std::string>{"a.b", "c\"d"}).kv("cut", false).ms("ms", 1500000);
  const auto j = cap.line_with("\"event\":\"hostile_json\"");
  REQUIRE(!j.empty());
  CHECK(j.find('\r') == std::string::npos);
  CHECK(j.find('\x01') == std::string::npos);
  const auto v = boost::json::parse(j).as_object();
  CHECK(v.at("level").as_string() == "warn");
  CHECK(v.at("event").as_string() == "hostile_json");
  CHECK(v.at("ts").as_string().size() == 24);
  CHECK(v.at("route").as_string() == hostile);
  CHECK(v.at("tenant").as_string() == "t\xEF\xBF\xBD\xEF\xBF\xBD" "en\xEF\xBF\xBD");
  CHECK(v.at("n").as_int64() == 3);
  CHECK(v.at("rules").as_array() == boost::json::array{"a.b", "c\"d"});
  CHECK(v.at("cut").as_bool() == false);
  CHECK(v.at("ms").as_double() == Approx(1.5));
  CHECK(j.find("\"ms\":1.500}") != std::string::npos);  // three decimals, not 1.5E0
  // Every line of the capture is one object.
  CHECK(std::count(j.begin(), j.end(), '\n') == 0);
}

namespace operator_test {

// An enforcing server whose flows are all logged, in `format`.
config logged_config(const trail_files& t, std::uint16_t provider, log_format format) {
  auto c = enforcing_config(t, provider);
  c.log.level = log_level::info;
  c.log.flows = true;
  c.log.format = format;
  return c;
}

}  // namespace operator_test

TEST_CASE("operator: flow_end names the flow's source, destination, tenant, verdict, rules, tokens and timings (logfmt)") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  log_capture cap;
  enforced_server s(logged_config(t, provider.port(), log_format::logfmt));

  auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body("请帮我核对身份证号：11010519491231002X，谢谢", false));
  CHECK(r.status == 451);
  const auto flow = r.header("X-Customs-Flow");
  auto l = cap.line_with("event=flow_end flow=" + flow);
  INFO(l);
  CHECK(logfmt_value(l, "route") == "/openai-us/");
  CHECK(logfmt_value(l, "src") == "CN");
  CHECK(logfmt_value(l, "dst") == "US");
  CHECK(logfmt_value(l, "tenant") == "demo");
  CHECK(logfmt_value(l, "verdict") == "block");
  CHECK(logfmt_value(l, "rules") == "cn.pipl.sensitive.block");
  CHECK(logfmt_value(l, "status") == "451");
  CHECK(!logfmt_value(l, "bytes_in").empty());
  CHECK(!logfmt_value(l, "inspect_ms").empty());
  CHECK(!logfmt_value(l, "duration_ms").empty());

  r = post(s.port(), "/openai-cn/v1/chat/completions", chat_body("hello", false));
  CHECK(r.status == 200);
  l = cap.line_with("event=flow_end flow=" + r.header("X-Customs-Flow"));
  CHECK(logfmt_value(l, "dst") == "CN");
  CHECK(logfmt_value(l, "verdict") == "allow");
  CHECK(logfmt_value(l, "rules") == "");
  CHECK(logfmt_value(l, "tokens_in") == "11");
  CHECK(!logfmt_value(l, "tokens_out").empty());
  CHECK(!logfmt_value(l, "audit_wait_ms").empty());
}

TEST_CASE("operator: flow_end in JSON is one object per line, with a hostile tenant escaped") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  log_capture cap;
  auto c = logged_config(t, provider.port(), log_format::json);
  const std::string tenant = "ac\"me\n{\"verdict\":\"allow\"}\x01";
  c.listeners[0].default_source = source_spec{"CN", tenant};
  // main() sets the format before the enforcer opens the trail; the harness
  // makes the enforcer first.
  set_log_format(log_format::json);
  enforced_server s(std::move(c));
  const auto r = post(s.port(), "/openai-us/v1/chat/completions", chat_body("请帮我核对身份证号：11010519491231002X，谢谢", false));
  CHECK(r.status == 451);
  const auto l = cap.line_with("\"event\":\"flow_end\",\"flow\":\"" + r.header("X-Customs-Flow") + "\"");
  INFO(l);
  REQUIRE(!l.empty());
  const auto v = boost::json::parse(l).as_object();
  CHECK(v.at("level").as_string() == "info");
  CHECK(v.at("route").as_string() == "/openai-us/");
  CHECK(v.at("src").as_string() == "CN");
  CHECK(v.at("dst").as_string() == "US");
  CHECK(v.at("tenant").as_string() == tenant);
  CHECK(v.at("verdict").as_string() == "block");
  CHECK(v.at("rules").as_array() == boost::json::array{"cn.pipl.sensitive.block"});
  CHECK(v.at("status").as_int64() == 451);
  CHECK(v.at("bytes_in").as_int64() > 0);
  CHECK(v.at("cut").as_bool() == false);
  CHECK(v.at("duration_ms").is_number());
  // The other lines (listening, audit_open...) are JSON too.
  const auto all = cap.text();
  std::size_t start = 0;
  for (auto nl = all.find('\n'); nl != std::string::npos; nl = all.find('\n', start)) {
    const auto line = all.substr(start, nl - start);
    INFO(line);
    CHECK_NOTHROW(boost::json::parse(line));
    start = nl + 1;
  }
}

TEST_CASE("operator: a reload change that needs a restart is logged at warn, a live one at info") {
  log_capture cap;
  auto c = test_config();
  c.log.level = log_level::info;
  running_server s(c);
  auto next = c;
  next.threads = 2;                                         // restart needed
  next.drain_timeout = std::chrono::seconds(7);             // live
  const auto r = s.get().reload(next);
  REQUIRE(r.ok);
  const auto restart = cap.line_with("restart needed: threads");
  CHECK(restart.find("level=warn event=reload_change") != std::string::npos);
  const auto live = cap.line_with("drain_timeout: 5000ms => 7000ms");
  CHECK(live.find("level=info event=reload_change") != std::string::npos);
}

// ---- customsd's own answers --------------------------------------------------

TEST_CASE("operator: a 451 that customsd writes in place of the upstream's answer carries none of its headers") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  enforced_server s(enforcing_config(t, provider.port()));
  script sc;
  sc.extra_headers = {{"X-Upstream-Request-Id", "req-123"}};
  sc.text = "nothing to see";
  provider.set_script(sc);
  auto r = post(s.port(), "/openai-cn/v1/chat/completions", chat_body("hi", false));
  CHECK(r.status == 200);
  // A relayed answer is the upstream's, with its headers.
  CHECK(r.header("Server") == "customs-fake-provider");
  CHECK(r.header("X-Upstream-Request-Id") == "req-123");

  sc.text = "The key is AKIAUJZDE8GXD6NCF10E";
  provider.set_script(sc);
  r = post(s.port(), "/openai-cn/v1/chat/completions", chat_body("key?", false));
  INFO(r.body);
  CHECK(r.status == 451);
  CHECK(r.header("X-Customs-Response-Verdict") == "block");
  CHECK(r.header("Server").empty());
  CHECK(r.header("X-Upstream-Request-Id").empty());
  CHECK(r.header("Content-Type") == "application/json");
  CHECK(r.header("Content-Length") == std::to_string(r.body.size()));
}

// ---- reload errors -----------------------------------------------------------

TEST_CASE("operator: a rejected reload reports every error of the rule files, not only the first") {
  temp_dir dir;
  trail_files t(dir.path());
  fake_provider provider;
  auto c = enforcing_config(t, provider.port());
  enforced_server s(c);

  // The test pack with two faults: two rules naming detectors that do not exist.
  std::string pack = slurp(test_rules("responses.yaml"));
  const auto rules_at = pack.find("  - id: test.response.phone.redact");
  const auto tests_at = pack.find("\ntests:");
  REQUIRE(rules_at != std::string::npos);
  REQUIRE(tests_at != std::string::npos);
  std::string second = pack.substr(rules_at, tests_at - rules_at);
  second.replace(second.find("phone.redact"), 12, "phone.second");
  second.replace(second.find("cn.mobile"), 9, "cn.mobiel");
  pack.insert(tests_at, "\n" + second);
  pack.replace(pack.find("cn.mobile"), 9, "cn.mobil");
  const auto broken = dir.path() / "broken.yaml";
  std::ofstream(broken) << pack;

  auto next = c;
  next.rules = {shipped_rules(), broken};
  const auto r = s.server().reload(next);
  REQUIRE_FALSE(r.ok);
  std::string all;
  for (const auto& e : r.errors) all += e + "\n";
  INFO(all);
  CHECK(all.find("'cn.mobil'") != std::string::npos);
  CHECK(all.find("'cn.mobiel'") != std::string::npos);
  // One error a line, as POST /reload prints them (400).
  for (const auto& e : r.errors) CHECK(e.find('\n') == std::string::npos);
}
