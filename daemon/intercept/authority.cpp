#include "daemon/intercept/authority.hpp"

#include "daemon/log.hpp"

#include <openssl/ssl.h>

#include <cstring>
#include <stdexcept>

namespace customs::daemon::intercept {
namespace ssl = boost::asio::ssl;

namespace {

// ALPN (RFC 7301): http/1.1 when offered; otherwise no protocol can be agreed.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void*) {
  static constexpr unsigned char want[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned int i = 0;
  while (i < inlen) {
    const unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == sizeof want && std::memcmp(in + i + 1, want, sizeof want) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

}  // namespace

authority::authority(const interception_config& cfg) : cfg_(cfg), ca_(load_ca(cfg.ca_cert, cfg.ca_key)) {
  leaf_key_ = generate_p256();
  if (!leaf_key_) throw std::runtime_error("cannot make the leaf key: " + openssl_error());
  ctx_ = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* c = ctx_->native_handle();
  ctx_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression);
  if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1) throw std::runtime_error("cannot require TLS 1.2");
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_PrivateKey(c, leaf_key_.get()) != 1) {
    throw std::runtime_error("cannot use the leaf key: " + openssl_error());
  }
  SSL_CTX_set_alpn_select_cb(c, select_alpn, nullptr);
  static constexpr unsigned char sid[] = "customs-intercept";
  SSL_CTX_set_session_id_context(c, sid, sizeof sid - 1);
}

bool authority::present(SSL* ssl, std::string_view host) noexcept {
  try {
    const auto now = std::chrono::system_clock::now();
    X509* cert = nullptr;
    bool renewing = false;
    {
      std::lock_guard lock(mutex_);
      if (auto it = cache_.find(std::string(host)); it != cache_.end()) {
        if (now < it->second.renew_at) {
          cert = it->second.cert.get();
          X509_up_ref(cert);
          lru_.splice(lru_.begin(), lru_, it->second.lru);
        } else {
          renewing = true;
        }
      }
    }
    if (cert != nullptr) {
      hits_.fetch_add(1, std::memory_order_relaxed);
    } else {
      x509_ptr minted = mint_leaf(ca_, leaf_key_.get(), host, now, cfg_.leaf_validity);
      if (!minted) {
        failed_.fetch_add(1, std::memory_order_relaxed);
        log_line(log_level::error, "leaf_mint_failed").kv("host", host).kv("error", openssl_error());
        return false;
      }
      (renewing ? renewed_ : minted_).fetch_add(1, std::memory_order_relaxed);
      cert = minted.get();
      X509_up_ref(cert);
      const auto renew_at = now + cfg_.leaf_validity / 2;
      std::lock_guard lock(mutex_);
      const std::string key(host);
      if (auto it = cache_.find(key); it != cache_.end()) {
        // Another worker minted it meanwhile, or this is a renewal: keep the newest.
        it->second.cert = std::move(minted);
        it->second.renew_at = renew_at;
        lru_.splice(lru_.begin(), lru_, it->second.lru);
      } else {
        while (!lru_.empty() && cache_.size() >= cfg_.leaf_cache) {
          cache_.erase(lru_.back());
          lru_.pop_back();
          evicted_.fetch_add(1, std::memory_order_relaxed);
        }
        lru_.push_front(key);
        cache_.emplace(key, entry{std::move(minted), renew_at, lru_.begin()});
      }
    }
    const bool ok = SSL_use_certificate(ssl, cert) == 1;
    X509_free(cert);
    return ok;
  } catch (...) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
}

authority::counts authority::stats() const noexcept {
  counts c;
  c.hits = hits_.load(std::memory_order_relaxed);
  c.minted = minted_.load(std::memory_order_relaxed);
  c.renewed = renewed_.load(std::memory_order_relaxed);
  c.evicted = evicted_.load(std::memory_order_relaxed);
  c.failed = failed_.load(std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  c.size = cache_.size();
  return c;
}

std::string untrusted_clients::key(const boost::asio::ip::address& client, std::string_view host) {
  std::string k;
  if (client.is_v4()) {
    const auto b = client.to_v4().to_bytes();
    k.assign(reinterpret_cast<const char*>(b.data()), b.size());
  } else {
    const auto b = client.to_v6().to_bytes();
    k.assign(reinterpret_cast<const char*>(b.data()), b.size());
  }
  k += '|';
  k += host;
  return k;
}

void untrusted_clients::remember(const boost::asio::ip::address& client, std::string_view host,
                                 std::chrono::steady_clock::time_point now) noexcept {
  try {
    std::string k = key(client, host);
    std::lock_guard lock(mutex_);
    if (auto it = index_.find(k); it != index_.end()) {
      order_.erase(it->second);
      index_.erase(it);
    }
    while (index_.size() >= capacity || (!order_.empty() && now - order_.front().second > ttl)) {
      index_.erase(order_.front().first);
      order_.pop_front();
    }
    order_.emplace_back(k, now);
    index_.emplace(std::move(k), std::prev(order_.end()));
  } catch (...) {
  }
}

bool untrusted_clients::contains(const boost::asio::ip::address& client, std::string_view host,
                                 std::chrono::steady_clock::time_point now) const noexcept {
  try {
    const std::string k = key(client, host);
    std::lock_guard lock(mutex_);
    const auto it = index_.find(k);
    return it != index_.end() && now - it->second->second <= ttl;
  } catch (...) {
    return false;
  }
}

std::size_t untrusted_clients::size() const noexcept {
  std::lock_guard lock(mutex_);
  return index_.size();
}

}  // namespace customs::daemon::intercept
