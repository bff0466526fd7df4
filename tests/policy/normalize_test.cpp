// Normalisation before scanning (policy/normalize.hpp): what each rule does to
// a text, where each normalized byte comes from, the bounds, and that the
// incremental normalizer equals the whole-text one however the text is cut.
#include <catch2/catch.hpp>

#include <random>

#include "policy/normalize.hpp"
#include "policy/text.hpp"

using namespace customs::policy;
using namespace customs::policy::text;

namespace {

std::string u(std::uint32_t cp) {
  std::string s;
  encode(cp, s);
  return s;
}

std::string norm(std::string_view t) {
  const auto n = normalize(t);
  return n.identity ? std::string(t) : n.text;
}

// The original bytes N [s, e) stands for.
std::string source_of(std::string_view t, std::size_t s, std::size_t e) {
  const auto n = normalize(t);
  if (n.identity) return std::string(t.substr(s, e - s));
  const std::size_t a = n.map.original_start(s);
  const std::size_t b = n.map.original_end(e);
  return std::string(t.substr(a, b - a));
}

}  // namespace

TEST_CASE("plain text is left alone and not copied", "[normalize]") {
  CHECK(normalize("hello 123-45").identity);
  CHECK(normalize("身份证号码，电话").identity);  // CJK has nothing to fold
  CHECK(normalize("R&D, a\\b").identity);        // not references or escapes
  CHECK_FALSE(may_change("plain ascii"));
  CHECK(may_change("a&b"));
  CHECK(may_change("\xC3\xA9"));
  // Every byte that may change, at every position of texts of 1 to 9 bytes
  // (the test reads four bytes at a time, then the rest one by one).
  for (int b = 0; b < 256; ++b) {
    const bool changes = b >= 0x80 || b == '&' || b == '\\' || (b < 0x20 && (b < 0x09 || b > 0x0D)) || b == 0x7F;
    for (std::size_t len = 1; len <= 9; ++len)
      for (std::size_t at = 0; at < len; ++at) {
        std::string t(len, 'a');
        t[at] = static_cast<char>(b);
        INFO(b << " at " << at << " of " << len);
        CHECK(may_change(t) == changes);
      }
  }
}

TEST_CASE("invisible format characters are removed", "[normalize]") {
  for (const std::uint32_t cp : {0x00ADu, 0x034Fu, 0x061Cu, 0x115Fu, 0x180Eu, 0x200Bu, 0x200Cu, 0x200Du, 0x200Eu,
                                 0x202Eu, 0x2060u, 0x2063u, 0x2066u, 0x3164u, 0xFE0Fu, 0xFEFFu, 0xFFA0u, 0xFFFBu,
                                 0x1D173u, 0xE0001u, 0xE0041u, 0xE0100u}) {
    INFO(std::hex << cp);
    CHECK(is_invisible(cp));
    CHECK(norm("1" + u(cp) + "2") == "12");
  }
  for (const std::uint32_t cp : {0x20u, 0xA0u, 0x2009u, 0x3000u, 0x4E2Du, 0x200Au, 0x2010u, 0xFFFDu})
    CHECK_FALSE(is_invisible(cp));
}

TEST_CASE("control characters that render as nothing are removed, whitespace controls stay", "[normalize]") {
  // NUL between the digits of an ID ("110105\0...", sent as \u0000 in JSON)
  // reaches a model as the digits around it.
  for (const std::uint32_t cp : {0x00u, 0x01u, 0x08u, 0x0Eu, 0x1Bu, 0x1Fu, 0x7Fu, 0x80u, 0x84u, 0x86u, 0x9Fu}) {
    INFO(std::hex << cp);
    CHECK(is_invisible(cp));
    CHECK(norm("1" + u(cp) + "2") == "12");
    CHECK(may_change("1" + u(cp) + "2"));
  }
  CHECK(norm(std::string("110105\0" "19491231\x01" "002X", 20)) == "11010519491231002X");
  for (const std::uint32_t cp : {0x09u, 0x0Au, 0x0Bu, 0x0Cu, 0x0Du, 0x85u}) {
    INFO(std::hex << cp);
    CHECK_FALSE(is_invisible(cp));
    CHECK(norm("1" + u(cp) + "2") == "1" + u(cp) + "2");
  }
}

