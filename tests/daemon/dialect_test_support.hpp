#pragma once
// Test helpers for the dialect codec tests: fixtures, a minimal SSE splitter for
// fixture files (the daemon's own SSE framing lives elsewhere), and a replay of
// a stream through a stream_codec.

#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "daemon/dialect/stream_codec.hpp"

// REQUIRE on a codec_result, printing the codec error when it fails (Catch
// cannot print a boost::system::result itself).
#define REQUIRE_OK(r)                                                          \
  do {                                                                         \
    INFO(((r).has_value() ? std::string() : (r).error().message()));           \
    REQUIRE((r).has_value());                                                  \
  } while (false)

namespace customs::daemon::test {

inline std::string read_fixture(std::string_view name) {
  std::string path = std::string(CUSTOMS_SOURCE_DIR) + "/tests/daemon/dialect_fixtures/" + std::string(name);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("missing fixture " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct raw_event {
  std::string name;
  std::string data;
};

// Splits an SSE body into events: lines end in CRLF, LF or CR; "event:" and
// "data:" fields (one leading space dropped), data lines joined with LF; a blank
// line ends an event; comments and other fields are ignored.
inline std::vector<raw_event> split_sse(std::string_view body) {
  std::vector<raw_event> out;
  raw_event cur;
  bool has_data = false;
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto end = body.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) end = body.size();
    auto line = body.substr(pos, end - pos);
    pos = end;
    if (pos < body.size()) {
      pos += (body[pos] == '\r' && pos + 1 < body.size() && body[pos + 1] == '\n') ? 2 : 1;
    }
    if (line.empty()) {
      if (has_data || !cur.name.empty()) out.push_back(std::move(cur));
      cur = {};
      has_data = false;
      continue;
    }
    if (line.front() == ':') continue;
    auto colon = line.find(':');
    auto field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "event") {
      cur.name = std::string(value);
    } else if (field == "data") {
      if (has_data) cur.data += '\n';
      cur.data += value;
      has_data = true;
    }
  }
  if (has_data) out.push_back(std::move(cur));
  return out;
}

// What a whole stream decodes to.
struct replay {
  std::vector<event_kind> kinds;
  std::map<std::string, std::string> delta_text;      // channel -> concatenated delta slots
  std::map<std::string, std::string> aggregate_text;  // channel -> last aggregate slot
  std::vector<std::string> closes;                    // in order
  std::vector<std::string> opened;                    // channels in order of first slot
  token_usage usage;
  media_counts non_text;
  std::size_t errors = 0;
};

inline replay replay_stream(stream_codec& codec, const std::vector<raw_event>& events) {
  replay r;
  for (const auto& e : events) {
    auto ev = codec.decode(e.name, e.data);
    if (!ev) {
      ++r.errors;
      continue;
    }
    r.kinds.push_back(ev->kind);
    for (const auto& s : ev->slots) {
      if (s.aggregate) {
        r.aggregate_text[s.channel] = std::string(s.text);
      } else {
        if (!r.delta_text.contains(s.channel)) r.opened.push_back(s.channel);
        r.delta_text[s.channel] += s.text;
      }
    }
    for (const auto& c : ev->closes) r.closes.push_back(c);
    r.usage.merge(ev->usage);
    for (std::size_t k = 0; k < media_kind_count; ++k) r.non_text.count[k] += ev->non_text.count[k];
  }
  return r;
}

inline boost::json::value parse(std::string_view s) { return boost::json::parse(s); }

inline stream_codec make_stream_codec(dialect d, endpoint_kind k) {
  auto c = stream_codec::create(d, k);
  REQUIRE_OK(c);
  return std::move(*c);
}

// Decodes one event and requires success.
inline stream_event decode_ok(stream_codec& codec, std::string_view name, std::string_view data) {
  auto ev = codec.decode(name, data);
  REQUIRE_OK(ev);
  return std::move(*ev);
}

}  // namespace customs::daemon::test
