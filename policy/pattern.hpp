#pragma once
// Detector patterns (private to policy/).
//
// 1. rewrite(): Customs patterns are RE2 syntax with two extensions, rewritten
//    here before RE2 sees them:
//      \d      an ASCII or full-width digit: [0-9\x{FF10}-\x{FF19}] (\D: neither)
//      {sep}   one separator inside a number: space, tab, hyphen, dot, line
//              break, no-break space, ideographic space U+3000, full-width
//              hyphen U+FF0D or dot U+FF0E, ... (separator_re2 below)
//      digits  with fullwidth_digits (the default), every ASCII digit written in
//              the pattern, alone or in a bracket range, also matches its
//              full-width form: 1 -> [1\x{FF11}], [3-9] -> [3-9\x{FF13}-\x{FF19}].
//              Repetition counts, \x escapes and group names are left alone.
// 2. compile(): parses the rewritten pattern (which RE2 has already accepted) and
//    builds a byte-level NFA that accepts a SUPERSET of the byte strings RE2 can
//    match with it. The streaming scanner uses that NFA as a prefilter: where the
//    NFA cannot match, RE2 cannot either. Anchors and word boundaries are
//    rejected (Customs applies its own boundary rule, and a match must depend only
//    on its own bytes); so are unbounded repetitions: every pattern must have a
//    longest match, which bounds the streaming hold-back.
//
// The superset is exact except where case folding (?i) meets non-ASCII text or a
// Unicode class (\pL ...) is used; those fall back to "any character".

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace customs::policy::pattern {

// One separator inside a number, in RE2 syntax: `{sep}` in patterns, and what
// may stand between two digits of a pattern (loosen): space, tab, line break
// (LF, CR, CR LF, next line U+0085, line and paragraph separators U+2028,
// U+2029), '/', '_', '-', '.', no-break and narrow no-break space, figure and
// thin space, the dashes U+2010-2013, minus U+2212, ideographic space U+3000,
// full-width hyphen, full stop, solidus and low line; or a doubled one: two
// spaces or tabs (text aligned in columns) or two hyphens. Not three, and not
// two different ones otherwise (" -" is arithmetic more often than a number).
// text::is_number_separator and text::separator_after_digit agree with this.
inline constexpr std::string_view separator_re2 =
    "(?:\\r\\n|[ \\t]{2}|--|[\\t\\n\\x{0B}\\x{0C}\\r /_.\\-\\x{85}\\x{A0}\\x{B7}\\x{1680}\\x{2000}-\\x{200A}"
    "\\x{2010}-\\x{2015}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{2212}\\x{2E3A}\\x{2E3B}\\x{3000}\\x{3001}"
    "\\x{30FB}\\x{FF0D}\\x{FF0E}\\x{FF0F}\\x{FF3F}\\x{FF65}])";

struct rewrite_result {
  std::string re2;    // the pattern in RE2 syntax
  std::string error;  // empty when ok
};
[[nodiscard]] rewrite_result rewrite(std::string_view authored, bool fullwidth_digits = true);

// The pattern (RE2 syntax, as rewrite() returns it) with one optional
// separator (separator_re2) between any two digit atoms that follow each other:
// `\\d{6}` becomes `\\d(?:S?\\d){5}`, and `\\d{3}{sep}?\\d` lets a separator stand
// before the last digit too. A digit atom is a class of digits only (the check
// character X allowed). Detectors with digit_separators (the default) use it,
// so that identifiers written with their digits spaced or grouped in unusual
// ways are still found.
[[nodiscard]] rewrite_result loosen(std::string_view re2_pattern);

// A pattern matching exactly the given literal, ASCII letters in either case when
// ignore_case (other characters as they are). Used for keyword lists.
[[nodiscard]] std::string literal(std::string_view text, bool ignore_case);

// Byte-level NFA. State 0 is not special; fragments are appended.
struct nfa {
  struct edge {
    std::uint8_t lo = 0;
    std::uint8_t hi = 0;
    std::uint32_t to = 0;
  };
  struct state {
    std::vector<edge> edges;
    std::vector<std::uint32_t> eps;
    std::int32_t accept = -1;  // the detector index accepted here, or -1
  };
  std::vector<state> states;
};

struct compiled {
  std::string code;   // empty when ok; else E_PATTERN_UNSUPPORTED, E_PATTERN_UNBOUNDED,
                      // E_PATTERN_EMPTY or E_PATTERN_TOO_COMPLEX
  std::string error;  // human-readable reason
  std::uint32_t start = 0;    // start state in the NFA
  std::size_t min_len = 0;    // shortest match in bytes
  std::size_t max_len = 0;    // longest match in bytes
};

// Parses re2_pattern and appends its NFA to out, accepting with accept_id. On
// error, out is left as it was. max_states bounds the states this pattern adds.
// With loop_over > 0, a repetition of more than loop_over copies becomes its
// minimum and then a loop: a superset that keeps the streaming automaton small
// where long counters would multiply its states (an email's 64-character local
// part against the digits of a number); the stream scanner then ends candidates
// older than the longest match itself. min_len and max_len stay those of the
// pattern as written.
[[nodiscard]] compiled compile(std::string_view re2_pattern, std::int32_t accept_id, nfa& out,
                               std::size_t max_states, int loop_over = 0);

// Splits the code point range [lo, hi] into UTF-8 byte-range sequences (each a
// list of 1..4 byte ranges), as a UTF-8 automaton needs them.
using byte_ranges = std::vector<std::pair<std::uint8_t, std::uint8_t>>;
void utf8_sequences(std::uint32_t lo, std::uint32_t hi, std::vector<byte_ranges>& out);

}  // namespace customs::policy::pattern