TEST_CASE("digits of every script become ASCII digits", "[normalize]") {
  struct script {
    std::uint32_t zero;
    const char* name;
  };
  for (const script s : {script{0x0660, "Arabic-Indic"}, {0x06F0, "Extended Arabic-Indic"}, {0x07C0, "NKo"},
                         {0x0966, "Devanagari"}, {0x09E6, "Bengali"}, {0x0BE6, "Tamil"}, {0x0E50, "Thai"},
                         {0x0F20, "Tibetan"}, {0x1040, "Myanmar"}, {0x17E0, "Khmer"}, {0x1810, "Mongolian"},
                         {0xA9D0, "Javanese"}, {0xFF10, "full-width"}, {0x104A0, "Osmanya"}, {0x1D7CE, "math bold"},
                         {0x1D7D8, "math double-struck"}, {0x1D7E2, "math sans-serif"}, {0x1D7EC, "math sans bold"},
                         {0x1D7F6, "math monospace"}, {0x1E950, "Adlam"}, {0x1FBF0, "segmented"}}) {
    INFO(s.name);
    std::string t;
    for (std::uint32_t d = 0; d < 10; ++d) t += u(s.zero + d);
    CHECK(norm(t) == "0123456789");
    CHECK(ascii_digit(s.zero + 7) == '7');
  }
  CHECK(ascii_digit(0x0660 - 1) == 0);
  CHECK(ascii_digit(0x1D7CE - 1) == 0);
  CHECK(norm("ＡＢｘ１") == "ABx1");  // full-width letters too
}

