#pragma once
// TLS interception's server side: the operator's CA, one leaf key (ECDSA P-256,
// made at start-up, never written to disk), and a bounded cache of the leaf
// certificates minted from them, one per intercepted host.
//
// A connection to an intercepted host gets a TLS stream on context(), whose
// certificate is set per connection (present) from the cache: minted on the
// first connection to a host, renewed once half of its validity has passed,
// the least recently used one dropped when the cache is full
// (interception.leaf_cache). ALPN: http/1.1 is chosen when offered; a client
// that offers only other protocols (h2) gets a no_application_protocol alert.
// TLS 1.2 and 1.3, no compression, no renegotiation, as customsd's other
// servers.
//
// Thread-safe: one authority serves every worker; the cache takes a lock per
// lookup (minting happens outside it). Kept across reloads that do not change
// the interception settings, so the cache stays warm.

#include "daemon/config.hpp"
#include "daemon/intercept/x509.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace customs::daemon::intercept {

class authority {
 public:
  // Control plane: loads the CA (throws std::runtime_error naming the file).
  explicit authority(const interception_config& cfg);
  authority(const authority&) = delete;
  authority& operator=(const authority&) = delete;

  // The settings it was built from (reused on reload when equal).
  [[nodiscard]] const interception_config& settings() const noexcept { return cfg_; }
  [[nodiscard]] const std::shared_ptr<boost::asio::ssl::context>& context() const noexcept { return ctx_; }

  // Sets the leaf certificate for `host` on a server-side SSL object of
  // context(). False when no certificate could be minted (logged).
  [[nodiscard]] bool present(SSL* ssl, std::string_view host) noexcept;

  struct counts {
    std::uint64_t hits = 0, minted = 0, renewed = 0, evicted = 0, failed = 0, size = 0;
  };
  [[nodiscard]] counts stats() const noexcept;

 private:
  struct entry {
    x509_ptr cert;
    std::chrono::system_clock::time_point renew_at;
    std::list<std::string>::iterator lru;
  };
  interception_config cfg_;
  loaded_ca ca_;
  pkey_ptr leaf_key_;
  std::shared_ptr<boost::asio::ssl::context> ctx_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, entry> cache_;
  std::list<std::string> lru_;  // most recently used first
  std::atomic<std::uint64_t> hits_{0}, minted_{0}, renewed_{0}, evicted_{0}, failed_{0};
};

// Clients that rejected customsd's certificate for a host, remembered so that
// their next connections to it are tunnelled or refused (on_untrusted) instead
// of failing the same way again. Bounded (untrusted_capacity pairs, the oldest
// go first) and forgotten after untrusted_ttl, so that a client that installed
// the CA since is intercepted again. Thread-safe.
class untrusted_clients {
 public:
  static constexpr std::size_t capacity = 65536;
  static constexpr std::chrono::seconds ttl{3600};

  void remember(const boost::asio::ip::address& client, std::string_view host,
                std::chrono::steady_clock::time_point now) noexcept;
  [[nodiscard]] bool contains(const boost::asio::ip::address& client, std::string_view host,
                              std::chrono::steady_clock::time_point now) const noexcept;
  [[nodiscard]] std::size_t size() const noexcept;

 private:
  static std::string key(const boost::asio::ip::address& client, std::string_view host);
  mutable std::mutex mutex_;
  std::list<std::pair<std::string, std::chrono::steady_clock::time_point>> order_;  // oldest first
  std::unordered_map<std::string, std::list<std::pair<std::string, std::chrono::steady_clock::time_point>>::iterator> index_;
};

}  // namespace customs::daemon::intercept
