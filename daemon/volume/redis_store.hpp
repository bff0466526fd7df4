#pragma once
// The fleet counter store: Redis, shared by every customsd of a fleet. One
// connection per customsd on the store's own I/O thread (Boost.Asio; TLS with
// rediss://), commands written and replies read with hiredis's protocol writer
// and reader (Debian libhiredis-dev), requests pipelined.
//
// Atomicity: one add is one EVALSHA of a Lua script (loaded with SCRIPT LOAD;
// re-sent with EVAL after a NOSCRIPT reply) over every key of the flow. Redis
// runs a script alone, so two hosts crossing a threshold at once are
// serialised: the second sees the first one's subjects.
//
// Data: each counter key is a sorted set whose members are the 16-byte subject
// hashes and whose scores are their last-seen time (rolling windows prune by
// score). Exact at any size; memory is about 90-100 bytes per member in Redis 7
// (a skiplist entry plus a dict entry), so 10 million subjects in one key take
// about 1 GB of Redis memory. Keys carry an expiry at the end of their window.
//
// Budget: a call waits at most `budget`; a late or failed answer is a
// store_errc::timeout / unavailable error (the caller follows on_unavailable).
// A broken connection is re-opened in the background, at most every 250 ms.

#include "daemon/config.hpp"
#include "daemon/volume/counter_store.hpp"

namespace customs::daemon::volume {

// Control plane: throws std::runtime_error on a malformed URL or unreadable
// TLS / password files. Does not wait for Redis to be reachable.
[[nodiscard]] std::unique_ptr<counter_store> open_redis_store(const volumes_config& cfg);

}  // namespace customs::daemon::volume
