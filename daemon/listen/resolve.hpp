#pragma once
// Where an edge connection goes: the `resolve` map or DNS, then the access
// rules (destination_guard) on each address, in order. The connection then
// goes to exactly the address that was allowed.

#include "daemon/listen/destination.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace customs::daemon::listen {

struct pinned_destination {
  bool ok = false;
  boost::asio::ip::address address;
  std::uint16_t port = 0;
  refusal refused = refusal::none;  // not ok and set: every address was refused (the first reason)
  bool timeout = false;             // not ok: the lookup did not finish in time
  std::string detail;               // not ok: why, for the log
  bool mapped = false;              // from the resolve map
};

// host: a normalised name or an IP literal. Never throws.
[[nodiscard]] boost::asio::awaitable<pinned_destination> pin_destination(
    const destination_guard& guard, std::string_view host, std::uint16_t port,
    const boost::asio::ip::address& local, std::span<const std::uint16_t> own_ports,
    std::chrono::steady_clock::time_point deadline);

}  // namespace customs::daemon::listen
