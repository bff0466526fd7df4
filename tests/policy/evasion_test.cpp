// Hidden identifiers: a PRC resident ID sent from CN to a US route, written
// with invisible characters between its digits, spaced or grouped in unusual
// ways, as HTML character references or escapes, in other scripts' digits or
// in base64. Each encoding must be found by the shipped packs at the exact
// bytes it occupies, whole and streamed in random pieces, and redaction must
// remove exactly those bytes (invisible characters included).
#include <catch2/catch.hpp>

#include <functional>
#include <random>

#include "policy/normalize.hpp"
#include "policy/text.hpp"
#include "support.hpp"

using namespace customs::policy;
using namespace customs::policy::testing;

namespace {

const std::string id = "11010519491231002X";

std::string utf8(std::uint32_t cp) {
  std::string s;
  text::encode(cp, s);
  return s;
}

// Every character of id, with sep between them.
std::string joined(const std::string& sep) {
  std::string s;
  for (std::size_t i = 0; i < id.size(); ++i) {
    if (i) s += sep;
    s += id[i];
  }
  return s;
}

// id with its digits in another script (zero at `zero`), X kept.
std::string digits_from(std::uint32_t zero) {
  std::string s;
  for (const char c : id) s += c == 'X' ? std::string("X") : utf8(zero + static_cast<std::uint32_t>(c - '0'));
  return s;
}

std::string each(const std::function<std::string(char)>& f) {
  std::string s;
  for (const char c : id) s += f(c);
  return s;
}

std::string base64(std::string_view in) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const auto v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                   static_cast<unsigned char>(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += alphabet[(v >> k) & 63];
  }
  if (i + 1 == in.size()) {
    const auto v = static_cast<unsigned char>(in[i]) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const auto v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// One row of the table: the evasion class (as the detection guide names it),
// the encoding, and the ID written that way. Every row must be found.
struct vector {
  const char* cls;
  const char* name;
  std::string hidden;
};

// Every character of id in another form, with sep between them.
std::string each_sep(const std::function<std::string(char)>& f, const std::string& sep) {
  std::string s;
  for (std::size_t i = 0; i < id.size(); ++i) s += (i ? sep : "") + f(id[i]);
  return s;
}

std::string hex_ref(char c, const char* prefix, int width) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string h;
  for (int k = (width - 1) * 4; k >= 0; k -= 4) h += hex[(c >> k) & 15];
  return prefix + h;
}

// A digit as the Chinese numeral of a ten-numeral list (each three bytes of
// UTF-8, 0 first); any other character as it is.
std::string numeral(char c, std::string_view ten) {
  if (c < '0' || c > '9') return std::string(1, c);
  return std::string(ten.substr(static_cast<std::size_t>(c - '0') * 3, 3));
}

// The ID grouped 6-8-4 with sep between the groups.
std::string grouped(const std::string& sep) { return id.substr(0, 6) + sep + id.substr(6, 8) + sep + id.substr(14); }

std::vector<vector> vectors() {
  const auto zw = utf8(0x200B);
  std::vector<vector> v = {
      // Invisible characters between the characters.
      {"invisible", "zero-width space", joined(zw)},
      {"invisible", "zero-width joiner", joined(utf8(0x200D))},
      {"invisible", "zero-width non-joiner", joined(utf8(0x200C))},
      {"invisible", "word joiner", joined(utf8(0x2060))},
      {"invisible", "soft hyphen", joined(utf8(0x00AD))},
      {"invisible", "byte order mark", joined(utf8(0xFEFF))},
      {"invisible", "left-to-right mark", joined(utf8(0x200E))},
      {"invisible", "right-to-left mark", joined(utf8(0x200F))},
      {"invisible", "Arabic letter mark", joined(utf8(0x061C))},
      {"invisible", "left-to-right embedding", joined(utf8(0x202A))},
      {"invisible", "first strong isolate", joined(utf8(0x2068))},
      {"invisible", "function application", joined(utf8(0x2061))},
      {"invisible", "invisible times", joined(utf8(0x2062))},
      {"invisible", "invisible separator", joined(utf8(0x2063))},
      {"invisible", "Mongolian vowel separator", joined(utf8(0x180E))},
      {"invisible", "combining grapheme joiner", joined(utf8(0x034F))},
      {"invisible", "variation selector-16", joined(utf8(0xFE0F))},
      {"invisible", "tag space", joined(utf8(0xE0020))},
      {"invisible", "Hangul filler", joined(utf8(0x3164))},
      {"invisible", "two invisible characters", joined(zw + utf8(0x2060))},
      {"invisible", "one zero-width space in the middle", id.substr(0, 9) + zw + id.substr(9)},
      // Separators between digits or groups.
      {"separators", "single spaces", joined(" ")},
      {"separators", "single dashes", joined("-")},
      {"separators", "single dots", joined(".")},
      {"separators", "single slashes", joined("/")},
      {"separators", "groups of four with slashes", "1101/0519/4912/3100/2X"},
      {"separators", "groups with underscores", "110105_19491231_002X"},
      {"separators", "groups on new lines", "110105\n19491231\n002X"},
      {"separators", "groups on CR LF lines", "110105\r\n19491231\r\n002X"},
      {"separators", "groups of three with dots", "110.105.194.912.310.02X"},
      {"separators", "groups of two with dashes", "11-01-05-19-49-12-31-00-2X"},
      {"separators", "mixed separators", "110105 1949-1231/002X"},
      {"separators", "no-break spaces", grouped(utf8(0x00A0))},
      {"separators", "narrow no-break spaces", grouped(utf8(0x202F))},
      {"separators", "figure spaces", grouped(utf8(0x2007))},
      {"separators", "thin spaces", grouped(utf8(0x2009))},
      {"separators", "ideographic spaces", grouped(utf8(0x3000))},
      {"separators", "en dashes", grouped(utf8(0x2013))},
      {"separators", "tabs between groups", grouped("\t")},
      {"separators", "two spaces between groups", grouped("  ")},
      {"separators", "two tabs between groups", grouped("\t\t")},
      {"separators", "a space and a tab between groups", grouped(" \t")},
      {"separators", "two dashes between groups", grouped("--")},
      {"separators", "tabs between every two digits", joined("\t")},
      {"separators", "two spaces between every two digits", joined("  ")},
      {"separators", "groups on lines cut by U+2028", grouped(utf8(0x2028))},
      {"separators", "groups on paragraphs cut by U+2029", grouped(utf8(0x2029))},
      // Found by attacking customsd: separators that read as a gap or a
      // dash between groups but were not separators.
      {"separators", "em spaces", grouped(utf8(0x2003))},
      {"separators", "hair spaces", grouped(utf8(0x200A))},
      {"separators", "vertical tabs", grouped("\v")},
      {"separators", "form feeds", grouped("\f")},
      {"separators", "em dashes", grouped(utf8(0x2014))},
      {"separators", "horizontal bars", grouped(utf8(0x2015))},
      {"separators", "middle dots", grouped(utf8(0x00B7))},
      {"separators", "katakana middle dots", grouped(utf8(0x30FB))},
      {"separators", "ideographic commas", grouped(utf8(0x3001))},
      // A combining mark on every digit (it draws on the digit: the digit is
      // still read), and digits in keycaps. As with every invisible
      // character, a mark after the last character is not part of the match
      // (it stays after a redaction), so these end with the bare last one.
      {"invisible", "combining low line on each character", joined(utf8(0x0332))},
      {"invisible", "combining acute accent on each character", joined(utf8(0x0301))},
      {"invisible", "combining long stroke on each character", joined(utf8(0x0336))},
      {"invisible", "keycaps", joined(utf8(0xFE0F) + utf8(0x20E3))},
      // Digits of category No: superscript, subscript, circled.
      {"digits", "superscript digits", each([](char c) {
         if (c == 'X') return std::string("X");
         static const std::uint32_t sup[] = {0x2070, 0xB9, 0xB2, 0xB3, 0x2074, 0x2075, 0x2076, 0x2077, 0x2078, 0x2079};
         return utf8(sup[c - '0']);
       })},
      {"digits", "subscript digits", each([](char c) { return c == 'X' ? std::string("X") : utf8(0x2080 + static_cast<std::uint32_t>(c - '0')); })},
      {"digits", "circled digits", each([](char c) {
         if (c == 'X') return std::string("X");
         return c == '0' ? utf8(0x24EA) : utf8(0x2460 + static_cast<std::uint32_t>(c - '1'));
       })},
      {"separators", "groups on lines cut by NEL", grouped(utf8(0x0085))},
      {"separators", "full-width hyphen-minus", grouped(utf8(0xFF0D))},
      {"separators", "lower-case check character", "11010519491231002x"},
      // HTML character references and escapes.
      {"references", "HTML decimal references", each([](char c) { return "&#" + std::to_string(static_cast<int>(c)) + ";"; })},
      {"references", "HTML hex references", each([](char c) { return hex_ref(c, "&#x", 2) + ";"; })},
      {"references", "HTML upper-case hex references", each([](char c) { return hex_ref(c, "&#X", 2) + ";"; })},
      {"references", "HTML zero-padded decimal references", each([](char c) { return "&#00" + std::to_string(static_cast<int>(c)) + ";"; })},
      {"references", "HTML references without semicolons", each([](char c) { return "&#" + std::to_string(static_cast<int>(c)); })},
      {"references", "HTML named zero-width spaces between digits", joined("&ZeroWidthSpace;")},
      {"references", "HTML named soft hyphens between digits", joined("&shy;")},
      {"references", "HTML named no-break spaces between groups", grouped("&nbsp;")},
      {"references", "half the digits as references", each_sep([](char c) { return c % 2 ? "&#" + std::to_string(static_cast<int>(c)) + ";" : std::string(1, c); }, "")},
      {"references", "\\u escapes", each([](char c) { return hex_ref(c, "\\u", 4); })},
      {"references", "\\u{} escapes", each([](char c) { return hex_ref(c, "\\u{", 2) + "}"; })},
      {"references", "\\U escapes", each([](char c) { return hex_ref(c, "\\U", 8); })},
      {"references", "\\u escaped zero-width spaces between digits", joined("\\u200b")},
      // Digits of other scripts.
      {"digits", "Arabic-Indic digits", digits_from(0x0660)},
      {"digits", "Extended Arabic-Indic digits", digits_from(0x06F0)},
      {"digits", "Devanagari digits", digits_from(0x0966)},
      {"digits", "Bengali digits", digits_from(0x09E6)},
      {"digits", "Thai digits", digits_from(0x0E50)},
      {"digits", "Myanmar digits", digits_from(0x1040)},
      {"digits", "full-width digits", digits_from(0xFF10)},
      {"digits", "mathematical bold digits", digits_from(0x1D7CE)},
      {"digits", "mathematical double-struck digits", digits_from(0x1D7D8)},
      {"digits", "mathematical sans-serif digits", digits_from(0x1D7E2)},
      {"digits", "mathematical monospace digits", digits_from(0x1D7F6)},
      {"digits", "every digit in another script", [] {
         static constexpr std::uint32_t zeros[] = {0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50, 0xFF10, 0x1D7CE, 0x1D7F6};
         std::string s;
         for (std::size_t i = 0; i < id.size(); ++i)
           s += id[i] == 'X' ? std::string("X") : utf8(zeros[i % 8] + static_cast<std::uint32_t>(id[i] - '0'));
         return s;
       }()},
      {"digits", "Arabic-Indic digits and zero-width spaces", [&] {
         std::string s;
         for (std::size_t i = 0; i < id.size(); ++i)
           s += (i ? zw : "") + (id[i] == 'X' ? std::string("X") : utf8(0x0660 + static_cast<std::uint32_t>(id[i] - '0')));
         return s;
       }()},
      // Chinese numerals (in a row of at least four they read as digits).
      {"numerals", "Chinese numerals", each_sep([](char c) { return numeral(c, "〇一二三四五六七八九"); }, "")},
      {"numerals", "Chinese numerals with 零 for zero", each_sep([](char c) { return numeral(c, "零一二三四五六七八九"); }, "")},
      {"numerals", "financial numerals", each_sep([](char c) { return numeral(c, "零壹贰叁肆伍陆柒捌玖"); }, "")},
      {"numerals", "traditional financial numerals", each_sep([](char c) { return numeral(c, "零壹貳參肆伍陸柒捌玖"); }, "")},
      {"numerals", "numerals as read aloud (幺 for one)", each_sep([](char c) { return numeral(c, "〇幺二三四五六七八九"); }, "")},
      {"numerals", "Chinese numerals and zero-width spaces", each_sep([](char c) { return numeral(c, "〇一二三四五六七八九"); }, zw)},
      {"numerals", "Chinese numerals grouped 6-8-4 with spaces", [] {
         const auto n = each_sep([](char c) { return numeral(c, "〇一二三四五六七八九"); }, "");
         return n.substr(0, 18) + " " + n.substr(18, 24) + " " + n.substr(42);
       }()},
      // Base64 in prompt text.
      {"base64", "base64 of the ID with a label", base64("ID " + id)},
      {"base64", "base64 of a Chinese sentence with the ID", base64("身份证号 " + id)},
      {"base64", "base64 of the bare ID", base64(id)},
      {"base64", "base64 without padding", [] {
         auto s = base64("ID: " + id + "!");
         while (!s.empty() && s.back() == '=') s.pop_back();
         return s;
       }()},
  };
  return v;
}

const std::string before = "请核对身份证号：";
const std::string after = "，谢谢";

const rule_set_ptr& redact_pack() {
  static const rule_set_ptr rs = load_or_abort(source_dir() / "tests/policy/data/evasion");
  return rs;
}

}  // namespace

