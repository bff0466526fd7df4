// customsd relaying to the scripted fake provider over loopback: streamed and
// non-streamed answers in every dialect, byte for byte; keep-alive on both sides;
// upstream failures before and during a stream; TLS on both sides.
#include "harness.hpp"
#include "proxy_fixtures.hpp"
#include "daemon/dialect/dialect.hpp"
#include "tests/support/fake_provider.hpp"
#include "tests/support/test_certs.hpp"

#include <boost/asio/ssl/context.hpp>
#include <boost/json/parse.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <regex>
#include <thread>

using namespace customs::testing;
using namespace customs::daemon;

namespace {

const std::string messages_stream = R"({"model":"m","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]})";
const std::string gemini_body = R"({"contents":[{"role":"user","parts":[{"text":"hi"}]}]})";


// Two answers of the fake provider differ only in ids and timestamps.
std::string normalize(const std::string& s) {
  static const std::regex id(R"re("(id|message_id|responseId)":"[^"]*")re");
  static const std::regex created(R"re("(created|created_at)":[0-9]+)re");
  return std::regex_replace(std::regex_replace(s, id, "\"$1\":\"\""), created, "\"$1\":0");
}

// Data payloads of the SSE events in a body, in order.
std::vector<std::string> data_of(const std::string& body) {
  sse_parser p(1 << 20);
  std::vector<std::string> out;
  std::string_view rest(body);
  while (!rest.empty()) {
    const auto r = p.feed(rest);
    rest.remove_prefix(r.consumed);
    if (r.what == sse_parser::status::event && p.event().has_data) out.emplace_back(p.event().data);
  }
  if (p.finish() && p.event().has_data) out.emplace_back(p.event().data);
  return out;
}

// The text of OpenAI chat deltas.
std::string chat_text(const std::string& body) {
  std::string text;
  for (const auto& d : data_of(body)) {
    if (d == "[DONE]") continue;
    const auto v = boost::json::parse(d);
    if (!v.as_object().contains("choices")) continue;  // e.g. an error event
    const auto& choices = v.at("choices").as_array();
    if (choices.empty()) continue;
    const auto* content = choices[0].at("delta").as_object().if_contains("content");
    if (content != nullptr && content->is_string()) text += content->as_string().c_str();
  }
  return text;
}

}  // namespace

TEST_CASE("relay: a streamed chat completion arrives event by event, bytes and order kept") {
  fake_provider up;
  script s;
  s.text = "The quick brown fox jumps over the lazy dog, forty-two times.";
  s.delta_bytes = 5;
  up.set_script(s);
  running_server px(test_config({make_route("/openai/", url(up))}));

  http_client direct(up.port());
  const auto expected = direct.request("POST", "/v1/chat/completions", chat_stream);
  http_client c(px.port());
  const auto got = c.request("POST", "/openai/v1/chat/completions", chat_stream,
                             {{"Content-Type", "application/json"}});
  REQUIRE(got.status == 200);
  CHECK(got.header("Content-Type") == expected.header("Content-Type"));
  CHECK(got.header("Transfer-Encoding") == "chunked");
  CHECK(normalize(got.body) == normalize(expected.body));
  CHECK(chat_text(got.body) == s.text);
  const auto data = data_of(got.body);
  REQUIRE(data.size() > 10);
  CHECK(data.back() == "[DONE]");
}

TEST_CASE("relay: a chunk boundary inside an event and inside a UTF-8 character changes nothing") {
  fake_provider up;
  script s;
  // Every delta is one 3- or 4-byte character, so splits land inside them.
  s.deltas = {"\xE4\xB8\xAD", "\xE6\x96\x87", "\xF0\x9F\x98\x80", "\xC3\xA9t\xC3\xA9"};
  running_server px(test_config({make_route("/openai/", url(up))}));
  http_client direct(up.port());
  up.set_script(s);
  const auto expected = direct.request("POST", "/v1/chat/completions", chat_stream);
  for (std::size_t split : {1u, 7u, 40u, 60u, 61u, 62u, 63u, 64u, 65u, 66u, 67u, 200u}) {
    auto split_script = s;
    split_script.split_at_byte = split;
    up.set_script(split_script);
    http_client c(px.port());
    const auto got = c.request("POST", "/openai/v1/chat/completions", chat_stream);
    INFO("split at byte " << split);
    REQUIRE(got.status == 200);
    CHECK(normalize(got.body) == normalize(expected.body));
    CHECK(chat_text(got.body) == "\xE4\xB8\xAD\xE6\x96\x87\xF0\x9F\x98\x80\xC3\xA9t\xC3\xA9");
  }
}

