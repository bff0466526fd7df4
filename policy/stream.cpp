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
// Normalisation (normalize.hpp): the fed text T goes through the incremental
// normalizer, which keeps back at most an incomplete character, escape,
// reference or undecided row of Chinese numerals (text::max_kept_back bytes); candidates run on its output N, and findings, SAFE and releases are
// mapped back to T through the source map, as rule_set::scan maps the
// whole-text findings. Base64 runs of N (normalize.hpp) are tracked alongside:
// an open run that may still be decoded holds SAFE at its start; a closed one
// becomes a candidate of its own, resolved with the candidates of the same start.
// Bounds: a candidate closes within max_match bytes of N (the automaton may loop
// where a pattern repeats more than stream_counted_repeats times, so advance()
// closes a candidate once it is max_match bytes old: every match from its start
// has ended by then); so the oldest
// unresolved one starts at most max_match + lookahead bytes of N before the end,
// and a waiting redacted finding at most max_match before SAFE; a byte of N
// stands for at most text::max_expansion bytes of T; a base64 run holds at most
// text::base64_max_run bytes: held() <= max_hold_back().
// Cost per fed byte: one table lookup, plus one per open candidate (usually 0-2).
#include <algorithm>

#include "policy/model.hpp"
#include "policy/normalize.hpp"
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
  std::shared_ptr<const detail::flow_plan> plan;
  verdict v;

  // N, the normalized text candidates run on, and T, the text as fed, which is
  // released; offsets are absolute.
  text::normalizer norm;
  text::source_map map;      // N -> T, from about base on
  std::string buf;           // N [base, end)
  std::size_t base = 0;      // N offset of buf[0]
  std::size_t end = 0;       // N bytes so far
  std::string obuf;          // T [obase, oend)
  std::size_t obase = 0;
  std::size_t oend = 0;      // T bytes fed so far
  std::size_t release = 0;   // T emitted for [0, release)
  std::size_t history = 8;   // N bytes kept before SAFE for boundary and context checks

  text::base64_tracker b64;
  static constexpr std::size_t none = static_cast<std::size_t>(-1);
  std::size_t run_hold = none;  // start of the open base64 run that may still be decoded
  std::size_t run_dirty = none; // start of an open run that is not a copy of T (never decoded)

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
    bool base64 = false;  // a base64 run [start, closed) instead
  };
  std::vector<closed_candidate> closed;
  std::size_t closed_head = 0;

  std::vector<std::size_t> next_pos;  // per detector: where its search resumes (N)
  // Redacted findings not yet emitted: index into v.findings, and their N range.
  struct pending_finding {
    std::size_t index;
    std::size_t n_start;
    std::size_t n_end;
  };
  std::vector<pending_finding> pending;
  std::size_t last_redacted_end = 0;  // T
  struct batch_entry {
    finding f;  // positions in T
    std::size_t n_start;
    std::size_t n_end;
    std::size_t detector;
    bool base64;
  };
  std::vector<batch_entry> batch;
  bool blocked = false;
  bool finished = false;
  std::size_t steps = 0;  // candidate steps taken by advance() (work, for tests)

  [[nodiscard]] std::string_view text() const noexcept { return buf; }

  void close(std::size_t start, std::uint32_t state, std::size_t at) {
    const stream_automaton& a = rs->automaton;
    const std::uint32_t mask = a.mask_id(state);
    if (mask == 0) return;  // no detector can have matched: nothing to resolve (callers check too)
    insert_closed({start, state, at, false});
  }

  void insert_closed(const closed_candidate& c) {
    // Candidates close out of start order (a longer one may outlive a later one).
    auto pos = closed.end();
    while (pos != closed.begin() + static_cast<std::ptrdiff_t>(closed_head) && (pos - 1)->start > c.start) --pos;
    closed.insert(pos, c);
  }

  // Base64 runs over the N bytes from `from` on (none to find without detectors).
  void track_base64(std::size_t from) {
    if (rs->detectors.empty()) return;
    text::base64_tracker::run r;
    for (std::size_t p = from; p < end; ++p)
      if (b64.feed(static_cast<unsigned char>(buf[p - base]), p, r)) on_run(r);
    const std::size_t h = b64.holding();
    if (h != none && h != run_dirty && !map.is_copy(h, end)) run_dirty = h;  // decoded only if T has it as is
    run_hold = (h != none && h != run_dirty) ? h : none;
  }

  void on_run(const text::base64_tracker::run& r) {
    if (!r.eligible || r.start == run_dirty || !map.is_copy(r.start, r.end)) return;
    insert_closed({r.start, 0, r.end, true});
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
    const std::size_t longest = std::max<std::size_t>(rs->max_match_, 1);
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
        steps += n;
        for (std::size_t r = 0; r < n; ++r) {
          const open_candidate c = open[r];
          if (p - c.start >= longest) {
            // The automaton loops long repetitions (stream_counted_repeats), so a
            // candidate may live on past any match: every match from c.start has
            // ended by now (at most `longest` bytes), and the detectors it may
            // have matched are in c.state's accept set.
            if (masks[c.state] != 0) close(c.start, c.state, p);
            continue;
          }
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

  // A finding of N [s, e) with its positions and text in T.
  batch_entry located(finding f, std::size_t s, std::size_t e, std::size_t d, bool base64) const {
    f.start = map.original_start(s);
    f.end = map.original_end(e);
    f.text.assign(obuf, f.start - obase, f.end - f.start);
    return {std::move(f), s, e, d, base64};
  }

  // Adds the findings of a closed candidate to the batch; false when a decision
  // needs context words that may still come (the batch is then cleared by the caller).
  bool collect(const closed_candidate& c, bool final) {
    const std::string_view t = text();
    const std::size_t s = c.start - base;
    if (c.base64) {
      for (auto& f : rs->base64_findings(t.substr(s, c.closed - c.start), 0))
        batch.push_back(located(std::move(f), c.start, c.closed, detector_index(f.detector), true));
      return true;
    }
    for (const auto d : rs->automaton.accepted(c.state)) {
      if (c.start < next_pos[d]) continue;  // inside this detector's previous finding
      const auto& det = rs->detectors[d];
      const std::size_t stop = std::min(t.size(), s + det.max_len);
      re2::StringPiece m;
      if (!det.re->Match(re2::StringPiece(t.data(), t.size()), s, stop, RE2::ANCHOR_START, &m, 1)) continue;
      bool wait = false;
      const std::size_t e = m.size() == 0 ? 0 : rs->match_at(d, t, s, s + m.size(), !final, &wait);
      if (wait) return false;
      if (e <= s) continue;
      batch.push_back(located(rs->make_finding(d, t, s, e, 0), c.start, c.start + (e - s), d, false));
    }
    return true;
  }

  // Applies a complete batch (the candidates of one start) to the verdict.
  void commit() {
    for (const auto& b : batch)
      if (!b.base64) next_pos[b.detector] = b.n_end;
    std::sort(batch.begin(), batch.end(), [](const batch_entry& a, const batch_entry& b) { return detail::finding_before(a.f, b.f); });
    // A base64 run's finding that a detector also made of the run's own text counts once.
    batch.erase(std::unique(batch.begin(), batch.end(),
                            [](const batch_entry& a, const batch_entry& b) {
                              return a.f.start == b.f.start && a.f.end == b.f.end && a.f.detector == b.f.detector;
                            }),
                batch.end());
    bool new_rule = false;
    for (auto& b : batch) {
      finding& f = b.f;
      rs->apply(*plan, f);
      const action act = f.applied;
      v.act = std::max(v.act, act);
      // The verdict's lists change only when a detector first shows up: keep the
      // cost per finding constant however many findings a long stream has.
      if (!seen_detector[b.detector]) seen_detector[b.detector] = true, new_rule = true;
      v.findings.push_back(std::move(f));
      if (act == action::redact) pending.push_back({v.findings.size() - 1, b.n_start, b.n_end});
      if (act == action::block) blocked = true;
    }
    if (new_rule) rs->summarize(*plan, v);
  }

  std::vector<bool> seen_detector;  // per detector: has a finding in v
  [[nodiscard]] std::size_t detector_index(const std::string& id) const {
    const auto it = std::lower_bound(rs->detectors.begin(), rs->detectors.end(), id,
                                     [](const detail::detector_def& d, const std::string& x) { return d.id < x; });
    return static_cast<std::size_t>(it - rs->detectors.begin());
  }

  // Whether every byte that accept() may read for a match ending at or before
  // c.closed is there, but the context window (resolve_one waits for that
  // itself, only when a context word decides): the character after the match
  // (one byte, or three when it may be a full-width letter or digit, EF ..).
  [[nodiscard]] bool ready(const closed_candidate& c) const noexcept {
    if (end < c.closed + 1) return false;
    if (end >= c.closed + 3) return true;
    const std::size_t from = c.closed >= 2 ? c.closed - 2 : 0;
    for (std::size_t k = std::max(from, base); k <= c.closed && k < end; ++k)
      if (static_cast<unsigned char>(buf[k - base]) == 0xEF && k + 3 > end) return false;
    return true;
  }

  // Resolves closed candidates in start order, those of one start together, as
  // far as no open candidate or base64 run starts at or before them, the bytes
  // they look at are there, and no context word is still to come. final: the
  // text ended.
  void resolve(bool final) {
    if (final) {
      for (const auto& c : open) close(c.start, c.state, end);
      open.clear();
      text::base64_tracker::run r;
      if (b64.finish(end, r)) on_run(r);
      run_hold = none;
    }
    while (closed_head < closed.size() && !blocked) {
      const std::size_t start = closed[closed_head].start;
      std::size_t group_end = closed_head;
      while (group_end < closed.size() && closed[group_end].start == start) ++group_end;
      if (!final) {
        if (!open.empty() && open.front().start <= start) break;
        if (run_hold <= start) break;
        bool all = true;
        for (std::size_t k = closed_head; k < group_end && all; ++k) all = closed[k].base64 || ready(closed[k]);
        if (!all) break;
      }
      batch.clear();
      bool decided = true;
      for (std::size_t k = closed_head; k < group_end && decided; ++k) decided = collect(closed[k], final);
      if (!decided) {
        batch.clear();
        break;
      }
      commit();
      closed_head = group_end;
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
      safe = std::min(safe, run_hold);
    }
    std::size_t cursor = release;
    std::size_t limit = safe;  // N
    std::size_t done = 0;
    for (; done < pending.size(); ++done) {
      const pending_finding& p = pending[done];
      finding& f = v.findings[p.index];
      if (p.n_end > safe) {
        limit = std::min(limit, p.n_start);
        break;
      }
      const bool overlapped = last_redacted_end > f.start ||
                              (done + 1 < pending.size() && v.findings[pending[done + 1].index].start < f.end);
      if (overlapped) f.replacement = rs->replacement(detail::redaction::label, f);
      if (f.end > cursor) {
        if (f.start > cursor) out.append(obuf, cursor - obase, f.start - cursor);
        out += f.replacement;
        cursor = f.end;
      }
      last_redacted_end = std::max(last_redacted_end, f.end);
    }
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(done));
    // T up to the character that N's limit stands for; when all of N is safe, all
    // of T the normalizer has turned into N (never a character, escape or
    // reference it still holds).
    const std::size_t olimit = final ? oend : limit < end ? map.original_start(limit) : norm.consumed();
    if (olimit > cursor) {
      out.append(obuf, cursor - obase, olimit - cursor);
      cursor = olimit;
    }
    release = cursor;
    // Drop what no check can look at any more.
    if (release > obase + 4096) {
      obuf.erase(0, release - obase);
      obase = release;
    }
    const std::size_t keep_from = limit > history ? limit - history : 0;
    if (keep_from > base + 4096) {
      buf.erase(0, keep_from - base);
      base = keep_from;
      map.forget_before(keep_from);
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
  m.plan = m.rs->shared_plan(ctx);
  m.rs->summarize(*m.plan, m.v);
  m.next_pos.assign(m.rs->detectors.size(), 0);
  m.seen_detector.assign(m.rs->detectors.size(), false);
  // The boundary rules look up to 7 bytes back, text::after_mask up to 15.
  m.history = std::max<std::size_t>(16, m.rs->max_context_);
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
  m.obuf.append(piece);
  m.oend += piece.size();
  if (m.rs == nullptr && m.keep) return out;  // another implementation: decided at finish()
  if (m.rs == nullptr) {
    // No rules: release everything but an incomplete trailing character.
    const std::size_t n = text::complete_prefix(m.obuf);
    out.released = m.obuf.substr(0, n);
    m.obuf.erase(0, n);
    m.obase += n;
    m.release = m.obase;
    return out;
  }
  const std::size_t from = m.end;
  m.norm.feed(piece, m.buf, m.map);
  m.end = m.map.n_end;
  m.advance(from);
  m.track_base64(from);
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
    m.v = m.keep->decide(m.ctx, m.keep->scan(m.obuf, 0));
    out.blocked = m.blocked = m.v.act == action::block;
    if (!out.blocked) out.released = m.keep->redact(m.obuf, m.v.findings, 0);
    m.obase = m.release = m.oend;
    m.obuf.clear();
    return out;
  }
  if (m.rs == nullptr) {
    out.released = std::move(m.obuf);
    m.obuf.clear();
    m.obase = m.release = m.oend;
    return out;
  }
  const std::size_t from = m.end;
  m.norm.finish(m.buf, m.map);
  m.end = m.map.n_end;
  m.advance(from);
  m.track_base64(from);
  m.resolve(true);
  if (m.blocked) {
    out.blocked = true;
    return out;
  }
  out.released = m.emit(true);
  return out;
}

std::size_t stream_scanner::held() const noexcept { return impl_ ? impl_->oend - impl_->release : 0; }
std::size_t stream_scanner::candidate_steps() const noexcept { return impl_ ? impl_->steps : 0; }

const verdict& stream_scanner::current() const noexcept {
  static const verdict none;
  return impl_ ? impl_->v : none;
}

}  // namespace customs::policy
