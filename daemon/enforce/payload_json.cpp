#include "daemon/enforce/payload_json.hpp"

#include "policy/text.hpp"

#include <boost/json/detail/config.hpp>
#include <boost/json/detail/format.hpp>

#include <array>
#include <charconv>
#include <cstring>

namespace customs::daemon::enforce {
namespace {

// What a byte becomes inside a JSON string, as Boost.JSON's serializer writes
// it: 0 kept, 'u' as \u00XX, any other letter or character after a backslash.
constexpr std::array<char, 256> escapes = [] {
  std::array<char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[static_cast<std::size_t>(c)] = 'u';
  t['\b'] = 'b';
  t['\t'] = 't';
  t['\n'] = 'n';
  t['\f'] = 'f';
  t['\r'] = 'r';
  t['"'] = '"';
  t['\\'] = '\\';
  return t;
}();

// Whether any of the eight bytes of w may need an escape: below 0x20, '"' or
// '\\' (the test for a byte below n, on w for 0x20 and on w XOR the quote or
// the backslash repeated for 1), or a byte of 0x80 or more (UTF-8 to check).
// A word it reports goes byte by byte, so only speed depends on it.
constexpr bool word_needs_escape(std::uint64_t w) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
  const std::uint64_t quote = w ^ (ones * '"');
  const std::uint64_t backslash = w ^ (ones * '\\');
  return (((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | w) & highs;
}

}  // namespace

void json_out::escape(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::size_t plain = 0;  // start of the bytes not yet copied
  std::size_t i = 0;
  while (i < s.size()) {
    // Eight bytes at a time while none needs an escape.
    if (s.size() - i >= 8) {
      std::uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (!word_needs_escape(w)) {
        i += 8;
        continue;
      }
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      // A valid UTF-8 sequence is kept. A byte that is not part of one (a
      // percent-decoded %FF in the target, a Latin-1 header value) cannot be
      // in a JSON string: it becomes U+FFFD, the code point the scanner read
      // it as (policy::text::decode), so the payload stays JSON and replay
      // scans what customsd scanned.
      std::size_t len = 1;
      (void)policy::text::decode(s, i, len);  // len: the valid sequence's, or 1 for a byte that is none
      if (len != 1) {
        i += len;
        continue;
      }
      out.append(s.data() + plain, i - plain);
      out.append("\xEF\xBF\xBD", 3);
      plain = ++i;
      continue;
    }
    const char e = escapes[c];
    ++i;
    if (e == 0) continue;
    out.append(s.data() + plain, i - 1 - plain);
    plain = i;
    if (e == 'u') {
      const char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      out.append(u, sizeof u);
    } else {
      const char b[2] = {'\\', e};
      out.append(b, sizeof b);
    }
  }
  out.append(s.data() + plain, s.size() - plain);
}

void json_out::separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_) out_.push_back(',');
  first_ = false;
}

json_out& json_out::open(char c) {
  separate();
  out_.push_back(c);
  first_ = true;
  return *this;
}

json_out& json_out::close(char c) {
  out_.push_back(c);
  first_ = false;  // the closed container was a member or element of its parent
  return *this;
}

json_out& json_out::key(plain_key k) {
  separate();
  out_.push_back('"');
  out_.append(k.text);
  return end_key();
}

json_out& json_out::escaped_key(std::string_view k) {
  separate();
  out_.push_back('"');
  escape(out_, k);
  return end_key();
}

json_out& json_out::end_key() {
  out_.append("\":", 2);
  after_key_ = true;
  return *this;
}

json_out& json_out::value(std::string_view s) {
  separate();
  out_.push_back('"');
  escape(out_, s);
  out_.push_back('"');
  return *this;
}

json_out& json_out::value(bool b) {
  separate();
  if (b) out_.append("true", 4);
  else out_.append("false", 5);
  return *this;
}

namespace {
template <class Integer>
void append_integer(std::string& out, Integer n) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}
}  // namespace

json_out& json_out::integer(std::int64_t n) {
  separate();
  append_integer(out_, n);
  return *this;
}

json_out& json_out::integer(std::uint64_t n) {
  separate();
  append_integer(out_, n);
  return *this;
}

json_out& json_out::value(double d) {
  separate();
  char buf[boost::json::detail::max_number_chars + 1];
  out_.append(buf, boost::json::detail::format_double(buf, d));
  return *this;
}

}  // namespace customs::daemon::enforce
