#pragma once
// The local counter fallback's journal entries (sqlite_store.hpp): the ops of
// one add, encoded as a blob the store keeps until the ops reach Redis. Each
// op: u32 key length (1 or more), the key, i64 now, i64 expire_before, i64
// expires_at, u32 member count, the members (16 bytes each); integers
// little-endian; the ops back to back, at least one. The blob comes back from
// a file on disk, so decoding checks every length against what is left.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/volume/counter_store.hpp"

namespace customs::daemon::volume {

// Members in one entry, all ops together, at most (an add carries a flow's
// subjects: findings_per_flow bounds them far below this).
inline constexpr std::size_t max_journal_members = 1u << 20;

[[nodiscard]] std::string encode_journal(const std::vector<counter_op>& ops);
// nullopt unless `blob` is exactly a sequence of one or more well-formed ops
// holding at most max_journal_members members. The limits of the ops read
// back are max (a journalled add was counted; it is not judged again).
[[nodiscard]] std::optional<std::vector<counter_op>> decode_journal(std::string_view blob);

}  // namespace customs::daemon::volume
