// libFuzzer target: the JSON rewriting used for redaction. A body (request or
// response) or a stream of events is extracted, random slots get random texts
// (as redaction and the stream scanner's releases replace them), and the result
// is extracted again.
//
// Input: byte 0 picks what the rest is (a request body for one of the request
// paths, a response body for one of the response endpoints, or an SSE stream
// for one of the streamed endpoints); byte 1 seeds which slots are replaced and
// by what; the rest is the body or stream.
//
// Properties:
//   - rewriting never fails on the codec's own extraction or event;
//   - the rewritten body (event) extracts (decodes) again, with the same slots
//     in the same order (pointer, role, channel, aggregate), every replaced
//     slot holding its new text and every other slot its old text, and the
//     same non-text counts, usage and stream flags;
//   - in a stream, a codec fed the rewritten events stays in step with one fed
//     the original events (same channels open, same closes).
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "daemon/dialect/request.hpp"
#include "daemon/dialect/response.hpp"
#include "daemon/dialect/stream_codec.hpp"

namespace {
std::string canonical_numbers(std::string_view literals);
}
#include "daemon/sse.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using customs::daemon::dialect;
using customs::daemon::endpoint_kind;
using customs::daemon::text_replacement;
using customs::daemon::text_slot;
using customs::fuzz::check;

struct request_case {
  dialect d;
  std::string_view path;
};
constexpr std::array<request_case, 10> request_cases{{
    {dialect::openai, "/v1/chat/completions"},
    {dialect::openai, "/v1/responses"},
    {dialect::openai, "/v1/embeddings"},
    {dialect::anthropic, "/v1/messages"},
    {dialect::anthropic, "/v1/messages/count_tokens"},
    {dialect::gemini, "/v1beta/models/gemini-2.0-flash:generateContent"},
    {dialect::gemini, "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"},
    {dialect::gemini, "/v1beta/models/m:countTokens"},
    {dialect::gemini, "/v1beta/models/m:embedContent"},
    {dialect::gemini, "/v1beta/models/m:batchEmbedContents"},
}};

struct endpoint_case {
  dialect d;
  endpoint_kind e;
};
constexpr std::array<endpoint_case, 6> response_cases{{
    {dialect::openai, endpoint_kind::openai_chat},
    {dialect::openai, endpoint_kind::openai_responses},
    {dialect::openai, endpoint_kind::openai_embeddings},
    {dialect::anthropic, endpoint_kind::anthropic_messages},
    {dialect::gemini, endpoint_kind::gemini_generate},
    {dialect::gemini, endpoint_kind::gemini_stream_generate},
}};
constexpr std::array<endpoint_case, 4> stream_cases{{
    {dialect::openai, endpoint_kind::openai_chat},
    {dialect::openai, endpoint_kind::openai_responses},
    {dialect::anthropic, endpoint_kind::anthropic_messages},
    {dialect::gemini, endpoint_kind::gemini_stream_generate},
}};

// Pieces of replacement text: what redaction and released scanner output can
// hold (valid UTF-8, anything JSON must escape).
constexpr std::array<std::string_view, 16> fragments{{
    "[REDACTED:pi.phone]", "\"", "\\", "\n", std::string_view("\0", 1), "\x1f", "\x7f", "\xc3\xa9",
    "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xe2\x80\xa8", "</script>", "\\u0000", "{\"a\":[1,", "", " "}};

// The replacements for one extraction: each slot is replaced with probability
// one half, by a text made of fragments, the empty text, or a part of its own
// text (a view into the string it replaces, as a scanner may release).
struct plan {
  std::vector<std::string> texts;        // owned replacement texts
  std::vector<text_replacement> changes;
  std::vector<std::string> expected;     // every slot's text after the rewrite
};

plan make_plan(const std::vector<text_slot>& slots, customs::fuzz::rng& r) {
  plan p;
  p.texts.reserve(slots.size());
  for (std::size_t i = 0; i < slots.size(); ++i) {
    p.expected.emplace_back(slots[i].role == customs::daemon::slot_role::number ? canonical_numbers(slots[i].text)
                                                                                 : std::string(slots[i].text));
    // Keys, the request target and headers are scanned but cannot take a
    // replacement (a finding there blocks instead).
    if (!slots[i].writable()) continue;
    if (r.below(2) == 0) continue;
    const auto own = slots[i].text;
    if (r.below(4) == 0 && !own.empty()) {
      // Whole characters only (slot texts are valid UTF-8; a scanner never
      // splits a character).
      const auto inside = [&](std::size_t at) {
        return at < own.size() && (static_cast<unsigned char>(own[at]) & 0xC0) == 0x80;
      };
      std::size_t from = r.below(own.size());
      std::size_t to = from + r.below(own.size() - from + 1);
      while (inside(from)) ++from;
      while (to > from && inside(to)) --to;
      const auto part = own.substr(from, to > from ? to - from : 0);
      p.changes.push_back({i, part});
      p.expected.back() = std::string(part);
      continue;
    }
    std::string t;
    for (std::size_t n = r.below(5); n > 0; --n) t += fragments[r.below(fragments.size())];
    p.texts.push_back(std::move(t));
    p.changes.push_back({i, p.texts.back()});
    p.expected.back() = p.texts.back();
  }
  return p;
}

