// Proxy users: the users file, credentials checks and their cache.
#include <catch2/catch.hpp>

#include "daemon/config.hpp"
#include "daemon/listen/proxy_auth.hpp"
#include "tests/support/test_certs.hpp"

#include <sys/stat.h>

#include <fstream>

using namespace customs::daemon;
using namespace customs::daemon::listen;

namespace {
std::string basic(const std::string& user_pass) {
  static constexpr char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out = "Basic ";
  std::size_t i = 0;
  for (; i + 2 < user_pass.size(); i += 3) {
    const unsigned n = (static_cast<unsigned char>(user_pass[i]) << 16) | (static_cast<unsigned char>(user_pass[i + 1]) << 8) |
                       static_cast<unsigned char>(user_pass[i + 2]);
    out += t[n >> 18];
    out += t[(n >> 12) & 63];
    out += t[(n >> 6) & 63];
    out += t[n & 63];
  }
  if (i + 1 == user_pass.size()) {
    const unsigned n = static_cast<unsigned char>(user_pass[i]) << 16;
    out += t[n >> 18];
    out += t[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == user_pass.size()) {
    const unsigned n = (static_cast<unsigned char>(user_pass[i]) << 16) | (static_cast<unsigned char>(user_pass[i + 1]) << 8);
    out += t[n >> 18];
    out += t[(n >> 12) & 63];
    out += t[(n >> 6) & 63];
    out += '=';
  }
  return out;
}
}  // namespace

TEST_CASE("proxy credentials name the user's tenant", "[proxy_auth]") {
  const std::string text = "# users\n" + make_proxy_user_line("alice", "correct horse", "acme") + "\n" +
                           make_proxy_user_line("bob", "battery", "globex") + "\n";
  const auto users = proxy_users::parse(text, "users");
  REQUIRE(users->size() == 2);
  CHECK(users->check(basic("alice:correct horse")) == std::optional<std::string>("acme"));
  CHECK(users->check(basic("bob:battery")) == std::optional<std::string>("globex"));
  // Twice: the second answer comes from the cache and is the same.
  CHECK(users->check(basic("bob:battery")) == std::optional<std::string>("globex"));
  CHECK_FALSE(users->check(basic("alice:battery")).has_value());
  CHECK_FALSE(users->check(basic("alice:battery")).has_value());
  CHECK_FALSE(users->check(basic("carol:x")).has_value());
  CHECK_FALSE(users->check("").has_value());
  CHECK_FALSE(users->check("Bearer abc").has_value());
}

TEST_CASE("a malformed users file is rejected with its line numbers", "[proxy_auth]") {
  const std::string good = make_proxy_user_line("alice", "pw", "acme");
  try {
    (void)proxy_users::parse(good + "\nno-colons\nbad name:$argon2id$x:acme\n" + good + "\ncarol:plaintext:acme\n", "users");
    FAIL("parsed");
  } catch (const config_error& e) {
    const auto& d = e.diagnostics();
    REQUIRE(d.size() == 4);
    CHECK(d[0].line == 2);
    CHECK(d[1].line == 3);
    CHECK(d[2].line == 4);  // alice twice
    CHECK(d[3].line == 5);
  }
}

TEST_CASE("a users file that others may read is refused", "[proxy_auth]") {
  customs::testing::temp_dir dir;
  const auto file = dir.path() / "users";
  std::ofstream(file) << make_proxy_user_line("alice", "pw", "acme") << "\n";
  ::chmod(file.c_str(), 0640);
  CHECK(proxy_users::load(file)->size() == 1);
  ::chmod(file.c_str(), 0644);
  CHECK_THROWS_AS(proxy_users::load(file), config_error);
}
