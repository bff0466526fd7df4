#pragma once
// The SQLite schema of the audit store (internal to audit/). Each column says
// what covers it: "chain" (hashed into hash_n through the header H or
// payload_hash; see format.hpp), "MAC" (covered by mac_n through hash_n),
// "signed" (covered by a checkpoint signature) or "not covered".

namespace customs::audit::schema {

// The text of create_sql is part of the format (version 1): SQLite keeps it in
// sqlite_schema and the verifier compares that with this text byte for byte.
// Changing it, even a comment inside it, needs a new format::schema_version.

inline constexpr const char* create_sql = R"sql(
CREATE TABLE IF NOT EXISTS records (
  seq           INTEGER PRIMARY KEY,  -- chain (H): 1, 2, 3, ... without gaps
  kind          INTEGER NOT NULL,     -- chain (H): 1 opened, 2 closed, 3 erasure, 16 epoch_start
  epoch         INTEGER NOT NULL,     -- chain (H)
  time_us       INTEGER NOT NULL,     -- chain (H): microseconds since the Unix epoch, UTC
  flow_id       TEXT NOT NULL,        -- chain (H)
  route         TEXT NOT NULL,        -- chain (H), plaintext index field
  src           TEXT NOT NULL,        -- chain (H), plaintext index field
  dst           TEXT NOT NULL,        -- chain (H), plaintext index field
  tenant        TEXT NOT NULL,        -- chain (H), plaintext index field
  action        TEXT NOT NULL,        -- chain (H), plaintext index field
  rules         TEXT NOT NULL,        -- chain (H), plaintext index field: ids joined by ','
  rule_set_hash TEXT NOT NULL,        -- chain (H), plaintext index field
  tokens_in     INTEGER NOT NULL,     -- chain (H), plaintext index field
  tokens_out    INTEGER NOT NULL,     -- chain (H), plaintext index field
  payload_hash  BLOB NOT NULL,        -- chain: BLAKE2b of payload as written
  payload       BLOB,                 -- covered through payload_hash; NULL once erased
  hash          BLOB NOT NULL,        -- the chain hash hash_n itself; MAC covers it
  mac           BLOB NOT NULL         -- not covered (it is the cover): keyed BLAKE2b
);
CREATE INDEX IF NOT EXISTS records_flow ON records(flow_id);
CREATE TABLE IF NOT EXISTS checkpoints (
  id            INTEGER PRIMARY KEY,  -- not covered: storage order
  seq           INTEGER NOT NULL,     -- signed
  epoch         INTEGER NOT NULL,     -- signed
  time_us       INTEGER NOT NULL,     -- signed
  head          BLOB NOT NULL,        -- signed: hash_seq
  signature     BLOB NOT NULL,        -- the Ed25519 signature
  reason        TEXT NOT NULL         -- not covered: epoch end, close, open
);
)sql";

// Columns in this order wherever records are read in full.
#define CUSTOMS_AUDIT_RECORD_COLUMNS                                                    \
  "seq, kind, epoch, time_us, flow_id, route, src, dst, tenant, action, rules, "       \
  "rule_set_hash, tokens_in, tokens_out, payload_hash, payload, hash, mac"
inline constexpr const char* record_columns = CUSTOMS_AUDIT_RECORD_COLUMNS;
// The same and the payload's byte length (length() of a blob reads no content):
// what the verifier and reader select, so that an over-large payload in a
// hostile file is never loaded.
inline constexpr const char* record_columns_sized = CUSTOMS_AUDIT_RECORD_COLUMNS ", length(payload)";
#undef CUSTOMS_AUDIT_RECORD_COLUMNS

enum column : int {
  c_seq, c_kind, c_epoch, c_time_us, c_flow_id, c_route, c_src, c_dst, c_tenant, c_action,
  c_rules, c_rule_set_hash, c_tokens_in, c_tokens_out, c_payload_hash, c_payload, c_hash, c_mac,
  c_payload_size  // record_columns_sized only
};
inline constexpr int record_column_count = c_mac + 1;

// Columns of the checkpoints table in this order wherever they are read.
inline constexpr const char* checkpoint_columns = "seq, epoch, time_us, head, signature";

}  // namespace customs::audit::schema
