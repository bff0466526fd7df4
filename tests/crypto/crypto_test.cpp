#include <catch2/catch.hpp>

#include <cstring>

#include "crypto/crypto.hpp"

using namespace customs::crypto;

TEST_CASE("evolution is one way and deterministic", "[crypto]") {
  mac_key k0;
  random_bytes({k0.data(), k0.size()});
  const auto k1 = evolve(k0, 0);
  const auto k1b = evolve(k0, 0);
  CHECK(equal(k1.view(), k1b.view()));
  CHECK_FALSE(equal(k0.view(), k1.view()));
  // The epoch number is part of the derivation.
  CHECK_FALSE(equal(evolve(k0, 1).view(), k1.view()));
  const auto k3 = evolve_to(k0, 0, 3);
  CHECK(equal(k3.view(), evolve(evolve(k1, 1), 2).view()));
  CHECK_THROWS(evolve_to(k3, 3, 2));
}

TEST_CASE("AEAD rejects altered ciphertext and associated data", "[crypto]") {
  aead_key key;
  random_bytes({key.data(), key.size()});
  std::array<std::uint8_t, aead_nonce_bytes> nonce{};
  random_bytes(nonce);
  const std::string ad = "header";
  bytes ct;
  aead_encrypt(key, nonce, "secret text", as_bytes(ad), ct);
  REQUIRE(aead_decrypt(key, nonce, ct, as_bytes(ad)) == std::optional<std::string>("secret text"));
  CHECK_FALSE(aead_decrypt(key, nonce, ct, as_bytes(std::string("headeR"))));
  ct[3] ^= 1;
  CHECK_FALSE(aead_decrypt(key, nonce, ct, as_bytes(ad)));
}

TEST_CASE("sealed boxes open only with the matching key pair", "[crypto]") {
  const auto a = box_generate();
  const auto b = box_generate();
  const std::string msg = "data key bytes";
  const auto box = seal(as_bytes(msg), a.pk);
  std::vector<std::uint8_t> out(msg.size());
  REQUIRE(seal_open(box, a.pk, a.sk, out));
  CHECK(std::string(out.begin(), out.end()) == msg);
  CHECK_FALSE(seal_open(box, b.pk, b.sk, out));
  CHECK(box_public_from_secret(a.sk) == a.pk);
}

TEST_CASE("signatures verify only for the signed message and key", "[crypto]") {
  sign_seed seed;
  random_bytes({seed.data(), seed.size()});
  const auto pk = sign_public_from_seed(seed);
  const std::string msg = "checkpoint";
  const auto sig = sign(seed, as_bytes(msg));
  CHECK(sign_verify(pk, as_bytes(msg), sig));
  CHECK_FALSE(sign_verify(pk, as_bytes(std::string("checkpoinT")), sig));
  sign_seed other;
  random_bytes({other.data(), other.size()});
  CHECK_FALSE(sign_verify(sign_public_from_seed(other), as_bytes(msg), sig));
}

TEST_CASE("hex round trip and rejection of bad digits", "[crypto]") {
  const bytes b{0x00, 0x7f, 0xff, 0x10};
  CHECK(to_hex(b) == "007fff10");
  CHECK(from_hex("007FFF10") == std::optional<bytes>(b));
  CHECK_FALSE(from_hex("0g"));
  CHECK_FALSE(from_hex("abc"));
}

TEST_CASE("a secret is wiped when moved from", "[crypto]") {
  mac_key a;
  std::memset(a.data(), 0xab, a.size());
  mac_key b = std::move(a);
  CHECK(b.data()[0] == 0xab);
  CHECK(a.data()[0] == 0);  // NOLINT(bugprone-use-after-move): checking the wipe
}