TEST_CASE("every evasion of the resident ID is found at its exact bytes and blocked CN to US", "[evasion]") {
  for (const auto& v : vectors()) {
    INFO(v.cls << ", " << v.name << ": " << v.hidden);
    const std::string t = before + v.hidden + after;
    const auto e = shipped()->evaluate(t, flow("CN", "US"));
    CHECK(e.result.act == action::block);
    std::vector<const finding*> ids;
    for (const auto& f : e.result.findings)
      if (f.detector == "cn.resident_id") ids.push_back(&f);
    REQUIRE(ids.size() == 1);
    CHECK(ids[0]->start == before.size());
    CHECK(ids[0]->end == before.size() + v.hidden.size());
    CHECK(ids[0]->text == v.hidden);
    CHECK(e.result.rules == std::vector<std::string>{"cn.pipl.sensitive.block"});
  }
}

TEST_CASE("redaction removes every byte of a hidden ID, invisible characters included", "[evasion]") {
  for (const auto& v : vectors()) {
    INFO(v.name);
    const auto e = redact_pack()->evaluate(before + v.hidden + after, flow("CN", "US"));
    CHECK(e.result.act == action::redact);
    CHECK(e.redacted == before + "[REDACTED:pi.national_id]" + after);
  }
}

TEST_CASE("streamed in random pieces, every evasion gives the whole-text result", "[evasion][stream]") {
  std::mt19937 rng(5);
  for (const auto& v : vectors()) {
    const std::string t = before + v.hidden + after;
    for (const auto* rs : {&shipped(), &redact_pack()}) {
      const auto e = expect_of(**rs, t, flow("CN", "US"));
      REQUIRE((e.block != nullptr) == (rs == &shipped()));
      for (int k = 0; k < 40; ++k) {
        std::vector<std::size_t> cuts;
        const std::size_t n = 1 + rng() % 12;
        for (std::size_t i = 0; i < n; ++i) cuts.push_back(rng() % (t.size() + 1));
        std::sort(cuts.begin(), cuts.end());
        INFO(v.name << " with " << cuts.size() << " cuts");
        REQUIRE(stream_agrees(*rs, flow("CN", "US"), t, cuts, e));
      }
      std::vector<std::size_t> bytes;
      for (std::size_t i = 1; i < t.size(); ++i) bytes.push_back(i);
      INFO(v.name << " byte by byte");
      REQUIRE(stream_agrees(*rs, flow("CN", "US"), t, bytes, e));
    }
  }
}

