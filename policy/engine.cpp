// Whole-text scanning and verdicts (data plane). Nothing here throws on
// untrusted input.
//
// Matching semantics, shared with the stream scanner (stream.cpp) and checked
// against it by the property tests:
//   For each detector on its own, from position 0: find the leftmost match (RE2,
//   leftmost-first). It is a finding if it does not start or end inside a run of
//   word characters (text.hpp), is not on the allow-list, passes every validator
//   and, when the detector has context words, has one of them within the window
//   before or after it. When RE2's match at a start is rejected, shorter matches
//   at the same start are tried, longest first (a greedy optional part must not
//   hide a valid identifier: "card 6222 0212 3456 7893 12 items"). A finding
//   resumes the search at its end; when nothing at a start is accepted, the
//   search resumes one byte after it.
//   Findings of different detectors may overlap; all are kept (a longer match of
//   one detector never hides a shorter match of another).
#include <algorithm>
#include <chrono>
#include <limits>

#include "policy/model.hpp"
#include "policy/normalize.hpp"
#include "policy/text.hpp"

namespace customs::policy {

verdict rule_set::decide_destination(const flow_context& ctx) const {
  flow_context c = ctx;
  c.dir = direction::request;
  c.non_text_parts.clear();
  return decide(c, {});
}

rule_set::evaluation rule_set::evaluate(std::string_view text, const flow_context& ctx) const {
  evaluation e;
  e.result = decide(ctx, scan(text, 0));
  e.redacted = redact(text, e.result.findings, 0);
  return e;
}

namespace detail {

std::string_view to_string(redaction r) noexcept {
  switch (r) {
    case redaction::last4: return "last4";
    case redaction::mask: return "mask";
    case redaction::label: return "label";
  }
  return "label";
}

std::optional<redaction> parse_redaction(std::string_view s) noexcept {
  if (s == "label") return redaction::label;
  if (s == "mask") return redaction::mask;
  if (s == "last4") return redaction::last4;
  return std::nullopt;
}

bool value_matcher::matches(std::string_view v) const {
  auto has = [v](const std::vector<std::string>& s) {
    return std::binary_search(s.begin(), s.end(), v, [](std::string_view a, std::string_view b) { return a < b; });
  };
  if (!any && !has(in_expanded)) return false;
  return !has(not_in_expanded);
}

bool finding_before(const finding& a, const finding& b) noexcept {
  if (a.part != b.part) return a.part < b.part;
  if (a.start != b.start) return a.start < b.start;
  if (a.end != b.end) return a.end > b.end;
  return a.detector < b.detector;
}

void sort_findings(std::vector<finding>& f) { std::sort(f.begin(), f.end(), finding_before); }

void redact_into(std::string_view text, const std::vector<const finding*>& redacted, std::string& out) {
  std::size_t cursor = 0;
  for (const finding* f : redacted) {
    if (f->start >= f->end || f->end > text.size()) continue;  // not of this text
    if (f->end <= cursor) continue;                             // inside the last replacement
    if (f->start > cursor) out.append(text.substr(cursor, f->start - cursor));
    out += f->replacement;
    cursor = f->end;
  }
  if (cursor < text.size()) out.append(text.substr(cursor));
}

bool compiled_rule_set::validators_pass(std::size_t d, std::string_view normalized) const {
  for (const auto& v : detectors[d].validators) {
    const bool ok = v.builtin ? validate_normalized(*v.builtin, normalized)
                              : v.scheme < schemes.size() && schemes[v.scheme].scheme.validate(normalized);
    if (!ok) return false;
  }
  return true;
}

compiled_rule_set::decision compiled_rule_set::accept(std::size_t d, std::string_view text, std::size_t s,
                                                      std::size_t e, bool more) const {
  constexpr auto no = decision::no;
  const detector_def& det = detectors[d];
  if (text::word_starts_at(text, s) && text::word_ends_before(text, s)) return no;
  if (text::word_ends_before(text, e) && text::word_starts_at(text, e)) return no;
  const std::string_view m = text.substr(s, e - s);
  if (!det.allow.empty() && std::binary_search(det.allow.begin(), det.allow.end(), m,
                                               [](std::string_view a, std::string_view b) { return a < b; }))
    return no;
  // A match that needs separators the pattern does not write (pattern::loosen)
  // may not start inside a spaced number: not "3704 0044 0532 ..." of
  // "DE89 3704 0044 0532 0130 00". (It may end before more digits, as a card
  // number before its expiry date does.) Without digit_separators, the same
  // holds for a match its pattern spells digit by digit: not
  // "1 9 4 9 1 2 3 1 0 0 2" of a resident ID spaced out. (A match in the
  // groups its pattern writes, "138 1234 5678", may start after "5 ".)
  if (text::digit_starts_at(text, s) && text::separator_after_digit(text, s)) {
    if (det.strict_re ? !RE2::FullMatch(re2::StringPiece(m.data(), m.size()), *det.strict_re)
                      : det.digit_separators == detector_def::separators::off && text::separated_digit_by_digit(m))
      return no;
  }
  // The visible part of a masked number ("***-**-1234") is not the start of
  // an identifier that goes on past a line break ("12345 Main Street" on the
  // next line); nor are numbers that count by one. Only a match cut by a line
  // break: in front of a whole identifier, a mask must not hide it.
  if (text::digit_starts_at(text, s) && text::has_line_break(m) && text::after_mask(text, s)) return no;
  if (text::counts_by_one(m)) return no;
  if (det.digit_separators == detector_def::separators::uniform && !text::uniform_separators(m)) return no;
  if (!det.validators.empty() && !validators_pass(d, text::alnum_upper(m))) return no;
  if (!det.context_words.empty()) {
    const std::size_t w = det.context_window;
    const std::string_view before = text.substr(s >= w ? s - w : 0, s >= w ? w : s);
    const std::string_view after = text.substr(e, w);
    const bool near = std::any_of(det.context_words.begin(), det.context_words.end(), [&](const std::string& k) {
      return text::contains_word_start_ci(before, k) || text::contains_word_start_ci(after, k);
    });
    if (!near) return more && e + w > text.size() ? decision::wait : no;
  }
  return decision::yes;
}

finding compiled_rule_set::make_finding(std::size_t d, std::string_view text, std::size_t s, std::size_t e,
                                        std::uint32_t part) const {
  const detector_def& det = detectors[d];
  finding f;
  f.detector = det.id;
  f.category = det.category;
  f.sensitive = det.sensitive;
  f.part = part;
  f.start = s;
  f.end = e;
  f.text.assign(text.substr(s, e - s));
  return f;
}

std::size_t compiled_rule_set::match_at(std::size_t d, std::string_view text, std::size_t s, std::size_t e,
                                        bool more, bool* wait) const {
  auto decide_at = [&](std::size_t k, std::size_t& out) {
    const decision a = accept(d, text, s, k, more);
    if (a == decision::no) return false;
    if (a == decision::wait && wait != nullptr) *wait = true;
    out = a == decision::yes ? k : 0;
    return true;  // decided (or undecidable yet): stop here
  };
  std::size_t out = 0;
  if (decide_at(e, out)) return out;
  // The start boundary does not depend on the end: if it fails, so do all.
  if (text::word_starts_at(text, s) && text::word_ends_before(text, s)) return 0;
  const detector_def& det = detectors[d];
  const re2::StringPiece sp(text.data(), text.size());
  // Shorter ends: the validators are cheaper than RE2, and the normalized form
  // of [s, k) is a prefix of that of [s, e); check them first.
  std::string norm;
  std::vector<std::uint16_t> norm_len;  // per byte offset from s: length of the normalized prefix
  if (!det.validators.empty()) {
    norm.reserve(e - s);
    norm_len.assign(e - s + 1, 0);
    for (std::size_t i = s; i < e;) {
      std::size_t len = 1;
      const char c = text::word_to_ascii_upper(text::decode(text, i, len));
      if (c != 0) norm.push_back(c);
      for (std::size_t j = 1; j <= len && i + j <= e; ++j) norm_len[i + j - s] = static_cast<std::uint16_t>(norm.size());
      i += len;
    }
  }
  for (std::size_t k = e - 1; k >= s + det.min_len && k > s; --k) {
    if (text::is_continuation(static_cast<unsigned char>(text[k]))) continue;
    if (text::word_ends_before(text, k) && text::word_starts_at(text, k)) continue;
    if (!norm_len.empty() && !validators_pass(d, std::string_view(norm).substr(0, norm_len[k - s]))) continue;
    if (!det.re->Match(sp, s, k, RE2::ANCHOR_BOTH, nullptr, 0)) continue;
    if (decide_at(k, out)) return out;
  }
  return 0;
}

namespace {
void scan_detector(const compiled_rule_set& rs, std::size_t d, std::string_view text, std::uint32_t part,
                   std::vector<finding>& out) {
  const RE2& re = *rs.detectors[d].re;
  const re2::StringPiece sp(text.data(), text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    re2::StringPiece m;
    if (!re.Match(sp, pos, text.size(), RE2::UNANCHORED, &m, 1)) break;
    const auto s = static_cast<std::size_t>(m.data() - text.data());
    const std::size_t e = s + m.size();
    const std::size_t end = e > s ? rs.match_at(d, text, s, e) : 0;
    if (end > s) {
      out.push_back(rs.make_finding(d, text, s, end, part));
      pos = end;
    } else if (text::word_starts_at(text, s)) {
      // Every later start inside this run of word characters follows a word
      // character and begins with one: the boundary rule rejects them all.
      pos = s;
      while (text::word_starts_at(text, pos)) pos += static_cast<unsigned char>(text[pos]) < 0x80 ? 1 : 3;
    } else {
      pos = s + 1;
    }
  }
}
}  // namespace

bool compiled_rule_set::detect(std::string_view text, std::vector<int>& hits) const {
  hits.clear();
  if (!set) return true;
  RE2::Set::ErrorInfo info{RE2::Set::kNoError};
  const re2::StringPiece sp(text.data(), text.size());
  // Most texts hold nothing: asked without a match list, the set stops at the
  // first match and allocates nothing; only a text that holds something is
  // searched again for which detectors.
  if (!set->Match(sp, nullptr, &info)) return info.kind == RE2::Set::kNoError;
  const bool any = set->Match(sp, &hits, &info);
  if (!any && info.kind != RE2::Set::kNoError) return false;
  return true;
}

std::vector<finding> compiled_rule_set::scan_view(std::string_view view, std::uint32_t part, bool all) const {
  std::vector<finding> out;
  std::vector<int> hits;
  if (all || !detect(view, hits)) {  // every detector, or the set's DFA gave up: scan each
    for (std::size_t d = 0; d < detectors.size(); ++d) scan_detector(*this, d, view, part, out);
  } else {
    std::sort(hits.begin(), hits.end());
    for (const int d : hits) scan_detector(*this, static_cast<std::size_t>(d), view, part, out);
  }
  sort_findings(out);
  return out;
}

std::vector<finding> compiled_rule_set::base64_findings(std::string_view run, std::uint32_t part) const {
  const std::string decoded = text::base64_text(run);
  if (decoded.empty()) return {};
  const text::normalized n = text::normalize(decoded);
  std::vector<finding> out = scan_view(n.identity ? std::string_view(decoded) : std::string_view(n.text), part, false);
  // All of them stand for the run: one per detector.
  std::sort(out.begin(), out.end(), [](const finding& a, const finding& b) { return a.detector < b.detector; });
  out.erase(std::unique(out.begin(), out.end(), [](const finding& a, const finding& b) { return a.detector == b.detector; }),
            out.end());
  return out;
}

std::vector<finding> compiled_rule_set::scan_text(std::string_view text, std::uint32_t part, bool all) const {
  const text::normalized n = text::normalize(text);
  const std::string_view view = n.identity ? text : std::string_view(n.text);
  std::vector<finding> out = scan_view(view, part, all);
  const auto to_original = [&](finding& f, std::size_t s, std::size_t e) {
    f.start = n.identity ? s : n.map.original_start(s);
    f.end = n.identity ? e : n.map.original_end(e);
    f.text.assign(text.substr(f.start, f.end - f.start));
  };
  if (!n.identity)
    for (auto& f : out) to_original(f, f.start, f.end);
  // Base64 runs, decoded and scanned; their findings stand for the whole run.
  std::size_t before = out.size();
  text::for_each_base64_run(view, [&](const text::base64_tracker::run& r) {
    if (!n.identity && !n.map.is_copy(r.start, r.end)) return;
    for (auto& f : base64_findings(view.substr(r.start, r.end - r.start), part)) {
      to_original(f, r.start, r.end);
      out.push_back(std::move(f));
    }
  });
  if (out.size() != before) {
    sort_findings(out);
    out.erase(std::unique(out.begin(), out.end(),
                          [](const finding& a, const finding& b) {
                            return a.part == b.part && a.start == b.start && a.end == b.end && a.detector == b.detector;
                          }),
              out.end());
  }
  return out;
}

std::vector<finding> compiled_rule_set::scan_all(std::string_view text, std::uint32_t part) const {
  return scan_text(text, part, true);
}

std::vector<finding> compiled_rule_set::scan(std::string_view text, std::uint32_t part) const {
  return scan_text(text, part, false);
}

flow_plan compiled_rule_set::plan(const flow_context& ctx) const {
  flow_plan p;
  const std::size_t nr = rules.size();
  const std::size_t nd = detectors.size();
  p.effective.assign(nr, action::allow);
  p.lowered_by.assign(nr, {});
  p.applies.assign(nr, false);
  p.applied.assign(nd, action::allow);
  p.style.assign(nd, redaction::last4);
  p.rules.assign(nd, {});
  auto upper = [](std::string s) {
    for (auto& c : s)
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return s;
  };
  const std::string src = upper(ctx.src);
  const std::string dst = upper(ctx.dst);
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       ctx.now.value_or(std::chrono::system_clock::now()).time_since_epoch())
                       .count();
  for (std::size_t i = 0; i < nr; ++i) {
    const rule_def& r = rules[i];
    if (ctx.dir == direction::request ? !r.on_request : !r.on_response) continue;
    if (!r.src.matches(src) || !r.dst.matches(dst) || !r.tenants.matches(ctx.tenant)) continue;
    if (!r.parts.empty()) {
      const bool present = std::any_of(r.parts.begin(), r.parts.end(), [&](const std::string& k) {
        const auto it = ctx.non_text_parts.find(k);
        return it != ctx.non_text_parts.end() && it->second > 0;
      });
      if (!present) continue;
    }
    p.applies[i] = true;
    p.effective[i] = r.act;
  }
  // Exceptions lower the rules they name; with several current ones, the lowest
  // action wins, so their order never matters.
  for (std::size_t x = 0; x < exceptions.size(); ++x) {
    const exception_def& e = exceptions[x];
    if (now >= e.expires_end) continue;
    if (!e.tenants.empty() && !std::binary_search(e.tenants.begin(), e.tenants.end(), ctx.tenant)) continue;
    if (!e.routes.empty() && !std::binary_search(e.routes.begin(), e.routes.end(), ctx.route)) continue;
    for (const auto ri : e.rule_index) {
      if (!p.applies[ri] || e.act >= rules[ri].act) continue;
      p.effective[ri] = std::min(p.effective[ri], e.act);
      p.lowered_by[ri].push_back(static_cast<std::uint32_t>(x));
    }
  }
  for (std::size_t i = 0; i < nr; ++i) {
    if (!p.applies[i]) continue;
    const rule_def& r = rules[i];
    if (!r.has_selector) {
      p.flow_rules.push_back(static_cast<std::uint32_t>(i));
      p.flow_act = std::max(p.flow_act, p.effective[i]);
      continue;
    }
    for (std::size_t d = 0; d < nd; ++d) {
      if (!r.selects[d]) continue;
      p.rules[d].push_back(static_cast<std::uint32_t>(i));
      p.applied[d] = std::max(p.applied[d], p.effective[i]);
      if (p.effective[i] == action::redact) p.style[d] = std::max(p.style[d], r.style);
    }
  }
  return p;
}

std::string compiled_rule_set::replacement(redaction style, const finding& f) const {
  std::string out;
  // Built from the normalized match: invisible characters are gone, decoded
  // references and escapes show as what they stand for.
  const text::normalized n = style == redaction::label ? text::normalized{} : text::normalize(f.text);
  const std::string_view t = n.identity ? std::string_view(f.text) : std::string_view(n.text);
  switch (style) {
    case redaction::label: return "[REDACTED:" + f.category + "]";
    case redaction::mask: return std::string(text::count_chars(t), '*');
    case redaction::last4: {
      std::size_t words = 0;
      for (std::size_t i = 0; i < t.size();) {
        std::size_t len = 1;
        if (text::word_to_ascii_upper(text::decode(t, i, len))) ++words;
        i += len;
      }
      std::size_t seen = 0;
      for (std::size_t i = 0; i < t.size();) {
        std::size_t len = 1;
        const bool word = text::word_to_ascii_upper(text::decode(t, i, len)) != 0;
        if (word && ++seen + 4 <= words) out += '*';
        else out.append(t, i, len);
        i += len;
      }
      return out;
    }
  }
  return out;
}

void compiled_rule_set::apply(const flow_plan& p, finding& f) const {
  const auto it = std::lower_bound(detectors.begin(), detectors.end(), f.detector,
                                   [](const detector_def& d, const std::string& id) { return d.id < id; });
  f.applied = action::allow;
  f.replacement.clear();
  if (it == detectors.end() || it->id != f.detector) return;  // not of this rule set
  const auto d = static_cast<std::size_t>(it - detectors.begin());
  f.applied = p.applied[d];
  if (f.applied == action::redact) f.replacement = replacement(p.style[d], f);
}

void compiled_rule_set::summarize(const flow_plan& p, verdict& v) const {
  std::vector<bool> fired(rules.size(), false);
  v.act = p.flow_act;
  for (const auto r : p.flow_rules) fired[r] = true;
  for (const auto& f : v.findings) {
    v.act = std::max(v.act, f.applied);
    const auto it = std::lower_bound(detectors.begin(), detectors.end(), f.detector,
                                     [](const detector_def& d, const std::string& id) { return d.id < id; });
    if (it == detectors.end() || it->id != f.detector) continue;
    for (const auto r : p.rules[static_cast<std::size_t>(it - detectors.begin())]) fired[r] = true;
  }
  v.rules.clear();
  v.tags.clear();
  v.exceptions.clear();
  for (std::size_t i = 0; i < rules.size(); ++i) {
    if (!fired[i]) continue;
    v.rules.push_back(rules[i].id);  // rules are sorted by id
    if (p.effective[i] >= action::tag) v.tags.insert(v.tags.end(), rules[i].tags.begin(), rules[i].tags.end());
    for (const auto x : p.lowered_by[i]) v.exceptions.push_back(exceptions[x].id);
  }
  std::sort(v.tags.begin(), v.tags.end());
  v.tags.erase(std::unique(v.tags.begin(), v.tags.end()), v.tags.end());
  std::sort(v.exceptions.begin(), v.exceptions.end());
  v.exceptions.erase(std::unique(v.exceptions.begin(), v.exceptions.end()), v.exceptions.end());
  v.rule_set_hash = hash_;
}

std::shared_ptr<const flow_plan> compiled_rule_set::shared_plan(const flow_context& ctx) const {
  if (ctx.now) return std::make_shared<const flow_plan>(plan(ctx));
  // The key: what plan() reads of the context. Source and destination as it
  // compares them (upper case); every kind of non-text part present.
  std::string key;
  key.reserve(ctx.src.size() + ctx.dst.size() + ctx.tenant.size() + ctx.route.size() + 8);
  key += ctx.dir == direction::request ? 'q' : 'r';
  // Each field's size before it keeps any bytes in it (a NUL too) from
  // running into the next field (found in review: NUL-terminated fields made
  // src "CN" with dst "US\0CN" and src "CN\0US" with dst "CN" one key).
  for (const std::string* f : {&ctx.src, &ctx.dst}) {
    key += std::to_string(f->size());
    key += ':';
    for (char c : *f) key += c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
  }
  // Tenant and route are compared as they are.
  for (const std::string* f : {&ctx.tenant, &ctx.route}) {
    key += std::to_string(f->size());
    key += ':';
    key += *f;
  }
  for (const auto& [kind, n] : ctx.non_text_parts) {
    if (n == 0) continue;
    key += std::to_string(kind.size());
    key += ':';
    key += kind;
  }
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  {
    std::lock_guard lk(plans_->mu);
    const auto it = plans_->plans.find(key);
    if (it != plans_->plans.end() && it->second.valid_from <= now && now < it->second.valid_until)
      return it->second.plan;
  }
  flow_context at = ctx;
  at.now = std::chrono::system_clock::time_point(std::chrono::seconds(now));
  auto made = std::make_shared<const flow_plan>(plan(at));
  // Valid from the last exception expiry at or before `now` until the next
  // one after it: a clock set back past an expiry gets a plan made afresh.
  std::int64_t from = std::numeric_limits<std::int64_t>::min();
  std::int64_t until = std::numeric_limits<std::int64_t>::max();
  for (const auto& e : exceptions) {
    if (now < e.expires_end) until = std::min<std::int64_t>(until, e.expires_end);
    else from = std::max<std::int64_t>(from, e.expires_end);
  }
  std::lock_guard lk(plans_->mu);
  if (plans_->plans.size() >= plan_cache_entries) plans_->plans.clear();
  plans_->plans[std::move(key)] = {made, from, until};
  return made;
}

verdict compiled_rule_set::decide(const flow_context& ctx, std::vector<finding> findings) const {
  const auto shared = shared_plan(ctx);
  const flow_plan& p = *shared;
  for (auto& f : findings) apply(p, f);
  sort_findings(findings);
  // A redacted finding that overlaps another redacted one is replaced by its
  // label: a style that shows part of the match (last4) could otherwise show
  // characters the other finding hides.
  for (std::size_t i = 0; i < findings.size(); ++i) {
    finding& a = findings[i];
    if (a.applied != action::redact) continue;
    for (std::size_t j = i + 1; j < findings.size() && findings[j].part == a.part && findings[j].start < a.end; ++j) {
      finding& b = findings[j];
      if (b.applied != action::redact) continue;
      a.replacement = replacement(redaction::label, a);
      b.replacement = replacement(redaction::label, b);
    }
  }
  verdict v;
  v.findings = std::move(findings);
  summarize(p, v);
  return v;
}

std::string compiled_rule_set::redact(std::string_view text, std::span<const finding> findings,
                                      std::uint32_t part) const {
  std::vector<const finding*> r;
  for (const auto& f : findings)
    if (f.part == part && f.applied == action::redact) r.push_back(&f);
  std::sort(r.begin(), r.end(), [](const finding* a, const finding* b) { return finding_before(*a, *b); });
  std::string out;
  out.reserve(text.size());
  redact_into(text, r, out);
  return out;
}

}  // namespace detail
}  // namespace customs::policy
