#include <catch2/catch.hpp>

#include <random>

#include "policy/text.hpp"
#include "support.hpp"

using namespace customs::policy;
using namespace customs::policy::testing;

namespace {

// One detector, one rule per action on it (scoped by destination), a flow rule on
// file uploads, and exceptions.
const char* engine_pack = R"(schema: customs/v1
pack: {id: engine, version: "1"}
jurisdictions:
  far_away: {source: test, date: 2024-01-01, members: [AQ, BV]}
detectors:
  - id: t.code
    category: test.code
    pattern: 'C\d{4}'
  - id: t.secret
    category: test.secret.key
    sensitive: true
    pattern: 'S\d{4}'
  - id: t.word
    category: test.word
    keywords: [alpha, alphabet, 绝密]
    ignore_case: true
rules:
  - id: r.tag
    when: {detectors: [t.code], dst: [US, JP, CN, AQ]}
    then: {action: tag, tags: [code-seen]}
  - id: r.redact
    when: {detectors: [t.code], dst: [JP, CN, AQ]}
    then: {action: redact, redaction: last4, tags: [code-redacted]}
  - id: r.block
    when: {detectors: [t.code], dst: [CN, AQ]}
    then: {action: block, tags: [code-blocked]}
  - id: r.sensitive
    when: {sensitive: true, src: {not: [far_away]}, direction: response}
    then: {action: redact, redaction: mask}
  - id: r.words
    when: {detectors: [t.word], tenants: {not: [quiet]}}
    then: {action: redact}
  - id: r.secret-category
    when: {categories: [test.secret.*]}
    then: {action: tag, tags: [secret-category]}
  - id: r.files
    when: {parts: [file, audio], dst: [far_away]}
    then: {action: block, tags: [upload]}
exceptions:
  - id: x.acme-tag
    rules: [r.block]
    tenants: [acme]
    action: tag
    reason: pilot
    expires: 2030-12-31
  - id: x.acme-allow
    rules: [r.block, r.redact]
    tenants: [acme]
    routes: [/research]
    reason: research route
    expires: 2030-12-31
  - id: x.old
    rules: [r.block]
    tenants: [oldco]
    reason: ended
    expires: 2020-01-01
)";

const rule_set_ptr& engine() {
  static const rule_set_ptr rs = [] {
    load_options o;
    o.now = day(2025, 1, 1);
    auto r = load_yaml(engine_pack, o);
    for (const auto& d : r.diagnostics)
      if (d.level == diagnostic::severity::error) FAIL(d.to_string());
    return r.rules;
  }();
  return rs;
}

flow_context at(flow_context c, std::chrono::system_clock::time_point t) {
  c.now = t;
  return c;
}

}  // namespace

TEST_CASE("the most severe action of the matching rules wins", "[engine]") {
  const auto& rs = *engine();
  const auto now = day(2025, 1, 1);
  CHECK(rs.evaluate("code C1234", at(flow("DE", "FR"), now)).result.act == action::allow);
  CHECK(rs.evaluate("code C1234", at(flow("DE", "US"), now)).result.act == action::tag);
  CHECK(rs.evaluate("code C1234", at(flow("DE", "JP"), now)).result.act == action::redact);
  const auto v = rs.evaluate("code C1234", at(flow("DE", "CN"), now)).result;
  CHECK(v.act == action::block);
  CHECK(v.rules == std::vector<std::string>{"r.block", "r.redact", "r.tag"});
  CHECK(v.tags == std::vector<std::string>{"code-blocked", "code-redacted", "code-seen"});
  REQUIRE(v.findings.size() == 1);
  CHECK(v.findings[0].applied == action::block);
  CHECK(v.rule_set_hash == rs.hash());
}

TEST_CASE("rule order in the files never changes a verdict", "[engine]") {
  // The same rules, listed in reverse order, with exceptions reversed too.
  std::string y = engine_pack;
  const auto rules_at = y.find("rules:\n");
  const auto exc_at = y.find("exceptions:\n");
  std::string rules = y.substr(rules_at + 7, exc_at - rules_at - 7);
  std::string excs = y.substr(exc_at + 12);
  auto reverse_items = [](const std::string& block) {
    std::vector<std::string> items;
    std::size_t pos = 0;
    while ((pos = block.find("  - id:", pos)) != std::string::npos) {
      const auto next = block.find("  - id:", pos + 1);
      items.push_back(block.substr(pos, next == std::string::npos ? std::string::npos : next - pos));
      pos = pos + 1;
    }
    std::string out;
    for (auto it = items.rbegin(); it != items.rend(); ++it) out += *it;
    return out;
  };
  const std::string reversed = y.substr(0, rules_at) + "rules:\n" + reverse_items(rules) + "exceptions:\n" + reverse_items(excs);
  load_options o;
  o.now = day(2025, 1, 1);
  const auto r = load_yaml(reversed, o);
  REQUIRE(r.ok());
  CHECK(r.rules->hash() == engine()->hash());
  const auto now = day(2025, 1, 1);
  for (const auto& c : {flow("DE", "CN", direction::request, "acme"), flow("DE", "CN", direction::request, "acme", "/research"),
                        flow("DE", "JP"), flow("AQ", "AQ", direction::response)}) {
    const auto a = engine()->evaluate("C1234 S9999 alphabet", at(c, now));
    const auto b = r.rules->evaluate("C1234 S9999 alphabet", at(c, now));
    CHECK(a.result.act == b.result.act);
    CHECK(a.result.rules == b.result.rules);
    CHECK(a.result.exceptions == b.result.exceptions);
    CHECK(a.redacted == b.redacted);
  }
}

