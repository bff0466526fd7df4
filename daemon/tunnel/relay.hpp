#pragma once
// The byte relay of tunnels: what customsd does with every connection it does
// not decrypt. Bytes are moved socket -> pipe -> socket with splice(2), so they
// are never copied into user space (the kernel moves page references); when no
// pipe can be had (out of descriptors) the relay falls back to read/write
// through a 16 KiB buffer.
//
// Pipes come from a per-worker pool and are held only while bytes are in
// flight: an idle tunnel holds two sockets and no pipe, no buffer. A half-close
// is passed on (EOF from one side shuts down the other side's sending half);
// the relay ends when both directions ended, on an error (both sockets are
// closed), after limits.tunnel_idle_timeout without a byte either way, or when
// the sockets are closed from outside (drain).
//
// Data plane: never throws; runs on the worker's thread.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <vector>

namespace customs::daemon::tunnel {

// Pipes (read end, write end) kept for reuse by one worker; every pipe in the
// pool is empty.
class pipe_pool {
 public:
  pipe_pool() = default;
  ~pipe_pool();
  pipe_pool(const pipe_pool&) = delete;
  pipe_pool& operator=(const pipe_pool&) = delete;

  struct pipe {
    int r = -1, w = -1;
    [[nodiscard]] bool valid() const noexcept { return r >= 0; }
  };
  // A pipe, or an invalid one when none can be made (EMFILE, ENFILE).
  [[nodiscard]] pipe take() noexcept;
  // Returns an empty pipe to the pool (closes it beyond `keep` pipes).
  void give(pipe p) noexcept;
  static void close(pipe& p) noexcept;

  static constexpr std::size_t keep = 64;

 private:
  std::vector<pipe> idle_;
};

struct relay_result {
  std::uint64_t up = 0;    // a -> b
  std::uint64_t down = 0;  // b -> a
  bool idle_timeout = false;
  bool error = false;      // a socket failed (reset, ...), not a clean close
};

// Relays between a (the client) and b (the destination) until the end (see
// above). Both sockets are closed when it returns. `on_bytes` is not called;
// the counts are in the result.
[[nodiscard]] boost::asio::awaitable<relay_result> relay(boost::asio::ip::tcp::socket& a,
                                                         boost::asio::ip::tcp::socket& b, pipe_pool& pool,
                                                         std::chrono::milliseconds idle_timeout);

}  // namespace customs::daemon::tunnel