TEST_CASE("rows of Chinese numerals become digits, a numeral in prose stays", "[normalize]") {
  CHECK(norm("一三八一二三四五六七八") == "13812345678");
  CHECK(norm("〇一二三四五六七八九") == "0123456789");
  CHECK(norm("零壹贰叁肆伍陆柒捌玖") == "0123456789");
  CHECK(norm("貳參陸") == "貳參陸");  // three in a row: too short
  CHECK(norm("貳參陸陸") == "2366");   // traditional financial forms
  CHECK(norm("幺三八幺") == "1381");   // 幺: "one" as numbers are read aloud
  // Rows of at least numeral_min_run, invisible characters between them
  // removed as everywhere.
  CHECK(norm("一" + u(0x200B) + "二" + u(0x2060) + "三" + u(0xAD) + "四") == "1234");
  CHECK(norm("一二三") == "一二三");
  // Single separators continue a row and stay; two in a row end it.
  CHECK(norm("一三八 一二三四 五六七八") == "138 1234 5678");
  CHECK(norm("一三八-一二三四-五六七八") == "138-1234-5678");
  CHECK(norm("一 二 三 四") == "1 2 3 4");
  CHECK(norm("一二  三四") == "一二  三四");
  CHECK(norm("一二三四  五") == "1234  五");
  CHECK(norm("统一 13812345678") == "统一 13812345678");
  // Prose: single numerals stay, also right before or after digits, so a
  // number written in digits keeps its boundary.
  CHECK(norm("统一13812345678") == "统一13812345678");
  CHECK(norm("一个一样，十一，第一二名") == "一个一样，十一，第一二名");
  CHECK(normalize("一个一样，统一").identity);
  CHECK(norm("1一二三") == "1一二三");
  // A row touching a digit stays, so it never joins a number written in
  // digits into a longer one (found in review: "〇〇〇〇" before a resident ID
  // in digits hid it). Numerals and digits mixed are not read.
  CHECK(norm("138一二三四五六七八") == "138一二三四五六七八");
  CHECK(norm("〇〇〇〇11010519491231002X") == "〇〇〇〇11010519491231002X");
  CHECK(norm("11010519491231002X〇〇〇〇") == "11010519491231002X〇〇〇〇");
  CHECK(norm("一二三四13812345678") == "一二三四13812345678");
  CHECK(norm("一二三四" + u(0x200B) + "13812345678") == "一二三四13812345678");
  CHECK(norm("13812345678" + u(0x200B) + "一二三四") == "13812345678一二三四");
  CHECK(norm("一二三四" + u(0x0661)) == "一二三四1");  // a digit of another script touches too
  // A row right after an ASCII letter stays when the letter may end an
  // identifier (a check letter, also after one or two separators of any kind:
  // "12345678-Z", a key, an IBAN's currency) or when what follows the row
  // would join it to an identifier (found in review of a version that read
  // rows after one or two letters: "ab一二三四" before a resident ID, an IBAN or
  // an NRIC hid it).
  CHECK(norm("12345678-Z二〇二四年") == "12345678-Z二〇二四年");
  CHECK(norm("12345678，Z二〇二四年") == "12345678，Z二〇二四年");
  CHECK(norm("12345678  Z二〇二四年") == "12345678  Z二〇二四年");
  CHECK(norm("T4227046B一二三四") == "T4227046B一二三四");
  CHECK(norm("NRIC一二三四五六七") == "NRIC一二三四五六七");
  CHECK(norm("ab一二三四DE89") == "ab一二三四DE89");
  CHECK(norm("ab一二三四T4") == "ab一二三四T4");
  CHECK(norm("ab一二三四T&#52;") == "ab一二三四T4");
  CHECK(norm("ab一二三四&#84;4") == "ab一二三四T4");
  CHECK(norm("ab一二三四\\u0054") == "ab一二三四T");
  CHECK(norm("ab一二三四ＴＸ") == "ab一二三四TX");
  CHECK(norm("ab一二三四T" + u(0x200B) + "4") == "ab一二三四T4");
  // Otherwise a row after one or two letters is the body of an identifier
  // that starts with them, and is read: "T四二二七〇四六B", "DE八九 三七〇四 ...".
  CHECK(norm("T四二二七〇四六B") == "T4227046B");
  CHECK(norm("NRIC T四二二七〇四六B, ok") == "NRIC T4227046B, ok");
  CHECK(norm("DE八九 三七〇四 〇〇四四") == "DE89 3704 0044");
  CHECK(norm("号码A一二三四五六七八九") == "号码A123456789");
  CHECK(norm("X一二三四五六七L。") == "X1234567L。");
  CHECK(norm("ab一二三四") == "ab1234");
  CHECK(norm("ab一二三四 T4") == "ab1234 T4");
  CHECK(norm("ab一二三四T" + u(0x200B) + " x") == "ab1234T x");
  CHECK(norm("0200000MUR二〇二四") == "0200000MUR二〇二四");
  CHECK(norm("ab一二三四T4227046B") == "ab一二三四T4227046B");
  CHECK(norm("A一二三四&#8203;11010519491231002X") == "A一二三四11010519491231002X");
  CHECK(norm("call 一三八一二三四五六七八") == "call 13812345678");
  CHECK(norm("一二三四 13812345678") == "1234 13812345678");
  CHECK(norm("13812345678 一二三四") == "13812345678 1234");
  // A row ends at anything else, and each row is decided on its own.
  CHECK(norm("一二三四五十六七八九") == "12345十6789");
  CHECK(norm("一二三四5六七八") == "一二三四5六七八");
  // A numeral written as a reference extends a row but does not start one.
  CHECK(norm("一二三四&#19968;") == "12341");
  CHECK(norm("&#19968;二三四") == "一二三四");
  // A row must end within max_numeral_lookahead bytes: a longer one stays.
  CHECK(norm("一" + std::string(max_removed_run / 3, ' ') + "二三四") == "一" + std::string(max_removed_run / 3, ' ') + "二三四");
  std::string spread = "一";
  for (int k = 0; k < 6; ++k) {
    for (int z = 0; z < 15; ++z) spread += u(0x200B);
    spread += "二";
  }
  CHECK(spread.size() > max_numeral_lookahead);
  CHECK(norm(spread).find("一") != std::string::npos);
  std::string sixty;
  for (int k = 0; k < 60; ++k) sixty += "一";
  CHECK(norm(sixty) == std::string(60, '1'));  // 180 bytes: read
  std::string long_row;
  for (int k = 0; k < 90; ++k) long_row += "一";
  CHECK(norm(long_row) == long_row);  // 270 bytes: too long for an identifier
  // Positions: each folded numeral stands for its three bytes.
  const std::string t = "号码一三八一二三四五六七八。";
  const std::string n = norm(t);
  REQUIRE(n == "号码13812345678。");
  CHECK(source_of(t, 6, 17) == "一三八一二三四五六七八");
  CHECK(numeral_digit(0x4E00) == '1');
  CHECK(numeral_digit(0x5341) == 0);  // 十 (ten) is not a digit
}

