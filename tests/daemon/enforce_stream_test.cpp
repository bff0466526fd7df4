// The stream guard without networking: SSE streams of each dialect fed block by
// block, as customsd's relay feeds them, checking what a client would receive.
#include "enforce_harness.hpp"

#include "daemon/enforce/logprobs.hpp"
#include "daemon/enforce/stream_guard.hpp"

using namespace customs::testing;
using namespace customs::testing::enforce;
using customs::daemon::endpoint_kind;
using customs::daemon::unscannable_mode;
using customs::daemon::enforce::cut_reason;
using customs::daemon::enforce::stream_guard;
using customs::daemon::enforce::stream_guard_options;

namespace {

customs::policy::rule_set_ptr test_rule_set() {
  static const customs::policy::rule_set_ptr rs = [] {
    const std::vector<fs::path> paths = {shipped_rules(), test_rules("responses.yaml"), test_rules("flow-rules.yaml")};
    auto r = customs::policy::load_rule_set(paths);
    REQUIRE(r.ok());
    return r.rules;
  }();
  return rs;
}

customs::policy::flow_context response_ctx(const std::string& dst = "US") {
  customs::policy::flow_context c;
  c.dir = customs::policy::direction::response;
  c.src = "CN";
  c.dst = dst;
  c.tenant = "demo";
  return c;
}

struct guarded {
  std::string out;  // what the client receives
  bool stopped = false;
  std::size_t replaced = 0;
};

// Feeds a raw SSE stream through a guard, block by block, then ends it.
guarded run(stream_guard& g, const std::string& raw) {
  guarded r;
  customs::daemon::sse_parser p(1 << 20);
  std::string_view in(raw);
  auto one = [&](const customs::daemon::sse_block& b) {
    std::vector<std::string> out;
    const auto s = g.on_event(b, out);
    if (s == stream_guard::step::pass) {
      r.out += b.raw;
    } else {
      for (const auto& o : out) r.out += o;
      ++r.replaced;
      if (s == stream_guard::step::stop) r.stopped = true;
    }
  };
  while (!in.empty() && !r.stopped) {
    const auto res = p.feed(in);
    in.remove_prefix(res.consumed);
    if (res.what == customs::daemon::sse_parser::status::event) one(p.event());
  }
  if (!r.stopped && p.finish()) one(p.event());
  if (!r.stopped) {
    std::vector<std::string> out;
    if (g.on_end(out) == stream_guard::step::stop) r.stopped = true;
    for (const auto& o : out) r.out += o;
  }
  return r;
}

stream_guard make(endpoint_kind e, dialect d, stream_guard_options o = {}, const std::string& dst = "US") {
  o.keep_texts = true;
  auto g = stream_guard::create(d, e, test_rule_set(), response_ctx(dst), o);
  REQUIRE(g.has_value());
  return std::move(*g);
}

std::string data(const json::object& o) { return "data: " + json::serialize(o) + "\n\n"; }
std::string named(const std::string& name, const json::object& o) {
  return "event: " + name + "\n" + data(o);
}

std::string chat_stream(const std::vector<std::string>& deltas) {
  std::string s;
  for (const auto& d : deltas) {
    s += data({{"id", "c1"}, {"object", "chat.completion.chunk"},
               {"choices", json::array{json::object{{"index", 0}, {"delta", json::object{{"content", d}}}, {"finish_reason", nullptr}}}}});
  }
  s += data({{"id", "c1"}, {"object", "chat.completion.chunk"},
             {"choices", json::array{json::object{{"index", 0}, {"delta", json::object{}}, {"finish_reason", "stop"}}}}});
  return s + "data: [DONE]\n\n";
}

std::string anthropic_stream(const std::vector<std::string>& deltas) {
  std::string s = named("message_start", {{"type", "message_start"},
                                          {"message", json::object{{"id", "m1"}, {"type", "message"}, {"role", "assistant"},
                                                                   {"content", json::array{}}, {"model", "c"},
                                                                   {"usage", json::object{{"input_tokens", 5}, {"output_tokens", 1}}}}}});
  s += named("content_block_start", {{"type", "content_block_start"}, {"index", 0},
                                     {"content_block", json::object{{"type", "text"}, {"text", ""}}}});
  for (const auto& d : deltas) {
    s += named("content_block_delta", {{"type", "content_block_delta"}, {"index", 0},
                                       {"delta", json::object{{"type", "text_delta"}, {"text", d}}}});
  }
  s += named("content_block_stop", {{"type", "content_block_stop"}, {"index", 0}});
  s += named("message_delta", {{"type", "message_delta"}, {"delta", json::object{{"stop_reason", "end_turn"}}},
                               {"usage", json::object{{"output_tokens", 9}}}});
  return s + named("message_stop", {{"type", "message_stop"}});
}

json::object gemini_chunk(const std::string& text, bool finish) {
  json::object cand{{"content", json::object{{"parts", json::array{json::object{{"text", text}}}}, {"role", "model"}}}, {"index", 0}};
  if (finish) cand["finishReason"] = "STOP";
  return {{"candidates", json::array{cand}}};
}

// Gemini's last chunk carries text and finishReason together, or (finish ==
// false) the stream just ends.
std::string gemini_stream(const std::vector<std::string>& deltas, bool finish = true) {
  std::string s;
  for (std::size_t i = 0; i < deltas.size(); ++i) s += data(gemini_chunk(deltas[i], finish && i + 1 == deltas.size()));
  return s;
}

std::vector<std::string> bytes_of(const std::string& s) {
  std::vector<std::string> v;
  for (char c : s) v.emplace_back(1, c);
  return v;
}

const api_call chat_api{"openai chat", dialect::openai, "openai", "", nullptr};
const api_call anthropic_api{"anthropic messages", dialect::anthropic, "anthropic", "", nullptr};
const api_call gemini_api{"gemini", dialect::gemini, "gemini", "", nullptr};
const api_call responses_api{"openai responses", dialect::openai, "openai", "", nullptr};

}  // namespace

