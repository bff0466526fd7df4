#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>
#include <random>
#include <sstream>

#include "crypto/key_file.hpp"

namespace fs = std::filesystem;
using namespace customs::crypto;

namespace {
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("customs-keys-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
unsigned mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 0777;
}
}  // namespace

TEST_CASE("keys gen writes the six files with header lines and modes", "[keys]") {
  temp_dir d;
  const auto files = generate_key_set(d.path / "k");
  REQUIRE(files.size() == 6);
  for (const char* name : {"auditor.key", "sealing.key", "sealing.seed", "signing.key"}) {
    CHECK(mode_of(d.path / "k" / name) == 0600);
  }
  for (const char* name : {"auditor.pub", "signing.pub"}) CHECK(mode_of(d.path / "k" / name) == 0644);
  CHECK(slurp(d.path / "k/auditor.key").rfind("# customs auditor secret key (X25519) v1: ", 0) == 0);
  CHECK(slurp(d.path / "k/sealing.seed").rfind("# customs sealing seed", 0) == 0);
  // The key files are consistent with each other.
  const auto sk = load_auditor_secret(d.path / "k/auditor.key");
  CHECK(box_public_from_secret(sk) == load_auditor_public(d.path / "k/auditor.pub"));
  const auto seal_key = load_sealing_key(d.path / "k/sealing.key");
  const auto seed = load_sealing_seed(d.path / "k/sealing.seed");
  CHECK(seal_key.epoch == 0);
  CHECK(equal(seal_key.key.view(), seed.key.view()));
  CHECK(sign_public_from_seed(load_signing_key(d.path / "k/signing.key")) ==
        load_signing_public(d.path / "k/signing.pub"));
}

TEST_CASE("keys gen never overwrites an existing file", "[keys]") {
  temp_dir d;
  (void)generate_key_set(d.path, key_set::auditor);
  const auto before = slurp(d.path / "auditor.key");
  CHECK_THROWS_WITH(generate_key_set(d.path), Catch::Contains("never overwritten"));
  CHECK(slurp(d.path / "auditor.key") == before);
  // Nothing of the refused set was created.
  CHECK_FALSE(fs::exists(d.path / "sealing.key"));
  CHECK_THROWS_WITH(write_key_file(d.path / "auditor.pub", key_kind::auditor_public,
                                   load_auditor_public(d.path / "auditor.pub")),
                    Catch::Contains("never overwritten"));
}

TEST_CASE("secret key files that others may read are refused", "[keys]") {
  temp_dir d;
  (void)generate_key_set(d.path);
  for (const auto mode : {0640, 0604, 0644, 0660}) {
    INFO("mode " << std::oct << mode);
    REQUIRE(::chmod((d.path / "sealing.key").c_str(), static_cast<mode_t>(mode)) == 0);
    CHECK_THROWS_WITH(load_sealing_key(d.path / "sealing.key"), Catch::Contains("chmod 600"));
    REQUIRE(::chmod((d.path / "auditor.key").c_str(), static_cast<mode_t>(mode)) == 0);
    CHECK_THROWS_WITH(load_auditor_secret(d.path / "auditor.key"), Catch::Contains("others may read"));
  }
  REQUIRE(::chmod((d.path / "sealing.key").c_str(), 0600) == 0);
  CHECK_NOTHROW(load_sealing_key(d.path / "sealing.key"));
  // Public keys may be world-readable.
  CHECK_NOTHROW(load_auditor_public(d.path / "auditor.pub"));
}

TEST_CASE("a key file of the wrong kind is named in the error", "[keys]") {
  temp_dir d;
  (void)generate_key_set(d.path);
  CHECK_THROWS_WITH(load_auditor_secret(d.path / "sealing.key"),
                    Catch::Contains("is a sealing.key file, but a auditor.key file is needed"));
  CHECK_THROWS_WITH(load_auditor_public(d.path / "nonexistent.pub"), Catch::Contains("cannot open"));
}

TEST_CASE("the sealing key is replaced atomically with its new epoch", "[keys]") {
  temp_dir d;
  (void)generate_key_set(d.path, key_set::sealing);
  auto st = load_sealing_key(d.path / "sealing.key");
  sealing_state next;
  next.epoch = 1;
  next.key = evolve(st.key, 0);
  // A stale temporary file from an earlier crash is ignored and replaced.
  std::ofstream(d.path / "sealing.key.tmp") << "garbage";
  replace_sealing_key(d.path / "sealing.key", next);
  const auto back = load_sealing_key(d.path / "sealing.key");
  CHECK(back.epoch == 1);
  CHECK(equal(back.key.view(), next.key.view()));
  CHECK(mode_of(d.path / "sealing.key") == 0600);
  CHECK_FALSE(fs::exists(d.path / "sealing.key.tmp"));
}