TEST_CASE("HTML character references are decoded", "[normalize]") {
  CHECK(norm("&#49;&#x32;&#X33;") == "123");
  CHECK(norm("&#49&#50 and &#51x") == "12 and 3x");  // the semicolon may be left out
  CHECK(norm("Tom &amp; Jerry&nbsp;&lt;&gt;") == "Tom & Jerry" + u(0xA0) + "<>");
  CHECK(norm("1&ZeroWidthSpace;2&zwj;3&shy;4") == "1234");  // and what they decode to is normalized too
  CHECK(norm("&#1633;&#x661;") == "11");                   // Arabic-Indic one, twice
  CHECK(norm("&amp;#49;") == "&#49;");                     // one level only
  for (const char* literal : {"&#;", "&#x;", "&foo;", "&amp", "R&D", "&#0;", "&#55296;", "&#1114112;", "&#00000049;",
                              "& #49;", "&#x0000031;"})
    CHECK(norm(literal) == literal);
}

TEST_CASE("\\u escapes are decoded", "[normalize]") {
  CHECK(norm("\\u0031\\u0032") == "12");
  CHECK(norm("\\u{33}\\U00000034") == "34");
  CHECK(norm("\\uD835\\uDFCF") == "1");  // a surrogate pair: mathematical bold one
  CHECK(norm("a\\u200Bb") == "ab");
  for (const char* literal : {"\\u", "\\u12", "\\uZZZZ", "\\uDFCF", "\\uD835x", "\\n", "C:\\Users\\x", "\\U0011FFFF",
                              "\\u{}", "\\u{110000}"})
    CHECK(norm(literal) == literal);
}

TEST_CASE("each normalized character maps back to the bytes it came from", "[normalize]") {
  const std::string t = "a" + u(0x200B) + "&#49;" + u(0x0662) + "\\u0033x" + u(0xFEFF) + u(0xFEFF);
  const auto n = normalize(t);
  REQUIRE_FALSE(n.identity);
  CHECK(n.text == "a123x");
  CHECK(source_of(t, 0, 1) == "a");
  CHECK(source_of(t, 1, 2) == "&#49;");  // the removed character before it is not its own
  CHECK(source_of(t, 2, 3) == u(0x0662));
  CHECK(source_of(t, 0, 2) == "a" + u(0x200B) + "&#49;");  // but between two, it belongs to the span
  CHECK(source_of(t, 3, 5) == "\\u0033x");                  // the trailing invisible characters do not
  CHECK(n.map.original_start(4) == t.size() - 7);
  CHECK(n.map.original_end(5) == t.size() - 6);
  CHECK(n.map.o_end == t.size());
}