TEST_CASE("relay: Anthropic and Gemini streams (event lines, CRLF framing) pass byte for byte") {
  fake_provider up;
  script s;
  s.text = "Guten Tag, \xC3\xA7" "a va? \xE4\xBD\xA0\xE5\xA5\xBD.";
  s.delta_bytes = 4;
  s.split_at_byte = 9;
  up.set_script(s);
  running_server px(test_config({make_route("/anthropic/", url(up), dialect::anthropic),
                                 make_route("/gemini/", url(up, "/v1beta"), dialect::gemini)}));
  http_client direct(up.port());
  http_client c(px.port());
  const auto a_expected = direct.request("POST", "/v1/messages", messages_stream);
  const auto a_got = c.request("POST", "/anthropic/v1/messages", messages_stream);
  REQUIRE(a_got.status == 200);
  CHECK(normalize(a_got.body) == normalize(a_expected.body));
  CHECK(a_got.body.find("event: message_stop") != std::string::npos);

  // Base path and query: /gemini/models/..?alt=sse -> /v1beta/models/..?alt=sse
  const auto g_expected = direct.request("POST", "/v1beta/models/gm:streamGenerateContent?alt=sse", gemini_body);
  const auto g_got = c.request("POST", "/gemini/models/gm:streamGenerateContent?alt=sse", gemini_body);
  REQUIRE(g_got.status == 200);
  CHECK(g_got.header("Content-Type") == "text/event-stream");
  CHECK(normalize(g_got.body) == normalize(g_expected.body));
  CHECK(g_got.body.find("\r\n\r\n") != std::string::npos);
  const auto reqs = up.requests();
  CHECK(reqs.back().target == "/v1beta/models/gm:streamGenerateContent?alt=sse");
}

TEST_CASE("relay: a non-streamed answer keeps status, headers, Content-Length and body") {
  fake_provider up;
  script s;
  s.extra_headers = {{"X-Request-Id", "req-1"}, {"Openai-Processing-Ms", "12"}};
  up.set_script(s);
  running_server px(test_config({make_route("/openai/", url(up))}));
  http_client direct(up.port());
  const auto expected = direct.request("POST", "/v1/chat/completions", chat_whole);
  http_client c(px.port());
  const auto got = c.request("POST", "/openai/v1/chat/completions", chat_whole);
  CHECK(got.status == 200);
  CHECK(got.header("Content-Length") == std::to_string(got.body.size()));
  CHECK(got.header("Transfer-Encoding").empty());
  CHECK(got.header("X-Request-Id") == "req-1");
  CHECK(normalize(got.body) == normalize(expected.body));

  // Upstream errors are the upstream's answer, relayed as they are.
  script err;
  err.what = fault::status_error;
  err.status = 429;
  up.set_script(err);
  const auto limited = c.request("POST", "/openai/v1/chat/completions", chat_whole);
  CHECK(limited.status == 429);
  CHECK(limited.body.find("\"error\"") != std::string::npos);
}