TEST_CASE("a current exception lowers the rules it names, for its scope only", "[engine]") {
  const auto& rs = *engine();
  const auto now = day(2025, 1, 1);
  // acme: r.block lowered to tag; r.redact still redacts: the finding is redacted.
  auto v = rs.evaluate("C1234", at(flow("DE", "CN", direction::request, "acme"), now)).result;
  CHECK(v.act == action::redact);
  CHECK(v.exceptions == std::vector<std::string>{"x.acme-tag"});
  CHECK(v.rules == std::vector<std::string>{"r.block", "r.redact", "r.tag"});
  CHECK(v.tags == std::vector<std::string>{"code-blocked", "code-redacted", "code-seen"});  // r.block is now a tag
  // acme on /research: both exceptions apply to r.block; the lowest (allow) wins,
  // and r.redact is lowered too.
  v = rs.evaluate("C1234", at(flow("DE", "CN", direction::request, "acme", "/research"), now)).result;
  CHECK(v.act == action::tag);
  CHECK(v.exceptions == std::vector<std::string>{"x.acme-allow", "x.acme-tag"});
  CHECK(v.tags == std::vector<std::string>{"code-seen"});  // rules lowered to allow add no tags
  // Another tenant, or another route for the route-scoped one: no change.
  CHECK(rs.evaluate("C1234", at(flow("DE", "CN", direction::request, "other"), now)).result.act == action::block);
  CHECK(rs.evaluate("C1234", at(flow("DE", "CN", direction::request, "other", "/research"), now)).result.act ==
        action::block);
  // An exception never lowers a rule it does not name.
  CHECK(rs.evaluate("S1234", at(flow("DE", "CN", direction::response, "acme", "/research"), now)).result.act ==
        action::redact);
}

TEST_CASE("an exception stops applying after its expiry day", "[engine]") {
  const auto& rs = *engine();
  const auto c = flow("DE", "CN", direction::request, "acme");
  CHECK(rs.evaluate("C1234", at(c, day(2030, 12, 31))).result.act == action::redact);
  CHECK(rs.evaluate("C1234", at(c, day(2031, 1, 1))).result.act == action::block);
  CHECK(rs.evaluate("C1234", at(c, day(2031, 1, 1))).result.exceptions.empty());
  // Expired long ago.
  CHECK(rs.evaluate("C1234", at(flow("DE", "CN", direction::request, "oldco"), day(2025, 1, 1))).result.act ==
        action::block);
}

TEST_CASE("direction, source groups with negation and tenants select rules", "[engine]") {
  const auto& rs = *engine();
  const auto now = day(2025, 1, 1);
  // r.sensitive: responses, from anywhere but far_away.
  CHECK(rs.evaluate("S1234", at(flow("DE", "US", direction::response), now)).result.act == action::redact);
  CHECK(rs.evaluate("S1234", at(flow("DE", "US", direction::request), now)).result.act == action::tag);
  CHECK(rs.evaluate("S1234", at(flow("AQ", "US", direction::response), now)).result.act == action::tag);
  CHECK(rs.evaluate("S1234", at(flow("AQ", "US", direction::response), now)).result.tags ==
        std::vector<std::string>{"secret-category"});
  CHECK(rs.evaluate("S1234", at(flow("", "US", direction::response), now)).result.act == action::redact);
  CHECK(rs.evaluate("S1234", at(flow("de", "us", direction::response), now)).result.act == action::redact);
  // r.words: every tenant but quiet.
  CHECK(rs.evaluate("alpha", at(flow("DE", "US", direction::request, "loud"), now)).result.act == action::redact);
  CHECK(rs.evaluate("alpha", at(flow("DE", "US", direction::request, "quiet"), now)).result.act == action::allow);
}

TEST_CASE("rules can match non-text parts without any finding", "[engine]") {
  const auto& rs = *engine();
  auto c = at(flow("DE", "AQ"), day(2025, 1, 1));
  CHECK(rs.evaluate("hello", c).result.act == action::allow);
  c.non_text_parts["file"] = 1;
  auto v = rs.evaluate("hello", c).result;
  CHECK(v.act == action::block);
  CHECK(v.rules == std::vector<std::string>{"r.files"});
  CHECK(v.tags == std::vector<std::string>{"upload"});
  CHECK(v.findings.empty());
  c.non_text_parts["file"] = 0;
  c.non_text_parts["image"] = 3;
  CHECK(rs.evaluate("hello", c).result.act == action::allow);
  c.non_text_parts["audio"] = 1;
  CHECK(rs.evaluate("hello", c).result.act == action::block);
  c.dst = "US";
  CHECK(rs.evaluate("hello", c).result.act == action::allow);
}

