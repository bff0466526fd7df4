#include "policy/checksum.hpp"

#include <algorithm>

namespace customs::policy {

namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

bool all_digits(std::string_view s) noexcept { return std::all_of(s.begin(), s.end(), is_digit); }

int number(std::string_view s) noexcept {
  int n = 0;
  for (const char c : s) n = n * 10 + (c - '0');
  return n;
}

// Verhoeff: the multiplication table of the dihedral group D5 and the
// permutation applied to a digit at position i (from the right), p^(i mod 8)
// with p = (0 1 5 8 9 4 2 7)(3 6).
constexpr std::uint8_t verhoeff_d[10][10] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5}, {2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
    {3, 4, 0, 1, 2, 8, 9, 5, 6, 7}, {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
    {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3}, {8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
    {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}};
constexpr std::uint8_t verhoeff_p1[10] = {1, 5, 7, 6, 2, 8, 3, 0, 9, 4};
constexpr std::uint8_t verhoeff_inv[10] = {0, 4, 3, 2, 1, 5, 6, 7, 8, 9};

struct verhoeff_perm {
  std::uint8_t p[8][10];
  constexpr verhoeff_perm() : p{} {
    for (int x = 0; x < 10; ++x) p[0][x] = static_cast<std::uint8_t>(x);
    for (int i = 1; i < 8; ++i)
      for (int x = 0; x < 10; ++x) p[i][x] = verhoeff_p1[p[i - 1][x]];
  }
};
constexpr verhoeff_perm verhoeff_p;

// Damm: a totally anti-symmetric quasigroup of order 10 with zeros on the
// diagonal (H. M. Damm, 2004).
constexpr std::uint8_t damm_table[10][10] = {
    {0, 3, 1, 7, 5, 9, 8, 6, 4, 2}, {7, 0, 9, 2, 1, 5, 4, 8, 6, 3}, {4, 2, 0, 6, 8, 7, 1, 3, 5, 9},
    {1, 7, 5, 0, 9, 8, 3, 4, 2, 6}, {6, 1, 2, 3, 0, 4, 5, 9, 7, 8}, {3, 6, 7, 4, 2, 0, 9, 5, 8, 1},
    {5, 8, 6, 9, 7, 2, 0, 1, 3, 4}, {8, 9, 4, 5, 3, 6, 2, 0, 1, 7}, {9, 4, 3, 8, 6, 1, 7, 2, 0, 5},
    {2, 5, 8, 1, 4, 3, 6, 7, 9, 0}};

std::int64_t mod(std::int64_t a, std::int64_t m) noexcept {
  const std::int64_t r = a % m;
  return r < 0 ? r + m : r;
}

bool date_ok(const check_scheme::date_rule& r, std::string_view s) noexcept {
  using form = check_scheme::date_rule::form;
  std::size_t len = 0;
  switch (r.fmt) {
    case form::yyyymmdd: case form::ddmmyyyy: len = 8; break;
    case form::yymmdd: case form::ddmmyy: case form::yyyymm: len = 6; break;
    case form::yymm: len = 4; break;
  }
  if (r.at + len > s.size()) return false;
  const std::string_view d = s.substr(r.at, len);
  if (!all_digits(d)) return false;
  int y = 0, m = 0, day = 1;
  bool four = false;
  switch (r.fmt) {
    case form::yyyymmdd: y = number(d.substr(0, 4)), m = number(d.substr(4, 2)), day = number(d.substr(6, 2)), four = true; break;
    case form::yymmdd: y = number(d.substr(0, 2)), m = number(d.substr(2, 2)), day = number(d.substr(4, 2)); break;
    case form::ddmmyyyy: day = number(d.substr(0, 2)), m = number(d.substr(2, 2)), y = number(d.substr(4, 4)), four = true; break;
    case form::ddmmyy: day = number(d.substr(0, 2)), m = number(d.substr(2, 2)), y = number(d.substr(4, 2)); break;
    case form::yyyymm: y = number(d.substr(0, 4)), m = number(d.substr(4, 2)), four = true; break;
    case form::yymm: y = number(d.substr(0, 2)), m = number(d.substr(2, 2)); break;
  }
  if (four) {
    if (r.min_year != 0 && y < r.min_year) return false;
    if (r.max_year != 0 && y > r.max_year) return false;
  } else {
    y += 2000;  // the century is unknown: a year divisible by 4 may have 29 February
  }
  for (const int mo : r.month_offsets) {
    const int month = m - mo;
    if (month < 1 || month > 12) continue;
    for (const int dof : r.day_offsets)
      if (real_date(y, month, day - dof)) return true;
  }
  return false;
}

}  // namespace

bool real_date(int y, int m, int d) noexcept {
  static constexpr int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= days[m - 1] + (m == 2 && leap ? 1 : 0);
}

bool luhn_valid(std::string_view digits) noexcept {
  if (digits.size() < 2 || !all_digits(digits)) return false;
  // A number of zeros passes the checksum trivially and is never issued.
  if (digits.find_first_not_of('0') == std::string_view::npos) return false;
  int sum = 0;
  bool twice = false;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    int d = *it - '0';
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

bool verhoeff_valid(std::string_view digits) noexcept {
  if (digits.size() < 2 || !all_digits(digits)) return false;
  int c = 0;
  std::size_t i = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it, ++i) c = verhoeff_d[c][verhoeff_p.p[i % 8][*it - '0']];
  return c == 0;
}

char verhoeff_check_digit(std::string_view digits) noexcept {
  int c = 0;
  std::size_t i = 1;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it, ++i) c = verhoeff_d[c][verhoeff_p.p[i % 8][*it - '0']];
  return static_cast<char>('0' + verhoeff_inv[c]);
}

