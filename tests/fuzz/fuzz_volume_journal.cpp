// libFuzzer target: the local counter fallback's journal entries as read back
// from its database file (daemon/volume/journal.hpp).
// Properties: never crashes; an accepted entry has at least one op, every key
// non-empty, at most max_journal_members members in all, limits at max, and
// encodes back to exactly the bytes read (the encoding is canonical).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "daemon/volume/journal.hpp"

using namespace customs::daemon::volume;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view blob(reinterpret_cast<const char*>(data), size);
  const auto ops = decode_journal(blob);
  if (!ops) return 0;
  if (ops->empty()) std::abort();
  std::size_t members = 0;
  for (const auto& op : *ops) {
    if (op.key.empty() || op.limit != ~std::uint64_t{0}) std::abort();
    members += op.members.size();
  }
  if (members > max_journal_members) std::abort();
  if (encode_journal(*ops) != blob) std::abort();
  return 0;
}
