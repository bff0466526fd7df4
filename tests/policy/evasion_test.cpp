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

struct vector {
  const char* name;
  std::string hidden;  // how the ID is written
};

std::vector<vector> vectors() {
  return {
      {"zero-width space", joined(utf8(0x200B))},
      {"zero-width joiner", joined(utf8(0x200D))},
      {"zero-width non-joiner", joined(utf8(0x200C))},
      {"word joiner", joined(utf8(0x2060))},
      {"soft hyphen", joined(utf8(0x00AD))},
      {"byte order mark", joined(utf8(0xFEFF))},
      {"two invisible characters", joined(utf8(0x200B) + utf8(0x2060))},
      {"single spaces", joined(" ")},
      {"groups of four with slashes", "1101/0519/4912/3100/2X"},
      {"groups with underscores", "110105_19491231_002X"},
      {"groups on new lines", "110105\n19491231\n002X"},
      {"groups on CR LF lines", "110105\r\n19491231\r\n002X"},
      {"groups of three with dots", "110.105.194.912.310.02X"},
      {"groups of two with dashes", "11-01-05-19-49-12-31-00-2X"},
      {"HTML decimal references", each([](char c) { return "&#" + std::to_string(static_cast<int>(c)) + ";"; })},
      {"HTML hex references", each([](char c) {
         static constexpr char hex[] = "0123456789abcdef";
         return std::string("&#x") + hex[c >> 4] + hex[c & 15] + ";";
       })},
      {"HTML references without semicolons", each([](char c) { return "&#" + std::to_string(static_cast<int>(c)); })},
      {"\\u escapes", each([](char c) {
         static constexpr char hex[] = "0123456789ABCDEF";
         return std::string("\\u00") + hex[c >> 4] + hex[c & 15];
       })},
      {"Arabic-Indic digits", digits_from(0x0660)},
      {"Extended Arabic-Indic digits", digits_from(0x06F0)},
      {"Devanagari digits", digits_from(0x0966)},
      {"full-width digits", digits_from(0xFF10)},
      {"mathematical bold digits", digits_from(0x1D7CE)},
      {"mathematical monospace digits", digits_from(0x1D7F6)},
      {"Arabic-Indic digits and zero-width spaces", [] {
         std::string s;
         for (std::size_t i = 0; i < id.size(); ++i)
           s += (i ? utf8(0x200B) : "") + (id[i] == 'X' ? std::string("X") : utf8(0x0660 + static_cast<std::uint32_t>(id[i] - '0')));
         return s;
       }()},
      {"base64 of the ID with a label", base64("ID " + id)},
      {"base64 of a Chinese sentence with the ID", base64("身份证号 " + id)},
  };
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
    INFO(v.name << ": " << v.hidden);
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

TEST_CASE("ordinary text with numbers, entities and invisible characters has no finding", "[evasion]") {
  for (const std::string t : {
           "Meeting on 2024-01-15 at 10:30, room 4.12; budget 1,234,567.89 EUR (version 2.3.1).",
           "Tom &amp; Jerry &lt;3 &#169; 2024 &mdash; page 12 of 340",
           "emoji \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 family, soft\xC2\xADhyphen",
           "path C:\\Users\\admin\\u2020 and \\n escapes",
           "الأرقام ١٢٣ و ٤٥٦ في النص",
           "SGVsbG8sIHdvcmxkISBUaGlzIGlzIGp1c3QgdGV4dC4=",  // base64 of plain text
           "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       }) {
    INFO(t);
    CHECK(shipped()->scan(t, 0).empty());
  }
}