bool damm_valid(std::string_view digits) noexcept {
  if (digits.size() < 2 || !all_digits(digits)) return false;
  int c = 0;
  for (const char ch : digits) c = damm_table[c][ch - '0'];
  return c == 0;
}

char damm_check_digit(std::string_view digits) noexcept {
  int c = 0;
  for (const char ch : digits) c = damm_table[c][ch - '0'];
  return static_cast<char>('0' + c);  // the diagonal is zero: c then leads to 0
}

check_scheme::value_map check_scheme::default_values() noexcept {
  value_map v;
  v.fill(-1);
  for (int c = '0'; c <= '9'; ++c) v[static_cast<std::size_t>(c)] = static_cast<std::int16_t>(c - '0');
  for (int c = 'A'; c <= 'Z'; ++c) v[static_cast<std::size_t>(c)] = static_cast<std::int16_t>(c - 'A' + 10);
  return v;
}

check_scheme::value_map check_scheme::alphabet_values(std::string_view alphabet) noexcept {
  value_map v;
  v.fill(-1);
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    const auto c = static_cast<unsigned char>(alphabet[i]);
    if (c < 128) v[c] = static_cast<std::int16_t>(i);
  }
  return v;
}

std::string_view to_string(check_scheme::algo a) noexcept {
  switch (a) {
    case check_scheme::algo::weighted: return "weighted";
    case check_scheme::algo::luhn: return "luhn";
    case check_scheme::algo::verhoeff: return "verhoeff";
    case check_scheme::algo::damm: return "damm";
    case check_scheme::algo::iso7064_hybrid: return "iso7064_hybrid";
    case check_scheme::algo::none: return "none";
  }
  return "weighted";
}

std::optional<check_scheme::algo> parse_algo(std::string_view s) noexcept {
  for (const auto a : {check_scheme::algo::weighted, check_scheme::algo::luhn, check_scheme::algo::verhoeff,
                       check_scheme::algo::damm, check_scheme::algo::iso7064_hybrid, check_scheme::algo::none})
    if (to_string(a) == s) return a;
  return std::nullopt;
}

std::string_view to_string(check_scheme::date_rule::form f) noexcept {
  using form = check_scheme::date_rule::form;
  switch (f) {
    case form::yyyymmdd: return "YYYYMMDD";
    case form::yymmdd: return "YYMMDD";
    case form::ddmmyyyy: return "DDMMYYYY";
    case form::ddmmyy: return "DDMMYY";
    case form::yyyymm: return "YYYYMM";
    case form::yymm: return "YYMM";
  }
  return "YYYYMMDD";
}

std::optional<check_scheme::date_rule::form> parse_date_form(std::string_view s) noexcept {
  using form = check_scheme::date_rule::form;
  for (const auto f : {form::yyyymmdd, form::yymmdd, form::ddmmyyyy, form::ddmmyy, form::yyyymm, form::yymm})
    if (to_string(f) == s) return f;
  return std::nullopt;
}

bool check_scheme::structure_ok(std::string_view s) const {
  if (!lengths.empty() && !std::binary_search(lengths.begin(), lengths.end(), s.size())) return false;
  if (format_re && !RE2::FullMatch(re2::StringPiece(s.data(), s.size()), *format_re)) return false;
  if (!prefixes.empty()) {
    const bool any = std::any_of(prefixes.begin(), prefixes.end(), [&](const prefix_range& p) {
      if (s.size() < p.lo.size()) return false;
      const std::string_view head = s.substr(0, p.lo.size());
      if (head < std::string_view(p.lo) || head > std::string_view(p.hi)) return false;
      return p.lengths.empty() || std::binary_search(p.lengths.begin(), p.lengths.end(), s.size());
    });
    if (!any) return false;
  }
  if (date && !date_ok(*date, s)) return false;
  return true;
}

