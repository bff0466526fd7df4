// Hostile JSON in request bodies, end to end: nesting at and past the depth
// limit, escapes and broken encodings, numbers, repeated and look-alike keys,
// and generated bodies with a resident ID anywhere, sent through an enforcing
// customsd (shipped packs, every client CN, routes to a US provider) in each
// dialect. The property of every case: customsd refuses the body (4xx with a
// customs_ error code) or blocks it (451), or what the provider received holds
// no form of the ID. Never does the ID reach the provider.
#include "enforced.hpp"
#include "request_bodies.hpp"

#include <functional>

using namespace customs::testing;
using namespace customs::testing::hostile;

namespace {

const std::string the_id = "11010519491231002X";  // check digit X
const std::string numeric_id = "310115199612088474";  // a valid ID of digits only

// ---- Does a body carry an ID? ----

void append_utf8(std::uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool hex4_at(std::string_view s, std::size_t i, std::uint32_t& v) {
  if (i + 6 > s.size() || s[i] != '\\' || s[i + 1] != 'u') return false;
  v = 0;
  for (std::size_t k = 2; k < 6; ++k) {
    const int h = hex_value(s[i + k]);
    if (h < 0) return false;
    v = v * 16 + static_cast<std::uint32_t>(h);
  }
  return true;
}

// JSON escapes decoded wherever they stand (a lone surrogate becomes U+FFFD).
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    std::uint32_t cp = 0;
    if (hex4_at(s, i, cp)) {
      i += 6;
      std::uint32_t lo = 0;
      if (cp >= 0xD800 && cp < 0xDC00 && hex4_at(s, i, lo) && lo >= 0xDC00 && lo < 0xE000) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        i += 6;
      } else if (cp >= 0xD800 && cp < 0xE000) {
        cp = 0xFFFD;
      }
      append_utf8(cp, out);
    } else if (s[i] == '\\' && i + 1 < s.size()) {
      const char c = s[i + 1];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c == 'b' ? '\b' : c == 'f' ? '\f' : c;
      i += 2;
    } else {
      out += s[i++];
    }
  }
  return out;
}

// What a lenient reader makes of the text: UTF-8 decoded accepting overlong
// forms, bytes that are no UTF-8 dropped, C0 controls (other than tab and line
// ends), DEL and invisible format characters dropped, full-width digits and X
// folded to ASCII.
std::string lenient(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    std::uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (std::size_t k = 1; ok && k < len; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (!ok) {
      ++i;  // not UTF-8: dropped
      continue;
    }
    i += len;
    if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7F) continue;
    if (cp == 0xAD || (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2060 && cp <= 0x2064) || cp == 0xFEFF) continue;
    if (cp >= 0xFF10 && cp <= 0xFF19) cp = '0' + (cp - 0xFF10);
    if (cp == 0xFF38 || cp == 0xFF58) cp = 'X';
    append_utf8(cp, out);
  }
  return out;
}

