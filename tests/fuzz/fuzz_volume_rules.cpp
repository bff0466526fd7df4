// libFuzzer target: rule files with volume counters (the loader's `volumes`
// and test `volumes` syntax), loaded as customsd and customsctl load them.
// Input: byte 0 is ignored (the replay selector); the rest is one rule file.
// Properties: never crashes or throws; a set that loads evaluates a request
// flow with counters in memory, and a counter's count never goes below the
// state it started from.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "policy/volume.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0 || size > 64 * 1024) return 0;
  static const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("customs-fuzz-volume-rules-" + std::to_string(::getpid()) + ".yaml");
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
  }
  const std::vector<std::filesystem::path> paths{file};
  const auto r = customs::policy::load_rule_set(paths);
  if (!r.ok()) return 0;
  customs::policy::flow_context ctx;
  ctx.src = "CN";
  ctx.dst = "US";
  ctx.tenant = "t";
  const std::string text = "id 11010519491231002X phone 13812345678 card 4111 1111 1111 1111 MID-000001";
  auto v = r.rules->decide(ctx, r.rules->scan(text, 0));
  std::map<std::string, std::uint64_t> preset;
  for (const auto& id : customs::policy::volume_counter_ids(*r.rules)) preset[id] = 3;
  customs::policy::evaluate_volumes_in_memory(*r.rules, ctx, v, preset, 1'780'000'000);
  for (const auto& h : v.volumes)
    if (h.count < 3) std::abort();
  return 0;
}
