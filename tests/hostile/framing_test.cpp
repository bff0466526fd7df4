// Hostile framing from clients: trailers, chunk extensions, transfer codings,
// Content-Length conflicts, obsolete line folding, Host, bare line ends and
// pipelining. Each case: the status the client gets, whether the connection
// closes, that the provider received nothing it should not have, and that
// customsd still serves.
#include "hostile.hpp"

using namespace customs::testing;
using namespace customs::testing::hostile;

namespace {

const std::string smuggled = "GET /openai/v1/models HTTP/1.1\r\nHost: customs.test\r\n\r\n";

// A POST whose framing header is `te_lines`, followed by a body that is itself
// a request: readers that take the first request as bodiless see two.
std::string split_attempt(const std::string& framing_lines, const std::string& version = "HTTP/1.1") {
  std::string body = "5\r\nhello\r\n0\r\n\r\n" + smuggled;
  return "POST /openai/v1/chat/completions " + version + "\r\nHost: customs.test\r\n" + framing_lines + "\r\n" + body;
}

std::string client_rejected(const std::string& rule) {
  return "customs_framing_rejected_total{side=\"client\",rule=\"" + rule + "\"}";
}

}  // namespace

TEST_CASE("framing: a request trailer field of 64 KiB is refused with 431 and customsd goes on") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  for (const std::size_t size : {65534u, 70000u}) {
    const auto r = exchange(d.port(), chunked_request(chat_json(), "0\r\nX-Pad: " + std::string(size, 'a') + "\r\n\r\n"));
    INFO("trailer value of " << size << " bytes; got " << r.raw.substr(0, 200));
    CHECK(r.status == 431);
    CHECK(r.response.body.find("customs_trailer_too_large") != std::string::npos);
    CHECK(r.closed);
  }
  CHECK(serving(d));
  CHECK(up.request_count() == 0);
  CHECK(metric(d.metrics(), R"(customs_limit_hits_total{limit="trailer_bytes"})") == 2);
}

TEST_CASE("framing: request trailers never become headers: a trailer Authorization is not forwarded") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  const auto r = exchange(d.port(), chunked_request(chat_json(),
                                                    "0\r\nAuthorization: Bearer smuggled\r\nX-Trailer-Probe: 1\r\n\r\n"));
  CHECK(r.status == 200);
  REQUIRE(up.request_count() == 1);
  const auto req = up.requests().front();
  CHECK(req.body == chat_json());
  CHECK_FALSE(provider_saw_header(up, "Authorization"));
  CHECK_FALSE(provider_saw_header(up, "X-Trailer-Probe"));
  CHECK_FALSE(provider_saw_header(up, "Transfer-Encoding"));
  CHECK(serving(d));
}

TEST_CASE("framing: request trailers are bounded by limits.trailer_bytes, at the limit and just past it") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port(), "trailer_bytes: 100"));
  // A trailer field counts its name, its value and 4 bytes (": " and CRLF).
  const auto trailer = [](std::size_t total) {
    return "0\r\nX-T: " + std::string(total - 3 - 4, 'v') + "\r\n\r\n";
  };
  auto r = exchange(d.port(), chunked_request(chat_json(), trailer(100)));
  CHECK(r.status == 200);
  CHECK(up.request_count() == 1);
  r = exchange(d.port(), chunked_request(chat_json(), trailer(101)));
  CHECK(r.status == 431);
  CHECK(r.closed);
  CHECK(up.request_count() == 1);
  CHECK(metric(d.metrics(), R"(customs_limit_hits_total{limit="trailer_bytes"})") == 1);
}

TEST_CASE("framing: a million trailer lines are refused early, nothing is forwarded") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  std::string tail = "0\r\n";
  tail.reserve(8'000'010);
  for (int i = 0; i < 1'000'000; ++i) tail += "X-T: 1\r\n";
  tail += "\r\n";
  const auto r = exchange(d.port(), chunked_request(chat_json(), tail));
  CHECK(r.status == 431);
  CHECK(r.closed);
  // Refused once the read buffer was full, long before the end.
  CHECK(r.sent < tail.size());
  CHECK(up.request_count() == 0);
  CHECK(serving(d));
}

TEST_CASE("framing: chunk extensions are bounded by limits.chunk_extension_bytes, summed over the body") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port(), "chunk_extension_bytes: 64"));
  const std::string body = chat_json();
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  const auto with_ext = [&](const std::string& ext) {
    return "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: customs.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
           std::string(size) + ext + "\r\n" + body + "\r\n0\r\n\r\n";
  };
  // ";e=" and 61 bytes: 64 bytes of extension.
  auto r = exchange(d.port(), with_ext(";e=" + std::string(61, 'x')));
  CHECK(r.status == 200);
  CHECK(up.request_count() == 1);
  r = exchange(d.port(), with_ext(";e=" + std::string(62, 'x')));
  CHECK(r.status == 400);
  CHECK(r.response.body.find("customs_chunk_extension_too_large") != std::string::npos);
  CHECK(r.closed);
  // One extension as big as the read buffer: refused the same way.
  r = exchange(d.port(), with_ext(";e=" + std::string(1 << 20, 'x')));
  CHECK(r.status == 400);
  CHECK(up.request_count() == 1);
  CHECK(metric(d.metrics(), R"(customs_limit_hits_total{limit="chunk_extension_bytes"})") == 2);
  CHECK(serving(d));
}

