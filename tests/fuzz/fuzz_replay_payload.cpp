// libFuzzer target: replay's reading of decrypted flow record payloads
// (audit::absorb, audit/replay_flow.hpp), which whoever hands an auditor the
// database controls, and the replay engine of customsctl (tools/replay_engine)
// judging what was read with the shipped rule packs.
//
// Input: up to 16 records of one flow (replay reads no more per flow), each a
// control byte followed by its payload up to the next 0x00 byte or the end (a
// raw 0x00 is never part of a JSON text). Control byte:
//   bit 0     kind: 0 flow_opened, 1 flow_closed
//   bit 1     no payload (bit 2: erased, else a decryption error)
//   bits 3-5  the index action: allow tag redact block unscannable refused
//             error, or empty
//   bit 6     the index names a rule
//
// Properties: never crashes; each record adds exactly the strings of its
// payload's "request_texts" and "response_texts" arrays, in order, to those of
// the records before (which stay as they were), and exactly the entries of its
// "request_texts_apart" that are integers naming one of its own request texts,
// as indices into the flow's request texts; a flow has text iff some payload
// had one of the two arrays; a missing payload or one that is not a JSON
// object leaves a reason, and the first reason stays; the first record gives
// the flow's id and time. A flow with text is judged by the replay engine,
// whose action is one of the four and whose rules are sorted and distinct.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "audit/replay_flow.hpp"
#include "tests/fuzz/fuzz_files.hpp"
#include "tests/fuzz/fuzz_input.hpp"
#include "tools/replay_engine.hpp"

namespace {

namespace audit = customs::audit;
namespace json = boost::json;
using customs::fuzz::check;

constexpr std::size_t max_records = 16;
constexpr std::array<const char*, 8> actions{"allow", "tag", "redact", "block", "unscannable", "refused", "error", ""};

const audit::replay_evaluator& engine() {
  static const audit::replay_evaluator e = [] {
    try {
      return customs::tools::make_replay_evaluator({customs::fuzz::source_dir() / "rules"}).evaluate;
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "the shipped rule packs do not load: %s\n", ex.what());
      std::abort();
    }
  }();
  return e;
}

// What one payload should add, read from the payload the plain way.
struct expected {
  bool object = false;
  bool has_texts = false;  // "request_texts" or "response_texts" is an array
  std::vector<std::string> request, response;
  std::vector<std::uint64_t> apart;  // indices into this record's request texts
};

void strings_of(const json::object& o, std::string_view key, std::vector<std::string>& out, bool& has) {
  const auto it = o.find(key);
  if (it == o.end() || it->value().kind() != json::kind::array) return;
  has = true;
  for (const auto& e : it->value().get_array())
    if (e.kind() == json::kind::string) out.emplace_back(e.get_string().data(), e.get_string().size());
}

expected expect(std::string_view payload) {
  expected x;
  boost::system::error_code ec;
  const json::value v = json::parse(payload, ec);
  if (ec || v.kind() != json::kind::object) return x;
  x.object = true;
  const auto& o = v.get_object();
  strings_of(o, "request_texts", x.request, x.has_texts);
  strings_of(o, "response_texts", x.response, x.has_texts);
  const auto it = o.find("request_texts_apart");
  if (it == o.end() || it->value().kind() != json::kind::array) return x;
  for (const auto& e : it->value().get_array()) {
    switch (e.kind()) {
      case json::kind::int64:
        if (e.get_int64() >= 0 && static_cast<std::uint64_t>(e.get_int64()) < x.request.size())
          x.apart.push_back(static_cast<std::uint64_t>(e.get_int64()));
        break;
      case json::kind::uint64:
        if (e.get_uint64() < x.request.size()) x.apart.push_back(e.get_uint64());
        break;
      default:  // doubles (also 1.0), strings, and the rest are not indices
        break;
    }
  }
  return x;
}

