#include "policy/normalize.hpp"

#include <algorithm>
#include <array>

#include "policy/text.hpp"

namespace customs::policy::text {

namespace {

// First code points of the ten-digit blocks of Unicode general category Nd.
constexpr std::uint32_t digit_zeros[] = {
    0x0660,  0x06F0,  0x07C0,  0x0966,  0x09E6,  0x0A66,  0x0AE6,  0x0B66,  0x0BE6,  0x0C66,  0x0CE6,  0x0D66,
    0x0DE6,  0x0E50,  0x0ED0,  0x0F20,  0x1040,  0x1090,  0x17E0,  0x1810,  0x1946,  0x19D0,  0x1A80,  0x1A90,
    0x1B50,  0x1BB0,  0x1C40,  0x1C50,  0xA620,  0xA8D0,  0xA900,  0xA9D0,  0xA9F0,  0xAA50,  0xABF0,  0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730,
    0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x11F50, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2,
    0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E950, 0x1FBF0};

struct cp_range {
  std::uint32_t lo, hi;
};

// Control characters that render as nothing: C0 controls other than the
// whitespace ones (tab, line feed, line tabulation, form feed, carriage
// return), DEL, and C1 controls other than next line (U+0085). A NUL between
// the digits of an ID (\u0000 in a JSON string) reaches a model as the digits
// around it, as a zero-width space does.
constexpr bool invisible_control(std::uint32_t cp) noexcept {
  return (cp < 0x20 && (cp < 0x09 || cp > 0x0D)) || (cp >= 0x7F && cp <= 0x9F && cp != 0x85);
}
// Invisible characters: general category Cf, the combining grapheme joiner,
// variation selectors, and the Hangul fillers (which render as nothing); and
// the generic combining marks (diacritics U+0300-036F and their extensions,
// marks for symbols such as the keycap U+20E3, half marks), which draw on the
// character before them: a digit under an accent, a strike or a keycap still
// reads as that digit.
constexpr cp_range invisible_ranges[] = {
    {0x00AD, 0x00AD},   {0x0300, 0x036F},   {0x0600, 0x0605},   {0x061C, 0x061C},   {0x06DD, 0x06DD},
    {0x070F, 0x070F},   {0x0890, 0x0891},   {0x08E2, 0x08E2},   {0x115F, 0x1160},   {0x17B4, 0x17B5},
    {0x180B, 0x180F},   {0x1AB0, 0x1AFF},   {0x1DC0, 0x1DFF},   {0x200B, 0x200F},   {0x202A, 0x202E},
    {0x2060, 0x2064},   {0x2066, 0x206F},   {0x20D0, 0x20FF},
    {0x3164, 0x3164},   {0xFE00, 0xFE0F},   {0xFE20, 0xFE2F},   {0xFEFF, 0xFEFF},   {0xFFA0, 0xFFA0},   {0xFFF9, 0xFFFB},
    {0x110BD, 0x110BD}, {0x110CD, 0x110CD}, {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A},
    {0xE0001, 0xE0001}, {0xE0020, 0xE007F}, {0xE0100, 0xE01EF}};

// Chinese numerals and the digit each stands for, by code point.
struct numeral {
  std::uint32_t cp;
  char digit;
};
constexpr numeral numerals[] = {
    {0x3007, '0'}, {0x4E00, '1'}, {0x4E03, '7'}, {0x4E09, '3'}, {0x4E5D, '9'}, {0x4E8C, '2'}, {0x4E94, '5'},
    {0x4F0D, '5'}, {0x516B, '8'}, {0x516D, '6'}, {0x53C1, '3'}, {0x53C3, '3'}, {0x56DB, '4'}, {0x58F9, '1'},
    {0x5E7A, '1'}, {0x634C, '8'}, {0x67D2, '7'}, {0x7396, '9'}, {0x8086, '4'}, {0x8CB3, '2'}, {0x8D30, '2'},
    {0x9646, '6'}, {0x9678, '6'}, {0x96F6, '0'}};

// Lead bytes whose characters are never invisible, digits or full-width
// letters: copied without decoding. (C2, CC, CD, D8-DC, DF, E0-E3, EA, EF, F0, F3
// hold some; E4-E9, the CJK ideographs, hold the Chinese numerals and are
// copied without more work once decoded, see cjk_lead.)
constexpr std::array<bool, 256> plain_lead = [] {
  std::array<bool, 256> t{};
  for (int b = 0xC3; b <= 0xCB; ++b) t[static_cast<std::size_t>(b)] = true;
  for (int b = 0xCE; b <= 0xD7; ++b) t[static_cast<std::size_t>(b)] = true;
  t[0xDD] = t[0xDE] = true;
  for (int b = 0xEB; b <= 0xEE; ++b) t[static_cast<std::size_t>(b)] = true;
  t[0xF1] = t[0xF2] = t[0xF4] = true;
  return t;
}();

constexpr bool cjk_lead(unsigned char b) noexcept { return b >= 0xE4 && b <= 0xE9; }

struct named_ref {
  std::string_view name;
  std::uint32_t cp;
};
// Named character references: the common ones, and those that stand for
// separators, digits' neighbours or invisible characters.
constexpr named_ref named_refs[] = {
    {"AMP", '&'},         {"Hat", '^'},          {"InvisibleComma", 0x2063}, {"InvisibleTimes", 0x2062},
    {"LT", '<'},          {"GT", '>'},           {"NewLine", '\n'},          {"NoBreak", 0x2060},
    {"NonBreakingSpace", 0xA0}, {"QUOT", '"'},   {"Tab", '\t'},              {"ThinSpace", 0x2009},
    {"ZeroWidthSpace", 0x200B}, {"af", 0x2061},  {"amp", '&'},               {"apos", '\''},
    {"ast", '*'},         {"bsol", '\\'},        {"bull", 0x2022},           {"colon", ':'},
    {"comma", ','},       {"commat", '@'},       {"dash", 0x2010},           {"dollar", '$'},
    {"emsp", 0x2003},     {"ensp", 0x2002},      {"equals", '='},            {"excl", '!'},
    {"gt", '>'},          {"hellip", 0x2026},    {"hyphen", 0x2010},         {"ic", 0x2063},
    {"it", 0x2062},       {"lbrack", '['},       {"lcub", '{'},              {"lowbar", '_'},
    {"lpar", '('},        {"lrm", 0x200E},       {"lsqb", '['},              {"lt", '<'},
    {"mdash", 0x2014},    {"middot", 0xB7},      {"minus", 0x2212},          {"nbsp", 0xA0},
    {"ndash", 0x2013},    {"num", '#'},          {"numsp", 0x2007},          {"percnt", '%'},
    {"period", '.'},      {"plus", '+'},         {"puncsp", 0x2008},         {"quest", '?'},
    {"quot", '"'},        {"rbrack", ']'},       {"rcub", '}'},              {"rlm", 0x200F},
    {"rpar", ')'},        {"rsqb", ']'},         {"semi", ';'},              {"shy", 0xAD},
    {"sol", '/'},         {"thinsp", 0x2009},    {"tilde", '~'},             {"verbar", '|'},
    {"vert", '|'},        {"zwj", 0x200D},       {"zwnj", 0x200C},
};

bool hex_digit(char c, std::uint32_t& v) noexcept {
  if (c >= '0' && c <= '9') v = static_cast<std::uint32_t>(c - '0');
  else if (c >= 'a' && c <= 'f') v = static_cast<std::uint32_t>(c - 'a' + 10);
  else if (c >= 'A' && c <= 'F') v = static_cast<std::uint32_t>(c - 'A' + 10);
  else return false;
  return true;
}

bool scalar_value(std::uint32_t cp) noexcept { return cp > 0 && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF); }

bool ascii_alnum(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// What a reader found at a position.
enum class read : std::uint8_t {
  incomplete,  // more input may change the answer: wait
  literal,     // not an escape: the first byte stands for itself
  decoded,     // an escape or reference: cp, len
};

// A character reference at s[0] == '&'.
read reference(std::string_view s, bool final, std::uint32_t& cp, std::size_t& len) noexcept {
  const auto more = [&](std::size_t need) { return s.size() < need && !final; };
  if (s.size() < 2) return more(2) ? read::incomplete : read::literal;
  if (s[1] == '#') {
    if (s.size() < 3) return more(3) ? read::incomplete : read::literal;
    const bool hex = s[2] == 'x' || s[2] == 'X';
    std::size_t i = hex ? 3 : 2;
    const std::size_t first = i;
    std::uint32_t v = 0;
    const std::size_t max_digits = hex ? 6 : 7;
    for (; i < s.size() && i - first < max_digits + 1; ++i) {
      std::uint32_t d = 0;
      if (hex ? !hex_digit(s[i], d) : !(s[i] >= '0' && s[i] <= '9' && (d = static_cast<std::uint32_t>(s[i] - '0'), true)))
        break;
      v = v * (hex ? 16 : 10) + d;
    }
    const std::size_t digits = i - first;
    if (i == s.size() && !final && digits <= max_digits) return read::incomplete;  // digits may go on, or ';' may come
    if (digits == 0 || digits > max_digits || !scalar_value(v)) return read::literal;
    if (i < s.size() && s[i] == ';') ++i;
    cp = v;
    len = i;
    return read::decoded;
  }
  // Named: letters and digits, then ';'.
  std::size_t i = 1;
  while (i < s.size() && i <= max_escape && ascii_alnum(s[i])) ++i;
  if (i == s.size() && !final && i <= max_escape) return read::incomplete;
  if (i == 1 || i >= s.size() || s[i] != ';') return read::literal;
  const std::string_view name = s.substr(1, i - 1);
  for (const auto& r : named_refs)
    if (r.name == name) {
      cp = r.cp;
      len = i + 1;
      return read::decoded;
    }
  return read::literal;
}

// Four hex digits at s[at].
int hex4(std::string_view s, std::size_t at, std::uint32_t& v) noexcept {
  v = 0;
  for (std::size_t k = 0; k < 4; ++k) {
    if (at + k >= s.size()) return -1;  // not there yet
    std::uint32_t d = 0;
    if (!hex_digit(s[at + k], d)) return 0;
    v = v * 16 + d;
  }
  return 1;
}

// An escape at s[0] == '\'.
read escape(std::string_view s, bool final, std::uint32_t& cp, std::size_t& len) noexcept {
  const auto wait_or_literal = [&] { return final ? read::literal : read::incomplete; };
  if (s.size() < 2) return wait_or_literal();
  if (s[1] == 'u') {
    if (s.size() >= 3 && s[2] == '{') {  // \u{X...}
      std::uint32_t v = 0;
      std::size_t i = 3;
      for (; i < s.size() && i < 9; ++i) {
        std::uint32_t d = 0;
        if (!hex_digit(s[i], d)) break;
        v = v * 16 + d;
      }
      if (i == s.size()) return wait_or_literal();
      if (i == 3 || s[i] != '}' || !scalar_value(v)) return read::literal;
      cp = v;
      len = i + 1;
      return read::decoded;
    }
    std::uint32_t hi = 0;
    const int h = hex4(s, 2, hi);
    if (h < 0) return wait_or_literal();
    if (h == 0 || hi == 0) return read::literal;
    if (hi >= 0xDC00 && hi <= 0xDFFF) return read::literal;  // a lone low surrogate
    if (hi < 0xD800 || hi > 0xDBFF) {
      cp = hi;
      len = 6;
      return read::decoded;
    }
    // A high surrogate: its low half must follow as \uDCxx.
    if (s.size() < 8) return wait_or_literal();
    if (s[6] != '\\' || s[7] != 'u') return read::literal;
    std::uint32_t lo = 0;
    const int l = hex4(s, 8, lo);
    if (l < 0) return wait_or_literal();
    if (l == 0 || lo < 0xDC00 || lo > 0xDFFF) return read::literal;
    cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    len = 12;
    return read::decoded;
  }
  if (s[1] == 'U') {
    std::uint32_t v = 0;
    for (std::size_t k = 2; k < 10; ++k) {
      if (k >= s.size()) return wait_or_literal();
      std::uint32_t d = 0;
      if (!hex_digit(s[k], d)) return read::literal;
      v = v * 16 + d;
    }
    if (!scalar_value(v)) return read::literal;
    cp = v;
    len = 10;
    return read::decoded;
  }
  return read::literal;
}

// How a character enters N.
enum class fate : std::uint8_t { keep, remove, fold };

fate classify(std::uint32_t cp, char& folded) noexcept {
  if (const char d = ascii_digit(cp)) {
    if (cp < 0x80) return fate::keep;
    folded = d;
    return fate::fold;
  }
  if (cp >= 0xFF21 && cp <= 0xFF3A) {
    folded = static_cast<char>('A' + (cp - 0xFF21));
    return fate::fold;
  }
  if (cp >= 0xFF41 && cp <= 0xFF5A) {
    folded = static_cast<char>('a' + (cp - 0xFF41));
    return fate::fold;
  }
  return is_invisible(cp) ? fate::remove : fate::keep;
}

void emit_copy(std::string_view bytes, std::size_t o, std::string& out, source_map& map) {
  if (map.pieces.empty() || !map.pieces.back().copy) map.pieces.push_back({map.n_end, o, true});
  out.append(bytes);
  map.n_end += bytes.size();
  map.o_end = o + bytes.size();
}

void emit_made(std::string_view bytes, std::size_t o, std::size_t src_len, std::string& out, source_map& map) {
  map.pieces.push_back({map.n_end, o, false});
  out.append(bytes);
  map.n_end += bytes.size();
  map.o_end = o + src_len;
}

}  // namespace

bool is_invisible(std::uint32_t cp) noexcept {
  if (invisible_control(cp)) return true;
  if (cp < 0xAD) return false;
  for (const auto& r : invisible_ranges) {
    if (cp < r.lo) return false;
    if (cp <= r.hi) return true;
  }
  return false;
}

namespace {
// Digits that are not of category Nd but read as one digit each (category
// No): superscripts, subscripts, circled, parenthesized and dotted digits.
// Runs of consecutive code points: first code point, the digit it stands for,
// how many.
struct digit_run {
  std::uint32_t first;
  char digit;
  std::uint8_t count;
};
constexpr digit_run other_digits[] = {
    {0x00B2, '2', 2}, {0x00B9, '1', 1}, {0x2070, '0', 1}, {0x2074, '4', 6}, {0x2080, '0', 10},
    {0x2460, '1', 9}, {0x2474, '1', 9}, {0x2488, '1', 9}, {0x24EA, '0', 1}, {0x24F5, '1', 9},
    {0x24FF, '0', 1}, {0x2776, '1', 9}, {0x2780, '1', 9}, {0x278A, '1', 9}, {0x1F100, '0', 1},
    {0x1F101, '0', 10}};
}  // namespace

char ascii_digit(std::uint32_t cp) noexcept {
  if (cp >= '0' && cp <= '9') return static_cast<char>(cp);
  if (cp < 0xB2) return 0;
  if (cp >= 0x660) {
    const auto* it = std::upper_bound(std::begin(digit_zeros), std::end(digit_zeros), cp);
    if (it != std::begin(digit_zeros)) {
      const std::uint32_t zero = *(it - 1);
      if (cp - zero < 10) return static_cast<char>('0' + (cp - zero));
    }
  }
  for (const auto& r : other_digits) {
    if (cp < r.first) return 0;
    if (cp - r.first < r.count) return static_cast<char>(r.digit + (cp - r.first));
  }
  return 0;
}

char numeral_digit(std::uint32_t cp) noexcept {
  if (cp < numerals[0].cp || cp > numerals[std::size(numerals) - 1].cp) return 0;
  const auto* it = std::lower_bound(std::begin(numerals), std::end(numerals), cp,
                                    [](const numeral& n, std::uint32_t v) { return n.cp < v; });
  return it != std::end(numerals) && it->cp == cp ? it->digit : 0;
}

namespace {

// One of these between numerals continues a row ("一三八 一二三四 五六七八").
constexpr bool row_separator(char c) noexcept { return c == ' ' || c == '-' || c == '/' || c == '_' || c == '.'; }

// Whether cp makes an ASCII letter or digit in N (a digit of any script, a
// full-width letter).
bool alnum_in_n(std::uint32_t cp) noexcept {
  return ascii_digit(cp) != 0 || (cp < 0x80 && ascii_alnum(static_cast<char>(cp))) || (cp >= 0xFF21 && cp <= 0xFF3A) ||
         (cp >= 0xFF41 && cp <= 0xFF5A);
}
bool letter_in_n(std::uint32_t cp) noexcept { return alnum_in_n(cp) && ascii_digit(cp) == 0; }

// The next character at or after in[k] that is not invisible: 1 (cp set, k at
// it, len its length), 0 the text ended, -1 not known before more input comes,
// -2 past the lookahead bound (counted from i).
int next_visible(std::string_view in, std::size_t i, std::size_t& k, bool final, std::uint32_t& cp,
                 std::size_t& len) noexcept {
  for (;;) {
    if (k - i > max_numeral_lookahead) return -2;
    if (k >= in.size()) return final ? 0 : -1;
    const auto b = static_cast<unsigned char>(in[k]);
    if (b < 0x80) {
      if (invisible_control(b)) {
        ++k;
        continue;
      }
      cp = b;
      len = 1;
      return 1;
    }
    const std::size_t n = sequence_length(b);
    if (k + n > in.size() && !final) {
      bool growing = n > 1;
      for (std::size_t m = k + 1; m < in.size(); ++m) growing = growing && is_continuation(static_cast<unsigned char>(in[m]));
      if (growing) return -1;
    }
    len = 1;
    cp = decode(in, k, len);
    if (!is_invisible(cp)) return 1;
    k += len;
  }
}

// After a row that follows letters (row_before::letters), at in[k], the first
// byte after its last numeral: 1 when no letter or digit touches the row, or
// one letter that no letter or digit follows; 0 when one does (or an escape
// or reference might make one); -1 not known yet.
int row_tail_free(std::string_view in, std::size_t i, std::size_t k, bool final) noexcept {
  std::uint32_t cp = 0;
  std::size_t len = 1;
  int r = next_visible(in, i, k, final, cp, len);
  if (r != 1) return r == -2 ? 0 : r == 0 ? 1 : -1;
  if (cp == '&' || cp == '\\' || ascii_digit(cp) != 0) return 0;
  if (!letter_in_n(cp)) return 1;
  k += len;
  r = next_visible(in, i, k, final, cp, len);
  if (r != 1) return r == -2 ? 0 : r == 0 ? 1 : -1;
  return cp == '&' || cp == '\\' || alnum_in_n(cp) ? 0 : 1;
}

// Whether the numeral at in[i] (len bytes) starts a row that is read as
// digits: 1 yes, 0 no, -1 not known before more input comes. The whole row is
// looked at (numerals, invisible characters, single separators): it must hold
// numeral_min_run numerals, end within max_numeral_lookahead bytes, follow
// no digit (before: what N ends with) and touch no digit after it, so that a
// row beside an identifier in digits never joins it into a longer one
// ("〇〇〇〇11010519491231002X", "11010519491231002X〇〇〇〇" keep the ID's
// boundaries); a letter after it may be an ID's check character ("...〇〇二X").
// After letters, what follows the row must also be free (row_tail_free).
int numeral_row_ahead(std::string_view in, std::size_t i, std::size_t len, bool final, row_before before) noexcept {
  if (before == row_before::blocked) return 0;
  std::size_t count = 1;
  std::size_t j = i + len;
  bool after_sep = false;  // one separator since the last numeral
  // The row ends at in[j] (or the end of the text).
  const auto ends = [&](bool digit_next) {
    if (digit_next || count < numeral_min_run) return 0;
    if (before != row_before::letters || after_sep) return 1;
    return row_tail_free(in, i, j, final);
  };
  for (;;) {
    if (j - i > max_numeral_lookahead) return 0;
    if (j >= in.size()) return final ? ends(false) : -1;
    const auto b = static_cast<unsigned char>(in[j]);
    if (b < 0x80 && invisible_control(b)) {  // a C0 control or DEL (C1 ones are two bytes)
      ++j;
      continue;
    }
    if (b < 0x80) {
      if (row_separator(static_cast<char>(b)) && !after_sep) {
        after_sep = true;
        ++j;
        continue;
      }
      return ends(!after_sep && b >= '0' && b <= '9');
    }
    const std::size_t n = sequence_length(b);
    if (j + n > in.size() && !final) {
      bool growing = n > 1;
      for (std::size_t k = j + 1; k < in.size(); ++k) growing = growing && is_continuation(static_cast<unsigned char>(in[k]));
      if (growing) return -1;
    }
    std::size_t l = 1;
    const std::uint32_t cp = decode(in, j, l);
    if (numeral_digit(cp) != 0) {
      ++count;
      after_sep = false;
    } else if (!is_invisible(cp)) {
      return ends(!after_sep && ascii_digit(cp) != 0);
    }
    j += l;
  }
}

}  // namespace

namespace {
// The bytes that may_change looks for, as a table (one look-up a byte).
constexpr std::array<std::uint8_t, 256> changing_byte = [] {
  std::array<std::uint8_t, 256> t{};
  for (std::uint32_t b = 0; b < 256; ++b) t[b] = b >= 0x80 || b == '&' || b == '\\' || invisible_control(b) ? 1 : 0;
  return t;
}();
}  // namespace

bool may_change(std::string_view t) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(t.data());
  const std::size_t n = t.size();
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4)
    if ((changing_byte[p[i]] | changing_byte[p[i + 1]] | changing_byte[p[i + 2]] | changing_byte[p[i + 3]]) != 0) return true;
  for (; i < n; ++i)
    if (changing_byte[p[i]] != 0) return true;
  return false;
}