TEST_CASE("framing: a Transfer-Encoding whose final coding is not chunked is 400 and the connection closes") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  for (const std::string te : {"xchunked", "chunked, identity", "identity", "chunked;x=1", "chunked,", ", chunked",
                               "chunked, chunked"}) {
    const auto r = exchange(d.port(), split_attempt("Transfer-Encoding: " + te + "\r\n"), 2);
    INFO("Transfer-Encoding: " << te << "; got " << r.raw.substr(0, 300));
    CHECK(r.status == 400);
    CHECK(r.response.body.find("customs_bad_framing") != std::string::npos);
    CHECK(parse_responses(r.raw).size() == 1);  // the body was not taken as a second request
    CHECK(r.closed);
  }
  CHECK(up.request_count() == 0);
  CHECK(metric(d.metrics(), client_rejected("bad_transfer_encoding")) == 7);
  CHECK(serving(d));
}

TEST_CASE("framing: a coding other than chunked before the final chunked is 501 and the connection closes") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  const auto r = exchange(d.port(), split_attempt("Transfer-Encoding: gzip, chunked\r\n"), 2);
  CHECK(r.status == 501);
  CHECK(parse_responses(r.raw).size() == 1);
  CHECK(r.closed);
  CHECK(up.request_count() == 0);
  CHECK(metric(d.metrics(), client_rejected("unsupported_coding")) == 1);
}

TEST_CASE("framing: Transfer-Encoding with Content-Length, twice, or in HTTP/1.0 is 400 and closes") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "HTTP/1.1"},
      {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "HTTP/1.1"},
      {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "HTTP/1.1"},
      {"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n", "HTTP/1.1"},
      {"Transfer-Encoding: chunked\r\n", "HTTP/1.0"},
  };
  for (const auto& [lines, version] : cases) {
    const auto r = exchange(d.port(), split_attempt(lines, version), 2);
    INFO(version << " with " << lines << "got " << r.raw.substr(0, 300));
    CHECK(r.status == 400);
    CHECK(parse_responses(r.raw).size() == 1);
    CHECK(r.closed);
  }
  CHECK(up.request_count() == 0);
  CHECK(serving(d));
}

TEST_CASE("framing: Transfer-Encoding chunked in any letter case and with spaces is read as chunked") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  for (const std::string te : {"chunked", "Chunked", "  CHUNKED  "}) {
    const std::string body = chat_json();
    char size[16];
    std::snprintf(size, sizeof size, "%zx", body.size());
    const auto r = exchange(d.port(), "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: customs.test\r\n"
                                      "Transfer-Encoding: " + te + "\r\n\r\n" + size + "\r\n" + body + "\r\n0\r\n\r\n");
    INFO(te);
    CHECK(r.status == 200);
  }
  REQUIRE(up.request_count() == 3);
  for (const auto& req : up.requests()) CHECK(req.body == chat_json());
}

TEST_CASE("framing: Content-Length values that differ, or that are not digits, are 400 and close") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  for (const std::string lines : {"Content-Length: 5\r\nContent-Length: 6\r\n", "Content-Length: 5, 6\r\n",
                                  "Content-Length: 5x\r\n", "Content-Length: -5\r\n", "Content-Length: +5\r\n",
                                  "Content-Length: 0x5\r\n", "Content-Length:\r\n",
                                  "Content-Length: 99999999999999999999999\r\n"}) {
    const auto r = exchange(d.port(), "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: customs.test\r\n" + lines +
                                          "\r\nhello" + smuggled, 2);
    INFO(lines << "got " << r.raw.substr(0, 300));
    CHECK(r.status == 400);
    CHECK(parse_responses(r.raw).size() == 1);
    CHECK(r.closed);
  }
  CHECK(up.request_count() == 0);
  CHECK(serving(d));
}

TEST_CASE("framing: the same Content-Length twice is one length") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  const std::string body = chat_json();
  const std::string n = std::to_string(body.size());
  const auto r = exchange(d.port(), "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: customs.test\r\n"
                                    "Content-Length: " + n + "\r\nContent-Length: " + n + "\r\n\r\n" + body);
  CHECK(r.status == 200);
  REQUIRE(up.request_count() == 1);
  CHECK(up.requests().front().body == body);
}

