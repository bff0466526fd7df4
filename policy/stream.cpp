// The streaming scanner (data plane): the whole-text semantics of engine.cpp,
// computed on text that arrives in pieces, releasing each byte as soon as no
// match that could still cover it is undecided.
//
// How:
//   Every byte position where the prefilter automaton (automaton.hpp) can start
//   (and that is not inside a run of word characters) opens a CANDIDATE. Each fed
//   byte advances the open candidates one DFA step; a candidate closes when its
//   DFA state dies (no detector can match from its start with these bytes) or
//   can go no further. A closed candidate on whose path no detector could have
//   matched is dropped; the others are RESOLVED in start order, once no open
//   candidate starts before them and the bytes their detectors look at past a
//   match exist (the next character, context windows): for each detector the DFA
//   says may have matched, RE2 confirms the match anchored at the start, and
//   engine.cpp's match_at() decides. Most candidates die after a byte or two,
//   and almost none needs RE2.
//   SAFE is the start of the oldest unresolved candidate: no finding can begin
//   before it any more. Text before SAFE is released, except that a redacted
//   finding is emitted only once SAFE has passed its end (then every finding that
//   overlaps it is known, for the overlap rule of rule_set::decide).
// Bounds: a candidate closes within max_match bytes; so the oldest unresolved one
// starts at most max_match + lookahead bytes before the end, and a waiting
// redacted finding at most max_match before SAFE: held() <= max_hold_back().
// Cost per fed byte: one table lookup, plus one per open candidate (usually 0-2).
#include <algorithm>

#include "policy/model.hpp"
#include "policy/text.hpp"

namespace customs::policy {

using detail::compiled_rule_set;

struct stream_scanner::impl {
  rule_set_ptr keep;
  const compiled_rule_set* rs = nullptr;  // null: no rules, text passes unchanged
  detail::flow_plan plan;
  verdict v;

  std::string buf;           // the bytes [base, end)
  std::size_t base = 0;      // absolute offset of buf[0]
  std::size_t end = 0;       // bytes fed so far
  std::size_t release = 0;   // output emitted for [0, release)
  std::size_t history = 4;   // bytes kept before `release` for boundary and context checks

  // Candidates still reading bytes, in start order.
  struct open_candidate {
    std::size_t start;
    std::uint32_t state;  // current DFA state
  };
  std::vector<open_candidate> open;
  // Candidates whose DFA died with some detector possible, waiting to be resolved;
  // sorted by start. (Those that died with none are dropped at once.)
  struct closed_candidate {
    std::size_t start;
    std::uint32_t state;  // the last live DFA state: its accept set says which detectors
    std::size_t closed;   // where the DFA died: every match from start ends at or before it
    std::size_t context;  // the widest context window of those detectors
  };
  std::vector<closed_candidate> closed;
  std::size_t closed_head = 0;

  std::vector<std::size_t> next_pos;  // per detector: where its search resumes
  std::vector<std::size_t> pending;   // indices into v.findings: redacted, not yet emitted
  std::size_t last_redacted_end = 0;
  std::vector<finding> batch;
  bool blocked = false;
  bool finished = false;

  [[nodiscard]] std::string_view text() const noexcept { return buf; }

  void close(std::size_t start, std::uint32_t state, std::size_t at) {
    const stream_automaton& a = rs->automaton;
    const std::uint32_t mask = a.mask_id(state);
    if (mask == 0) return;  // no detector can have matched: nothing to resolve
    closed_candidate c{start, state, at, rs->mask_context[mask]};
    // Candidates close out of start order (a longer one may outlive a later one).
    auto pos = closed.end();
    while (pos != closed.begin() + static_cast<std::ptrdiff_t>(closed_head) && (pos - 1)->start > start) --pos;
    closed.insert(pos, c);
  }

