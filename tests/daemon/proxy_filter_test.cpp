// The filter phases of daemon/filter.hpp as a later enforcement filter will use
// them: asynchronous request decisions from another thread, local answers,
// request rewriting, event replacement and stopping, whole-body inspection, and
// end-of-flow for every flow.
#include "harness.hpp"
#include "proxy_fixtures.hpp"
#include "daemon/dialect/dialect.hpp"
#include "tests/support/fake_provider.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <thread>

using namespace customs::testing;
using namespace customs::daemon;

namespace {


struct ended_flow {
  flow_outcome outcome;
  std::string failure;
  unsigned status;
  bool cut;
  std::uint64_t events;
};

// What the test filters share with the test: decisions to make, threads to join,
// flows that ended.
struct filter_lab {
  std::mutex m;
  std::vector<ended_flow> ended;
  std::vector<std::thread> threads;
  std::function<request_status(request_state&, const request_resume&)> on_request;
  std::function<event_status(event_state&)> on_event;
  std::function<event_status(stream_end_state&)> on_stream_end;
  std::function<response_head_status(response_head_state&)> on_head;
  std::function<void(response_body_state&)> on_body;
  int events_seen_by_second = 0;

  ~filter_lab() {
    for (auto& t : threads) t.join();
  }
  // The flows ended so far, once there are n of them (or after 5 s): a flow's
  // end runs just after its last byte was sent, so the client may be faster.
  std::vector<ended_flow> flows(std::size_t n) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard l(m);
        if (ended.size() >= n) return ended;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::lock_guard l(m);
    return ended;
  }
};

class lab_filter final : public filter {
 public:
  explicit lab_filter(filter_lab& lab) : lab_(lab) {}
  request_status on_request(request_state& r, const request_resume& resume) override {
    return lab_.on_request ? lab_.on_request(r, resume) : request_status::proceed;
  }
  response_head_status on_response_head(response_head_state& h) override {
    return lab_.on_head ? lab_.on_head(h) : response_head_status::proceed;
  }
  event_status on_event(event_state& e) override { return lab_.on_event ? lab_.on_event(e) : event_status::pass; }
  event_status on_stream_end(stream_end_state& e) override {
    return lab_.on_stream_end ? lab_.on_stream_end(e) : event_status::pass;
  }
  void on_response_body(response_body_state& b) override {
    if (lab_.on_body) lab_.on_body(b);
  }
  void on_flow_end(const flow_summary& s) noexcept override {
    std::lock_guard l(lab_.m);
    lab_.ended.push_back({s.outcome, std::string(s.failure), s.status, s.stream_cut, s.events});
  }

 private:
  filter_lab& lab_;
};

// Second in the chain: sees what the first lets through.
class counting_filter final : public filter {
 public:
  explicit counting_filter(filter_lab& lab) : lab_(lab) {}
  event_status on_event(event_state&) override {
    ++lab_.events_seen_by_second;
    return event_status::pass;
  }

 private:
  filter_lab& lab_;
};

server_options lab_options(filter_lab& lab, bool with_counter = false) {
  server_options o;
  o.filters = [&lab, with_counter](const route_config&) {
    std::vector<filter_factory> chain;
    chain.push_back([&lab](const flow_info&) { return std::make_unique<lab_filter>(lab); });
    if (with_counter) chain.push_back([&lab](const flow_info&) { return std::make_unique<counting_filter>(lab); });
    return chain;
  };
  return o;
}


}  // namespace

TEST_CASE("filter: a request decided later on another thread, with a rewritten body and headers") {
  fake_provider up;
  filter_lab lab;
  lab.on_request = [&lab](request_state& req, const request_resume& resume) {
    std::lock_guard l(lab.m);
    lab.threads.emplace_back([&req, resume] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // "waiting for the audit record"
      req.body = R"({"model":"m","messages":[{"role":"user","content":"[REDACTED]"}]})";
      req.upstream_headers.push_back({"X-Customs-Tags", "pii.phone"});
      req.response_headers.push_back({"X-Customs-Verdict", "redact"});
      resume(request_status::proceed);
    });
    return request_status::pending;
  };
  running_server px(test_config({make_route("/openai/", url(up))}), lab_options(lab));
  http_client c(px.port());
  const auto r = c.request("POST", "/openai/v1/chat/completions", chat_whole);
  CHECK(r.status == 200);
  CHECK(r.header("X-Customs-Verdict") == "redact");
  const auto req = up.requests().at(0);
  CHECK(req.body.find("[REDACTED]") != std::string::npos);
  bool tagged = false;
  for (const auto& [k, v] : req.headers) tagged = tagged || (k == "X-Customs-Tags" && v == "pii.phone");
  CHECK(tagged);
  const auto flows = lab.flows(1);
  REQUIRE(flows.size() == 1);
  CHECK(flows[0].outcome == flow_outcome::relayed);
}

