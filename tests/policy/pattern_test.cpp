#include <catch2/catch.hpp>
#include <re2/re2.h>

#include <algorithm>
#include <random>

#include "policy/pattern.hpp"
#include "policy/text.hpp"

using namespace customs::policy;

namespace {

// Runs the NFA on s, anchored at both ends.
bool nfa_accepts(const pattern::nfa& n, std::uint32_t start, std::string_view s) {
  std::vector<std::uint32_t> cur{start}, next;
  auto close = [&](std::vector<std::uint32_t>& set) {
    std::vector<bool> seen(n.states.size(), false);
    std::vector<std::uint32_t> stack(set.begin(), set.end()), out;
    while (!stack.empty()) {
      auto x = stack.back();
      stack.pop_back();
      if (seen[x]) continue;
      seen[x] = true;
      out.push_back(x);
      for (auto e : n.states[x].eps) stack.push_back(e);
    }
    set = out;
  };
  close(cur);
  for (const char ch : s) {
    const auto b = static_cast<std::uint8_t>(ch);
    next.clear();
    for (auto x : cur)
      for (const auto& e : n.states[x].edges)
        if (b >= e.lo && b <= e.hi) next.push_back(e.to);
    close(next);
    cur.swap(next);
    if (cur.empty()) return false;
  }
  return std::any_of(cur.begin(), cur.end(), [&](auto x) { return n.states[x].accept >= 0; });
}

pattern::compiled compile_ok(const std::string& authored, pattern::nfa& n) {
  const auto rw = pattern::rewrite(authored);
  REQUIRE(rw.error.empty());
  RE2 re(rw.re2, RE2::Quiet);
  REQUIRE(re.ok());
  auto c = pattern::compile(rw.re2, 0, n, 100000);
  REQUIRE(c.code.empty());
  return c;
}

}  // namespace

TEST_CASE("rewrite makes digits match their full-width forms", "[pattern]") {
  CHECK(pattern::rewrite("\\d{3}").re2 == "[0-9\\x{FF10}-\\x{FF19}]{3}");
  CHECK(pattern::rewrite("1[3-9]").re2 == "[1\\x{FF11}][3-9\\x{FF13}-\\x{FF19}]");
  CHECK(pattern::rewrite("[\\dX]").re2 == "[0-9\\x{FF10}-\\x{FF19}X]");
  CHECK(pattern::rewrite("a{2,10}\\x{41}\\x42").re2 == "a{2,10}\\x{41}\\x42");  // counts and escapes kept
  CHECK(pattern::rewrite("(?P<n1>7)").re2 == "(?P<n1>[7\\x{FF17}])");
  CHECK(pattern::rewrite("1\\d", false).re2 == "1[0-9\\x{FF10}-\\x{FF19}]");
  CHECK(pattern::rewrite("\\Q1.2\\E").re2 == "\\Q1.2\\E");
}

TEST_CASE("rewrite expands {sep} to one separator", "[pattern]") {
  const auto r = pattern::rewrite("a{sep}?b");
  RE2 re(r.re2);
  REQUIRE(re.ok());
  // One separator character, or two spaces or tabs, or two hyphens.
  for (const char* s : {"ab", "a b", "a-b", "a.b", "a_b", "a/b", "a\nb", "a\r\nb", "a\xC2\xA0" "b",
                        "a\xE3\x80\x80" "b", "a－b", "a．b", "a\xE2\x80\x93" "b", "a\tb", "a  b", "a\t\tb",
                        "a \tb", "a--b", "a\xC2\x85" "b", "a\xE2\x80\xA8" "b", "a\xE2\x80\xA9" "b"})
    CHECK(RE2::FullMatch(s, re));
  for (const char* s : {"a,b", "a\n\nb", "a   b", "a - b", "a -b", "a..b", "a//b", "a\r\n\r\nb", "a---b"})
    CHECK_FALSE(RE2::FullMatch(s, re));
}

TEST_CASE("lengths are bounded in bytes, full-width digits counting three", "[pattern]") {
  pattern::nfa n;
  auto c = compile_ok("\\d{18}", n);
  CHECK(c.min_len == 18);
  CHECK(c.max_len == 54);
  c = compile_ok("ab(?:cd|e){0,3}", n);
  CHECK(c.min_len == 2);
  CHECK(c.max_len == 8);
  c = compile_ok("[a-z]{1,64}@x", n);
  CHECK(c.max_len == 66);
}

TEST_CASE("unbounded, empty and anchored patterns are rejected", "[pattern]") {
  pattern::nfa n;
  for (const char* p : {"a+", "a*b", "ab{2,}", "(?:x|y)*z"}) {
    const auto c = pattern::compile(pattern::rewrite(p).re2, 0, n, 1000);
    CHECK(c.code == "E_PATTERN_UNBOUNDED");
  }
  for (const char* p : {"a?", "(?:)", "x{0,3}"}) CHECK(pattern::compile(p, 0, n, 1000).code == "E_PATTERN_EMPTY");
  for (const char* p : {"^ab", "ab$", "\\bab", "a\\Bb", "\\Aab", "ab\\z", "a\\Cb"})
    CHECK(pattern::compile(p, 0, n, 1000).code == "E_PATTERN_UNSUPPORTED");
  CHECK(n.states.empty());  // nothing left behind by failures
}

