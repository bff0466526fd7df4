// Scanner benchmark: whole-text detection, whole-text findings, and streaming,
// each next to a baseline measured in the same run. One thread (one core).
//
// usage: scanner_bench CORPUS_DIR [RULES_PATH...]
//   CORPUS_DIR holds corpus.txt and corpus.idx as written by the shared corpus
//   generator (gen_corpus.py); RULES_PATH defaults to rules/ (all shipped packs).
// It also checks, over the whole corpus, that the streaming scanner releases
// exactly the whole-text redaction and finds exactly the whole-text findings.
// Times are CPU time of the benchmark thread (CLOCK_THREAD_CPUTIME_ID), best of
// three runs, so that other load on a shared machine does not count as ours;
// on an idle core they equal wall time.
#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "policy/model.hpp"
#include "policy/policy.hpp"

namespace {

using namespace customs::policy;
double thread_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

std::vector<std::string> read_corpus(const std::string& dir) {
  std::ifstream txt(dir + "/corpus.txt", std::ios::binary);
  std::ifstream idx(dir + "/corpus.idx");
  if (!txt || !idx) {
    std::cerr << "scanner_bench: cannot read " << dir << "/corpus.txt and corpus.idx\n";
    std::exit(2);
  }
  std::stringstream b;
  b << txt.rdbuf();
  const std::string all = b.str();
  std::vector<std::string> msgs;
  std::size_t pos = 0, len = 0;
  while (idx >> len && pos + len <= all.size()) {
    msgs.push_back(all.substr(pos, len));
    pos += len;
  }
  return msgs;
}

template <class F>
double best_seconds(int runs, F&& f) {
  double best = 1e9;
  for (int i = 0; i < runs; ++i) {
    const double t0 = thread_seconds();
    f();
    best = std::min(best, thread_seconds() - t0);
  }
  return best;
}

std::unique_ptr<RE2::Set> make_set(const detail::compiled_rule_set& rs, std::int64_t max_mem) {
  RE2::Options o;
  o.set_log_errors(false);
  o.set_max_mem(max_mem);
  auto s = std::make_unique<RE2::Set>(o, RE2::UNANCHORED);
  for (const auto& d : rs.detectors) s->Add(d.re2_pattern, nullptr);
  s->Compile();
  return s;
}

volatile std::size_t sink;

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: scanner_bench CORPUS_DIR [RULES_PATH...]\n";
    return 2;
  }
  const auto msgs = read_corpus(argv[1]);
  std::vector<std::filesystem::path> paths;
  for (int i = 2; i < argc; ++i) paths.emplace_back(argv[i]);
  if (paths.empty()) paths.emplace_back("rules");
  const auto loaded = load_rule_set(paths);
  if (!loaded.ok()) {
    for (const auto& d : loaded.diagnostics) std::cerr << d.to_string() << "\n";
    return 1;
  }
  const auto& rs = dynamic_cast<const detail::compiled_rule_set&>(*loaded.rules);
  std::size_t bytes = 0;
  for (const auto& m : msgs) bytes += m.size();
  const double mb = static_cast<double>(bytes) / 1e6;
  std::printf("corpus: %zu messages, %.2f MB; rule set %s (%zu detectors)\n", msgs.size(), mb, rs.id().c_str(),
              rs.detectors.size());
  std::printf("streaming automaton: %zu DFA states, %zu byte classes, %.1f MB; %zu NFA states; max hold-back %zu bytes\n",
              rs.automaton.states(), rs.automaton.classes(), static_cast<double>(rs.automaton.memory_bytes()) / 1e6,
              rs.nfa_states, rs.max_hold_back());

  // 1. Detection: one RE2::Set pass per message, by max_mem.
  std::printf("\n[detection] RE2::Set pass per message (which detectors occur)\n");
  std::vector<int> hits;
  for (const std::int64_t mem : {8ll << 20, 16ll << 20, 32ll << 20, 64ll << 20, 128ll << 20}) {
    auto set = make_set(rs, mem);
    const double s = best_seconds(3, [&] {
      for (const auto& m : msgs) {
        hits.clear();
        set->Match(m, &hits);
        sink = hits.size();
      }
    });
    std::printf("  baseline RE2::Set max_mem %4lld MB   %8.1f MB/s\n", static_cast<long long>(mem >> 20), mb / s);
  }
  const double det = best_seconds(3, [&] {
    for (const auto& m : msgs) {
      (void)rs.detect(m, hits);
      sink = hits.size();
    }
  });
  std::printf("  customs detect (set_max_mem %zu MB)  %8.1f MB/s\n", load_options{}.set_max_mem >> 20, mb / det);

  // 2. Findings: spans and validation.
  std::printf("\n[findings] whole text: set pass, spans, boundaries, validators\n");
  const double pos_base = best_seconds(3, [&] {
    std::size_t n = 0;
    for (const auto& m : msgs) {
      (void)rs.detect(m, hits);
      for (const int d : hits) {
        re2::StringPiece in(m), match;
        while (RE2::FindAndConsume(&in, *rs.detectors[static_cast<std::size_t>(d)].re)) ++n;
        (void)match;
      }
    }
    sink = n;
  });
  std::printf("  baseline set + positions of hits (no validation)  %8.1f MB/s\n", mb / pos_base);
  std::size_t total_findings = 0;
  const double scan_s = best_seconds(3, [&] {
    std::size_t n = 0;
    for (const auto& m : msgs) n += rs.scan(m, 0).size();
    total_findings = n;
  });
  std::printf("  customs scan                                      %8.1f MB/s  (%zu findings)\n", mb / scan_s,
              total_findings);
  flow_context ctx;
  ctx.dir = direction::request;
  ctx.src = "CN";
  ctx.dst = "US";
  const double eval_s = best_seconds(3, [&] {
    std::size_t n = 0;
    for (const auto& m : msgs) n += rs.evaluate(m, ctx).redacted.size();
    sink = n;
  });
  std::printf("  customs evaluate (scan + decide + redact, CN->US) %8.1f MB/s\n", mb / eval_s);

  // 3. Streaming, 20-byte deltas.
  constexpr std::size_t delta = 20;
  std::printf("\n[streaming] %zu-byte deltas, one scanner per message\n", delta);
  std::size_t base_deltas = 0;
  auto set64 = make_set(rs, 64ll << 20);
  const double base_s = best_seconds(3, [&] {
    std::size_t n = 0;
    std::string window;
    for (const auto& m : msgs) {
      window.clear();
      for (std::size_t i = 0; i < m.size(); i += delta) {
        window.append(m, i, delta);
        hits.clear();
        set64->Match(window, &hits);
        if (window.size() > 128) window.erase(0, window.size() - 128);
        ++n;
      }
    }
    base_deltas = n;
  });
  std::printf("  baseline rescan 128-byte window with RE2::Set  %8.2f M deltas/s  %7.1f MB/s\n",
              static_cast<double>(base_deltas) / base_s / 1e6, mb / base_s);

  for (const auto& [name, c] : {std::pair<const char*, flow_context>{"CN->US request", ctx},
                                std::pair<const char*, flow_context>{"US->DE response", [] {
                                                                       flow_context x;
                                                                       x.dir = direction::response;
                                                                       x.src = "US";
                                                                       x.dst = "DE";
                                                                       return x;
                                                                     }()}}) {
    std::size_t fed = 0, fed_bytes = 0, blocked = 0, max_held = 0;
    const double st = best_seconds(3, [&] {
      fed = fed_bytes = blocked = max_held = 0;
      for (const auto& m : msgs) {
        stream_scanner sc(loaded.rules, c);
        bool stop = false;
        for (std::size_t i = 0; i < m.size() && !stop; i += delta) {
          const auto piece = std::string_view(m).substr(i, delta);
          auto o = sc.feed(piece);
          ++fed;
          fed_bytes += piece.size();
          sink = o.released.size();
          max_held = std::max(max_held, sc.held());
          stop = o.blocked;
        }
        if (!stop) stop = sc.finish().blocked;
        blocked += stop ? 1 : 0;
      }
    });
    std::printf("  customs stream_scanner (%s)   %8.2f M deltas/s  %7.1f MB/s  (%zu deltas, %zu of %zu messages blocked, max held %zu bytes)\n",
                name, static_cast<double>(fed) / st / 1e6, static_cast<double>(fed_bytes) / 1e6 / st, fed, blocked,
                msgs.size(), max_held);
  }

  // 4. Agreement over the corpus: streamed output and findings equal whole-text.
  std::size_t mismatched = 0, checked = 0;
  flow_context noblock;  // no rule applies: every message streams to the end
  noblock.dir = direction::response;
  noblock.src = "AQ";
  noblock.dst = "AQ";
  for (const flow_context& c : {ctx, noblock}) {
    for (const auto& m : msgs) {
      const auto whole = rs.evaluate(m, c);
      stream_scanner sc(loaded.rules, c);
      std::string out;
      bool blocked = false;
      for (std::size_t i = 0; i < m.size() && !blocked; i += delta) {
        auto o = sc.feed(std::string_view(m).substr(i, delta));
        out += o.released;
        blocked = o.blocked;
      }
      if (!blocked) {
        auto o = sc.finish();
        out += o.released;
        blocked = o.blocked;
      }
      ++checked;
      const bool ok = blocked ? (whole.result.act == action::block && whole.redacted.starts_with(out))
                              : (out == whole.redacted && sc.current().findings.size() == whole.result.findings.size());
      if (!ok) ++mismatched;
    }
  }
  std::printf("\n[agreement] %zu of %zu streamed messages differ from the whole-text result\n", mismatched, checked);
  return mismatched == 0 ? 0 : 1;
}