TEST_CASE("filter: a local answer (451) decided on another thread, nothing reaches the upstream") {
  fake_provider up;
  filter_lab lab;
  lab.on_request = [&lab](request_state& req, const request_resume& resume) {
    std::lock_guard l(lab.m);
    lab.threads.emplace_back([&req, resume] {
      req.response.status = 451;
      req.response.headers = {{"Content-Type", "application/json"}, {"X-Customs-Verdict", "block"}};
      req.response.body = error_body(dialect::anthropic, 451, "blocked by policy", "customs_blocked");
      resume(request_status::respond);
      resume(request_status::proceed);  // a second call is ignored
    });
    return request_status::pending;
  };
  running_server px(test_config({make_route("/anthropic/", url(up), dialect::anthropic)}), lab_options(lab));
  http_client c(px.port());
  const auto r = c.request("POST", "/anthropic/v1/messages", "{}");
  CHECK(r.status == 451);
  CHECK(r.header("X-Customs-Verdict") == "block");
  CHECK(r.body.find("\"permission_error\"") != std::string::npos);
  CHECK(r.keep_alive);
  CHECK(up.request_count() == 0);
  const auto flows = lab.flows(1);
  REQUIRE(flows.size() == 1);
  CHECK(flows[0].outcome == flow_outcome::answered);
  CHECK(flows[0].status == 451);
}

TEST_CASE("filter: a pending decision never made fails the flow (500 when abandoned, 504 at the deadline)") {
  fake_provider up;
  filter_lab lab;
  std::vector<request_resume> kept;
  std::atomic<bool> keep{false};
  lab.on_request = [&](request_state&, const request_resume& resume) {
    if (keep) kept.push_back(resume);  // kept but never called
    return request_status::pending;    // not kept: abandoned
  };
  auto cfg = test_config({make_route("/openai/", url(up))});
  cfg.limits.flow_timeout = std::chrono::milliseconds(300);
  running_server px(cfg, lab_options(lab));
  http_client c(px.port());
  const auto abandoned = c.request("POST", "/openai/v1/chat/completions", chat_whole);
  CHECK(abandoned.status == 500);
  CHECK(abandoned.body.find("customs_filter_error") != std::string::npos);
  keep = true;
  const auto late = c.request("POST", "/openai/v1/chat/completions", chat_whole);
  CHECK(late.status == 504);
  CHECK(late.body.find("customs_filter_timeout") != std::string::npos);
  kept.at(0)(request_status::proceed);  // too late: ignored, harmless
  CHECK(up.request_count() == 0);
  const auto flows = lab.flows(2);
  REQUIRE(flows.size() == 2);
  CHECK(flows[0].failure == "filter_error");
  CHECK(flows[1].failure == "filter_timeout");
}

TEST_CASE("filter: stopping a stream sends the filter's error event, no normal end, and drops the upstream connection") {
  fake_provider up;
  script s;
  s.text = "first second third fourth";
  s.delta_bytes = 6;
  up.set_script(s);
  filter_lab lab;
  int content_events = 0;
  int passed = 0;
  lab.on_event = [&](event_state& e) {
    if (e.event->data.find("third") == std::string_view::npos) {
      ++passed;
      return event_status::pass;
    }
    ++content_events;
    e.out.push_back(stream_error_event(dialect::openai, 451, "stopped by policy", "customs_blocked"));
    return event_status::stop;
  };
  running_server px(test_config({make_route("/openai/", url(up))}), lab_options(lab, true));
  http_client c(px.port());
  const auto r = c.request("POST", "/openai/v1/chat/completions", chat_stream);
  REQUIRE(r.status == 200);
  CHECK(r.body.ends_with(stream_error_event(dialect::openai, 451, "stopped by policy", "customs_blocked")));
  CHECK(r.body.find("[DONE]") == std::string::npos);
  CHECK(r.body.find("third") == std::string::npos);
  CHECK(r.keep_alive);
  CHECK(content_events == 1);
  CHECK(r.body.find("second") != std::string::npos);
  // The second filter saw only what passed the first (not the stop's own event).
  CHECK(passed >= 3);
  CHECK(lab.events_seen_by_second == passed);
  // The cut upstream connection was not pooled: the next request opens another.
  CHECK(c.request("POST", "/openai/v1/chat/completions", chat_whole).status == 200);
  CHECK(up.connections_accepted() == 2);
  const auto flows = lab.flows(2);
  REQUIRE(flows.size() == 2);
  CHECK(flows[0].outcome == flow_outcome::cut);
  CHECK(flows[0].cut);
  CHECK(flows[1].outcome == flow_outcome::relayed);
}