TEST_CASE("stream guard: a phone number fed one byte per delta is redacted in each dialect") {
  const std::string text = "Ring 138 1234 5678 today, or +86 139 1234 5678.";
  const std::string want = "Ring [REDACTED:pi.phone] today, or [REDACTED:pi.phone].";
  {
    auto g = make(endpoint_kind::openai_chat, dialect::openai);
    const auto r = run(g, chat_stream(bytes_of(text)));
    const auto v = reassemble(chat_api, r.out);
    CHECK(v.text == want);
    CHECK(v.ended);
    CHECK(written_texts(g.kept()) == json::array{text});
    CHECK(g.findings().size() == 2);
  }
  {
    auto g = make(endpoint_kind::anthropic_messages, dialect::anthropic);
    const auto r = run(g, anthropic_stream(bytes_of(text)));
    const auto v = reassemble(anthropic_api, r.out);
    CHECK(v.text == want);
    CHECK(v.ended);
    CHECK(g.usage().output_tokens == 9u);
  }
  {
    auto g = make(endpoint_kind::gemini_stream_generate, dialect::gemini);
    const auto r = run(g, gemini_stream(bytes_of(text)));
    const auto v = reassemble(gemini_api, r.out);
    CHECK(v.text == want);
    CHECK(v.ended);
  }
}

TEST_CASE("stream guard: text held back at a channel's close goes into the closing event or a delta before it") {
  SECTION("gemini: the last chunk closes the candidate and carries text") {
    auto g = make(endpoint_kind::gemini_stream_generate, dialect::gemini);
    const auto r = run(g, gemini_stream({"call 138 1234 ", "5678"}));
    // The number ends the text: only the close releases it, in the same event.
    const auto events = parse_sse(r.out, nullptr);
    REQUIRE(events.size() == 2);
    CHECK(events[1].data.find("[REDACTED:pi.phone]") != std::string::npos);
    CHECK(events[1].data.find("finishReason") != std::string::npos);
    CHECK(reassemble(gemini_api, r.out).text == "call [REDACTED:pi.phone]");
  }
  SECTION("gemini: a stream without finishReason is flushed at its end") {
    auto g = make(endpoint_kind::gemini_stream_generate, dialect::gemini);
    const auto r = run(g, gemini_stream({"call 138 1234 ", "5678"}, false));
    CHECK(reassemble(gemini_api, r.out).text == "call [REDACTED:pi.phone]");
    CHECK(r.out.find("5678") == std::string::npos);
  }
  SECTION("openai chat: finish_reason without text: a delta event comes first") {
    auto g = make(endpoint_kind::openai_chat, dialect::openai);
    const auto r = run(g, chat_stream({"call 138 1234 5678"}));
    const auto events = parse_sse(r.out, nullptr);
    REQUIRE(events.size() == 4);
    CHECK(events[1].data.find("[REDACTED:pi.phone]") != std::string::npos);
    CHECK(events[2].data.find("\"finish_reason\":\"stop\"") != std::string::npos);
    CHECK(events[3].data == "[DONE]");
  }
}

