#include "policy/pattern.hpp"

#include <algorithm>
#include <limits>
#include <utility>

#include "policy/text.hpp"

namespace customs::policy::pattern {

namespace {
constexpr std::string_view digit_ranges = "0-9\\x{FF10}-\\x{FF19}";
}  // namespace

namespace {
// \x{FF10} + d: the full-width form of ASCII digit d.
std::string fullwidth_escape(char d) {
  std::string s = "\\x{FF1";
  s.push_back(d);
  s.push_back('}');
  return s;
}
// Length of a counted repetition {n}, {n,}, {n,m} at p[i], or 0.
std::size_t counted_length(std::string_view p, std::size_t i) {
  std::size_t j = i + 1;
  const std::size_t d0 = j;
  while (j < p.size() && p[j] >= '0' && p[j] <= '9') ++j;
  if (j == d0) return 0;
  if (j < p.size() && p[j] == ',') {
    ++j;
    while (j < p.size() && p[j] >= '0' && p[j] <= '9') ++j;
  }
  return (j < p.size() && p[j] == '}') ? j + 1 - i : 0;
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
}  // namespace

rewrite_result rewrite(std::string_view p, bool fullwidth_digits) {
  rewrite_result r;
  std::string& out = r.re2;
  out.reserve(p.size() + 32);
  bool in_class = false;
  bool in_quote = false;
  auto copy_to = [&](std::size_t& i, char close) {
    const auto end = p.find(close, i);
    const std::size_t stop = end == std::string_view::npos ? p.size() : end + 1;
    out.append(p.substr(i, stop - i));
    i = stop;
  };
  for (std::size_t i = 0; i < p.size();) {
    const char c = p[i];
    if (in_quote) {
      if (c == '\\' && i + 1 < p.size() && p[i + 1] == 'E') in_quote = false, out += "\\E", i += 2;
      else out.push_back(c), ++i;
      continue;
    }
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[i + 1];
      if (n == 'Q') {
        in_quote = true;
        out += "\\Q";
        i += 2;
      } else if (n == 'd') {
        if (in_class) out += digit_ranges;
        else out += "[", out += digit_ranges, out += "]";
        i += 2;
      } else if (n == 'D') {
        if (in_class) {
          r.error = "\\D inside brackets is not supported; write the class out";
          return r;
        }
        out += "[^", out += digit_ranges, out += "]";
        i += 2;
      } else if ((n == 'x' || n == 'p' || n == 'P') && i + 2 < p.size() && p[i + 2] == '{') {
        copy_to(i, '}');  // \x{...}, \p{...}: digits inside are not literals
      } else if (n == 'x') {
        out.append(p.substr(i, 4));
        i = std::min(p.size(), i + 4);
      } else if (n >= '0' && n <= '7') {
        std::size_t j = i + 2;
        while (j < p.size() && j < i + 4 && p[j] >= '0' && p[j] <= '7') ++j;
        out.append(p.substr(i, j - i));
        i = j;
      } else {
        out.push_back(c);
        out.push_back(n);
        i += 2;
      }
      continue;
    }
    if (!in_class && c == '(' && p.substr(i, 3) == "(?P") {
      copy_to(i, '>');
      continue;
    }
    if (!in_class && c == '(' && p.substr(i, 3) == "(?<") {
      copy_to(i, '>');
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      ++i;
      if (i < p.size() && p[i] == '^') out.push_back(p[i++]);
      if (i < p.size() && p[i] == ']') out.push_back(p[i++]);  // a leading ] is literal
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      const auto close = p.find(":]", i + 2);
      if (close != std::string_view::npos) {
        out.append(p.substr(i, close + 2 - i));
        i = close + 2;
        continue;
      }
    }
    if (in_class && c == ']') {
      in_class = false;
      out.push_back(c);
      ++i;
      continue;
    }
    if (!in_class && c == '{') {
      if (p.substr(i, 5) == "{sep}") {
        out += separator_re2;
        i += 5;
        continue;
      }
      if (const std::size_t n = counted_length(p, i)) {
        out.append(p.substr(i, n));
        i += n;
        continue;
      }
    }
    if (fullwidth_digits && is_digit(c)) {
      if (in_class) {
        if (i + 2 < p.size() && p[i + 1] == '-' && is_digit(p[i + 2])) {
          out.append(p.substr(i, 3));
          out += fullwidth_escape(c) + "-" + fullwidth_escape(p[i + 2]);
          i += 3;
        } else if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') {
          out.push_back(c);  // a range to a non-digit: leave it as written
          ++i;
        } else {
          out.push_back(c);
          out += fullwidth_escape(c);
          ++i;
        }
      } else {
        out += "[";
        out.push_back(c);
        out += fullwidth_escape(c) + "]";
        ++i;
      }
      continue;
    }
    out.push_back(c);
    ++i;
  }
  return r;
}

