// The audit payload writer (daemon/enforce/payload_json.hpp) against
// Boost.JSON's serializer: the same tree written both ways gives the same bytes.

#include "daemon/enforce/payload_json.hpp"
#include "policy/text.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <string>

namespace json = boost::json;
using customs::daemon::enforce::json_out;

namespace {

// Writes v through json_out, as the payload code does by hand.
void write(json_out& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::object:
      out.begin_object();
      for (const auto& kv : v.get_object()) {
        out.escaped_key(kv.key());
        write(out, kv.value());
      }
      out.end_object();
      break;
    case json::kind::array:
      out.begin_array();
      for (const auto& e : v.get_array()) write(out, e);
      out.end_array();
      break;
    case json::kind::string: out.value(std::string_view(v.get_string())); break;
    case json::kind::bool_: out.value(v.get_bool()); break;
    case json::kind::int64: out.value(v.get_int64()); break;
    case json::kind::uint64: out.value(v.get_uint64()); break;
    case json::kind::double_: out.value(v.get_double()); break;
    case json::kind::null: FAIL("the payload writer has no null"); break;
  }
}

// Text as the payload holds it: each byte outside a valid UTF-8 sequence
// becomes U+FFFD (what the scanner reads it as).
std::string as_scanned(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 1;
    const auto cp = customs::policy::text::decode(s, i, len);
    if (cp == 0xFFFD && len == 1) out += "\xEF\xBF\xBD";
    else out.append(s.substr(i, len));
    i += len;
  }
  return out;
}

json::value as_scanned(const json::value& v) {
  switch (v.kind()) {
    case json::kind::object: {
      json::object o;
      for (const auto& kv : v.get_object()) o[as_scanned(std::string_view(kv.key()))] = as_scanned(kv.value());
      return o;
    }
    case json::kind::array: {
      json::array a;
      for (const auto& e : v.get_array()) a.push_back(as_scanned(e));
      return a;
    }
    case json::kind::string: return json::string(as_scanned(std::string_view(v.get_string())));
    default: return v;
  }
}

std::string written(const json::value& v) {
  std::string s;
  json_out out(s);
  write(out, v);
  return s;
}

class tree_gen {
 public:
  explicit tree_gen(std::uint32_t seed) : rng_(seed) {}

  std::string text() {
    std::string s;
    const std::size_t n = pick(24);
    for (std::size_t i = 0; i < n; ++i) {
      switch (pick(4)) {
        case 0: s.push_back(static_cast<char>(pick(0x20))); break;        // control characters
        case 1: s.push_back("\"\\/\x7f"[pick(4)]); break;                 // what may need escaping
        case 2: s.push_back(static_cast<char>(0x80 + pick(0x80))); break;  // any high byte, valid UTF-8 or not
        default: s.push_back(static_cast<char>('a' + pick(26)));
      }
    }
    return s;
  }

  double number() {
    switch (pick(5)) {
      case 0: return static_cast<double>(pick(100000)) / 1e6;  // a duration in ms
      case 1: return -std::ldexp(static_cast<double>(rng_()), static_cast<int>(pick(200)) - 100);
      case 2: return std::numeric_limits<double>::denorm_min();
      case 3: return pick(2) ? 0.0 : -0.0;
      default: return std::numeric_limits<double>::max();
    }
  }

  json::value tree(int depth) {
    switch (depth > 3 ? 2 + pick(5) : pick(7)) {
      case 0: {
        json::object o;
        const std::size_t n = pick(5);
        for (std::size_t i = 0; i < n; ++i) o[text()] = tree(depth + 1);
        return o;
      }
      case 1: {
        json::array a;
        const std::size_t n = pick(5);
        for (std::size_t i = 0; i < n; ++i) a.push_back(tree(depth + 1));
        return a;
      }
      case 2: return json::string(text());
      case 3: return pick(2) == 1;
      case 4: return pick(2) ? std::numeric_limits<std::int64_t>::min() + static_cast<std::int64_t>(pick(1000))
                             : -static_cast<std::int64_t>(pick(1000000));
      case 5: return pick(2) ? std::numeric_limits<std::uint64_t>::max() - pick(1000) : std::uint64_t{pick(1000)};
      default: return number();
    }
  }

