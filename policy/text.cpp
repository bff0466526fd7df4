#include "policy/text.hpp"

namespace customs::policy::text {

std::uint32_t decode(std::string_view s, std::size_t i, std::size_t& len) noexcept {
  len = 1;
  if (i >= s.size()) return 0xFFFD;
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return b0;
  const std::size_t n = sequence_length(b0);
  if (n == 1 || i + n > s.size()) return 0xFFFD;
  std::uint32_t cp = b0 & (0xFF >> (n + 1));
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (!is_continuation(b)) return 0xFFFD;
    cp = (cp << 6) | (b & 0x3F);
  }
  // Overlong forms, surrogates and out-of-range values are invalid.
  static constexpr std::uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_for_len[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0xFFFD;
  len = n;
  return cp;
}

void encode(std::uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char word_to_ascii_upper(std::uint32_t cp) noexcept {
  if (cp >= '0' && cp <= '9') return static_cast<char>(cp);
  if (cp >= 'A' && cp <= 'Z') return static_cast<char>(cp);
  if (cp >= 'a' && cp <= 'z') return static_cast<char>(cp - 'a' + 'A');
  if (cp >= 0xFF10 && cp <= 0xFF19) return static_cast<char>('0' + (cp - 0xFF10));
  if (cp >= 0xFF21 && cp <= 0xFF3A) return static_cast<char>('A' + (cp - 0xFF21));
  if (cp >= 0xFF41 && cp <= 0xFF5A) return static_cast<char>('A' + (cp - 0xFF41));
  return 0;
}

std::string alnum_upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 1;
    const std::uint32_t cp = decode(s, i, len);
    if (const char c = word_to_ascii_upper(cp)) out.push_back(c);
    i += len;
  }
  return out;
}

bool is_number_separator(std::uint32_t cp) noexcept {
  switch (cp) {
    case ' ': case '\t': case '\n': case '\v': case '\f': case '\r': case '/': case '_': case '-': case '.':
    case 0x85: case 0xA0: case 0xB7: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x2212:
    case 0x2E3A: case 0x2E3B: case 0x3000: case 0x3001: case 0x30FB:
    case 0xFF0D: case 0xFF0E: case 0xFF0F: case 0xFF3F: case 0xFF65:
      return true;
    default:
      // En quad to hair space (U+2000-200A), and hyphen to horizontal bar
      // (U+2010-2015: dashes of every length).
      return (cp >= 0x2000 && cp <= 0x200A) || (cp >= 0x2010 && cp <= 0x2015);
  }
}

namespace {
bool is_digit_cp(std::uint32_t cp) noexcept { return (cp >= '0' && cp <= '9') || (cp >= 0xFF10 && cp <= 0xFF19); }
}  // namespace

bool digit_starts_at(std::string_view s, std::size_t i) noexcept {
  if (i >= s.size()) return false;
  std::size_t len = 1;
  return is_digit_cp(decode(s, i, len));
}

namespace {
// The code point that ends right before i (and its start), or 0xFFFD.
std::uint32_t last_before(std::string_view s, std::size_t i, std::size_t& start) noexcept {
  start = i;
  if (i == 0 || i > s.size()) return 0xFFFD;
  std::size_t b = i - 1;
  while (b > 0 && i - b < 4 && is_continuation(static_cast<unsigned char>(s[b]))) --b;
  std::size_t len = 1;
  const std::uint32_t cp = decode(s, b, len);
  if (b + len != i) return 0xFFFD;
  start = b;
  return cp;
}
}  // namespace

bool digit_ends_before(std::string_view s, std::size_t i) noexcept {
  std::size_t b = 0;
  return is_digit_cp(last_before(s, i, b));
}

bool separator_after_digit(std::string_view s, std::size_t i) noexcept {
  std::size_t b = 0;
  const std::uint32_t sep = last_before(s, i, b);
  if (!is_number_separator(sep)) return false;
  // One separator as pattern::separator_re2 has it: CR LF, two spaces or tabs
  // and two hyphens are one too.
  if (b > 0) {
    const char prev = s[b - 1];
    if (sep == '\n' && prev == '\r') --b;
    else if ((sep == ' ' || sep == '\t') && (prev == ' ' || prev == '\t')) --b;
    else if (sep == '-' && prev == '-') --b;
  }
  return digit_ends_before(s, b);
}