std::string literal(std::string_view s, bool ignore_case) {
  std::string out;
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (ignore_case && ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z'))) {
      const char lo = static_cast<char>(b | 0x20);
      out += '[';
      out += static_cast<char>(lo - 0x20);
      out += lo;
      out += ']';
    } else if (b >= 0x80 || text::is_ascii_alnum(b) || b == '_') {
      out.push_back(c);
    } else if (b < 0x20 || b == 0x7F) {
      static constexpr char hex[] = "0123456789ABCDEF";
      out += "\\x";
      out += hex[b >> 4];
      out += hex[b & 15];
    } else {
      out += '\\';
      out.push_back(c);
    }
  }
  return out;
}

void utf8_sequences(std::uint32_t lo, std::uint32_t hi, std::vector<byte_ranges>& out) {
  if (lo > hi) return;
  // Split where the encoded length changes.
  for (const std::uint32_t max : {0x7Fu, 0x7FFu, 0xFFFFu}) {
    if (lo <= max && hi > max) {
      utf8_sequences(lo, max, out);
      utf8_sequences(max + 1, hi, out);
      return;
    }
  }
  if (hi < 0x80) {
    out.push_back({{static_cast<std::uint8_t>(lo), static_cast<std::uint8_t>(hi)}});
    return;
  }
  // Split until every continuation position spans a full or aligned range, so
  // that the range is the product of one byte range per position.
  for (int i = 1; i < 4; ++i) {
    const std::uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8_sequences(lo, lo | m, out);
        utf8_sequences((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        utf8_sequences(lo, (hi & ~m) - 1, out);
        utf8_sequences(hi & ~m, hi, out);
        return;
      }
    }
  }
  std::string a, b;
  text::encode(lo, a);
  text::encode(hi, b);
  byte_ranges seq;
  for (std::size_t k = 0; k < a.size(); ++k)
    seq.emplace_back(static_cast<std::uint8_t>(a[k]), static_cast<std::uint8_t>(b[k]));
  out.push_back(std::move(seq));
}

namespace {

using range = std::pair<std::uint32_t, std::uint32_t>;
constexpr std::uint32_t max_cp = 0x10FFFF;
constexpr std::size_t unbounded = std::numeric_limits<std::size_t>::max();

struct node {
  // group: a parenthesised sub-pattern (one kid), kept so that its flags can be
  // written back; raw: a flag change such as (?i) that matches nothing.
  enum class kind : std::uint8_t { empty, cls, concat, alt, repeat, group, raw } k = kind::empty;
  std::vector<range> ranges;  // cls
  std::vector<node> kids;     // concat, alt, repeat and group (one kid)
  int min = 0;
  int max = 0;  // -1: unbounded
  bool lazy = false;  // repeat: non-greedy
  std::string src;    // cls, raw: the RE2 text that stands for it; group: its opening, e.g. "(?i:"
};

// RE2 text for one code point, safe anywhere outside brackets.
std::string escape_cp(std::uint32_t cp) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string h;
  do {
    h.insert(h.begin(), hex[cp & 15]);
    cp >>= 4;
  } while (cp != 0);
  return "\\x{" + h + "}";
}

void normalize(std::vector<range>& rs) {
  std::sort(rs.begin(), rs.end());
  std::vector<range> merged;
  for (const auto& r : rs) {
    if (!merged.empty() && r.first <= merged.back().second + 1)
      merged.back().second = std::max(merged.back().second, r.second);
    else
      merged.push_back(r);
  }
  rs = std::move(merged);
}

std::vector<range> complement(const std::vector<range>& rs) {
  std::vector<range> out;
  std::uint32_t next = 0;
  for (const auto& r : rs) {
    if (r.first > next) out.emplace_back(next, r.first - 1);
    next = r.second + 1;
  }
  if (next <= max_cp) out.emplace_back(next, max_cp);
  return out;
}

// Code points without case: folding them is the identity, so (?i) may keep them
// exact. CJK, Hangul, kana, CJK punctuation, and full-width forms except letters.
bool caseless(const range& r) {
  static constexpr range blocks[] = {{0x2E80, 0x9FFF}, {0xAC00, 0xD7AF}, {0xF900, 0xFAFF},
                                     {0xFF00, 0xFF20}, {0xFF3B, 0xFF40}, {0xFF5B, 0xFFEF},
                                     {0x20000, 0x3FFFF}};
  for (const auto& b : blocks)
    if (r.first >= b.first && r.second <= b.second) return true;
  return false;
}

