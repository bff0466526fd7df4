#include "policy/authoring.hpp"

#include <algorithm>
#include <sstream>

#include "policy/model.hpp"
#include "policy/volume.hpp"

namespace customs::policy {

using detail::compiled_rule_set;

namespace {

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out + "\"";
}

std::string list(const std::vector<std::string>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s + "]";
}

std::string show(const std::vector<finding>& fs) {
  std::string s = "[";
  for (std::size_t i = 0; i < fs.size(); ++i)
    s += (i ? ", " : "") + fs[i].detector + " " + quote(fs[i].text) + " at " + std::to_string(fs[i].start);
  return s + "]";
}

void run_one(const compiled_rule_set& rs, const detail::test_def& t, rule_test_result& r,
             const std::map<std::string, std::uint64_t>& volumes) {
  auto& fail = r.failures;
  auto whole = rs.evaluate(t.input, t.ctx);
  if (!rs.volumes.empty()) {
    // Counters start at the test's `volumes` (in memory).
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         t.ctx.now.value_or(std::chrono::system_clock::now()).time_since_epoch()).count();
    auto preset = volumes;
    for (const auto& [k, n] : t.volumes) preset[k] = n;
    evaluate_volumes_in_memory(rs, t.ctx, whole.result, preset, now);
    if (!whole.result.volumes.empty()) whole.redacted = rs.redact(t.input, whole.result.findings, 0);
  }
  const verdict& v = whole.result;

  if (t.expect_action && v.act != *t.expect_action)
    fail.push_back("action: expected " + std::string(to_string(*t.expect_action)) + ", got " +
                   std::string(to_string(v.act)) + (v.rules.empty() ? "" : " (rules " + list(v.rules) + ")"));

  if (t.expect_findings) {
    std::vector<std::string> relevant;
    for (const auto& d : rs.detectors)
      if (d.pack == t.pack) relevant.push_back(d.id);
    for (const auto& e : *t.expect_findings) relevant.push_back(e.detector);
    std::vector<finding> got;
    for (const auto& f : v.findings)
      if (std::find(relevant.begin(), relevant.end(), f.detector) != relevant.end()) got.push_back(f);
    bool same = got.size() == t.expect_findings->size();
    for (std::size_t i = 0; same && i < got.size(); ++i) {
      const auto& e = (*t.expect_findings)[i];
      same = got[i].detector == e.detector && (!e.text || *e.text == got[i].text);
    }
    if (!same) {
      std::string want = "[";
      for (std::size_t i = 0; i < t.expect_findings->size(); ++i) {
        const auto& e = (*t.expect_findings)[i];
        want += (i ? ", " : "") + e.detector + (e.text ? " " + quote(*e.text) : "");
      }
      fail.push_back("findings: expected " + want + "], got " + show(got));
    }
  }
  for (const auto& d : t.expect_absent) {
    std::vector<finding> bad;
    for (const auto& f : v.findings)
      if (f.detector == d) bad.push_back(f);
    if (!bad.empty()) fail.push_back("absent: detector " + d + " found " + show(bad));
  }
  if (t.expect_rules && v.rules != *t.expect_rules)
    fail.push_back("rules: expected " + list(*t.expect_rules) + ", got " + list(v.rules));
  if (t.expect_tags && v.tags != *t.expect_tags)
    fail.push_back("tags: expected " + list(*t.expect_tags) + ", got " + list(v.tags));
  if (t.expect_redacted && whole.redacted != *t.expect_redacted)
    fail.push_back("redacted: expected " + quote(*t.expect_redacted) + ", got " + quote(whole.redacted));

  if (t.chunked && v.volumes.empty()) {
    // The streamed result must be the whole-text result (streamed responses
    // touch no counter).
    stream_scanner sc(rule_set_ptr(rule_set_ptr{}, &rs), t.ctx);  // non-owning: rs outlives it
    std::string released;
    bool blocked = false;
    for (const auto& c : t.chunks) {
      auto o = sc.feed(c);
      released += o.released;
      blocked = blocked || o.blocked;
    }
    if (!blocked) {
      auto o = sc.finish();
      released += o.released;
      blocked = o.blocked;
    }
    if (blocked != (v.act == action::block))
      fail.push_back(std::string("stream: ") + (blocked ? "blocked" : "did not block") + ", whole text " +
                     std::string(to_string(v.act)));
    if (!blocked && released != whole.redacted)
      fail.push_back("stream: released " + quote(released) + ", whole text " + quote(whole.redacted));
    if (!blocked && sc.current().findings.size() != v.findings.size())
      fail.push_back("stream: findings " + show(sc.current().findings) + ", whole text " + show(v.findings));
  }
}

}  // namespace

rule_test_report run_rule_tests(const rule_set& rules, const std::map<std::string, std::uint64_t>& volumes) {
  rule_test_report rep;
  const auto* rs = dynamic_cast<const compiled_rule_set*>(&rules);
  if (rs == nullptr) return rep;
  for (const auto& t : rs->tests) {
    rule_test_result r;
    r.id = t.id;
    r.file = t.at.file;
    r.line = t.at.line;
    r.col = t.at.col;
    run_one(*rs, t, r, volumes);
    (r.passed() ? rep.passed : rep.failed) += 1;
    rep.results.push_back(std::move(r));
  }
  return rep;
}

rule_set_summary summarize(const rule_set& rules) {
  rule_set_summary s;
  const auto* rs = dynamic_cast<const compiled_rule_set*>(&rules);
  if (rs == nullptr) return s;
  for (const auto& p : rs->packs) s.packs.emplace_back(p.id, p.version);
  s.groups = rs->groups.size();
  s.detectors = rs->detectors.size();
  s.rules = rs->rules.size();
  s.exceptions = rs->exceptions.size();
  s.tests = rs->tests.size();
  s.volumes = rs->volumes.size();
  return s;
}

std::optional<rule_info> describe_rule(const rule_set& rules, const std::string& id) {
  const auto* rs = dynamic_cast<const compiled_rule_set*>(&rules);
  if (rs == nullptr) return std::nullopt;
  for (const auto& r : rs->rules) {
    if (r.id != id) continue;
    return rule_info{r.id, r.pack, r.description, r.act, r.references};
  }
  // Volume levels are named like rules.
  for (const auto& v : rs->volumes)
    for (const auto& l : v.levels)
      if (l.id == id) return rule_info{l.id, v.pack, l.description, l.act, l.references};
  return std::nullopt;
}

std::string mask_match(std::string_view text) {
  finding f;
  f.text = text;
  static const compiled_rule_set empty;
  return empty.replacement(detail::redaction::last4, f);
}

}  // namespace customs::policy
