// The ClientHello reader: real hellos from OpenSSL, cut every way a network
// can cut them, and malformed ones.
#include <catch2/catch.hpp>

#include "daemon/intercept/client_hello.hpp"
#include "hello_maker.hpp"

using namespace customs::daemon::intercept;
using customs::testing::hello_options;
using customs::testing::make_client_hello;
using customs::testing::refragment;

namespace {
constexpr std::size_t limit = 32 * 1024;
}

TEST_CASE("a ClientHello yields its server name and ALPN protocols", "[client_hello]") {
  const std::string h = make_client_hello();
  client_hello out;
  const auto r = parse_client_hello(h, limit, out);
  REQUIRE(r.status == hello_status::complete);
  CHECK(out.has_server_name);
  CHECK(out.server_name == "api.openai.com");
  CHECK(out.alpn == std::vector<std::string>{"h2", "http/1.1"});
  CHECK(out.offers_tls13);
  CHECK(out.legacy_version == 0x0303);
  CHECK(out.bytes == h.size());
}

TEST_CASE("a ClientHello without a server name is complete without one", "[client_hello]") {
  hello_options o;
  o.server_name.reset();
  client_hello out;
  REQUIRE(parse_client_hello(make_client_hello(o), limit, out).status == hello_status::complete);
  CHECK_FALSE(out.has_server_name);
  CHECK(out.server_name.empty());
}

TEST_CASE("a ClientHello cut at any byte asks for exactly the bytes it still needs", "[client_hello]") {
  const std::string h = make_client_hello();
  for (std::size_t cut = 1; cut < h.size(); ++cut) {
    client_hello out;
    const auto r = parse_client_hello(std::string_view(h).substr(0, cut), limit, out);
    INFO("cut at " << cut);
    REQUIRE(r.status == hello_status::need_more);
    CHECK(r.need > cut);
    CHECK(r.need <= h.size());
  }
}

TEST_CASE("a ClientHello fragmented into many small records is reassembled", "[client_hello]") {
  const std::string h = make_client_hello();
  for (const std::size_t n : {1u, 7u, 50u, 100u}) {
    const std::string f = refragment(h, n);
    client_hello out;
    INFO("records of " << n << " bytes");
    REQUIRE(parse_client_hello(f, limit, out).status == hello_status::complete);
    CHECK(out.server_name == "api.openai.com");
    CHECK(out.bytes == f.size());
    // Every prefix asks for more, never past the end.
    for (std::size_t cut = 1; cut < f.size(); cut += 13) {
      const auto r = parse_client_hello(std::string_view(f).substr(0, cut), limit, out);
      REQUIRE(r.status == hello_status::need_more);
      CHECK(r.need <= f.size());
    }
  }
}

TEST_CASE("a ClientHello larger than one TLS record is read across its records", "[client_hello]") {
  hello_options o;
  o.padding = 20000;
  const std::string h = make_client_hello(o);
  REQUIRE(h.size() > 16384 + 5);
  REQUIRE(static_cast<unsigned char>(h[0]) == 0x16);
  const std::size_t first = (static_cast<unsigned char>(h[3]) << 8) | static_cast<unsigned char>(h[4]);
  REQUIRE(first + 5 < h.size());  // OpenSSL sent it as more than one record
  client_hello out;
  REQUIRE(parse_client_hello(h, limit, out).status == hello_status::complete);
  CHECK(out.server_name == "api.openai.com");
  CHECK(out.bytes == h.size());
}

TEST_CASE("a ClientHello at limits.client_hello_bytes is read and one byte over is too large", "[client_hello]") {
  const std::string h = make_client_hello();
  client_hello out;
  CHECK(parse_client_hello(h, h.size(), out).status == hello_status::complete);
  CHECK(parse_client_hello(h, h.size() - 1, out).status == hello_status::too_large);
  // Known to be too large from its record header alone, before the rest arrives.
  CHECK(parse_client_hello(std::string_view(h).substr(0, 5), h.size() - 1, out).status == hello_status::too_large);
}

TEST_CASE("bytes that are not a TLS handshake are reported as not TLS", "[client_hello]") {
  client_hello out;
  CHECK(parse_client_hello("GET / HTTP/1.1\r\n", limit, out).status == hello_status::not_tls);
  CHECK(parse_client_hello(std::string("\x16\x02\x00\x00\x05", 5), limit, out).status == hello_status::not_tls);  // not version 3.x
  CHECK(parse_client_hello("", limit, out).status == hello_status::need_more);
}

TEST_CASE("malformed hellos are invalid", "[client_hello]") {
  const std::string h = make_client_hello();
  client_hello out;
  SECTION("another handshake type") {
    std::string x = h;
    x[5] = 0x02;  // ServerHello
    CHECK(parse_client_hello(x, limit, out).status == hello_status::invalid);
  }
  SECTION("a record of length zero") {
    CHECK(parse_client_hello(std::string("\x16\x03\x01\x00\x00", 5), limit, out).status == hello_status::invalid);
  }
  SECTION("a record over 2^14 bytes") {
    CHECK(parse_client_hello(std::string("\x16\x03\x01\x40\x01", 5), limit * 2, out).status == hello_status::invalid);
  }
  SECTION("a handshake length that disagrees with its body") {
    std::string x = h;
    x[8] = static_cast<char>(static_cast<unsigned char>(x[8]) - 1);  // message one byte shorter than the record
    CHECK(parse_client_hello(x, limit, out).status == hello_status::invalid);
  }
  SECTION("a non-handshake record after the first") {
    std::string f = refragment(h, 50);
    f[55] = 0x17;  // the second record claims to be application data
    CHECK(parse_client_hello(f, limit, out).status == hello_status::invalid);
  }
}

TEST_CASE("a server_name extension with two host names is invalid", "[client_hello]") {
  // Hand-made: legacy version, random, no session, one suite, null compression,
  // server_name with two host_name entries.
  std::string body = "\x03\x03" + std::string(32, 'r') + std::string("\x00\x00\x02\x13\x01\x01\x00", 7);
  const std::string name1 = "a.example", name2 = "b.example";
  std::string list;
  for (const auto& n : {name1, name2}) {
    list += '\x00';
    list += '\x00';
    list += static_cast<char>(n.size());
    list += n;
  }
  std::string ext = std::string("\x00\x00", 2);
  ext += static_cast<char>((list.size() + 2) >> 8);
  ext += static_cast<char>((list.size() + 2) & 0xff);
  ext += static_cast<char>(list.size() >> 8);
  ext += static_cast<char>(list.size() & 0xff);
  ext += list;
  body += static_cast<char>(ext.size() >> 8);
  body += static_cast<char>(ext.size() & 0xff);
  body += ext;
  std::string msg = "\x01";
  msg += '\x00';
  msg += static_cast<char>(body.size() >> 8);
  msg += static_cast<char>(body.size() & 0xff);
  msg += body;
  std::string rec = "\x16\x03\x01";
  rec += static_cast<char>(msg.size() >> 8);
  rec += static_cast<char>(msg.size() & 0xff);
  rec += msg;
  client_hello out;
  CHECK(parse_client_hello(rec, limit, out).status == hello_status::invalid);
}

TEST_CASE("an alert record is a fatal alert with the description given", "[client_hello]") {
  const std::string a = alert_record(49);
  CHECK(a == std::string("\x15\x03\x03\x00\x02\x02\x31", 7));
}