TEST_CASE("relay: request headers: hop-by-hop removed, Host set, X-Forwarded-For appended, Authorization kept") {
  fake_provider up;
  running_server px(test_config({make_route("/openai/", url(up))}));
  http_client c(px.port());
  const auto r = c.request("POST", "/openai/v1/chat/completions?api-version=1", chat_whole,
                           {{"Authorization", "Bearer sk-test"},
                            {"Connection", "keep-alive, X-Hop"},
                            {"X-Hop", "secret"},
                            {"Keep-Alive", "timeout=5"},
                            {"Proxy-Authorization", "Basic eA=="},
                            {"TE", "trailers"},
                            {"Upgrade", "h2c"},
                            {"X-Forwarded-For", "203.0.113.7"},
                            {"OpenAI-Organization", "org-1"}});
  REQUIRE(r.status == 200);
  const auto req = up.requests().at(0);
  CHECK(req.target == "/v1/chat/completions?api-version=1");
  std::map<std::string, std::string> h;
  for (auto [k, v] : req.headers) {
    std::transform(k.begin(), k.end(), k.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    h[k] = v;
  }
  CHECK(h["host"] == "127.0.0.1:" + std::to_string(up.port()));
  CHECK(h["authorization"] == "Bearer sk-test");
  CHECK(h["openai-organization"] == "org-1");
  CHECK(h["x-forwarded-for"] == "203.0.113.7, 127.0.0.1");
  CHECK(h["content-length"] == std::to_string(chat_whole.size()));
  for (const char* gone : {"connection", "x-hop", "keep-alive", "proxy-authorization", "te", "upgrade"}) {
    INFO(gone);
    CHECK_FALSE(h.contains(gone));
  }
  CHECK(req.body == chat_whole);
}

TEST_CASE("relay: keep-alive on both sides: one client socket, one upstream connection") {
  fake_provider up;
  running_server px(test_config({make_route("/openai/", url(up))}));
  http_client c(px.port());
  for (int i = 0; i < 3; ++i) {
    const auto r = c.request("POST", "/openai/v1/chat/completions", i == 1 ? chat_stream : chat_whole);
    CHECK(r.status == 200);
    CHECK(r.keep_alive);
  }
  CHECK(up.request_count() == 3);
  CHECK(up.connections_accepted() == 1);
  const auto m = scrape(px.admin_port());
  CHECK(metric(m, R"(customs_upstream_connects_total{route="/openai/"})") == 1);
  CHECK(metric(m, R"(customs_upstream_reuses_total{route="/openai/"})") == 2);
  CHECK(metric(m, "customs_connections_accepted_total") == 1);
}

TEST_CASE("relay: an upstream that does not answer in time gives 504 in the dialect's shape") {
  fake_provider up;
  script s;
  s.what = fault::stall_before_headers;
  up.set_script(s);
  auto cfg = test_config({make_route("/anthropic/", url(up), dialect::anthropic)});
  cfg.limits.upstream_first_byte_timeout = std::chrono::milliseconds(300);
  running_server px(cfg);
  http_client c(px.port());
  const auto r = c.request("POST", "/anthropic/v1/messages", messages_stream);
  CHECK(r.status == 504);
  const auto v = boost::json::parse(r.body);
  CHECK(v.at("type").as_string() == "error");
  CHECK(v.at("error").at("customs_code").as_string() == "customs_upstream_timeout");
  CHECK(await_metric(px.admin_port(), R"(customs_flow_failures_total{route="/anthropic/",reason="upstream_timeout"})", 1) == 1);
}

TEST_CASE("relay: an upstream reset mid-stream ends the client's stream with an error event, no [DONE]") {
  fake_provider up;
  script s;
  s.text = "one two three four five six";
  s.what = fault::reset_mid_stream;
  s.fault_after_events = 3;
  up.set_script(s);
  running_server px(test_config({make_route("/openai/", url(up))}));
  http_client c(px.port());
  const auto r = c.request("POST", "/openai/v1/chat/completions", chat_stream);
  REQUIRE(r.status == 200);
  const auto data = data_of(r.body);
  REQUIRE(data.size() == 4);
  CHECK(r.body.find("[DONE]") == std::string::npos);
  const auto err = boost::json::parse(data.back());
  CHECK(err.at("error").at("code").as_string() == "customs_upstream_reset");
  CHECK(r.body.ends_with(stream_error_event(dialect::openai, 502, "customs: upstream closed the connection",
                                            "customs_upstream_reset")));
  CHECK(r.keep_alive);  // the framing is intact: the client connection stays usable
  CHECK(await_metric(px.admin_port(), R"(customs_flow_failures_total{route="/openai/",reason="upstream_reset"})", 1) == 1);
  // The next request works (on a new upstream connection).
  up.set_script(script{});
  CHECK(c.request("POST", "/openai/v1/chat/completions", chat_stream).status == 200);
}

TEST_CASE("relay: a stall mid-stream past stream_gap_timeout ends the stream with an error event") {
  fake_provider up;
  script s;
  s.what = fault::stall_mid_stream;
  s.fault_after_events = 2;
  up.set_script(s);
  auto cfg = test_config({make_route("/anthropic/", url(up), dialect::anthropic)});
  cfg.limits.stream_gap_timeout = std::chrono::milliseconds(300);
  running_server px(cfg);
  http_client c(px.port());
  const auto r = c.request("POST", "/anthropic/v1/messages", messages_stream);
  REQUIRE(r.status == 200);
  CHECK(r.body.find("event: message_stop") == std::string::npos);
  CHECK(r.body.ends_with(stream_error_event(dialect::anthropic, 504, "customs: upstream stream stalled",
                                            "customs_stream_gap_timeout")));
}

TEST_CASE("relay: an SSE event over limits.sse_event_bytes ends the stream with an error event") {
  fake_provider up;
  script s;
  s.deltas = {"short", std::string(600, 'x'), "after"};
  up.set_script(s);
  auto cfg = test_config({make_route("/openai/", url(up))});
  cfg.limits.sse_event_bytes = 512;
  running_server px(cfg);
  http_client c(px.port());
  const auto r = c.request("POST", "/openai/v1/chat/completions", chat_stream);
  REQUIRE(r.status == 200);
  CHECK(chat_text(r.body) == "short");
  CHECK(r.body.find("after") == std::string::npos);
  CHECK(r.body.find("customs_event_too_large") != std::string::npos);
  CHECK(r.body.find("[DONE]") == std::string::npos);
}

TEST_CASE("relay: slow events are forwarded one by one, before the stream ends") {
  fake_provider up;
  script s;
  s.text = "abcdefgh";
  s.delta_bytes = 2;
  s.what = fault::slow_events;
  s.event_interval = std::chrono::milliseconds(60);
  up.set_script(s);
  running_server px(test_config({make_route("/openai/", url(up))}));
  http_client c(px.port());
  c.send_request("POST", "/openai/v1/chat/completions", chat_stream);
  c.start_streamed_response();
  REQUIRE(c.streamed_status() == 200);
  // Each read returns a piece before the provider has sent the rest: the
  // number of pieces shows the relay does not wait for the whole stream.
  int pieces = 0;
  std::string body;
  while (auto piece = c.next_piece()) {
    if (piece->empty()) continue;
    ++pieces;
    body += *piece;
  }
  CHECK(pieces >= 4);
  CHECK(chat_text(body) == "abcdefgh");
}

TEST_CASE("relay: TLS upstream verified against ca_bundle, an untrusted certificate is refused with 502") {
  temp_dir dir;
  const auto pki = make_test_pki(dir.path());
  fake_provider good({.address = "127.0.0.1", .port = 0, .tls_cert = pki.server.cert, .tls_key = pki.server.key});
  fake_provider bad({.address = "127.0.0.1", .port = 0, .tls_cert = pki.untrusted.cert, .tls_key = pki.untrusted.key});
  auto ok_route = make_route("/good/", "https://localhost:" + std::to_string(good.port()));
  ok_route.ca_bundle = pki.ca.cert;
  auto ip_route = make_route("/ip/", "https://127.0.0.1:" + std::to_string(good.port()));
  ip_route.ca_bundle = pki.ca.cert;
  auto bad_route = make_route("/bad/", "https://localhost:" + std::to_string(bad.port()), dialect::gemini);
  bad_route.ca_bundle = pki.ca.cert;
  running_server px(test_config({ok_route, ip_route, bad_route}));
  http_client c(px.port());
  const auto r = c.request("POST", "/good/v1/chat/completions", chat_stream);
  CHECK(r.status == 200);
  CHECK(r.body.find("[DONE]") != std::string::npos);
  CHECK(c.request("POST", "/ip/v1/chat/completions", chat_whole).status == 200);
  const auto refused = c.request("POST", "/bad/v1/chat/completions", chat_whole);
  CHECK(refused.status == 502);
  CHECK(refused.body.find("customs_upstream_unreachable") != std::string::npos);
  CHECK(bad.request_count() == 0);
}

TEST_CASE("relay: TLS on the client listener") {
  temp_dir dir;
  const auto pki = make_test_pki(dir.path());
  fake_provider up;
  auto cfg = test_config({make_route("/openai/", url(up))});
  cfg.listeners.push_back({"secure", "127.0.0.1", 0, tls_files{pki.server.cert, pki.server.key, {}}, std::nullopt});
  running_server px(cfg);
  boost::asio::ssl::context ctx(boost::asio::ssl::context::tls_client);
  ctx.load_verify_file(pki.ca.cert.string());
  http_client c(px.port("secure"), ctx, "localhost");
  const auto r = c.request("POST", "/openai/v1/chat/completions", chat_stream);
  CHECK(r.status == 200);
  CHECK(r.body.find("[DONE]") != std::string::npos);
  CHECK(c.request("POST", "/openai/v1/chat/completions", chat_whole).status == 200);  // keep-alive over TLS
  // TLS 1.1 is refused.
  boost::asio::ssl::context old(boost::asio::ssl::context::tls_client);
  SSL_CTX_set_max_proto_version(old.native_handle(), TLS1_1_VERSION);
  SSL_CTX_set_min_proto_version(old.native_handle(), TLS1_VERSION);
  old.load_verify_file(pki.ca.cert.string());
  CHECK_THROWS(http_client(px.port("secure"), old, "localhost"));
}

TEST_CASE("relay: an upstream that does not accept in time gives 504 (limits.upstream_connect_timeout)") {
  // A loopback listener whose accept queue is full: the kernel drops further
  // SYNs, so connecting hangs until customsd gives up.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 0) == 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const auto port = ntohs(a.sin_port);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    (void)::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fillers.push_back(c);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto cfg = test_config({make_route("/openai/", "http://127.0.0.1:" + std::to_string(port))});
  cfg.limits.upstream_connect_timeout = std::chrono::milliseconds(300);
  running_server px(cfg);
  http_client c(px.port());
  const auto r = c.request("POST", "/openai/v1/chat/completions", chat_whole);
  CHECK(r.status == 504);
  CHECK(r.body.find("customs_upstream_timeout") != std::string::npos);
  for (int f : fillers) ::close(f);
  ::close(fd);
}

TEST_CASE("relay: limits.flow_timeout ends a stream that takes too long with an error event") {
  fake_provider up;
  script s;
  s.text = "a b c d e f g h i j k l";
  s.delta_bytes = 2;
  s.what = fault::slow_events;
  s.event_interval = std::chrono::milliseconds(100);
  up.set_script(s);
  auto cfg = test_config({make_route("/openai/", url(up))});
  cfg.limits.flow_timeout = std::chrono::milliseconds(350);
  running_server px(cfg);
  http_client c(px.port());
  const auto r = c.request("POST", "/openai/v1/chat/completions", chat_stream);
  REQUIRE(r.status == 200);
  CHECK(r.body.find("[DONE]") == std::string::npos);
  CHECK(r.body.ends_with(stream_error_event(dialect::openai, 504, "customs: request took too long",
                                            "customs_flow_timeout")));
}

namespace {

// Polls the provider's count of streamed bytes until it has not moved for
// `quiet` (the pipe between provider and client is full) or `limit` passed.
std::size_t settled_stream_bytes(const fake_provider& up, std::chrono::milliseconds quiet,
                                 std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  std::size_t last = up.stream_bytes_sent();
  auto since = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::size_t now = up.stream_bytes_sent();
    if (now != last) {
      last = now;
      since = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - since >= quiet) {
      break;
    }
  }
  return last;
}

// 48 MiB of text in 64 KiB deltas: far more than every socket buffer on the
// way (provider send, customsd receive, customsd send, client receive).
constexpr std::size_t big_text_bytes = 48u << 20;
script big_stream(char fill) {
  script s;
  s.text.assign(big_text_bytes, fill);
  s.delta_bytes = 64u << 10;
  return s;
}

// Sends a streamed chat completion and reads the response head only.
void start_stream(http_client& c) {
  c.send_request("POST", "/openai/v1/chat/completions", chat_stream);
  c.start_streamed_response();
  REQUIRE(c.streamed_status() == 200);
}

}  // namespace

