// libFuzzer target: Redis replies as the fleet counter store reads them.
// Input: byte 0 is the number of keys the reply answers for (0-15) and where
// the rest is cut in two feeds; the rest is the bytes a Redis server sent.
// Properties: never crashes; buffering stays within reply_reader::max_buffered;
// a decoded add reply has one count per key with before <= after, and counts
// only when it is not an error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "daemon/volume/redis_protocol.hpp"

using namespace customs::daemon::volume;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t n_ops = data[0] & 15u;
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::size_t cut = bytes.empty() ? 0 : (static_cast<std::size_t>(data[0]) * 7919u) % (bytes.size() + 1);
  redis::reply_reader r;
  for (std::string_view part : {bytes.substr(0, cut), bytes.substr(cut)}) {
    if (!r.feed(part)) return 0;
    redis::reply rep;
    while (r.next(rep)) {
      const auto res = redis::decode_add_reply(rep, n_ops);
      if (res.error) {
        if (!res.counts.empty() || res.added) std::abort();
        continue;
      }
      if (res.counts.size() != n_ops) std::abort();
      for (const auto& c : res.counts)
        if (c.after < c.before || c.added != res.added) std::abort();
    }
  }
  return 0;
}
