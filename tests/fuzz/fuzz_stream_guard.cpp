// libFuzzer target, differential: enforcement of a streamed response
// (daemon/enforce/stream_guard.hpp: SSE block -> stream codec -> one stream
// scanner per channel -> re-encoded events) against the whole-text evaluation
// of each channel's text. This is "what is forwarded is what was inspected"
// for streams: what a client reassembles is the policy's redaction of what
// the provider sent.
//
// Input: byte 0 picks the codec (every streamed endpoint); byte 1 picks the
// flow (source, destination, tenant); byte 2 seeds the pieces the body arrives
// in; the rest is the provider's response body, an SSE stream. Rules: the
// shipped packs (rules/) and the demo pack (config/demo-rules/, which redacts
// phone numbers in answers to tenant "demo" in CN). Unscannable events block.
//
// The provider's stream and the stream forwarded to the client are both
// decoded (SSE parser + a fresh codec) into channel segments: the delta texts
// of a channel from its first delta to its close (an error event closes every
// channel). Properties:
//   - stream not cut: every segment the client reassembles is exactly the
//     redaction (rule_set::evaluate) of the provider's segment, every
//     forwarded event decodes, and no segment is missing or added;
//   - stream cut (block, unscannable, engine error): every client segment is a
//     prefix of that redaction, and the forwarded stream ends with the
//     dialect's error event;
//   - an aggregate text the client gets (Responses API) is the redaction of
//     the provider's aggregate, and so of its channel's segment when the two
//     texts are the same (a provider's aggregate may differ from its deltas).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/dialect/stream_codec.hpp"
#include "daemon/enforce/stream_guard.hpp"
#include "daemon/sse.hpp"
#include "policy/policy.hpp"
#include "tests/fuzz/fuzz_files.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

namespace policy = customs::policy;
using customs::daemon::dialect;
using customs::daemon::endpoint_kind;
using customs::daemon::event_kind;
using customs::daemon::sse_block;
using customs::daemon::sse_parser;
using customs::daemon::stream_codec;
using customs::daemon::enforce::stream_guard;
using customs::fuzz::check;

const policy::rule_set_ptr& rules() {
  static const policy::rule_set_ptr rs = [] {
    const std::array paths{customs::fuzz::source_dir() / "rules", customs::fuzz::source_dir() / "config/demo-rules"};
    auto r = policy::load_rule_set(paths);
    if (!r.ok()) {
      for (const auto& d : r.diagnostics) std::fprintf(stderr, "%s\n", d.to_string().c_str());
      std::abort();
    }
    return r.rules;
  }();
  return rs;
}

struct endpoint_case {
  dialect d;
  endpoint_kind e;
};
constexpr std::array<endpoint_case, 4> endpoints{{
    {dialect::openai, endpoint_kind::openai_chat},
    {dialect::openai, endpoint_kind::openai_responses},
    {dialect::anthropic, endpoint_kind::anthropic_messages},
    {dialect::gemini, endpoint_kind::gemini_stream_generate},
}};

struct flow {
  const char* src;
  const char* dst;
  const char* tenant;
};
constexpr std::array<flow, 4> flows{{
    {"CN", "US", "demo"},
    {"CN", "US", ""},
    {"DE", "US", "acme"},
    {"US", "CN", "demo"},
}};

// The channel segments of a decoded stream, and its aggregate texts.
struct transcript {
  std::map<std::pair<std::string, int>, std::string> segments;  // (channel, n-th opening) -> text
  std::map<std::string, int> opened;                             // channel -> openings so far
  std::map<std::string, bool> open;
  // (channel, the segment it repeats, or -1 when the channel had no delta) -> text
  std::vector<std::pair<std::pair<std::string, int>, std::string>> aggregates;
  bool all_decoded = true;
  bool ended_with_error = false;

  void on_event(stream_codec& codec, const sse_block& b) {
    if (!b.has_data) return;
    auto ev = codec.decode(b.event, b.data);
    if (!ev) {
      all_decoded = false;
      return;
    }
    ended_with_error = ev->kind == event_kind::error;
    if (ev->kind == event_kind::error) {
      for (auto& [ch, o] : open) o = false;
      return;
    }
    for (const auto& s : ev->slots) {
      if (s.aggregate) continue;
      if (!open[s.channel]) {
        open[s.channel] = true;
        ++opened[s.channel];
      }
      segments[{s.channel, opened[s.channel]}] += s.text;
    }
    for (const auto& ch : ev->closes) open[ch] = false;
    for (const auto& s : ev->slots) {
      if (!s.aggregate) continue;
      const auto it = opened.find(s.channel);
      aggregates.push_back({{s.channel, it == opened.end() ? -1 : it->second}, std::string(s.text)});
    }
  }
};