TEST_CASE("a pattern over the state budget is rejected", "[pattern]") {
  pattern::nfa n;
  const auto c = pattern::compile("(?:[a-z]{1,50}){1,50}", 0, n, 500);
  CHECK(c.code == "E_PATTERN_TOO_COMPLEX");
}

TEST_CASE("utf8_sequences cover exactly the range", "[pattern]") {
  std::mt19937 rng(1);
  const std::pair<std::uint32_t, std::uint32_t> ranges[] = {
      {0x41, 0x5A}, {0x70, 0x900}, {0xFF10, 0xFF19}, {0x7FF, 0x800}, {0xFFFF, 0x10000}, {0x80, 0x10FFFF}, {0x4E00, 0x9FFF}};
  for (const auto& [lo, hi] : ranges) {
    std::vector<pattern::byte_ranges> seqs;
    pattern::utf8_sequences(lo, hi, seqs);
    auto covered = [&](std::uint32_t cp) {
      std::string s;
      text::encode(cp, s);
      int hits = 0;
      for (const auto& q : seqs) {
        if (q.size() != s.size()) continue;
        bool in = true;
        for (std::size_t k = 0; k < s.size(); ++k) {
          const auto b = static_cast<std::uint8_t>(s[k]);
          in = in && b >= q[k].first && b <= q[k].second;
        }
        hits += in;
      }
      return hits;
    };
    CHECK(covered(lo) == 1);
    CHECK(covered(hi) == 1);
    for (int i = 0; i < 200; ++i) {
      const std::uint32_t cp = lo + rng() % (hi - lo + 1);
      CHECK(covered(cp) == 1);
    }
    if (lo > 0) CHECK(covered(lo - 1) == 0);
    if (hi < 0x10FFFF) CHECK(covered(hi + 1) == 0);
  }
}

TEST_CASE("the NFA accepts everything RE2 matches (superset)", "[pattern]") {
  const std::vector<std::string> patterns = {
      "\\d{6}{sep}?\\d{8}{sep}?\\d{3}[\\dXxＸｘ]",
      "(?:(?:\\+|00)86{sep}?)?1[3-9]\\d{sep}?\\d{4}{sep}?\\d{4}",
      "[A-Za-z0-9._%+\\-_]{1,20}@[A-Za-z0-9\\-]{1,10}(?:\\.[A-Za-z0-9\\-]{1,10}){1,3}",
      "(?i)top secret|绝密",
      "(?i:k[a-c]s)",
      "[^a-z]{2,4}x",
      ".{1,3}中",
      "\\w\\s\\W\\S",
      "[[:alpha:]][[:^digit:]]",
      "\\pL{1,2}\\p{Han}",
      "(?s:.)a",
      "a(?i)B|c",
      "\\x{FF10}\\101\\x41",
  };
  const std::vector<std::string> texts = {
      "身份证 110105 19491231 002X and １１０１０５１９４９１２３１００２ｘ",
      "+86 138 1234 5678, 0086-139-1234-5678",
      "mail john.doe_1@mail.example.com now",
      "TOP SECRET Top sEcReT 绝密",
      "Kas \xE2\x84\xAA" "bs kcS \xC5\xBF",
      "12 ab!x 3456x 中中x",
      "a中 ab中 abc中",
      "a b\tC\n_ x",
      "ab a1 Z!",
      "é中 中中",
      "\na xa",
      "aB ab Ab c C",
      "０A1 ０AA",
  };
  for (const auto& p : patterns) {
    pattern::nfa n;
    const auto c = compile_ok(p, n);
    RE2 re(pattern::rewrite(p).re2, RE2::Quiet);
    for (const auto& t : texts) {
      for (std::size_t i = 0; i < t.size(); ++i) {
        for (std::size_t j = i + 1; j <= t.size() && j - i <= c.max_len; ++j) {
          const std::string_view sub(t.data() + i, j - i);
          if (!RE2::FullMatch(re2::StringPiece(sub.data(), sub.size()), re)) continue;
          INFO(p << " on '" << std::string(sub) << "'");
          CHECK(nfa_accepts(n, c.start, sub));
        }
      }
    }
  }
}

TEST_CASE("the NFA rejects what no pattern byte allows (it is a useful filter)", "[pattern]") {
  pattern::nfa n;
  const auto c = compile_ok("1[3-9]\\d{9}", n);
  CHECK(nfa_accepts(n, c.start, "13812345678"));
  CHECK(nfa_accepts(n, c.start, "１３８１２３４５６７８"));
  CHECK_FALSE(nfa_accepts(n, c.start, "12812345678"));
  CHECK_FALSE(nfa_accepts(n, c.start, "1381234567"));
  pattern::nfa k;
  const auto ck = compile_ok(pattern::literal("Top Secret", true), k);
  CHECK(nfa_accepts(k, ck.start, "TOP SECRET"));
  CHECK_FALSE(nfa_accepts(k, ck.start, "TOP SECRE\xC5\xBF"));  // literal() folds ASCII only
}
