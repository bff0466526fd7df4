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
  // Null with no rules (text passes unchanged), and for a rule_set that
  // load_rule_set did not make (a test double): then the whole text is held and
  // evaluated by its scan/decide/redact at finish().
  const compiled_rule_set* rs = nullptr;
  flow_context ctx;
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
    if (mask == 0) return;  // no detector can have matched: nothing to resolve (callers check too)
    closed_candidate c{start, state, at, rs->mask_context[mask]};
    // Candidates close out of start order (a longer one may outlive a later one).
    auto pos = closed.end();
    while (pos != closed.begin() + static_cast<std::ptrdiff_t>(closed_head) && (pos - 1)->start > start) --pos;
    closed.insert(pos, c);
  }

  // Whether the character that ends right before the next byte is a word
  // character (text.hpp), tracked byte by byte across pieces as a small state:
  //   0 not a word character, 1 a word character, 2 after EF, 3 after EF BC,
  //   4 after EF BD (the full-width letters and digits are EF BC xx, EF BD xx).
  std::uint8_t word_state = 0;

  struct tables {
    std::uint8_t next[5][256];      // word state after a byte
    std::uint8_t no_start[5][256];  // 1: a candidate cannot start at this byte
  };
  static const tables& word_tables() {
    static const tables t = [] {
      tables x{};
      for (int st = 0; st < 5; ++st) {
        for (int b = 0; b < 256; ++b) {
          std::uint8_t n = 0;
          if (b < 0x80) n = text::is_ascii_alnum(static_cast<unsigned char>(b)) ? 1 : 0;
          else if (b == 0xEF) n = 2;
          else if (st == 2 && (b == 0xBC || b == 0xBD)) n = b == 0xBC ? 3 : 4;
          else if (st == 3) n = ((b >= 0x90 && b <= 0x99) || (b >= 0xA1 && b <= 0xBA)) ? 1 : 0;
          else if (st == 4) n = (b >= 0x81 && b <= 0x9A) ? 1 : 0;
          x.next[st][b] = n;
          // A match starting with a letter or digit right after another cannot count.
          x.no_start[st][b] = (st == 1 && text::is_ascii_alnum(static_cast<unsigned char>(b))) ? 1 : 0;
        }
      }
      return x;
    }();
    return t;
  }

  void advance(std::size_t from) {
    const stream_automaton& a = rs->automaton;
    // Local copies: the compiler cannot keep members in registers across the
    // writes to `open`.
    const std::uint32_t* trans = a.transitions();
    const std::uint8_t* cls = a.byte_classes();
    const std::uint32_t* first = a.first_states();
    const std::uint8_t* terminal = a.terminals();
    const std::uint32_t* masks = a.mask_ids();
    const std::size_t classes = a.classes();
    const tables& wt = word_tables();
    const auto* data = reinterpret_cast<const unsigned char*>(buf.data()) - base;
    std::uint8_t ws = word_state;
    std::size_t p = from;
    while (p < end) {
      // No candidate open: only look for the next start. (The start step below is
      // written out twice on purpose: as a lambda it cost a tenth of the
      // throughput, measured with bench/scanner.)
      while (open.empty() && p < end) {
        const unsigned char b = data[p];
        const std::uint32_t s1 = wt.no_start[ws][b] ? stream_automaton::dead : first[b];
        ws = wt.next[ws][b];
        if (s1 != stream_automaton::dead) {
          if (!terminal[s1]) open.push_back({p, s1});
          else if (masks[s1] != 0) close(p, s1, p + 1);
        }
        ++p;
      }
      // Candidates open: advance each, then look for a start.
      while (!open.empty() && p < end) {
        const unsigned char b = data[p];
        const std::size_t c_b = cls[b];
        std::size_t keep = 0;
        const std::size_t n = open.size();
        for (std::size_t r = 0; r < n; ++r) {
          const open_candidate c = open[r];
          const std::uint32_t ns = trans[static_cast<std::size_t>(c.state) * classes + c_b];
          if (ns == stream_automaton::dead) {
            if (masks[c.state] != 0) close(c.start, c.state, p);
          } else if (terminal[ns]) {
            if (masks[ns] != 0) close(c.start, ns, p + 1);
          } else {
            open[keep++] = {c.start, ns};
          }
        }
        open.resize(keep);
        const std::uint32_t s1 = wt.no_start[ws][b] ? stream_automaton::dead : first[b];
        ws = wt.next[ws][b];
        if (s1 != stream_automaton::dead) {
          if (!terminal[s1]) open.push_back({p, s1});
          else if (masks[s1] != 0) close(p, s1, p + 1);
        }
        ++p;
      }
    }
    word_state = ws;
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
    bool new_rule = false;
    for (auto& f : batch) {
      rs->apply(plan, f);
      const action act = f.applied;
      v.act = std::max(v.act, act);
      // The verdict's lists change only when a detector first shows up: keep the
      // cost per finding constant however many findings a long stream has.
      const std::size_t d = detector_of(f);
      if (!seen_detector[d]) seen_detector[d] = true, new_rule = true;
      v.findings.push_back(std::move(f));
      if (act == action::redact) pending.push_back(v.findings.size() - 1);
      if (act == action::block) blocked = true;
    }
    if (new_rule) rs->summarize(plan, v);
  }

  std::vector<bool> seen_detector;  // per detector: has a finding in v
  [[nodiscard]] std::size_t detector_of(const finding& f) const {
    const auto it = std::lower_bound(rs->detectors.begin(), rs->detectors.end(), f.detector,
                                     [](const detail::detector_def& d, const std::string& id) { return d.id < id; });
    return static_cast<std::size_t>(it - rs->detectors.begin());
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
    if (release > base + history + 4096) {
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
  if (m.rs == nullptr) {
    m.ctx = std::move(ctx);
    return;
  }
  m.plan = m.rs->plan(ctx);
  m.rs->summarize(m.plan, m.v);
  m.next_pos.assign(m.rs->detectors.size(), 0);
  m.seen_detector.assign(m.rs->detectors.size(), false);
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
  if (m.rs == nullptr && m.keep) return out;  // another implementation: decided at finish()
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
  if (m.rs == nullptr && m.keep) {
    m.v = m.keep->decide(m.ctx, m.keep->scan(m.buf, 0));
    out.blocked = m.blocked = m.v.act == action::block;
    if (!out.blocked) out.released = m.keep->redact(m.buf, m.v.findings, 0);
    m.base = m.release = m.end;
    m.buf.clear();
    return out;
  }
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
