// customsd's own answers, needing no upstream: unknown routes, malformed and
// oversized requests, timeouts, the connection limit, unreachable upstreams,
// keep-alive on the client side, admin endpoints and metrics.
#include "harness.hpp"

#include <boost/json/parse.hpp>

#include <atomic>

#include <catch2/catch.hpp>

using namespace customs::testing;
using namespace customs::daemon;
namespace json = boost::json;

namespace {

json::value parse_json(const std::string& s) { return json::parse(s); }

// The error shape of each dialect, with the status-derived fields.
void check_openai_error(const http_response& r, unsigned status, const std::string& code) {
  CHECK(r.status == status);
  CHECK(r.header("Content-Type") == "application/json");
  const auto v = parse_json(r.body);
  CHECK(v.at("error").at("code").as_string() == code);
  CHECK(!v.at("error").at("message").as_string().empty());
  CHECK(v.at("error").at("param").is_null());
  CHECK(v.at("error").as_object().contains("type"));
}

}  // namespace

TEST_CASE("local: unknown route is 404 in OpenAI's shape and keeps the connection") {
  running_server s(test_config({make_route("/openai/", "http://127.0.0.1:" + std::to_string(closed_port()))}));
  http_client c(s.port());
  const auto r = c.request("GET", "/nowhere/v1/models");
  check_openai_error(r, 404, "customs_unknown_route");
  CHECK(parse_json(r.body).at("error").at("type").as_string() == "invalid_request_error");
  CHECK(r.keep_alive);
  CHECK(r.header("X-Customs-Flow").size() == 20);
  // Same socket, second request.
  const auto r2 = c.request("GET", "/also/nowhere");
  CHECK(r2.status == 404);
  CHECK(r2.header("X-Customs-Flow") != r.header("X-Customs-Flow"));
}

TEST_CASE("local: malformed request is 400 and the connection closes") {
  running_server s(test_config());
  http_client c(s.port());
  c.send("THIS IS NOT HTTP\r\n\r\n");
  const auto r = c.read_response();
  check_openai_error(r, 400, "customs_bad_request");
  CHECK_FALSE(r.keep_alive);
  CHECK(c.closed_by_peer());
}

TEST_CASE("local: a target with dot segments is 400 in the route's dialect") {
  running_server s(test_config({make_route("/anthropic/", "http://127.0.0.1:1", dialect::anthropic)}));
  http_client c(s.port());
  const auto r = c.request("GET", "/anthropic/v1/../../admin");
  CHECK(r.status == 400);
  const auto v = parse_json(r.body);
  CHECK(v.at("type").as_string() == "error");
  CHECK(v.at("error").at("type").as_string() == "invalid_request_error");
  CHECK(v.at("error").at("customs_code").as_string() == "customs_bad_request");
}

TEST_CASE("local: body over limits.request_body_bytes is 413 in the route's dialect") {
  auto cfg = test_config({make_route("/gemini/", "http://127.0.0.1:1", dialect::gemini)});
  cfg.limits.request_body_bytes = 1000;
  running_server s(cfg);
  {
    http_client c(s.port());  // declared length over the limit: refused before the body
    const auto r = c.request("POST", "/gemini/v1beta/models/m:generateContent", std::string(1001, 'x'));
    CHECK(r.status == 413);
    const auto v = parse_json(r.body);
    CHECK(v.at("error").at("code").as_int64() == 413);
    CHECK(v.at("error").at("status").as_string() == "INVALID_ARGUMENT");
    CHECK(v.at("error").at("customs_code").as_string() == "customs_body_too_large");
    CHECK_FALSE(r.keep_alive);
  }
  {
    http_client c(s.port());  // chunked: refused when the limit is passed
    c.send("POST /gemini/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
           "258\r\n" + std::string(600, 'a') + "\r\n258\r\n" + std::string(600, 'b') + "\r\n0\r\n\r\n");
    const auto r = c.read_response();
    CHECK(r.status == 413);
    CHECK(parse_json(r.body).at("error").at("customs_code").as_string() == "customs_body_too_large");
  }
}