TEST_CASE("redaction styles: label, mask, last four", "[engine]") {
  const auto& rs = *engine();
  const auto now = day(2025, 1, 1);
  CHECK(rs.evaluate("code C1234.", at(flow("DE", "JP"), now)).redacted == "code *1234.");
  CHECK(rs.evaluate("S1234 and S5678", at(flow("DE", "US", direction::response), now)).redacted == "***** and *****");
  CHECK(rs.evaluate("say Alpha!", at(flow("DE", "US"), now)).redacted == "say [REDACTED:test.word]!");
}

TEST_CASE("overlapping redactions never show what the other hides", "[engine]") {
  const auto r = load_yaml(R"(schema: customs/v1
pack: {id: overlap, version: "1"}
detectors:
  - {id: o.long, category: o.long, pattern: 'A-\d{4}-\d{4}'}
  - {id: o.tail, category: o.tail, pattern: '\d{4}-\d{4}-B'}
rules:
  - id: r.one
    when: {detectors: [o.long, o.tail]}
    then: {action: redact, redaction: last4}
)");
  REQUIRE(r.ok());
  // A-1234-5678-B: o.long = "A-1234-5678", o.tail = "1234-5678-B" overlap.
  const auto e = r.rules->evaluate("x A-1234-5678-B y", flow("DE", "US"));
  REQUIRE(e.result.findings.size() == 2);
  CHECK(e.redacted == "x [REDACTED:o.long][REDACTED:o.tail] y");
  // Apart, each keeps its last four.
  CHECK(r.rules->evaluate("A-1234-5678 0000-1111-B", flow("DE", "US")).redacted == "*-****-5678 ****-*111-B");
}

TEST_CASE("keywords: the longest at a position, ASCII case folded, CJK exact", "[engine]") {
  const auto& rs = *engine();
  const auto v = rs.scan("ALPHABET soup, alpha, alphabets, 绝密文件", 0);
  std::vector<std::string> got;
  for (const auto& f : v) got.push_back(f.text);
  CHECK(got == std::vector<std::string>{"ALPHABET", "alpha", "绝密"});  // "alphabets" runs on
}

TEST_CASE("full-width digits and separators are matched", "[engine]") {
  const auto& rs = *shipped();
  auto f = rs.scan("电话：１３８－１２３４－５６７８。", 0);
  REQUIRE(f.size() == 1);
  CHECK(f[0].detector == "cn.mobile");
  CHECK(f[0].text == "１３８－１２３４－５６７８");
  f = rs.scan("卡号６２２２　０２１２　３４５６　７８９０　１２８", 0);
  REQUIRE(f.size() == 2);  // a UnionPay card: the PRC pack's and the card networks' detector
  CHECK(f[0].detector == "cn.bank_card");
  CHECK(f[1].detector == "us.payment_card");
  CHECK(f[0].text == "６２２２　０２１２　３４５６　７８９０　１２８");
  f = rs.scan("SSN 536 22 1234 or 536-22-1234", 0);
  REQUIRE(f.size() == 2);
  CHECK(f[0].text == "536 22 1234");
}

TEST_CASE("no match starts or ends inside a longer run of digits or letters", "[engine]") {
  const auto& rs = *shipped();
  CHECK(rs.scan("13812345678", 0).size() == 1);
  CHECK(rs.scan("138123456789", 0).empty());
  CHECK(rs.scan("913812345678", 0).empty());
  CHECK(rs.scan("x13812345678", 0).empty());
  CHECK(rs.scan("13812345678x", 0).empty());
  CHECK(rs.scan("１３８１２３４５６７８９", 0).empty());  // full-width digits are a run too
  CHECK(rs.scan("手机13812345678号", 0).size() == 1);        // CJK around is fine
  CHECK(rs.scan("(13812345678)", 0).size() == 1);
  CHECK(rs.scan("AKIAUJZDE8GXD6NCF10E", 0).size() == 1);
  CHECK(rs.scan("AKIAUJZDE8GXD6NCF10E1", 0).empty());
}

