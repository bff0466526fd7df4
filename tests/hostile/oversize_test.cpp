// Every bound of a client's request, at the limit (accepted) and just past it
// (refused with its status, counted in customs_limit_hits_total, nothing
// forwarded). Trailers and chunk extensions: framing_test.cpp; upstream
// answers: upstream_test.cpp.
#include "hostile.hpp"

using namespace customs::testing;
using namespace customs::testing::hostile;

namespace {


// A GET to an unknown route whose head is exactly `total` bytes.
std::string head_of(std::size_t total) {
  const std::string start = "GET /no-such-route/ HTTP/1.1\r\nHost: customs.test\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  return start + std::string(total - start.size() - end.size(), 'p') + end;
}

}  // namespace

TEST_CASE("oversize: limits.header_bytes: a head of exactly the limit is read, one byte more is 431") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port(), "header_bytes: 2048"));
  CHECK(exchange(d.port(), head_of(2048)).status == 404);
  const auto r = exchange(d.port(), head_of(2049));
  CHECK(r.status == 431);
  CHECK(r.response.body.find("customs_header_too_large") != std::string::npos);
  CHECK(r.closed);
  CHECK(metric(d.metrics(), hits("header_bytes")) == 1);
  CHECK(serving(d));
}

TEST_CASE("oversize: limits.header_fields: the limit's number of fields is read, one more is 431") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port(), "header_fields: 10"));
  const auto with_fields = [](int n) {
    std::string s = "GET /no-such-route/ HTTP/1.1\r\nHost: customs.test\r\n";
    for (int i = 1; i < n; ++i) s += "X-F" + std::to_string(i) + ": v\r\n";
    return s + "\r\n";
  };
  CHECK(exchange(d.port(), with_fields(10)).status == 404);
  const auto r = exchange(d.port(), with_fields(11));
  CHECK(r.status == 431);
  CHECK(r.closed);
  CHECK(metric(d.metrics(), hits("header_fields")) == 1);
}

TEST_CASE("oversize: limits.target_bytes: a target of the limit is routed, one byte more is 414") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port(), "target_bytes: 300"));
  const auto target_of = [](std::size_t n) {
    const std::string start = "/openai/v1/models?pad=";
    return start + std::string(n - start.size(), 'q');
  };
  auto r = exchange(d.port(), "GET " + target_of(300) + " HTTP/1.1\r\nHost: customs.test\r\n\r\n");
  CHECK(r.status != 414);
  CHECK(up.request_count() == 1);
  r = exchange(d.port(), "GET " + target_of(301) + " HTTP/1.1\r\nHost: customs.test\r\n\r\n");
  CHECK(r.status == 414);
  CHECK(r.response.body.find("customs_target_too_long") != std::string::npos);
  CHECK(r.closed);
  // A request line that never ends is refused once it is past the bound.
  r = exchange(d.port(), "GET /openai/" + std::string(1 << 20, 'z'));
  CHECK(r.status == 414);
  CHECK(up.request_count() == 1);
  CHECK(metric(d.metrics(), hits("target_bytes")) == 2);
}

TEST_CASE("oversize: one 70 KB header with header_bytes raised past 64 KiB is 431, customsd goes on") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port(), "header_bytes: 256KiB"));
  const auto r = exchange(d.port(), content_length_request(chat_json(), "X-Big: " + std::string(70'000, 'b') + "\r\n"));
  CHECK(r.status == 431);
  CHECK(r.closed);
  CHECK(up.request_count() == 0);
  CHECK(metric(d.metrics(), hits("field_bytes")) == 1);
  CHECK(serving(d));
  // Fields up to the documented maximum pass.
  CHECK(exchange(d.port(), content_length_request(chat_json(), "X-Big: " + std::string(64'000, 'b') + "\r\n")).status == 200);
  CHECK(up.request_count() == 1);
}

TEST_CASE("oversize: limits.request_body_bytes: a body of the limit is forwarded, one byte more is 413") {
  fake_provider up;
  daemon_under_test d(relay_config(up.port(), "request_body_bytes: 1024"));
  std::string body = chat_json();
  body.resize(1024, ' ');
  auto r = exchange(d.port(), content_length_request(body));
  CHECK(r.status == 200);
  REQUIRE(up.request_count() == 1);
  CHECK(up.requests().front().body == body);
  r = exchange(d.port(), content_length_request(body + " "));
  CHECK(r.status == 413);
  CHECK(r.closed);
  r = exchange(d.port(), chunked_request(body + " "));
  CHECK(r.status == 413);
  CHECK(up.request_count() == 1);
  CHECK(metric(d.metrics(), hits("request_body_bytes")) == 2);
}

TEST_CASE("oversize: limits that Beast cannot honour are refused when the config is loaded") {
  const auto dir = test_dir("hostile-config");
  for (const std::string line : {"header_bytes: 2MiB", "response_header_bytes: 2MiB", "trailer_bytes: 2MiB",
                                 "chunk_extension_bytes: 2MiB", "target_bytes: 2MiB", "header_fields: 0",
                                 "header_fields: 10001"}) {
    const auto file = write_file(dir / "limits.yaml", relay_config(9, line));
    const auto r = run_program({customsd_path(), "--config", file.string(), "--check-config"});
    INFO(line << ": " << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("E_VALUE: limits.") != std::string::npos);
  }
}
