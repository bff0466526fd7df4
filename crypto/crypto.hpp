#pragma once
// Thin, typed wrappers over libsodium for the audit trail: BLAKE2b hashing and
// keyed MACs, one-way key evolution, XChaCha20-Poly1305 AEAD, sealed boxes to
// X25519 keys and Ed25519 signatures. Nothing here touches files (key_file.hpp
// does). Every function calls sodium_init() once, lazily; all of them are
// thread-safe and none throws on data-plane input except where stated.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <sodium.h>

namespace customs::crypto {

inline constexpr std::size_t hash_bytes = 32;        // BLAKE2b-256
inline constexpr std::size_t mac_key_bytes = 32;     // keyed BLAKE2b key
inline constexpr std::size_t aead_key_bytes = 32;    // XChaCha20-Poly1305
inline constexpr std::size_t aead_nonce_bytes = 24;
inline constexpr std::size_t aead_tag_bytes = 16;
inline constexpr std::size_t box_public_bytes = 32;  // X25519
inline constexpr std::size_t box_secret_bytes = 32;
inline constexpr std::size_t seal_overhead = 48;     // crypto_box_SEALBYTES
inline constexpr std::size_t sign_public_bytes = 32;  // Ed25519
inline constexpr std::size_t sign_seed_bytes = 32;
inline constexpr std::size_t signature_bytes = 64;

using hash = std::array<std::uint8_t, hash_bytes>;
using bytes = std::vector<std::uint8_t>;
using byte_view = std::span<const std::uint8_t>;

// Initialises libsodium; throws std::runtime_error if it cannot. Called by every
// other function here, so callers need not, but it is cheap to call early.
void init();

// A fixed-size secret that is wiped (sodium_memzero) when it is destroyed or
// replaced. Copying is deliberately impossible: secrets move or stay put.
template <std::size_t N>
class secret {
 public:
  secret() noexcept { bytes_.fill(0); }
  ~secret() { wipe(); }
  secret(const secret&) = delete;
  secret& operator=(const secret&) = delete;
  secret(secret&& o) noexcept : bytes_(o.bytes_) { o.wipe(); }
  secret& operator=(secret&& o) noexcept {
    if (this != &o) {
      bytes_ = o.bytes_;
      o.wipe();
    }
    return *this;
  }
  [[nodiscard]] std::uint8_t* data() noexcept { return bytes_.data(); }
  [[nodiscard]] const std::uint8_t* data() const noexcept { return bytes_.data(); }
  [[nodiscard]] static constexpr std::size_t size() noexcept { return N; }
  [[nodiscard]] byte_view view() const noexcept { return {bytes_.data(), N}; }
  void wipe() noexcept;

 private:
  std::array<std::uint8_t, N> bytes_;
};

using mac_key = secret<mac_key_bytes>;
using aead_key = secret<aead_key_bytes>;
using box_secret_key = secret<box_secret_bytes>;
using sign_seed = secret<sign_seed_bytes>;
using box_public_key = std::array<std::uint8_t, box_public_bytes>;
using sign_public_key = std::array<std::uint8_t, sign_public_bytes>;
using signature = std::array<std::uint8_t, signature_bytes>;

void secure_wipe(void* p, std::size_t n) noexcept;  // sodium_memzero
template <std::size_t N>
void secret<N>::wipe() noexcept {
  secure_wipe(bytes_.data(), N);
}

void random_bytes(std::span<std::uint8_t> out);

// Constant-time comparison of equal-length buffers (false if lengths differ).
[[nodiscard]] bool equal(byte_view a, byte_view b) noexcept;

// Incremental BLAKE2b-256. Domain separation is the caller's job: start every
// hash with a distinct tag (see audit/format.hpp).
class hasher {
 public:
  hasher();                                      // unkeyed
  explicit hasher(byte_view key);                // keyed (a MAC), 16..64 bytes
  ~hasher();
  hasher(const hasher&) = delete;
  hasher& operator=(const hasher&) = delete;
  hasher& update(byte_view data);
  hasher& update(std::string_view data);
  [[nodiscard]] hash finish();

 private:
  crypto_generichash_state state_;
};

[[nodiscard]] hash blake2b(byte_view data);

// One-way evolution of a forward-secure MAC key:
//   k_{e+1} = BLAKE2b-256(key = k_e, "customs/sealing-key-evolve/v1" || u64le(e)).
// Knowing k_{e+1} reveals nothing about k_e.
[[nodiscard]] mac_key evolve(const mac_key& k, std::uint64_t epoch);
// k_target from k_from at epoch `from` (target >= from).
[[nodiscard]] mac_key evolve_to(const mac_key& k, std::uint64_t from, std::uint64_t target);

// XChaCha20-Poly1305 (IETF). encrypt appends ciphertext || tag to out.
void aead_encrypt(const aead_key& key, std::span<const std::uint8_t, aead_nonce_bytes> nonce,
                  std::string_view plaintext, byte_view associated, bytes& out);
// Returns nullopt if the ciphertext or associated data was altered or the key is wrong.
[[nodiscard]] std::optional<std::string> aead_decrypt(
    const aead_key& key, std::span<const std::uint8_t, aead_nonce_bytes> nonce,
    byte_view ciphertext, byte_view associated);

// Anonymous sealed box (crypto_box_seal) to an X25519 public key.
[[nodiscard]] bytes seal(byte_view message, const box_public_key& to);
// Returns false if the box was not sealed to this key pair or was altered.
[[nodiscard]] bool seal_open(byte_view box, const box_public_key& pk, const box_secret_key& sk,
                             std::span<std::uint8_t> out);

struct box_key_pair {
  box_public_key pk{};
  box_secret_key sk;
};
[[nodiscard]] box_key_pair box_generate();
[[nodiscard]] box_public_key box_public_from_secret(const box_secret_key& sk);

// Ed25519 from a 32-byte seed (the only secret stored).
[[nodiscard]] sign_public_key sign_public_from_seed(const sign_seed& seed);
[[nodiscard]] signature sign(const sign_seed& seed, byte_view message);
[[nodiscard]] bool sign_verify(const sign_public_key& pk, byte_view message,
                               const signature& sig) noexcept;

// Lower-case hex. from_hex returns nullopt on odd length or a non-hex digit.
[[nodiscard]] std::string to_hex(byte_view data);
[[nodiscard]] std::optional<bytes> from_hex(std::string_view hex);

inline byte_view as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace customs::crypto
