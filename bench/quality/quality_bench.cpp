// Detection quality benchmark: precision and recall per detector over a
// generated, labelled corpus, and false positives per megabyte of plain prose.
//
// usage: quality_bench [RULES_PATH...] [--per-class] [--seed N] [--count N]
//   RULES_PATH defaults to rules/ of the source tree (all shipped packs).
//
// The corpus is generated here, deterministically (seed 1 unless given):
//   - valid identifiers, each made by its own generator from the standard
//     (check digits computed here, independently of the rule packs), written
//     plainly in a short sentence with the words people put next to them;
//   - the same identifiers hidden by every evasion class the detection guide
//     names (invisible characters, separators single, doubled and between
//     lines, HTML references and escapes, other scripts' digits, lower-case
//     letters, base64);
//   - near misses: each identifier with its check digit changed (or, for
//     numbers without one, a never-issued part), in the same sentence;
//   - plain prose (English and Chinese sentences with dates, times, prices,
//     versions, percentages and counts), scanned on its own;
//   - hard negatives: a few fixed texts known to look like an identifier in
//     an evasion class (masked SSNs above ZIP codes, numbered seat rows).
// A labelled identifier counts as found when a finding of its detector (or
// the pack's other detector for the same identifier: us.ssn_plain for us.ssn)
// covers exactly its bytes; a near miss counts as a false positive when one of
// them finds anything in its sentence; any finding in the prose or in a hard
// negative is a false positive.
// Every sample is also streamed through stream_scanner in pieces, and the
// streamed findings are compared with the whole-text ones.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "policy/policy.hpp"