TEST_CASE("stream guard: Responses API aggregates repeat the released text, never the original") {
  const std::string item = "msg_1";
  auto ev = [&](const std::string& type, json::object o) {
    o["type"] = type;
    return named(type, o);
  };
  const auto part = [](const std::string& t) {
    return json::object{{"type", "output_text"}, {"text", t}, {"annotations", json::array{}}, {"logprobs", json::array{}}};
  };
  const auto done_item = json::object{{"id", item}, {"type", "message"}, {"role", "assistant"}, {"status", "completed"},
                                      {"content", json::array{part("tel 138 1234 5678.")}}};
  std::string s = ev("response.created", {{"sequence_number", 0}, {"response", json::object{{"id", "r"}, {"output", json::array{}}}}});
  s += ev("response.output_item.added", {{"sequence_number", 1}, {"output_index", 0},
                                         {"item", json::object{{"id", item}, {"type", "message"}, {"role", "assistant"}, {"content", json::array{}}}}});
  s += ev("response.content_part.added", {{"sequence_number", 2}, {"item_id", item}, {"output_index", 0}, {"content_index", 0}, {"part", part("")}});
  int seq = 3;
  for (const std::string d : {"tel 138", " 1234 56", "78."}) {
    s += ev("response.output_text.delta", {{"sequence_number", seq++}, {"item_id", item}, {"output_index", 0}, {"content_index", 0},
                                           {"delta", d}, {"logprobs", json::array{}}});
  }
  s += ev("response.output_text.done", {{"sequence_number", seq++}, {"item_id", item}, {"output_index", 0}, {"content_index", 0},
                                        {"text", "tel 138 1234 5678."}, {"logprobs", json::array{}}});
  s += ev("response.content_part.done", {{"sequence_number", seq++}, {"item_id", item}, {"output_index", 0}, {"content_index", 0},
                                         {"part", part("tel 138 1234 5678.")}});
  s += ev("response.output_item.done", {{"sequence_number", seq++}, {"output_index", 0}, {"item", done_item}});
  s += ev("response.completed", {{"sequence_number", seq++},
                                 {"response", json::object{{"id", "r"}, {"status", "completed"}, {"output", json::array{done_item}},
                                                           {"usage", json::object{{"input_tokens", 3}, {"output_tokens", 4}}}}}});
  auto g = make(endpoint_kind::openai_responses, dialect::openai);
  const auto r = run(g, s);
  INFO(r.out);
  CHECK_FALSE(r.stopped);
  CHECK(r.out.find("5678") == std::string::npos);
  CHECK(reassemble(responses_api, r.out).text == "tel [REDACTED:pi.phone].");
  // Every aggregate carries the redacted text.
  std::size_t count = 0;
  for (std::size_t at = r.out.find("tel [REDACTED:pi.phone]."); at != std::string::npos;
       at = r.out.find("tel [REDACTED:pi.phone].", at + 1)) {
    ++count;
  }
  CHECK(count == 4);
  CHECK(g.usage().output_tokens == 4u);
  CHECK(written_texts(g.kept()) == json::array{"tel 138 1234 5678."});
}

TEST_CASE("stream guard: a block rule stops the stream with the error event, before the match") {
  auto g = make(endpoint_kind::anthropic_messages, dialect::anthropic);
  const auto r = run(g, anthropic_stream({"key AKIAUJZ", "DE8GXD6", "NCF10E end"}));
  CHECK(r.stopped);
  CHECK(g.cut() == cut_reason::blocked);
  CHECK(r.out.find("AKIA") == std::string::npos);
  CHECK(r.out.find("event: error\ndata: {\"type\":\"error\"") != std::string::npos);
  CHECK(r.out.find("message_stop") == std::string::npos);
  const auto v = reassemble(anthropic_api, r.out);
  CHECK(v.text == "key ");
  CHECK_FALSE(v.ended);
}