TEST_CASE("a match with separators between its digits never starts inside a longer spaced number", "[engine]") {
  // cn.mobile writes its separators itself (digit_separators: false): a
  // mobile number spelled digit by digit is found alone, not as a piece of a
  // longer one spelled the same way.
  const auto& rs = *shipped();
  const auto mobiles = [&](const std::string& t) {
    std::size_t n = 0;
    for (const auto& f : rs.scan(t, 0)) n += f.detector == "cn.mobile" ? 1 : 0;
    return n;
  };
  CHECK(mobiles("电话 1/3/9/1/2/3/4/5/6/7/8") == 1);
  CHECK(mobiles("电话 5/1/3/9/1/2/3/4/5/6/7/8") == 0);
  CHECK(mobiles("电话 5 1 3 9 1 2 3 4 5 6 7 8") == 0);
  CHECK(mobiles("电话 5 138 1234 5678") == 1);  // in the groups it writes: a digit before does not hide it
  CHECK(mobiles("电话 5 13812345678") == 1);  // no separator inside: the match is whole
  CHECK(mobiles("电话 +86 138 1234 5678") == 1);
}

TEST_CASE("tabs and doubled separators stand between digits as one separator does", "[engine]") {
  const auto& rs = *shipped();
  const auto texts = [&](const std::string& t, const std::string& det) {
    std::vector<std::string> out;
    for (const auto& f : rs.scan(t, 0))
      if (f.detector == det) out.push_back(f.text);
    return out;
  };
  using v = std::vector<std::string>;
  CHECK(texts("电话 138\t1234\t5678", "cn.mobile") == v{"138\t1234\t5678"});
  CHECK(texts("电话 1  3  9  1  2  3  4  5  6  7  8", "cn.mobile") == v{"1  3  9  1  2  3  4  5  6  7  8"});
  CHECK(texts("电话 138--1234--5678", "cn.mobile") == v{"138--1234--5678"});
  // A digit and a doubled separator before: a piece of a longer spaced number.
  CHECK(texts("电话 5  1  3  9  1  2  3  4  5  6  7  8", "cn.mobile").empty());
  CHECK(texts("电话 5\t1\t3\t9\t1\t2\t3\t4\t5\t6\t7\t8", "cn.mobile").empty());
  // Three separators in a row, or a dash with a space beside it, are not one.
  CHECK(texts("电话 138   1234   5678", "cn.mobile").empty());
  CHECK(texts("电话 138 -1234 -5678", "cn.mobile").empty());
  // SSN groups: the same separator both sides, now also a tab or two spaces.
  CHECK(texts("SSN 536\t22\t1234", "us.ssn") == v{"536\t22\t1234"});
  CHECK(texts("SSN 536  22  1234", "us.ssn") == v{"536  22  1234"});
  CHECK(texts("SSN 536  22 1234", "us.ssn").empty());
  CHECK(texts("SSN 536\t22 1234", "us.ssn").empty());
  // Line and paragraph separators and NEL cut a number as a line feed does.
  for (const std::uint32_t cp : {0x2028u, 0x2029u, 0x85u}) {
    std::string sep;
    text::encode(cp, sep);
    INFO(cp);
    CHECK(texts("电话 138" + sep + "1234" + sep + "5678", "cn.mobile") == v{"138" + sep + "1234" + sep + "5678"});
  }
}

TEST_CASE("an SSN cut in two by one line break is found next to the word SSN", "[engine]") {
  const auto& rs = *shipped();
  const auto ssns = [&](const std::string& t) {
    std::vector<std::string> out;
    for (const auto& f : rs.scan(t, 0))
      if (f.detector == "us.ssn" || f.detector == "us.ssn_plain") out.push_back(f.detector + " " + f.text);
    return out;
  };
  using v = std::vector<std::string>;
  std::vector<std::string> breaks{"\n", "\r\n", "\r"};
  for (const std::uint32_t cp : {0x85u, 0x2028u, 0x2029u}) text::encode(cp, breaks.emplace_back());
  const std::string digits = "536221234";
  for (const auto& br : breaks)
    for (std::size_t cut = 1; cut < digits.size(); ++cut) {
      const std::string id = digits.substr(0, cut) + br + digits.substr(cut);
      INFO(id);
      CHECK(ssns("SSN " + id + ", thanks.") == v{"us.ssn_plain " + id});
      CHECK(ssns("order " + id + " shipped").empty());  // no context word: nine digits are too common
    }
  // Nine digits in all, no more: eight or ten around the break are not an SSN.
  CHECK(ssns("SSN 5362\n2123").empty());
  CHECK(ssns("SSN 5362\n212345").empty());
}

TEST_CASE("the visible digits of a masked SSN above a ZIP code are no SSN cut by a line break", "[engine]") {
  const auto& rs = *shipped();
  for (const std::string mask : {"***-**-", "XXX-XX-", "xxx-xx-", "###-##-", "\u2022\u2022\u2022-\u2022\u2022-",
                                 "\u25cf\u25cf\u25cf\u25cf\u25cf", "*****", "XXX XX "}) {
    const std::string t = "SSN: " + mask + "1234\n12345 Main Street";
    INFO(t);
    CHECK(rs.scan(t, 0).empty());
  }
  CHECK(text::after_mask("SSN XXX-XX-1234", 11));
  CHECK(text::after_mask("SSN **1234", 6));
  CHECK_FALSE(text::after_mask("SSN *-1234", 6));      // one mask character is a footnote mark or a product
  CHECK_FALSE(text::after_mask("MAXX-1234", 5));       // two letters X ending a word
  CHECK_FALSE(text::after_mask("SSN XX--1234", 8));    // a separator, then the mask: at most one
  // What remains ambiguous: the last four digits written without a mask,
  // above a ZIP code, read the same as an SSN cut in two.
  const auto f = rs.scan("SSN ending 1234\n12345 Main Street", 0);
  REQUIRE(f.size() == 1);
  CHECK(f[0].detector == "us.ssn_plain");
}

