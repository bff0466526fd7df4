#include "daemon/tunnel/relay.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <exception>
#include <memory>

namespace customs::daemon::tunnel {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

namespace {

constexpr auto tok = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t chunk = 256 * 1024;       // one splice: the pool's pipe capacity (F_SETPIPE_SZ)
constexpr std::size_t copy_buffer = 16 * 1024;  // the fallback's buffer
constexpr int rounds_per_wakeup = 16;           // then yield to other connections

struct state {
  relay_result r;
  clock::time_point last = clock::now();
  int running = 2;
  asio::steady_timer* timer = nullptr;  // the relay's wait; cancelled when a pump ends
};

void close_both(tcp::socket& a, tcp::socket& b) noexcept {
  boost::system::error_code ec;
  a.close(ec);
  b.close(ec);
}

// Moves `n` bytes to dst with `out(n)` (one non-blocking write or splice that
// returns what it moved, or -1 with errno), waiting for room when needed.
// False on an error (bytes may then be left behind).
template <class Out>
asio::awaitable<bool> write_out(tcp::socket& dst, std::size_t n, std::uint64_t& count, state& st, Out out) {
  while (n > 0) {
    const ssize_t m = out(n);
    if (m > 0) {
      n -= static_cast<std::size_t>(m);
      count += static_cast<std::uint64_t>(m);
      st.last = clock::now();
      continue;
    }
    if (m < 0 && errno == EINTR) continue;
    if (m < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto [ec] = co_await dst.async_wait(tcp::socket::wait_write, tok);
      if (ec) co_return false;
      continue;
    }
    co_return false;
  }
  co_return true;
}

asio::awaitable<bool> drain_pipe(int pipe_r, tcp::socket& dst, std::size_t n, std::uint64_t& count, state& st) {
  return write_out(dst, n, count, st, [pipe_r, fd = dst.native_handle()](std::size_t left) {
    return ::splice(pipe_r, nullptr, fd, nullptr, left, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  });
}

asio::awaitable<bool> write_all(tcp::socket& dst, const char* data, std::size_t n, std::uint64_t& count, state& st) {
  return write_out(dst, n, count, st, [data, n, fd = dst.native_handle()](std::size_t left) {
    return ::send(fd, data + (n - left), left, MSG_NOSIGNAL | MSG_DONTWAIT);
  });
}

// One direction: src's bytes to dst until EOF or an error.
asio::awaitable<void> pump(tcp::socket& src, tcp::socket& dst, pipe_pool& pool, state& st, std::uint64_t& count) {
  std::unique_ptr<char[]> buf;  // only when no pipe can be had
  for (;;) {
    auto [ec] = co_await src.async_wait(tcp::socket::wait_read, tok);
    if (ec) {
      if (src.is_open() && dst.is_open()) st.r.error = true;
      close_both(src, dst);
      co_return;
    }
    bool eof = false, fail = false;
    for (int round = 0; round < rounds_per_wakeup && !eof && !fail; ++round) {
      pipe_pool::pipe p = pool.take();
      ssize_t n = 0;
      if (p.valid()) {
        n = ::splice(src.native_handle(), nullptr, p.w, nullptr, chunk, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          if (co_await drain_pipe(p.r, dst, static_cast<std::size_t>(n), count, st)) {
            pool.give(p);
          } else {
            pipe_pool::close(p);
            fail = true;
          }
          continue;
        }
        pool.give(p);
      } else {
        if (!buf) buf.reset(new (std::nothrow) char[copy_buffer]);
        if (!buf) {
          fail = true;
          break;
        }
        n = ::recv(src.native_handle(), buf.get(), copy_buffer, MSG_DONTWAIT);
        if (n > 0) {
          if (!co_await write_all(dst, buf.get(), static_cast<std::size_t>(n), count, st)) fail = true;
          continue;
        }
      }
      if (n == 0) {
        eof = true;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;  // drained: wait for more
      } else if (errno != EINTR) {
        fail = true;
      }
    }
    if (fail) {
      st.r.error = st.r.error || (src.is_open() && dst.is_open());
      close_both(src, dst);
      co_return;
    }
    if (eof) {
      boost::system::error_code sec;
      dst.shutdown(tcp::socket::shutdown_send, sec);
      co_return;
    }
  }
}

}  // namespace

pipe_pool::~pipe_pool() {
  for (auto& p : idle_) close(p);
}

pipe_pool::pipe pipe_pool::take() noexcept {
  if (!idle_.empty()) {
    const pipe p = idle_.back();
    idle_.pop_back();
    return p;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return {};
  (void)::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(chunk));  // else the default 64 KiB: splices move less
  return {fds[0], fds[1]};
}

void pipe_pool::give(pipe p) noexcept {
  if (!p.valid()) return;
  if (idle_.size() >= keep) {
    close(p);
    return;
  }
  try {
    idle_.push_back(p);
  } catch (...) {
    close(p);
  }
}

void pipe_pool::close(pipe& p) noexcept {
  if (p.r >= 0) ::close(p.r);
  if (p.w >= 0) ::close(p.w);
  p = {};
}

asio::awaitable<relay_result> relay(tcp::socket& a, tcp::socket& b, pipe_pool& pool,
                                    std::chrono::milliseconds idle_timeout) {
  auto ex = co_await asio::this_coro::executor;
  boost::system::error_code ec;
  a.non_blocking(true, ec);
  b.non_blocking(true, ec);
  state st;
  asio::steady_timer timer(ex);
  st.timer = &timer;
  const auto ended = [&st](const std::exception_ptr&) {
    if (--st.running == 0 && st.timer != nullptr) st.timer->cancel();
  };
  asio::co_spawn(ex, pump(a, b, pool, st, st.r.up), ended);
  // The first pump runs on this frame's state: if the second cannot start
  // (its frame is an allocation), the first is ended and waited for before
  // the failure leaves this frame.
  std::exception_ptr not_started;
  try {
    asio::co_spawn(ex, pump(b, a, pool, st, st.r.down), ended);
  } catch (...) {
    not_started = std::current_exception();
    --st.running;
    close_both(a, b);
  }
  while (st.running > 0) {
    timer.expires_at(st.r.idle_timeout ? clock::time_point::max() : st.last + idle_timeout);
    auto [wec] = co_await timer.async_wait(tok);
    if (st.running == 0) break;
    if (!wec && !st.r.idle_timeout && clock::now() - st.last >= idle_timeout) {
      st.r.idle_timeout = true;
      close_both(a, b);  // the pumps end; wait for them
    }
  }
  st.timer = nullptr;
  close_both(a, b);
  if (not_started) std::rethrow_exception(not_started);
  co_return st.r;
}

}  // namespace customs::daemon::tunnel
