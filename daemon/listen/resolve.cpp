#include "daemon/listen/resolve.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>

namespace customs::daemon::listen {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

asio::awaitable<pinned_destination> pin_destination(const destination_guard& guard, std::string_view host,
                                                    std::uint16_t port, const asio::ip::address& local,
                                                    std::span<const std::uint16_t> own_ports,
                                                    std::chrono::steady_clock::time_point deadline) {
  pinned_destination out;
  boost::system::error_code ec;
  if (const resolve_entry* m = guard.mapped(host)) {
    out.address = asio::ip::make_address(m->address, ec);
    out.port = m->port != 0 ? m->port : port;
    out.mapped = true;
    if (ec) {
      out.detail = "resolve map: " + ec.message();
      co_return out;
    }
    out.refused = guard.check(out.address, out.port, true, local, own_ports);
    out.ok = out.refused == refusal::none;
    co_return out;
  }
  const std::string h(host);
  if (const auto literal = asio::ip::make_address(h, ec); !ec) {
    out.address = literal;
    out.port = port;
    out.refused = guard.check(literal, port, false, local, own_ports);
    out.ok = out.refused == refusal::none;
    co_return out;
  }
  // getaddrinfo cannot be interrupted: on timeout the resolver is cancelled and
  // its late answer ignored (as connect_upstream does).
  auto ex = co_await asio::this_coro::executor;
  auto resolver = std::make_shared<tcp::resolver>(ex);
  asio::steady_timer guard_timer(ex);
  guard_timer.expires_at(deadline);
  guard_timer.async_wait([weak = std::weak_ptr<tcp::resolver>(resolver)](boost::system::error_code e) {
    if (e) return;
    if (auto r = weak.lock()) r->cancel();
  });
  auto [rec, endpoints] =
      co_await resolver->async_resolve(h, std::to_string(port), asio::as_tuple(asio::use_awaitable));
  guard_timer.cancel();
  if (rec) {
    out.timeout = std::chrono::steady_clock::now() >= deadline;
    out.detail = "resolve " + h + ": " + rec.message();
    co_return out;
  }
  for (const auto& e : endpoints) {
    const refusal r = guard.check(e.endpoint().address(), port, false, local, own_ports);
    if (r == refusal::none) {
      out.ok = true;
      out.address = e.endpoint().address();
      out.port = port;
      out.refused = refusal::none;
      co_return out;
    }
    if (out.refused == refusal::none) out.refused = r;
  }
  if (out.refused == refusal::none) out.detail = "resolve " + h + ": no addresses";
  co_return out;
}

}  // namespace customs::daemon::listen