TEST_CASE("at most max_removed_run bytes are removed between two characters", "[normalize]") {
  const std::string zwsp = u(0x200B);  // 3 bytes
  std::string run;
  for (std::size_t i = 0; i * 3 < max_removed_run - 2; ++i) run += zwsp;  // 21 of them: 63 bytes
  CHECK(norm("1" + run + "2") == "12");
  CHECK(norm("1" + run + zwsp + "2") == "1" + zwsp + "2");  // the 22nd stays and breaks the number
  CHECK(norm("1" + run + "2" + run + "3") == "123");           // the count starts again after a character
}

TEST_CASE("fed in any pieces, the normalizer gives the whole-text result", "[normalize][property]") {
  const std::vector<std::string> frags = {"1", "&#", "49", ";", "&#x3", "1", "&am", "p;", "\\u", "00", "31", "\\uD835",
                                          "\\uDFCF", u(0x200B), u(0x0661), "\xE4\xB8", "\xAD", "\xFF", "X", " ", "&",
                                          "\\", "\\u{3", "1}", "&ZeroWidth", "Space;", u(0x1D7CF), "\xF0\x9D",
                                          "一", "二三", "〇", "零壹", "\xE4\xB8", "\x80", "幺", "\xE3\x80", "\x87",
                                          "十", "&#19968;", u(0x200B) + "九", " ", "-", "  ", "T", "ab", "Z",
                                          "&#84;", "\\u0054", "\xEF\xBC\xB4", "MUR", "5", ","};
  std::mt19937 rng(3);
  for (int k = 0; k < 3000; ++k) {
    std::string t;
    const std::size_t n = 1 + rng() % 12;
    for (std::size_t i = 0; i < n; ++i) t += frags[rng() % frags.size()];
    const normalized whole = normalize(t);
    std::string out;
    source_map map;
    normalizer z;
    std::size_t prev = 0;
    while (prev < t.size()) {
      const std::size_t next = std::min(t.size(), prev + 1 + rng() % 5);
      z.feed(std::string_view(t).substr(prev, next - prev), out, map);
      CHECK(z.consumed() + z.pending() == next);
      CHECK(z.pending() <= max_kept_back);
      prev = next;
    }
    z.finish(out, map);
    INFO(t);
    REQUIRE(out == (whole.identity ? t : whole.text));
    REQUIRE(map.o_end == t.size());
    if (whole.identity) continue;
    REQUIRE(map.pieces.size() == whole.map.pieces.size());
    for (std::size_t i = 0; i < map.pieces.size(); ++i) {
      CHECK(map.pieces[i].n == whole.map.pieces[i].n);
      CHECK(map.pieces[i].o == whole.map.pieces[i].o);
      CHECK(map.pieces[i].copy == whole.map.pieces[i].copy);
    }
    // Mapping is monotone and within bounds.
    std::size_t last = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (is_continuation(static_cast<unsigned char>(out[i]))) continue;
      const std::size_t o = map.original_start(i);
      CHECK(o >= last);
      CHECK(o < t.size());
      CHECK(map.original_end(i + 1) - o <= max_expansion);
      last = o;
    }
  }
}

