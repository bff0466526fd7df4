#include "daemon/notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <system_error>

namespace customs::daemon {

service_notifier::service_notifier(std::string_view address, std::chrono::microseconds watchdog_period)
    : watchdog_(watchdog_period) {
  if (address.size() < 2 || (address[0] != '/' && address[0] != '@')) {
    throw std::invalid_argument("NOTIFY_SOCKET '" + std::string(address) +
                                "': expected an absolute path or an abstract name starting with '@'");
  }
  if (address.size() > sizeof(sockaddr_un::sun_path) - 1) {
    throw std::invalid_argument("NOTIFY_SOCKET '" + std::string(address) + "': too long for a Unix socket address");
  }
  address_ = std::string(address);
  if (address_[0] == '@') address_[0] = '\0';
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::system_error(errno, std::system_category(), "notify socket");
}

service_notifier::~service_notifier() {
  if (fd_ >= 0) ::close(fd_);
}

std::shared_ptr<service_notifier> service_notifier::from_environment(std::string& problem) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket == nullptr || *socket == 0) return std::make_shared<service_notifier>();
  std::chrono::microseconds period{0};
  if (const char* usec = std::getenv("WATCHDOG_USEC"); usec != nullptr && *usec != 0) {
    bool ours = true;
    if (const char* pid = std::getenv("WATCHDOG_PID"); pid != nullptr && *pid != 0) {
      long p = 0;
      const auto r = std::from_chars(pid, pid + std::strlen(pid), p);
      ours = r.ec == std::errc{} && p == static_cast<long>(::getpid());
    }
    std::uint64_t v = 0;
    const auto r = std::from_chars(usec, usec + std::strlen(usec), v);
    if (r.ec != std::errc{} || *r.ptr != 0 || v == 0) {
      problem = "WATCHDOG_USEC '" + std::string(usec) + "' is not a positive number: no watchdog pings";
    } else if (ours) {
      period = std::chrono::microseconds(v);
    }
  }
  try {
    return std::make_shared<service_notifier>(socket, period);
  } catch (const std::exception& e) {
    problem = e.what();
    return std::make_shared<service_notifier>();
  }
}

boost::system::error_code service_notifier::send(std::string_view state) const noexcept {
  if (fd_ < 0) return {};
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, address_.data(), address_.size());
  // A path is NUL-terminated within the length; an abstract name is exactly
  // its bytes (a trailing NUL would be part of the name).
  const std::size_t len = offsetof(sockaddr_un, sun_path) + address_.size() + (address_[0] == '\0' ? 0 : 1);
  for (;;) {
    const ssize_t n = ::sendto(fd_, state.data(), state.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                               reinterpret_cast<const sockaddr*>(&un), static_cast<socklen_t>(len));
    if (n >= 0) return {};
    if (errno == EINTR) continue;
    return {errno, boost::system::system_category()};
  }
}

std::uint64_t service_notifier::monotonic_usec() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace customs::daemon
