#pragma once
// The Redis side of the fleet counter store, without sockets: the Lua script,
// building its EVAL command (hiredis's writer) and reading replies (hiredis's
// reader) with bounds. Everything here takes outside input (Redis replies) and
// never throws; tests/fuzz/fuzz_redis_reply.cpp drives reply_reader.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/volume/counter_store.hpp"

struct redisReader;

namespace customs::daemon::volume::redis {

// KEYS: the counter keys (prefixed). ARGV[1]: now; then per key: limit,
// expire_before, expires_at, n, then n members. Returns {added (1 or 0),
// before_1, after_1, before_2, after_2, ...}. Adds nothing unless every
// key's after <= limit.
extern const std::string_view add_script;

// Prefix of every key customsd writes.
inline constexpr std::string_view key_prefix = "customs:vol:";

// The EVAL command for `ops`, in RESP (ready to write).
[[nodiscard]] std::string eval_command(const std::vector<counter_op>& ops);
// Any command from its arguments, in RESP.
[[nodiscard]] std::string command(const std::vector<std::string>& args);

// What one reply was.
struct reply {
  enum class kind : std::uint8_t { status, error, integer, string, nil, array } k = kind::nil;
  std::string text;                // status, error, string
  long long integer = 0;
  std::vector<long long> integers;  // array (of integers only; other elements make it `error`)
};

// Reads replies from the bytes of a connection, in order. Bounded: a reply
// still incomplete after max_buffered bytes, nested arrays, arrays of anything
// but integers or of more than max_elements are errors (the connection is then
// closed by the caller).
class reply_reader {
 public:
  reply_reader();
  ~reply_reader();
  reply_reader(const reply_reader&) = delete;
  reply_reader& operator=(const reply_reader&) = delete;

  // false: protocol error or over the bounds (see error()).
  [[nodiscard]] bool feed(std::string_view bytes);
  // The next complete reply; false when none is complete yet or on error.
  [[nodiscard]] bool next(reply& out);
  [[nodiscard]] const std::string& error() const noexcept { return error_; }

  static constexpr std::size_t max_buffered = 64 * 1024;
  static constexpr std::size_t max_elements = 2 * 4096 + 1;

 private:
  redisReader* r_ = nullptr;
  std::string error_;
};

// The counts of an add reply for `n_ops` keys; an error when the reply is not
// {0|1, 2 x n_ops non-negative integers with before <= after}.
[[nodiscard]] counter_result decode_add_reply(const reply& r, std::size_t n_ops);

}  // namespace customs::daemon::volume::redis