  void advance(std::size_t from) {
    const stream_automaton& a = rs->automaton;
    const auto* data = reinterpret_cast<const unsigned char*>(buf.data());
    for (std::size_t p = from; p < end; ++p) {
      const unsigned char b = data[p - base];
      if (!open.empty()) {
        std::size_t w = 0;
        for (std::size_t r = 0; r < open.size(); ++r) {
          open_candidate c = open[r];
          const std::uint32_t ns = a.next(c.state, b);
          if (ns == stream_automaton::dead) {
            close(c.start, c.state, p);
          } else if (a.terminal(ns)) {
            close(c.start, ns, p + 1);
          } else {
            c.state = ns;
            open[w++] = c;
          }
        }
        open.resize(w);
      }
      const std::uint32_t s1 = a.first(b);
      if (s1 == stream_automaton::dead) continue;
      // A match starting with a letter or digit right after another cannot count.
      if (text::is_ascii_alnum(b) && text::word_ends_before(text(), p - base)) continue;
      if (a.terminal(s1)) close(p, s1, p + 1);
      else open.push_back({p, s1});
    }
  }

  void resolve_one(const closed_candidate& c) {
    const stream_automaton& a = rs->automaton;
    batch.clear();
    const std::string_view t = text();
    const std::size_t s = c.start - base;
    for (const auto d : a.accepted(c.state)) {
      if (c.start < next_pos[d]) continue;  // inside this detector's previous finding
      const auto& det = rs->detectors[d];
      const std::size_t stop = std::min(t.size(), s + det.max_len);
      re2::StringPiece m;
      if (!det.re->Match(re2::StringPiece(t.data(), t.size()), s, stop, RE2::ANCHOR_START, &m, 1)) continue;
      const std::size_t e = m.size() == 0 ? 0 : rs->match_at(d, t, s, s + m.size());
      if (e <= s) continue;
      finding f = rs->make_finding(d, t, s, e, 0);
      f.start += base;
      f.end += base;
      next_pos[d] = f.end;
      batch.push_back(std::move(f));
    }
    if (batch.empty()) return;
    std::sort(batch.begin(), batch.end(), detail::finding_before);
    for (auto& f : batch) {
      rs->apply(plan, f);
      const action act = f.applied;
      v.findings.push_back(std::move(f));
      if (act == action::redact) pending.push_back(v.findings.size() - 1);
      if (act == action::block) blocked = true;
    }
    rs->summarize(plan, v);
  }

  // Whether every byte that accept() may read for a match ending at or before
  // c.closed is there: the context window after it, and the character after the
  // match (one byte, or three when it may be a full-width letter or digit, EF ..).
  [[nodiscard]] bool ready(const closed_candidate& c) const noexcept {
    if (end < c.closed + std::max<std::size_t>(1, c.context)) return false;
    if (end >= c.closed + 3) return true;
    const std::size_t from = c.closed >= 2 ? c.closed - 2 : 0;
    for (std::size_t k = std::max(from, base); k <= c.closed && k < end; ++k)
      if (static_cast<unsigned char>(buf[k - base]) == 0xEF && k + 3 > end) return false;
    return true;
  }

  // Resolves closed candidates in start order, as far as no open candidate
  // starts before them and the bytes they look at are there. final: the text ended.
  void resolve(bool final) {
    if (final) {
      for (const auto& c : open) close(c.start, c.state, end);
      open.clear();
    }
    while (closed_head < closed.size() && !blocked) {
      const closed_candidate& c = closed[closed_head];
      if (!final && (!ready(c) || (!open.empty() && open.front().start < c.start))) break;
      resolve_one(c);
      ++closed_head;
    }
    if (closed_head == closed.size()) {
      closed.clear();
      closed_head = 0;
    } else if (closed_head >= 32 && closed_head * 2 >= closed.size()) {
      closed.erase(closed.begin(), closed.begin() + static_cast<std::ptrdiff_t>(closed_head));
      closed_head = 0;
    }
  }

