// The forward listener's parsers: CONNECT heads, authorities, absolute-form
// targets and Basic credentials.
#include <catch2/catch.hpp>

#include "daemon/listen/proxy_request.hpp"

using namespace customs::daemon::listen;

TEST_CASE("a CONNECT head is complete at its blank line", "[proxy_request]") {
  const std::string h = "CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n"
                        "Proxy-Authorization: Basic YTpi\r\n\r\nTLS BYTES";
  proxy_head out;
  REQUIRE(parse_proxy_head(h, 16384, out) == head_status::complete);
  CHECK(out.method == "CONNECT");
  CHECK(out.target == "api.openai.com:443");
  CHECK(out.version == 11);
  CHECK(out.proxy_authorization == "Basic YTpi");
  CHECK(out.length == h.size() - 9);
}

TEST_CASE("a CONNECT head cut anywhere is incomplete", "[proxy_request]") {
  const std::string h = "CONNECT a.com:443 HTTP/1.1\r\nHost: a.com\r\n\r\n";
  proxy_head out;
  for (std::size_t cut = 0; cut < h.size(); ++cut) {
    INFO(cut);
    CHECK(parse_proxy_head(std::string_view(h).substr(0, cut), 16384, out) == head_status::incomplete);
  }
}

TEST_CASE("a CONNECT head at limits.header_bytes is read and one byte over is too large", "[proxy_request]") {
  const std::string h = "CONNECT a.com:443 HTTP/1.1\r\nX: " + std::string(100, 'x') + "\r\n\r\n";
  proxy_head out;
  CHECK(parse_proxy_head(h, h.size(), out) == head_status::complete);
  CHECK(parse_proxy_head(h, h.size() - 1, out) == head_status::too_large);
}

TEST_CASE("malformed proxy heads are invalid", "[proxy_request]") {
  proxy_head out;
  for (const char* bad : {"CONNECT a.com:443 HTTP/1.1\nHost: a\r\n\r\n",            // bare LF
                          "CONNECT a.com:443 HTTP/1.1\r\nHost: a\r\n  folded\r\n\r\n",  // obsolete folding
                          "CONNECT a.com:443 HTTP/2.0\r\n\r\n",
                          "CONNECT  a.com:443 HTTP/1.1\r\n\r\n",
                          "CONNECT a.com:443\r\n\r\n",
                          "CON(NECT a.com:443 HTTP/1.1\r\n\r\n",
                          "CONNECT a.com:443 HTTP/1.1\r\nBad Name: x\r\n\r\n",
                          "CONNECT a.com:443 HTTP/1.1\r\nX: a\x01b\r\n\r\n",
                          "CONNECT a.com:443 HTTP/1.1\r\nProxy-Authorization: a\r\nproxy-authorization: b\r\n\r\n"}) {
    INFO(bad);
    CHECK(parse_proxy_head(bad, 16384, out) == head_status::invalid);
  }
  // Not a method at all: refused before the line ends.
  CHECK(parse_proxy_head("\x16\x03\x01", 16384, out) == head_status::invalid);
}

TEST_CASE("authorities are host:port with DNS names or IP literals", "[proxy_request]") {
  authority a;
  REQUIRE(parse_authority("API.OpenAI.com:443", 0, a));
  CHECK(a.host == "api.openai.com");
  CHECK(a.port == 443);
  CHECK_FALSE(a.ip_literal);
  REQUIRE(parse_authority("[2001:db8::1]:8443", 0, a));
  CHECK(a.host == "2001:db8::1");
  CHECK(a.port == 8443);
  CHECK(a.ip_literal);
  REQUIRE(parse_authority("10.0.0.1:443", 0, a));
  CHECK(a.ip_literal);
  REQUIRE(parse_authority("a.com", 80, a));
  CHECK(a.port == 80);
  for (const char* bad : {"a.com", "a.com:", "a.com:0", "a.com:65536", "user@a.com:443", "2001:db8::1:443",
                          "[2001:db8::1]443", "[nothost]:443", "a..com:443", ":443", "a.com:44x"}) {
    INFO(bad);
    CHECK_FALSE(parse_authority(bad, 0, a));
  }
}

TEST_CASE("absolute-form targets give the authority and the origin-form path", "[proxy_request]") {
  authority a;
  std::string origin;
  REQUIRE(parse_absolute_http("http://api.x.com/v1/chat/completions?x=1#frag", a, origin));
  CHECK(a.host == "api.x.com");
  CHECK(a.port == 80);
  CHECK(origin == "/v1/chat/completions?x=1");
  REQUIRE(parse_absolute_http("HTTP://a.com:8080", a, origin));
  CHECK(a.port == 8080);
  CHECK(origin == "/");
  REQUIRE(parse_absolute_http("http://a.com?q", a, origin));
  CHECK(origin == "/?q");
  CHECK_FALSE(parse_absolute_http("https://a.com/", a, origin));
  CHECK_FALSE(parse_absolute_http("/v1/chat", a, origin));
  CHECK_FALSE(parse_absolute_http("http://", a, origin));
  CHECK_FALSE(parse_absolute_http("http://u:p@a.com/", a, origin));
}

TEST_CASE("Basic credentials decode to user and password", "[proxy_request]") {
  basic_credentials c;
  REQUIRE(parse_basic_credentials("Basic YWxpY2U6cyNjcjN0OndpdGg6Y29sb25z", c));  // alice:s#cr3t:with:colons
  CHECK(c.user == "alice");
  CHECK(c.password == "s#cr3t:with:colons");
  REQUIRE(parse_basic_credentials("basic YTpi", c));
  CHECK(c.user == "a");
  CHECK(c.password == "b");
  for (const char* bad : {"Bearer YTpi", "Basic", "Basic YTpi=", "Basic YWJj", "Basic Y*pi", "Basic OmI=",
                          "Basic YQBiOmM="}) {  // no colon, bad padding, bad char, empty user, NUL in user
    INFO(bad);
    CHECK_FALSE(parse_basic_credentials(bad, c));
  }
  // 1024 bytes decoded at most.
  CHECK_FALSE(parse_basic_credentials("Basic " + std::string(1372, 'Y'), c));
}
