// The stream scanner against the whole-text scanner: for every embedded test
// input of the shipped packs and of the property pack, at EVERY split point, and
// for random multi-splits and generated text, the concatenated releases equal the
// whole-text redaction and the findings equal the whole-text findings; a block
// stops releases; hold-back stays within max_hold_back(); no release ends inside a
// UTF-8 character.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "policy/text.hpp"
#include "support.hpp"

using namespace customs::policy;
using namespace customs::policy::testing;

namespace {

const rule_set_ptr& property_pack() {
  static const rule_set_ptr rs = load_or_abort(source_dir() / "tests/policy/data/property");
  return rs;
}

struct sample {
  std::string text;
  flow_context ctx;
};

// Inputs of the embedded tests of a set, each with its flow and a few more flows
// (so that redactions and blocks both happen).
std::vector<sample> samples_of(const rule_set_ptr& rs) {
  std::vector<sample> out;
  for (const auto& t : compiled(*rs).tests) {
    out.push_back({t.input, t.ctx});
    out.push_back({t.input, flow("CN", "US")});
    out.push_back({t.input, flow("DE", "IN", direction::request)});
  }
  return out;
}

// Generated text: fragments of the embedded tests, identifiers, near misses and
// separators glued at random, so that matches touch, overlap and straddle pieces.
std::vector<std::string> generated(std::uint32_t seed, std::size_t count) {
  std::mt19937 rng(seed);
  std::vector<std::string> frags;
  for (const auto* rs : {&shipped(), &property_pack()})
    for (const auto& t : compiled(**rs).tests) frags.push_back(t.input);
  const std::vector<std::string> extra = {
      " ", "-", "　", "，", "\n", "13812345678", "１３８１２３４５６７８", "6222 0212 3456 7890 128", "AKIA", "A-1234",
      "-5678-B", "K12345", "key", "red", "tok_", "abcdefgh", "STOP4", "2", "\xE4\xB8", "\xAD", "\xFF", "护照",
      "E12345678", "536-22-", "1234", "DE89 3704 0044 0532 0130 00", "@example.com", "john.doe", "+86 ", "0086-",
      // What normalisation decodes, folds or removes, whole and in pieces.
      "\xE2\x80\x8B", "\xE2\x81\xA0", "\xC2\xAD", "\xEF\xBB\xBF", "&#49;", "&#x3", "8;", "&#", "&amp;", "&nb", "sp;",
      "\\u0031", "\\u00", "\\", "\xD9\xA1", "\xDB\xB3", "\xF0\x9D\x9F\x8F", "\xF0\x9D", "1 1 0 1 0 5 ",
      "1101/0519/", "4912/3100/2X", "19491231_002X", "\n002X", "SUQgMTEwMTA1MTk0OTEyMzEwMDJY", "SUQgMTEw", "MTA1MTk0",
      "==", "5L2g5aW9"};
  frags.insert(frags.end(), extra.begin(), extra.end());
  std::vector<std::string> out;
  for (std::size_t i = 0; i < count; ++i) {
    std::string t;
    const std::size_t n = 1 + rng() % 8;
    for (std::size_t k = 0; k < n; ++k) {
      const auto& f = frags[rng() % frags.size()];
      if (f.size() > 12 && rng() % 2) {
        const std::size_t a = rng() % f.size();
        t += f.substr(a, 1 + rng() % (f.size() - a));
      } else {
        t += f;
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

void every_split(const rule_set_ptr& rs, const std::vector<sample>& samples) {
  std::size_t checked = 0;
  for (const auto& s : samples) {
    const auto e = expect_of(*rs, s.text, s.ctx);
    for (std::size_t cut = 0; cut <= s.text.size(); ++cut) {
      INFO("text '" << s.text << "' " << s.ctx.src << "->" << s.ctx.dst << " cut at " << cut);
      REQUIRE(stream_agrees(rs, s.ctx, s.text, {cut}, e));
      ++checked;
    }
  }
  CHECK(checked > 1000);
}

void random_splits(const rule_set_ptr& rs, const std::vector<sample>& samples, std::uint32_t seed, int per_text) {
  std::mt19937 rng(seed);
  for (const auto& s : samples) {
    const auto e = expect_of(*rs, s.text, s.ctx);
    for (int k = 0; k < per_text; ++k) {
      std::vector<std::size_t> cuts;
      const std::size_t n = rng() % 8;
      for (std::size_t i = 0; i < n && !s.text.empty(); ++i) cuts.push_back(rng() % (s.text.size() + 1));
      std::sort(cuts.begin(), cuts.end());
      INFO("text '" << s.text << "' with " << cuts.size() << " cuts");
      REQUIRE(stream_agrees(rs, s.ctx, s.text, cuts, e));
    }
    // One byte at a time.
    std::vector<std::size_t> bytes;
    for (std::size_t i = 1; i < s.text.size(); ++i) bytes.push_back(i);
    INFO("text '" << s.text << "' byte by byte");
    REQUIRE(stream_agrees(rs, s.ctx, s.text, bytes, e));
  }
}

}  // namespace

TEST_CASE("streaming equals whole text at every split point of every shipped test input", "[stream][property]") {
  every_split(shipped(), samples_of(shipped()));
}

TEST_CASE("streaming equals whole text at every split point of the property pack inputs", "[stream][property]") {
  every_split(property_pack(), samples_of(property_pack()));
}

TEST_CASE("streaming equals whole text under random multi-splits", "[stream][property]") {
  random_splits(shipped(), samples_of(shipped()), 11, 20);
  random_splits(property_pack(), samples_of(property_pack()), 12, 20);
}

TEST_CASE("streaming equals whole text on generated text", "[stream][property]") {
  for (const auto* rs : {&shipped(), &property_pack()}) {
    std::vector<sample> s;
    for (auto& t : generated(rs == &shipped() ? 21 : 22, 150)) {
      s.push_back({t, flow("CN", "US")});
      s.push_back({t, flow("ES", "US", direction::request)});
    }
    random_splits(*rs, s, 23, 10);
  }
}

// With CUSTOMS_CORPUS_DIR set to a folder made by the shared corpus generator,
// also checks a sample of its messages (20-byte deltas and random cuts).
TEST_CASE("streaming equals whole text on a corpus sample, when one is given", "[stream][property][corpus]") {
  const char* dir = std::getenv("CUSTOMS_CORPUS_DIR");
  if (dir == nullptr) return;
  std::ifstream txt(std::string(dir) + "/corpus.txt", std::ios::binary), idx(std::string(dir) + "/corpus.idx");
  REQUIRE(txt);
  std::stringstream b;
  b << txt.rdbuf();
  const std::string all = b.str();
  std::vector<sample> s;
  std::size_t pos = 0, len = 0, i = 0;
  while (idx >> len && pos + len <= all.size()) {
    if (i++ % 20 == 0) s.push_back({all.substr(pos, len), flow("CN", "US")});
    pos += len;
  }
  for (const auto& x : s) {
    const auto e = expect_of(*shipped(), x.text, x.ctx);
    std::vector<std::size_t> cuts;
    for (std::size_t c = 20; c < x.text.size(); c += 20) cuts.push_back(c);
    REQUIRE(stream_agrees(shipped(), x.ctx, x.text, cuts, e));
  }
  random_splits(shipped(), s, 31, 3);
}

TEST_CASE("a block stops releasing at once and for good", "[stream]") {
  stream_scanner sc(shipped(), flow("CN", "US"));
  auto o = sc.feed("你好，");
  CHECK(o.released == "你好，");
  CHECK_FALSE(o.blocked);
  o = sc.feed("身份证 11010519491231002X ");
  CHECK(o.blocked);
  CHECK(o.released.empty());
  CHECK(sc.current().act == action::block);
  REQUIRE(sc.current().findings.size() == 1);
  CHECK(sc.current().findings[0].detector == "cn.resident_id");
  o = sc.feed("more text");
  CHECK(o.blocked);
  CHECK(o.released.empty());
  o = sc.finish();
  CHECK(o.blocked);
  CHECK(o.released.empty());
}

TEST_CASE("a rule on non-text parts blocks before any text", "[stream]") {
  const auto r = load_yaml(R"(schema: customs/v1
pack: {id: parts, version: "1"}
rules:
  - id: r.files
    when: {parts: [file]}
    then: {action: block}
)");
  REQUIRE(r.ok());
  auto c = flow("DE", "US");
  c.non_text_parts["file"] = 2;
  stream_scanner sc(r.rules, c);
  auto o = sc.feed("hello");
  CHECK(o.blocked);
  CHECK(o.released.empty());
  CHECK(sc.current().rules == std::vector<std::string>{"r.files"});
  stream_scanner plain(r.rules, flow("DE", "US"));
  CHECK(plain.feed("hello").released == "hello");
}

TEST_CASE("text that cannot start a match is released at once", "[stream]") {
  stream_scanner sc(shipped(), flow("CN", "US"));
  CHECK(sc.feed("我们明天开会，").released == "我们明天开会，");
  CHECK(sc.held() == 0);
  // A digit may start a phone number: held until the number is decided.
  auto o = sc.feed("电话 138");
  CHECK(o.released == "电话 ");
  CHECK(sc.held() == 3);
  o = sc.feed(" 好");
  CHECK(o.released == "138 好");
  CHECK(sc.held() == 0);
}

TEST_CASE("a trailing partial UTF-8 character is held, never split", "[stream]") {
  stream_scanner sc(shipped(), flow("CN", "US"));
  auto o = sc.feed("好\xE5\xA5");  // 好 then the first two bytes of 好
  CHECK(o.released == "好");
  o = sc.feed("\xBD!");
  CHECK(o.released == "好!");
  stream_scanner none(nullptr, flow("CN", "US"));
  CHECK(none.feed("a\xE5").released == "a");
  CHECK(none.feed("\xA5\xBD").released == "好");
  CHECK(none.finish().released.empty());
  CHECK(none.current().act == action::allow);
}

TEST_CASE("hold-back is bounded on a long run of candidate text", "[stream]") {
  stream_scanner sc(shipped(), flow("CN", "US"));
  std::size_t most = 0;
  std::string out;
  const std::string piece = "a.b-1 2_3+4%";  // email-local-part characters, digits, separators
  for (int i = 0; i < 2000; ++i) {
    out += sc.feed(piece).released;
    most = std::max(most, sc.held());
  }
  out += sc.finish().released;
  CHECK(most <= shipped()->max_hold_back());
  CHECK(out.size() == piece.size() * 2000);
}

namespace {
// A rule_set that is not load_rule_set's: blocks any text with "stop", redacts "x".
class fake_rules final : public rule_set {
 public:
  const std::string& id() const noexcept override { return s_; }
  const std::string& version() const noexcept override { return s_; }
  const std::string& hash() const noexcept override { return s_; }
  std::size_t max_hold_back() const noexcept override { return 0; }
  std::vector<finding> scan(std::string_view text, std::uint32_t part) const override {
    std::vector<finding> out;
    for (std::size_t i = 0; i < text.size(); ++i)
      if (text[i] == 'x') {
        finding f;
        f.detector = "x";
        f.part = part;
        f.start = i;
        f.end = i + 1;
        f.text = "x";
        out.push_back(f);
      }
    if (text.find("stop") != std::string_view::npos) out.push_back(finding{"stop", "", false, part, 0, 0, "", {}, {}});
    return out;
  }
  verdict decide(const flow_context&, std::vector<finding> findings) const override {
    verdict v;
    for (auto& f : findings) {
      f.applied = f.detector == "stop" ? action::block : action::redact;
      f.replacement = "_";
      v.act = std::max(v.act, f.applied);
    }
    v.findings = std::move(findings);
    return v;
  }
  std::string redact(std::string_view text, std::span<const finding> findings, std::uint32_t) const override {
    std::string out(text);
    for (const auto& f : findings)
      if (f.applied == action::redact) out[f.start] = '_';
    return out;
  }

 private:
  std::string s_ = "fake";
};
}  // namespace

TEST_CASE("a rule_set of another implementation is evaluated whole at finish", "[stream]") {
  const rule_set_ptr rs = std::make_shared<fake_rules>();
  stream_scanner sc(rs, flow("DE", "US"));
  CHECK(sc.feed("axb").released.empty());
  CHECK(sc.feed("x").released.empty());
  auto o = sc.finish();
  CHECK(o.released == "a_b_");
  CHECK_FALSE(o.blocked);
  stream_scanner st(rs, flow("DE", "US"));
  CHECK(st.feed("please sto").released.empty());
  CHECK(st.feed("p").released.empty());
  o = st.finish();
  CHECK(o.blocked);
  CHECK(o.released.empty());
  CHECK(st.current().act == action::block);
}

// A security report: ' '.join(['1380013800'] * 20000), 220 KB, stalled a worker
// for seconds. The automaton loops repetitions of more than
// stream_counted_repeats copies (the payment card's), so on a run of numbers
// each candidate lived to the end of the text: every byte stepped every
// earlier number's candidate (quadratic), and nothing was released. A
// candidate now closes once it is as old as the longest match. Counted in
// candidate steps, not time.
TEST_CASE("stream: a long run of numbers costs at most the longest match per byte", "[stream][work]") {
  const auto& rs = shipped();
  const auto& c = compiled(*rs);
  std::string text;
  // 110 KB; the first 104 KB before the words (which end every candidate) are
  // more than max_hold_back() of the shipped set (92 KB).
  for (int i = 0; i < 10000; ++i) {
    if (i) text += ' ';
    text += "1380013800";
    if (i == 9500) text += " SSN 536-22-1234 card 4111 1111 1111 1111";
  }
  const auto ctx = flow("US", "CN");
  stream_scanner sc(rs, ctx);
  std::size_t most_held = 0;
  for (std::size_t at = 0; at < text.size(); at += 4096) {
    (void)sc.feed(std::string_view(text).substr(at, 4096));
    most_held = std::max(most_held, sc.held());
  }
  (void)sc.finish();
  CHECK(most_held <= rs->max_hold_back());
  CHECK(sc.candidate_steps() <= (c.max_match_ + 1) * text.size());

  // The same findings as the whole-text scan (the SSN and the card among them).
  const auto whole = rs->scan(text, 0);
  const auto& got = sc.current().findings;
  REQUIRE(got.size() == whole.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].detector == whole[i].detector);
    CHECK(got[i].start == whole[i].start);
    CHECK(got[i].end == whole[i].end);
  }
  bool ssn = false, card = false;
  for (const auto& f : got) ssn |= f.detector == "us.ssn", card |= f.detector == "us.payment_card";
  CHECK(ssn);
  CHECK(card);
}
