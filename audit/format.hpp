#pragma once
// The audit trail's on-disk format: how a record is encoded, hashed, chained,
// MACed and encrypted, and how checkpoints are signed. The store (store.cpp)
// writes it, the verifier checks it, the reader decrypts it. docs/audit-format.md
// says the same in prose; keep them in step.
//
// All integers are little-endian and fixed-width. BLAKE2b is BLAKE2b-256 (32-byte
// output). Every hash starts with a distinct tag, NUL included, so that a hash of
// one kind can never be taken for another (as RFC 6962 does with 0x00 / 0x01).
//
// RECORD HEADER  H  (the AEAD's associated data and part of the chain hash)
//   offset size  field
//   0      1     format version, 1
//   1      1     kind: 1 flow_opened, 2 flow_closed, 3 erasure, 16 epoch_start
//   2      8     seq, u64: 1, 2, 3, ... in commit order, no gaps
//   10     8     epoch, u64
//   18     8     time, i64: microseconds since 1970-01-01T00:00:00Z
//   26     ...   eight strings, each u32 byte length then UTF-8 bytes:
//                flow_id, route, src, dst, tenant, action,
//                rules (rule ids joined by ','), rule_set_hash
//   ...    8     tokens_in, u64
//   ...    8     tokens_out, u64
//   Index fields that the writer is configured not to store are empty / 0.
//
// PAYLOAD  P  (column records.payload)
//   flow_opened, flow_closed:
//     nonce (24) || XChaCha20-Poly1305-IETF(key = the epoch's data key,
//                                           nonce, plaintext = JSON object, ad = H)
//     The nonce is a 16-byte random prefix chosen per epoch || u64 counter.
//     P is NULL once the flow's payloads were erased (see erasure).
//   epoch_start (in clear: it holds nothing secret):
//     u8 version 1 || signer Ed25519 public key (32) || u16 n ||
//     n x ( auditor X25519 public key (32) || crypto_box_seal(data key) (80) )
//   erasure (in clear, for key-less auditors):
//     u8 version 1 || u32 length || reason (UTF-8) || u32 n || n x u64 erased seq
//     The erasure record's flow_id is the erased flow's id.
//
// HASHES AND MAC  (columns payload_hash, hash, mac; 32 bytes each)
//   payload_hash_n = BLAKE2b("customs/audit/payload/v1\0" || P_n)
//   hash_n = BLAKE2b("customs/audit/record/v1\0" || hash_{n-1} || u32 len(H_n) ||
//                    H_n || payload_hash_n),           hash_0 = 32 zero bytes
//   mac_n  = BLAKE2b(key = k_e, "customs/audit/mac/v1\0" || hash_n), e = epoch_n
//   k_0 is the sealing seed; k_{e+1} = BLAKE2b(key = k_e,
//   "customs/sealing-key-evolve/v1" || u64 e) (crypto::evolve): one way.
//   The chain covers payload_hash, not P, so P can be erased and the chain holds.
//
// CHECKPOINT  (table checkpoints; `customsctl audit checkpoint` prints one)
//   message = "customs/audit/checkpoint/v1\0" || u64 seq || u64 epoch ||
//             i64 time || head (32, = hash_seq)
//   signature = Ed25519(signing key, message)
//
// A TRAIL IS VALID IF AND ONLY IF
//   1. SQLite's integrity_check passes (the records_flow index agrees with
//      the table), application_id / user_version match, the
//      schema is exactly schema::create_sql's (no other table, index, view or
//      trigger), and every value has its column's type and keeps to the size
//      bounds below;
//   2. the records' seqs are exactly 1..N (N = 0, a trail that was created but
//      never written to, is valid: only a held checkpoint tells it from a trail
//      whose every record and checkpoint was deleted);
//   3. record 1 is an epoch_start of epoch 0; each later epoch_start has a greater
//      epoch than the one before it; every other record has the epoch of the last
//      epoch_start before it;
//   4. for every record, a present P hashes to its payload_hash, its hash is
//      hash_n as defined above, and (given the seed) its mac is mac_n;
//   5. a NULL P belongs to a flow record listed by a later erasure record of the
//      same flow, and a flow record an erasure record of its flow lists has a
//      NULL P;
//   6. every checkpoint's seq, epoch and time_us are integers and its head and
//      signature blobs of their sizes (as every record column has its declared
//      type), it names a seq <= N whose hash and epoch it repeats, and its
//      signature verifies under the signer (the key given to the verifier, else
//      the one in the epoch_start of its epoch);
//   7. a checkpoint held by the auditor satisfies 6 as well (its seq <= N is what
//      detects truncation and rollback).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit.hpp"
#include "crypto/crypto.hpp"

