// A provider's event stream that ends inside its last event (no blank line
// after it) while the guard still holds text back: what customsd sends after
// that event must not be glued to it. Found by fuzz_stream_guard.
#include "daemon/sse.hpp"
#include "enforced.hpp"

#include <boost/json.hpp>

using namespace customs::testing;
using namespace customs::testing::hostile;

namespace {

std::string chunk_event(const std::string& content) {
  boost::json::object delta;
  if (!content.empty()) delta["content"] = content;
  const boost::json::object o{{"id", "c1"},
                              {"object", "chat.completion.chunk"},
                              {"choices", boost::json::array{boost::json::object{
                                              {"index", 0}, {"delta", delta}, {"finish_reason", nullptr}}}}};
  return "data: " + boost::json::serialize(o);
}

// The texts of the content deltas a client reads from `body` (an SSE stream),
// joined; events whose data is not a JSON chunk are counted in `broken`.
std::string client_text(std::string_view body, int& broken) {
  customs::daemon::sse_parser p(1 << 20);
  std::string text;
  broken = 0;
  auto take = [&](const customs::daemon::sse_block& b) {
    // A client dispatches only terminated blocks (an event cut by the end of
    // the stream is dropped).
    if (!b.terminated || !b.has_data || b.data == "[DONE]") return;
    boost::system::error_code ec;
    const auto v = boost::json::parse(b.data, ec);
    if (ec || !v.is_object()) {
      ++broken;
      return;
    }
    const auto* choices = v.as_object().if_contains("choices");
    if (choices == nullptr || !choices->is_array()) return;
    for (const auto& c : choices->as_array()) {
      const auto* d = c.as_object().if_contains("delta");
      if (d == nullptr) continue;
      if (const auto* s = d->as_object().if_contains("content"); s != nullptr && s->is_string()) {
        text += std::string(s->as_string());
      }
    }
  };
  while (!body.empty()) {
    const auto r = p.feed(body);
    body.remove_prefix(r.consumed);
    if (r.what == customs::daemon::sse_parser::status::event) take(p.event());
    if (r.what == customs::daemon::sse_parser::status::too_large) break;
  }
  if (p.finish()) take(p.event());
  return text;
}

}  // namespace

TEST_CASE("stream tail: text held back when the provider's stream ends inside its last event reaches the client") {
  // "138" may be the start of a phone number: the guard holds it until the
  // stream ends. The last event (empty, no blank line after it) is forwarded
  // as it came; the released "138" follows it and must be an event of its own.
  for (const std::string tail_end : {"", "\n", "\r"}) {
    INFO("tail ends with [" << (tail_end == "\n" ? "LF" : tail_end == "\r" ? "CR" : "nothing") << "]");
    const std::string sse = chunk_event("Okay, I will text 138") + "\n\n" + chunk_event("") + tail_end;
    raw_upstream up([sse](std::size_t) {
      char size[32];
      std::snprintf(size, sizeof size, "%zx", sse.size());
      return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
             std::string(size) + "\r\n" + sse + "\r\n0\r\n\r\n";
    });
    temp_dir dir;
    enforce::trail_files t(dir.path());
    daemon_under_test d(enforcing_yaml(t, up.port()), "hostile-stream-tail");
    const std::string body = R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})";
    const auto r = exchange(d.port(), content_length_request(body, {}, "/openai-us/v1/chat/completions"));
    REQUIRE(r.status == 200);
    int broken = 0;
    INFO(r.response.body);
    CHECK(client_text(r.response.body, broken) == "Okay, I will text 138");
    CHECK(broken == 0);
  }
}
