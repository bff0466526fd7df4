// libFuzzer target, differential: the streaming scanner (policy::stream_scanner)
// fed a text in random pieces against the whole-text evaluation of the same
// rule set (rule_set::evaluate). A strong oracle: every difference is a bug.
//
// Input: byte 0 seeds the piece sizes (fuzz_input.hpp, pieces()); byte 1 picks
// the flow (direction, source, destination) and, with its high bit, the rule
// set (the shipped packs in rules/, or the overlap property pack of the policy
// tests); the rest is the text (arbitrary bytes: the scanner is also fed texts
// that are not valid UTF-8).
//
// Properties (as tests/policy/stream_test.cpp states them for chosen texts):
//   - without a block: what the scanner releases, put together, is the whole
//     text's redaction; its findings, action, rules and tags are the whole
//     text's;
//   - with a block in the whole text: the scanner blocks, nothing is released
//     after it, what was released is a prefix of the whole text's redaction
//     and holds no byte of the blocking match;
//   - it never holds back more than max_hold_back(), and on valid UTF-8 no
//     release ends inside a character.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policy/policy.hpp"
#include "policy/text.hpp"
#include "tests/fuzz/fuzz_files.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

namespace policy = customs::policy;
using customs::fuzz::check;

policy::rule_set_ptr load(const std::filesystem::path& p) {
  const std::array paths{p};
  auto r = policy::load_rule_set(paths);
  if (!r.ok()) {
    for (const auto& d : r.diagnostics) std::fprintf(stderr, "%s\n", d.to_string().c_str());
    std::abort();
  }
  return r.rules;
}

const std::array<policy::rule_set_ptr, 2>& rule_sets() {
  static const std::array<policy::rule_set_ptr, 2> sets{
      load(customs::fuzz::source_dir() / "rules"),
      load(customs::fuzz::source_dir() / "tests/policy/data/property")};
  return sets;
}

struct flow {
  policy::direction dir;
  const char* src;
  const char* dst;
};
constexpr std::array<flow, 8> flows{{
    {policy::direction::response, "CN", "US"},
    {policy::direction::request, "CN", "US"},
    {policy::direction::request, "DE", "IN"},
    {policy::direction::response, "DE", "US"},
    {policy::direction::request, "US", "CN"},
    {policy::direction::request, "CN", "CN"},
    {policy::direction::response, "US", "RU"},
    {policy::direction::request, "FR", "DE"},
}};

bool valid_utf8(std::string_view s) { return customs::fuzz::to_valid_utf8(s) == s; }

// Where original offset `at` lands in the redacted text, or npos when a
// redacted finding straddles it.
std::size_t redacted_offset(const policy::verdict& v, std::size_t at) {
  std::size_t out = at;
  for (const auto& f : v.findings) {
    if (f.applied != policy::action::redact) continue;
    if (f.end <= at) {
      out = out - (f.end - f.start) + f.replacement.size();
    } else if (f.start < at) {
      return std::string_view::npos;
    }
  }
  return out;
}

}  // namespace

// The one-time set-up (rule compilation or a written trail; seconds under the
// sanitizers and coverage) runs before libFuzzer starts timing inputs.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)rule_sets();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  customs::fuzz::input in(data, size);
  const std::uint8_t piece_seed = in.byte();
  const std::uint8_t pick = in.byte();
  const auto& rules = rule_sets()[pick >> 7];
  const flow& f = flows[pick % flows.size()];
  policy::flow_context ctx;
  ctx.dir = f.dir;
  ctx.src = f.src;
  ctx.dst = f.dst;
  ctx.now = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));  // 2026-01-01
  const std::string_view text = in.rest();
  const bool utf8 = valid_utf8(text);

  const auto whole = rules->evaluate(text, ctx);
  const policy::finding* block = nullptr;
  for (const auto& x : whole.result.findings) {
    if (x.applied == policy::action::block) {
      block = &x;
      break;
    }
  }

  policy::stream_scanner sc(rules, ctx);
  std::string released;
  bool blocked = false;
  const auto take = [&](const policy::stream_scanner::output& o) {
    check(!blocked || (o.released.empty() && o.blocked), "released after a block");
    if (utf8 && !o.released.empty()) {
      check(customs::policy::text::complete_prefix(o.released) == o.released.size(),
            "a release ends inside a UTF-8 character");
    }
    released += o.released;
    blocked = blocked || o.blocked;
    check(sc.held() <= rules->max_hold_back(), "held back more than max_hold_back()");
  };
  for (auto piece : customs::fuzz::pieces(text, piece_seed)) take(sc.feed(piece));
  take(sc.finish());

  const auto& v = whole.result;
  if (block != nullptr) {
    check(blocked, "the whole text blocks, the stream does not");
    check(whole.redacted.starts_with(released), "a blocked stream released what the whole text does not");
    const std::size_t limit = redacted_offset(v, block->start);
    if (limit != std::string_view::npos) {
      check(released.size() <= limit, "a blocked stream released part of the blocking match");
    }
    return 0;
  }
  check(blocked == (v.act == policy::action::block), "the stream blocks, the whole text does not");
  check(released == whole.redacted, "the stream's releases differ from the whole text's redaction");
  const auto& got = sc.current();
  check(got.findings.size() == v.findings.size(), "the stream finds another number of matches");
  for (std::size_t i = 0; i < v.findings.size(); ++i) {
    const auto &a = got.findings[i], &b = v.findings[i];
    check(a.detector == b.detector && a.start == b.start && a.end == b.end && a.text == b.text &&
              a.applied == b.applied && a.replacement == b.replacement,
          "a finding of the stream differs from the whole text's");
  }
  check(got.act == v.act && got.rules == v.rules && got.tags == v.tags,
        "the stream's verdict differs from the whole text's");
  return 0;
}