std::size_t source_map::original_start(std::size_t n) const noexcept {
  // The last piece starting at or before n; removed pieces come before the
  // character that follows them, so it is that character's piece.
  const auto it = std::upper_bound(pieces.begin(), pieces.end(), n, [](std::size_t v, const piece& p) { return v < p.n; });
  if (it == pieces.begin()) return n;
  const piece& p = *(it - 1);
  return p.copy ? p.o + (n - p.n) : p.o;
}

std::size_t source_map::original_end(std::size_t e) const noexcept {
  if (e == 0) return original_start(0);
  const auto it = std::upper_bound(pieces.begin(), pieces.end(), e - 1, [](std::size_t v, const piece& p) { return v < p.n; });
  if (it == pieces.begin()) return e;
  const piece& p = *(it - 1);
  if (p.copy) return p.o + (e - p.n);
  return it == pieces.end() ? o_end : it->o;
}

bool source_map::is_copy(std::size_t a, std::size_t b) const noexcept {
  if (a >= b) return true;
  return original_end(b) - original_start(a) == b - a;
}

void source_map::forget_before(std::size_t n) {
  // Keep the piece that holds n (the last one starting at or before it).
  const auto it = std::upper_bound(pieces.begin(), pieces.end(), n, [](std::size_t v, const piece& p) { return v < p.n; });
  if (it == pieces.begin()) return;
  pieces.erase(pieces.begin(), it - 1);
}