TEST_CASE("a mask in front of a whole identifier does not hide it", "[engine]") {
  // The mask rule is for the visible digits of a masked number cut by a line
  // break; written in front of a whole identifier, a mask would otherwise
  // carry any identifier past every detector.
  const auto& rs = *shipped();
  // (Letters glued to the identifier, "xx1101...", are a word the identifier
  // ends, with or without a mask: not found, as before the mask rule.)
  for (const std::string mask : {"**", "xx ", "XX-", "##-", "***-**-", "\u2022\u2022", "SSN: xxx-xx-"}) {
    for (const std::string id : {"11010519491231002X", "536-22-1234", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00"}) {
      const std::string t = "please keep " + mask + id + " on file";
      INFO(t);
      CHECK_FALSE(rs.scan(t, 0).empty());
    }
  }
}

TEST_CASE("numbered seat rows and counts are no Taiwan ID and no SSN", "[engine]") {
  const auto& rs = *shipped();
  for (char row = 'A'; row <= 'Z'; ++row) {
    for (const std::string sep : {" ", "\t", "  ", "/"}) {
      std::string t = std::string("Row ") + row;
      for (int seat = 1; seat <= 9; ++seat) t += sep + std::to_string(seat);
      INFO(t);
      CHECK(rs.scan(t, 0).empty());
      CHECK(rs.scan("SSN on file; " + t, 0).empty());
    }
  }
  CHECK(rs.scan("Row A 1 2 3 4 5 6 7 8 9 10 11 12", 0).empty());
  CHECK(rs.scan("Row M 3 4 5 6 7 8 9 10 11 12", 0).empty());
  CHECK(rs.scan("Row W 9 8 7 6 5 4 3 2 1", 0).empty());
  CHECK(rs.scan("lottery numbers 3 7 2 9 4 1 8 5 6", 0).empty());  // nine spaced digits without the word SSN
  CHECK(text::counts_by_one("A 1 2 3 4 5"));
  CHECK(text::counts_by_one("8 9 10 11 12"));
  CHECK_FALSE(text::counts_by_one("1 2 3 4"));         // four numbers are not yet a count
  CHECK_FALSE(text::counts_by_one("1 2 3 4 6 7 8 9"));
  CHECK_FALSE(text::counts_by_one("1 2 3 2 1"));
  // Identifiers spelled out that do not count stay found.
  const auto detectors = [&](const std::string& t) {
    std::vector<std::string> out;
    for (const auto& f : rs.scan(t, 0)) out.push_back(f.detector);
    return out;
  };
  CHECK(detectors("身分證字號 C 1 6 5 5 5 4 7 6 4") == std::vector<std::string>{"tw.id"});
  CHECK(detectors("SSN 5 3 6 2 2 1 2 3 4") == std::vector<std::string>{"us.ssn_plain"});
  CHECK(detectors("SSN 5--3--6--2--2--1--2--3--4") == std::vector<std::string>{"us.ssn_plain"});
  CHECK(detectors("SSN 5\t\t3\t\t6\t\t2\t\t2\t\t1\t\t2\t\t3\t\t4") == std::vector<std::string>{"us.ssn_plain"});
}

TEST_CASE("two letters with a separator between them are a country code only when every character stands apart", "[engine]") {
  // Accounting text: "G/L" (general ledger) before an account number read as
  // GL, Greenland's IBAN (18 characters, 14 digits after the check digits),
  // and 1 in 97 such numbers passes MOD 97-10. People write an IBAN's
  // country code without a separator inside it, unless they write every
  // character apart (evasion).
  const auto& rs = *shipped();
  const auto ibans = [&](const std::string& t) {
    std::vector<std::string> out;
    for (const auto& f : rs.scan(t, 0))
      if (f.detector == "eu.iban") out.push_back(f.text);
    return out;
  };
  using v = std::vector<std::string>;
  CHECK(ibans("G/L 8400 1234 5678 9012").empty());
  CHECK(ibans("post to G/L 1200 1000 2000 3000 today").empty());
  CHECK(ibans("g/l 8400 1234 5678 9012").empty());
  CHECK(ibans("G L 84 0012 3456 7890 12").empty());
  CHECK(ibans("G-L 8400123456789012").empty());
  // The same numbers written as IBANs are found, also every character apart.
  CHECK(ibans("GL84 0012 3456 7890 12") == v{"GL84 0012 3456 7890 12"});
  CHECK(ibans("GL 84 0012 3456 7890 12") == v{"GL 84 0012 3456 7890 12"});
  CHECK(ibans("gl8400123456789012") == v{"gl8400123456789012"});
  CHECK(ibans("G L 8 4 0 0 1 2 3 4 5 6 7 8 9 0 1 2") == v{"G L 8 4 0 0 1 2 3 4 5 6 7 8 9 0 1 2"});
  CHECK(ibans("G/L/8/4/0/0/1/2/3/4/5/6/7/8/9/0/1/2") == v{"G/L/8/4/0/0/1/2/3/4/5/6/7/8/9/0/1/2"});
  const auto ctx = flow("DE", "US");
  const std::string t = "post to G/L 1200 1000 2000 3000 today, pay GL84 0012 3456 7890 12";
  const auto e = expect_of(rs, t, ctx);
  REQUIRE(e.whole.result.findings.size() == 1);
  CHECK(e.whole.result.findings[0].text == "GL84 0012 3456 7890 12");
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < t.size(); i += 3) cuts.push_back(i);
  CHECK(stream_agrees(shipped(), ctx, t, cuts, e));
}