// Adds what (?i) makes a class match. ASCII letters fold among themselves plus
// K -> U+212A (Kelvin sign) and S -> U+017F (long s), as Unicode simple case
// folding (which RE2 follows) says; cased non-ASCII falls back to everything.
void fold(std::vector<range>& rs) {
  std::vector<range> add;
  bool wide = false;
  for (const auto& r : rs) {
    for (std::uint32_t c = r.first; c <= r.second && c < 0x80; ++c) {
      if (c >= 'a' && c <= 'z') add.emplace_back(c - 32, c - 32);
      if (c >= 'A' && c <= 'Z') add.emplace_back(c + 32, c + 32);
      if (c == 'k' || c == 'K') add.emplace_back(0x212A, 0x212A);
      if (c == 's' || c == 'S') add.emplace_back(0x17F, 0x17F);
    }
    if (r.second >= 0x80) {
      const range hi{std::max<std::uint32_t>(r.first, 0x80), r.second};
      if (!caseless(hi)) wide = true;
    }
  }
  if (wide) {
    add.emplace_back(0x80, max_cp);
    add.emplace_back('A', 'Z');
    add.emplace_back('a', 'z');
  }
  rs.insert(rs.end(), add.begin(), add.end());
  normalize(rs);
}

class parser {
 public:
  explicit parser(std::string_view p) : p_(p) {}

  bool parse(node& out) {
    out = parse_alt();
    if (!error_.empty()) return false;
    if (i_ != p_.size()) return fail("unexpected ')'");
    return true;
  }
  const std::string& error() const { return error_; }
  const std::string& code() const { return code_; }

 private:
  struct flags {
    bool fold = false;
    bool dot_nl = false;
  };

  bool fail(std::string msg, std::string code = "E_PATTERN_UNSUPPORTED") {
    if (error_.empty()) {
      error_ = std::move(msg);
      code_ = std::move(code);
    }
    i_ = p_.size();
    return false;
  }
  bool at_end() const { return i_ >= p_.size(); }
  char peek() const { return at_end() ? '\0' : p_[i_]; }

  node parse_alt() {
    std::vector<node> alts;
    alts.push_back(parse_concat());
    while (!at_end() && peek() == '|') {
      ++i_;
      alts.push_back(parse_concat());
    }
    if (alts.size() == 1) return std::move(alts[0]);
    node n;
    n.k = node::kind::alt;
    n.kids = std::move(alts);
    return n;
  }

  node parse_concat() {
    node n;
    n.k = node::kind::concat;
    const flags saved = flags_;
    while (!at_end() && peek() != '|' && peek() != ')') {
      const std::size_t at = i_;
      if (p_.substr(i_, 2) == "(?" && parse_flag_only()) {
        node raw;
        raw.k = node::kind::raw;
        raw.src = std::string(p_.substr(at, i_ - at));
        n.kids.push_back(std::move(raw));
        continue;
      }
      node atom = parse_atom();
      if (!error_.empty()) return n;
      parse_quantifiers(atom);
      n.kids.push_back(std::move(atom));
    }
    // A flag group like (?i) lasts to the end of the enclosing group; the caller
    // of an alternation branch restores at ')'. Keep it across '|' as RE2 does.
    if (at_end() || peek() == ')') flags_ = saved;
    return n;
  }

  // (?flags) without a body: changes the flags in place.
  bool parse_flag_only() {
    std::size_t j = i_ + 2;
    flags f = flags_;
    bool neg = false;
    for (; j < p_.size(); ++j) {
      const char c = p_[j];
      if (c == ')') {
        flags_ = f;
        i_ = j + 1;
        return true;
      }
      if (c == ':') return false;
      if (c == '-') neg = true;
      else if (c == 'i') f.fold = !neg;
      else if (c == 's') f.dot_nl = !neg;
      else if (c == 'm' || c == 'U') continue;
      else return false;
    }
    return false;
  }

  void parse_quantifiers(node& atom) {
    while (!at_end()) {
      int lo = 0, hi = 0;
      const char c = peek();
      if (c == '*') lo = 0, hi = -1, ++i_;
      else if (c == '+') lo = 1, hi = -1, ++i_;
      else if (c == '?') lo = 0, hi = 1, ++i_;
      else if (c == '{') {
        if (!parse_counted(lo, hi)) return;
      } else {
        return;
      }
      bool lazy = false;
      if (!at_end() && peek() == '?') ++i_, lazy = true;  // non-greedy: same language
      node r;
      r.k = node::kind::repeat;
      r.min = lo;
      r.max = hi;
      r.lazy = lazy;
      r.kids.push_back(std::move(atom));
      atom = std::move(r);
    }
  }

  // {n}, {n,}, {n,m}; anything else is a literal '{' (RE2 reads it so).
  bool parse_counted(int& lo, int& hi) {
    std::size_t j = i_ + 1;
    auto num = [&](int& v) {
      const std::size_t s = j;
      v = 0;
      while (j < p_.size() && p_[j] >= '0' && p_[j] <= '9' && j - s < 5) v = v * 10 + (p_[j++] - '0');
      return j > s;
    };
    if (!num(lo)) return false;
    if (j < p_.size() && p_[j] == '}') {
      hi = lo;
    } else if (j < p_.size() && p_[j] == ',') {
      ++j;
      if (j < p_.size() && p_[j] == '}') hi = -1;
      else if (!num(hi)) return false;
      if (j >= p_.size() || p_[j] != '}') return false;
    } else {
      return false;
    }
    i_ = j + 1;
    return true;
  }