bool check_scheme::validate(std::string_view normalized) const {
  if (normalized.empty() || !structure_ok(normalized)) return false;
  std::string s(normalized);
  for (const auto& sub : substitutions)
    if (sub.at + sub.from.size() <= s.size() && s.compare(sub.at, sub.from.size(), sub.from) == 0)
      s.replace(sub.at, sub.from.size(), sub.to);
  if (rotate > 0 && rotate < s.size()) std::rotate(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(rotate), s.end());

  switch (algorithm) {
    case algo::none: return true;
    case algo::luhn: return luhn_valid(s);
    case algo::verhoeff: return verhoeff_valid(s);
    case algo::damm: return damm_valid(s);
    case algo::iso7064_hybrid: {
      if (modulus < 2) return false;
      std::int64_t p = modulus, sum = 0;
      for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        const std::int64_t v = u < 128 ? values[u] : -1;
        if (v < 0 || v >= modulus) return false;
        sum = (p + v) % modulus;
        if (sum == 0) sum = modulus;
        p = (2 * sum) % (modulus + 1);
      }
      return sum == 1;
    }
    case algo::weighted: break;
  }
  if (modulus < 1) return false;
  std::size_t check_len = 0;
  if (!check_table.empty()) {
    check_len = check_table.front().size();
    if (s.size() <= check_len) return false;
  }
  const std::string_view counted = std::string_view(s).substr(0, s.size() - check_len);
  const std::size_t padded = std::max(pad_length > check_len ? pad_length - check_len : 0, counted.size());
  const std::size_t pad = padded - counted.size();

  // The values, in text order; pad characters first.
  std::int64_t vals_small[96];
  std::vector<std::int64_t> vals_big;
  std::int64_t* vals = vals_small;
  std::size_t n = 0;
  const std::size_t cap = padded * (expand_decimal ? 5 : 1);
  if (cap > std::size(vals_small)) {
    vals_big.resize(cap);
    vals = vals_big.data();
  }
  auto push = [&](std::int64_t v) {
    if (!expand_decimal) {
      vals[n++] = v;
      return;
    }
    char digits[20];
    int k = 0;
    do {
      digits[k++] = static_cast<char>(v % 10);
      v /= 10;
    } while (v > 0 && k < 20);
    while (k > 0) vals[n++] = digits[--k];
  };
  for (std::size_t i = 0; i < padded; ++i) {
    const std::size_t pos = from_right ? padded - 1 - i : i;
    if (i < pad) {
      push(pad_value);
      continue;
    }
    const auto u = static_cast<unsigned char>(counted[i - pad]);
    if (u >= 128) return false;
    const value_map& m = position_values.empty() ? values : position_values[pos % position_values.size()];
    const std::int64_t v = m[u];
    if (v < 0) return false;
    push(v);
  }
  std::int64_t sum = 0;
  if (radix != 0) {
    std::int64_t power = 1;  // radix^k mod modulus, k counted from the right
    for (std::size_t j = n; j-- > 0;) {
      sum = mod(sum + mod(vals[j] * power, modulus), modulus);
      power = mod(power * radix, modulus);
    }
  } else {
    for (std::size_t j = 0; j < n; ++j) {
      const std::size_t q = from_right ? n - 1 - j : j;
      sum = mod(sum + mod(vals[j] * weights[q % weights.size()], modulus), modulus);
    }
  }
  if (sum_to) return sum == mod(*sum_to, modulus);
  if (check_table.empty() || static_cast<std::size_t>(sum) >= check_table.size()) return false;
  return std::string_view(s).substr(s.size() - check_len) == check_table[static_cast<std::size_t>(sum)];
}

std::string check_scheme::consistency_error() const {
  for (const auto& p : prefixes) {
    if (p.lo.empty() || p.lo.size() != p.hi.size() || p.hi < p.lo)
      return "a prefix range needs two bounds of the same length, the first not above the second";
  }
  for (const auto& sub : substitutions)
    if (sub.from.empty() || sub.from.size() != sub.to.size())
      return "a substitution replaces characters by as many characters";
  if (date) {
    if (date->month_offsets.empty() || date->day_offsets.empty()) return "date offsets need at least one value";
    if (date->min_year != 0 && date->max_year != 0 && date->min_year > date->max_year)
      return "date: min_year is above max_year";
  }
  switch (algorithm) {
    case algo::none: case algo::luhn: case algo::verhoeff: case algo::damm: return {};
    case algo::iso7064_hybrid:
      if (modulus < 2 || modulus > 100) return "iso7064_hybrid needs a modulus from 2 to 100 (10 for MOD 11,10)";
      return {};
    case algo::weighted: break;
  }
  if (modulus < 2 || modulus > 1000000) return "weighted needs a modulus from 2 to 1000000";
  if (weights.empty() == (radix == 0)) return "weighted needs either weights or a radix";
  if (sum_to.has_value() == !check_table.empty()) return "weighted needs either sum_to or check_table";
  if (sum_to && (*sum_to < 0 || *sum_to >= modulus)) return "sum_to must be from 0 to modulus - 1";
  if (!check_table.empty()) {
    if (check_table.size() != static_cast<std::size_t>(modulus))
      return "check_table needs one entry per remainder (" + std::to_string(modulus) + "), it has " +
             std::to_string(check_table.size());
    const std::size_t k = check_table.front().size();
    for (const auto& e : check_table)
      if (e.empty() || e.size() != k) return "check_table entries must all have the same, non-zero length";
  }
  return {};
}

}  // namespace customs::policy
