#include "daemon/listen/proxy_auth.hpp"

#include "daemon/config.hpp"
#include "daemon/listen/proxy_request.hpp"

#include <sodium.h>
#include <sys/stat.h>

#include <fstream>
#include <set>
#include <sstream>

namespace customs::daemon::listen {
namespace {

// Parameters customsctl hashes new passwords with: 2 passes over 1 MiB.
constexpr unsigned long long hash_ops = 2;
constexpr std::size_t hash_mem = 1u << 20;
// The most a stored hash may ask of a verification (a bigger one is refused at
// load: a users file must not be able to stall the workers).
constexpr unsigned long long max_ops = 10;
constexpr std::size_t max_mem = 64u << 20;

bool valid_name(std::string_view n) noexcept {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '@' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Reads m= and t= of "$argon2id$v=19$m=4096,t=2,p=1$salt$hash".
bool hash_params(std::string_view h, unsigned long long& ops, std::size_t& mem) {
  if (!h.starts_with("$argon2id$")) return false;
  const auto m = h.find("$m=");
  const auto t = h.find(",t=");
  if (m == std::string_view::npos || t == std::string_view::npos || t < m) return false;
  try {
    mem = static_cast<std::size_t>(std::stoull(std::string(h.substr(m + 3, t - m - 3)))) * 1024;
    ops = std::stoull(std::string(h.substr(t + 3)));
  } catch (...) {
    return false;
  }
  return true;
}

}  // namespace

proxy_users::proxy_users() { randombytes_buf(cache_key_, sizeof cache_key_); }

std::shared_ptr<const proxy_users> proxy_users::load(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) throw config_io_error(file.string() + ": error: E_IO: cannot read the users file");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw config_io_error(file.string() + ": error: E_IO: cannot open the users file");
  std::ostringstream ss;
  ss << in.rdbuf();
  auto users = parse(ss.str(), file.string());
  if ((st.st_mode & 007) != 0) {
    throw config_error({{file.string(), 0, 0, "E_FILE",
                         "the users file may be read by others; run: chmod o-rwx " + file.string()}});
  }
  return users;
}

std::shared_ptr<const proxy_users> proxy_users::parse(std::string_view text, const std::string& file_name) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium cannot be initialised");
  std::shared_ptr<proxy_users> out(new proxy_users());
  std::vector<config_diagnostic> diags;
  std::set<std::string> names;
  int line_no = 0;
  std::size_t at = 0;
  if (text.size() > (4u << 20)) {
    throw config_error({{file_name, 0, 0, "E_VALUE", "the users file is larger than 4 MiB"}});
  }
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    const auto err = [&](std::string m) { diags.push_back({file_name, line_no, 1, "E_VALUE", std::move(m)}); };
    const auto first = line.find(':');
    const auto last = line.rfind(':');
    if (first == std::string_view::npos || first == last) {
      err("expected name:hash:tenant");
      continue;
    }
    user u{std::string(line.substr(0, first)), std::string(line.substr(first + 1, last - first - 1)),
           std::string(line.substr(last + 1))};
    unsigned long long ops = 0;
    std::size_t mem = 0;
    if (!valid_name(u.name)) err("user name: 1 to 64 of letters, digits, '.', '_', '@', '-'");
    else if (!names.insert(u.name).second) err("user " + u.name + " appears twice");
    else if (!hash_params(u.hash, ops, mem)) err("user " + u.name + ": not an Argon2id hash (customsctl proxy-user makes one)");
    else if (ops > max_ops || mem > max_mem) err("user " + u.name + ": hash parameters over t=10, m=64MiB");
    else if (!valid_tenant(u.tenant)) err("user " + u.name + ": tenant must be 1 to 64 of [A-Za-z0-9._:-]");
    else out->users_.push_back(std::move(u));
  }
  if (!diags.empty()) throw config_error(std::move(diags));
  return out;
}

std::optional<std::string> proxy_users::check(std::string_view header_value) const noexcept {
  try {
    if (header_value.empty()) return std::nullopt;
    unsigned char digest[32];
    crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(header_value.data()),
                       header_value.size(), cache_key_, sizeof cache_key_);
    std::string key(reinterpret_cast<const char*>(digest), sizeof digest);
    {
      std::lock_guard lock(mutex_);
      if (auto it = cache_.find(key); it != cache_.end()) {
        if (it->second.first.empty()) return std::nullopt;
        return it->second.first;
      }
    }
    std::string tenant;  // empty: refused
    basic_credentials cred;
    if (parse_basic_credentials(header_value, cred)) {
      for (const auto& u : users_) {
        if (u.name != cred.user) continue;
        if (crypto_pwhash_str_verify(u.hash.c_str(), cred.password.data(), cred.password.size()) == 0) {
          tenant = u.tenant;
        }
        break;
      }
      sodium_memzero(cred.password.data(), cred.password.size());
    }
    std::lock_guard lock(mutex_);
    if (!cache_.contains(key)) {
      if (cache_.size() >= cache_entries) {
        cache_.erase(order_.front());
        order_.pop_front();
      }
      order_.push_back(key);
      cache_.emplace(key, std::make_pair(tenant, std::prev(order_.end())));
    }
    if (tenant.empty()) return std::nullopt;
    return tenant;
  } catch (...) {
    return std::nullopt;
  }
}

std::string make_proxy_user_line(std::string_view name, std::string_view password, std::string_view tenant) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium cannot be initialised");
  if (!valid_name(name)) throw std::runtime_error("user name: 1 to 64 of letters, digits, '.', '_', '@', '-'");
  if (!valid_tenant(tenant)) throw std::runtime_error("tenant: 1 to 64 of [A-Za-z0-9._:-]");
  if (password.empty()) throw std::runtime_error("empty password");
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), hash_ops, hash_mem) != 0) {
    throw std::runtime_error("out of memory while hashing");
  }
  return std::string(name) + ":" + out + ":" + std::string(tenant);
}

}  // namespace customs::daemon::listen