  node cls(std::vector<range> rs) {
    normalize(rs);
    if (flags_.fold) fold(rs);
    node n;
    n.k = node::kind::cls;
    n.ranges = std::move(rs);
    return n;
  }

  node parse_atom() {
    const std::size_t at = i_;
    node n = parse_atom_at();
    if (n.k == node::kind::cls && n.src.empty()) n.src = std::string(p_.substr(at, i_ - at));
    return n;
  }

  node parse_atom_at() {
    const char c = peek();
    if (c == '(') return parse_group();
    if (c == '[') return parse_class();
    if (c == '.') {
      ++i_;
      std::vector<range> rs = {{0, max_cp}};
      if (!flags_.dot_nl) rs = {{0, '\n' - 1}, {'\n' + 1, max_cp}};
      return cls(rs);
    }
    if (c == '^' || c == '$') {
      fail("anchors (^, $) are not supported in detector patterns");
      return {};
    }
    if (c == '\\') {
      std::vector<range> rs;
      if (p_.substr(i_, 2) == "\\Q") return parse_quoted();
      if (!parse_escape(rs, false)) return {};
      return cls(std::move(rs));
    }
    if (c == '{' || c == '}' || c == ']') {
      ++i_;
      node n = cls({{static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(c)}});
      n.src = escape_cp(static_cast<std::uint32_t>(c));
      return n;
    }
    std::size_t len = 1;
    const std::uint32_t cp = text::decode(p_, i_, len);
    i_ += len;
    node n = cls({{cp, cp}});
    n.src = escape_cp(cp);
    return n;
  }

  node parse_quoted() {
    i_ += 2;
    node n;
    n.k = node::kind::concat;
    while (!at_end() && p_.substr(i_, 2) != "\\E") {
      std::size_t len = 1;
      const std::uint32_t cp = text::decode(p_, i_, len);
      i_ += len;
      n.kids.push_back(cls({{cp, cp}}));
      n.kids.back().src = escape_cp(cp);
    }
    if (!at_end()) i_ += 2;
    return n;
  }

  node parse_group() {
    const std::size_t open_at = i_;
    ++i_;  // (
    const flags saved = flags_;
    std::string opening = "(?:";  // captures and names do not matter here
    if (peek() == '?') {
      ++i_;
      if (peek() == 'P' || peek() == '<') {
        const auto close = p_.find('>', i_);
        if (close == std::string_view::npos) {
          fail("bad group name");
          return {};
        }
        i_ = close + 1;
      } else {
        bool neg = false;
        while (!at_end() && peek() != ':') {
          const char f = p_[i_++];
          if (f == '-') neg = true;
          else if (f == 'i') flags_.fold = !neg;
          else if (f == 's') flags_.dot_nl = !neg;
          else if (f == 'm' || f == 'U') continue;
          else {
            fail(std::string("unsupported group flag '") + f + "'");
            return {};
          }
        }
        ++i_;  // :
        opening = std::string(p_.substr(open_at, i_ - open_at));
      }
    }
    node body = parse_alt();
    flags_ = saved;
    if (at_end() || peek() != ')') {
      fail("missing ')'");
      return {};
    }
    ++i_;
    node g;
    g.k = node::kind::group;
    g.src = std::move(opening);
    g.kids.push_back(std::move(body));
    return g;
  }

  static void perl_class(char c, std::vector<range>& rs) {
    switch (c) {
      case 'd': rs.emplace_back('0', '9'); break;
      case 's':
        rs.emplace_back('\t', '\n');
        rs.emplace_back('\f', '\r');
        rs.emplace_back(' ', ' ');
        break;
      case 'w':
        rs.emplace_back('0', '9');
        rs.emplace_back('A', 'Z');
        rs.emplace_back('_', '_');
        rs.emplace_back('a', 'z');
        break;
      default: break;
    }
  }