 private:
  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
  std::mt19937 rng_;
};

}  // namespace

TEST_CASE("payload writer: empty and nested containers as Boost.JSON writes them", "[payload_json]") {
  const json::value v = json::parse(R"({"a":{},"b":[],"c":[{},[],{"d":[[]]}],"e":{"f":{"g":1}}})");
  CHECK(written(v) == json::serialize(v));
  CHECK(written(json::object{}) == "{}");
  CHECK(written(json::array{}) == "[]");
}

TEST_CASE("payload writer: literal keys are written as they are", "[payload_json]") {
  // plain_key: a string literal checked when compiled to need no escape.
  std::string s;
  json_out out(s);
  out.begin_object().member("a", 1).key("b").begin_array().value("x").end_array().member("c d", true).end_object();
  CHECK(s == R"({"a":1,"b":["x"],"c d":true})");
  CHECK(s == json::serialize(json::parse(s)));
}

TEST_CASE("payload writer: every byte in keys and strings is escaped as Boost.JSON escapes it", "[payload_json]") {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  const json::value v = json::object{{all, all}, {"k", json::array{all, ""}}};
  // Bytes 0x80-0xFF alone are no UTF-8: each is U+FFFD, and the payload parses.
  CHECK(written(v) == json::serialize(as_scanned(v)));
  CHECK(json::parse(written(v)) == as_scanned(v));
}

TEST_CASE("payload writer: text that is not UTF-8 is written as the scanner read it and stays JSON", "[payload_json]") {
  // Found by the replay payload fuzzer's seeds: a client's ?note=%FF or a
  // Latin-1 header value made the opened record's payload unparseable, so
  // the flow could not be replayed and audit export wrote a line that is not
  // JSON.
  const auto one = [](std::string_view text) {
    std::string s;
    json_out out(s);
    out.value(text);
    return s;
  };
  CHECK(one("caf\xe9") == "\"caf\xEF\xBF\xBD\"");
  CHECK(one("note=\xff") == "\"note=\xEF\xBF\xBD\"");
  CHECK(one("caf\xc3\xa9 \xe4\xb8\xad") == "\"caf\xc3\xa9 \xe4\xb8\xad\"");  // valid UTF-8 is kept
  CHECK(one("\xef\xbf\xbd") == "\"\xef\xbf\xbd\"");                            // so is a real U+FFFD
  CHECK(one("\xc0\x80") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");                   // overlong: two bytes, two
  CHECK(one("\xed\xa0\x80x") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx\""); // a surrogate
  CHECK(one("ab\xe4\xb8") == "\"ab\xEF\xBF\xBD\xEF\xBF\xBD\"");               // cut at the end
  // Eight bytes at a time must not skip a high byte.
  CHECK(one("abcdefg\xffhijklmnop") == "\"abcdefg\xEF\xBF\xBDhijklmnop\"");
  for (const auto& t : {std::string("caf\xe9"), std::string("\xff\xfe"), std::string("x\x80y")})
    CHECK_NOTHROW(json::parse(one(t)));
}

TEST_CASE("payload writer: random trees give the bytes Boost.JSON gives", "[payload_json]") {
  tree_gen g(20261203);
  for (int i = 0; i < 3000; ++i) {
    const json::value v = g.tree(0);
    const std::string ours = written(v);
    INFO(json::serialize(v));
    REQUIRE(ours == json::serialize(as_scanned(v)));
    REQUIRE_NOTHROW(json::parse(ours));  // (doubles are compared as text above: parse rounds some)
  }
}
