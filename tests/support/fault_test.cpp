// The fake provider's scripted faults, seen from a client: each one does what
// fake_provider.hpp promises, and the provider stops cleanly with faulted
// connections still open.

#include "tests/support/test_certs.hpp"
#include "tests/support/test_helpers.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include <thread>

namespace customs::testing::test {
namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
using namespace std::chrono_literals;

// How long a client waits before it concludes that nothing more is coming.
constexpr auto quiet = 300ms;

script faulty(fault what, std::size_t after = 1) {
  script s;
  s.what = what;
  s.fault_after_events = after;
  s.deltas = {"one ", "two ", "three ", "four"};
  return s;
}

// The complete SSE events in a partial body, and whether bytes of an incomplete
// event follow them.
std::vector<sse_event> events_in(const http_result& r, bool* partial_tail = nullptr) {
  std::string rest;
  auto events = parse_sse(r.body, &rest);
  if (partial_tail) *partial_tail = !rest.empty();
  return events;
}

bool json_parses(std::string_view s) {
  json::error_code ec;
  (void)json::parse(s, ec);
  return !ec;
}

}  // namespace

TEST_CASE("stall_before_headers reads the request and never answers") {
  connected c(faulty(fault::stall_before_headers));
  const auto r = c.client.post("/v1/chat/completions", R"({"stream":true})", quiet);
  CHECK(r.ec == beast::error::timeout);
  CHECK(r.status == 0);
  CHECK(r.body.empty());
  REQUIRE(c.provider.wait_for_requests(1, 5s));
  CHECK(c.provider.requests().at(0).body == R"({"stream":true})");
}

TEST_CASE("stall_mid_stream sends N events and then nothing, keeping the connection open") {
  SECTION("streamed") {
    connected c(faulty(fault::stall_mid_stream, 2));
    const auto r = c.client.post("/v1/chat/completions", R"({"stream":true})", quiet);
    CHECK(r.ec == beast::error::timeout);  // not closed: only our deadline ended it
    CHECK(r.status == 200);
    bool partial = true;
    const auto events = events_in(r, &partial);
    CHECK_FALSE(partial);
    REQUIRE(events.size() == 2);
    CHECK(r.chunks.size() == 2);
    CHECK(str(parse_json(events[1].data).at("choices").at(0).at("delta").at("content")) == "one ");
  }
  SECTION("after zero events: only the header") {
    connected c(faulty(fault::stall_mid_stream, 0));
    const auto r = c.client.post("/v1/messages", R"({"stream":true})", quiet);
    CHECK(r.ec == beast::error::timeout);
    CHECK(r.status == 200);
    CHECK(r.body.empty());
  }
  SECTION("non-streamed: the header and half of the body") {
    connected c(faulty(fault::stall_mid_stream));
    const auto r = c.client.post("/v1/messages", "{}", quiet);
    CHECK(r.ec == beast::error::timeout);
    CHECK(r.status == 200);
    const auto length = std::stoul(r.header("Content-Length"));
    CHECK(r.body.size() == length / 2);
  }
}

TEST_CASE("reset_mid_stream sends N events and then a TCP reset") {
  SECTION("streamed") {
    connected c(faulty(fault::reset_mid_stream, 3));
    const auto r = c.client.post("/v1/messages", R"({"stream":true})");
    CHECK(r.ec == net::error::connection_reset);
    CHECK(r.status == 200);
    const auto events = events_in(r);
    REQUIRE(events.size() == 3);
    CHECK(events[2].event == "ping");
  }
  SECTION("after the last event: everything but the terminating chunk") {
    connected c(faulty(fault::reset_mid_stream, 1000));
    const auto r = c.client.post("/v1/chat/completions", R"({"stream":true})");
    CHECK(r.ec == net::error::connection_reset);
    CHECK_FALSE(r.complete);
    const auto events = events_in(r);
    REQUIRE(events.size() == 1 + 4 + 1 + 1);
    CHECK(events.back().data == "[DONE]");
  }
  SECTION("non-streamed: the header and half of the body") {
    connected c(faulty(fault::reset_mid_stream));
    const auto r = c.client.post("/v1beta/models/g:generateContent", "{}");
    CHECK(r.ec == net::error::connection_reset);
    CHECK(r.status == 200);
    CHECK(r.body.size() == std::stoul(r.header("Content-Length")) / 2);
  }
  SECTION("over TLS the reset also comes without close_notify") {
    temp_dir dir;
    const auto pki = make_test_pki(dir.path());
    fake_provider provider(serving_tls(pki.server));
    provider.set_script(faulty(fault::reset_mid_stream, 2));
    http_client client(loopback_tls(provider.port(), pki.ca.cert));
    REQUIRE_FALSE(client.connect());
    const auto r = client.post("/v1/chat/completions", R"({"stream":true})");
    CHECK(r.ec == net::error::connection_reset);
    CHECK(events_in(r).size() == 2);
  }
}

