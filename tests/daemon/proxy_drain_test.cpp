// Graceful drain: a stream in flight finishes, new connections are refused,
// readiness goes false, the process exits 0; past the deadline flows are cut.
#include "harness.hpp"
#include "proxy_fixtures.hpp"
#include "tests/support/fake_provider.hpp"

#include <catch2/catch.hpp>

#include <fstream>

using namespace customs::testing;
using namespace customs::daemon;

namespace {
}

TEST_CASE("drain: SIGTERM lets the stream in flight finish, refuses new connections, exits 0") {
  fake_provider up;
  script s;
  s.text = "slow words arrive one by one";
  s.delta_bytes = 5;
  s.what = fault::slow_events;
  s.event_interval = std::chrono::milliseconds(80);
  up.set_script(s);
  const auto file = test_dir("drain") / "customsd.yaml";
  std::ofstream(file) << "version: 1\n"
                         "listeners:\n  - {name: edge, address: 127.0.0.1, port: 0}\n"
                         "admin: {address: 127.0.0.1, port: 0}\n"
                         "routes:\n  - {prefix: /openai/, upstream: \"http://127.0.0.1:" << up.port()
                      << "\", dialect: openai, jurisdiction: US}\n"
                         "threads: 2\ndrain_timeout: 10s\n";
  customsd_process p(file);
  http_client idle(p.port());  // a keep-alive connection with nothing in flight
  CHECK(idle.request("GET", "/x").status == 404);
  http_client c(p.port());
  c.send_request("POST", "/openai/v1/chat/completions", chat_stream);
  c.start_streamed_response();
  REQUIRE(c.streamed_status() == 200);
  std::string body = c.next_piece().value_or("");

  p.signal(SIGTERM);
  p.wait_for_log("event=draining", std::chrono::seconds(5));
  {
    http_client admin(p.admin_port());
    CHECK(admin.request("GET", "/readyz").status == 503);
  }
  CHECK(idle.closed_by_peer());  // idle connections are closed at once
  // New connections are refused (no listener any more).
  bool refused = false;
  try {
    http_client late(p.port());
    late.send_request("GET", "/x", {});
    (void)late.read_response();
  } catch (const std::exception&) {
    refused = true;
  }
  CHECK(refused);
  // The stream goes on to its normal end.
  while (auto piece = c.next_piece()) body += *piece;
  CHECK(body.find("data: [DONE]") != std::string::npos);
  CHECK(body.find("\"error\"") == std::string::npos);
  CHECK(p.wait_exit(std::chrono::seconds(10)) == 0);
  CHECK(p.log().find("event=drained") != std::string::npos);
}

TEST_CASE("drain: past drain_timeout the flows in flight are cut and the server stops") {
  fake_provider up;
  script s;
  s.what = fault::stall_mid_stream;
  s.fault_after_events = 2;
  up.set_script(s);
  auto cfg = test_config({make_route("/openai/", "http://127.0.0.1:" + std::to_string(up.port()))});
  cfg.drain_timeout = std::chrono::milliseconds(300);
  server srv(cfg);
  srv.start();
  http_client c(srv.port("edge"));
  c.send_request("POST", "/openai/v1/chat/completions", chat_stream);
  c.start_streamed_response();
  REQUIRE(c.streamed_status() == 200);
  const auto started = std::chrono::steady_clock::now();
  srv.drain();
  srv.wait();
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
  std::string body;
  bool broken = false;
  try {
    while (auto piece = c.next_piece()) body += *piece;
  } catch (const std::exception&) {
    broken = true;  // cut: the connection closed mid-stream
  }
  CHECK((broken || body.find("customs_draining") != std::string::npos));
  CHECK(body.find("[DONE]") == std::string::npos);
}
