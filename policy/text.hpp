#pragma once
// Text helpers shared by the scanners (private to policy/). Byte-oriented: input
// is untrusted UTF-8 that may be invalid; nothing here throws or reads out of
// bounds.
//
// "Word characters" are the letters and digits that form runs a match may not
// start or end inside: ASCII [0-9A-Za-z], full-width digits U+FF10..U+FF19 and
// full-width Latin letters U+FF21..U+FF3A, U+FF41..U+FF5A. CJK ideographs are not
// word characters: Chinese text has no spaces, and an identifier written right
// after a Chinese word is still an identifier.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace customs::policy::text {

[[nodiscard]] constexpr bool is_ascii_alnum(unsigned char b) noexcept {
  return (b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z');
}

[[nodiscard]] constexpr bool is_continuation(unsigned char b) noexcept {
  return (b & 0xC0) == 0x80;
}

// Full-width word characters are EF BC 90..99 (digits), EF BC A1..BA (A-Z),
// EF BD 81..9A (a-z).
[[nodiscard]] constexpr bool is_fullwidth_word(unsigned char b0, unsigned char b1,
                                               unsigned char b2) noexcept {
  if (b0 != 0xEF) return false;
  if (b1 == 0xBC) return (b2 >= 0x90 && b2 <= 0x99) || (b2 >= 0xA1 && b2 <= 0xBA);
  if (b1 == 0xBD) return b2 >= 0x81 && b2 <= 0x9A;
  return false;
}

// Whether a word character starts at byte offset i of s.
[[nodiscard]] inline bool word_starts_at(std::string_view s, std::size_t i) noexcept {
  if (i >= s.size()) return false;
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return is_ascii_alnum(b);
  return i + 2 < s.size() && is_fullwidth_word(b, static_cast<unsigned char>(s[i + 1]),
                                               static_cast<unsigned char>(s[i + 2]));
}

// Whether a word character ends right before byte offset i of s.
[[nodiscard]] inline bool word_ends_before(std::string_view s, std::size_t i) noexcept {
  if (i == 0 || i > s.size()) return false;
  const auto b = static_cast<unsigned char>(s[i - 1]);
  if (b < 0x80) return is_ascii_alnum(b);
  return i >= 3 && is_fullwidth_word(static_cast<unsigned char>(s[i - 3]),
                                     static_cast<unsigned char>(s[i - 2]), b);
}

// Length of the UTF-8 sequence that starts with lead byte b, 1 for invalid leads.
[[nodiscard]] constexpr std::size_t sequence_length(unsigned char b) noexcept {
  if (b < 0xC0) return 1;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  if (b < 0xF8) return 4;
  return 1;
}

// The largest n <= s.size() such that s[0, n) does not end inside an incomplete
// (still growing) UTF-8 sequence. Invalid bytes count as complete characters.
[[nodiscard]] inline std::size_t complete_prefix(std::string_view s) noexcept {
  const std::size_t n = s.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<unsigned char>(s[n - back]);
    if (is_continuation(b)) continue;
    if (b >= 0xC0 && sequence_length(b) > back) return n - back;
    return n;
  }
  return n;
}

// Decodes one code point at s[i]; returns it and sets len (1 for invalid bytes,
// which decode to 0xFFFD).
[[nodiscard]] std::uint32_t decode(std::string_view s, std::size_t i, std::size_t& len) noexcept;

// Appends the UTF-8 encoding of cp.
void encode(std::uint32_t cp, std::string& out);

// Maps one word character to its ASCII form (full-width digits and letters fold
// to ASCII, letters to upper case); returns 0 for anything else.
[[nodiscard]] char word_to_ascii_upper(std::uint32_t cp) noexcept;

// The letters and digits of s, full-width folded to ASCII, letters upper case.
// Separators (spaces, dashes, dots, anything else) are dropped. Validators work on
// this form.
[[nodiscard]] std::string alnum_upper(std::string_view s);

// A separator inside a number ({sep} in patterns, pattern::separator_re2): space,
// tab, LF, VT, FF, CR, '/', '_', '-', '.', U+0085, U+00A0, U+00B7 (middle dot),
// U+1680, U+2000-200A (spaces of every width), U+2010-2015 (dashes), U+2028,
// U+2029, U+202F, U+205F, U+2212, U+2E3A, U+2E3B, U+3000, U+3001 (ideographic
// comma), U+30FB, U+FF0D, U+FF0E, U+FF0F, U+FF3F, U+FF65.
[[nodiscard]] bool is_number_separator(std::uint32_t cp) noexcept;

// Whether every run of separators that stands between two digits of s is the
// same text (CR LF is one run): "4111 1111 1111 1111" yes, "12-3456 666" no.
[[nodiscard]] bool uniform_separators(std::string_view s) noexcept;

// Whether s spells a number digit by digit: at least two digits, and a
// separator between every two of them ("1 3 8 1" yes; "138 1234", "+86 1"
// and "1381" no).
[[nodiscard]] bool separated_digit_by_digit(std::string_view s) noexcept;

// Whether a digit and one separator (CR LF, two spaces or tabs, and two
// hyphens count as one) stand right before byte offset i: "5 " before "1234"
// in "12345 1234". A match found with separators between its digits may not
// start there: it would be a piece of a longer spaced number. Reads at most 7
// bytes before i.
[[nodiscard]] bool separator_after_digit(std::string_view s, std::size_t i) noexcept;
// Whether the mask of a masked number stands right before byte offset i: two
// or more of one mask character (*, #, X, x, U+2022, U+25CF), then at most
// one separator, as in "***-**-" before "1234" or "XXX-XX-" (two letters X
// that end a longer word, "MAXX-", are no mask). What follows is the
// number's visible part, so a match may not start there: "***-**-1234" above
// a ZIP code "12345" is not an SSN cut by a line break. Reads at most 15
// bytes before i.
[[nodiscard]] bool after_mask(std::string_view s, std::size_t i) noexcept;
// Whether s holds a line break: LF, CR, NEL, U+2028 or U+2029.
[[nodiscard]] bool has_line_break(std::string_view s) noexcept;

// Whether s holds five or more numbers (runs of digits, split by anything
// else, each shorter than ten digits) that count up or down by one: seats
// "A 1 2 3 4 5 6 7 8 9", pages "3 4 5 6 7 8 9 10". A count, not an identifier.
[[nodiscard]] bool counts_by_one(std::string_view s) noexcept;

// Whether a digit (ASCII or full-width) starts at i / ends right before i.
[[nodiscard]] bool digit_starts_at(std::string_view s, std::size_t i) noexcept;
[[nodiscard]] bool digit_ends_before(std::string_view s, std::size_t i) noexcept;

// Number of code points (invalid bytes count one each).
[[nodiscard]] std::size_t count_chars(std::string_view s) noexcept;

// Whether needle occurs in hay (ASCII case-insensitive) where a word starts:
// a needle that begins with an ASCII letter may not follow one ("ssn" is not in
// "classname"; "SSNs" holds "SSN"), unless it starts with a capital after a
// lower-case letter ("customerSsn"). Only hay is looked at, so an occurrence
// at its first byte counts.
[[nodiscard]] bool contains_word_start_ci(std::string_view hay, std::string_view needle) noexcept;

}  // namespace customs::policy::text
