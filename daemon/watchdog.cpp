#include "daemon/watchdog.hpp"

namespace customs::daemon {

watchdog::watchdog(const boost::asio::any_io_executor& ex, boost::asio::ip::tcp::socket& socket)
    : state_(std::make_shared<state>()), timer_(ex) {
  state_->socket = &socket;
  state_->timer = &timer_;
}

watchdog::~watchdog() {
  // A wait that already completed may still be queued: it finds these null.
  state_->socket = nullptr;
  state_->timer = nullptr;
}

void watchdog::arm(const std::shared_ptr<state>& st, clock::time_point t) {
  st->armed = t;
  st->timer->expires_at(t);
  st->timer->async_wait([st](boost::system::error_code ec) {
    if (ec || st->timer == nullptr) return;  // re-armed earlier, or gone
    st->armed = clock::time_point::max();
    if (st->deadline == clock::time_point::max()) return;
    if (clock::now() >= st->deadline) {
      st->fired = true;
      boost::system::error_code ignored;
      st->socket->cancel(ignored);
      return;
    }
    arm(st, st->deadline);
  });
}

void watchdog::expires_at(clock::time_point t) {
  state_->deadline = t;
  state_->fired = false;
  if (t < state_->armed) arm(state_, t);
}

void watchdog::expires_never() noexcept {
  state_->deadline = clock::time_point::max();
  state_->fired = false;
}

bool watchdog::fired() const noexcept { return state_->fired; }

}  // namespace customs::daemon