bool word_byte(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

// `id` in `text` as a word of its own (the scanner's boundary rule: an ID
// inside a longer run of digits is another number), X in either case.
bool has_word(std::string_view text, std::string_view id) {
  for (std::size_t i = 0; i + id.size() <= text.size(); ++i) {
    bool eq = true;
    for (std::size_t k = 0; eq && k < id.size(); ++k) {
      const char a = text[i + k];
      eq = a == id[k] || (id[k] == 'X' && a == 'x');
    }
    if (!eq) continue;
    if (i > 0 && word_byte(text[i - 1])) continue;
    if (i + id.size() < text.size() && word_byte(text[i + id.size()])) continue;
    return true;
  }
  return false;
}

// Any form of `id` in bytes a provider received: as sent, with JSON escapes
// decoded, and as a lenient reader would take either.
bool carries(std::string_view bytes, std::string_view id) {
  const std::string decoded = unescape(bytes);
  return has_word(bytes, id) || has_word(decoded, id) || has_word(lenient(bytes), id) ||
         has_word(lenient(decoded), id);
}

// The body for a failure message: bytes that are not printable ASCII as \xHH.
std::string printable(std::string_view s, std::size_t max = 2000) {
  std::string out;
  for (const char ch : s.substr(0, max)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7F) {
      out += ch;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
  }
  if (s.size() > max) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

// ---- customsd and the provider ----

struct enforced_env {
  enforced_env() : t(dir.path()), d(enforcing_yaml(t, provider.port()), "hostile-json") {}
  temp_dir dir;
  enforce::trail_files t;
  fake_provider provider;
  daemon_under_test d;
};

enum class fate { refused, blocked, unscannable, forwarded, other };

const char* to_string(fate f) {
  switch (f) {
    case fate::refused: return "refused";
    case fate::blocked: return "blocked";
    case fate::unscannable: return "unscannable";
    case fate::forwarded: return "forwarded";
    case fate::other: return "other";
  }
  return "?";
}

// What customsd did, with its reply for failure messages.
struct outcome {
  fate what = fate::other;
  unsigned status = 0;
  std::string reply;
  bool operator==(fate f) const { return what == f; }
};

// Sends `body` to `target` and checks the property: whatever reached the
// provider holds no form of `id`; an answer of customsd's own (nothing
// forwarded) is a 4xx with a customs_ error code. Returns what customsd did.
outcome send(enforced_env& e, const std::string& target, const std::string& body, const std::string& id = the_id) {
  const std::size_t before = e.provider.request_count();
  const auto r = exchange(e.d.port(), content_length_request(body, {}, target));
  INFO("to " << target << ": " << printable(body));
  INFO("status " << r.status << ": " << printable(r.response.body, 400));
  REQUIRE(r.status != 0);
  const auto got = e.provider.requests();
  for (std::size_t i = before; i < got.size(); ++i) {
    INFO("the provider received: " << printable(got[i].body));
    CHECK_FALSE(carries(got[i].body, id));
  }
  outcome out{fate::other, r.status, printable(r.response.body, 300)};
  if (e.provider.request_count() > before) {
    out.what = fate::forwarded;  // whatever the provider answered
  } else {
    CHECK(r.status >= 400);
    CHECK(r.status < 500);
    CHECK(r.response.body.find("customs_") != std::string::npos);
    out.what = r.status != 451 ? fate::refused
               : r.response.body.find("customs_unscannable") != std::string::npos ? fate::unscannable
                                                                                 : fate::blocked;
  }
  return out;
}

}  // namespace

template <>
struct Catch::StringMaker<outcome> {
  static std::string convert(const outcome& o) {
    return std::string(to_string(o.what)) + " (" + std::to_string(o.status) + " " + o.reply + ")";
  }
};
template <>
struct Catch::StringMaker<fate> {
  static std::string convert(fate f) { return to_string(f); }
};

namespace {

// A dialect's bodies with a JSON value (its text, as sent) in a place.
struct dialect_bodies {
  std::string name;
  std::string target;
  std::function<std::string(const std::string&)> prompt;   // the user's text
  std::function<std::string(const std::string&)> unknown;  // a top-level field no API defines
  // A field the codec reads as text, holding an object of the given nesting:
  // `deep(k, leaf)` puts string `leaf` inside k nested containers there, and
  // `base` containers enclose the field.
  std::function<std::string(std::size_t, const std::string&)> deep;
  std::size_t base = 0;
};

// k objects, one inside the other, each under `key`; `leaf` in the innermost.
std::string nested_objects(std::size_t k, const std::string& key, const std::string& leaf) {
  std::string out;
  for (std::size_t i = 0; i < k; ++i) out += "{\"" + key + "\":";
  out += leaf;
  out += std::string(k, '}');
  return out;
}

std::vector<dialect_bodies> dialects() {
  return {
      {"openai", "/openai-us/v1/chat/completions",
       [](const std::string& v) { return R"({"model":"m","messages":[{"role":"user","content":)" + v + "}]}"; },
       [](const std::string& v) {
         return R"({"model":"m","messages":[{"role":"user","content":"hello"}],"x_vendor":)" + v + "}";
       },
       // Tool parameters: descriptions at any depth are text.
       [](std::size_t k, const std::string& leaf) {
         return R"({"model":"m","messages":[{"role":"user","content":"hello"}],"tools":[{"type":"function","function":{"name":"f","parameters":)" +
                nested_objects(k - 1, "p", "{\"description\":" + leaf + "}") + "}}]}";
       },
       4},
      {"anthropic", "/anthropic-us/v1/messages",
       [](const std::string& v) {
         return R"({"model":"c","max_tokens":16,"messages":[{"role":"user","content":)" + v + "}]}";
       },
       [](const std::string& v) {
         return R"({"model":"c","max_tokens":16,"messages":[{"role":"user","content":"hello"}],"x_vendor":)" + v + "}";
       },
       // tool_use input: every string leaf is text.
       [](std::size_t k, const std::string& leaf) {
         return R"({"model":"c","max_tokens":16,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":)" +
                nested_objects(k, "a", leaf) + "}]}]}";
       },
       5},
      {"gemini", "/gemini-us/v1beta/models/g:generateContent",
       [](const std::string& v) { return R"({"contents":[{"role":"user","parts":[{"text":)" + v + "}]}]}"; },
       [](const std::string& v) {
         return R"({"contents":[{"role":"user","parts":[{"text":"hello"}]}],"x_vendor":)" + v + "}";
       },
       // functionCall args: every string leaf is text.
       [](std::size_t k, const std::string& leaf) {
         return R"({"contents":[{"role":"model","parts":[{"functionCall":{"name":"f","args":)" +
                nested_objects(k, "a", leaf) + "}}]}]}";
       },
       6},
  };
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

// ---- (a) nesting ----

TEST_CASE("json: an ID at the depth limit is blocked by its rule in every dialect, one level past the limit is "
          "refused unscanned, and a clean body at the limit is forwarded") {
  enforced_env e;
  constexpr std::size_t limit = 64;  // daemon/dialect/json_walk.hpp max_json_depth
  for (const auto& d : dialects()) {
    INFO(d.name);
    // In a field the codec reads as text.
    CHECK(send(e, d.target, d.deep(limit - d.base, quoted("ID " + the_id))) == fate::blocked);
    CHECK(send(e, d.target, d.deep(limit - d.base + 1, quoted("ID " + the_id))) == fate::unscannable);
    CHECK(send(e, d.target, d.deep(limit - d.base, quoted("nothing here"))) == fate::forwarded);
    // In a field no API defines, as arrays and as objects (the root is one level).
    for (const bool arrays : {true, false}) {
      const auto nest = [&](std::size_t k, const std::string& leaf) {
        return arrays ? std::string(k, '[') + leaf + std::string(k, ']') : nested_objects(k, "x", leaf);
      };
      INFO((arrays ? "arrays" : "objects"));
      CHECK(send(e, d.target, d.unknown(nest(limit - 1, quoted(the_id)))) == fate::blocked);
      CHECK(send(e, d.target, d.unknown(nest(limit, quoted(the_id)))) == fate::unscannable);
      CHECK(send(e, d.target, d.unknown(nest(limit - 1, quoted("clean")))) == fate::forwarded);
    }
  }
  CHECK(serving(e.d));
}

TEST_CASE("json: nesting far past the limit (100000 levels) is refused without reaching the provider and customsd "
          "goes on") {
  enforced_env e;
  for (const auto& d : dialects()) {
    INFO(d.name);
    CHECK(send(e, d.target, d.unknown(std::string(100000, '[') + quoted(the_id) + std::string(100000, ']'))) ==
          fate::unscannable);
    CHECK(send(e, d.target, d.unknown(std::string(100000, '['))) == fate::unscannable);
  }
  CHECK(e.provider.request_count() == 0);
  CHECK(serving(e.d));
}

// ---- (b) escapes and encodings ----

TEST_CASE("json: an ID written with escapes, beside surrogates, or broken by bad UTF-8, overlong forms or NUL never "
          "reaches the provider in any dialect") {
  enforced_env e;
  std::string every_digit_escaped;
  for (const char c : the_id) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(c));
    every_digit_escaped += buf;
  }
  const std::string head = the_id.substr(0, 6), tail = the_id.substr(6);
  // (input text of a JSON string, without its quotes; what customsd must do)
  const std::vector<std::pair<std::string, fate>> cases = {
      {every_digit_escaped, fate::blocked},
      {"\\u8eab\\u4efd\\u8bc1 " + every_digit_escaped, fate::blocked},
      {"\\ud83d\\ude00" + the_id + "\\ud83d\\ude00", fate::blocked},  // a valid pair on each side
      {"\\ud800 " + the_id, fate::unscannable},                          // a lone high surrogate
      {the_id + " \\udc00", fate::unscannable},                          // a lone low surrogate
      {head + "\\ud800" + tail, fate::unscannable},
      {head + "\\udc00" + tail, fate::unscannable},
      {"\\udc00\\ud800" + the_id, fate::unscannable},  // a pair in the wrong order
      {the_id + " \xFF", fate::unscannable},            // raw bytes that are no UTF-8
      {head + "\xFF" + tail, fate::unscannable},
      {head + "\xC0\xB1" + tail.substr(1), fate::unscannable},          // '1' as an overlong 2-byte form
      {head + "\xE0\x80\xB1" + tail.substr(1), fate::unscannable},      // '1' as an overlong 3-byte form
      {head + "\xED\xA0\x80" + tail, fate::unscannable},                // a surrogate encoded in UTF-8
      {head + "\\u0000" + tail, fate::blocked},                          // NUL between digits
      {"1\\u00001\\u00000\\u00001\\u00000\\u00005" + tail, fate::blocked},
      {head + std::string(1, '\0') + tail, fate::refused},  // a raw NUL is no JSON
  };
  for (const auto& d : dialects()) {
    for (const auto& [text, expected] : cases) {
      INFO(d.name << ": \"" << printable(text) << "\"");
      const auto got_prompt = send(e, d.target, d.prompt(quoted(text)));
      const auto got_unknown = send(e, d.target, d.unknown(quoted(text)));
      // A raw NUL: invalid JSON, so unscannable (451) like other malformed bodies.
      const fate want = expected == fate::refused ? fate::unscannable : expected;
      CHECK(got_prompt == want);
      CHECK(got_unknown == want);
    }
  }
  CHECK(serving(e.d));
}

