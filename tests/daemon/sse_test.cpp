// The SSE parser: line ends, fields, pieces split anywhere, the size limit.
#include "daemon/sse.hpp"
// With the dialect codecs in the same translation unit, as the enforcement
// filter will be: the names must not clash.
#include "daemon/dialect/stream_codec.hpp"
#include "daemon/filter.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <random>
#include <string>
#include <vector>

using customs::daemon::sse_block;
using customs::daemon::sse_parser;

namespace {

struct parsed {
  std::string raw, event, data, id;
  std::optional<std::uint64_t> retry;
  bool has_data = false, has_id = false, terminated = true;
  bool operator==(const parsed&) const = default;
};

parsed copy(const sse_block& e) {
  return {std::string(e.raw), std::string(e.event), std::string(e.data), std::string(e.id),
          e.retry, e.has_data, e.has_id, e.terminated};
}

struct outcome {
  std::vector<parsed> events;
  bool too_large = false;
};

// Feeds the pieces in order; at the end calls finish().
outcome run(const std::vector<std::string>& pieces, std::size_t limit = 1 << 20) {
  sse_parser p(limit);
  outcome out;
  for (const auto& piece : pieces) {
    std::string_view rest(piece);
    while (!rest.empty()) {
      const auto r = p.feed(rest);
      REQUIRE(r.consumed <= rest.size());
      rest.remove_prefix(r.consumed);
      if (r.what == sse_parser::status::event) out.events.push_back(copy(p.event()));
      if (r.what == sse_parser::status::too_large) {
        out.too_large = true;
        return out;
      }
    }
  }
  if (p.finish()) out.events.push_back(copy(p.event()));
  return out;
}

outcome run_whole(const std::string& s, std::size_t limit = 1 << 20) { return run({s}, limit); }

std::string concat_raw(const outcome& o) {
  std::string s;
  for (const auto& e : o.events) s += e.raw;
  return s;
}

}  // namespace

TEST_CASE("sse: one event per blank line, with every kind of line end") {
  for (std::string eol : {"\n", "\r\n", "\r"}) {
    const std::string s = "event: delta" + eol + "data: hello" + eol + "id: 7" + eol + "retry: 300" + eol + eol +
                          "data: second" + eol + eol;
    const auto o = run_whole(s);
    REQUIRE(o.events.size() == 2);
    CHECK(o.events[0].event == "delta");
    CHECK(o.events[0].data == "hello");
    CHECK(o.events[0].id == "7");
    CHECK(o.events[0].has_id);
    CHECK(o.events[0].retry == 300u);
    CHECK(o.events[0].has_data);
    CHECK(o.events[0].raw == "event: delta" + eol + "data: hello" + eol + "id: 7" + eol + "retry: 300" + eol + eol);
    CHECK(o.events[1].data == "second");
    CHECK(o.events[1].event.empty());
    CHECK(concat_raw(o) == s);
  }
}

TEST_CASE("sse: mixed line ends in one stream") {
  const std::string s = "data: a\r\ndata: b\ndata: c\r\r\ndata: d\n\r";
  const auto o = run_whole(s);
  REQUIRE(o.events.size() == 2);
  CHECK(o.events[0].data == "a\nb\nc");
  CHECK(o.events[1].data == "d");
  CHECK(concat_raw(o) == s);
}

TEST_CASE("sse: multi-line data, field syntax and comments") {
  const auto o = run_whole(std::string(":c\n\ndata\ndata:no space\ndata:  two spaces\nunknown: ignored\nretry: 12x\n") +
                           std::string("id: a\0b\n", 8) + "\nevent:x\ndata: {\"a\":1}\n\n");
  REQUIRE(o.events.size() == 3);
  CHECK_FALSE(o.events[0].has_data);  // comment only: a block, not a dispatch
  CHECK(o.events[0].raw == ":c\n\n");
  CHECK(o.events[1].has_data);
  CHECK(o.events[1].data == "\nno space\n two spaces");
  CHECK_FALSE(o.events[1].retry.has_value());
  CHECK_FALSE(o.events[1].has_id);  // an id with NUL is ignored
  CHECK(o.events[2].event == "x");
  CHECK(o.events[2].data == "{\"a\":1}");
}

TEST_CASE("sse: a leading byte-order mark is ignored for fields and kept in raw") {
  const std::string s = "\xEF\xBB\xBF" "data: x\n\n";
  const auto o = run_whole(s);
  REQUIRE(o.events.size() == 1);
  CHECK(o.events[0].data == "x");
  CHECK(o.events[0].raw == s);
}

TEST_CASE("sse: an unterminated tail is yielded by finish()") {
  const auto o = run_whole("data: done\n\ndata: partial");
  REQUIRE(o.events.size() == 2);
  CHECK(o.events[1].data == "partial");
  CHECK_FALSE(o.events[1].terminated);
  CHECK(o.events[0].terminated);
}

TEST_CASE("sse: the tail from finish() is terminated exactly when the stream ends with its blank line") {
  const auto cut = run_whole("event: x\r\ndata: a\r");  // the data line's CR: no blank line yet
  REQUIRE(cut.events.size() == 1);
  CHECK_FALSE(cut.events[0].terminated);
  CHECK(cut.events[0].data == "a");
  const auto ended = run_whole("event: x\r\ndata: a\r\n\r");  // a blank line ended by a bare CR
  REQUIRE(ended.events.size() == 1);
  CHECK(ended.events[0].terminated);
  CHECK(ended.events[0].raw == "event: x\r\ndata: a\r\n\r");
  CHECK(ended.events[0].event == "x");
}

