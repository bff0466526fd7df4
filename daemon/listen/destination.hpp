#pragma once
// Where an edge connection may go. customsd is not an open proxy: in forward
// mode a client may reach only the configured ports (443 and 80 by default),
// and never loopback, link-local, private, multicast or unspecified addresses
// (unless a network is listed in interception.allow_networks, or the host is
// mapped by `resolve`, which is the operator's own statement), nor customsd's
// own listeners and admin listener on this host (a loop) in any mode.
//
// The check is made on the addresses a name resolves to, and the connection
// then goes to exactly the address that was checked (no second lookup that
// DNS could answer differently).

#include "daemon/config.hpp"

#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace customs::daemon::listen {

enum class address_class : std::uint8_t {
  global,       // an ordinary public address
  loopback,     // 127.0.0.0/8, ::1
  link_local,   // 169.254.0.0/16, fe80::/10
  private_net,  // 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7
  unspecified,  // 0.0.0.0/8, ::
  multicast,    // 224/4, 240/4, broadcast, ff00::/8
};
[[nodiscard]] address_class classify(const boost::asio::ip::address& a) noexcept;

enum class refusal : std::uint8_t {
  none,
  port,            // not in interception.ports
  loopback,
  link_local,
  private_net,
  unspecified,
  multicast,
  own_listener,    // this customsd's listener or admin listener
  count_,
};
[[nodiscard]] std::string_view to_string(refusal r) noexcept;

// Built once per config (control plane); checks are data plane.
class destination_guard {
 public:
  destination_guard() = default;
  explicit destination_guard(const config& cfg);

  // Forward mode: may a client ask for this port at all?
  [[nodiscard]] bool port_allowed(std::uint16_t port) const noexcept;

  // May a connection go to address:port? `mapped`: the address comes from the
  // `resolve` map (only the loop check applies). `local` is the address the
  // client reached customsd on; `own_ports` the ports customsd listens on.
  [[nodiscard]] refusal check(const boost::asio::ip::address& a, std::uint16_t port, bool mapped,
                              const boost::asio::ip::address& local,
                              std::span<const std::uint16_t> own_ports) const noexcept;

  // The `resolve` entry for a host (lower case), or null.
  [[nodiscard]] const resolve_entry* mapped(std::string_view host) const noexcept;

 private:
  std::vector<std::uint16_t> ports_;
  std::vector<cidr_block> allow_;
  std::vector<resolve_entry> resolve_;
};

// The destination a redirected connection was meant for: SO_ORIGINAL_DST
// (iptables/nftables redirect and DNAT, IPv4 and IPv6), else the socket's local
// address (TPROXY keeps it). False when neither can be read.
[[nodiscard]] bool original_destination(int fd, boost::asio::ip::address& addr, std::uint16_t& port) noexcept;

}  // namespace customs::daemon::listen