// ---- (c) numbers ----

// A number's literal is what the provider receives: an ID written as a number
// (where a string is expected, or in a field that takes any JSON) crosses as
// its digits, so the literal is scanned as text is. Numbers that JSON does not
// allow, or that no double can hold, are refused as malformed.
TEST_CASE("json: an ID written as a JSON number is blocked wherever it stands, in every dialect") {
  enforced_env e;
  for (const auto& d : dialects()) {
    for (const std::string& number : {numeric_id, "-" + numeric_id, numeric_id + ".0",
                                      numeric_id + ".5E+00"}) {
      INFO(d.name << ": " << number);
      CHECK(send(e, d.target, d.unknown(number), numeric_id) == fate::blocked);
      CHECK(send(e, d.target, d.unknown("{\"customer\":[" + number + "]}"), numeric_id) == fate::blocked);
      CHECK(send(e, d.target, d.deep(3, number), numeric_id) == fate::blocked);
    }
  }
  const std::string chat = R"({"model":"m","messages":[{"role":"user","content":"hello"}],)";
  for (const std::string field : {"\"temperature\":", "\"user\":", "\"metadata\":{\"customer\":", "\"seed\":"}) {
    INFO(field);
    const std::string close = field.find('{') != std::string::npos ? "}}" : "}";
    CHECK(send(e, "/openai-us/v1/chat/completions", chat + field + numeric_id + close, numeric_id) == fate::blocked);
  }
  CHECK(serving(e.d));
}