TEST_CASE("stream guard: a response rule on the flow blocks at the first event") {
  auto g = make(endpoint_kind::openai_chat, dialect::openai, {}, "KP");
  const auto r = run(g, chat_stream({"hello"}));
  CHECK(r.stopped);
  CHECK(g.cut() == cut_reason::blocked);
  CHECK(r.out.find("hello") == std::string::npos);
  CHECK(r.out.find("test.no-answers-from-kp") != std::string::npos);
}

TEST_CASE("stream guard: events that cannot be inspected follow unscannable") {
  const std::string s = named("message_start", {{"type", "message_start"}, {"message", json::object{{"id", "m"}, {"content", json::array{}}}}}) +
                        named("surprise", {{"type", "surprise"}, {"text", "unseen"}}) +
                        named("message_stop", {{"type", "message_stop"}});
  SECTION("block cuts the stream") {
    auto g = make(endpoint_kind::anthropic_messages, dialect::anthropic);
    const auto r = run(g, s);
    CHECK(r.stopped);
    CHECK(g.cut() == cut_reason::unscannable);
    CHECK(r.out.find("customs_unscannable") != std::string::npos);
    CHECK(r.out.find("unseen") == std::string::npos);
  }
  SECTION("allow forwards it and counts it") {
    stream_guard_options o;
    o.unscannable = unscannable_mode::allow;
    auto g = make(endpoint_kind::anthropic_messages, dialect::anthropic, o);
    const auto r = run(g, s);
    CHECK_FALSE(r.stopped);
    CHECK(r.out == s);
    CHECK(g.unscanned_events() == 1);
  }
  SECTION("malformed JSON under block") {
    auto g = make(endpoint_kind::openai_chat, dialect::openai);
    const auto r = run(g, "data: {\"choices\": [\n\n");
    CHECK(r.stopped);
    CHECK(g.cut() == cut_reason::unscannable);
  }
}

TEST_CASE("stream guard: events without a change are forwarded byte for byte, log-probabilities are emptied") {
  auto g = make(endpoint_kind::openai_chat, dialect::openai);
  // Odd spacing and key order survive when nothing changes.
  const std::string plain = "data: {\"choices\":[{\"index\":0,  \"delta\":{\"content\":\"hello \"},\"finish_reason\":null}]}\n\n";
  const std::string with_lp =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"world\"},\"finish_reason\":null,"
      "\"logprobs\":{\"content\":[{\"token\":\"world\",\"logprob\":-0.1,\"bytes\":[119],\"top_logprobs\":[]}]}}]}\n\n";
  const auto r = run(g, plain + with_lp);
  const auto events = parse_sse(r.out, nullptr);
  // The stream ends without finish_reason: a last delta releases what the
  // scanner still held at the end of "world".
  REQUIRE(events.size() == 3);
  CHECK(r.out.substr(0, plain.size()) == plain);
  CHECK(events[1].data.find("\"logprobs\":null") != std::string::npos);
  CHECK(events[1].data.find("token") == std::string::npos);
  CHECK(reassemble(chat_api, r.out).text == "hello world");
}

TEST_CASE("strip_logprobs empties every dialect's log-probabilities in place") {
  auto v = json::parse(R"({"a":{"logprobs":{"content":[1]}},"b":[{"logprobs":[{"token":"x"}]}],)"
                       R"("c":{"logprobsResult":{"topCandidates":[1]},"avgLogprobs":-0.5},"logprobs":null})");
  CHECK(customs::daemon::enforce::strip_logprobs(v));
  CHECK(json::serialize(v) == R"({"a":{"logprobs":null},"b":[{"logprobs":[]}],"c":{"logprobsResult":{},"avgLogprobs":-5E-1},"logprobs":null})");
  CHECK_FALSE(customs::daemon::enforce::strip_logprobs(v));
}

// ---- texts around the channels: event names, errors, tool names ----------------

