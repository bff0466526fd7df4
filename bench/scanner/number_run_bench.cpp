// A run of numbers through scan_parts (the path of texts of 64 KiB or more:
// a stream_scanner fed in 64 KiB slices), as in the security report of
// 2026-12-04: ' '.join(['1380013800'] * N), no findings.
//
// usage: number_run_bench RULES_PATH N...
// Prints, per N, the bytes, findings, wall time and the scanner's candidate
// steps per byte (from a stream_scanner fed the same slices).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "policy/parts.hpp"
#include "policy/policy.hpp"

using namespace customs::policy;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: number_run_bench RULES_PATH N...\n");
    return 2;
  }
  const std::vector<std::filesystem::path> paths{argv[1]};
  const auto r = load_rule_set(paths);
  if (!r.ok()) {
    for (const auto& d : r.diagnostics) std::fprintf(stderr, "%s\n", d.to_string().c_str());
    return 1;
  }
  for (int a = 2; a < argc; ++a) {
    const int n = std::atoi(argv[a]);
    std::string text;
    for (int i = 0; i < n; ++i) {
      if (i) text += ' ';
      text += "1380013800";
    }
    const flow_context ctx;
    const std::string_view tv = text;
    const parts_options opts;
    const auto t0 = std::chrono::steady_clock::now();
    const auto s = scan_parts(r.rules, ctx, std::span<const std::string_view>(&tv, 1), opts);
    const auto t1 = std::chrono::steady_clock::now();
    stream_scanner sc(r.rules, ctx);
    for (std::size_t at = 0; at < text.size(); at += opts.slice) (void)sc.feed(tv.substr(at, opts.slice));
    (void)sc.finish();
    std::printf("N=%d bytes=%zu findings=%zu scan_parts=%.3f s candidate_steps/byte=%.1f\n", n, text.size(),
                s.findings.size(), std::chrono::duration<double>(t1 - t0).count(),
                static_cast<double>(sc.candidate_steps()) / static_cast<double>(text.size()));
  }
  return 0;
}
