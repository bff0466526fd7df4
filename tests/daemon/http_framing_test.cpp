// daemon/http_framing: the raw head scan, the checked parser and the read
// buffer's bound, without sockets (parse_request / parse_response run them as
// the session does).
#include "daemon/http_framing.hpp"

#include <boost/beast/http/error.hpp>
#include <catch2/catch.hpp>

using namespace customs::daemon;
namespace http = boost::beast::http;

namespace {

framing_limits small() {
  framing_limits l;
  l.header_bytes = 1024;
  l.header_fields = 8;
  l.target_bytes = 256;
  l.trailer_bytes = 64;
  l.chunk_extension_bytes = 32;
  l.body_bytes = 4096;
  return l;
}

parsed_message request(const std::string& bytes, request_parser* out = nullptr, framing_limits l = small()) {
  request_parser p(l);
  auto r = parse_request(bytes, l, p);
  if (out != nullptr) {
    // Copy what the tests look at.
    out->get().base() = p.get().base();
    out->get().body() = p.get().body();
  }
  return r;
}

}  // namespace

TEST_CASE("http framing: the head scanner finds the end of a head fed byte by byte") {
  const std::string head = "GET /x HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\nBODY";
  head_scanner s(small(), true);
  for (std::size_t n = 1; n < head.size() - 4; ++n) {
    INFO(n);
    REQUIRE(s.scan(std::string_view(head).substr(0, n)) == head_scanner::status::need_more);
  }
  CHECK(s.scan(head) == head_scanner::status::complete);
  CHECK(s.head_bytes() == head.size() - 4);
}

