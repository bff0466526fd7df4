#pragma once
// The secret key of the keyed subject hashes (subject.key, made by `customsctl
// keys gen --only subject`): counters, logs and the audit trail hold
// BLAKE2b(key, identifier) only, which cannot be reversed by enumerating
// identifiers without the key. Every host sharing counters (Redis) must use the
// same key file. Loading refuses a file that group or others may read.

#include <filesystem>
#include <string_view>

#include "crypto/crypto.hpp"
#include "daemon/volume/counter_store.hpp"

namespace customs::daemon::volume {

class subject_hasher {
 public:
  // Throws crypto::key_file_error (control plane).
  explicit subject_hasher(const std::filesystem::path& key_file);
  explicit subject_hasher(const crypto::mac_key& key);
  [[nodiscard]] subject_hash hash(std::string_view normalised) const;

 private:
  crypto::mac_key key_;
};

[[nodiscard]] std::string to_hex(const subject_hash& h);

}  // namespace customs::daemon::volume