namespace customs::audit::format {

inline constexpr std::uint8_t version = 1;
inline constexpr std::uint32_t schema_version = 1;   // PRAGMA user_version
inline constexpr std::int32_t application_id = 0x43535441;  // "CSTA"
inline constexpr std::size_t sealed_key_bytes = crypto::aead_key_bytes + crypto::seal_overhead;
// Size bounds. The writer keeps every record within them (bound_record), the
// verifier and reader hold every stored value to them: a stored value past a
// bound is a malformed record, never read further.
//   max_field_bytes    one index field (flow_id, route, ..., rules joined)
//   max_payload_bytes  the JSON payload of a flow record, before encryption
//   max_stored_payload_bytes  a stored payload of any kind (nonce and tag included)
inline constexpr std::size_t max_field_bytes = 64 * 1024;
inline constexpr std::size_t max_payload_bytes = 16u << 20;
inline constexpr std::size_t max_stored_payload_bytes = max_payload_bytes + 64;
inline constexpr std::size_t max_auditors = 64;

// The payload that stands in for one over max_payload_bytes (documented in
// docs/audit-format.md): a JSON object with the one key "truncated":
//   {"truncated":{"reason":"payload over the audit record size limit",
//                 "bytes":<original size>,"limit":<max_payload_bytes>}}
// The record's index fields (verdict, rules, tokens) are kept as they were.
[[nodiscard]] std::string payload_over_limit(std::size_t original_bytes);

// Holds a record to the bounds: an index field over max_field_bytes is cut at
// a UTF-8 character boundary (rule ids: whole ids are dropped, the list ends
// with "..."), a payload over max_payload_bytes is replaced by
// payload_over_limit. Returns whether anything was changed.
bool bound_record(record& r);

// What the header encodes: the stored columns of a record minus its payload.
struct header_fields {
  record_kind kind = record_kind::flow_opened;
  std::uint64_t seq = 0;
  std::uint64_t epoch = 0;
  std::int64_t time_us = 0;
  std::string flow_id;
  index_fields index;
};

// Writes H into out (out is cleared first).
void encode_header(const header_fields& h, crypto::bytes& out);
void encode_header(record_kind kind, std::uint64_t seq, std::uint64_t epoch, std::int64_t time_us,
                   std::string_view flow_id, const index_fields& index, crypto::bytes& out);

[[nodiscard]] std::string join_rules(const std::vector<std::string>& rules);
[[nodiscard]] std::vector<std::string> split_rules(std::string_view joined);

[[nodiscard]] crypto::hash payload_hash(crypto::byte_view payload);
[[nodiscard]] crypto::hash chain_hash(const crypto::hash& prev, crypto::byte_view header,
                                      const crypto::hash& payload_hash);
[[nodiscard]] crypto::hash record_mac(const crypto::mac_key& k, const crypto::hash& record_hash);

inline constexpr crypto::hash zero_hash{};

struct sealed_data_key {
  crypto::box_public_key auditor{};
  std::array<std::uint8_t, sealed_key_bytes> box{};
};
struct epoch_start_body {
  crypto::sign_public_key signer{};
  std::vector<sealed_data_key> keys;
};
[[nodiscard]] crypto::bytes encode_epoch_start(const epoch_start_body& b);
[[nodiscard]] std::optional<epoch_start_body> decode_epoch_start(crypto::byte_view p);

struct erasure_body {
  std::string reason;
  std::vector<std::uint64_t> seqs;
};
[[nodiscard]] crypto::bytes encode_erasure(const erasure_body& b);
[[nodiscard]] std::optional<erasure_body> decode_erasure(crypto::byte_view p);

struct checkpoint {
  std::uint64_t seq = 0;
  std::uint64_t epoch = 0;
  std::int64_t time_us = 0;
  crypto::hash head{};
  crypto::signature sig{};
  std::optional<crypto::sign_public_key> signer;  // as printed; not trusted by itself
};
[[nodiscard]] crypto::bytes checkpoint_message(const checkpoint& c);

// Text form for auditors to keep (customsctl audit checkpoint):
//   customs audit checkpoint v1
//   seq: N / epoch: N / time: RFC 3339 UTC / time_us: N / head: hex /
//   signer: hex / signature: hex
[[nodiscard]] std::string checkpoint_to_text(const checkpoint& c);
// Throws std::runtime_error naming the line on a malformed file.
[[nodiscard]] checkpoint checkpoint_from_text(std::string_view text);

// "2026-11-28T10:51:39.123456Z"
[[nodiscard]] std::string format_time(std::int64_t time_us);
// Accepts "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.ffffff]]Z" (UTC); nullopt otherwise.
[[nodiscard]] std::optional<std::int64_t> parse_time(std::string_view text);

[[nodiscard]] std::string_view kind_name(record_kind k) noexcept;

}  // namespace customs::audit::format
