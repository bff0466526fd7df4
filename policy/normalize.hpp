#pragma once
// Normalisation before scanning (private to policy/): the text detectors see,
// and where each of its bytes came from in the text as sent, so that findings,
// redactions and releases use exact original positions.
//
// The normalized text N of an original text T, character by character:
//   - invisible format characters are removed: general category Cf (soft
//     hyphen U+00AD, zero-width space, non-joiner and joiner U+200B-200D, word
//     joiner U+2060, byte order mark U+FEFF, bidirectional controls, tags, ...),
//     plus the combining grapheme joiner U+034F, variation selectors and the
//     Hangul fillers, and control characters that render as nothing (C0
//     other than tab, LF, VT, FF and CR; DEL; C1 other than NEL U+0085, so
//     NUL too). At most max_removed_run bytes of T are removed between
//     two characters of N; an invisible character past that stays in N (and
//     breaks a match there).
//   - digits of every script (Unicode Nd: Arabic-Indic, Devanagari,
//     full-width, mathematical digits U+1D7CE-1D7FF, ...) become ASCII digits;
//     full-width Latin letters become ASCII letters.
//   - Chinese numerals (〇 零 一 二 三 四 五 六 七 八 九, the financial forms
//     壹 贰/貳 叁/參 肆 伍 陆/陸 柒 捌 玖, and 幺 as "one" is read aloud) become
//     ASCII digits when at least numeral_min_run of them stand in a row
//     (invisible characters between them, and single separators ' ', '-',
//     '/', '_' or '.', do not break the row; the separators stay): an identifier
//     written in numerals is one long row, while a numeral in prose (一个,
//     统一) stays as it is. A row right after a digit, or right before a digit
//     (invisible characters aside), stays too, so it never joins an identifier
//     written in digits into a longer one. Right after a letter, a row is read
//     only as the body of an identifier that starts with one or two letters
//     ("DE八九 ...", "T四二二七〇四六B", "A一二三..."): the run of letters before it
//     is at most two long and has no digit within two characters before it
//     (so it is no check letter, "12345678-Z二〇二四", and no word or key,
//     "MUR二〇二四"), and after the row comes no letter or digit, or one letter
//     (a check letter) and then no letter or digit (so that a prefix such as
//     "ab一二三四" never joins the identifier after it, "ab一二三四T4227046B"; an
//     escape or reference right there counts as a letter). Only numerals written as UTF-8
//     start a row; a row must end within max_numeral_lookahead bytes of its
//     first numeral (else it stays).
//   - HTML character references (&#49; &#x31; and named ones such as &amp;,
//     &nbsp;, &ZeroWidthSpace;) and \uXXXX, \u{X...} and \UXXXXXXXX escapes
//     (a surrogate pair of \u escapes counts as one character) are decoded,
//     and the result is normalized as above. At most max_escape bytes each.
//   - every other character, and every byte that is not valid UTF-8, is kept.
// A pure function of T, computed left to right with bounded lookahead: fed in
// any pieces, the normalizer produces the same N and map as on the whole text.
//
// The map: N is cut into pieces, each either a copy (same bytes as its source)
// or one character made from its source (a decoded, folded or removed one; a
// removed character has an empty piece). A match [s, e) of N stands for the
// original bytes [original_start(s), original_end(e)): from the first byte of
// its first character to the last byte of its last, so invisible characters
// between them belong to it and those around it do not.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace customs::policy::text {

// Bounds: the most original bytes removed between two characters of N, and
// the longest escape or character reference decoded.
inline constexpr std::size_t max_removed_run = 64;
inline constexpr std::size_t max_escape = 16;
// Original bytes per byte of N, at most (a removed run and an escape).
inline constexpr std::size_t max_expansion = max_removed_run + max_escape;
// Chinese numerals: the shortest row that is read as digits, and how far the
// normalizer looks (and keeps back) to decide whether a row is that long.
inline constexpr std::size_t numeral_min_run = 4;
inline constexpr std::size_t max_numeral_lookahead = 256;
// The most original bytes the normalizer keeps back between feeds.
inline constexpr std::size_t max_kept_back =
    (max_numeral_lookahead > max_escape ? max_numeral_lookahead : max_escape) + 4;

struct source_map {
  struct piece {
    std::size_t n;  // where it starts in N
    std::size_t o;  // where its source starts in T
    bool copy;      // N bytes equal the source bytes (else one made character)
  };
  std::vector<piece> pieces;  // in order; a piece ends where the next starts
  std::size_t n_end = 0;      // N's length (of what is mapped)
  std::size_t o_end = 0;      // T's length (of what is mapped)