TEST_CASE("near misses stay near misses however they are written", "[evasion]") {
  const std::string bad = "110105194912310021";  // wrong check digit
  for (const std::string& hidden : {[&] {
                                      std::string s;
                                      for (const char c : bad) s += (s.empty() ? "" : "\xE2\x80\x8B") + std::string(1, c);
                                      return s;
                                    }(),
                                    std::string("1101/0519/4912/3100/21"), base64("ID " + bad)}) {
    INFO(hidden);
    const auto f = shipped()->scan(before + hidden + after, 0);
    for (const auto& x : f) CHECK(x.detector != "cn.resident_id");
  }
}

TEST_CASE("base64 with padding that does not fit or one character too many does not hide the ID", "[evasion]") {
  // Found in review: a run of whole quads followed by "==" (and text), or one
  // character more than a whole number of quads, was not decoded.
  const std::string b = base64(id);  // 24 characters, no padding
  REQUIRE(b.size() % 4 == 0);
  REQUIRE(b.back() != '=');
  for (const std::string& t : {b + "==", b + "==abc", b + "===", b + "A", b + "A==", b + "=" + b}) {
    INFO(t);
    const auto e = shipped()->evaluate(before + t + after, flow("CN", "US"));
    CHECK(e.result.act == action::block);
    bool found = false;
    for (const auto& f : e.result.findings) found = found || f.detector == "cn.resident_id";
    CHECK(found);
  }
}