TEST_CASE("filter: replaced events go through the rest of the chain, stream end can add events") {
  fake_provider up;
  script s;
  s.text = "abcdefghij";
  s.delta_bytes = 5;
  up.set_script(s);
  filter_lab lab;
  lab.on_event = [](event_state& e) {
    if (e.event->data == "[DONE]") {
      e.out.push_back(": held back text flushed here\n\n");
      e.out.push_back(std::string(e.event->raw));
      return event_status::replace;
    }
    if (e.event->data.find("\"content\"") == std::string_view::npos) return event_status::pass;
    e.out.push_back(std::string(e.event->raw));
    e.out.push_back(": seen\n\n");
    return event_status::replace;
  };
  lab.on_stream_end = [](stream_end_state& e) {
    e.out.push_back(": end\n\n");
    return event_status::pass;
  };
  running_server px(test_config({make_route("/openai/", url(up))}), lab_options(lab, true));
  http_client c(px.port());
  const auto r = c.request("POST", "/openai/v1/chat/completions", chat_stream);
  REQUIRE(r.status == 200);
  INFO(r.body);
  std::size_t seen = 0;
  for (std::size_t at = r.body.find(": seen\n\n"); at != std::string::npos; at = r.body.find(": seen\n\n", at + 1)) ++seen;
  CHECK(seen == 3);  // the role chunk ("content":""), "abcde", "fghij"
  CHECK(r.body.find(": held back text flushed here\n\ndata: [DONE]\n\n: end\n\n") != std::string::npos);
  CHECK(r.body.ends_with(": end\n\n"));
  const auto flows = lab.flows(1);
  REQUIRE(flows.size() == 1);
  CHECK(flows[0].events == 5);  // role, abcde, fghij, finish, [DONE]
  // The second filter saw every upstream block plus the added ones (three
  // ": seen", one ": held back"); on_stream_end's blocks go straight out.
  CHECK(lab.events_seen_by_second == static_cast<int>(flows[0].events + seen + 1));
}

TEST_CASE("filter: a whole non-streamed body can be inspected and replaced before anything is sent") {
  fake_provider up;
  filter_lab lab;
  lab.on_head = [](response_head_state& h) {
    CHECK(h.kind == body_kind::whole);
    return response_head_status::inspect_body;
  };
  lab.on_body = [](response_body_state& b) {
    CHECK(b.body.find("Hello from the fake provider.") != std::string::npos);
    b.status = 451;
    b.body = error_body(dialect::openai, 451, "answer blocked", "customs_blocked");
    b.add_headers.push_back({"X-Customs-Verdict", "block"});
  };
  running_server px(test_config({make_route("/openai/", url(up))}), lab_options(lab));
  http_client c(px.port());
  const auto r = c.request("POST", "/openai/v1/chat/completions", chat_whole);
  CHECK(r.status == 451);
  CHECK(r.header("X-Customs-Verdict") == "block");
  CHECK(r.header("Content-Length") == std::to_string(r.body.size()));
  CHECK(r.body == error_body(dialect::openai, 451, "answer blocked", "customs_blocked"));
  // Over limits.response_body_bytes: 502, nothing of the body sent.
  script big;
  big.text = std::string(5000, 'z');
  up.set_script(big);
  auto cfg = test_config({make_route("/openai/", url(up))});
  cfg.limits.response_body_bytes = 2048;
  CHECK(px.get().reload(cfg).ok);
  const auto too_big = c.request("POST", "/openai/v1/chat/completions", chat_whole);
  CHECK(too_big.status == 502);
  CHECK(too_big.body.find("customs_response_too_large") != std::string::npos);
}

TEST_CASE("filter: end of flow runs for every flow: relayed, rejected bodies, failed upstreams, unknown routes excepted") {
  fake_provider up;
  filter_lab lab;
  auto cfg = test_config({make_route("/openai/", url(up)),
                          make_route("/down/", "http://127.0.0.1:" + std::to_string(closed_port()))});
  cfg.limits.request_body_bytes = 100;
  running_server px(cfg, lab_options(lab));
  http_client c(px.port());
  CHECK(c.request("POST", "/openai/v1/chat/completions", chat_stream).status == 200);
  CHECK(c.request("POST", "/down/v1/chat/completions", "{}").status == 502);
  CHECK(c.request("GET", "/unrouted").status == 404);  // no route, no chain
  http_client c2(px.port());
  CHECK(c2.request("POST", "/openai/v1/chat/completions", std::string(200, ' ')).status == 413);
  const auto flows = lab.flows(3);
  for (const auto& fl : flows) UNSCOPED_INFO("flow " << to_string(fl.outcome) << " " << fl.failure << " " << fl.status);
  REQUIRE(flows.size() == 3);
  CHECK(flows[0].outcome == flow_outcome::relayed);
  CHECK(flows[0].events > 3);
  CHECK(flows[1].failure == "upstream_unreachable");
  CHECK(flows[1].status == 502);
  CHECK(flows[2].failure == "body_too_large");
  CHECK(flows[2].status == 413);
}