TEST_CASE("local: head over limits.header_bytes is 431") {
  auto cfg = test_config();
  cfg.limits.header_bytes = 2048;
  running_server s(cfg);
  http_client c(s.port());
  const auto r = c.request("GET", "/x", {}, {{"X-Big", std::string(4000, 'h')}});
  check_openai_error(r, 431, "customs_header_too_large");
  // Under the limit: answered normally (404).
  http_client c2(s.port());
  CHECK(c2.request("GET", "/x", {}, {{"X-Big", std::string(1000, 'h')}}).status == 404);
}

TEST_CASE("local: a head not finished within limits.header_timeout is 408") {
  auto cfg = test_config();
  cfg.limits.header_timeout = std::chrono::milliseconds(200);
  running_server s(cfg);
  http_client c(s.port());
  c.send("GET /x HTTP/1.1\r\nHost: h\r\n");  // never finished
  const auto r = c.read_response();
  check_openai_error(r, 408, "customs_header_timeout");
  CHECK(c.closed_by_peer());
}

TEST_CASE("local: a body not finished within limits.body_timeout is 408") {
  auto cfg = test_config({make_route("/openai/", "http://127.0.0.1:1")});
  cfg.limits.body_timeout = std::chrono::milliseconds(200);
  running_server s(cfg);
  http_client c(s.port());
  c.send("POST /openai/v1/chat/completions HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n{\"partial\":");
  const auto r = c.read_response();
  check_openai_error(r, 408, "customs_header_timeout");
}

TEST_CASE("local: an idle keep-alive connection is closed after limits.idle_timeout") {
  auto cfg = test_config();
  cfg.limits.idle_timeout = std::chrono::milliseconds(200);
  running_server s(cfg);
  http_client c(s.port());
  CHECK(c.request("GET", "/x").status == 404);
  CHECK(c.closed_by_peer());
}

