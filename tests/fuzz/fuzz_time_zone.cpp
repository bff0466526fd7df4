// libFuzzer target: TZif time zone data (policy/time_zone.cpp), read when a rule
// file names a time zone for a calendar window.
// Input: byte 0 is ignored (the replay selector); the rest is a TZif file.
// Properties: never crashes; a parsed zone gives offsets within +-26 hours and
// local midnights within a day and a half of UTC midnight.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policy/time_zone.hpp"

using customs::policy::civil_days;
using customs::policy::time_zone;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string why;
  const auto z = time_zone::parse("fuzz", std::string_view(reinterpret_cast<const char*>(data + 1), size - 1), why);
  if (!z) return 0;
  for (int year : {1900, 1970, 2026, 2037, 2100}) {
    const std::int64_t t = civil_days(year, 1, 1) * 86400;
    const auto off = z->offset_at(t);
    if (off < -26 * 3600 || off > 26 * 3600) std::abort();
    const auto m = z->local_midnight(year, 1, 1);
    if (m < t - 36 * 3600 || m > t + 36 * 3600) std::abort();
    (void)z->date_at(t);
  }
  return 0;
}