TEST_CASE("relay: backpressure: a client that stops reading holds the upstream back, nothing buffers the stream") {
  constexpr std::size_t text_bytes = big_text_bytes;
  fake_provider up;
  up.set_script(big_stream('a'));
  running_server px(test_config({make_route("/openai/", url(up))}));
  http_client c(px.port());
  start_stream(c);

  // The client reads nothing more. Once the buffers are full, customsd stops
  // reading the upstream, so the provider's writes stop well before the end.
  const std::size_t held = settled_stream_bytes(up, std::chrono::milliseconds(500), std::chrono::seconds(20));
  INFO("provider wrote " << held << " bytes before it was held back");
  CHECK(up.streams_finished() == 0);
  CHECK(held > 0);
  CHECK(held < text_bytes / 2);

  // Reading again releases the rest, intact.
  std::string body;
  while (auto piece = c.next_piece()) body += *piece;
  CHECK(up.streams_finished() == 1);
  CHECK(up.stream_bytes_sent() > text_bytes);
  CHECK(chat_text(body).size() == text_bytes);
  CHECK(body.find("[DONE]") != std::string::npos);
}

TEST_CASE("relay: a client that does not read for limits.send_timeout is disconnected and the upstream dropped") {
  constexpr std::size_t text_bytes = big_text_bytes;
  fake_provider up;
  up.set_script(big_stream('b'));
  auto cfg = test_config({make_route("/openai/", url(up))});
  cfg.limits.send_timeout = std::chrono::milliseconds(300);
  running_server px(cfg);
  http_client c(px.port());
  start_stream(c);
  // Not reading for much longer than send_timeout.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // customsd gave up on the client: the upstream connection is closed, so the
  // provider's stream ends early instead of waiting for a reader forever.
  const std::size_t held = settled_stream_bytes(up, std::chrono::milliseconds(300), std::chrono::seconds(10));
  CHECK(up.streams_finished() == 0);
  CHECK(held < text_bytes / 2);
  // The client gets what was already in flight, then the connection ends
  // without the stream's end: no [DONE], no terminating chunk.
  std::string body;
  bool ended_early = false;
  try {
    while (auto piece = c.next_piece()) body += *piece;
  } catch (const std::runtime_error&) {
    ended_early = true;
  }
  CHECK(ended_early);
  CHECK(body.find("[DONE]") == std::string::npos);
  CHECK(body.size() < text_bytes);
  // The flow is counted as failed because of the client.
  CHECK(await_metric(px.admin_port(), R"(customs_flow_failures_total{route="/openai/",reason="client_gone"})", 1) == 1);
}