TEST_CASE("sse: split at every byte gives the same blocks and bytes") {
  const std::string s =
      "\xEF\xBB\xBF" "event: message_start\r\ndata: {\"text\":\"h\xC3\xA9llo \xE4\xB8\xAD\xE6\x96\x87\"}\r\n\r\n"
      ": ping\r\r"
      "data: line1\ndata: line2\n\n"
      "data: cr only\r\r"
      "id: 42\r\nevent: done\r\ndata: [DONE]\r\n\r\n"
      "data: tail";
  const auto whole = run_whole(s);
  REQUIRE(whole.events.size() == 6);
  REQUIRE(concat_raw(whole) == s);
  for (std::size_t i = 0; i <= s.size(); ++i) {
    for (std::size_t j = i; j <= s.size(); j += 7) {
      const auto split = run({s.substr(0, i), s.substr(i, j - i), s.substr(j)});
      INFO("split at " << i << " and " << j);
      REQUIRE(concat_raw(split) == s);
      REQUIRE(split.events == whole.events);
    }
  }
  // One byte at a time.
  std::vector<std::string> bytes;
  for (char c : s) bytes.emplace_back(1, c);
  const auto one = run(bytes);
  CHECK(concat_raw(one) == s);
  CHECK(one.events == whole.events);
}

TEST_CASE("sse: a blank line whose CR LF is split between pieces stays in its block") {
  const std::string s = "data: a\r\n\r\ndata: b\r\n\r\n";
  const auto whole = run_whole(s);
  REQUIRE(whole.events.size() == 2);
  const auto split = run({"data: a\r\n\r", "\ndata: b\r\n\r", "\n"});
  REQUIRE(split.events.size() == 2);
  CHECK(split.events[0] == whole.events[0]);
  CHECK(split.events[0].raw == "data: a\r\n\r\n");
  CHECK(split.events[1] == whole.events[1]);
}

TEST_CASE("sse: where a CR LF is split does not move the size limit") {
  const std::string ev = "data: x\r\n\r\n";  // 11 bytes
  const std::vector<std::string> pieces = {"data: x\r\n\r", "\n", ev};
  CHECK_FALSE(run(pieces, ev.size()).too_large);
  CHECK(run(pieces, ev.size()).events.size() == 2);
  CHECK(run_whole(ev + ev, ev.size() - 1).too_large);
  CHECK(run(pieces, ev.size() - 1).too_large);
}

TEST_CASE("sse: a block ended by a bare CR is yielded once the next byte shows it is not CR LF") {
  sse_parser p(1024);
  auto r = p.feed("data: a\r\r");
  CHECK(r.what == sse_parser::status::need_more);
  CHECK(r.consumed == 9);
  r = p.feed("data: b\r\r");
  REQUIRE(r.what == sse_parser::status::event);
  CHECK(r.consumed == 0);
  CHECK(p.event().raw == "data: a\r\r");
  CHECK(p.event().data == "a");
  CHECK(p.feed("data: b\r\r").what == sse_parser::status::need_more);
  REQUIRE(p.finish());
  CHECK(p.event().raw == "data: b\r\r");
  CHECK(p.event().terminated);
  CHECK_FALSE(p.finish());
}

TEST_CASE("sse: a block over the size limit is refused, one at the limit passes") {
  const std::string ev = "data: 0123456789\n\n";  // 18 bytes
  CHECK_FALSE(run_whole(ev + ev, ev.size()).too_large);
  CHECK(run_whole(ev + ev, ev.size()).events.size() == 2);
  CHECK(run_whole(ev, ev.size() - 1).too_large);
  // Also when the block grows across pieces and no line ever ends.
  std::vector<std::string> pieces(10, std::string(100, 'x'));
  CHECK(run(pieces, 512).too_large);
  CHECK_FALSE(run(pieces, 1024).too_large);
}

TEST_CASE("sse: fuzz loop, random streams with random splits") {
  std::mt19937 rng(20261128);
  const std::vector<std::string> atoms = {
      "data: ", "data:", "event: ", "id: ", "retry: 10", ": c", "x", "\xC3\xA9", "\xE4\xB8\xAD",
      "\n", "\r\n", "\r", "\n\n", "\r\n\r\n", "\r\r", "{\"a\":\"b\"}", " ", ":", "\xEF\xBB\xBF"};
  for (int iteration = 0; iteration < 3000; ++iteration) {
    std::string s;
    const int n = static_cast<int>(rng() % 40);
    for (int k = 0; k < n; ++k) s += atoms[rng() % atoms.size()];
    const auto whole = run_whole(s);
    REQUIRE(concat_raw(whole) == s);
    std::vector<std::string> pieces;
    std::size_t pos = 0;
    while (pos < s.size()) {
      const std::size_t len = 1 + rng() % 9;
      pieces.push_back(s.substr(pos, len));
      pos += len;
    }
    const auto split = run(pieces);
    INFO("iteration " << iteration);
    REQUIRE(concat_raw(split) == s);
    REQUIRE(split.events == whole.events);
  }
}
