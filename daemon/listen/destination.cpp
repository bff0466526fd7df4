#include "daemon/listen/destination.hpp"

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace customs::daemon::listen {
namespace {

address_class classify_v4(std::uint32_t a) noexcept {
  const auto in = [a](std::uint32_t net, unsigned bits) { return (a >> (32 - bits)) == (net >> (32 - bits)); };
  if (in(0x00000000, 8)) return address_class::unspecified;
  if (in(0x7F000000, 8)) return address_class::loopback;
  if (in(0xA9FE0000, 16)) return address_class::link_local;
  if (in(0x0A000000, 8) || in(0xAC100000, 12) || in(0xC0A80000, 16) || in(0x64400000, 10)) {
    return address_class::private_net;
  }
  if (in(0xE0000000, 4) || in(0xF0000000, 4)) return address_class::multicast;  // and reserved, broadcast
  return address_class::global;
}

}  // namespace

address_class classify(const boost::asio::ip::address& a) noexcept {
  if (a.is_v4()) return classify_v4(a.to_v4().to_uint());
  const auto v6 = a.to_v6();
  const auto b = v6.to_bytes();
  if (v6.is_v4_mapped()) return classify_v4(boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_uint());
  // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
  static constexpr unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(b.data(), nat64, sizeof nat64) == 0) {
    return classify_v4((std::uint32_t{b[12]} << 24) | (std::uint32_t{b[13]} << 16) | (std::uint32_t{b[14]} << 8) | b[15]);
  }
  if (v6.is_unspecified()) return address_class::unspecified;
  if (v6.is_loopback()) return address_class::loopback;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return address_class::link_local;
  if ((b[0] & 0xfe) == 0xfc) return address_class::private_net;
  if (b[0] == 0xff) return address_class::multicast;
  return address_class::global;
}

std::string_view to_string(refusal r) noexcept {
  switch (r) {
    case refusal::none: return "none";
    case refusal::port: return "port";
    case refusal::loopback: return "loopback";
    case refusal::link_local: return "link_local";
    case refusal::private_net: return "private_network";
    case refusal::unspecified: return "unspecified";
    case refusal::multicast: return "multicast";
    case refusal::own_listener: return "own_listener";
    case refusal::count_: break;
  }
  return "none";
}

destination_guard::destination_guard(const config& cfg)
    : ports_(cfg.edge().ports), allow_(cfg.edge().allow_networks), resolve_(cfg.resolve) {}

bool destination_guard::port_allowed(std::uint16_t port) const noexcept {
  return std::find(ports_.begin(), ports_.end(), port) != ports_.end();
}

refusal destination_guard::check(const boost::asio::ip::address& a, std::uint16_t port, bool mapped,
                                 const boost::asio::ip::address& local,
                                 std::span<const std::uint16_t> own_ports) const noexcept {
  const address_class c = classify(a);
  // A loop back into customsd: one of its own ports on an address of this host.
  const bool own_port = std::find(own_ports.begin(), own_ports.end(), port) != own_ports.end();
  if (own_port && (c == address_class::loopback || c == address_class::unspecified || a == local)) {
    return refusal::own_listener;
  }
  if (mapped || c == address_class::global) return refusal::none;
  std::array<std::uint8_t, 16> bytes{};
  bool v6 = false;
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), bytes.begin());
  } else if (a.to_v6().is_v4_mapped()) {
    const auto b = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6()).to_bytes();
    std::copy(b.begin(), b.end(), bytes.begin());
  } else {
    const auto b = a.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), bytes.begin());
    v6 = true;
  }
  for (const auto& n : allow_) {
    if (n.contains(bytes.data(), v6)) return refusal::none;
  }
  switch (c) {
    case address_class::loopback: return refusal::loopback;
    case address_class::link_local: return refusal::link_local;
    case address_class::private_net: return refusal::private_net;
    case address_class::unspecified: return refusal::unspecified;
    case address_class::multicast: return refusal::multicast;
    case address_class::global: break;
  }
  return refusal::none;
}

const resolve_entry* destination_guard::mapped(std::string_view host) const noexcept {
  for (const auto& e : resolve_) {
    if (e.host == host) return &e;
  }
  return nullptr;
}

bool original_destination(int fd, boost::asio::ip::address& addr, std::uint16_t& port) noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  // The socket's family decides which table to ask.
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return false;
  const bool v6 = ss.ss_family == AF_INET6;
  sockaddr_storage orig{};
  socklen_t olen = sizeof orig;
  const int rc = v6 ? ::getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &orig, &olen)
                    : ::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &olen);
  const sockaddr_storage& use = rc == 0 ? orig : ss;  // TPROXY: the local address is the destination
  if (use.ss_family == AF_INET) {
    const auto* s = reinterpret_cast<const sockaddr_in*>(&use);
    addr = boost::asio::ip::address_v4(ntohl(s->sin_addr.s_addr));
    port = ntohs(s->sin_port);
    return true;
  }
  if (use.ss_family == AF_INET6) {
    const auto* s = reinterpret_cast<const sockaddr_in6*>(&use);
    boost::asio::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), s->sin6_addr.s6_addr, 16);
    const boost::asio::ip::address_v6 a6(b, s->sin6_scope_id);
    addr = a6.is_v4_mapped() ? boost::asio::ip::address(boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a6)) : boost::asio::ip::address(a6);
    port = ntohs(s->sin6_port);
    return true;
  }
  return false;
}

}  // namespace customs::daemon::listen