  // One escape at i_ ('\\'). Appends its code point ranges.
  bool parse_escape(std::vector<range>& rs, bool in_class) {
    if (i_ + 1 >= p_.size()) return fail("trailing backslash");
    const char c = p_[i_ + 1];
    i_ += 2;
    switch (c) {
      case 'd': case 's': case 'w': perl_class(c, rs); return true;
      case 'D': case 'S': case 'W': {
        std::vector<range> pos;
        perl_class(static_cast<char>(c + 32), pos);
        normalize(pos);
        auto neg = complement(pos);
        rs.insert(rs.end(), neg.begin(), neg.end());
        return true;
      }
      case 'p': case 'P':
        // Unicode classes: anything (a superset). Skip the name.
        if (peek() == '{') {
          const auto close = p_.find('}', i_);
          i_ = close == std::string_view::npos ? p_.size() : close + 1;
        } else if (!at_end()) {
          ++i_;
        }
        rs.emplace_back(0, max_cp);
        return true;
      case 'a': rs.emplace_back(7, 7); return true;
      case 'f': rs.emplace_back('\f', '\f'); return true;
      case 't': rs.emplace_back('\t', '\t'); return true;
      case 'n': rs.emplace_back('\n', '\n'); return true;
      case 'r': rs.emplace_back('\r', '\r'); return true;
      case 'v': rs.emplace_back('\v', '\v'); return true;
      case 'x': {
        std::uint32_t v = 0;
        auto hexval = [](char h) -> int {
          if (h >= '0' && h <= '9') return h - '0';
          if (h >= 'a' && h <= 'f') return h - 'a' + 10;
          if (h >= 'A' && h <= 'F') return h - 'A' + 10;
          return -1;
        };
        if (peek() == '{') {
          ++i_;
          while (!at_end() && peek() != '}') {
            const int h = hexval(p_[i_++]);
            if (h < 0) return fail("bad \\x{...} escape");
            v = v * 16 + static_cast<std::uint32_t>(h);
            if (v > max_cp) return fail("bad \\x{...} escape");
          }
          ++i_;
        } else {
          for (int k = 0; k < 2; ++k) {
            const int h = at_end() ? -1 : hexval(p_[i_++]);
            if (h < 0) return fail("bad \\x escape");
            v = v * 16 + static_cast<std::uint32_t>(h);
          }
        }
        rs.emplace_back(v, v);
        return true;
      }
      case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
        std::uint32_t v = static_cast<std::uint32_t>(c - '0');
        for (int k = 0; k < 2 && !at_end() && peek() >= '0' && peek() <= '7'; ++k)
          v = v * 8 + static_cast<std::uint32_t>(p_[i_++] - '0');
        rs.emplace_back(v, v);
        return true;
      }
      case 'b': case 'B': case 'A': case 'z': case 'Z': case 'G':
        return fail(std::string("\\") + c +
                    " (anchor or word boundary) is not supported in detector patterns; Customs "
                    "applies its own boundary rule");
      case 'C': return fail("\\C (any byte) is not supported in detector patterns");
      default: break;
    }
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x80 && !text::is_ascii_alnum(b)) {
      rs.emplace_back(b, b);
      return true;
    }
    (void)in_class;
    return fail(std::string("unsupported escape \\") + c);
  }

  static bool posix_class(std::string_view name, std::vector<range>& rs) {
    struct entry {
      std::string_view name;
      std::vector<range> rs;
    };
    static const std::vector<entry> table = {
        {"alnum", {{'0', '9'}, {'A', 'Z'}, {'a', 'z'}}},
        {"alpha", {{'A', 'Z'}, {'a', 'z'}}},
        {"ascii", {{0, 0x7F}}},
        {"blank", {{'\t', '\t'}, {' ', ' '}}},
        {"cntrl", {{0, 0x1F}, {0x7F, 0x7F}}},
        {"digit", {{'0', '9'}}},
        {"graph", {{'!', '~'}}},
        {"lower", {{'a', 'z'}}},
        {"print", {{' ', '~'}}},
        {"punct", {{'!', '/'}, {':', '@'}, {'[', '`'}, {'{', '~'}}},
        {"space", {{'\t', '\r'}, {' ', ' '}}},
        {"upper", {{'A', 'Z'}}},
        {"word", {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}},
        {"xdigit", {{'0', '9'}, {'A', 'F'}, {'a', 'f'}}},
    };
    bool neg = false;
    if (!name.empty() && name[0] == '^') neg = true, name.remove_prefix(1);
    for (const auto& e : table) {
      if (e.name != name) continue;
      if (!neg) {
        rs.insert(rs.end(), e.rs.begin(), e.rs.end());
      } else {
        auto c = complement(e.rs);
        rs.insert(rs.end(), c.begin(), c.end());
      }
      return true;
    }
    return false;
  }

  // One class member at i_ (a character or escape), for ranges. Returns false and
  // fills rs when the member is itself a set (\d, [:alpha:]).
  bool class_char(std::uint32_t& cp, std::vector<range>& rs, bool& set) {
    set = false;
    if (peek() == '\\') {
      std::vector<range> one;
      if (!parse_escape(one, true)) return false;
      if (one.size() == 1 && one[0].first == one[0].second) {
        cp = one[0].first;
        return true;
      }
      rs.insert(rs.end(), one.begin(), one.end());
      set = true;
      return true;
    }
    std::size_t len = 1;
    cp = text::decode(p_, i_, len);
    i_ += len;
    return true;
  }

  node parse_class() {
    ++i_;  // [
    bool neg = false;
    if (peek() == '^') neg = true, ++i_;
    std::vector<range> rs;
    bool first = true;
    while (!at_end() && (peek() != ']' || first)) {
      first = false;
      if (p_.substr(i_, 2) == "[:") {
        const auto close = p_.find(":]", i_ + 2);
        if (close != std::string_view::npos) {
          if (!posix_class(p_.substr(i_ + 2, close - i_ - 2), rs)) {
            fail("unknown POSIX class");
            return {};
          }
          i_ = close + 2;
          continue;
        }
      }
      std::uint32_t lo = 0;
      bool set = false;
      if (!class_char(lo, rs, set)) return {};
      if (set) continue;
      if (peek() == '-' && i_ + 1 < p_.size() && p_[i_ + 1] != ']') {
        ++i_;
        std::uint32_t hi = 0;
        if (!class_char(hi, rs, set)) return {};
        if (set || hi < lo) {
          fail("bad character class range");
          return {};
        }
        rs.emplace_back(lo, hi);
      } else {
        rs.emplace_back(lo, lo);
      }
    }
    if (at_end()) {
      fail("missing ']'");
      return {};
    }
    ++i_;  // ]
    normalize(rs);
    if (flags_.fold) fold(rs);
    if (neg) rs = complement(rs);
    node n;
    n.k = node::kind::cls;
    n.ranges = std::move(rs);
    return n;
  }

  std::string_view p_;
  std::size_t i_ = 0;
  flags flags_;
  std::string error_;
  std::string code_;
};

