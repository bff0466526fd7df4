#pragma once
// A lazy deadline for the operations on one socket. expires_at() only moves a
// number: the timer underneath is armed for the earliest deadline and, when it
// fires, either cancels the socket's pending operations (the deadline passed)
// or re-arms itself for the deadline as it now stands. A stream of fast reads
// and writes thus costs no timer operation per read or write (Beast's
// tcp_stream arms and cancels a timer for each), about one per timeout period.
//
// The caller checks fired() when an operation fails with operation_aborted.
// Single-threaded: use it on the socket's thread only.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>

namespace customs::daemon {

class watchdog {
 public:
  using clock = std::chrono::steady_clock;

  watchdog(const boost::asio::any_io_executor& ex, boost::asio::ip::tcp::socket& socket);
  ~watchdog();
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  // Operations started from now on must end by t.
  void expires_at(clock::time_point t);
  void expires_never() noexcept;
  // The deadline set by the last expires_at passed and the socket was cancelled.
  [[nodiscard]] bool fired() const noexcept;

 private:
  struct state {
    boost::asio::ip::tcp::socket* socket = nullptr;  // null once the watchdog is gone
    boost::asio::steady_timer* timer = nullptr;
    clock::time_point deadline = clock::time_point::max();
    clock::time_point armed = clock::time_point::max();  // end of the pending wait; max: none
    bool fired = false;
  };
  static void arm(const std::shared_ptr<state>& st, clock::time_point t);

  std::shared_ptr<state> state_;
  boost::asio::steady_timer timer_;
};

}  // namespace customs::daemon
