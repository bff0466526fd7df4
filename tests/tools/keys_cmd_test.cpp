#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "audit_tools_support.hpp"
#include "tests/audit/audit_test_support.hpp"

using namespace customs::tools::testing;
using customs::audit::testing::temp_dir;

TEST_CASE("keys gen creates the key set and refuses to overwrite it", "[tools][keys]") {
  temp_dir d;
  const auto dir = (d.path / "k").string();
  const auto r = keys_cmd({"gen", "--out", dir});
  REQUIRE(r.code == 0);
  for (const char* f : {"auditor.pub", "auditor.key", "sealing.key", "sealing.seed", "signing.key", "signing.pub"}) {
    CHECK_THAT(r.out, Catch::Contains(f));
    CHECK(std::filesystem::exists(d.path / "k" / f));
  }
  struct stat st {};
  REQUIRE(::stat((d.path / "k/auditor.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const auto again = keys_cmd({"gen", "--out", dir});
  CHECK(again.code == 2);
  CHECK_THAT(again.err, Catch::Contains("never overwritten"));
  // A second auditor key pair in its own folder.
  CHECK(keys_cmd({"gen", "--out", (d.path / "k2").string(), "--only", "auditor"}).code == 0);
  CHECK(std::filesystem::exists(d.path / "k2/auditor.key"));
  CHECK_FALSE(std::filesystem::exists(d.path / "k2/sealing.key"));
}

TEST_CASE("keys usage errors exit 2", "[tools][keys]") {
  CHECK(keys_cmd({}).code == 2);
  CHECK(keys_cmd({"gen"}).code == 2);
  CHECK(keys_cmd({"gen", "--out"}).code == 2);
  CHECK(keys_cmd({"gen", "--out", "x", "--only", "everything"}).code == 2);
  CHECK(keys_cmd({"rotate"}).code == 2);
  CHECK(keys_cmd({"--help"}).code == 0);
}