namespace {

const std::string secret = "AKIAUJZDE8GXD6NCF10E";  // an AWS access key: blocked in answers

json::object chat_chunk(json::object delta, json::value finish = nullptr) {
  return {{"id", "c1"}, {"object", "chat.completion.chunk"},
          {"choices", json::array{json::object{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish}}}}};
}

}  // namespace

TEST_CASE("stream guard: an event name carrying a secret cuts the stream, in every dialect") {
  struct named_case {
    const char* name;
    endpoint_kind e;
    dialect d;
    std::string stream;
  };
  const named_case cases[] = {
      {"openai chat", endpoint_kind::openai_chat, dialect::openai,
       "event: " + secret + "\n" + data(chat_chunk({{"content", "hi"}})) + "data: [DONE]\n\n"},
      {"anthropic", endpoint_kind::anthropic_messages, dialect::anthropic,
       named(secret, {{"type", "ping"}}) + named("message_stop", {{"type", "message_stop"}})},
      {"gemini", endpoint_kind::gemini_stream_generate, dialect::gemini,
       "event: " + secret + "\n" + data(gemini_chunk("hi", true))},
      {"responses", endpoint_kind::openai_responses, dialect::openai,
       named(secret, {{"type", "response.created"}, {"sequence_number", 0}, {"response", json::object{{"id", "r"}, {"output", json::array{}}}}})},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto g = make(c.e, c.d);
    const auto r = run(g, c.stream);
    CHECK(r.stopped);
    CHECK(g.cut() == cut_reason::blocked);
    CHECK(r.out.find(secret) == std::string::npos);
  }
}

TEST_CASE("stream guard: a clean event name is scanned once and the stream passes unchanged") {
  auto g = make(endpoint_kind::anthropic_messages, dialect::anthropic);
  const auto r = run(g, anthropic_stream({"hello ", "world"}));
  CHECK_FALSE(r.stopped);
  const auto v = reassemble(anthropic_api, r.out);
  CHECK(v.text == "hello world");
  CHECK(v.ended);
  CHECK(g.findings().empty());
  CHECK(g.segments() == 1);  // the names were no findings: nothing recorded for them
}

TEST_CASE("stream guard: a provider error event is scanned: a secret replaces it with Customs' error, a phone is redacted") {
  struct error_case {
    const char* name;
    endpoint_kind e;
    dialect d;
    std::string (*stream)(const std::string& message);
  };
  const error_case cases[] = {
      {"openai chat", endpoint_kind::openai_chat, dialect::openai,
       [](const std::string& m) {
         return data(chat_chunk({{"content", "partial "}})) +
                data({{"error", json::object{{"message", m}, {"type", "server_error"}}}});
       }},
      {"anthropic", endpoint_kind::anthropic_messages, dialect::anthropic,
       [](const std::string& m) {
         return named("error", {{"type", "error"}, {"error", json::object{{"type", "overloaded_error"}, {"message", m}}}});
       }},
      {"gemini", endpoint_kind::gemini_stream_generate, dialect::gemini,
       [](const std::string& m) {
         return data(gemini_chunk("partial ", false)) +
                data({{"error", json::object{{"code", 500}, {"message", m}, {"status", "INTERNAL"}}}});
       }},
      {"responses", endpoint_kind::openai_responses, dialect::openai,
       [](const std::string& m) {
         return named("error", {{"type", "error"}, {"sequence_number", 1}, {"code", "server_error"}, {"message", m}});
       }},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    {
      auto g = make(c.e, c.d);
      const auto r = run(g, c.stream("failed on " + secret));
      CHECK(r.stopped);
      CHECK(g.cut() == cut_reason::blocked);
      CHECK(r.out.find(secret) == std::string::npos);
      CHECK(r.out.find("customs_blocked") != std::string::npos);
    }
    {
      auto g = make(c.e, c.d);
      const auto r = run(g, c.stream("call 138 1234 5678 later"));
      INFO(r.out);
      CHECK(r.out.find("1234 5678") == std::string::npos);
      CHECK(r.out.find("call [REDACTED:pi.phone] later") != std::string::npos);
      CHECK(g.findings().size() == 1);
    }
  }
}

