#include "daemon/enforce/inspect_pool.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

namespace customs::daemon::enforce {

struct inspect_pool::impl {
  explicit impl(unsigned threads) : pool(threads == 0 ? 1 : threads) {}
  boost::asio::thread_pool pool;
};

inspect_pool::inspect_pool(unsigned threads, std::size_t max_jobs)
    : impl_(std::make_unique<impl>(threads)), max_jobs_(max_jobs == 0 ? 1 : max_jobs) {}

inspect_pool::~inspect_pool() { stop(); }

bool inspect_pool::try_post(std::function<void()> job) {
  if (stopped_.load()) return false;
  std::size_t n = jobs_.load();
  do {
    if (n >= max_jobs_) return false;
  } while (!jobs_.compare_exchange_weak(n, n + 1));
  boost::asio::post(impl_->pool, [this, job = std::move(job)]() {
    job();
    jobs_.fetch_sub(1);
  });
  return true;
}

void inspect_pool::stop() {
  stopped_.store(true);
  impl_->pool.join();
}

}  // namespace customs::daemon::enforce
