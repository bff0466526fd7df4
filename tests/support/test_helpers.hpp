#pragma once
// Helpers shared by the tests of tests/support (not part of the library).

#include "tests/support/fake_provider.hpp"
#include "tests/support/test_certs.hpp"
#include "tests/support/test_client.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

namespace customs::testing::test {

namespace json = boost::json;

inline json::value parse_json(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  INFO("JSON: " << text);
  REQUIRE_FALSE(ec);
  return v;
}

inline std::string str(const json::value& v) { return std::string(v.as_string()); }

// Options for a fake provider serving HTTPS with this certificate.
inline fake_provider_options serving_tls(const cert_and_key& identity) {
  fake_provider_options o;
  o.tls_cert = identity.cert;
  o.tls_key = identity.key;
  return o;
}

// A fake provider with a script and one client connected to it.
struct connected {
  explicit connected(script s = {}, std::chrono::milliseconds timeout = std::chrono::seconds(5))
      : client(loopback(provider.port(), timeout)) {
    provider.set_script(std::move(s));
    REQUIRE_FALSE(client.connect());
  }
  fake_provider provider;
  http_client client;
};

// The SSE events of a complete streamed response, checked for the framing the
// fake provider promises: 200, chunked, text/event-stream, nothing left over.
inline std::vector<sse_event> complete_stream(const http_result& r) {
  INFO("error: " << r.ec.message() << ", body: " << r.body);
  REQUIRE(r.complete);
  REQUIRE(r.status == 200);
  REQUIRE(r.chunked);
  REQUIRE(r.header("Content-Type").starts_with("text/event-stream"));
  std::string rest;
  auto events = parse_sse(r.body, &rest);
  REQUIRE(rest.empty());
  return events;
}

}  // namespace customs::testing::test