void normalizer::note(char c) noexcept {
  if (c >= '0' && c <= '9') {
    letters_ = 0;
    since_digit_ = 0;
    return;
  }
  letters_ = ascii_alnum(c) ? static_cast<std::uint8_t>(std::min(letters_ + 1, 3)) : 0;
  since_digit_ = static_cast<std::uint8_t>(std::min<int>(since_digit_ + 1, far_from_digit));
}

void normalizer::note_ascii_run(std::string_view run) noexcept {
  // Only the last far_from_digit characters can change what is noted.
  if (run.size() >= far_from_digit) {
    letters_ = 0;
    since_digit_ = far_from_digit;
    run.remove_prefix(run.size() - far_from_digit);
  }
  for (const char c : run) note(c);
}

row_before normalizer::row_start() const noexcept {
  if (letters_ == 0) return since_digit_ == 0 ? row_before::blocked : row_before::free;
  return letters_ <= 2 && since_digit_ >= letters_ + 3 ? row_before::letters : row_before::blocked;
}

void normalizer::run(std::string_view in, bool final, std::string& out, source_map& map) {
  const std::size_t base = consumed_;  // original offset of in[0]
  std::size_t i = 0;
  // One character of T, made or decoded, entering N.
  const auto put = [&](std::uint32_t cp, std::string_view src, bool raw) {
    const std::size_t o = base + i;
    char folded = 0;
    if (const char d = numeral_digit(cp); d != 0 && (numeral_row_ || row_kept_)) {
      removed_run_ = 0;
      row_sep_ = false;
      if (numeral_row_) {
        emit_made(std::string_view(&d, 1), o, src.size(), out, map);
        note(d);
        return;
      }
      // A row decided against: each of its numerals stays.
      note(0);
      if (raw) {
        emit_copy(src, o, out, map);
      } else {
        std::string enc;
        encode(cp, enc);
        emit_made(enc, o, src.size(), out, map);
      }
      return;
    }
    const fate f = classify(cp, folded);
    if (f != fate::remove) numeral_row_ = row_kept_ = false;
    // What enters N: a folded character, or one decoded from an escape (a
    // removed character changes nothing; past the bound it stays, as a
    // character that is no letter or digit).
    if (f == fate::fold) note(folded);
    else if (f == fate::keep) note(cp < 0x80 ? static_cast<char>(cp) : 0);
    switch (f) {
      case fate::remove:
        if (removed_run_ + src.size() <= max_removed_run) {
          emit_made({}, o, src.size(), out, map);
          removed_run_ += src.size();
          return;
        }
        numeral_row_ = row_kept_ = false;
        note(0);
        break;  // past the bound: it stays (and breaks a match there)
      case fate::fold:
        emit_made(std::string_view(&folded, 1), o, src.size(), out, map);
        removed_run_ = 0;
        return;
      case fate::keep: break;
    }
    removed_run_ = 0;
    if (raw) {
      emit_copy(src, o, out, map);
    } else {
      std::string enc;
      encode(cp, enc);
      emit_made(enc, o, src.size(), out, map);
    }
  };
  while (i < in.size()) {
    const auto b = static_cast<unsigned char>(in[i]);
    if (b < 0x80 && b != '&' && b != '\\' && !invisible_control(b)) {
      std::size_t j = i + 1;
      while (j < in.size()) {
        const auto c = static_cast<unsigned char>(in[j]);
        if (c >= 0x80 || c == '&' || c == '\\' || invisible_control(c)) break;
        ++j;
      }
      emit_copy(in.substr(i, j - i), base + i, out, map);
      removed_run_ = 0;
      note_ascii_run(in.substr(i, j - i));
      // A row goes on across one separator (character by character: the
      // first ASCII character may be it, a second one ends the row).
      if ((numeral_row_ || row_kept_) && j - i == 1 && row_separator(in[i]) && !row_sep_) {
        row_sep_ = true;
      } else {
        numeral_row_ = row_kept_ = false;
      }
      i = j;
      continue;
    }
    std::uint32_t cp = 0;
    std::size_t len = 1;
    if (b == '&' || b == '\\') {
      const std::string_view rest = in.substr(i, std::min(in.size() - i, max_escape + 1));
      const read r = b == '&' ? reference(rest, final || in.size() - i > max_escape, cp, len)
                              : escape(rest, final || in.size() - i > max_escape, cp, len);
      if (r == read::incomplete) break;
      if (r == read::literal) {
        emit_copy(in.substr(i, 1), base + i, out, map);
        removed_run_ = 0;
        numeral_row_ = row_kept_ = false;
        note(static_cast<char>(b));
        ++i;
        continue;
      }
      put(cp, in.substr(i, len), false);
      i += len;
      continue;
    }
    // Non-ASCII or an invisible control: wait for the rest of a character
    // that is still coming.
    const std::size_t n = sequence_length(b);
    if (i + n > in.size() && !final) {
      bool growing = n > 1;
      for (std::size_t k = i + 1; k < in.size(); ++k) growing = growing && is_continuation(static_cast<unsigned char>(in[k]));
      if (growing) break;
    }
    cp = decode(in, i, len);
    const char numeral = cjk_lead(b) || b == 0xE3 ? numeral_digit(cp) : 0;
    if (cp == 0xFFFD && len == 1) {
      // A byte outside UTF-8 is scanned as U+FFFD, what the audit payload
      // keeps of it (so that replay reads what was scanned; RE2 would not
      // match the raw byte with `.` or `\D`, and would the replacement).
      emit_made("\xEF\xBF\xBD", base + i, 1, out, map);
      removed_run_ = 0;
      numeral_row_ = row_kept_ = false;
      note(0);
      ++i;
      continue;
    }
    if (plain_lead[b] || (cjk_lead(b) && numeral == 0)) {
      emit_copy(in.substr(i, len), base + i, out, map);
      removed_run_ = 0;
      numeral_row_ = row_kept_ = false;
      note(0);
      i += len;
      continue;
    }
    if (numeral != 0 && !numeral_row_ && !row_kept_) {
      const int row = numeral_row_ahead(in, i, len, final, row_start());
      if (row < 0) break;  // decided when more of the text comes
      numeral_row_ = row > 0;
      row_kept_ = row == 0;
    }
    put(cp, in.substr(i, len), true);
    i += len;
  }
  pending_.assign(in.substr(i));
  consumed_ = base + i;
}

