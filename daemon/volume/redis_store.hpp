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
// Waiting: add_async returns at once and its completion runs on the store's
// I/O thread when the reply comes, so a worker never waits for Redis: the
// enforcement filter leaves the flow pending and serves other flows meanwhile
// (add(), which blocks, is for tools, tests and benches).
//
// Budget: a call not answered within `budget` of add_async is answered
// store_errc::timeout (one timer at the earliest deadline); a broken connection
// answers every waiting call store_errc::unavailable and is re-opened in the
// background, at most every 250 ms. At most 65,536 calls wait at once; past
// that a call is answered unavailable at once. The caller follows
// on_unavailable in every case.
//
// Late answers: a script that Redis runs after its call timed out (or whose
// reply was lost with the connection) still adds its members, although the
// flow was refused or counted in the local store. Counts then err high, never
// low: a flow is not let through because of it. Re-running an add is harmless
// for the count itself (a member already present is not counted again), so
// operation ids would not make a late add undone; only the local store's
// counts made meanwhile are not in Redis (see on_unavailable in
// docs/operator-guide.md).

#include "daemon/config.hpp"
#include "daemon/volume/counter_store.hpp"

namespace customs::daemon::volume {

// Control plane: throws std::runtime_error on a malformed URL or unreadable
// TLS / password files. Does not wait for Redis to be reachable.
// Shared: its last owner may let go of it on the store's own I/O thread (see
// the deleter in redis_store.cpp).
[[nodiscard]] std::shared_ptr<counter_store> open_redis_store(const volumes_config& cfg);

}  // namespace customs::daemon::volume
