// No flow ends unrecorded: a flow whose coroutine is destroyed while it waits
// (the server stopped without a drain) still reaches on_flow_end, as cut by
// the shutdown; the worker goes on after a flow failed.
#include "harness.hpp"
#include "tests/support/fake_provider.hpp"

#include <catch2/catch.hpp>

#include <mutex>

using namespace customs::testing;
using namespace customs::daemon;

namespace {

struct ended {
  std::string failure;
  flow_outcome outcome;
  bool cut;
};

struct lab {
  std::mutex m;
  std::vector<ended> flows;
  std::vector<request_resume> held;  // pending decisions never made
  bool hold = true;
};

class holding_filter final : public filter {
 public:
  explicit holding_filter(lab& l) : lab_(l) {}
  request_status on_request(request_state&, const request_resume& resume) override {
    std::lock_guard g(lab_.m);
    if (!lab_.hold) return request_status::proceed;
    lab_.held.push_back(resume);
    return request_status::pending;
  }
  void on_flow_end(const flow_summary& s) noexcept override {
    std::lock_guard g(lab_.m);
    lab_.flows.push_back({std::string(s.failure), s.outcome, s.stream_cut});
  }

 private:
  lab& lab_;
};

server_options holding(lab& l) {
  server_options o;
  o.filters = [&l](const route_config&) {
    return std::vector<filter_factory>{[&l](const flow_info&) { return std::make_unique<holding_filter>(l); }};
  };
  return o;
}

}  // namespace

TEST_CASE("robust: flows still waiting when the server stops reach on_flow_end as draining") {
  fake_provider up;
  lab l;
  {
    running_server s(test_config({make_route("/openai/", "http://127.0.0.1:" + std::to_string(up.port()))}), holding(l));
    std::vector<std::unique_ptr<http_client>> clients;
    for (int i = 0; i < 3; ++i) {
      clients.push_back(std::make_unique<http_client>(s.port()));
      clients.back()->send_request("POST", "/openai/v1/chat/completions", R"({"model":"m","messages":[]})");
    }
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard g(l.m);
        if (l.held.size() == 3) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::lock_guard g(l.m);
    REQUIRE(l.held.size() == 3);
    REQUIRE(l.flows.empty());
  }  // stop() without a drain: the waiting coroutines are destroyed with their worker
  std::lock_guard g(l.m);
  REQUIRE(l.flows.size() == 3);
  for (const auto& f : l.flows) {
    CHECK(f.failure == "draining");
    CHECK(f.outcome == flow_outcome::failed);
  }
  CHECK(up.request_count() == 0);
}

TEST_CASE("robust: a streamed answer in flight when the server stops reaches on_flow_end as cut") {
  fake_provider up;
  script sc;
  sc.text = std::string(200, 'w');
  sc.what = fault::slow_events;
  sc.event_interval = std::chrono::milliseconds(100);
  up.set_script(sc);
  lab l;
  l.hold = false;
  {
    running_server s(test_config({make_route("/openai/", "http://127.0.0.1:" + std::to_string(up.port()))}), holding(l));
    http_client c(s.port());
    c.send_request("POST", "/openai/v1/chat/completions", R"({"model":"m","stream":true,"messages":[]})");
    c.start_streamed_response();
    REQUIRE(c.streamed_status() == 200);
    REQUIRE(c.next_piece().has_value());
  }
  std::lock_guard g(l.m);
  REQUIRE(l.flows.size() == 1);
  CHECK(l.flows[0].failure == "draining");
  CHECK(l.flows[0].cut);
}