struct slot_shape {
  std::string where, channel;
  customs::daemon::slot_role role;
  bool aggregate;
  bool operator==(const slot_shape&) const = default;
};
std::vector<slot_shape> shapes(const std::vector<text_slot>& slots) {
  std::vector<slot_shape> out;
  for (const auto& s : slots) out.push_back({s.where, s.channel, s.role, s.aggregate});
  return out;
}
// The number slot holds the literals as the body spells them, and a rewritten
// body is re-serialised (same values, Boost.JSON's spelling: 1.0 becomes
// 1E0): its literals are compared by value.
std::string canonical_numbers(std::string_view literals) {
  std::string out;
  while (!literals.empty()) {
    const auto comma = literals.find(", ");
    const std::string_view one = literals.substr(0, comma);
    boost::system::error_code ec;
    const auto v = boost::json::parse(one, ec);
    out += ec ? std::string(one) : boost::json::serialize(v);
    out += ';';
    literals = comma == std::string_view::npos ? std::string_view() : literals.substr(comma + 2);
  }
  return out;
}
std::vector<std::string> texts(const std::vector<text_slot>& slots) {
  std::vector<std::string> out;
  for (const auto& s : slots) {
    out.emplace_back(s.role == customs::daemon::slot_role::number ? canonical_numbers(s.text) : std::string(s.text));
  }
  return out;
}
bool same_usage(const customs::daemon::token_usage& a, const customs::daemon::token_usage& b) {
  return a.input_tokens == b.input_tokens && a.output_tokens == b.output_tokens;
}

// Slots that share one JSON string (a field holding an inline file and the
// file's decoded text) rewrite each other: when a replacement names one of
// them, the others' texts follow it, so none of them is compared.
std::vector<bool> entangled(const std::vector<text_slot>& slots, const std::vector<customs::daemon::text_replacement>& changes) {
  std::vector<bool> out(slots.size(), false);
  for (const auto& c : changes)
    for (std::size_t i = 0; i < slots.size(); ++i)
      if (i != c.slot && slots[i].target != nullptr && slots[i].target == slots[c.slot].target) out[i] = out[c.slot] = true;
  return out;
}
// A replaced string that held an inline file is read again as whatever the
// new text is (a file, or plain text): the slots derived from it may differ, so
// the re-extraction is then compared by its flags only.
bool entangled_any(const std::vector<bool>& skip) {
  for (const bool b : skip)
    if (b) return true;
  return false;
}
// A replaced string that was not a text file (binary base64, say) may be one
// after the rewrite: the replacement text can itself be base64 or a data: URL
// of text, and is then read as a file. No redaction writes such a text (every
// style writes characters outside base64, see test_dialect "a redaction in a
// binary file's base64 keeps how the body is read"), so such a body is
// compared by its flags only, as an entangled one.
bool became_file(const std::vector<text_slot>& slots, const std::vector<text_replacement>& changes,
                 const std::vector<text_slot>& again) {
  for (const auto& c : changes) {
    if (slots[c.slot].role == customs::daemon::slot_role::attachment) continue;
    for (const auto& a : again)
      if (a.role == customs::daemon::slot_role::attachment && a.where == slots[c.slot].where) return true;
  }
  return false;
}
bool holds(const std::vector<std::string>& got, const std::vector<std::string>& want, const std::vector<bool>& skip) {
  if (got.size() != want.size()) return false;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (!skip[i] && got[i] != want[i]) return false;
  return true;
}

// A data: URL is read wherever it stands, the model field too: a redaction in
// its text rewrites that string, and the model the provider is asked for is
// then the redacted one (what must not leave does not, in any field).
bool rewrote_model(const customs::daemon::request_extraction& ex, const std::vector<text_replacement>& changes) {
  if (!ex.document.is_object()) return false;
  const auto* m = ex.document.get_object().if_contains("model");
  if (m == nullptr || !m->is_string()) return false;
  for (const auto& c : changes)
    if (ex.slots[c.slot].target == &m->get_string()) return true;
  return false;
}

void fuzz_request(const request_case& c, std::string_view body, customs::fuzz::rng& r) {
  auto ex = customs::daemon::extract_request(c.d, c.path, body);
  if (!ex) return;
  const auto before = shapes(ex->slots);
  auto p = make_plan(ex->slots, r);
  const auto skip = entangled(ex->slots, p.changes);
  auto out = customs::daemon::rewrite_request(*ex, p.changes);
  check(out.has_value(), "rewrite_request failed on its own extraction");
  check(holds(texts(ex->slots), p.expected, skip), "the extraction's slots do not hold the new texts");
  auto again = customs::daemon::extract_request(c.d, c.path, *out);
  check(again.has_value(), "a rewritten request does not extract again");
  check(again->stream == ex->stream && (again->model == ex->model || rewrote_model(*ex, p.changes)) &&
            again->include_usage == ex->include_usage && again->logprobs_requested == ex->logprobs_requested,
        "rewriting changed the request's flags");
  if (became_file(ex->slots, p.changes, again->slots)) return;
  check(entangled_any(skip) || shapes(again->slots) == before, "rewriting changed the request's slots");
  check(entangled_any(skip) || holds(texts(again->slots), p.expected, skip), "a rewritten request's slot has the wrong text");
  check(entangled_any(skip) || again->non_text.count == ex->non_text.count, "rewriting changed the non-text parts");
}