TEST_CASE("malformed_sse inserts an event with truncated JSON after N events, then continues") {
  SECTION("OpenAI chat") {
    connected c(faulty(fault::malformed_sse, 2));
    const auto events = complete_stream(c.client.post("/v1/chat/completions", R"({"stream":true})"));
    REQUIRE(events.size() == 1 + 4 + 1 + 1 + 1);
    CHECK(json_parses(events[1].data));
    CHECK(events[2].data == R"({"choices": [)");
    CHECK_FALSE(json_parses(events[2].data));
    for (std::size_t i = 3; i + 1 < events.size(); ++i) CHECK(json_parses(events[i].data));
    CHECK(events.back().data == "[DONE]");
  }
  SECTION("Anthropic: a content_block_delta event whose data does not parse") {
    connected c(faulty(fault::malformed_sse, 4));
    const auto events = complete_stream(c.client.post("/v1/messages", R"({"stream":true})"));
    CHECK(events[4].event == "content_block_delta");
    CHECK_FALSE(json_parses(events[4].data));
    CHECK(events.back().event == "message_stop");
  }
  SECTION("Gemini and the Responses API") {
    connected c(faulty(fault::malformed_sse, 1));
    const auto gemini = complete_stream(c.client.post("/v1beta/models/g:streamGenerateContent?alt=sse", "{}"));
    REQUIRE(gemini.size() == 5);
    CHECK_FALSE(json_parses(gemini[1].data));
    const auto responses = complete_stream(c.client.post("/v1/responses", R"({"stream":true})"));
    CHECK(responses[1].event == "response.output_text.delta");
    CHECK_FALSE(json_parses(responses[1].data));
    CHECK(responses.back().event == "response.completed");
  }
  SECTION("non-streamed: a body that is not valid JSON, with a matching length") {
    connected c(faulty(fault::malformed_sse));
    const auto r = c.client.post("/v1/chat/completions", "{}");
    REQUIRE(r.complete);
    CHECK(r.status == 200);
    CHECK_FALSE(json_parses(r.body));
    CHECK(r.body.starts_with(R"({"id":)"));
  }
}

TEST_CASE("slow_events pauses between events, the stream is otherwise intact") {
  script s = faulty(fault::slow_events);
  s.event_interval = 30ms;
  connected c(s);
  const auto start = std::chrono::steady_clock::now();
  const auto events = complete_stream(c.client.post("/v1/chat/completions", R"({"stream":true})"));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE(events.size() == 7);
  // A lower bound only: six pauses of at least 30 ms each.
  CHECK(elapsed >= 6 * 30ms);
  CHECK(events.back().data == "[DONE]");
}

TEST_CASE("status_error answers with the status and the dialect's error body, never a stream") {
  script s;
  s.what = fault::status_error;
  s.status = 429;
  connected c(s);

  const auto openai = c.client.post("/v1/chat/completions", R"({"stream":true})");
  CHECK(openai.status == 429);
  CHECK(openai.header("Content-Type") == "application/json");
  CHECK_FALSE(openai.chunked);
  const auto o = parse_json(openai.body);
  CHECK(str(o.at("error").at("type")) == "rate_limit_error");
  CHECK(o.at("error").at("param").is_null());
  CHECK(o.at("error").at("code").is_null());
  CHECK(str(o.at("error").at("message")).find("429") != std::string::npos);

  const auto anthropic = parse_json(c.client.post("/v1/messages", R"({"stream":true})").body);
  CHECK(str(anthropic.at("type")) == "error");
  CHECK(str(anthropic.at("error").at("type")) == "rate_limit_error");
  CHECK(anthropic.at("error").as_object().contains("message"));

  const auto gemini = parse_json(c.client.post("/v1beta/models/g:streamGenerateContent?alt=sse", "{}").body);
  CHECK(gemini.at("error").at("code").to_number<int>() == 429);
  CHECK(str(gemini.at("error").at("status")) == "RESOURCE_EXHAUSTED");

  s.status = 529;
  c.provider.set_script(s);
  const auto overloaded = c.client.post("/v1/messages", "{}");
  CHECK(overloaded.status == 529);
  CHECK(str(parse_json(overloaded.body).at("error").at("type")) == "overloaded_error");
  s.status = 500;
  c.provider.set_script(s);
  CHECK(str(parse_json(c.client.post("/v1/responses", "{}").body).at("error").at("type")) == "server_error");
  CHECK(c.provider.connections_accepted() == 1);
}

TEST_CASE("The destructor stops promptly with stalled and slow connections open, plain and TLS") {
  temp_dir dir;
  const auto pki = make_test_pki(dir.path());
  for (const bool tls : {false, true}) {
    INFO("TLS " << tls);
    auto provider = std::make_unique<fake_provider>(tls ? serving_tls(pki.server) : fake_provider_options{});
    script slow = faulty(fault::slow_events);
    slow.event_interval = std::chrono::hours(1);
    const std::vector<script> scripts{faulty(fault::stall_before_headers), faulty(fault::stall_mid_stream, 1),
                                      slow};
    std::vector<http_result> results(scripts.size());
    std::vector<std::thread> clients;
    for (std::size_t i = 0; i < scripts.size(); ++i) {
      provider->set_script(scripts[i]);
      clients.emplace_back([&, i, port = provider->port()] {
        client_options co = tls ? loopback_tls(port, pki.ca.cert) : loopback(port);
        co.timeout = 10s;
        http_client client(co);
        if (client.connect()) return;
        results[i] = client.post("/v1/chat/completions", R"({"stream":true})");
      });
      // The next script must not apply to this request.
      REQUIRE(provider->wait_for_requests(i + 1, 5s));
    }
    provider.reset();  // must return although all three connections are stuck
    for (auto& t : clients) t.join();
    for (std::size_t i = 0; i < results.size(); ++i) {
      INFO("client " << i << ": " << results[i].ec.message());
      CHECK(results[i].ec);
      CHECK(results[i].ec != beast::error::timeout);  // ended by the provider, not by the deadline
      CHECK_FALSE(results[i].complete);
    }
    CHECK(results[0].status == 0);
    CHECK(results[1].status == 200);
    CHECK(results[2].status == 200);
  }
}

}  // namespace customs::testing::test