  // Original offset of the character that N byte n belongs to (n < n_end).
  [[nodiscard]] std::size_t original_start(std::size_t n) const noexcept;
  // Original end of the character that N byte e - 1 belongs to (0 < e <= n_end).
  [[nodiscard]] std::size_t original_end(std::size_t e) const noexcept;
  // Whether N [a, b) is a copy of T [original_start(a), original_end(b)).
  [[nodiscard]] bool is_copy(std::size_t a, std::size_t b) const noexcept;
  // Drops pieces that end at or before N offset n (keeps what maps n and later).
  void forget_before(std::size_t n);
};

// What N ends with, for the start of a row of Chinese numerals: no letter or
// digit (free), a digit or letters that may end an identifier (blocked), or
// one or two letters that may start one (letters).
enum class row_before : std::uint8_t { free, blocked, letters };

// Incremental normalizer. Offsets in the map are absolute (from the start of
// the text).
class normalizer {
 public:
  // Appends the N bytes that piece completes to out (and their pieces to
  // map); keeps back an incomplete trailing character, escape or reference, or
  // a row of Chinese numerals not yet decided (at most max_kept_back bytes).
  void feed(std::string_view piece, std::string& out, source_map& map);
  // End of the text: what was kept back is decided.
  void finish(std::string& out, source_map& map);
  // Original bytes converted so far (fed minus kept back).
  [[nodiscard]] std::size_t consumed() const noexcept { return consumed_; }
  // Original bytes kept back.
  [[nodiscard]] std::size_t pending() const noexcept { return pending_.size(); }

 private:
  void run(std::string_view in, bool final, std::string& out, source_map& map);
  std::string pending_;
  std::size_t consumed_ = 0;      // original offset of pending_[0]
  std::size_t removed_run_ = 0;   // original bytes removed since the last N character
  bool numeral_row_ = false;      // inside a row of Chinese numerals read as digits
  bool row_sep_ = false;          // the row's last character was a separator
  bool row_kept_ = false;         // inside a row of numerals decided against
  // What N ends with, for the start of a row of numerals (see row_start):
  // the length of its run of ASCII letters (at most 3), and how many
  // characters stand after its last ASCII digit (at most far_from_digit).
  static constexpr std::uint8_t far_from_digit = 8;
  std::uint8_t letters_ = 0;
  std::uint8_t since_digit_ = far_from_digit;
  void note(char c) noexcept;  // a character entered N: c if ASCII, else 0
  void note_ascii_run(std::string_view run) noexcept;
  [[nodiscard]] row_before row_start() const noexcept;
};

struct normalized {
  bool identity = false;  // N == T (nothing to fold, decode or remove): text and map are empty
  std::string text;
  source_map map;
};

// The whole-text normalization. Cheap when T is plain: identity is set and
// nothing is copied.
[[nodiscard]] normalized normalize(std::string_view t);

// Whether t may change under normalization (any byte >= 0x80, '&', '\' or an
// invisible control character).
[[nodiscard]] bool may_change(std::string_view t) noexcept;

// Base64 in text. A run is a maximal sequence of base64 characters (either
// alphabet: A-Z a-z 0-9 + / - _, not both) and up to two '=' after them (a
// third '=' ends it, as any other character does). A run of base64_min_run to
// base64_max_run characters (padding not counted) whose bytes in T are the
// same as in N is decoded (bits of an incomplete last character group are
// dropped); when the result is text (valid UTF-8 without control characters
// but tab and line breaks) it is scanned, and its findings stand for the
// whole run. Longer runs are not decoded. Nothing about the padding or the
// length modulo 4 is required: padding that does not fit the length, or one
// character too many, would otherwise hide what a reader decodes anyway.
inline constexpr std::size_t base64_min_run = 12;
inline constexpr std::size_t base64_max_run = 4096;

// The base64 characters of either alphabet, by byte: base64_char for every
// one, and base64_url ('-' '_') or base64_std ('+' '/') for those of one
// alphabet only (a run's alphabet is the OR of its characters' classes).
inline constexpr std::uint8_t base64_char = 1, base64_url = 2, base64_std = 4;
inline constexpr std::array<std::uint8_t, 256> base64_class = [] {
  std::array<std::uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    const bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    std::uint8_t k = 0;
    if (alnum) k = base64_char;
    else if (c == '-' || c == '_') k = base64_char | base64_url;
    else if (c == '+' || c == '/') k = base64_char | base64_std;
    t[static_cast<std::size_t>(c)] = k;
  }
  return t;
}();