TEST_CASE("Chinese numerals beside an identifier in digits do not hide it", "[evasion]") {
  // Found in review: a row of numerals touching the ID was read as digits and
  // made it a 22-digit number that no detector matches.
  for (const std::string& t : {"〇〇〇〇" + id, id + "〇〇〇〇", "一二三四" + id + "五六七八",
                               "一二三四\xE2\x80\x8B" + id, "二〇二六" + id}) {
    INFO(t);
    const auto e = shipped()->evaluate(before + t + after, flow("CN", "US"));
    CHECK(e.result.act == action::block);
    bool found = false;
    for (const auto& f : e.result.findings) found = found || (f.detector == "cn.resident_id" && f.text == id);
    CHECK(found);
  }
  for (const std::string t : {"一二三四13812345678", "13812345678一二三四", "电话13812345678五六七八号"}) {
    INFO(t);
    bool found = false;
    for (const auto& f : shipped()->scan(t, 0)) found = found || (f.detector == "cn.mobile" && f.text == "13812345678");
    CHECK(found);
  }
}

TEST_CASE("Chinese numerals beside identifiers that start or end with letters do not hide them", "[evasion]") {
  // Found in review of a version that read a row of numerals after one or two
  // letters: numerals after a check letter, a key or an IBAN's currency, and a
  // short prefix of letters and numerals before an identifier, hid it.
  const std::vector<std::pair<std::string, std::string>> kept = {
      {"sg.nric", "NRIC T4227046B一二三四"},
      {"es.dni", "DNI 12345678-Z二〇二四年到期"},
      {"es.dni", "NIE X-1234567-L二〇二四年"},
      {"cn.resident_id", "身份证 11010519491231002 X二〇二四年办理"},
      {"cn.resident_id", "号码 A一二三四&#8203;11010519491231002X"},
      {"eu.iban", "IBAN MU17BOMM0101101030300200000MUR二〇二四年开户"},
      {"eu.iban", "号码 ab一二三四DE89370400440532013000"},
      {"sg.nric", "NRIC一二三四T4227046B"},
      {"sg.nric", "号码 ab一二三四T4227046B"},
  };
  for (const auto& [detector, t] : kept) {
    INFO(t);
    bool found = false;
    for (const auto& f : shipped()->scan(t, 0)) found = found || f.detector == detector;
    CHECK(found);
  }
  bool blocked = false;
  for (const auto& f : shipped()->scan("key AKIAABCDEFGHIJKLMNOP二〇二四", 0)) blocked = blocked || f.detector.starts_with("secret.");
  CHECK(blocked);
}

