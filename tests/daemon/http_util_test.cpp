// Hop-by-hop headers, target mapping and checks.
#include "daemon/http_util.hpp"

#include <catch2/catch.hpp>

using namespace customs::daemon;
namespace http = boost::beast::http;

TEST_CASE("http: targets with dot segments or encoded separators are refused") {
  CHECK(safe_target("/openai/v1/chat/completions"));
  CHECK(safe_target("/gemini/v1beta/models/gemini-1.5:streamGenerateContent?alt=sse&key=x/../y"));
  CHECK(safe_target("/a/.b/c..d/%41"));
  CHECK_FALSE(safe_target("openai/v1"));
  CHECK_FALSE(safe_target("http://example.com/openai/"));
  CHECK_FALSE(safe_target("/openai/../admin"));
  CHECK_FALSE(safe_target("/openai/./v1"));
  CHECK_FALSE(safe_target("/openai/.."));
  CHECK_FALSE(safe_target("/openai/%2e%2E/admin"));
  CHECK_FALSE(safe_target("/openai/.%2e/admin"));
  CHECK_FALSE(safe_target("/openai/a%2fb"));
  CHECK_FALSE(safe_target("/openai/a%5Cb"));
  CHECK_FALSE(safe_target("/openai/a%00"));
  CHECK_FALSE(safe_target("/openai/a%2"));
  CHECK_FALSE(safe_target("/openai/a%zz"));
  CHECK_FALSE(safe_target("/openai/a\\b"));
  CHECK_FALSE(safe_target(std::string_view("/openai/a\x01", 10)));
}

TEST_CASE("http: the route prefix is replaced by the upstream's base path, the query kept") {
  std::string out;
  map_target("/openai/v1/chat/completions?x=1", "/openai/", "", out);
  CHECK(out == "/v1/chat/completions?x=1");
  map_target("/openai/v1/chat", "/openai/", "/base", out);
  CHECK(out == "/base/v1/chat");
  map_target("/openai/", "/openai/", "", out);
  CHECK(out == "/");
}

TEST_CASE("http: hop-by-hop headers, also those named by Connection") {
  http::fields f;
  f.insert("Connection", "keep-alive, X-Private");
  f.insert("Connection", "x-other");
  f.insert("Keep-Alive", "timeout=5");
  f.insert("TE", "trailers");
  f.insert("Trailer", "x");
  f.insert("Transfer-Encoding", "chunked");
  f.insert("Upgrade", "h2c");
  f.insert("Proxy-Authorization", "Basic x");
  f.insert("Proxy-Something", "x");
  f.insert("X-Private", "secret");
  f.insert("X-Other", "1");
  f.insert("Authorization", "Bearer sk");
  f.insert("Content-Type", "application/json");
  const hop_by_hop hop(f);
  std::vector<std::string> kept;
  for (const auto& field : f) {
    if (!hop.contains(field)) kept.emplace_back(field.name_string());
  }
  CHECK(kept == std::vector<std::string>{"Authorization", "Content-Type"});
}

TEST_CASE("http: event-stream content types") {
  CHECK(is_event_stream("text/event-stream"));
  CHECK(is_event_stream("Text/Event-Stream; charset=utf-8"));
  CHECK(is_event_stream(" text/event-stream"));
  CHECK_FALSE(is_event_stream("text/event-streams"));
  CHECK_FALSE(is_event_stream("application/json"));
  CHECK_FALSE(is_event_stream(""));
}
