#include "daemon/dialect/blob.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

namespace customs::daemon::detail {
namespace {

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool iends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// 0..63 for a base64 digit (both alphabets), 64 for whitespace, 65 for '=', 255 otherwise.
constexpr std::array<std::uint8_t, 256> base64_table = [] {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = 255;
  for (int i = 0; i < 26; ++i) {
    t[static_cast<std::size_t>('A' + i)] = static_cast<std::uint8_t>(i);
    t[static_cast<std::size_t>('a' + i)] = static_cast<std::uint8_t>(26 + i);
  }
  for (int i = 0; i < 10; ++i) t[static_cast<std::size_t>('0' + i)] = static_cast<std::uint8_t>(52 + i);
  t['+'] = 62;
  t['-'] = 62;
  t['/'] = 63;
  t['_'] = 63;
  for (char c : {' ', '\t', '\r', '\n', '\f'}) t[static_cast<unsigned char>(c)] = 64;
  t['='] = 65;
  return t;
}();

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::optional<data_url> parse_data_url(std::string_view s) noexcept {
  if (s.size() < 5 || !iequals(s.substr(0, 5), "data:")) return std::nullopt;
  s.remove_prefix(5);
  const auto comma = s.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  data_url u;
  u.data = s.substr(comma + 1);
  std::string_view head = s.substr(0, comma);
  const auto semi = head.find(';');
  u.media_type = trim(head.substr(0, semi));
  if (semi != std::string_view::npos) {
    std::string_view params = head.substr(semi);
    if (iends_with(params, ";base64")) {
      u.base64 = true;
      params.remove_suffix(7);
    }
    u.params = params;
  }
  return u;
}

std::optional<std::string> decode_base64(std::string_view in, std::size_t max_out) {
  std::string out;
  out.reserve(std::min(max_out, in.size() / 4 * 3 + 3));
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t digits = 0;
  std::size_t pads = 0;
  for (const char ch : in) {
    const std::uint8_t v = base64_table[static_cast<unsigned char>(ch)];
    if (v == 64) continue;
    if (v == 255) return std::nullopt;
    if (v == 65) {
      ++pads;
      continue;
    }
    if (pads > 0) return std::nullopt;  // data after padding
    ++digits;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (out.size() >= max_out) return out;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  // A lone digit in the last group cannot encode a byte; padding, when present,
  // completes the group.
  if (digits % 4 == 1) return std::nullopt;
  if (pads > 0 && (digits + pads) % 4 != 0) return std::nullopt;
  return out;
}

std::string encode_base64(std::string_view in) {
  static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t n = (static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16) |
                            (static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8) |
                            static_cast<unsigned char>(in[i + 2]);
    out += digits[(n >> 18) & 63];
    out += digits[(n >> 12) & 63];
    out += digits[(n >> 6) & 63];
    out += digits[n & 63];
  }
  const std::size_t rest = in.size() - i;
  if (rest > 0) {
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16;
    if (rest == 2) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
    out += digits[(n >> 18) & 63];
    out += digits[(n >> 12) & 63];
    out += rest == 2 ? digits[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (plus_is_space && c == '+') ? ' ' : c;
  }
  return out;
}

bool textual_media_type(std::string_view media_type) noexcept {
  std::string_view t = trim(media_type.substr(0, media_type.find(';')));
  if (t.size() >= 5 && iequals(t.substr(0, 5), "text/")) return true;
  if (iends_with(t, "+json") || iends_with(t, "+xml")) return true;
  static constexpr std::string_view application[] = {
      "application/json", "application/xml",        "application/yaml",       "application/x-yaml",
      "application/x-ndjson", "application/jsonl",  "application/csv",        "application/javascript",
      "application/x-javascript", "application/ecmascript", "application/x-sh", "application/sql",
      "application/toml",  "application/x-tex",     "application/rtf",
  };
  for (auto a : application) {
    if (iequals(t, a)) return true;
  }
  return false;
}

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when invalid; `cut` is set
// when the sequence is valid so far but runs past the end.
std::size_t utf8_sequence(std::string_view s, std::size_t i, bool& cut) noexcept {
  cut = false;
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;   // no overlong forms
    if (b0 == 0xED) hi = 0x9F;   // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;   // at most U+10FFFF
  } else {
    return 0;
  }
  for (std::size_t k = 1; k < len; ++k) {
    if (i + k >= s.size()) {
      cut = true;
      return 0;
    }
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
  }
  return len;
}

}  // namespace

namespace {

// Whether `s` is valid UTF-8; `cut_ok`: a sequence cut at the end counts as valid.
bool utf8_valid(std::string_view s, bool cut_ok) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    bool cut = false;
    const std::size_t n = utf8_sequence(s, i, cut);
    if (n == 0) return cut && cut_ok;
    i += n;
  }
  return true;
}

}  // namespace

bool valid_utf8(std::string_view s) noexcept { return utf8_valid(s, false); }
bool valid_utf8_prefix(std::string_view s) noexcept { return utf8_valid(s, true); }

bool looks_like_text(std::string_view bytes, bool truncated) noexcept {
  if (bytes.empty()) return false;
  for (std::size_t i = 0; i < bytes.size();) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (b < 0x20 && b != '\t' && b != '\n' && b != '\r' && b != '\f') return false;
    if (b == 0x7F) return false;
    bool cut = false;
    const std::size_t n = utf8_sequence(bytes, i, cut);
    if (n == 0) return cut && truncated;
    i += n;
  }
  return true;
}

}  // namespace customs::daemon::detail