namespace {

std::string http10_post(const std::string& target, const std::string& body) {
  return "POST " + target + " HTTP/1.0\r\nHost: customs.test\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

TEST_CASE("relay: an HTTP/1.0 client gets a stream delimited by the connection's close, not chunked") {
  fake_provider up;
  script s;
  s.text = "one two three";
  up.set_script(s);
  running_server px(test_config({make_route("/openai/", url(up))}));
  http_client c(px.port());
  c.send(http10_post("/openai/v1/chat/completions", chat_stream));
  // Without Content-Length or chunking the client's parser completes only at
  // the end of the connection: reading the whole response proves the close.
  const auto r = c.read_response();
  CHECK(r.status == 200);
  CHECK(r.header("Transfer-Encoding").empty());
  CHECK(r.header("Content-Length").empty());
  CHECK(r.header("Connection") == "close");
  CHECK_FALSE(r.keep_alive);
  CHECK(chat_text(r.body) == "one two three");
  CHECK(r.body.find("[DONE]") != std::string::npos);
  // The upstream side stays HTTP/1.1 with keep-alive: the stream was chunked
  // there and the connection went back to the pool.
  http_client c2(px.port());
  CHECK(c2.request("POST", "/openai/v1/chat/completions", chat_whole).status == 200);
  CHECK(up.connections_accepted() == 1);
}

TEST_CASE("relay: an HTTP/1.0 client gets a non-streamed answer with Content-Length, then the close") {
  fake_provider up;
  running_server px(test_config({make_route("/openai/", url(up))}));
  http_client c(px.port());
  c.send(http10_post("/openai/v1/chat/completions", chat_whole));
  const auto r = c.read_response();
  CHECK(r.status == 200);
  CHECK(r.header("Content-Length") == std::to_string(r.body.size()));
  CHECK_FALSE(r.keep_alive);
  CHECK(boost::json::parse(r.body).at("object").as_string() == "chat.completion");
  CHECK(c.closed_by_peer());
}

TEST_CASE("relay: a pooled upstream connection idle for longer than limits.upstream_idle_timeout is not reused") {
  fake_provider up;
  auto cfg = test_config({make_route("/openai/", url(up))});
  cfg.limits.upstream_idle_timeout = std::chrono::milliseconds(200);
  running_server px(cfg);
  http_client c(px.port());
  CHECK(c.request("POST", "/openai/v1/chat/completions", chat_whole).status == 200);
  CHECK(c.request("POST", "/openai/v1/chat/completions", chat_whole).status == 200);
  CHECK(up.connections_accepted() == 1);  // reused within the idle timeout
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(c.request("POST", "/openai/v1/chat/completions", chat_whole).status == 200);
  CHECK(up.connections_accepted() == 2);  // too old: a new connection
  const auto m = scrape(px.admin_port());
  CHECK(metric(m, R"(customs_upstream_connects_total{route="/openai/"})") == 2);
  CHECK(metric(m, R"(customs_upstream_reuses_total{route="/openai/"})") == 1);
}
