// Scanning several texts of a flow together (policy/parts.hpp): matches split
// between adjacent texts, the redaction of split matches, the findings bound,
// and the large-text path agreeing with the whole-text scan.
#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "policy/parts.hpp"
#include "support.hpp"

using namespace customs::policy;
using namespace customs::policy::testing;

namespace {

const std::string resident_id = "11010519491231002X";

std::vector<std::string_view> views(const std::vector<std::string>& v) {
  return std::vector<std::string_view>(v.begin(), v.end());
}

std::size_t count_detector(const std::vector<finding>& f, std::string_view detector) {
  std::size_t n = 0;
  for (const auto& x : f) n += x.detector == detector ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("parts: an identifier split between two texts is found in both", "[parts]") {
  const std::vector<std::string> texts = {"please check 1101051949", "1231002X thanks"};
  const auto ctx = flow("CN", "US");
  const auto r = scan_parts(shipped(), ctx, views(texts));
  CHECK_FALSE(r.truncated);
  REQUIRE(count_detector(r.findings, "cn.resident_id") == 2);
  const auto& a = r.findings[0];
  const auto& b = r.findings[1];
  CHECK(a.part == 0);
  CHECK(a.start == 13);
  CHECK(a.end == texts[0].size());
  CHECK(b.part == 1);
  CHECK(b.start == 0);
  CHECK(b.end == 8);
  CHECK(a.text == resident_id);
  CHECK(b.text == resident_id);
  REQUIRE(r.continued.size() == 1);
  CHECK(r.continued[0].part == 1);
  CHECK(shipped()->decide(ctx, r.findings).act == action::block);
}

TEST_CASE("parts: a split across three texts, and across an empty one", "[parts]") {
  const std::vector<std::string> texts = {"id 110105", "", "19491231", "002X."};
  const auto r = scan_parts(shipped(), flow("CN", "US"), views(texts));
  CHECK(count_detector(r.findings, "cn.resident_id") == 3);
  CHECK(r.continued.size() == 2);
}

TEST_CASE("parts: findings inside one text are not repeated by the joined scan", "[parts]") {
  const std::vector<std::string> texts = {"id " + resident_id, "and " + resident_id + " again"};
  const auto r = scan_parts(shipped(), flow("CN", "US"), views(texts));
  CHECK(count_detector(r.findings, "cn.resident_id") == 2);
  CHECK(r.continued.empty());
}

TEST_CASE("parts: without joining, a split stays unseen", "[parts]") {
  const std::vector<std::string> texts = {"please check 1101051949", "1231002X thanks"};
  parts_options o;
  o.join = false;
  const auto r = scan_parts(shipped(), flow("CN", "US"), views(texts), o);
  CHECK(count_detector(r.findings, "cn.resident_id") == 0);
}

TEST_CASE("parts: texts join only with texts of their own join group", "[parts]") {
  // "id 110105" | "19491231" | "002X." as three texts: in one group the ID is
  // found in all three; with the middle text in another group, in none (the
  // runs on either side of it are one text each); with the last one in
  // another group, in none either (the first two alone are not an ID).
  const std::vector<std::string> texts = {"id 110105", "19491231", "002X."};
  const auto ctx = flow("CN", "US");
  CHECK(count_detector(scan_parts(shipped(), ctx, views(texts)).findings, "cn.resident_id") == 3);
  parts_options o;
  o.join_group = {0, 1, 0};
  CHECK(count_detector(scan_parts(shipped(), ctx, views(texts), o).findings, "cn.resident_id") == 0);
  o.join_group = {0, 0, 1};
  CHECK(count_detector(scan_parts(shipped(), ctx, views(texts), o).findings, "cn.resident_id") == 0);
  // Texts of the other group join with each other.
  o.join_group = {0, 1, 1};
  const std::vector<std::string> tail = {"hello", "note=110105194912", "31002X: 1"};
  CHECK(count_detector(scan_parts(shipped(), ctx, views(tail), o).findings, "cn.resident_id") == 2);
  // A text in another group still has its own findings.
  const std::vector<std::string> whole = {"id 110105", "19491231", resident_id};
  o.join_group = {0, 0, 1};
  CHECK(count_detector(scan_parts(shipped(), ctx, views(whole), o).findings, "cn.resident_id") == 1);
  // Shorter than the texts: the texts past it are in group 0.
  o.join_group = {0};
  CHECK(count_detector(scan_parts(shipped(), ctx, views(texts), o).findings, "cn.resident_id") == 3);
}

TEST_CASE("parts: a redacted split match is replaced once, where it begins, and removed from the other text", "[parts]") {
  // Phone numbers from CN to the US are redacted by the shipped packs.
  const std::vector<std::string> texts = {"call 138 0013", " 8000 tomorrow"};
  const auto ctx = flow("CN", "US");
  const auto r = scan_parts(shipped(), ctx, views(texts));
  auto v = shipped()->decide(ctx, r.findings);
  REQUIRE(v.act == action::redact);
  settle_split(v, r.continued);
  CHECK(shipped()->redact(texts[0], v.findings, 0) == "call [REDACTED:pi.phone]");
  CHECK(shipped()->redact(texts[1], v.findings, 1) == " tomorrow");
}

TEST_CASE("parts: the findings bound, at and just past it", "[parts]") {
  std::vector<std::string> texts;
  for (int i = 0; i < 4; ++i) texts.push_back("call 138 0013 800" + std::to_string(i) + " now");
  const auto ctx = flow("CN", "US");
  parts_options o;
  o.max_findings = 4;
  const auto at = scan_parts(shipped(), ctx, views(texts), o);
  CHECK_FALSE(at.truncated);
  CHECK(at.findings.size() == 4);
  o.max_findings = 3;
  const auto past = scan_parts(shipped(), ctx, views(texts), o);
  CHECK(past.truncated);
  CHECK(past.findings.size() == 3);
}

TEST_CASE("parts: a large text is scanned in slices with the same findings, and stops at the bound", "[parts]") {
  std::string big;
  int n = 0;
  while (big.size() < 200000) {
    big += "line " + std::to_string(n) + ": call 138 0013 " + std::to_string(8000 + n % 1000) + ". ";
    ++n;
  }
  const std::vector<std::string_view> texts = {big};
  const auto ctx = flow("CN", "US");
  parts_options whole;
  whole.large_text = big.size() + 1;  // scanned at once
  parts_options sliced;
  sliced.large_text = 1;
  sliced.slice = 4096;
  const auto a = scan_parts(shipped(), ctx, texts, whole);
  const auto b = scan_parts(shipped(), ctx, texts, sliced);
  REQUIRE(a.findings.size() == b.findings.size());
  REQUIRE(a.findings.size() > 1000);
  for (std::size_t i = 0; i < a.findings.size(); ++i) {
    CHECK(a.findings[i].start == b.findings[i].start);
    CHECK(a.findings[i].end == b.findings[i].end);
    CHECK(a.findings[i].detector == b.findings[i].detector);
  }
  sliced.max_findings = 100;
  const auto bounded = scan_parts(shipped(), ctx, texts, sliced);
  CHECK(bounded.truncated);
  CHECK(bounded.findings.size() == 100);
}

TEST_CASE("parts: a neighbour after the split does not spoil the match's boundary", "[parts]") {
  // Joined with everything after it, "1231002X" would run into "model".
  const std::vector<std::string> texts = {"check 1101051949", "1231002X", "model", "user"};
  const auto r = scan_parts(shipped(), flow("CN", "US"), views(texts));
  CHECK(count_detector(r.findings, "cn.resident_id") == 2);
  const std::vector<std::string> before = {"gpt", "1101051949", "1231002X"};
  CHECK(count_detector(scan_parts(shipped(), flow("CN", "US"), views(before)).findings, "cn.resident_id") == 2);
}

TEST_CASE("parts: a split into more texts than max_join is not joined", "[parts]") {
  const std::vector<std::string> texts = {"id 1101", "0519", "4912", "3100", "2X."};
  parts_options o;
  o.max_join = 5;
  CHECK(count_detector(scan_parts(shipped(), flow("CN", "US"), views(texts), o).findings, "cn.resident_id") == 5);
  o.max_join = 4;
  CHECK(count_detector(scan_parts(shipped(), flow("CN", "US"), views(texts), o).findings, "cn.resident_id") == 0);
}