namespace {

using namespace customs::policy;
using rng_t = std::mt19937_64;

// ---------------------------------------------------------------- helpers

std::string utf8(std::uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

int uniform(rng_t& r, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(r); }

std::string digits(rng_t& r, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>('0' + uniform(r, 0, 9));
  return s;
}

std::string two(int v) {
  char b[8];
  std::snprintf(b, sizeof b, "%02d", v);
  return b;
}

int days_in(int y, int m) {
  static constexpr int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : d[m - 1];
}

// A different digit in place of the one at i.
std::string change_digit(rng_t& r, std::string s, std::size_t i) {
  const char old = s[i];
  while (s[i] == old) s[i] = static_cast<char>('0' + uniform(r, 0, 9));
  return s;
}

std::string base64(std::string_view in) {
  static constexpr char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += a[(v >> k) & 63];
  }
  const std::size_t rest = in.size() - i;
  if (rest > 0) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += a[(v >> 18) & 63];
    out += a[(v >> 12) & 63];
    out += rest == 2 ? a[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// ------------------------------------------------ check digits (standards)

int luhn_check(const std::string& body) {  // digit that makes body + it Luhn-valid
  int sum = 0;
  bool dbl = true;
  for (auto it = body.rbegin(); it != body.rend(); ++it, dbl = !dbl) {
    int d = *it - '0';
    if (dbl) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return (10 - sum % 10) % 10;
}

int mod97(const std::string& s) {  // of letters (A=10) and digits, left to right
  int m = 0;
  for (const char c : s) {
    if (c >= '0' && c <= '9') m = (m * 10 + (c - '0')) % 97;
    else m = (m * 100 + (c - 'A' + 10)) % 97;
  }
  return m;
}

char verhoeff_check(const std::string& body) {
  static constexpr int d[10][10] = {{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
                                    {2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
                                    {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
                                    {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
                                    {8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}};
  static constexpr int p[8][10] = {{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
                                   {5, 8, 0, 3, 7, 9, 6, 1, 4, 2}, {8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
                                   {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
                                   {2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8}};
  static constexpr int inv[10] = {0, 4, 3, 2, 1, 5, 6, 7, 8, 9};
  int c = 0;
  const std::size_t n = body.size();
  for (std::size_t i = 0; i < n; ++i) c = d[c][p[(i + 1) % 8][body[n - 1 - i] - '0']];
  return static_cast<char>('0' + inv[c]);
}

// ------------------------------------------------------------ generators

struct sample_id {
  std::string valid;      // the identifier as commonly written
  std::string near_miss;  // the same with a check that fails
};

struct kind {
  const char* detector;
  const char* before;  // the words in front of it
  std::function<sample_id(rng_t&)> make;
};

sample_id prc_resident_id(rng_t& r) {
  static const char* regions[] = {"110105", "310115", "440305", "330106", "510104", "320102", "420111", "610113"};
  const int y = uniform(r, 1940, 2015), m = uniform(r, 1, 12), d = uniform(r, 1, days_in(y, m));
  const std::string body = regions[uniform(r, 0, 7)] + std::to_string(y) + two(m) + two(d) + digits(r, 3);
  static constexpr int w[] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int s = 0;
  for (int i = 0; i < 17; ++i) s += (body[static_cast<std::size_t>(i)] - '0') * w[i];
  static constexpr char table[] = "10X98765432";
  const char c = table[s % 11];
  char bad = c;
  while (bad == c) bad = table[uniform(r, 0, 10)];
  return {body + c, body + bad};
}

sample_id payment_card(rng_t& r) {
  struct range {
    const char* prefix;
    int length;
  };
  static constexpr range ranges[] = {{"4", 16}, {"51", 16}, {"55", 16}, {"2221", 16}, {"34", 15}, {"37", 15},
                                     {"6011", 16}, {"65", 16}, {"36", 14}, {"3530", 16}, {"62", 16}, {"62", 19},
                                     {"5018", 12}, {"6759", 19}, {"1", 15}, {"2200", 16}};
  const auto& g = ranges[uniform(r, 0, 15)];
  const std::string body = g.prefix + digits(r, g.length - 1 - static_cast<int>(std::strlen(g.prefix)));
  const std::string n = body + static_cast<char>('0' + luhn_check(body));
  std::string grouped;
  for (std::size_t i = 0; i < n.size(); ++i) grouped += (i && i % 4 == 0 ? " " : "") + std::string(1, n[i]);
  std::string bad = change_digit(r, n, n.size() - 1);
  std::string bad_grouped;
  for (std::size_t i = 0; i < bad.size(); ++i) bad_grouped += (i && i % 4 == 0 ? " " : "") + std::string(1, bad[i]);
  return {grouped, bad_grouped};
}

sample_id us_ssn(rng_t& r) {
  int area = uniform(r, 1, 899);
  while (area == 666) area = uniform(r, 1, 899);
  char b[16];
  std::snprintf(b, sizeof b, "%03d-%02d-%04d", area, uniform(r, 1, 99), uniform(r, 1, 9999));
  std::string bad = b;
  static const char* never[] = {"000", "666", "900", "987"};
  bad.replace(0, 3, never[uniform(r, 0, 3)]);
  return {b, bad};
}

sample_id iban(rng_t& r) {
  struct country {
    const char* cc;
    int length;  // digits-only BBAN
  };
  static constexpr country cs[] = {{"DE", 18}, {"AT", 16}, {"CH", 17}, {"DK", 14}, {"LU", 16}, {"SE", 20}};
  const auto& c = cs[uniform(r, 0, 5)];
  const std::string bban = digits(r, c.length);
  const int check = 98 - mod97(bban + c.cc + "00");
  const std::string n = std::string(c.cc) + two(check) + bban;
  std::string bad = change_digit(r, n, n.size() - 1);
  auto group = [](const std::string& s) {
    std::string g;
    for (std::size_t i = 0; i < s.size(); ++i) g += (i && i % 4 == 0 ? " " : "") + std::string(1, s[i]);
    return g;
  };
  return {group(n), group(bad)};
}

sample_id es_dni(rng_t& r) {
  static constexpr char letters[] = "TRWAGMYFPDXBNJZSQVHLCKE";
  const bool nie = uniform(r, 0, 1) == 1;
  std::string num = nie ? digits(r, 7) : digits(r, 8);
  const char lead = "XYZ"[uniform(r, 0, 2)];
  const long v = std::stol(nie ? std::string(1, static_cast<char>('0' + (lead - 'X'))) + num : num);
  const char c = letters[v % 23];
  char bad = c;
  while (bad == c) bad = letters[uniform(r, 0, 22)];
  const std::string head = nie ? std::string(1, lead) + num : num;
  return {head + c, head + bad};
}

sample_id nl_bsn(rng_t& r) {
  for (;;) {
    const std::string body = std::to_string(uniform(r, 1, 9)) + digits(r, 7);
    int s = 0;
    for (int i = 0; i < 8; ++i) s += (body[static_cast<std::size_t>(i)] - '0') * (9 - i);
    const int c = s % 11;
    if (c == 10) continue;
    return {body + static_cast<char>('0' + c), body + static_cast<char>('0' + (c + 1) % 10)};
  }
}

sample_id pl_pesel(rng_t& r) {
  const int y = uniform(r, 1930, 2020), m = uniform(r, 1, 12), d = uniform(r, 1, days_in(y, m));
  const std::string body = two(y % 100) + two(m + (y >= 2000 ? 20 : 0)) + two(d) + digits(r, 4);
  static constexpr int w[] = {1, 3, 7, 9, 1, 3, 7, 9, 1, 3};
  int s = 0;
  for (int i = 0; i < 10; ++i) s += (body[static_cast<std::size_t>(i)] - '0') * w[i];
  const int c = (10 - s % 10) % 10;
  return {body + static_cast<char>('0' + c), body + static_cast<char>('0' + (c + 1) % 10)};
}

sample_id jp_my_number(rng_t& r) {
  const std::string body = digits(r, 11);
  int s = 0;
  for (int i = 0; i < 11; ++i) {
    const int n = i + 1;  // position from the right of the body
    s += (body[static_cast<std::size_t>(10 - i)] - '0') * (n <= 6 ? n + 1 : n - 5);
  }
  const int rem = s % 11;
  const int c = rem <= 1 ? 0 : 11 - rem;
  return {body + static_cast<char>('0' + c), body + static_cast<char>('0' + (c + 1) % 10)};
}

sample_id in_aadhaar(rng_t& r) {
  const std::string body = std::to_string(uniform(r, 2, 9)) + digits(r, 10);
  const std::string n = body + verhoeff_check(body);
  const std::string bad = change_digit(r, n, 11);
  auto group = [](const std::string& s) { return s.substr(0, 4) + " " + s.substr(4, 4) + " " + s.substr(8); };
  return {group(n), group(bad)};
}

sample_id kr_rrn(rng_t& r) {
  const int y = uniform(r, 1950, 2019), m = uniform(r, 1, 12), d = uniform(r, 1, days_in(y, m));
  const std::string body = two(y % 100) + two(m) + two(d) + std::to_string(y >= 2000 ? uniform(r, 3, 4) : uniform(r, 1, 2)) + digits(r, 5);
  static constexpr int w[] = {2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5};
  int s = 0;
  for (int i = 0; i < 12; ++i) s += (body[static_cast<std::size_t>(i)] - '0') * w[i];
  const int c = (11 - s % 11) % 10;
  const std::string n = body + static_cast<char>('0' + c), bad = body + static_cast<char>('0' + (c + 1) % 10);
  return {n.substr(0, 6) + "-" + n.substr(6), bad.substr(0, 6) + "-" + bad.substr(6)};
}

sample_id tw_id(rng_t& r) {
  static constexpr int code[26] = {10, 11, 12, 13, 14, 15, 16, 17, 34, 18, 19, 20, 21,
                                   22, 35, 23, 24, 25, 26, 27, 28, 29, 32, 30, 31, 33};
  const int li = uniform(r, 0, 25);
  const std::string body = std::string(1, static_cast<char>('A' + li)) + std::to_string(uniform(r, 1, 2)) + digits(r, 7);
  int s = code[li] / 10 + (code[li] % 10) * 9;
  for (int i = 1; i < 9; ++i) s += (body[static_cast<std::size_t>(i)] - '0') * (9 - i);
  const int c = (10 - s % 10) % 10;
  return {body + static_cast<char>('0' + c), body + static_cast<char>('0' + (c + 1) % 10)};
}

sample_id sg_nric(rng_t& r) {
  const char lead = uniform(r, 0, 1) ? 'S' : 'T';
  const std::string num = digits(r, 7);
  static constexpr int w[] = {2, 7, 6, 5, 4, 3, 2};
  int s = lead == 'T' ? 4 : 0;
  for (int i = 0; i < 7; ++i) s += (num[static_cast<std::size_t>(i)] - '0') * w[i];
  static constexpr char table[] = "JZIHGFEDCBA";
  const char c = table[s % 11];
  char bad = c;
  while (bad == c) bad = table[uniform(r, 0, 10)];
  return {std::string(1, lead) + num + c, std::string(1, lead) + num + bad};
}

std::vector<kind> kinds() {
  return {
      {"cn.resident_id", "身份证号 ", prc_resident_id},
      {"us.payment_card", "card number ", payment_card},
      {"us.ssn", "SSN ", us_ssn},
      {"eu.iban", "IBAN ", iban},
      {"es.dni", "DNI ", es_dni},
      {"nl.bsn", "BSN ", nl_bsn},
      {"pl.pesel", "PESEL ", pl_pesel},
      {"jp.my_number", "マイナンバー ", jp_my_number},
      {"in.aadhaar", "Aadhaar ", in_aadhaar},
      {"kr.rrn", "주민등록번호 ", kr_rrn},
      {"tw.id", "身分證字號 ", tw_id},
      {"sg.nric", "NRIC ", sg_nric},
  };
}

// ------------------------------------------------------- evasion classes

struct encoding {
  const char* cls;
  std::function<std::string(const std::string&)> apply;
};

std::string between_chars(const std::string& s, const std::string& sep) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i && s[i] != ' ' && s[i - 1] != ' ') out += sep;
    out += s[i];
  }
  return out;
}

std::string map_digits(const std::string& s, std::uint32_t zero) {
  std::string out;
  for (const char c : s) out += c >= '0' && c <= '9' ? utf8(zero + static_cast<std::uint32_t>(c - '0')) : std::string(1, c);
  return out;
}

// Picks one of a class's variants by the identifier itself (deterministic).
std::size_t digit_sum(const std::string& s) {
  std::size_t n = 0;
  for (const char c : s)
    if (c >= '0' && c <= '9') n += static_cast<std::size_t>(c - '0');
  return n;
}

std::string compact(const std::string& s) {
  std::string out;
  for (const char c : s)
    if (c != ' ' && c != '-') out += c;
  return out;
}

std::vector<encoding> encodings() {
  return {
      {"plain", [](const std::string& s) { return s; }},
      {"zero-width space", [](const std::string& s) { return between_chars(s, utf8(0x200B)); }},
      {"zero-width joiner", [](const std::string& s) { return between_chars(s, utf8(0x200D)); }},
      {"word joiner", [](const std::string& s) { return between_chars(s, utf8(0x2060)); }},
      {"soft hyphen", [](const std::string& s) { return between_chars(s, utf8(0x00AD)); }},
      {"single spaces", [](const std::string& s) { return between_chars(compact(s), " "); }},
      {"slashes", [](const std::string& s) { return between_chars(compact(s), "/"); }},
      {"underscores", [](const std::string& s) { return between_chars(compact(s), "_"); }},
      {"new lines", [](const std::string& s) {
         const std::string c = compact(s);
         return c.substr(0, c.size() / 2) + "\n" + c.substr(c.size() / 2);
       }},
      {"tabs", [](const std::string& s) { return between_chars(compact(s), "\t"); }},
      {"doubled separators", [](const std::string& s) {  // two spaces, two tabs or two hyphens
         static const char* twice[] = {"  ", "\t\t", "--"};
         return between_chars(compact(s), twice[digit_sum(s) % 3]);
       }},
      {"NEL, U+2028, U+2029", [](const std::string& s) {  // one of them where "new lines" puts LF
         static constexpr std::uint32_t line_break[] = {0x0085, 0x2028, 0x2029};
         const std::string c = compact(s);
         return c.substr(0, c.size() / 2) + utf8(line_break[digit_sum(s) % 3]) + c.substr(c.size() / 2);
       }},
      {"lower case", [](const std::string& s) {
         std::string out = s;
         for (char& c : out)
           if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
         return out;
       }},
      {"HTML references", [](const std::string& s) {
         std::string out;
         for (const char c : s) out += c >= '0' && c <= '9' ? "&#" + std::to_string(static_cast<int>(c)) + ";" : std::string(1, c);
         return out;
       }},
      {"\\u escapes", [](const std::string& s) {
         std::string out;
         for (const char c : s) out += c >= '0' && c <= '9' ? std::string("\\u003") + c : std::string(1, c);
         return out;
       }},
      {"Arabic-Indic digits", [](const std::string& s) { return map_digits(s, 0x0660); }},
      {"full-width digits", [](const std::string& s) { return map_digits(s, 0xFF10); }},
      {"mathematical digits", [](const std::string& s) { return map_digits(s, 0x1D7CE); }},
      {"Chinese numerals", [](const std::string& s) {
         static constexpr std::string_view ten = "〇一二三四五六七八九";
         std::string out;
         for (const char c : s)
           out += c >= '0' && c <= '9' ? std::string(ten.substr(static_cast<std::size_t>(c - '0') * 3, 3)) : std::string(1, c);
         return out;
       }},
  };
}

// ------------------------------------------------------------------ prose

std::string prose(rng_t& r, std::size_t bytes) {
  static const char* en[] = {"the", "report", "meeting", "budget", "team", "quarter", "please", "summarize",
                             "translate", "customer", "order", "shipped", "model", "latency", "server", "version",
                             "release", "invoice", "total", "page", "room", "at", "on", "and", "for", "with"};
  static const char* zh[] = {"我们", "公司", "客户", "项目", "会议", "明天", "报告", "总结", "数据", "分析", "一个", "统一"};
  std::string out;
  while (out.size() < bytes) {
    std::string s;
    const int n = uniform(r, 6, 18);
    for (int i = 0; i < n; ++i) {
      switch (uniform(r, 0, 9)) {
        case 0: s += std::to_string(uniform(r, 2019, 2027)) + "-" + two(uniform(r, 1, 12)) + "-" + two(uniform(r, 1, 28)); break;
        case 1: s += two(uniform(r, 0, 23)) + ":" + two(uniform(r, 0, 59)); break;
        case 2: s += std::to_string(uniform(r, 1, 99999)) + "." + two(uniform(r, 0, 99)) + " EUR"; break;
        case 3: s += "v" + std::to_string(uniform(r, 0, 9)) + "." + std::to_string(uniform(r, 0, 30)) + "." + std::to_string(uniform(r, 0, 99)); break;
        case 4: s += std::to_string(uniform(r, 0, 100)) + "%"; break;
        case 5: s += zh[uniform(r, 0, 11)]; s += zh[uniform(r, 0, 11)]; break;
        default: s += en[uniform(r, 0, 25)]; break;
      }
      s += ' ';
    }
    s.back() = '.';
    out += s + "\n";
  }
  return out;
}

// ------------------------------------------------------------------- run

struct tally {
  std::size_t positives = 0, found = 0, near = 0, false_pos = 0;
};

// Whether finding detector `got` detects the identifiers of `det`: itself, or
// the pack's other detector for the same identifier (us.ssn_plain finds SSNs
// written as nine digits next to the word SSN, in a row or with a slash,
// underscore or full stop between every two; tw.id_lower finds Taiwan IDs
// whose letter is lower case). Near misses count against both alike.
bool detects(const std::string& det, const std::string& got) {
  return got == det || (det == "us.ssn" && got == "us.ssn_plain") || (det == "tw.id" && got == "tw.id_lower");
}

// Hard negatives: text that looks like an identifier written in one of the
// evasion classes, scanned on its own; every finding is a false positive.
const std::vector<std::string>& hard_negatives() {
  static const std::vector<std::string> t = {
      // A masked SSN whose visible last four digits stand above a ZIP code or
      // a house number: the nine digits around the line break look like an
      // SSN cut by a line break, next to the word SSN.
      "SSN: ***-**-1234\n12345 Main Street",
      "SSN XXX-XX-6789\n90210 Beverly Hills, CA",
      "Social security: xxx-xx-4521\r\n10001 New York, NY",
      "SSN ###-##-5532\n60601 Chicago",
      "SSN \u2022\u2022\u2022-\u2022\u2022-7301\n30301 Atlanta",
      // Seat rows: a row letter and its seats numbered one by one (rows A, M
      // and W pass the Taiwan ID check; every row passes the SSN ranges).
      "Row A 1 2 3 4 5 6 7 8 9",
      "Row B 1 2 3 4 5 6 7 8 9",
      "Row M 1 2 3 4 5 6 7 8 9",
      "Row W 1 2 3 4 5 6 7 8 9",
      "Row A 1 2 3 4 5 6 7 8 9 10 11 12",
      "Row M 3 4 5 6 7 8 9 10 11 12",
      "Seats 1 2 3 4 5 6 7 8 9 are free, rows 9 8 7 6 5 4 3 2 1 are not",
      "Row W\t1\t2\t3\t4\t5\t6\t7\t8\t9",
  };
  return t;
}

bool covers(const std::vector<finding>& f, const std::string& det, std::size_t s, std::size_t e) {
  for (const auto& x : f)
    if (detects(det, x.detector) && x.start == s && x.end == e) return true;
  return false;
}

bool any_of_detector(const std::vector<finding>& f, const std::string& det) {
  for (const auto& x : f)
    if (detects(det, x.detector)) return true;
  return false;
}

// Streams text in pieces; true when the findings equal the whole text's.
bool stream_agrees(const rule_set_ptr& rs, const std::string& t, const std::vector<finding>& whole, rng_t& r) {
  stream_scanner sc(rs, flow_context{});
  std::size_t at = 0;
  while (at < t.size()) {
    const std::size_t n = static_cast<std::size_t>(uniform(r, 1, 7));
    (void)sc.feed(std::string_view(t).substr(at, n));
    at += n;
  }
  (void)sc.finish();
  const auto& got = sc.current().findings;
  if (got.size() != whole.size()) return false;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i].detector != whole[i].detector || got[i].start != whole[i].start || got[i].end != whole[i].end) return false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> paths;
  bool per_class = false;
  std::uint64_t seed = 1;
  int count = 200;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--per-class") per_class = true;
    else if (a == "--seed" && i + 1 < argc) seed = std::stoull(argv[++i]);
    else if (a == "--count" && i + 1 < argc) count = std::stoi(argv[++i]);
    else paths.emplace_back(a);
  }
  if (paths.empty()) paths.emplace_back(std::filesystem::path(CUSTOMS_SOURCE_DIR) / "rules");
  const auto loaded = load_rule_set(paths);
  if (!loaded.ok()) {
    for (const auto& d : loaded.diagnostics) std::fprintf(stderr, "%s\n", d.to_string().c_str());
    return 2;
  }
  const auto& rs = loaded.rules;
  rng_t r(seed);
  const auto encs = encodings();

  std::map<std::string, tally> by_detector;
  std::map<std::string, tally> by_class;
  std::map<std::string, std::map<std::string, tally>> cell;  // detector -> class
  std::size_t stream_samples = 0, stream_differences = 0;
  const std::string after = ", thanks.";

  for (const auto& k : kinds()) {
    auto& t = by_detector[k.detector];
    for (int i = 0; i < count; ++i) {
      const sample_id id = k.make(r);
      for (const auto& e : encs) {
        const std::string hidden = e.apply(id.valid);
        std::string text = std::string(k.before) + hidden + after;
        std::size_t start = std::strlen(k.before), end = start + hidden.size();
        const auto f = rs->scan(text);
        const bool ok = covers(f, k.detector, start, end);
        ++t.positives;
        t.found += ok;
        ++by_class[e.cls].positives;
        by_class[e.cls].found += ok;
        ++cell[k.detector][e.cls].positives;
        cell[k.detector][e.cls].found += ok;
        if (i % 10 == 0) {
          ++stream_samples;
          stream_differences += !stream_agrees(rs, text, f, r);
        }
      }
      {  // base64 of the sentence, standing for the whole run
        const std::string b = base64(std::string(k.before) + id.valid);
        const std::string text = "decode: " + b + after;
        const auto f = rs->scan(text);
        const bool ok = covers(f, k.detector, 8, 8 + b.size());
        ++t.positives;
        t.found += ok;
        ++by_class["base64"].positives;
        by_class["base64"].found += ok;
        ++cell[k.detector]["base64"].positives;
        cell[k.detector]["base64"].found += ok;
      }
      const std::string miss = std::string(k.before) + id.near_miss + after;
      const auto f = rs->scan(miss);
      ++t.near;
      const bool fp = any_of_detector(f, k.detector);
      t.false_pos += fp;
      if (fp && per_class)
        for (const auto& x : f)
          if (x.detector == k.detector) std::printf("near miss found %s: \"%s\" in \"%s\"\n", x.detector.c_str(), x.text.c_str(), miss.c_str());
    }
  }

  // Plain prose, scanned in messages of about 2 KB.
  const std::size_t prose_bytes = 4u << 20;
  std::size_t prose_fp = 0;
  std::map<std::string, std::size_t> prose_by_detector;
  {
    const std::string p = prose(r, prose_bytes);
    std::size_t at = 0;
    while (at < p.size()) {
      std::size_t end = std::min(p.size(), at + 2048);
      while (end < p.size() && p[end - 1] != '\n') ++end;
      const auto f = rs->scan(std::string_view(p).substr(at, end - at));
      prose_fp += f.size();
      for (const auto& x : f) {
        ++prose_by_detector[x.detector];
        if (per_class) std::printf("prose finding %s: \"%s\"\n", x.detector.c_str(), x.text.c_str());
      }
      at = end;
    }
  }

  // Hard negatives, each on its own.
  std::size_t hard_fp = 0;
  for (const auto& t : hard_negatives()) {
    const auto f = rs->scan(t);
    hard_fp += f.size();
    ++stream_samples;
    stream_differences += !stream_agrees(rs, t, f, r);
    for (const auto& x : f)
      if (per_class) std::printf("hard negative finding %s: \"%s\"\n", x.detector.c_str(), x.text.c_str());
  }

  std::printf("quality_bench: seed %llu, %d identifiers per detector, %zu encodings + base64 each, rule set %s\n\n",
              static_cast<unsigned long long>(seed), count, encs.size(), rs->id().c_str());
  std::printf("%-18s %9s %9s %8s %9s %9s %9s\n", "detector", "positives", "found", "recall", "near-miss", "false-pos",
              "precision");
  tally all;
  for (const auto& [d, t] : by_detector) {
    const double recall = t.positives ? 100.0 * static_cast<double>(t.found) / static_cast<double>(t.positives) : 0;
    const double precision = t.found + t.false_pos
                                 ? 100.0 * static_cast<double>(t.found) / static_cast<double>(t.found + t.false_pos)
                                 : 0;
    std::printf("%-18s %9zu %9zu %7.2f%% %9zu %9zu %8.2f%%\n", d.c_str(), t.positives, t.found, recall, t.near,
                t.false_pos, precision);
    all.positives += t.positives;
    all.found += t.found;
    all.near += t.near;
    all.false_pos += t.false_pos;
  }
  std::printf("%-18s %9zu %9zu %7.2f%% %9zu %9zu %8.2f%%\n", "all", all.positives, all.found,
              100.0 * static_cast<double>(all.found) / static_cast<double>(all.positives), all.near, all.false_pos,
              100.0 * static_cast<double>(all.found) / static_cast<double>(all.found + all.false_pos));

  std::printf("\n%-22s %9s %9s %8s\n", "evasion class", "positives", "found", "recall");
  for (const auto& [c, t] : by_class)
    std::printf("%-22s %9zu %9zu %7.2f%%\n", c.c_str(), t.positives, t.found,
                100.0 * static_cast<double>(t.found) / static_cast<double>(t.positives));
  if (per_class) {
    std::printf("\nmisses by detector and class:\n");
    for (const auto& [d, m] : cell)
      for (const auto& [c, t] : m)
        if (t.found != t.positives) std::printf("  %-18s %-22s %zu of %zu found\n", d.c_str(), c.c_str(), t.found, t.positives);
  }
  std::printf("\nprose: %.2f MB, %zu findings (%.2f false positives per MB)\n",
              static_cast<double>(prose_bytes) / (1 << 20), prose_fp,
              static_cast<double>(prose_fp) / (static_cast<double>(prose_bytes) / (1 << 20)));
  for (const auto& [d, n] : prose_by_detector) std::printf("  %-18s %zu\n", d.c_str(), n);
  std::printf("hard negatives: %zu texts, %zu findings\n", hard_negatives().size(), hard_fp);
  std::printf("streaming: %zu samples fed in 1-7 byte pieces, %zu differ from the whole-text findings\n", stream_samples,
              stream_differences);
  return 0;
}