TEST_CASE("a number valid as a Dutch BSN and as a US SSN is a finding of both detectors on the same bytes", "[engine]") {
  // 237051771 passes the BSN 11-test and the SSN ranges. Nine digits cannot
  // tell whose number it is, and each finding serves another regime (GDPR
  // from the EU, 28 CFR 202 from the US): no tie-break, both are reported.
  const auto& rs = *shipped();
  const auto detectors_at = [&](const std::string& t) {
    std::vector<std::string> out;
    for (const auto& f : rs.scan(t, 0))
      if (f.category == "pi.national_id") out.push_back(f.detector + " " + f.text);
    return out;
  };
  using v = std::vector<std::string>;
  CHECK(detectors_at("BSN/SSN: 237051771") == v{"nl.bsn 237051771", "us.ssn_plain 237051771"});
  CHECK(detectors_at("burgerservicenummer 237-05-1771") == v{"nl.bsn 237-05-1771", "us.ssn 237-05-1771"});
  // From the EU both are redacted: the bytes are replaced once, by the label.
  const std::string t = "BSN/SSN: 237051771";
  const auto nl = rs.evaluate(t, flow("NL", "US"));
  CHECK(nl.result.act == action::redact);
  CHECK(nl.redacted == "BSN/SSN: [REDACTED:pi.national_id]");
  // From the US to a country of concern both are tagged as covered data.
  const auto us = rs.evaluate(t, flow("US", "CN"));
  CHECK(us.result.act == action::tag);
  CHECK(us.result.findings.size() == 2);
  for (const auto& [src, dst] : {std::pair{"NL", "US"}, std::pair{"US", "CN"}}) {
    const auto ctx = flow(src, dst);
    const auto e = expect_of(rs, t, ctx);
    CHECK(stream_agrees(shipped(), ctx, t, {3, 10, 12, 17}, e));
  }
}

TEST_CASE("a greedy optional part does not hide a valid match", "[engine]") {
  const auto& rs = *shipped();
  const auto f = rs.scan("卡号 6217 0012 3456 7893 12 张", 0);
  REQUIRE(f.size() == 2);
  CHECK(f[0].detector == "cn.bank_card");
  CHECK(f[0].text == "6217 0012 3456 7893");
  CHECK(f[1].detector == "us.payment_card");
  CHECK(f[1].text == "6217 0012 3456 7893");
}

TEST_CASE("context words must be within the window", "[engine]") {
  const auto& rs = *shipped();
  CHECK(rs.scan("passport: E12345678", 0).size() == 1);
  CHECK(rs.scan("E12345678 is my PASSPORT", 0).size() == 1);
  CHECK(rs.scan("passport" + std::string(40, ' ') + "E12345678", 0).empty());
  CHECK(rs.scan("passport" + std::string(31, ' ') + "E12345678", 0).size() == 1);
}

TEST_CASE("context words count where a word starts, not inside a longer word", "[engine]") {
  const auto& rs = *shipped();
  const auto detectors = [&](const std::string& t) {
    std::vector<std::string> d;
    for (const auto& f : rs.scan(t, 0)) d.push_back(f.detector);
    return d;
  };
  const std::vector<std::string> ssn{"us.ssn_plain"}, passport{"cn.passport"}, none;
  // "ssn" inside "classname", "passport" inside "nopassport": no context.
  CHECK(detectors("classname 536221234") == none);
  CHECK(detectors("536221234 (set by myclassname)") == none);
  CHECK(detectors("nopassport: E12345678") == none);
  // A word that starts with the context word (a plural, a suffix) is context,
  // in either case, also after digits or punctuation.
  CHECK(detectors("SSN 536221234") == ssn);
  CHECK(detectors("ssns: 536221234") == ssn);
  CHECK(detectors("(SSN)536221234") == ssn);
  CHECK(detectors("1SSN 536221234") == ssn);
  CHECK(detectors("Passports: E12345678") == passport);
  // Found in review: field names in camelCase ("customerSsn", "holderPassport")
  // start a word at the capital.
  CHECK(detectors("{\"customerSsn\": \"536221234\"}") == ssn);
  CHECK(detectors("{\"holderPassport\":\"E12345678\"}") == passport);
  CHECK(detectors("CLASSNAME 536221234") == none);
  // Words in scripts without spaces have no boundary to keep.
  CHECK(detectors("我的护照E12345678") == passport);
}