std::size_t max_utf8_len(const std::vector<range>& rs) {
  if (rs.empty()) return 0;
  const std::uint32_t hi = rs.back().second;
  return hi < 0x80 ? 1 : hi < 0x800 ? 2 : hi < 0x10000 ? 3 : 4;
}
std::size_t min_utf8_len(const std::vector<range>& rs) {
  if (rs.empty()) return 0;
  const std::uint32_t lo = rs.front().first;
  return lo < 0x80 ? 1 : lo < 0x800 ? 2 : lo < 0x10000 ? 3 : 4;
}

std::size_t sat_add(std::size_t a, std::size_t b) { return (a == unbounded || b == unbounded) ? unbounded : a + b; }
std::size_t sat_mul(std::size_t a, std::size_t n) {
  if (n == 0) return 0;
  if (a == unbounded || a > unbounded / n) return unbounded;
  return a * n;
}

void lengths(const node& n, std::size_t& lo, std::size_t& hi) {
  switch (n.k) {
    case node::kind::empty: case node::kind::raw: lo = hi = 0; return;
    case node::kind::group: lengths(n.kids[0], lo, hi); return;
    case node::kind::cls:
      // An empty class matches nothing; treat it as length 0 both ways (it can
      // only make its branch impossible).
      lo = min_utf8_len(n.ranges);
      hi = max_utf8_len(n.ranges);
      return;
    case node::kind::concat:
      lo = hi = 0;
      for (const auto& k : n.kids) {
        std::size_t a = 0, b = 0;
        lengths(k, a, b);
        lo = sat_add(lo, a);
        hi = sat_add(hi, b);
      }
      return;
    case node::kind::alt:
      lo = unbounded;
      hi = 0;
      for (const auto& k : n.kids) {
        std::size_t a = 0, b = 0;
        lengths(k, a, b);
        lo = std::min(lo, a);
        hi = std::max(hi, b);
      }
      if (n.kids.empty()) lo = 0;
      return;
    case node::kind::repeat: {
      std::size_t a = 0, b = 0;
      lengths(n.kids[0], a, b);
      lo = sat_mul(a, static_cast<std::size_t>(n.min));
      hi = n.max < 0 ? (b == 0 ? 0 : unbounded) : sat_mul(b, static_cast<std::size_t>(n.max));
      return;
    }
  }
}

class builder {
 public:
  builder(nfa& out, std::size_t limit, int loop_over)
      : out_(out), limit_(out.states.size() + limit), loop_over_(loop_over) {}

  std::uint32_t add() {
    if (out_.states.size() >= limit_) {
      over_ = true;
      return 0;
    }
    out_.states.emplace_back();
    return static_cast<std::uint32_t>(out_.states.size() - 1);
  }
  bool over() const { return over_; }

