// Process faults: a second customsd on the same port, a second SIGTERM, a
// SIGKILL under load. Real processes, real signals, the real audit trail.
#include "enforced.hpp"

#include <netinet/in.h>

using namespace customs::testing;
using namespace customs::testing::hostile;

namespace {

// The listener's and the admin listener's ports (the first and second
// "port: 0}" of relay_config).
std::string with_ports(std::string cfg, std::uint16_t listener, std::uint16_t admin) {
  const auto l = cfg.find("port: 0}");
  const auto a = cfg.find("port: 0}", l + 1);
  cfg.replace(a, 8, "port: " + std::to_string(admin) + "}");
  cfg.replace(l, 8, "port: " + std::to_string(listener) + "}");
  return cfg;
}

// Binds an IPv4 TCP socket the way a program sharing a port does
// (SO_REUSEPORT and SO_REUSEADDR) to addr:port (port 0: any free one).
// Returns the descriptor, or -1 with errno set by the failing call.
int bind_sharing(in_addr_t addr, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = addr;
  sa.sin_port = htons(port);
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

}  // namespace

TEST_CASE("process: a second customsd on the same listener port exits 2, the first keeps all traffic") {
  fake_provider up;
  const auto port = closed_port();
  daemon_under_test first(with_ports(relay_config(up.port()), port, 0));
  REQUIRE(first.port() == port);
  const auto file = write_file(test_dir("hostile-second") / "second.yaml", with_ports(relay_config(up.port()), port, 0));
  const auto r = run_program({customsd_path(), "--config", file.string()});
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("listener edge: cannot listen on 127.0.0.1:" + std::to_string(port) +
                   ": another customsd is listening on it") != std::string::npos);
  for (int i = 0; i < 20; ++i) {
    http_client c(port);
    CHECK(c.request("GET", "/no-such-route/").status == 404);
  }
  // Each request is counted just after its answer's last byte was sent (so
  // the twentieth may not be yet when the client has read it): polled.
  CHECK(await_metric(first.admin_port(), R"(customs_requests_total{route="none",status="404"})", 20) == 20);
}

TEST_CASE("process: a port held by another program with SO_REUSEPORT is refused at start") {
  const int fd = bind_sharing(htonl(INADDR_LOOPBACK), 0);
  REQUIRE(fd >= 0);
  REQUIRE(::listen(fd, 4) == 0);
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  const std::uint16_t port = ntohs(sa.sin_port);
  const auto file = write_file(test_dir("hostile-held") / "held.yaml", with_ports(relay_config(9), port, 0));
  const auto r = run_program({customsd_path(), "--config", file.string()});
  ::close(fd);
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("the address is in use by another process") != std::string::npos);
}

// A program started after customsd, as the same user, that binds the
// listener's port with SO_REUSEPORT (and SO_REUSEADDR) would join a port
// group and receive part of the traffic uninspected. customsd's listening
// socket does not take part in port sharing, so the bind fails, for IPv4 and
// for a wildcard address on the same port.
TEST_CASE("process: a program binding a running customsd's port with SO_REUSEPORT gets EADDRINUSE") {
  fake_provider up;
  // Two workers: both accept on the one listening socket.
  std::string cfg = relay_config(up.port());
  cfg.replace(cfg.find("threads: 1"), 10, "threads: 2");
  daemon_under_test first(cfg);
  const std::uint16_t port = first.port();
  for (const in_addr_t addr : {htonl(INADDR_LOOPBACK), htonl(INADDR_ANY)}) {
    const int fd = bind_sharing(addr, port);
    const int err = errno;
    if (fd >= 0) ::close(fd);
    INFO("address " << (addr == htonl(INADDR_ANY) ? "0.0.0.0" : "127.0.0.1"));
    CHECK(fd == -1);
    CHECK(err == EADDRINUSE);
  }
  for (int i = 0; i < 10; ++i) {
    http_client c(port);
    CHECK(c.request("GET", "/no-such-route/").status == 404);
  }
  CHECK(await_metric(first.admin_port(), R"(customs_requests_total{route="none",status="404"})", 10) == 10);
}

TEST_CASE("process: a second customsd on the same admin port exits 2") {
  fake_provider up;
  const auto admin = closed_port();
  daemon_under_test first(with_ports(relay_config(up.port()), 0, admin));
  REQUIRE(first.admin_port() == admin);
  const auto file = write_file(test_dir("hostile-admin") / "admin.yaml", with_ports(relay_config(up.port()), 0, admin));
  const auto r = run_program({customsd_path(), "--config", file.string()});
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("admin: cannot listen on 127.0.0.1:" + std::to_string(admin)) != std::string::npos);
  http_client c(first.admin_port());
  CHECK(c.request("GET", "/healthz").status == 200);
}