void normalizer::feed(std::string_view piece, std::string& out, source_map& map) {
  if (pending_.empty()) {
    run(piece, false, out, map);
    return;
  }
  std::string in = std::move(pending_);
  pending_.clear();
  in.append(piece);
  run(in, false, out, map);
}

void normalizer::finish(std::string& out, source_map& map) {
  std::string in = std::move(pending_);
  pending_.clear();
  run(in, true, out, map);
}

bool is_base64_char(unsigned char c) noexcept { return base64_class[c] != 0; }

bool base64_tracker::finish(std::size_t at, run& closed) noexcept { return close(at, closed); }

std::size_t base64_tracker::holding() const noexcept {
  if (st_ == state::none || chars_ > base64_max_run) return static_cast<std::size_t>(-1);
  return start_;
}

std::string base64_text(std::string_view run) {
  while (!run.empty() && run.back() == '=') run.remove_suffix(1);  // padding, if a caller's run has it
  std::string out;
  out.reserve(run.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  int need = 0;  // continuation bytes the last lead byte still wants
  for (const char ch : run) {
    const auto c = static_cast<unsigned char>(ch);
    std::uint32_t v = 0;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else return {};
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      const auto b = static_cast<unsigned char>((acc >> bits) & 0xFF);
      // What is surely not text ends the decoding at once (most runs that are
      // not base64 text, such as a path, fail in their first bytes): a
      // control character, a byte that no UTF-8 sequence has there. The full
      // check below decides the rest.
      if (need > 0) {
        if (b < 0x80 || b > 0xBF) return {};
        --need;
      } else if (b < 0x80) {
        if ((b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7F) return {};
      } else if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
      } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
      } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
      } else {
        return {};
      }
      out.push_back(static_cast<char>(b));
    }
  }
  // Text: valid UTF-8, no control characters but tab, LF and CR.
  for (std::size_t i = 0; i < out.size();) {
    std::size_t len = 1;
    const std::uint32_t cp = decode(out, i, len);
    if (cp == 0xFFFD && len == 1) return {};
    if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) return {};
    i += len;
  }
  return out;
}

normalized normalize(std::string_view t) {
  normalized r;
  if (!may_change(t)) {
    r.identity = true;
    return r;
  }
  normalizer z;
  r.text.reserve(t.size());
  z.feed(t, r.text, r.map);
  z.finish(r.text, r.map);
  if (r.map.pieces.size() <= 1 && (r.map.pieces.empty() || r.map.pieces.front().copy)) {
    r.identity = true;
    r.text.clear();
    r.map = {};
  }
  return r;
}

}  // namespace customs::policy::text
