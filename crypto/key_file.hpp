#pragma once
// Key files of Customs (control plane: every function here may throw
// key_file_error with a message that names the file and says what to do).
//
// Format: small UTF-8 text files, so an operator can tell them apart at a glance.
//   line 1   "# customs <what it is> v1: <what to do with it>"   (the header line)
//   then     "key: <lower-case hex>"
//            "epoch: <decimal>"      (sealing.key and sealing.seed only)
// Only the part of line 1 up to " v1" is checked; lines in any order after it.
//
// Files made by `customsctl keys gen --out DIR`:
//   auditor.pub   X25519 public key; configured in customsd (several may be)  0644
//   auditor.key   X25519 secret key; stays with the auditors                  0600
//   sealing.key   forward-secure MAC key at its current epoch; customsd's copy,
//                 evolved in place at each epoch end                          0600
//   sealing.seed  the same key at epoch 0; the auditors' copy, to verify with 0600
//   signing.key   Ed25519 seed of the checkpoint signer; customsd's copy      0600
//   signing.pub   Ed25519 public key, for `audit verify --signer`             0644
//   subject.key   key of the keyed hashes of data subjects in volume counters
//                 (`keys gen --only subject`; one per fleet sharing counters)  0600
// Secret files are created 0600 and never overwritten (keys gen); loading a
// secret file that group or others may read is refused.

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/crypto.hpp"

namespace customs::crypto {

class key_file_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class key_kind {
  auditor_public,
  auditor_secret,
  sealing_key,
  sealing_seed,
  signing_secret,
  signing_public,
  subject_key,
};

[[nodiscard]] std::string_view default_file_name(key_kind k) noexcept;  // "auditor.pub", ...
[[nodiscard]] bool is_secret(key_kind k) noexcept;
// The header line's fixed part, e.g. "# customs auditor secret key (X25519) v1".
[[nodiscard]] std::string_view header_prefix(key_kind k) noexcept;

// Creates a new key file (O_EXCL: an existing file is never overwritten), 0600 for
// secrets and 0644 for public keys, written and fsynced.
void write_key_file(const std::filesystem::path& file, key_kind k, byte_view key,
                    std::uint64_t epoch = 0);

// The forward-secure MAC key at a given epoch.
struct sealing_state {
  std::uint64_t epoch = 0;
  mac_key key;
};

[[nodiscard]] box_public_key load_auditor_public(const std::filesystem::path& file);
[[nodiscard]] box_secret_key load_auditor_secret(const std::filesystem::path& file);
[[nodiscard]] sealing_state load_sealing_key(const std::filesystem::path& file);
[[nodiscard]] sealing_state load_sealing_seed(const std::filesystem::path& file);
[[nodiscard]] sign_seed load_signing_key(const std::filesystem::path& file);
[[nodiscard]] sign_public_key load_signing_public(const std::filesystem::path& file);
[[nodiscard]] mac_key load_subject_key(const std::filesystem::path& file);

// Replaces sealing.key with the given state, crash-safe: writes FILE.tmp (0600),
// fsyncs it, renames it over FILE and fsyncs the folder. After a crash FILE holds
// either the old or the new state, never a mix. The buffers that held the key
// text are wiped. (The file system may keep the old blocks until reused: the
// same caveat as any in-place key erasure on journaling or flash storage.)
void replace_sealing_key(const std::filesystem::path& file, const sealing_state& st);

// Which files keys gen creates.
// `all` is the audit trail's set; `subject` (the volume counters' hash key) is
// made on its own, once per fleet.
enum class key_set { all, auditor, sealing, signing, subject };

// Creates the files of `which` in dir (created if missing). Refuses, creating
// nothing, if any of them exists. Returns the paths written.
std::vector<std::filesystem::path> generate_key_set(const std::filesystem::path& dir,
                                                    key_set which = key_set::all);

}  // namespace customs::crypto
