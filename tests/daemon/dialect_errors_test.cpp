#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>

#include "daemon/dialect/dialect.hpp"

namespace json = boost::json;
using customs::daemon::dialect;

TEST_CASE("openai error body has the SDK's error object", "[dialect]") {
  auto v = json::parse(customs::daemon::error_body(dialect::openai, 451, "blocked \"here\"", "customs_blocked"));
  const auto& e = v.at("error").as_object();
  CHECK(e.at("message").as_string() == "blocked \"here\"");
  CHECK(e.at("type").as_string() == "permission_error");
  CHECK(e.at("code").as_string() == "customs_blocked");
  CHECK(e.at("param").is_null());
}

TEST_CASE("anthropic error body is typed error with a known error type", "[dialect]") {
  auto v = json::parse(customs::daemon::error_body(dialect::anthropic, 413, "too big"));
  CHECK(v.at("type").as_string() == "error");
  CHECK(v.at("error").at("type").as_string() == "request_too_large");
  CHECK(v.at("error").at("message").as_string() == "too big");
}

TEST_CASE("gemini error body carries the numeric code and rpc status", "[dialect]") {
  auto v = json::parse(customs::daemon::error_body(dialect::gemini, 504, "slow"));
  CHECK(v.at("error").at("code").as_int64() == 504);
  CHECK(v.at("error").at("status").as_string() == "DEADLINE_EXCEEDED");
}

TEST_CASE("stream error events are single SSE events without end markers", "[dialect]") {
  auto a = customs::daemon::stream_error_event(dialect::anthropic, 451, "cut");
  CHECK(a.rfind("event: error\ndata: {", 0) == 0);
  CHECK(a.ends_with("}\n\n"));
  auto o = customs::daemon::stream_error_event(dialect::openai, 502, "reset");
  CHECK(o.rfind("data: {\"error\":", 0) == 0);
  CHECK(o.find("[DONE]") == std::string::npos);
  CHECK(o.find("\n\n") == o.size() - 2);
}

TEST_CASE("dialect names round-trip and unknown names are rejected", "[dialect]") {
  for (auto d : {dialect::openai, dialect::anthropic, dialect::gemini})
    CHECK(customs::daemon::parse_dialect(customs::daemon::to_string(d)) == d);
  CHECK_FALSE(customs::daemon::parse_dialect("OpenAI").has_value());
}