namespace {
bool is_mask_cp(std::uint32_t cp) noexcept {
  return cp == '*' || cp == '#' || cp == 'X' || cp == 'x' || cp == 0x2022 || cp == 0x25CF;
}
bool is_ascii_letter(std::uint32_t cp) noexcept { return (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z'); }
}  // namespace

bool after_mask(std::string_view s, std::size_t i) noexcept {
  std::size_t b = 0;
  std::uint32_t cp = last_before(s, i, b);
  if (is_number_separator(cp)) cp = last_before(s, b, b);
  if (!is_mask_cp(cp)) return false;
  const std::uint32_t mask = cp;
  std::size_t run = 0;
  while (cp == mask && run < 3) {
    ++run;
    cp = last_before(s, b, b);
  }
  if (run < 2) return false;
  // "XX" ending a word ("MAXX-") is no mask; three or more are one anyway.
  return run == 3 || !(is_ascii_letter(mask) && is_ascii_letter(cp));
}

bool has_line_break(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\n' || c == '\r') return true;
    if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x85) return true;
    if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(s[i + 2]) == 0xA8 || static_cast<unsigned char>(s[i + 2]) == 0xA9))
      return true;
  }
  return false;
}

bool counts_by_one(std::string_view s) noexcept {
  constexpr std::size_t min_numbers = 5;
  std::size_t numbers = 0;
  long long prev = 0;
  int step = 0;  // +1 or -1 once two numbers are read
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 1;
    if (!is_digit_cp(decode(s, i, len))) {
      i += len;
      continue;
    }
    long long v = 0;
    std::size_t n = 0;
    for (; i < s.size(); i += len, ++n) {
      const std::uint32_t cp = decode(s, i, len);
      if (!is_digit_cp(cp)) break;
      if (n == 9) return false;  // a long run: an identifier's group, no count
      v = v * 10 + static_cast<long long>(cp >= 0xFF10 ? cp - 0xFF10 : cp - '0');
    }
    if (numbers == 1) {
      if (v != prev + 1 && v != prev - 1) return false;
      step = v == prev + 1 ? 1 : -1;
    } else if (numbers > 1 && v != prev + step) {
      return false;
    }
    prev = v;
    ++numbers;
  }
  return numbers >= min_numbers;
}

bool separated_digit_by_digit(std::string_view s) noexcept {
  std::size_t digits = 0;
  bool sep_since_digit = false;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 1;
    const std::uint32_t cp = decode(s, i, len);
    if (is_digit_cp(cp)) {
      if (digits > 0 && !sep_since_digit) return false;
      ++digits;
      sep_since_digit = false;
    } else if (digits > 0 && is_number_separator(cp)) {
      sep_since_digit = true;
    }
    i += len;
  }
  return digits >= 2;
}

bool uniform_separators(std::string_view s) noexcept {
  std::string_view first;
  bool have_first = false;
  bool after_digit = false;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 1;
    const std::uint32_t cp = decode(s, i, len);
    if (after_digit && is_number_separator(cp)) {
      // The run of separators that follows a digit; it counts if a digit ends it.
      const std::size_t from = i;
      std::size_t j = i + len;
      while (j < s.size()) {
        std::size_t l2 = 1;
        if (!is_number_separator(decode(s, j, l2))) break;
        j += l2;
      }
      std::size_t l3 = 1;
      if (j < s.size() && is_digit_cp(decode(s, j, l3))) {
        const std::string_view run = s.substr(from, j - from);
        if (!have_first) first = run, have_first = true;
        else if (run != first) return false;
      }
      after_digit = false;
      i = j;
      continue;
    }
    after_digit = is_digit_cp(cp);
    i += len;
  }
  return true;
}

std::size_t count_chars(std::string_view s) noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = 1;
    (void)decode(s, i, len);
    i += len;
    ++n;
  }
  return n;
}

namespace {
constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
}  // namespace

bool contains_word_start_ci(std::string_view hay, std::string_view needle) noexcept {
  if (needle.empty()) return true;
  if (needle.size() > hay.size()) return false;
  const auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  const bool bounded = letter(needle.front());
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    // A capital after a lower-case letter starts a word too ("customerSsn").
    if (bounded && i > 0 && letter(hay[i - 1]) &&
        !(hay[i - 1] >= 'a' && hay[i - 1] <= 'z' && hay[i] >= 'A' && hay[i] <= 'Z'))
      continue;
    std::size_t k = 0;
    while (k < needle.size() && lower(hay[i + k]) == lower(needle[k])) ++k;
    if (k == needle.size()) return true;
  }
  return false;
}

}  // namespace customs::policy::text