  std::string emit(bool final) {
    std::string out;
    std::size_t safe = end;
    if (!final) {
      if (!open.empty()) safe = std::min(safe, open.front().start);
      if (closed_head < closed.size()) safe = std::min(safe, closed[closed_head].start);
    }
    std::size_t cursor = release;
    std::size_t limit = safe;
    const std::string_view t = text();
    std::size_t done = 0;
    for (; done < pending.size(); ++done) {
      finding& f = v.findings[pending[done]];
      if (f.end > safe) {
        limit = std::min(limit, f.start);
        break;
      }
      const bool overlapped = last_redacted_end > f.start ||
                              (done + 1 < pending.size() && v.findings[pending[done + 1]].start < f.end);
      if (overlapped) f.replacement = rs->replacement(detail::redaction::label, f);
      if (f.end > cursor) {
        if (f.start > cursor) out.append(t.substr(cursor - base, f.start - cursor));
        out += f.replacement;
        cursor = f.end;
      }
      last_redacted_end = std::max(last_redacted_end, f.end);
    }
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(done));
    if (!final && limit == end) limit = base + text::complete_prefix(t);  // never split a character
    if (limit > cursor) {
      out.append(t.substr(cursor - base, limit - cursor));
      cursor = limit;
    }
    release = cursor;
    // Drop what no check can look at any more.
    if (release > base + history + 1024) {
      const std::size_t keep_from = release - history;
      buf.erase(0, keep_from - base);
      base = keep_from;
    }
    return out;
  }
};

stream_scanner::stream_scanner(rule_set_ptr rules, flow_context ctx) : impl_(std::make_unique<impl>()) {
  impl& m = *impl_;
  m.keep = std::move(rules);
  m.rs = dynamic_cast<const compiled_rule_set*>(m.keep.get());
  if (m.rs == nullptr) return;
  m.plan = m.rs->plan(ctx);
  m.rs->summarize(m.plan, m.v);
  m.next_pos.assign(m.rs->detectors.size(), 0);
  m.history = std::max<std::size_t>(4, m.rs->max_context_);
  m.buf.reserve(256);
  m.open.reserve(16);
  if (m.v.act == action::block) m.blocked = true;  // a rule blocks this flow whatever the text
}

stream_scanner::~stream_scanner() = default;
stream_scanner::stream_scanner(stream_scanner&&) noexcept = default;
stream_scanner& stream_scanner::operator=(stream_scanner&&) noexcept = default;

stream_scanner::output stream_scanner::feed(std::string_view piece) {
  output out;
  if (!impl_) return out;
  impl& m = *impl_;
  if (m.blocked || m.finished) {
    out.blocked = m.blocked;
    return out;
  }
  const std::size_t from = m.end;
  m.buf.append(piece);
  m.end += piece.size();
  if (m.rs == nullptr) {
    // No rules: release everything but an incomplete trailing character.
    const std::size_t n = text::complete_prefix(m.buf);
    out.released = m.buf.substr(0, n);
    m.buf.erase(0, n);
    m.base += n;
    m.release = m.base;
    return out;
  }
  m.advance(from);
  m.resolve(false);
  if (m.blocked) {
    out.blocked = true;
    return out;
  }
  out.released = m.emit(false);
  return out;
}

stream_scanner::output stream_scanner::finish() {
  output out;
  if (!impl_) return out;
  impl& m = *impl_;
  if (m.blocked || m.finished) {
    out.blocked = m.blocked;
    return out;
  }
  m.finished = true;
  if (m.rs == nullptr) {
    out.released = std::move(m.buf);
    m.buf.clear();
    m.base = m.release = m.end;
    return out;
  }
  m.resolve(true);
  if (m.blocked) {
    out.blocked = true;
    return out;
  }
  out.released = m.emit(true);
  return out;
}

std::size_t stream_scanner::held() const noexcept { return impl_ ? impl_->end - impl_->release : 0; }

const verdict& stream_scanner::current() const noexcept {
  static const verdict none;
  return impl_ ? impl_->v : none;
}

}  // namespace customs::policy