TEST_CASE("http framing: the head scanner refuses bare line ends, obs-fold and oversize heads and targets") {
  const auto error_of = [](const std::string& bytes, framing_limits l = small()) {
    head_scanner s(l, true);
    return s.scan(bytes) == head_scanner::status::failed ? s.error() : framing_error::none;
  };
  CHECK(error_of("GET / HTTP/1.1\nHost: h\n\n") == framing_error::bad_line_ending);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: h\rx\r\n\r\n") == framing_error::bad_line_ending);
  CHECK(error_of("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n") == framing_error::obs_fold);
  CHECK(error_of("GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n") == framing_error::obs_fold);
  CHECK(error_of("GET /" + std::string(256, 'a') + " HTTP/1.1\r\n\r\n") == framing_error::target_too_long);
  CHECK(error_of("GET /" + std::string(255, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n") == framing_error::none);
  CHECK(error_of("GET /" + std::string(400, 'a')) == framing_error::target_too_long);  // never ends
  CHECK(error_of("GET / HTTP/1.1\r\nA: " + std::string(1100, 'x')) == framing_error::head_too_large);
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 9; ++i) many += "A: b\r\n";
  CHECK(error_of(many + "A: b\r\n\r\n") == framing_error::too_many_fields);
}

TEST_CASE("http framing: request trailers are dropped, counted and bounded") {
  request_parser p(small());
  auto r = request("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n0\r\nAuthorization: Bearer t\r\nX-Customs-Source: US\r\n\r\n",
                   &p);
  REQUIRE(r.done);
  CHECK(p.get().body() == "hello");
  CHECK(p.get().base().find("Authorization") == p.get().base().end());
  CHECK(p.get().base().find("X-Customs-Source") == p.get().base().end());
  // 64 bytes of trailer: "X: " + 57 + CRLF counts 1 + 59 + 4.
  r = request("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + std::string(59, 'v') +
              "\r\n\r\n");
  CHECK(r.done);
  r = request("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + std::string(60, 'v') +
              "\r\n\r\n");
  CHECK(r.violation == framing_error::trailer_too_large);
  // A trailer section bigger than the read buffer.
  r = request("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + std::string(100'000, 'v') +
              "\r\n\r\n");
  CHECK(r.violation == framing_error::trailer_too_large);
}

TEST_CASE("http framing: a field value too big for Beast's storage is refused, never thrown") {
  framing_limits l = small();
  l.header_bytes = 256 * 1024;
  request_parser p(l);
  auto r = parse_request("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(70'000, 'v') + "\r\n\r\n", l, p);
  CHECK(r.violation == framing_error::field_too_large);
  string_response_parser rp(l);
  r = parse_response("HTTP/1.1 200 OK\r\nX: " + std::string(70'000, 'v') + "\r\nContent-Length: 0\r\n\r\n", l, rp);
  CHECK(r.violation == framing_error::field_too_large);
}

TEST_CASE("http framing: chunk extensions are summed over a message") {
  auto r = request("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "1;" + std::string(15, 'a') + "\r\nx\r\n1;" + std::string(15, 'b') + "\r\ny\r\n0\r\n\r\n");
  CHECK(r.done);  // 16 + 16 bytes
  r = request("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
              "1;" + std::string(15, 'a') + "\r\nx\r\n1;" + std::string(16, 'b') + "\r\ny\r\n0\r\n\r\n");
  CHECK(r.violation == framing_error::chunk_extension_too_large);
}

TEST_CASE("http framing: Transfer-Encoding must be exactly chunked, Host exactly one") {
  const auto violation = [](const std::string& fields, const std::string& version = "HTTP/1.1") {
    return request("POST /x " + version + "\r\n" + fields + "\r\n0\r\n\r\n").violation;
  };
  CHECK(violation("Host: h\r\nTransfer-Encoding: chunked\r\n") == framing_error::none);
  CHECK(violation("Host: h\r\nTransfer-Encoding: xchunked\r\n") == framing_error::bad_transfer_encoding);
  CHECK(violation("Host: h\r\nTransfer-Encoding: chunked, identity\r\n") == framing_error::bad_transfer_encoding);
  CHECK(violation("Host: h\r\nTransfer-Encoding: gzip, chunked\r\n") == framing_error::unsupported_coding);
  CHECK(violation("Host: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n") ==
        framing_error::unsupported_coding);
  CHECK(violation("Host: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n") ==
        framing_error::bad_content_length);
  CHECK(violation("Host: h\r\nTransfer-Encoding: chunked\r\n", "HTTP/1.0") == framing_error::bad_transfer_encoding);
  CHECK(violation("Transfer-Encoding: chunked\r\n") == framing_error::bad_host);
  CHECK(violation("Host: a\r\nHost: b\r\nTransfer-Encoding: chunked\r\n") == framing_error::bad_host);
  CHECK(violation("Host: a,b\r\nTransfer-Encoding: chunked\r\n") == framing_error::bad_host);
}

TEST_CASE("http framing: a full read buffer is a trailer section after the last chunk, else a chunk line") {
  CHECK(classify_full_buffer("0\r\nX: aaaa") == framing_error::trailer_too_large);
  CHECK(classify_full_buffer("\r\n000;e=1\r\nX: aaaa") == framing_error::trailer_too_large);
  CHECK(classify_full_buffer("5;e=aaaaaaaa") == framing_error::chunk_extension_too_large);
  CHECK(classify_full_buffer("00000000000000000") == framing_error::chunk_extension_too_large);
}

TEST_CASE("http framing: an upstream answer with another coding than chunked is refused") {
  const framing_limits l = small();
  for (const std::string te : {"identity", "xchunked", "chunked, gzip"}) {
    string_response_parser p(l);
    const auto r = parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: " + te + "\r\n\r\nabc", l, p);
    INFO(te);
    CHECK(r.violation == framing_error::bad_transfer_encoding);
  }
}

TEST_CASE("http framing: response heads are scanned too: exact header limit, no obs-fold") {
  framing_limits l = small();
  const auto head_of = [](std::size_t total) {
    const std::string start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: ";
    return start + std::string(total - start.size() - 4, 'p') + "\r\n\r\n";
  };
  string_response_parser a(l);
  CHECK(parse_response(head_of(1024), l, a).done);
  string_response_parser b(l);
  CHECK(parse_response(head_of(1025), l, b).violation == framing_error::head_too_large);
  string_response_parser c(l);
  CHECK(parse_response("HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", l, c).violation ==
        framing_error::obs_fold);
}

TEST_CASE("http framing: an answer read until the connection closes ends with the input, others are incomplete") {
  const framing_limits l = small();
  string_response_parser a(l);
  const std::string until_close = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nread until the close";
  const auto r = parse_response(until_close, l, a);
  CHECK(r.done);
  CHECK(r.consumed == until_close.size());
  CHECK(a.get().body() == "read until the close");
  string_response_parser b(l);
  const auto cut = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", l, b);
  CHECK_FALSE(cut.done);
  CHECK(cut.ec == http::error::need_more);
  string_response_parser c(l);
  const auto cut_chunked = parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", l, c);
  CHECK_FALSE(cut_chunked.done);
  CHECK(cut_chunked.ec == http::error::need_more);
}
