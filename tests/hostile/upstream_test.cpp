// Upstream misbehaviour a real provider would not show, from a raw scripted
// upstream: huge trailers and headers, unknown transfer codings, bad chunk
// sizes, chunk extensions, too many fields. The flow fails (502 before the
// answer started, a cut answer after), the upstream connection is closed
// rather than pooled, customsd goes on.
#include "hostile.hpp"

using namespace customs::testing;
using namespace customs::testing::hostile;

namespace {

std::string upstream_rejected(const std::string& rule) {
  return "customs_framing_rejected_total{side=\"upstream\",rule=\"" + rule + "\"}";
}

const std::string answer_json = R"({"id":"x","object":"chat.completion","choices":[]})";

// The answer started (head and some body) and was cut: no complete response.
void check_cut(const raw_reply& r) {
  INFO(r.raw.substr(0, 300));
  CHECK(r.raw.starts_with("HTTP/1.1 200 "));
  CHECK(r.status == 0);  // never complete: no last chunk
  CHECK(r.closed);
}

}  // namespace

TEST_CASE("upstream: a 70 KB trailer in an answer cuts that answer, customsd goes on") {
  raw_upstream up([](std::size_t) {
    return chunked_answer(answer_json, "0\r\nX-Pad: " + std::string(70'000, 't') + "\r\n\r\n");
  });
  daemon_under_test d(relay_config(up.port()));
  check_cut(exchange(d.port(), content_length_request(chat_json())));
  CHECK(serving(d));
  CHECK(metric(d.metrics(), hits("trailer_bytes")) == 1);
}

TEST_CASE("upstream: trailers of an answer never become headers of the client's response") {
  raw_upstream up([](std::size_t) { return chunked_answer(answer_json, "0\r\nX-Leak: secret\r\n\r\n"); });
  daemon_under_test d(relay_config(up.port()));
  const auto r = exchange(d.port(), content_length_request(chat_json()));
  CHECK(r.status == 200);
  CHECK(r.response.body == answer_json);
  CHECK(r.raw.find("X-Leak") == std::string::npos);
  CHECK(r.raw.find("secret") == std::string::npos);
}

TEST_CASE("upstream: trailers past limits.trailer_bytes cut the answer, at the limit they are dropped") {
  raw_upstream up([](std::size_t n) {
    // name + value + 4 bytes: 100 for the first answer, 101 for the second.
    return chunked_answer(answer_json, "0\r\nX-T: " + std::string(n == 0 ? 93 : 94, 'v') + "\r\n\r\n");
  });
  daemon_under_test d(relay_config(up.port(), "trailer_bytes: 100"));
  CHECK(exchange(d.port(), content_length_request(chat_json())).status == 200);
  check_cut(exchange(d.port(), content_length_request(chat_json())));
  CHECK(metric(d.metrics(), hits("trailer_bytes")) == 1);
}

TEST_CASE("upstream: a transfer coding other than chunked fails the flow with 502 and its connection is not reused") {
  for (const std::string te : {"xchunked", "chunked, identity", "gzip, chunked", "identity"}) {
    raw_upstream up([te](std::size_t) {
      return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: " + te + "\r\n\r\n" +
             "5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    });
    daemon_under_test d(relay_config(up.port()));
    INFO(te);
    auto r = exchange(d.port(), content_length_request(chat_json()));
    CHECK(r.status == 502);
    CHECK(r.response.body.find("customs_upstream_bad_response") != std::string::npos);
    r = exchange(d.port(), content_length_request(chat_json()));
    CHECK(r.status == 502);
    CHECK(up.connections() == 2);  // nothing of the first answer was taken for the second
    const auto m = d.metrics();
    CHECK(metric(m, upstream_rejected("bad_transfer_encoding")) + metric(m, upstream_rejected("unsupported_coding")) == 2);
  }
}

TEST_CASE("upstream: Transfer-Encoding with Content-Length fails the flow with 502") {
  raw_upstream up([](std::size_t) {
    return std::string("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  });
  daemon_under_test d(relay_config(up.port()));
  CHECK(exchange(d.port(), content_length_request(chat_json())).status == 502);
  CHECK(serving(d));
}

TEST_CASE("upstream: a bad chunk size cuts the answer") {
  raw_upstream up([](std::size_t) {
    return std::string("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "2\r\n{}\r\nzz\r\nmore\r\n0\r\n\r\n");
  });
  daemon_under_test d(relay_config(up.port()));
  check_cut(exchange(d.port(), content_length_request(chat_json())));
  CHECK(metric(d.metrics(), upstream_rejected("bad_chunk")) == 1);
  CHECK(serving(d));
}

TEST_CASE("upstream: chunk extensions past limits.chunk_extension_bytes cut the answer") {
  raw_upstream up([](std::size_t) {
    return std::string("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "2;e=") + std::string(200, 'x') + "\r\n{}\r\n0\r\n\r\n";
  });
  daemon_under_test d(relay_config(up.port(), "chunk_extension_bytes: 100"));
  const auto r = exchange(d.port(), content_length_request(chat_json()));
  CHECK(r.raw.find("e=xxx") == std::string::npos);
  CHECK(r.status == 502);
  CHECK(r.closed);
  CHECK(metric(d.metrics(), hits("chunk_extension_bytes")) == 1);
}

TEST_CASE("upstream: limits.response_header_bytes and header_fields: at the limit relayed, past it 502") {
  const auto head_of = [](std::size_t total) {
    const std::string start = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: ";
    const std::string end = "\r\n\r\n";
    return start + std::string(total - start.size() - end.size(), 'p') + end + "{}";
  };
  raw_upstream up([&](std::size_t n) {
    switch (n) {
      case 0: return head_of(2048);
      case 1: return head_of(2049);
      default: {
        std::string s = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n";
        for (int i = 0; i < (n == 2 ? 9 : 10); ++i) s += "X-F" + std::to_string(i) + ": v\r\n";
        return s + "\r\n{}";
      }
    }
  });
  daemon_under_test d(relay_config(up.port(), "response_header_bytes: 2048\nheader_fields: 10"));
  CHECK(exchange(d.port(), content_length_request(chat_json())).status == 200);
  CHECK(exchange(d.port(), content_length_request(chat_json())).status == 502);
  CHECK(exchange(d.port(), content_length_request(chat_json())).status == 200);
  CHECK(exchange(d.port(), content_length_request(chat_json())).status == 502);
  const auto m = d.metrics();
  CHECK(metric(m, hits("response_header_bytes")) == 1);
  CHECK(metric(m, hits("header_fields")) == 1);
}

TEST_CASE("upstream: one 70 KB header with response_header_bytes raised past 64 KiB is 502, customsd goes on") {
  raw_upstream up([](std::size_t) {
    return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: " + std::string(70'000, 'b') + "\r\n\r\n{}";
  });
  daemon_under_test d(relay_config(up.port(), "response_header_bytes: 256KiB"));
  CHECK(exchange(d.port(), content_length_request(chat_json())).status == 502);
  CHECK(serving(d));
  CHECK(metric(d.metrics(), hits("field_bytes")) == 1);
}

TEST_CASE("upstream: a reset in the middle of a Content-Length body cuts the answer, customsd goes on") {
  raw_upstream up([](std::size_t) { return std::string("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":"); },
                  true);
  daemon_under_test d(relay_config(up.port()));
  const auto r = exchange(d.port(), content_length_request(chat_json()));
  CHECK(r.raw.starts_with("HTTP/1.1 200 "));
  CHECK(r.status == 0);
  CHECK(r.closed);
  CHECK(serving(d));
}
