#include "daemon/enforce/sources.hpp"

#include "daemon/http_util.hpp"

#include <array>

namespace customs::daemon::enforce {
namespace {

// The peer's address as bytes; IPv4-mapped IPv6 addresses as IPv4.
struct address_bytes {
  std::array<std::uint8_t, 16> b{};
  bool v6 = false;
};

address_bytes bytes_of(const boost::asio::ip::address& a) {
  address_bytes out;
  if (a.is_v4()) {
    const auto v4 = a.to_v4().to_bytes();
    std::copy(v4.begin(), v4.end(), out.b.begin());
  } else if (a.is_v6()) {
    const auto v6 = a.to_v6();
    if (v6.is_v4_mapped()) {
      const auto v4 = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_bytes();
      std::copy(v4.begin(), v4.end(), out.b.begin());
    } else {
      out.b = v6.to_bytes();
      out.v6 = true;
    }
  }
  return out;
}

// The single value of a header: nullopt when absent, error when repeated.
struct header_value {
  bool present = false;
  bool repeated = false;
  std::string_view value;
};

header_value single(const boost::beast::http::fields& h, std::string_view name) {
  header_value out;
  auto range = h.equal_range(boost::beast::string_view(name.data(), name.size()));
  for (auto it = range.first; it != range.second; ++it) {
    if (out.present) out.repeated = true;
    out.present = true;
    out.value = std::string_view(it->value().data(), it->value().size());
  }
  return out;
}

constexpr std::string_view source_header = "X-Customs-Source";
constexpr std::string_view tenant_header = "X-Customs-Tenant";

}  // namespace

std::string_view to_string(source_origin o) noexcept {
  switch (o) {
    case source_origin::none: return "none";
    case source_origin::header: return "header";
    case source_origin::network: return "network";
    case source_origin::certificate: return "certificate";
    case source_origin::listener: return "listener";
  }
  return "none";
}

source_resolver::source_resolver(const config& cfg) : rules_(cfg.sources), trusted_(cfg.trusted_proxies) {
  for (const auto& l : cfg.listeners) {
    if (l.default_source) defaults_.push_back({l.name, *l.default_source});
  }
}

bool source_resolver::trusted(const boost::asio::ip::address& peer) const noexcept {
  if (trusted_.empty()) return false;
  const auto a = bytes_of(peer);
  for (const auto& c : trusted_) {
    if (c.contains(a.b.data(), a.v6)) return true;
  }
  return false;
}

resolved_source source_resolver::resolve(const flow_info& flow, const boost::beast::http::fields& headers) const {
  resolved_source r;
  const header_value src = single(headers, source_header);
  const header_value ten = single(headers, tenant_header);
  const bool from_proxy = (src.present || ten.present) && trusted(flow.peer);
  if ((src.present || ten.present) && !from_proxy) r.header_ignored = true;

  if (from_proxy) {
    if (src.repeated || ten.repeated) {
      r.error = "X-Customs-Source or X-Customs-Tenant appears more than once";
      return r;
    }
    if (src.present && !valid_jurisdiction(src.value)) {
      r.error = "X-Customs-Source is not an ISO 3166-1 alpha-2 code";
      return r;
    }
    if (ten.present && !valid_tenant(ten.value)) {
      r.error = "X-Customs-Tenant is not a tenant name (1 to 64 of A-Z a-z 0-9 . _ : -)";
      return r;
    }
    if (src.present) {
      r.origin = source_origin::header;
      r.jurisdiction = std::string(src.value);
      if (ten.present) r.tenant = std::string(ten.value);
      return r;
    }
  }

  const auto a = bytes_of(flow.peer);
  for (const auto& rule : rules_) {
    const bool match = rule.cidr ? rule.cidr->contains(a.b.data(), a.v6)
                                 : !flow.client_subject.empty() && flow.client_subject == rule.client_cert_subject;
    if (!match) continue;
    r.origin = rule.cidr ? source_origin::network : source_origin::certificate;
    r.jurisdiction = rule.source.jurisdiction;
    r.tenant = rule.source.tenant;
    break;
  }
  if (r.origin == source_origin::none) {
    for (const auto& d : defaults_) {
      if (d.listener != flow.listener) continue;
      r.origin = source_origin::listener;
      r.jurisdiction = d.source.jurisdiction;
      r.tenant = d.source.tenant;
      break;
    }
  }
  if (r.origin == source_origin::none) {
    r.error = "the source jurisdiction of this client is unknown: no sources entry matches it and listener '" +
              flow.listener + "' has no default_source";
    return r;
  }
  if (from_proxy && ten.present) r.tenant = std::string(ten.value);
  else if (!flow.proxy_tenant.empty()) r.tenant = flow.proxy_tenant;  // the proxy credentials' tenant
  return r;
}

void strip_customs_headers(boost::beast::http::fields& headers) {
  for (auto it = headers.begin(); it != headers.end();) {
    const auto n = it->name_string();
    if (n.size() >= 10 && iequals(std::string_view(n.data(), 10), "x-customs-")) it = headers.erase(it);
    else ++it;
  }
}

}  // namespace customs::daemon::enforce