TEST_CASE("allow-listed documentation examples are not findings", "[engine]") {
  const auto& rs = *shipped();
  CHECK(rs.scan("AKIAIOSFODNN7EXAMPLE", 0).empty());
  CHECK(rs.scan("AKIAIOSFODNN7EXAMPLF", 0).size() == 1);
}

TEST_CASE("multi-part flows: findings per part, one verdict, redaction per part", "[engine]") {
  const auto& rs = *shipped();
  const std::vector<std::string> parts = {"call 13812345678", "nothing here", "身份证 11010519491231002X"};
  std::vector<finding> all;
  for (std::uint32_t i = 0; i < parts.size(); ++i) {
    auto f = rs.scan(parts[i], i);
    all.insert(all.end(), f.begin(), f.end());
  }
  const auto v = rs.decide(flow("CN", "US"), all);
  CHECK(v.act == action::block);
  REQUIRE(v.findings.size() == 2);
  CHECK(v.findings[0].part == 0);
  CHECK(v.findings[1].part == 2);
  CHECK(rs.redact(parts[0], v.findings, 0) == "call [REDACTED:pi.phone]");
  CHECK(rs.redact(parts[1], v.findings, 1) == "nothing here");
  CHECK(rs.redact(parts[2], v.findings, 2) == parts[2]);  // blocked, not redacted
}

TEST_CASE("evaluate is scan, decide and redact", "[engine]") {
  const auto& rs = *shipped();
  const std::string t = "电话 13812345678, IBAN DE89 3704 0044 0532 0130 00";
  const auto c = flow("CN", "US");
  const auto e = rs.evaluate(t, c);
  const auto v = rs.decide(c, rs.scan(t, 0));
  CHECK(e.result.act == v.act);
  CHECK(e.result.rules == v.rules);
  CHECK(e.redacted == rs.redact(t, v.findings, 0));
  CHECK(e.redacted == "电话 [REDACTED:pi.phone], IBAN [REDACTED:financial.iban]");
}

TEST_CASE("the set pass finds exactly what scanning every detector finds", "[engine]") {
  const auto& rs = compiled(*shipped());
  for (const auto& t : rs.tests) {
    const auto a = rs.scan(t.input, 0);
    const auto b = rs.scan_all(t.input, 0);
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      CHECK(a[i].detector == b[i].detector);
      CHECK(a[i].start == b[i].start);
      CHECK(a[i].end == b[i].end);
    }
  }
}

TEST_CASE("findings of another rule set are harmless", "[engine]") {
  finding f;
  f.detector = "no.such.detector";
  f.start = 5;
  f.end = 500;  // beyond the text
  f.applied = action::redact;
  f.replacement = "X";
  const auto v = shipped()->decide(flow("CN", "US"), {f});
  CHECK(v.act == action::allow);
  CHECK(v.rules.empty());
  CHECK(shipped()->redact("short", v.findings, 0) == "short");
  std::vector<finding> bogus{f};
  CHECK(shipped()->redact("short", bogus, 0) == "short");
}

TEST_CASE("arbitrary bytes never break scanning, and findings sit on character boundaries", "[engine][utf8]") {
  const auto& rs = *shipped();
  std::mt19937 rng(7);
  const std::vector<std::string> pieces = {"\xE4\xB8", "\xAD", "\xEF\xBC\x91", "\xEF\xBC", "13812345678", "\xFF",
                                           "\xC0\x80", "6222021234567890128", " ", "-", "\x80", "AKIA",
                                           "UJZDE8GXD6NCF10E", "中", "\xF0\x9F\x98\x80", "\0", "X"};
  for (int round = 0; round < 300; ++round) {
    std::string t;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) t += pieces[rng() % pieces.size()];
    const auto e = rs.evaluate(t, flow("CN", "US"));
    for (const auto& f : e.result.findings) {
      REQUIRE(f.end <= t.size());
      CHECK(f.text == t.substr(f.start, f.end - f.start));
      // A finding is whole characters: valid UTF-8 from its first byte to its last.
      for (std::size_t i = 0; i < f.text.size();) {
        std::size_t len = 1;
        const auto cp = customs::policy::text::decode(f.text, i, len);
        CHECK(!(cp == 0xFFFD && len == 1));
        i += len;
      }
    }
  }
}

