#pragma once
// Helpers shared by the fuzz targets (tests/fuzz/README.md): reading control
// bytes off the front of an input, deterministic pseudo-random choices seeded
// from them, splitting a payload into pieces, and a failure report that names
// the broken property before aborting (libFuzzer then saves the input).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace customs::fuzz {

// A fuzz input read from the front: control bytes first, the rest is payload.
// Reading past the end gives zeros, so every input is usable.
class input {
 public:
  input(const std::uint8_t* data, std::size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}

  [[nodiscard]] std::uint8_t byte() noexcept {
    if (rest_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  // Up to n bytes (fewer at the end).
  [[nodiscard]] std::string_view bytes(std::size_t n) noexcept {
    const auto v = rest_.substr(0, n);
    rest_.remove_prefix(v.size());
    return v;
  }
  // Everything up to the first `sep` (not included; the separator is consumed),
  // or the whole rest when there is none.
  [[nodiscard]] std::string_view until(char sep) noexcept {
    const auto at = rest_.find(sep);
    const auto v = rest_.substr(0, at);
    rest_.remove_prefix(at == std::string_view::npos ? rest_.size() : at + 1);
    return v;
  }
  [[nodiscard]] std::string_view rest() const noexcept { return rest_; }

 private:
  std::string_view rest_;
};

// SplitMix64: small, fast and deterministic, so a saved input replays the same
// choices everywhere.
class rng {
 public:
  explicit rng(std::uint64_t seed) : state_(seed) {}
  [[nodiscard]] std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform enough in [0, n); 0 when n is 0.
  [[nodiscard]] std::size_t below(std::size_t n) noexcept {
    return n == 0 ? 0 : static_cast<std::size_t>(next() % n);
  }

 private:
  std::uint64_t state_;
};

// Splits `s` into pieces chosen by `seed`: its two low bits pick the largest
// piece (1, 8, 64 or 4096 bytes), the whole byte seeds the sizes. Pieces are
// never empty; an empty `s` gives no piece.
[[nodiscard]] inline std::vector<std::string_view> pieces(std::string_view s, std::uint8_t seed) {
  static constexpr std::size_t largest[] = {1, 8, 64, 4096};
  const std::size_t max = largest[seed & 3];
  rng r(seed);
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const std::size_t n = 1 + r.below(max);
    out.push_back(s.substr(0, n));
    s.remove_prefix(out.back().size());
  }
  return out;
}

// Length of the valid UTF-8 sequence at the start of s (1 to 4), or 0 when it
// is not one (overlong forms, surrogates and code points past U+10FFFF are
// invalid, as in RFC 3629).
[[nodiscard]] inline std::size_t utf8_char_length(std::string_view s) noexcept {
  if (s.empty()) return 0;
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) n = 2;
  else if (b0 == 0xE0) n = 3, lo = 0xA0;
  else if (b0 == 0xED) n = 3, hi = 0x9F;
  else if (b0 >= 0xE1 && b0 <= 0xEF) n = 3;
  else if (b0 == 0xF0) n = 4, lo = 0x90;
  else if (b0 >= 0xF1 && b0 <= 0xF3) n = 4;
  else if (b0 == 0xF4) n = 4, hi = 0x8F;
  else return 0;
  if (s.size() < n) return 0;
  const auto b1 = static_cast<unsigned char>(s[1]);
  if (b1 < lo || b1 > hi) return 0;
  for (std::size_t i = 2; i < n; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80 || b > 0xBF) return 0;
  }
  return n;
}

// `s` with every byte that does not start a valid UTF-8 sequence replaced by
// '?': texts that reach the policy layer come out of JSON strings, which are
// valid UTF-8, and targets fuzz that input domain.
[[nodiscard]] inline std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    const std::size_t n = utf8_char_length(s);
    if (n == 0) {
      out += '?';
      s.remove_prefix(1);
    } else {
      out.append(s.substr(0, n));
      s.remove_prefix(n);
    }
  }
  return out;
}

// Like pieces(), but every piece ends on a character boundary of the valid
// UTF-8 text `s` (as token deltas do).
[[nodiscard]] inline std::vector<std::string_view> utf8_pieces(std::string_view s, std::uint8_t seed) {
  std::vector<std::string_view> out;
  for (auto p : pieces(s, seed)) {
    // Extend the last piece or start a new one so that no character is split.
    const std::size_t begin = out.empty() ? 0 : static_cast<std::size_t>(out.back().data() + out.back().size() - s.data());
    std::size_t end = static_cast<std::size_t>(p.data() + p.size() - s.data());
    if (end <= begin) continue;
    while (end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) ++end;
    out.push_back(s.substr(begin, end - begin));
  }
  return out;
}

// Reports a broken property and aborts; libFuzzer saves the input as a crash.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

inline void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

}  // namespace customs::fuzz
