// libsodium wrappers; see crypto.hpp for the contracts.
#include "crypto/crypto.hpp"

#include <sodium.h>

#include <cstring>
#include <stdexcept>

namespace customs::crypto {

namespace {
constexpr std::string_view evolve_tag = "customs/sealing-key-evolve/v1";

void ensure_init() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium could not be initialised");
}

void put_u64le(std::uint8_t* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
}  // namespace

void init() { ensure_init(); }

void secure_wipe(void* p, std::size_t n) noexcept { sodium_memzero(p, n); }

void random_bytes(std::span<std::uint8_t> out) {
  ensure_init();
  randombytes_buf(out.data(), out.size());
}

bool equal(byte_view a, byte_view b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

hasher::hasher() {
  ensure_init();
  crypto_generichash_init(&state_, nullptr, 0, hash_bytes);
}

hasher::hasher(byte_view key) {
  ensure_init();
  if (key.size() < crypto_generichash_KEYBYTES_MIN || key.size() > crypto_generichash_KEYBYTES_MAX)
    throw std::invalid_argument("BLAKE2b key must be 16..64 bytes");
  crypto_generichash_init(&state_, key.data(), key.size(), hash_bytes);
}

hasher::~hasher() { sodium_memzero(&state_, sizeof state_); }

hasher& hasher::update(byte_view data) {
  crypto_generichash_update(&state_, data.data(), data.size());
  return *this;
}

hasher& hasher::update(std::string_view data) { return update(as_bytes(data)); }

hash hasher::finish() {
  hash out{};
  crypto_generichash_final(&state_, out.data(), out.size());
  return out;
}

hash blake2b(byte_view data) {
  ensure_init();
  hash out{};
  crypto_generichash(out.data(), out.size(), data.data(), data.size(), nullptr, 0);
  return out;
}

mac_key evolve(const mac_key& k, std::uint64_t epoch) {
  ensure_init();
  std::uint8_t msg[evolve_tag.size() + 8];
  std::memcpy(msg, evolve_tag.data(), evolve_tag.size());
  put_u64le(msg + evolve_tag.size(), epoch);
  mac_key next;
  crypto_generichash(next.data(), next.size(), msg, sizeof msg, k.data(), k.size());
  return next;
}

mac_key evolve_to(const mac_key& k, std::uint64_t from, std::uint64_t target) {
  if (target < from) throw std::invalid_argument("a sealing key cannot evolve backwards");
  mac_key cur;
  std::memcpy(cur.data(), k.data(), k.size());
  for (std::uint64_t e = from; e < target; ++e) cur = evolve(cur, e);
  return cur;
}

void aead_encrypt(const aead_key& key, std::span<const std::uint8_t, aead_nonce_bytes> nonce,
                  std::string_view plaintext, byte_view associated, bytes& out) {
  ensure_init();
  const std::size_t at = out.size();
  out.resize(at + plaintext.size() + aead_tag_bytes);
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      out.data() + at, &written, reinterpret_cast<const unsigned char*>(plaintext.data()),
      plaintext.size(), associated.data(), associated.size(), nullptr, nonce.data(), key.data());
  out.resize(at + written);
}

std::optional<std::string> aead_decrypt(const aead_key& key,
                                        std::span<const std::uint8_t, aead_nonce_bytes> nonce,
                                        byte_view ciphertext, byte_view associated) {
  ensure_init();
  if (ciphertext.size() < aead_tag_bytes) return std::nullopt;
  std::string plain(ciphertext.size() - aead_tag_bytes, '\0');
  unsigned long long written = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          reinterpret_cast<unsigned char*>(plain.data()), &written, nullptr, ciphertext.data(),
          ciphertext.size(), associated.data(), associated.size(), nonce.data(),
          key.data()) != 0)
    return std::nullopt;
  plain.resize(written);
  return plain;
}

bytes seal(byte_view message, const box_public_key& to) {
  ensure_init();
  bytes out(message.size() + crypto_box_SEALBYTES);
  if (crypto_box_seal(out.data(), message.data(), message.size(), to.data()) != 0)
    throw std::runtime_error("crypto_box_seal failed");
  return out;
}

bool seal_open(byte_view box, const box_public_key& pk, const box_secret_key& sk,
               std::span<std::uint8_t> out) {
  ensure_init();
  if (box.size() < crypto_box_SEALBYTES || out.size() != box.size() - crypto_box_SEALBYTES)
    return false;
  return crypto_box_seal_open(out.data(), box.data(), box.size(), pk.data(), sk.data()) == 0;
}

box_key_pair box_generate() {
  ensure_init();
  box_key_pair kp;
  crypto_box_keypair(kp.pk.data(), kp.sk.data());
  return kp;
}

box_public_key box_public_from_secret(const box_secret_key& sk) {
  ensure_init();
  box_public_key pk{};
  crypto_scalarmult_base(pk.data(), sk.data());
  return pk;
}

namespace {
// Ed25519 expanded secret key (seed || public key), wiped after use.
struct expanded_sign_key {
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  explicit expanded_sign_key(const sign_seed& seed) {
    ensure_init();
    crypto_sign_seed_keypair(pk, sk, seed.data());
  }
  ~expanded_sign_key() { sodium_memzero(sk, sizeof sk); }
};
}  // namespace

sign_public_key sign_public_from_seed(const sign_seed& seed) {
  const expanded_sign_key k(seed);
  sign_public_key pk{};
  std::memcpy(pk.data(), k.pk, pk.size());
  return pk;
}

signature sign(const sign_seed& seed, byte_view message) {
  const expanded_sign_key k(seed);
  signature sig{};
  crypto_sign_detached(sig.data(), nullptr, message.data(), message.size(), k.sk);
  return sig;
}

bool sign_verify(const sign_public_key& pk, byte_view message, const signature& sig) noexcept {
  if (sodium_init() < 0) return false;
  return crypto_sign_verify_detached(sig.data(), message.data(), message.size(), pk.data()) == 0;
}

std::string to_hex(byte_view data) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (const auto b : data) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

std::optional<bytes> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  bytes out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return out;
}

}  // namespace customs::crypto