  // Builds n between s and e (both existing states).
  void build(const node& n, std::uint32_t s, std::uint32_t e) {
    if (over_) return;
    switch (n.k) {
      case node::kind::empty: case node::kind::raw: out_.states[s].eps.push_back(e); return;
      case node::kind::group: build(n.kids[0], s, e); return;
      case node::kind::cls: {
        std::vector<byte_ranges> seqs;
        for (const auto& r : n.ranges) utf8_sequences(r.first, r.second, seqs);
        for (const auto& seq : seqs) {
          std::uint32_t from = s;
          for (std::size_t k = 0; k < seq.size(); ++k) {
            const std::uint32_t to = k + 1 == seq.size() ? e : add();
            if (over_) return;
            out_.states[from].edges.push_back({seq[k].first, seq[k].second, to});
            from = to;
          }
        }
        return;
      }
      case node::kind::concat: {
        std::uint32_t cur = s;
        for (std::size_t k = 0; k < n.kids.size(); ++k) {
          const std::uint32_t next = k + 1 == n.kids.size() ? e : add();
          if (over_) return;
          build(n.kids[k], cur, next);
          cur = next;
        }
        if (n.kids.empty()) out_.states[s].eps.push_back(e);
        return;
      }
      case node::kind::alt:
        for (const auto& k : n.kids) {
          const std::uint32_t ks = add();
          if (over_) return;
          out_.states[s].eps.push_back(ks);
          build(k, ks, e);
        }
        return;
      case node::kind::repeat: {
        if (loop_over_ > 0 && n.max > loop_over_) {
          // A superset: min mandatory copies, then any number more (a loop).
          std::uint32_t cur = s;
          for (int k = 0; k < n.min; ++k) {
            const std::uint32_t next = add();
            if (over_) return;
            build(n.kids[0], cur, next);
            cur = next;
          }
          const std::uint32_t back = add();
          if (over_) return;
          build(n.kids[0], cur, back);
          out_.states[back].eps.push_back(cur);
          out_.states[cur].eps.push_back(e);
          return;
        }
        // min mandatory copies, then (max - min) copies each of which may end the
        // repetition.
        std::uint32_t cur = s;
        const int total = n.max;
        for (int k = 0; k < total; ++k) {
          const std::uint32_t next = k + 1 == total ? e : add();
          if (over_) return;
          if (k >= n.min) out_.states[cur].eps.push_back(e);
          build(n.kids[0], cur, next);
          cur = next;
        }
        if (total == 0) out_.states[s].eps.push_back(e);
        return;
      }
    }
  }

 private:
  nfa& out_;
  std::size_t limit_;
  int loop_over_;
  bool over_ = false;
};

// --- Separators between digits (loosen) ---------------------------------

// A class of digits (and the check character X) only: the atoms between which
// a separator may stand.
bool digitish(const node& n) {
  if (n.k != node::kind::cls || n.ranges.empty()) return false;
  bool digit = false;
  for (const auto& r : n.ranges) {
    const bool ascii_digit = r.first >= '0' && r.second <= '9';
    const bool wide_digit = r.first >= 0xFF10 && r.second <= 0xFF19;
    const bool check_x = (r.first == r.second) && (r.first == 'X' || r.first == 'x' || r.first == 0xFF38 || r.first == 0xFF58);
    if (!ascii_digit && !wide_digit && !check_x) return false;
    digit = digit || ascii_digit || wide_digit;
  }
  return digit;
}

bool nullable(const node& n) {
  switch (n.k) {
    case node::kind::empty: case node::kind::raw: return true;
    case node::kind::cls: return false;
    case node::kind::group: return nullable(n.kids[0]);
    case node::kind::concat: return std::all_of(n.kids.begin(), n.kids.end(), nullable);
    case node::kind::alt: return n.kids.empty() || std::any_of(n.kids.begin(), n.kids.end(), nullable);
    case node::kind::repeat: return n.min == 0 || n.max == 0 || nullable(n.kids[0]);
  }
  return true;
}

// Whether n can start (first = true) or end with a digit atom.
bool edge_digit(const node& n, bool first) {
  switch (n.k) {
    case node::kind::empty: case node::kind::raw: return false;
    case node::kind::cls: return digitish(n);
    case node::kind::group: return edge_digit(n.kids[0], first);
    case node::kind::alt: return std::any_of(n.kids.begin(), n.kids.end(), [&](const node& k) { return edge_digit(k, first); });
    case node::kind::repeat: return n.max != 0 && edge_digit(n.kids[0], first);
    case node::kind::concat: {
      // The first (last) part decides; an optional part there, such as an
      // author's {sep}?, means a separator may already stand at this edge.
      const node* edge = nullptr;
      for (std::size_t i = 0; i < n.kids.size(); ++i) {
        const node& k = first ? n.kids[i] : n.kids[n.kids.size() - 1 - i];
        if (k.k == node::kind::raw) continue;
        edge = &k;
        break;
      }
      return edge != nullptr && edge_digit(*edge, first);
    }
  }
  return false;
}

node optional_separator() {
  node sep;
  sep.k = node::kind::cls;
  sep.src = std::string(separator_re2);
  node r;
  r.k = node::kind::repeat;
  r.min = 0;
  r.max = 1;
  r.kids.push_back(std::move(sep));
  return r;
}