TEST_CASE("base64 runs: maximal, padded, bounded, decoded only when text", "[normalize][base64]") {
  auto runs = [](std::string_view s) {
    base64_tracker t;
    base64_tracker::run r;
    std::vector<std::string> out;
    for (std::size_t i = 0; i < s.size(); ++i)
      if (t.feed(static_cast<unsigned char>(s[i]), i, r) && r.eligible) out.emplace_back(s.substr(r.start, r.end - r.start));
    if (t.finish(s.size(), r) && r.eligible) out.emplace_back(s.substr(r.start, r.end - r.start));
    return out;
  };
  CHECK(runs("x SUQgMTEwMTA1MTk0OTEy y") == std::vector<std::string>{"SUQgMTEwMTA1MTk0OTEy"});
  // Padding need not fit the length, nor the length be a whole number of
  // quads (found in review: two '=' after a run of whole quads, or one
  // character too many, hid a resident ID that any reader decodes anyway).
  // Up to two '=' belong to the run; a third ends it.
  CHECK(runs("(SGVsbG8gd29ybGQh==)") == std::vector<std::string>{"SGVsbG8gd29ybGQh=="});
  CHECK(runs("SGVsbG8gd29ybA==") == std::vector<std::string>{"SGVsbG8gd29ybA=="});
  CHECK(runs("SGVsbG8gd29ybA===") == std::vector<std::string>{"SGVsbG8gd29ybA=="});
  CHECK(runs("SGVsbG8gd29ybA==SGVsbG8gd29ybA=") == std::vector<std::string>{"SGVsbG8gd29ybA==", "SGVsbG8gd29ybA="});
  CHECK(runs("SGVsbG8gd29yb") == std::vector<std::string>{"SGVsbG8gd29yb"});  // 13 characters: the last one's bits dropped
  CHECK(base64_text("SGVsbG8gd29yb") == "Hello wor");
  CHECK(runs("SGVsbG8gd29") == std::vector<std::string>{});  // 11 characters: under base64_min_run
  CHECK(runs("short abc123") == std::vector<std::string>{});
  CHECK(runs("a+b_cdefghijklmnop") == std::vector<std::string>{});   // both alphabets
  CHECK(runs(std::string(base64_max_run + 4, 'A')).empty());          // too long
  CHECK(runs(std::string(base64_max_run, 'A')).size() == 1);
  CHECK(base64_text("SGVsbG8gd29ybGQh") == "Hello world!");
  CHECK(base64_text("SGVsbG8gd29ybGQ") == "Hello world");
  CHECK(base64_text("5L2g5aW9") == "你好");
  CHECK(base64_text("8J+YgCBvayDDqXTDqSDkvaDlpb0=") == "😀 ok été 你好");  // sequences of 4, 2 and 3 bytes
  CHECK(base64_text("/v1/chat/completions").empty());  // a path: 0xFF first
  CHECK(base64_text("AAECAwQF").empty());        // control characters: not text
  CHECK(base64_text("3q2+7w").empty());          // not UTF-8
  CHECK(base64_text("PDw_Pz8-Pg==") == "<<\x3F\x3F\x3F>>");  // URL-safe alphabet
  CHECK(base64_text("PDw/Pz8+Pg") == "<<\x3F\x3F\x3F>>");

  // The runs of a whole text, found without the tracker (as scans find
  // them), are the tracker's eligible runs.
  const auto whole = [](std::string_view s) {
    std::vector<std::string> out;
    for_each_base64_run(s, [&](const base64_tracker::run& r) { out.emplace_back(s.substr(r.start, r.end - r.start)); });
    return out;
  };
  for (const std::string_view s : {"x SUQgMTEwMTA1MTk0OTEy y", "(SGVsbG8gd29ybGQh==)", "SGVsbG8gd29ybA==",
                                   "SGVsbG8gd29ybA==SGVsbG8gd29ybA==", "==SGVsbG8gd29ybA===", "a+b_cdefghijklmnop",
                                   "SGVsbG8gd29yb", "SGVsbG8gd29"})
    CHECK(whole(s) == runs(s));
  CHECK(whole(std::string(base64_max_run, 'A')).size() == 1);
  CHECK(whole(std::string(base64_max_run + 1, 'A')).empty());
  std::uint32_t seed = 12345;
  const auto next = [&seed] { return seed = seed * 1103515245u + 12345u; };
  static constexpr std::string_view alphabet = "AZaz09+/-_= .\n\xC3\xA9";
  std::size_t found = 0;
  for (int n = 0; n < 20000; ++n) {
    std::string s;
    const std::size_t len = next() % 40;
    for (std::size_t i = 0; i < len; ++i) s += alphabet[(next() >> 8) % (next() % 4 == 0 ? alphabet.size() : 11)];
    const auto want = runs(s);
    found += want.size();
    INFO(s);
    CHECK(whole(s) == want);
  }
  CHECK(found > 100);
}