TEST_CASE("json: numbers JSON does not allow or a double cannot hold are refused unscanned, other numbers pass") {
  enforced_env e;
  const auto all = dialects();
  const auto& openai = all.front();
  const std::vector<std::pair<std::string, fate>> cases = {
      {"1" + std::string(9999, '0'), fate::unscannable},               // 10,000 digits: past a double's range
      {"0." + std::string(9990, '0') + "1", fate::forwarded},          // 10,000 digits, a tiny finite number
      {"1e999", fate::unscannable},
      {"-1e999", fate::unscannable},
      {"1e-999", fate::forwarded},  // underflows to 0
      {"-0", fate::forwarded},
      {"-0.0e0", fate::forwarded},
      {"0" + numeric_id, fate::unscannable},  // a leading zero is no JSON
      {"00", fate::unscannable},
      {"+1", fate::unscannable},
      {".5", fate::unscannable},
      {"1.", fate::unscannable},
      {"NaN", fate::unscannable},
      {"Infinity", fate::unscannable},
      {"0x1F", fate::unscannable},
      {"110105194912310020", fate::forwarded},  // the issue's example: its check digit is wrong, no ID
  };
  for (const auto& [number, expected] : cases) {
    INFO(printable(number, 40));
    CHECK(send(e, openai.target, openai.unknown(number), numeric_id) == expected);
  }
  // An ID inside a longer run of digits is another number, as in text.
  CHECK(send(e, openai.target, openai.unknown("0." + std::string(9982, '0') + numeric_id), numeric_id) ==
        fate::forwarded);
  CHECK(serving(e.d));
}