node loosened(const node& n) {
  switch (n.k) {
    case node::kind::empty: case node::kind::raw: case node::kind::cls: return n;
    case node::kind::group: case node::kind::alt: {
      node out = n;
      for (auto& k : out.kids) k = loosened(k);
      return out;
    }
    case node::kind::repeat: {
      node kid = loosened(n.kids[0]);
      if (n.max == 0 || n.max == 1 || !edge_digit(n.kids[0], true) || !edge_digit(n.kids[0], false)) {
        node out = n;
        out.kids[0] = std::move(kid);
        return out;
      }
      // x{a,b} -> x(?:S?x){a-1,b-1}, made optional as a whole when a == 0.
      node step;
      step.k = node::kind::concat;
      step.kids.push_back(optional_separator());
      step.kids.push_back(kid);
      node more;
      more.k = node::kind::repeat;
      more.min = std::max(n.min - 1, 0);
      more.max = n.max < 0 ? -1 : n.max - 1;
      more.lazy = n.lazy;
      more.kids.push_back(std::move(step));
      node seq;
      seq.k = node::kind::concat;
      seq.kids.push_back(std::move(kid));
      seq.kids.push_back(std::move(more));
      if (n.min > 0) return seq;
      node opt;
      opt.k = node::kind::repeat;
      opt.min = 0;
      opt.max = 1;
      opt.lazy = n.lazy;
      opt.kids.push_back(std::move(seq));
      return opt;
    }
    case node::kind::concat: {
      node out;
      out.k = node::kind::concat;
      // Whether what is already in `out` can end with a digit (looking back
      // through parts that may match nothing, such as an optional {sep}).
      // A separator goes only between two parts that are both there: after a
      // part that must match something (so that a match never starts with it)
      // and before one that must (so that it never ends with it).
      bool digit_before = false;
      bool required_before = false;
      for (const auto& k : n.kids) {
        node lk = loosened(k);
        if (k.k == node::kind::raw) {
          out.kids.push_back(std::move(lk));
          continue;
        }
        if (digit_before && required_before && !nullable(k) && edge_digit(k, true))
          out.kids.push_back(optional_separator());
        digit_before = edge_digit(k, false);
        if (!nullable(k)) required_before = true;
        out.kids.push_back(std::move(lk));
      }
      return out;
    }
  }
  return n;
}

// loop_over > 0: repetitions of more copies print as {min,} (a superset).
void print(const node& n, std::string& out, int loop_over = 0) {
  switch (n.k) {
    case node::kind::empty: return;
    case node::kind::cls: case node::kind::raw: out += n.src; return;
    case node::kind::group:
      out += n.src;
      print(n.kids[0], out, loop_over);
      out += ')';
      return;
    case node::kind::concat:
      for (const auto& k : n.kids) print(k, out, loop_over);
      return;
    case node::kind::alt:
      out += "(?:";
      for (std::size_t i = 0; i < n.kids.size(); ++i) {
        if (i) out += '|';
        print(n.kids[i], out, loop_over);
      }
      out += ')';
      return;
    case node::kind::repeat:
      out += "(?:";
      print(n.kids[0], out, loop_over);
      out += "){" + std::to_string(n.min) + ",";
      if (n.max >= 0 && !(loop_over > 0 && n.max > loop_over)) out += std::to_string(n.max);
      out += '}';
      if (n.lazy) out += '?';
      return;
  }
}

}  // namespace

rewrite_result loosen(std::string_view re2_pattern) {
  rewrite_result r;
  node root;
  parser p(re2_pattern);
  if (!p.parse(root)) {
    r.error = p.error();
    return r;
  }
  print(loosened(root), r.re2);
  return r;
}

compiled compile(std::string_view re2_pattern, std::int32_t accept_id, nfa& out, std::size_t max_states,
                 int loop_over) {
  compiled c;
  node root;
  parser p(re2_pattern);
  if (!p.parse(root)) {
    c.code = p.code();
    c.error = p.error();
    return c;
  }
  lengths(root, c.min_len, c.max_len);
  if (c.max_len == unbounded) {
    c.code = "E_PATTERN_UNBOUNDED";
    c.error = "the pattern has no longest match (*, + or {n,}); bound every repetition, e.g. {1,64}";
    return c;
  }
  if (c.min_len == 0) {
    c.code = "E_PATTERN_EMPTY";
    c.error = "the pattern can match the empty string";
    return c;
  }
  const std::size_t before = out.states.size();
  builder b(out, max_states, loop_over);
  const std::uint32_t s = b.add();
  const std::uint32_t e = b.add();
  if (!b.over()) b.build(root, s, e);
  if (b.over()) {
    out.states.resize(before);
    c.code = "E_PATTERN_TOO_COMPLEX";
    c.error = "the pattern expands to more than " + std::to_string(max_states) +
              " automaton states; use smaller repetition counts";
    return c;
  }
  out.states[e].accept = accept_id;
  c.start = s;
  return c;
}

}  // namespace customs::policy::pattern
