#pragma once
// The embedded counter store: one SQLite database per host (WAL,
// synchronous=NORMAL: a crash of customsd loses nothing; a power loss may lose
// the last transactions, which then count again when their subjects travel
// again). Operations run on the calling thread under a mutex; one add is one
// transaction.
//
// Schema (user_version 1, application_id "CSTV"):
//   counters(id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL,
//            count INTEGER NOT NULL,       -- members of the key
//            expires_at INTEGER NOT NULL)  -- unix seconds; the key may be dropped after
//   members(counter INTEGER NOT NULL, member BLOB NOT NULL,  -- subject_hash (16 bytes)
//           last_seen INTEGER NOT NULL,                      -- unix seconds
//           PRIMARY KEY (counter, member)) WITHOUT ROWID
//   members_seen ON members(counter, last_seen)              -- rolling windows
//   journal(id INTEGER PRIMARY KEY, ops BLOB NOT NULL)        -- fallback stores only
//   journal_refusals(id INTEGER PRIMARY KEY,                  -- a journal entry's id
//                    refusals INTEGER NOT NULL)               -- times the primary refused it
//                                                             -- (emptied at every open)
// A counter's count always equals its number of member rows (kept in the same
// transaction). Keys past expires_at are deleted at open and at most hourly.
//
// As the local fallback of a Redis store (journal = true), every add that
// counted also writes its ops to the journal table in the same transaction,
// so that the flows counted during an outage reach the shared store once it is
// back (counter_store::journal / forget; the entries' encoding: journal.hpp).
// The journal holds at most max_journal_entries entries: at the bound an add
// counts nothing and answers store_errc::journal_full (the flow is refused:
// a count the fleet would never see is not made, and no entry is dropped).

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
