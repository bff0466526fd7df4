#include "daemon/volume/journal.hpp"

#include <algorithm>

namespace customs::daemon::volume {
namespace {

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_i64(std::string& out, std::int64_t v) {
  const auto u = static_cast<std::uint64_t>(v);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}

// Reads little-endian integers and byte runs off the front of a blob.
struct cursor {
  std::string_view rest;
  bool take(std::size_t n, std::string_view& out) {
    if (rest.size() < n) return false;
    out = rest.substr(0, n);
    rest.remove_prefix(n);
    return true;
  }
  bool u32(std::uint32_t& v) {
    std::string_view b;
    if (!take(4, b)) return false;
    v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[static_cast<std::size_t>(i)]);
    return true;
  }
  bool i64(std::int64_t& v) {
    std::string_view b;
    if (!take(8, b)) return false;
    std::uint64_t u = 0;
    for (int i = 7; i >= 0; --i) u = (u << 8) | static_cast<unsigned char>(b[static_cast<std::size_t>(i)]);
    v = static_cast<std::int64_t>(u);
    return true;
  }
};

}  // namespace

std::string encode_journal(const std::vector<counter_op>& ops) {
  std::string out;
  for (const auto& op : ops) {
    put_u32(out, static_cast<std::uint32_t>(op.key.size()));
    out += op.key;
    put_i64(out, op.now);
    put_i64(out, op.expire_before);
    put_i64(out, op.expires_at);
    put_u32(out, static_cast<std::uint32_t>(op.members.size()));
    for (const auto& m : op.members) out.append(reinterpret_cast<const char*>(m.data()), m.size());
  }
  return out;
}

std::optional<std::vector<counter_op>> decode_journal(std::string_view blob) {
  std::vector<counter_op> ops;
  cursor c{blob};
  std::size_t members = 0;
  while (!c.rest.empty()) {
    counter_op op;
    std::uint32_t n = 0;
    std::string_view key;
    if (!c.u32(n) || n == 0 || !c.take(n, key)) return std::nullopt;
    op.key = std::string(key);
    if (!c.i64(op.now) || !c.i64(op.expire_before) || !c.i64(op.expires_at) || !c.u32(n)) return std::nullopt;
    if (n > max_journal_members - members || c.rest.size() / 16 < n) return std::nullopt;
    members += n;
    op.members.resize(n);
    for (auto& m : op.members) {
      std::string_view b;
      (void)c.take(m.size(), b);
      std::copy(b.begin(), b.end(), m.begin());
    }
    ops.push_back(std::move(op));
  }
  if (ops.empty()) return std::nullopt;
  return ops;
}

}  // namespace customs::daemon::volume