TEST_CASE("process: after a second SIGTERM every flow cut has its flow_closed record and the trail verifies") {
  temp_dir dir;
  enforce::trail_files t(dir.path());
  fake_provider provider;
  script sc;
  sc.text = std::string(400, 'w');
  sc.delta_bytes = 8;
  sc.event_interval = std::chrono::milliseconds(100);  // about 5 s per stream
  provider.set_script(sc);
  const auto file = write_file(dir.path() / "customsd.yaml", enforcing_yaml(t, provider.port(), "drain_timeout: 60s\n"));
  customsd_process p(file);
  std::vector<std::unique_ptr<http_client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<http_client>(p.port()));
    clients.back()->send_request("POST", "/openai-us/v1/chat/completions", enforce::chat_body("hello", true),
                                 {{"Content-Type", "application/json"}});
    clients.back()->start_streamed_response();
    REQUIRE(clients.back()->streamed_status() == 200);
    REQUIRE(clients.back()->next_piece().has_value());
  }
  p.signal(SIGTERM);
  (void)p.wait_for_log("event=draining", std::chrono::seconds(5));
  p.signal(SIGTERM);
  CHECK(p.wait_exit(std::chrono::seconds(10)) == 0);
  INFO(p.log());

  const auto flows = trail_flows(t);
  CHECK(flows.size() == 3);
  for (const auto& [id, kinds] : flows) {
    INFO("flow " << id);
    CHECK(std::count(kinds.begin(), kinds.end(), customs::audit::record_kind::flow_opened) == 1);
    CHECK(std::count(kinds.begin(), kinds.end(), customs::audit::record_kind::flow_closed) == 1);
    const auto recs = enforce::flow_records(t, id);
    REQUIRE(recs.size() == 2);
    CHECK(recs[1].payload.at("failure").as_string() == "draining");
    CHECK(recs[1].payload.at("cut").as_bool());
  }
  const auto v = enforce::verify_trail(t);
  INFO((v.failures.empty() ? std::string() : v.failures[0].detail));
  CHECK(v.ok());
}

TEST_CASE("process: SIGKILL under load leaves a trail that verifies and holds every answered flow") {
  temp_dir dir;
  enforce::trail_files t(dir.path());
  fake_provider provider;
  const auto file = write_file(dir.path() / "customsd.yaml", enforcing_yaml(t, provider.port()));
  std::mutex mutex;
  std::vector<std::string> answered;  // flows whose answer (200 or 451) the client got
  std::vector<unsigned> wrong;  // answers other than 451 (resident ID) and 200 (clean)
  std::size_t forwarded_ids = 0;
  {
    customsd_process p(file);
    std::atomic<bool> stop{false};
    std::vector<std::thread> load;
    for (int i = 0; i < 2; ++i) {
      load.emplace_back([&, i] {
        for (int n = 0; !stop; ++n) {
          try {
            const bool id = (n + i) % 2 == 0;
            const auto r = enforce::post(p.port(), "/openai-us/v1/chat/completions",
                                         enforce::chat_body(id ? resident_id_prompt() : "hello", false));
            std::lock_guard lock(mutex);
            if (r.status == 200 || r.status == 451) answered.push_back(r.header("X-Customs-Flow"));
            if (r.status != (id ? 451u : 200u)) wrong.push_back(r.status);
          } catch (const std::exception&) {
            // The process was killed mid-request.
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    p.signal(SIGKILL);
    stop = true;
    for (auto& th : load) th.join();
    CHECK(p.wait_exit(std::chrono::seconds(5)) == -1);  // killed, not exited
  }
  CHECK(wrong.empty());
  REQUIRE(answered.size() > 10);
  const auto flows = trail_flows(t);
  for (const auto& id : answered) {
    INFO("flow " << id);
    const auto it = flows.find(id);
    REQUIRE(it != flows.end());
    CHECK(std::count(it->second.begin(), it->second.end(), customs::audit::record_kind::flow_opened) == 1);
  }
  for (const auto& r : provider.requests()) {
    if (r.body.find("11010519491231002X") != std::string::npos) ++forwarded_ids;
  }
  CHECK(forwarded_ids == 0);
  const auto v = enforce::verify_trail(t);
  INFO((v.failures.empty() ? std::string() : v.failures[0].detail));
  CHECK(v.ok());
  // The same trail opens again and goes on.
  customsd_process again(file);
  CHECK(enforce::post(again.port(), "/openai-us/v1/chat/completions", enforce::chat_body("hello", false)).status == 200);
  again.signal(SIGTERM);
  CHECK(again.wait_exit(std::chrono::seconds(10)) == 0);
  CHECK(enforce::verify_trail(t).ok());
}