TEST_CASE("framing: obsolete line folding in a request head is 400") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  for (const std::string folded : {"X-Folded: a\r\n b\r\n", "X-Folded:\r\n\tb\r\n", "Authorization: Bearer\r\n  x\r\n"}) {
    const auto r = exchange(d.port(), content_length_request(chat_json(), folded));
    INFO(folded);
    CHECK(r.status == 400);
    CHECK(r.response.body.find("customs_bad_framing") != std::string::npos);
    CHECK(r.closed);
  }
  CHECK(up.request_count() == 0);
  CHECK(metric(d.metrics(), client_rejected("obs_fold")) == 3);
}

TEST_CASE("framing: two Host fields, a Host list, a bad Host or none in HTTP/1.1 is 400") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  const std::string body = chat_json();
  const std::string rest = "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  for (const std::string hosts : {"Host: a.test\r\nHost: b.test\r\n", "Host: a.test, b.test\r\n", "Host: a b\r\n",
                                  "Host: a.test/x\r\n", "Host: user@a.test\r\n", ""}) {
    const auto r = exchange(d.port(), "POST /openai/v1/chat/completions HTTP/1.1\r\n" + hosts + rest);
    INFO("[" << hosts << "] got " << r.raw.substr(0, 200));
    CHECK(r.status == 400);
    CHECK(r.closed);
  }
  CHECK(up.request_count() == 0);
  CHECK(metric(d.metrics(), client_rejected("bad_host")) == 6);
  // HTTP/1.0 may omit it; a Host with a port and an IP literal are fine.
  CHECK(exchange(d.port(), "GET /no-such-route/ HTTP/1.0\r\n\r\n").status == 404);
  CHECK(exchange(d.port(), "GET /no-such-route/ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").status == 404);
  CHECK(exchange(d.port(), "GET /no-such-route/ HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n").status == 404);
}

TEST_CASE("framing: a bare LF or CR in a request head is 400") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  for (const std::string head : {"GET /no-such-route/ HTTP/1.1\nHost: customs.test\n\n",
                                 "GET /no-such-route/ HTTP/1.1\r\nHost: customs.test\n\r\n",
                                 "GET /no-such-route/ HTTP/1.1\r\nX-A: a\rb\r\nHost: customs.test\r\n\r\n"}) {
    const auto r = exchange(d.port(), head);
    CHECK(r.status == 400);
    CHECK(r.closed);
  }
  CHECK(metric(d.metrics(), client_rejected("bad_line_ending")) == 3);
}

TEST_CASE("framing: pipelined requests are answered one by one, in order, each forwarded once") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  std::string bytes;
  const std::string body = chat_json();
  bytes += content_length_request(body);
  bytes += chunked_request(body, "0\r\nX-Trailer: dropped\r\n\r\n");
  bytes += "GET /no-such-route/ HTTP/1.1\r\nHost: customs.test\r\n\r\n";
  bytes += content_length_request(body);
  const auto r = exchange(d.port(), bytes, 4, false);
  const auto all = parse_responses(r.raw);
  REQUIRE(all.size() == 4);
  CHECK(all[0].status == 200);
  CHECK(all[1].status == 200);
  CHECK(all[2].status == 404);
  CHECK(all[3].status == 200);
  CHECK(up.request_count() == 3);
  for (const auto& req : up.requests()) CHECK(req.body == body);
  CHECK_FALSE(provider_saw_header(up, "X-Trailer"));
}

TEST_CASE("framing: a long run of pipelined requests is read only as far as the read buffer") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  std::string bytes;
  for (int i = 0; i < 500; ++i) bytes += "GET /no-such-route/" + std::to_string(i) + " HTTP/1.1\r\nHost: customs.test\r\n\r\n";
  const auto r = exchange(d.port(), bytes, 500, false);
  const auto all = parse_responses(r.raw);
  INFO("sent " << r.sent << " of " << bytes.size() << ", received " << r.raw.size() << (r.closed ? ", closed" : ""));
  REQUIRE(all.size() == 500);
  for (const auto& x : all) CHECK(x.status == 404);
  CHECK(up.request_count() == 0);
}

TEST_CASE("framing: the admin listener bounds trailers too, and a 70 KB trailer does not end customsd") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port()));
  const auto r = exchange(d.admin_port(), "POST /reload HTTP/1.1\r\nHost: admin\r\nTransfer-Encoding: chunked\r\n\r\n"
                                          "0\r\nX-Pad: " + std::string(70'000, 'a') + "\r\n\r\n");
  CHECK(r.status == 0);  // refused: the connection closes
  CHECK(r.closed);
  CHECK(serving(d));
  http_client admin(d.admin_port());
  CHECK(admin.request("GET", "/healthz").status == 200);
  CHECK(metric(d.metrics(), R"(customs_reloads_total{result="ok"})") == 0);
}