TEST_CASE("local: over limits.connections new connections get 503 at once") {
  auto cfg = test_config();
  cfg.limits.connections = 2;
  running_server s(cfg);
  std::optional<http_client> a(std::in_place, s.port());
  http_client b(s.port());
  CHECK(a->request("GET", "/x").status == 404);  // both are being served
  CHECK(b.request("GET", "/x").status == 404);
  http_client refused(s.port());
  const auto r = refused.read_response();  // without sending anything
  check_openai_error(r, 503, "customs_overloaded");
  CHECK(metric(scrape(s.admin_port()), "customs_connections_refused_total") == 1);
  // A connection closes: room again (once customsd saw it close).
  a.reset();
  unsigned status = 0;
  for (int i = 0; i < 100 && status != 404; ++i) {
    http_client again(s.port());
    again.send_request("GET", "/x", {});
    status = again.read_response().status;
    if (status != 404) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(status == 404);
}

TEST_CASE("local: unreachable upstream is 502 in the route's dialect") {
  running_server s(test_config({make_route("/anthropic/", "http://127.0.0.1:" + std::to_string(closed_port()),
                                           dialect::anthropic)}));
  http_client c(s.port());
  const auto r = c.request("POST", "/anthropic/v1/messages", R"({"model":"m"})");
  CHECK(r.status == 502);
  const auto v = parse_json(r.body);
  CHECK(v.at("type").as_string() == "error");
  CHECK(v.at("error").at("type").as_string() == "api_error");
  CHECK(v.at("error").at("customs_code").as_string() == "customs_upstream_unreachable");
  CHECK(r.keep_alive);  // customsd's own answer: the client connection stays usable
  CHECK(c.request("POST", "/anthropic/v1/messages", "{}").status == 502);
  CHECK(await_metric(s.admin_port(), R"(customs_requests_total{route="/anthropic/",status="502"})", 2) == 2);
  const auto m = scrape(s.admin_port());
  CHECK(metric(m, R"(customs_flow_failures_total{route="/anthropic/",reason="upstream_unreachable"})") == 2);
}

TEST_CASE("local: admin endpoints and metrics that move") {
  running_server s(test_config());
  http_client admin(s.admin_port());
  auto h = admin.request("GET", "/healthz");
  CHECK(h.status == 200);
  CHECK(h.body == "ok\n");
  auto ready = admin.request("GET", "/readyz");
  CHECK(ready.status == 200);
  CHECK(admin.request("GET", "/nope").status == 404);
  CHECK(admin.request("POST", "/metrics").status == 405);

  const auto before = scrape(s.admin_port());
  CHECK(before.find("# TYPE customs_requests_total counter") != std::string::npos);
  CHECK(before.find("# TYPE customs_request_duration_seconds histogram") != std::string::npos);
  CHECK(metric(before, R"(customs_requests_total{route="none",status="404"})") == 0);
  {
    http_client c(s.port());
    for (int i = 0; i < 3; ++i) CHECK(c.request("GET", "/x").status == 404);
    CHECK(metric(scrape(s.admin_port()), "customs_connections_active") == 1);
  }
  CHECK(await_metric(s.admin_port(), R"(customs_requests_total{route="none",status="404"})", 3) == 3);
  const auto after = scrape(s.admin_port());
  CHECK(metric(after, R"(customs_request_duration_seconds_count{route="none"})") == 3);
  CHECK(metric(after, R"(customs_ttfb_seconds_bucket{route="none",le="+Inf"})") == 3);
  CHECK(metric(after, R"(customs_sent_bytes_total{route="none"})") > 3 * 100);
  CHECK(metric(after, "customs_connections_accepted_total") >= 1);
}

TEST_CASE("local: reload applies routes and limits and reports what cannot change") {
  running_server s(test_config());
  http_client c(s.port());
  CHECK(c.request("GET", "/new/x").status == 404);
  auto next = test_config({make_route("/new/", "http://127.0.0.1:" + std::to_string(closed_port()))});
  next.threads = 4;
  next.limits.header_bytes = 4096;
  const auto r = s.get().reload(next);
  REQUIRE(r.ok);
  bool route_added = false, threads_kept = false, limit_changed = false;
  for (const auto& line : r.changes) {
    route_added = route_added || line.starts_with("route added: /new/");
    threads_kept = threads_kept || line.starts_with("restart needed: threads");
    limit_changed = limit_changed || line == "limits.header_bytes: 16384 => 4096";
  }
  CHECK(route_added);
  CHECK(threads_kept);
  CHECK(limit_changed);
  // The worker picks the new snapshot up for its next request.
  CHECK(c.request("GET", "/new/x").status == 502);
  CHECK(metric(scrape(s.admin_port()), R"(customs_reloads_total{result="ok"})") == 1);
}

TEST_CASE("local: a per-config chain builder runs once per load, when it throws, the reload is rejected") {
  std::atomic<int> calls{0};
  server_options o;
  o.filters_for_config = [&calls](const config& c) -> filter_chain_builder {
    ++calls;
    if (c.limits.header_bytes == 4096) throw std::runtime_error("rules/pack.yaml:3:1: error: E_TEST: broken pack");
    return default_filter_chain;
  };
  running_server s(test_config({make_route("/a/", "http://127.0.0.1:" + std::to_string(closed_port()))}), o);
  CHECK(calls == 1);
  auto next = test_config();  // no routes ...
  next.limits.header_bytes = 4096;  // ... and a "broken rule pack"
  const auto r = s.get().reload(next);
  CHECK_FALSE(r.ok);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].find("E_TEST") != std::string::npos);
  CHECK(calls == 2);
  http_client c(s.port());
  CHECK(c.request("GET", "/a/x").status == 502);  // the running routes stay
  CHECK(metric(scrape(s.admin_port()), R"(customs_reloads_total{result="failed"})") == 1);
  auto good = test_config();
  CHECK(s.get().reload(good).ok);
  CHECK(calls == 3);
  CHECK(c.request("GET", "/a/x").status == 404);
}