TEST_CASE("stream guard: a redaction in an error event's type blocks, it does not rewrite what the event is") {
  // `event: error` names the event; its data's "type" is the provider's text,
  // scanned but not writable (a rewrite would change the event's kind).
  for (const auto& [e, d] : {std::pair{endpoint_kind::openai_responses, dialect::openai},
                             std::pair{endpoint_kind::anthropic_messages, dialect::anthropic}}) {
    auto g = make(e, d);
    const auto r = run(g, named("error", {{"type", "call 138 1234 5678"}, {"message", "failed"}}));
    INFO(r.out);
    CHECK(r.stopped);
    CHECK(g.cut() == cut_reason::blocked);
    CHECK(r.out.find("1234 5678") == std::string::npos);
    CHECK(r.out.find("customs_blocked") != std::string::npos);
  }
}

TEST_CASE("stream guard: tool-call names are scanned in every dialect") {
  const std::string phone = "138 1234 5678";
  struct tool_case {
    const char* name;
    endpoint_kind e;
    dialect d;
    std::string (*stream)(const std::string& tool);
  };
  const tool_case cases[] = {
      {"openai chat", endpoint_kind::openai_chat, dialect::openai,
       [](const std::string& t) {
         return data(chat_chunk({{"tool_calls", json::array{json::object{{"index", 0}, {"id", "call_1"}, {"type", "function"},
                                                                          {"function", json::object{{"name", t}, {"arguments", ""}}}}}}})) +
                data(chat_chunk({{"tool_calls", json::array{json::object{{"index", 0}, {"function", json::object{{"arguments", "{}"}}}}}}})) +
                data(chat_chunk(json::object{}, "tool_calls")) + "data: [DONE]\n\n";
       }},
      {"anthropic", endpoint_kind::anthropic_messages, dialect::anthropic,
       [](const std::string& t) {
         return named("content_block_start", {{"type", "content_block_start"}, {"index", 0},
                                              {"content_block", json::object{{"type", "tool_use"}, {"id", "toolu_1"}, {"name", t}, {"input", json::object{}}}}}) +
                named("content_block_stop", {{"type", "content_block_stop"}, {"index", 0}}) +
                named("message_stop", {{"type", "message_stop"}});
       }},
      {"gemini", endpoint_kind::gemini_stream_generate, dialect::gemini,
       [](const std::string& t) {
         json::object cand{{"content", json::object{{"parts", json::array{json::object{{"functionCall", json::object{{"name", t}, {"args", json::object{}}}}}}},
                                                    {"role", "model"}}},
                           {"index", 0}, {"finishReason", "STOP"}};
         return data({{"candidates", json::array{cand}}});
       }},
      {"responses", endpoint_kind::openai_responses, dialect::openai,
       [](const std::string& t) {
         return named("response.output_item.added",
                      {{"type", "response.output_item.added"}, {"sequence_number", 1}, {"output_index", 0},
                       {"item", json::object{{"type", "function_call"}, {"id", "fc_1"}, {"call_id", "c"}, {"name", t}, {"arguments", ""}}}});
       }},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    {
      auto g = make(c.e, c.d);
      const auto r = run(g, c.stream("lookup_" + secret));
      CHECK(r.stopped);
      CHECK(g.cut() == cut_reason::blocked);
      CHECK(r.out.find(secret) == std::string::npos);
    }
    {
      auto g = make(c.e, c.d);
      const auto r = run(g, c.stream("call " + phone));
      INFO(r.out);
      CHECK_FALSE(r.stopped);
      CHECK(r.out.find(phone) == std::string::npos);
      CHECK(r.out.find("call [REDACTED:pi.phone]") != std::string::npos);
    }
  }
}

TEST_CASE("stream guard: a Responses aggregate that differs from the streamed text is scanned itself") {
  auto ev = [](const std::string& type, json::object o) {
    o["type"] = type;
    return named(type, o);
  };
  std::string s = ev("response.output_text.delta", {{"sequence_number", 1}, {"item_id", "m"}, {"output_index", 0},
                                                    {"content_index", 0}, {"delta", "all good"}});
  s += ev("response.output_text.done", {{"sequence_number", 2}, {"item_id", "m"}, {"output_index", 0},
                                        {"content_index", 0}, {"text", "call 138 1234 5678"}});
  auto g = make(endpoint_kind::openai_responses, dialect::openai);
  const auto r = run(g, s);
  INFO(r.out);
  CHECK(r.out.find("1234 5678") == std::string::npos);
  CHECK(r.out.find("call [REDACTED:pi.phone]") != std::string::npos);
  CHECK(g.findings().size() == 1);
  CHECK(written_texts(g.kept()) == json::array{"all good", "call 138 1234 5678"});
}