// ---- (d) repeated keys ----

TEST_CASE("json: a repeated key anywhere, also spelled with escapes, is refused, keys differing in case are two "
          "keys and both are scanned") {
  enforced_env e;
  const std::string id = quoted(the_id);
  struct body_case {
    std::string target, body;
    fate expected;
  };
  const std::string oa = "/openai-us/v1/chat/completions", an = "/anthropic-us/v1/messages",
                    ge = "/gemini-us/v1beta/models/g:generateContent";
  const std::vector<body_case> cases = {
      // Inside a message object.
      {oa, R"({"model":"m","messages":[{"role":"user","content":)" + id + R"(,"content":"hello"}]})", fate::unscannable},
      {an, R"({"model":"c","max_tokens":1,"messages":[{"role":"user","content":)" + id + R"(,"content":"hello"}]})",
       fate::unscannable},
      {ge, R"({"contents":[{"role":"user","parts":[{"text":"hello"}],"parts":[{"text":)" + id + "}]}]}",
       fate::unscannable},
      // Inside a content part.
      {oa, R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":)" + id + R"(,"text":"hi"}]}]})",
       fate::unscannable},
      {an, R"({"model":"c","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":"hi","text":)" + id + "}]}]}",
       fate::unscannable},
      {ge, R"({"contents":[{"parts":[{"text":)" + id + R"(,"text":"hi"}]}]})", fate::unscannable},
      // The type of a part repeated (one reader sees text, another an image).
      {oa, R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","type":"text","text":)" + id + "}]}]}",
       fate::unscannable},
      // At the top level.
      {oa, R"({"model":"m","messages":[{"role":"user","content":)" + id + R"(}],"messages":[{"role":"user","content":"hi"}]})",
       fate::unscannable},
      // A key spelled with escapes that decode to a key already there.
      {oa, R"({"model":"m","messages":[{"role":"user","content":)" + id + R"(}],"m\u0065ssages":[{"role":"user","content":"hi"}]})",
       fate::unscannable},
      {an, R"({"model":"c","max_tokens":1,"messages":[{"role":"user","content":"hi","\u0063ontent":)" + id + "}]}",
       fate::unscannable},
      {ge, R"({"contents":[{"parts":[{"text":"hi"}]}],"\u0063ontents":[{"parts":[{"text":)" + id + "}]}]}",
       fate::unscannable},
      // Keys differing only in case are different keys: the unknown one is scanned too.
      {oa, R"({"model":"m","messages":[{"role":"user","content":"hi"}],"Messages":[{"role":"user","content":)" + id + "}]}",
       fate::blocked},
      {oa, R"({"model":"m","messages":[{"role":"user","content":"hi","Content":)" + id + "}]}", fate::blocked},
      {an, R"({"model":"c","max_tokens":1,"messages":[{"role":"user","content":"hi"}],"MESSAGES":[{"role":"user","content":)" + id + "}]}",
       fate::blocked},
      {ge, R"({"contents":[{"parts":[{"text":"hi","Text":)" + id + "}]}]}", fate::blocked},
      // An escaped key that only looks like another (a zero-width space in it).
      {oa, R"({"model":"m","messages":[{"role":"user","content":"hi"}],"messages\u200b":[{"role":"user","content":)" + id + "}]}",
       fate::blocked},
  };
  for (const auto& c : cases) {
    CHECK(send(e, c.target, c.body) == c.expected);
  }
  CHECK(serving(e.d));
}

