#pragma once
// The embedded counter store: one SQLite database per host (WAL,
// synchronous=NORMAL: a crash of customsd loses nothing; a power loss may lose
// the last transactions, which then count again when their subjects travel
// again).
//
// Counts are answered from memory: every key's members (subject hash -> last
// sighting) are held in a hash table, read from the file at open. An add is
// decided under a mutex (atomic: all of its ops or none), and its new
// sightings are appended to the file by a writer thread, one transaction for
// everything answered since the previous one (group commit). The answer is
// given only after that transaction committed, so no flow goes on with a
// count a crash would lose: add() waits for it, add_async() answers on the
// writer thread (the store is asynchronous()). A failed transaction fails
// every answer not yet written and reads memory back from the file; while it
// cannot be read, every add fails.
// Memory: about 60-70 bytes per subject (hash table node and bucket), plus 24
// per sighting kept in a rolling window's order (rolling keys only; at most
// about twice the key's subjects: superseded sightings are dropped from it
// past that).
//
// Schema (user_version 2, application_id "CSTV"):
//   keys(id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL,
//        expires_at INTEGER NOT NULL,         -- unix seconds; the key may be dropped after
//        rolling INTEGER NOT NULL DEFAULT 0)  -- 1: a rolling window (sightings kept in order)
//   seen(key INTEGER NOT NULL,                -- keys.id
//        member BLOB NOT NULL,                -- subject_hash (16 bytes)
//        at INTEGER NOT NULL)                 -- unix seconds: a sighting
//   journal(id INTEGER PRIMARY KEY, ops BLOB NOT NULL)        -- fallback stores only
//   journal_refusals(id INTEGER PRIMARY KEY,                  -- a journal entry's id
//                    refusals INTEGER NOT NULL)               -- times the primary refused it
//                                                             -- (emptied at every open)
// `seen` is an append-only log: a row for each new member of a key, and for
// each later sighting in a rolling window. A key's members are the distinct
// members of its rows; a member's last sighting is its latest row. Rows of a
// key that is gone, and rows superseded by a later sighting or pruned by a
// rolling window, are dead; when dead rows outnumber live members (and pass
// 65,536), the log is rewritten with one row per member (at open, or by the
// writer at most hourly). Keys past expires_at (plus a day) are dropped at
// open and at most hourly. Version 1 files (members in a B-tree written in
// place, about 7 pages a flow) are migrated at open.
//
// As the local fallback of a Redis store (journal = true), every add that
// counted also writes its ops to the journal table in the same transaction,
// so that the flows counted during an outage reach the shared store once it is
// back (counter_store::journal / forget; the entries' encoding: journal.hpp).
// The journal holds at most max_journal_entries entries (pending ones
// included): at the bound an add counts nothing and answers
// store_errc::journal_full (the flow is refused: a count the fleet would
// never see is not made, and no entry is dropped).

#include "daemon/volume/counter_store.hpp"

#include <filesystem>

namespace customs::daemon::volume {

// Control plane: throws std::runtime_error when the file cannot be opened or is
// not a counter database.
// max_journal_entries: the journal's bound (journal = true only).
[[nodiscard]] std::unique_ptr<counter_store> open_sqlite_store(const std::filesystem::path& file,
                                                               bool journal = false,
                                                               std::uint64_t max_journal_entries = 1'000'000);


}  // namespace customs::daemon::volume