TEST_CASE("stream guard: an event repeating a key is forwarded re-encoded from what was scanned") {
  auto g = make(endpoint_kind::openai_chat, dialect::openai);
  const std::string dup =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + secret + "\",\"content\":\"fine\"},\"finish_reason\":null}]}\n\n";
  const auto r = run(g, dup + "data: [DONE]\n\n");
  CHECK_FALSE(r.stopped);
  CHECK(r.out.find(secret) == std::string::npos);
  CHECK(reassemble(chat_api, r.out).text == "fine");
}

TEST_CASE("stream guard: findings per flow, at the bound the stream is redacted") {
  stream_guard_options o;
  o.max_findings = 3;
  auto g = make(endpoint_kind::openai_chat, dialect::openai, o);
  const auto r = run(g, chat_stream({"a 138 1234 5670, ", "b 138 1234 5671, ", "c 138 1234 5672."}));
  CHECK_FALSE(r.stopped);
  CHECK_FALSE(g.findings_limit());
  CHECK(reassemble(chat_api, r.out).text == "a [REDACTED:pi.phone], b [REDACTED:pi.phone], c [REDACTED:pi.phone].");
}

TEST_CASE("stream guard: findings per flow, just past the bound the stream is unscannable") {
  const auto stream = chat_stream({"a 138 1234 5670, ", "b 138 1234 5671, ", "c 138 1234 5672, ", "d 138 1234 5673, ", "e tail"});
  SECTION("block cuts it") {
    stream_guard_options o;
    o.max_findings = 3;
    auto g = make(endpoint_kind::openai_chat, dialect::openai, o);
    const auto r = run(g, stream);
    CHECK(r.stopped);
    CHECK(g.findings_limit());
    CHECK(g.cut() == cut_reason::unscannable);
    CHECK(r.out.find("138 1234 567") == std::string::npos);
  }
  SECTION("tag releases what was held, then lets the rest through uninspected") {
    stream_guard_options o;
    o.max_findings = 3;
    o.unscannable = unscannable_mode::tag;
    auto g = make(endpoint_kind::openai_chat, dialect::openai, o);
    const auto r = run(g, stream);
    CHECK_FALSE(r.stopped);
    CHECK(g.findings_limit());
    // [DONE] only: the detectors' hold-back (spaced and separated digits are
    // one number) reaches past "d 138 1234 5673, e tail", so the fourth number
    // is confirmed when the finish chunk closes the channel.
    CHECK(g.unscanned_events() == 1);
    CHECK(reassemble(chat_api, r.out).ended);
  }
}

TEST_CASE("stream guard: texts kept for the audit record stop at keep_bytes") {
  stream_guard_options o;
  o.keep_bytes = 10;
  auto g = make(endpoint_kind::openai_chat, dialect::openai, o);
  (void)run(g, chat_stream({"0123456789", "abcdef"}));
  CHECK(written_texts(g.kept()) == json::array{"0123456789"});
  CHECK(g.kept().cut());
  const auto markers = written_markers(g.kept());
  REQUIRE(markers.size() == 1);
  CHECK(markers[0].at("bytes").to_number<std::int64_t>() == 16);
  CHECK(markers[0].at("kept").to_number<std::int64_t>() == 10);
}