TEST_CASE("identifiers that start with letters are found in Chinese numerals", "[evasion]") {
  // The letters and the check letter stay; the row of numerals after one or
  // two letters is the identifier's body.
  const std::vector<std::pair<std::string, std::string>> hidden = {
      {"sg.nric", "T四二二七〇四六B"},
      {"tw.id", "C一六五五五四七六四"},
      {"es.dni", "X一二三四五六七L"},
      {"eu.iban", "DE八九 三七〇四 〇〇四四 〇五三二 〇一三〇 〇〇"},
  };
  for (const auto& [detector, t] : hidden) {
    const std::string text = "号码 " + t + "，谢谢";
    INFO(text);
    std::vector<std::string> got;
    for (const auto& f : shipped()->scan(text, 0))
      if (f.detector == detector) got.push_back(f.text);
    CHECK(got == std::vector<std::string>{t});
  }
}

TEST_CASE("ordinary text with numbers, entities and invisible characters has no finding", "[evasion]") {
  for (const std::string t : {
           "Meeting on 2024-01-15 at 10:30, room 4.12; budget 1,234,567.89 EUR (version 2.3.1).",
           "Tom &amp; Jerry &lt;3 &#169; 2024 &mdash; page 12 of 340",
           "emoji \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 family, soft\xC2\xADhyphen",
           "path C:\\Users\\admin\\u2020 and \\n escapes",
           "الأرقام ١٢٣ و ٤٥٦ في النص",
           "SGVsbG8sIHdvcmxkISBUaGlzIGlzIGp1c3QgdGV4dC4=",  // base64 of plain text
           "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
           "一个一样，统一，十一，三三两两，七七八八，一五一十，二〇二六年十二月二日，第一二三名",
       }) {
    INFO(t);
    CHECK(shipped()->scan(t, 0).empty());
  }
}
