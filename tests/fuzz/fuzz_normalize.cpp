// libFuzzer target, differential: the text normalizer of the detectors
// (policy/normalize.hpp: invisible characters removed, digits of every script
// folded, HTML character references and \u escapes decoded) fed a text in
// random pieces against the whole-text normalization, and the base64 run
// finder and decoder on the normalized text.
//
// Input: byte 0 seeds the piece sizes (its two low bits pick the largest piece:
// 1, 8, 64 or 4096 bytes); the rest is
// the text (arbitrary bytes: prompt text may hold invalid UTF-8 after a
// dialect's own decoding, and the normalizer must keep such bytes).
//
// Properties:
//   - fed in pieces, the normalizer gives the same normalized text and the
//     same original positions as normalize() on the whole text;
//   - the map covers the text: n_end is the normalized length, o_end the
//     original length; pieces are in order, copies are byte-equal to their
//     source, and original_start / original_end are monotonic and in bounds;
//   - a text that may_change() calls unchanging normalizes to itself;
//   - base64 runs are within the normalized text, in order and do not
//     overlap, and decoding one never reads past it;
//   - the whole-text run finder (for_each_base64_run) finds exactly the
//     tracker's eligible runs;
//   - base64_text, which stops at the first byte that cannot be text, gives
//     what decoding the whole run and then checking it gives.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/normalize.hpp"
#include "policy/text.hpp"

namespace {

namespace text = customs::policy::text;

// Reports a broken property and aborts (libFuzzer then saves the input).
void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

// Splits s into non-empty pieces whose sizes a deterministic generator seeded
// by `seed` chooses.
std::vector<std::string_view> pieces(std::string_view s, std::uint8_t seed) {
  static constexpr std::size_t largest[] = {1, 8, 64, 4096};
  const std::size_t max = largest[seed & 3];
  std::uint64_t state = seed;
  std::vector<std::string_view> out;
  while (!s.empty()) {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    out.push_back(s.substr(0, 1 + static_cast<std::size_t>(z % max)));
    s.remove_prefix(out.back().size());
  }
  return out;
}

void check_map(std::string_view t, const std::string& n, const text::source_map& m) {
  check(m.n_end == n.size(), "map: n_end is the normalized length");
  check(m.o_end == t.size(), "map: o_end is the original length");
  std::size_t prev_n = 0, prev_o = 0;
  for (std::size_t i = 0; i < m.pieces.size(); ++i) {
    const auto& p = m.pieces[i];
    check(p.n >= prev_n && p.o >= prev_o, "map: pieces in order");
    check(p.n <= n.size() && p.o <= t.size(), "map: pieces in bounds");
    const std::size_t n_next = i + 1 < m.pieces.size() ? m.pieces[i + 1].n : m.n_end;
    if (p.copy) {
      const std::size_t len = n_next - p.n;
      check(p.o + len <= t.size(), "map: a copy's source is in the text");
      check(n.compare(p.n, len, t.substr(p.o, len)) == 0, "map: a copy equals its source");
    }
    prev_n = p.n;
    prev_o = p.o;
  }
  std::size_t last_start = 0, last_end = 0;
  for (std::size_t k = 0; k < n.size(); ++k) {
    const std::size_t s = m.original_start(k);
    const std::size_t e = m.original_end(k + 1);
    check(s < e && e <= t.size(), "map: each normalized byte comes from original bytes");
    check(s >= last_start && e >= last_end, "map: positions are monotonic");
    last_start = s;
    last_end = e;
  }
}

}  // namespace

namespace {
// base64_text as it was before it stopped early: decode everything, then
// check the whole result for UTF-8 text without control characters.
std::string reference_base64_text(std::string_view run) {
  while (!run.empty() && run.back() == '=') run.remove_suffix(1);
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char ch : run) {
    const auto c = static_cast<unsigned char>(ch);
    std::uint32_t v = 0;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else return {};
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  for (std::size_t i = 0; i < out.size();) {
    std::size_t len = 1;
    const std::uint32_t cp = text::decode(out, i, len);
    if (cp == 0xFFFD && len == 1) return {};
    if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) return {};
    i += len;
  }
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t seed = data[0];
  const std::string_view t(reinterpret_cast<const char*>(data) + 1, size - 1);

  const text::normalized whole = text::normalize(t);
  if (!text::may_change(t)) check(whole.identity, "plain text is the identity");
  const std::string& wn = whole.identity ? std::string(t) : whole.text;

  text::normalizer z;
  std::string out;
  text::source_map map;
  for (const auto piece : pieces(t, seed)) {
    z.feed(piece, out, map);
    check(z.consumed() + z.pending() <= t.size(), "normalizer: consumed and pending within what was fed");
    check(z.pending() <= text::max_kept_back, "normalizer: keeps back more than max_kept_back");
  }
  z.finish(out, map);
  check(z.pending() == 0, "normalizer: nothing pending after finish");
  check(out == wn, "pieces give the whole-text normalized text");
  check_map(t, out, map);
  if (!whole.identity) {
    for (std::size_t k = 0; k < out.size(); ++k) {
      check(map.original_start(k) == whole.map.original_start(k), "pieces give the whole-text start positions");
      check(map.original_end(k + 1) == whole.map.original_end(k + 1), "pieces give the whole-text end positions");
    }
  }

  text::base64_tracker tracker;
  text::base64_tracker::run r;
  std::size_t last_end = 0;
  std::vector<std::pair<std::size_t, std::size_t>> eligible;
  const auto closed = [&] {
    check(r.start >= last_end && r.start < r.end && r.end <= out.size(), "base64: runs in order and in bounds");
    last_end = r.end;
    if (!r.eligible) return;
    eligible.emplace_back(r.start, r.end);
    const std::string_view run = std::string_view(out).substr(r.start, r.end - r.start);
    check(text::base64_text(run) == reference_base64_text(run), "base64: the decoder gives up only on what is not text");
  };
  for (std::size_t k = 0; k < out.size(); ++k)
    if (tracker.feed(static_cast<unsigned char>(out[k]), k, r)) closed();
  if (tracker.finish(out.size(), r)) closed();
  std::vector<std::pair<std::size_t, std::size_t>> whole_runs;
  text::for_each_base64_run(out, [&](const text::base64_tracker::run& w) { whole_runs.emplace_back(w.start, w.end); });
  check(whole_runs == eligible, "base64: the whole-text run finder finds the tracker's eligible runs");
  return 0;
}