namespace {

bool has_finding(const std::vector<customs::policy::finding>& fs, const std::string& text, customs::policy::action a) {
  for (const auto& f : fs) {
    if (f.text.find(text) != std::string::npos && f.applied == a) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("stream guard: a block found in an event name or an error event or an aggregate is kept in the findings") {
  auto responses_ev = [](const std::string& type, json::object o) {
    o["type"] = type;
    return named(type, o);
  };
  struct cut_case {
    const char* name;
    endpoint_kind e;
    std::string stream;
  };
  const cut_case cases[] = {
      {"error event", endpoint_kind::openai_chat,
       data(chat_chunk({{"content", "hello "}})) +
           data({{"error", json::object{{"message", "failed on " + secret}, {"type", "server_error"}}}})},
      {"event name", endpoint_kind::openai_chat,
       "event: " + secret + "\n" + data(chat_chunk({{"content", "hello"}})) + "data: [DONE]\n\n"},
      {"aggregate", endpoint_kind::openai_responses,
       responses_ev("response.output_text.delta", {{"sequence_number", 1}, {"item_id", "m"}, {"output_index", 0},
                                                   {"content_index", 0}, {"delta", "harmless"}}) +
           responses_ev("response.output_text.done", {{"sequence_number", 2}, {"item_id", "m"}, {"output_index", 0},
                                                      {"content_index", 0}, {"text", "key " + secret}})},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto g = make(c.e, dialect::openai);
    const auto r = run(g, c.stream);
    INFO(r.out);
    CHECK(r.stopped);
    CHECK(g.cut() == cut_reason::blocked);
    CHECK(r.out.find(secret) == std::string::npos);
    CHECK(has_finding(g.findings(), secret, customs::policy::action::block));
    // The text that caused the cut is kept for the record, as replay reads it.
    bool kept = false;
    for (const auto& t : written_texts(g.kept())) kept = kept || std::string(t.as_string()).find(secret) != std::string::npos;
    CHECK(kept);
  }
}

TEST_CASE("stream guard: a redaction that cuts an event name or an error event's type is kept in the findings") {
  const std::string phone = "138 1234 5678";
  {
    auto g = make(endpoint_kind::openai_chat, dialect::openai);
    const auto r = run(g, "event: call " + phone + "\n" + data(chat_chunk({{"content", "hello"}})) + "data: [DONE]\n\n");
    CHECK(r.stopped);
    CHECK(g.cut() == cut_reason::blocked);
    CHECK(has_finding(g.findings(), phone, customs::policy::action::redact));
  }
  {
    auto g = make(endpoint_kind::anthropic_messages, dialect::anthropic);
    const auto r = run(g, named("error", {{"type", "call " + phone}, {"message", "failed"}}));
    CHECK(r.stopped);
    CHECK(g.cut() == cut_reason::blocked);
    CHECK(has_finding(g.findings(), phone, customs::policy::action::redact));
  }
}

TEST_CASE("stream guard: an Anthropic event whose name and data type differ is unscannable") {
  const std::string smuggled =
      named("message_delta", {{"type", "content_block_delta"}, {"index", 0},
                              {"delta", json::object{{"type", "text_delta"}, {"text", "key " + secret}}}});
  std::string s = anthropic_stream({"hello"});
  const auto at = s.find("event: content_block_stop");
  REQUIRE(at != std::string::npos);
  s.insert(at, smuggled);
  {
    auto g = make(endpoint_kind::anthropic_messages, dialect::anthropic);
    const auto r = run(g, s);
    INFO(r.out);
    CHECK(r.stopped);
    CHECK(g.cut() == cut_reason::unscannable);
    CHECK(r.out.find(secret) == std::string::npos);
    CHECK(r.out.find("customs_unscannable") != std::string::npos);
  }
  {
    stream_guard_options o;
    o.unscannable = unscannable_mode::tag;
    auto g = make(endpoint_kind::anthropic_messages, dialect::anthropic, o);
    const auto r = run(g, s);
    CHECK_FALSE(r.stopped);
    CHECK(g.unscanned_events() == 1);
  }
  {
    // The same event named by its data's type is scanned (and blocked).
    std::string t = anthropic_stream({"hello"});
    t.insert(t.find("event: content_block_stop"),
             named("content_block_delta", {{"type", "content_block_delta"}, {"index", 0},
                                           {"delta", json::object{{"type", "text_delta"}, {"text", "key " + secret}}}}));
    auto g = make(endpoint_kind::anthropic_messages, dialect::anthropic);
    const auto r = run(g, t);
    CHECK(r.stopped);
    CHECK(g.cut() == cut_reason::blocked);
  }
}
