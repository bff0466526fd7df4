#pragma once
// Proxy-Authorization on a forward listener (HTTP Basic, RFC 7617): the users
// file names who may use the proxy and the tenant each one is.
//
// Users file (listeners[].proxy_auth.users), one user a line, '#' comments:
//
//   alice:$argon2id$v=19$m=4096,t=2,p=1$...:acme
//   <name>:<Argon2id hash, as libsodium's crypto_pwhash_str writes it>:<tenant>
//
// `customsctl proxy-user NAME TENANT` reads a password on standard input and
// prints such a line. Names are 1..64 of [A-Za-z0-9._@-]; tenants as in
// `sources`. The file must not be readable by others (the hashes are not
// secrets, but they can be attacked offline).
//
// Verifying an Argon2id hash is slow by design (about a millisecond at the
// parameters customsctl uses, more at larger ones), and it runs on the worker
// thread. Results are kept in a bounded cache keyed by a keyed hash of the
// header value (never the value itself): a client that reconnects with the
// same credentials costs a lookup. Known weakness: a flood of distinct wrong
// credentials costs one verification each; rate-limit the proxy port on the
// network for untrusted sources.

#include <cstddef>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace customs::daemon::listen {

class proxy_users {
 public:
  // Control plane: throws config_error (file:line: error: CODE: message) for a
  // malformed file, config_io_error when it cannot be read.
  [[nodiscard]] static std::shared_ptr<const proxy_users> load(const std::filesystem::path& file);
  // From text (tests, fuzzing): diagnostics name `file_name`.
  [[nodiscard]] static std::shared_ptr<const proxy_users> parse(std::string_view text, const std::string& file_name);

  // The tenant of the credentials in a Proxy-Authorization value, or nullopt
  // when they are missing, malformed or wrong. Thread-safe; never throws.
  [[nodiscard]] std::optional<std::string> check(std::string_view header_value) const noexcept;

  [[nodiscard]] std::size_t size() const noexcept { return users_.size(); }

  // Entries kept by the verification cache (documented constant).
  static constexpr std::size_t cache_entries = 4096;

 private:
  proxy_users();
  struct user {
    std::string name;
    std::string hash;  // "$argon2id$..."
    std::string tenant;
  };
  std::vector<user> users_;
  unsigned char cache_key_[32];  // random per load: keys the cache's hashes
  // Cache: keyed hash of the header value -> tenant ("" marks a failure).
  mutable std::mutex mutex_;
  mutable std::list<std::string> order_;  // oldest first
  mutable std::unordered_map<std::string, std::pair<std::string, std::list<std::string>::iterator>> cache_;
};

// The line for a users file (customsctl proxy-user); throws std::runtime_error
// when the name or tenant is not valid or hashing fails.
[[nodiscard]] std::string make_proxy_user_line(std::string_view name, std::string_view password,
                                               std::string_view tenant);

}  // namespace customs::daemon::listen