bool same_prefix(const std::vector<std::string>& before, const std::vector<std::string>& after) {
  if (after.size() < before.size()) return false;
  for (std::size_t i = 0; i < before.size(); ++i)
    if (after[i] != before[i]) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  customs::fuzz::input in(data, size);
  audit::replay_flow f;
  bool any_text = false;
  for (std::size_t n = 0; n < max_records && !in.rest().empty(); ++n) {
    const std::uint8_t ctl = in.byte();
    const std::string_view payload = in.until('\0');
    audit::read_record rec;
    rec.seq = n + 1;
    rec.kind = (ctl & 1) ? audit::record_kind::flow_closed : audit::record_kind::flow_opened;
    rec.time_us = static_cast<std::int64_t>(n) * 1000;
    rec.flow_id = "flow-" + std::to_string(n);
    rec.index.src = "CN";
    rec.index.dst = "US";
    rec.index.action = actions[(ctl >> 3) & 7];
    if (ctl & 0x40) rec.index.rules = {"fuzz.rule"};
    if (ctl & 2) {
      rec.erased = (ctl & 4) != 0;
      if (!rec.erased) rec.payload_error = "cannot decrypt";
    } else {
      rec.payload = std::string(payload);
    }

    const audit::replay_flow before = f;
    audit::absorb(f, rec);

    check(f.have_record, "a record was absorbed but the flow has none");
    check(f.in.flow_id == "flow-0" && f.in.time_us == 0, "the flow's id or time is not its first record's");
    check(f.old_action == rec.index.action && f.old_rules == rec.index.rules,
          "the flow's old action and rules are not its latest record's");
    check(same_prefix(before.in.request_texts, f.in.request_texts) &&
              same_prefix(before.in.response_texts, f.in.response_texts),
          "a record changed the texts of the records before it");
    check(f.in.request_apart.size() >= before.in.request_apart.size() &&
              std::equal(before.in.request_apart.begin(), before.in.request_apart.end(), f.in.request_apart.begin()),
          "a record changed the apart indices of the records before it");
    if (!before.problem.empty()) check(f.problem == before.problem, "a later record replaced the flow's problem");

    const expected x = rec.payload ? expect(*rec.payload) : expected{};
    if (!x.object) {
      check(!f.problem.empty(), "a missing or non-object payload left no reason");
      check(f.in.request_texts == before.in.request_texts && f.in.response_texts == before.in.response_texts &&
                f.in.request_apart == before.in.request_apart && f.have_text == before.have_text,
            "a missing or non-object payload added something");
      continue;
    }
    any_text |= x.has_texts;
    check(f.have_text == any_text, "the flow's have_text disagrees with its payloads");
    const std::size_t base = before.in.request_texts.size();
    check(std::vector<std::string>(f.in.request_texts.begin() + static_cast<std::ptrdiff_t>(base),
                                   f.in.request_texts.end()) == x.request,
          "a record's request texts are not the strings of its request_texts");
    check(std::vector<std::string>(f.in.response_texts.begin() +
                                       static_cast<std::ptrdiff_t>(before.in.response_texts.size()),
                                   f.in.response_texts.end()) == x.response,
          "a record's response texts are not the strings of its response_texts");
    std::vector<std::uint64_t> added;
    for (std::size_t i = before.in.request_apart.size(); i < f.in.request_apart.size(); ++i) {
      check(f.in.request_apart[i] >= base && f.in.request_apart[i] < f.in.request_texts.size(),
            "an apart index names a text outside its record's");
      added.push_back(f.in.request_apart[i] - base);
    }
    check(added == x.apart, "a record's apart indices are not the valid entries of its request_texts_apart");
    if (!f.no_text_reason.empty())
      check(f.no_text_reason.starts_with("no text recorded: "), "a no-text reason of another form");
  }
  if (!f.have_text) return 0;

  const audit::replay_outcome out = engine()(f.in);
  check(out.action == "allow" || out.action == "tag" || out.action == "redact" || out.action == "block",
        "the replay engine gave an action that is none of the four");
  for (std::size_t i = 1; i < out.rules.size(); ++i)
    check(out.rules[i - 1] < out.rules[i], "the replay engine's rules are not sorted and distinct");
  return 0;
}