// ---- generated bodies ----

namespace {

void strings_of(gen::node& n, std::vector<std::string*>& values, std::vector<std::string*>& keys,
                std::vector<gen::object*>& objects) {
  if (auto* s = std::get_if<std::string>(&n.v)) {
    values.push_back(s);
  } else if (auto* o = n.as_object()) {
    objects.push_back(o);
    for (auto& [k, v] : *o) {
      keys.push_back(&k);
      strings_of(v, values, keys, objects);
    }
  } else if (auto* a = n.as_array()) {
    for (auto& v : *a) strings_of(v, values, keys, objects);
  }
}

// Puts " <id> " into a random string of the body: a value (known field or
// not), a key, or a new member of a random object. Inserted at a character
// boundary, so the text stays UTF-8.
void plant(gen::generator& g, gen::node& body, const std::string& id) {
  std::vector<std::string*> values, keys;
  std::vector<gen::object*> objects;
  strings_of(body, values, keys, objects);
  const auto insert = [&](std::string& s) {
    std::size_t at = g.pick(s.size() + 1);
    while (at > 0 && at < s.size() && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) --at;
    s.insert(at, " " + id + " ");
  };
  const std::size_t where = g.pick(10);
  if (where < 7 && !values.empty()) {
    insert(*values[g.pick(values.size())]);
  } else if (where < 8 && !keys.empty()) {
    insert(*keys[g.pick(keys.size())]);
  } else {
    auto& o = *objects[g.pick(objects.size())];
    gen::object inner{{"note", g.text(10) + " " + id + " " + g.text(10)}};
    gen::node v = g.chance(0.5) ? gen::node(" " + id + " ") : gen::node(gen::array{gen::node(std::move(inner))});
    gen::generator::add_unique(o, "u_planted_" + std::to_string(o.size()), std::move(v));
  }
}

}  // namespace

TEST_CASE("json: in 200 generated bodies per dialect with an ID in a random string, the provider never receives "
          "the ID") {
  enforced_env e;
  gen::generator g(20261202);
  struct kind {
    std::string target;
    std::function<gen::node(gen::generator&)> make;
  };
  const std::vector<kind> kinds = {
      {"/openai-us/v1/chat/completions", [](gen::generator& x) { return gen::openai_chat(x); }},
      {"/openai-us/v1/responses", [](gen::generator& x) { return gen::responses(x); }},
      {"/anthropic-us/v1/messages", [](gen::generator& x) { return gen::anthropic(x); }},
      {"/gemini-us/v1beta/models/gemini-test:generateContent", [](gen::generator& x) { return gen::gemini(x); }},
  };
  std::map<std::string, std::size_t> fates;
  for (const auto& k : kinds) {
    for (int i = 0; i < 200; ++i) {
      gen::node body = k.make(g);
      plant(g, body, the_id);
      const std::string text = g.write(body);
      INFO("case " << i);
      fates[to_string(send(e, k.target, text).what)]++;
    }
  }
  for (const auto& [f, n] : fates) UNSCOPED_INFO(f << ": " << n);
  // Most generated bodies are valid and blocked by the rule, not refused.
  CHECK(fates["blocked"] > 400);
  CHECK(fates["forwarded"] == 0);
  CHECK(serving(e.d));
}