// Finds runs in N, fed byte by byte (the same cuts whole or streamed).
class base64_tracker {
 public:
  struct run {
    std::size_t start = 0;  // N offsets, padding included
    std::size_t end = 0;
    bool eligible = false;  // length within bounds, padding well formed
  };
  // Feeds the byte at N offset at; returns true and sets closed when a run
  // ended right before it.
  bool feed(unsigned char c, std::size_t at, run& closed) noexcept;
  // End of the text: closes the open run, if any.
  bool finish(std::size_t at, run& closed) noexcept;
  // The start of the open run while it may still be decoded (else npos).
  [[nodiscard]] std::size_t holding() const noexcept;

 private:
  enum class state : std::uint8_t { none, chars, pad };
  bool close(std::size_t at, run& closed) noexcept;
  state st_ = state::none;
  std::size_t start_ = 0;
  std::size_t chars_ = 0;
  std::size_t pad_ = 0;
  bool url_ = false;
  bool std_ = false;
};

// Length within bounds, one alphabet only.
constexpr bool base64_eligible(std::size_t chars, bool url, bool std) noexcept {
  return chars >= base64_min_run && chars <= base64_max_run && !(url && std);
}

// The eligible runs that base64_tracker finds when fed the whole of t, in
// order, found without feeding it byte by byte: f(run) for each.
template <class F>
void for_each_base64_run(std::string_view t, F&& f) {
  const auto* p = reinterpret_cast<const unsigned char*>(t.data());
  const std::size_t n = t.size();
  std::size_t i = 0;
  while (i < n) {
    if (base64_class[p[i]] == 0) {
      ++i;
      continue;
    }
    const std::size_t start = i;
    std::uint8_t seen = 0;  // the OR of the run's classes
    for (; i < n; ++i) {
      const std::uint8_t k = base64_class[p[i]];
      if (k == 0) break;
      seen |= k;
    }
    const bool url = (seen & base64_url) != 0;
    const bool std = (seen & base64_std) != 0;
    const std::size_t chars = i - start;
    for (std::size_t pad = 0; pad < 2 && i < n && p[i] == '='; ++pad) ++i;
    // A base64 character after the padding starts the next run, as anything
    // else (a third '=' too) ends this one.
    if (base64_eligible(chars, url, std)) f(base64_tracker::run{start, i, true});
  }
}

// Defined here so that a scan's byte loop inlines them.
inline bool base64_tracker::close(std::size_t at, run& closed) noexcept {
  if (st_ == state::none) return false;
  closed.start = start_;
  closed.end = at;
  // Lengths: within bounds; with padding, a whole number of quads; one
  // character over a quad is never base64. One alphabet only.
  closed.eligible = base64_eligible(chars_, url_, std_);
  st_ = state::none;
  return true;
}

inline bool base64_tracker::feed(unsigned char c, std::size_t at, run& closed) noexcept {
  if (const std::uint8_t k = base64_class[c]; k != 0) {
    bool ended = false;
    if (st_ == state::pad) ended = close(at, closed);
    if (st_ == state::none) {
      st_ = state::chars;
      start_ = at;
      chars_ = pad_ = 0;
      url_ = std_ = false;
    }
    ++chars_;
    url_ = url_ || (k & base64_url) != 0;
    std_ = std_ || (k & base64_std) != 0;
    return ended;
  }
  if (c == '=' && st_ != state::none && pad_ < 2) {
    st_ = state::pad;
    ++pad_;
    return false;
  }
  return close(at, closed);
}

[[nodiscard]] bool is_base64_char(unsigned char c) noexcept;
// The decoded text of a run, if it is text; empty when not.
[[nodiscard]] std::string base64_text(std::string_view run);

// Classification, exposed for tests.
[[nodiscard]] bool is_invisible(std::uint32_t cp) noexcept;
// The ASCII digit of a decimal digit of any script, or 0.
[[nodiscard]] char ascii_digit(std::uint32_t cp) noexcept;
// The ASCII digit a Chinese numeral stands for (see above), or 0.
[[nodiscard]] char numeral_digit(std::uint32_t cp) noexcept;

}  // namespace customs::policy::text
