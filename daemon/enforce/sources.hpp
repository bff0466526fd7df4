#pragma once
// Where a flow comes from: its source jurisdiction and tenant, resolved per
// request from the listener's default_source, the `sources` list (client
// network or mTLS certificate subject, first match wins) and, from trusted
// proxies only, the X-Customs-Source / X-Customs-Tenant headers.
//
// Order: a trusted proxy's X-Customs-Source names the jurisdiction (its
// X-Customs-Tenant the tenant, else none); otherwise the first `sources` entry
// that matches the TCP peer address or the verified client certificate subject;
// otherwise the listener's default_source. A trusted proxy's X-Customs-Tenant
// alone overrides the tenant of whatever resolved the jurisdiction. The headers
// are ignored (and reported) from any other peer, and the filter removes every
// X-Customs-* request header before the request goes upstream. On a forward
// listener with proxy_auth, the tenant of the client's Proxy-Authorization
// credentials names the tenant (unless a trusted proxy's X-Customs-Tenant does).
//
// Built once per config (control plane); resolve() is data plane and never throws.

#include "daemon/config.hpp"
#include "daemon/filter.hpp"

#include <boost/beast/http/fields.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace customs::daemon::enforce {

enum class source_origin : std::uint8_t {
  none,         // not resolved: the flow is refused
  header,       // X-Customs-Source from a trusted proxy
  network,      // a `sources` entry's cidr
  certificate,  // a `sources` entry's client_cert_subject
  listener,     // the listener's default_source
};

[[nodiscard]] std::string_view to_string(source_origin o) noexcept;

struct resolved_source {
  source_origin origin = source_origin::none;
  std::string jurisdiction;
  std::string tenant;
  // X-Customs-Source or X-Customs-Tenant came from a peer that is not a trusted
  // proxy and was ignored.
  bool header_ignored = false;
  std::string error;  // origin none: why, for the client and the audit trail
};

class source_resolver {
 public:
  source_resolver() = default;
  explicit source_resolver(const config& cfg);

  [[nodiscard]] resolved_source resolve(const flow_info& flow, const boost::beast::http::fields& headers) const;

  // Whether `peer` may set the X-Customs-* source headers.
  [[nodiscard]] bool trusted(const boost::asio::ip::address& peer) const noexcept;

 private:
  struct listener_default {
    std::string listener;
    source_spec source;
  };
  std::vector<source_rule> rules_;
  std::vector<cidr_block> trusted_;
  std::vector<listener_default> defaults_;
};

// Removes every request header whose name starts with "X-Customs-" (customsd's
// own namespace: nothing a client sends under it may reach the provider).
void strip_customs_headers(boost::beast::http::fields& headers);

}  // namespace customs::daemon::enforce
