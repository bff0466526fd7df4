#pragma once
// Threads that inspect large request bodies, so that scanning a body of
// megabytes never holds up the other flows of the worker thread that read it:
// the flow's request phase goes pending (filter.hpp) while its body is
// inspected here, and the worker serves its other flows meanwhile.
//
// Bounded: at most max_jobs jobs are queued or running; past it try_post()
// refuses (the caller answers 503 and counts it, see enforce_filter.cpp).

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>

namespace customs::daemon::enforce {

class inspect_pool {
 public:
  // Request bodies of at least this many bytes are inspected on the pool.
  static constexpr std::size_t offload_bytes = 256u << 10;

  inspect_pool(unsigned threads, std::size_t max_jobs);
  ~inspect_pool();
  inspect_pool(const inspect_pool&) = delete;
  inspect_pool& operator=(const inspect_pool&) = delete;

  // Runs `job` on a pool thread; false (and `job` is not run) when max_jobs are
  // queued or running, or after stop(). `job` must not throw.
  [[nodiscard]] bool try_post(std::function<void()> job);
  // Waits for the queued and running jobs; later try_post() calls refuse.
  void stop();

  [[nodiscard]] std::size_t jobs() const noexcept { return jobs_.load(); }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::atomic<std::size_t> jobs_{0};
  std::atomic<bool> stopped_{false};
  std::size_t max_jobs_;
};

}  // namespace customs::daemon::enforce