transcript decode(endpoint_case c, std::string_view body) {
  auto codec = stream_codec::create(c.d, c.e);
  check(codec.has_value(), "no codec for a streamed endpoint");
  transcript t;
  sse_parser p(1 << 24);
  while (!body.empty()) {
    const auto r = p.feed(body);
    check(r.what != sse_parser::status::too_large, "a stream over the test's event limit");
    body.remove_prefix(r.consumed);
    if (r.what == sse_parser::status::event) t.on_event(*codec, p.event());
  }
  if (p.finish()) t.on_event(*codec, p.event());
  return t;
}

}  // namespace

// The one-time set-up (rule compilation or a written trail; seconds under the
// sanitizers and coverage) runs before libFuzzer starts timing inputs.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)rules();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  customs::fuzz::input in(data, size);
  const endpoint_case ep = endpoints[in.byte() % endpoints.size()];
  const flow& f = flows[in.byte() % flows.size()];
  const std::uint8_t piece_seed = in.byte();
  const std::string_view body = in.rest();

  policy::flow_context ctx;
  ctx.dir = policy::direction::response;
  ctx.src = f.src;
  ctx.dst = f.dst;
  ctx.tenant = f.tenant;
  ctx.now = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));  // 2026-01-01
  customs::daemon::enforce::stream_guard_options opts;
  opts.unscannable = customs::daemon::unscannable_mode::block;
  auto guard = stream_guard::create(ep.d, ep.e, rules(), ctx, opts);
  check(guard.has_value(), "no guard for a streamed endpoint");

  // The relay: SSE blocks of the body, in pieces, through the guard.
  std::string forwarded;
  bool stopped = false;
  std::vector<std::string> out;
  const auto take = [&](stream_guard::step s, const sse_block* b) {
    if (s == stream_guard::step::pass) {
      check(out.empty(), "a pass with blocks to send");
      if (b != nullptr) forwarded += b->raw;
    } else {
      for (const auto& o : out) forwarded += o;
      stopped = s == stream_guard::step::stop;
    }
    out.clear();
  };
  sse_parser sse(1 << 24);
  for (auto piece : customs::fuzz::pieces(body, piece_seed)) {
    while (!piece.empty() && !stopped) {
      const auto r = sse.feed(piece);
      check(r.what != sse_parser::status::too_large, "a stream over the test's event limit");
      piece.remove_prefix(r.consumed);
      if (r.what == sse_parser::status::event) take(guard->on_event(sse.event(), out), &sse.event());
    }
  }
  // As customsd's relay does (session.cpp): a last event cut by the end of
  // the stream was forwarded without its blank line, so one comes before
  // anything sent after it.
  bool tail_open = false;
  if (!stopped && sse.finish()) {
    tail_open = !sse.event().terminated;
    take(guard->on_event(sse.event(), out), &sse.event());
  }
  if (!stopped) {
    const std::size_t mark = forwarded.size();
    take(guard->on_end(out), nullptr);
    if (tail_open && forwarded.size() > mark) forwarded.insert(mark, "\n\n");
  }
  check(stopped == (guard->cut() != customs::daemon::enforce::cut_reason::none), "stop and cut() disagree");

  const transcript sent = decode(ep, body);
  const transcript got = decode(ep, forwarded);
  if (stopped) {
    check(got.ended_with_error, "a cut stream does not end with the error event");
  } else {
    check(sent.all_decoded, "the guard passed a stream the codec cannot decode");
    check(got.all_decoded, "a forwarded event does not decode");
    check(got.segments.size() == sent.segments.size(), "the client sees other channel segments");
  }
  const auto redacted = [&](const std::string& text) { return rules()->evaluate(text, ctx).redacted; };
  for (const auto& [key, text] : got.segments) {
    const auto it = sent.segments.find(key);
    check(it != sent.segments.end(), "the client sees a segment the provider did not send");
    const std::string want = redacted(it->second);
    if (stopped) check(want.starts_with(text), "a cut stream forwarded text that is not a prefix of the redaction");
    else check(text == want, "a forwarded segment is not the redaction of the provider's segment");
  }
  // Aggregates come in the same events on both sides.
  check(got.aggregates.size() <= sent.aggregates.size(), "the client sees more aggregate texts");
  for (std::size_t i = 0; i < got.aggregates.size(); ++i) {
    const auto& [at, text] = got.aggregates[i];
    check(at == sent.aggregates[i].first, "an aggregate moved to another channel");
    // The guard scans an aggregate whole, so the client gets the redaction of
    // the provider's aggregate, also when a provider's aggregate differs from
    // the deltas it streamed on that channel.
    check(text == redacted(sent.aggregates[i].second), "an aggregate is not the redaction of the provider's");
    if (at.second < 0) continue;
    const auto it = sent.segments.find(at);
    check(it != sent.segments.end(), "an aggregate of a segment the provider did not send");
    if (sent.aggregates[i].second == it->second)
      check(redacted(it->second) == text, "an aggregate differs from its segment's redaction");
  }
  return 0;
}