void fuzz_response(const endpoint_case& c, std::string_view body, customs::fuzz::rng& r) {
  auto ex = customs::daemon::extract_response(c.d, c.e, body);
  if (!ex) return;
  const auto before = shapes(ex->slots);
  auto p = make_plan(ex->slots, r);
  const auto skip = entangled(ex->slots, p.changes);
  auto out = customs::daemon::rewrite_response(*ex, p.changes);
  check(out.has_value(), "rewrite_response failed on its own extraction");
  check(holds(texts(ex->slots), p.expected, skip), "the extraction's slots do not hold the new texts");
  auto again = customs::daemon::extract_response(c.d, c.e, *out);
  check(again.has_value(), "a rewritten response does not extract again");
  check(again->provider_error == ex->provider_error, "rewriting changed the error flag");
  check(same_usage(again->usage, ex->usage), "rewriting changed the usage");
  if (became_file(ex->slots, p.changes, again->slots)) return;
  check(entangled_any(skip) || shapes(again->slots) == before, "rewriting changed the response's slots");
  check(entangled_any(skip) || holds(texts(again->slots), p.expected, skip), "a rewritten response's slot has the wrong text");
  check(entangled_any(skip) || again->non_text.count == ex->non_text.count, "rewriting changed the non-text parts");
}

// Two codecs in step: `original` sees the stream as it came, `rewritten` sees
// each event as the relay forwards it after replacing texts.
struct stream_pair {
  customs::daemon::stream_codec original;
  customs::daemon::stream_codec rewritten;
};

void on_block(stream_pair& s, const customs::daemon::sse_block& b, customs::fuzz::rng& r) {
  if (!b.has_data) return;
  auto ev = s.original.decode(b.event, b.data);
  if (!ev) {
    auto mirror = s.rewritten.decode(b.event, b.data);
    check(!mirror.has_value(), "codecs in step disagree on an event");
    return;
  }
  const auto before = shapes(ev->slots);
  auto p = make_plan(ev->slots, r);
  const auto skip = entangled(ev->slots, p.changes);
  std::string data(b.data);
  if (!p.changes.empty()) {
    auto out = s.original.encode(*ev, p.changes);
    check(out.has_value(), "encode failed on its own event");
    check(holds(texts(ev->slots), p.expected, skip), "the event's slots do not hold the new texts");
    data = std::move(*out);
  }
  auto again = s.rewritten.decode(b.event, data);
  check(again.has_value(), "a rewritten event does not decode again");
  check(again->kind == ev->kind, "rewriting changed the event's kind");
  check(entangled_any(skip) || shapes(again->slots) == before, "rewriting changed the event's slots");
  check(entangled_any(skip) || holds(texts(again->slots), p.expected, skip), "a rewritten event's slot has the wrong text");
  check(again->closes == ev->closes, "rewriting changed the channels an event closes");
  check(same_usage(again->usage, ev->usage), "rewriting changed the usage");
  check(s.original.open_channels() == s.rewritten.open_channels(), "codecs in step have other open channels");
}

void fuzz_stream(const endpoint_case& c, std::string_view body, customs::fuzz::rng& r) {
  auto a = customs::daemon::stream_codec::create(c.d, c.e);
  auto b = customs::daemon::stream_codec::create(c.d, c.e);
  check(a.has_value() && b.has_value(), "no codec for a streamed endpoint");
  stream_pair s{std::move(*a), std::move(*b)};
  customs::daemon::sse_parser sse(1 << 20);
  while (!body.empty()) {
    const auto res = sse.feed(body);
    if (res.what == customs::daemon::sse_parser::status::too_large) return;
    body.remove_prefix(res.consumed);
    if (res.what == customs::daemon::sse_parser::status::event) on_block(s, sse.event(), r);
  }
  if (sse.finish()) on_block(s, sse.event(), r);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  customs::fuzz::input in(data, size);
  std::size_t pick = in.byte() % (request_cases.size() + response_cases.size() + stream_cases.size());
  customs::fuzz::rng r(in.byte());
  const std::string_view body = in.rest();
  if (pick < request_cases.size()) return fuzz_request(request_cases[pick], body, r), 0;
  pick -= request_cases.size();
  if (pick < response_cases.size()) return fuzz_response(response_cases[pick], body, r), 0;
  pick -= response_cases.size();
  fuzz_stream(stream_cases[pick], body, r);
  return 0;
}
