#pragma once
// The service manager's notification protocol (systemd's sd_notify(3)), spoken
// directly: one AF_UNIX datagram per notification, to the socket named by
// $NOTIFY_SOCKET, holding newline-separated VARIABLE=value assignments.
//
//   $NOTIFY_SOCKET   "/run/systemd/notify" (a path) or "@name" (Linux abstract
//                    namespace: '@' stands for the leading NUL byte). Other forms
//                    (vsock:) are not supported and reported.
//   $WATCHDOG_USEC   the watchdog period set by WatchdogSec=; customsd pings
//                    (WATCHDOG=1) every half period. Ignored when $WATCHDOG_PID
//                    is set and names another process.
//
// What customsd sends (see server.cpp):
//   READY=1                         once the listeners and the admin listener are
//                                   bound and the audit trail is open
//   RELOADING=1 + MONOTONIC_USEC=   when a reload starts (SIGHUP or POST /reload);
//   READY=1                         when it ended, applied or rejected (the running
//                                   config stays on a rejected one; STATUS= says so)
//   STOPPING=1                      when the drain starts (SIGTERM/SIGINT) or stop
//   WATCHDOG=1                      every half $WATCHDOG_USEC while the control
//                                   thread and every worker thread answer
//   STATUS=...                      a one-line human summary, with the above
//
// Without $NOTIFY_SOCKET the notifier is disabled and every call does nothing.
// Sending never blocks (MSG_DONTWAIT) and never throws: a manager that went
// away must not stall or stop customsd; a failed send is returned to the
// caller, which logs it.

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace customs::daemon {

class service_notifier {
 public:
  // Disabled.
  service_notifier() = default;
  // Notifies the socket at `address` ("/path" or "@abstract"); throws
  // std::invalid_argument for an address of another form or too long for
  // sockaddr_un, std::system_error when the socket cannot be created.
  explicit service_notifier(std::string_view address,
                            std::chrono::microseconds watchdog_period = std::chrono::microseconds{0});
  ~service_notifier();
  service_notifier(const service_notifier&) = delete;
  service_notifier& operator=(const service_notifier&) = delete;

  // From $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. Without
  // $NOTIFY_SOCKET: a disabled notifier. An unusable value: a disabled
  // notifier and the reason in `problem`.
  [[nodiscard]] static std::shared_ptr<service_notifier> from_environment(std::string& problem);

  [[nodiscard]] bool enabled() const noexcept { return fd_ >= 0; }
  // 0: no watchdog.
  [[nodiscard]] std::chrono::microseconds watchdog_period() const noexcept { return watchdog_; }

  // Sends `state` as one datagram (thread-safe).
  [[nodiscard]] boost::system::error_code send(std::string_view state) const noexcept;

  // CLOCK_MONOTONIC in microseconds, as MONOTONIC_USEC= wants it.
  [[nodiscard]] static std::uint64_t monotonic_usec() noexcept;

 private:
  int fd_ = -1;
  std::string address_;  // sockaddr_un's sun_path bytes (a leading NUL for abstract names)
  std::chrono::microseconds watchdog_{0};
};

}  // namespace customs::daemon