TEST_CASE("a long run of digits or letters holds no finding, and what follows it is still found", "[engine]") {
  const auto& rs = *shipped();
  const std::string text = std::string(100000, '4') + " 13812345678 " + std::string(50000, 'A') + " AKIAUJZDE8GXD6NCF10E";
  const auto f = rs.scan(text, 0);
  REQUIRE(f.size() == 2);
  CHECK(f[0].text == "13812345678");
  CHECK(f[1].text == "AKIAUJZDE8GXD6NCF10E");
  stream_scanner sc(shipped(), flow("DE", "FR"));
  std::string out;
  for (std::size_t i = 0; i < text.size(); i += 4096) out += sc.feed(std::string_view(text).substr(i, 4096)).released;
  CHECK_FALSE(sc.feed("").blocked);
  const auto fin = sc.finish();
  CHECK(fin.blocked);  // the key blocks everywhere
  CHECK(sc.current().findings.size() == 2);
}

TEST_CASE("a stream with many findings keeps a verdict equal to the whole-text one", "[engine][stream]") {
  std::string text;
  for (int i = 0; i < 3000; ++i) text += "tel 13812345678, ";
  const auto c = flow("CN", "US");
  const auto whole = shipped()->evaluate(text, c);
  stream_scanner sc(shipped(), c);
  std::string out;
  for (std::size_t i = 0; i < text.size(); i += 20) out += sc.feed(std::string_view(text).substr(i, 20)).released;
  out += sc.finish().released;
  CHECK(out == whole.redacted);
  CHECK(sc.current().findings.size() == 3000);
  CHECK(sc.current().rules == whole.result.rules);
  CHECK(sc.current().tags == whole.result.tags);
  CHECK(sc.current().act == action::redact);
}

TEST_CASE("flows with the same context share one plan, equal to the plan made for them alone", "[engine]") {
  const auto* rs = dynamic_cast<const detail::compiled_rule_set*>(engine().get());
  REQUIRE(rs != nullptr);
  const auto same = [](const detail::flow_plan& a, const detail::flow_plan& b) {
    return a.flow_act == b.flow_act && a.flow_rules == b.flow_rules && a.effective == b.effective &&
           a.lowered_by == b.lowered_by && a.applies == b.applies && a.applied == b.applied && a.style == b.style &&
           a.rules == b.rules;
  };
  std::vector<flow_context> contexts;
  for (const char* src : {"DE", "AQ", "aq"})
    for (const char* dst : {"US", "CN", "cn", "BV"})
      for (const char* tenant : {"", "acme", "oldco", "quiet"})
        for (const char* route : {"", "/research", "/other"})
          for (const bool file : {false, true})
            for (const auto dir : {direction::request, direction::response}) {
              flow_context c = flow(src, dst);
              c.tenant = tenant;
              c.route = route;
              c.dir = dir;
              if (file) c.non_text_parts["file"] = 1;
              c.non_text_parts["image"] = 0;  // a kind counted 0 is not present
              contexts.push_back(c);
            }
  std::size_t lowered = 0;
  for (const auto& c : contexts) {
    INFO(c.src << " " << c.dst << " " << c.tenant << " " << c.route << " " << c.non_text_parts.size());
    const auto shared = rs->shared_plan(c);
    flow_context now = c;
    now.now = std::chrono::system_clock::now();
    CHECK(same(*shared, rs->plan(now)));
    CHECK(rs->shared_plan(c) == shared);  // the same plan again
    for (const auto& l : shared->lowered_by) lowered += l.size();
  }
  CHECK(lowered > 0);  // the current exceptions lowered rules for acme (x.old has expired)
  // Fields that run into each other are told apart: tenant "acme" on route
  // "/research" is lowered by x.acme-allow (only r.tag is left), tenant
  // "acme/research" on route "" is not.
  flow_context a = flow("DE", "CN");
  a.tenant = "acme";
  a.route = "/research";
  flow_context b = flow("DE", "CN");
  b.tenant = "acme/research";
  CHECK(rs->shared_plan(a) != rs->shared_plan(b));
  // Nor do source and destination (found in review: with NUL-terminated
  // fields these two were one key, and the second got the first's plan).
  flow_context c = flow("DE", std::string("CN\0US", 5));
  flow_context d = flow(std::string("DE\0CN", 5), "US");
  CHECK(rs->shared_plan(c) != rs->shared_plan(d));
  CHECK(same(*rs->shared_plan(d), rs->plan(at(d, std::chrono::system_clock::now()))));
  CHECK(rs->evaluate("code C1234", a).result.act == action::tag);
  CHECK(rs->evaluate("code C1234", b).result.act == action::block);
  // With a time of its own, a context gets its plan for that time: in 2031 the
  // acme exceptions have expired.
  flow_context later = a;
  later.now = day(2031, 1, 1);
  CHECK(rs->evaluate("code C1234", later).result.act == action::block);
  CHECK(rs->evaluate("code C1234", a).result.act == action::tag);
}
