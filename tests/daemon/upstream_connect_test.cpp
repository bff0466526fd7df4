// Opening upstream connections (daemon/upstream.cpp): a connect that cannot
// even open a socket says why.
#include "daemon/upstream.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <optional>

#include <catch2/catch.hpp>

using namespace customs::daemon;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

connect_result run_connect(asio::io_context& ioc, const upstream_target& target) {
  std::optional<connect_result> out;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        out = co_await connect_upstream(target, std::chrono::steady_clock::now() + std::chrono::seconds(5));
      },
      asio::detached);
  ioc.restart();
  ioc.run();
  REQUIRE(out.has_value());
  return std::move(*out);
}

// The descriptor number the next open would get (the lowest free one).
int lowest_free_fd() {
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  ::close(fd);
  return fd;
}

// Lowers the soft open-file limit for its lifetime.
class fd_limit {
 public:
  explicit fd_limit(rlim_t soft) {
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved_) == 0);
    rlimit lowered = saved_;
    lowered.rlim_cur = soft;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0);
  }
  ~fd_limit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  fd_limit(const fd_limit&) = delete;
  fd_limit& operator=(const fd_limit&) = delete;

 private:
  rlimit saved_{};
};

// A plain-TCP target on loopback.
upstream_target loopback_target(std::uint16_t port) {
  upstream_target target;
  target.url.host = "127.0.0.1";
  target.url.port = port;
  return target;
}

}  // namespace

TEST_CASE("upstream connect: a listening upstream connects") {
  asio::io_context ioc;
  tcp::acceptor acc(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const upstream_target target = loopback_target(acc.local_endpoint().port());
  const auto r = run_connect(ioc, target);
  CHECK(r.error == connect_error::none);
  CHECK(r.detail.empty());
  CHECK(r.conn != nullptr);
}

TEST_CASE("upstream connect: a refused connect is unreachable and names the address") {
  asio::io_context ioc;
  std::uint16_t port = 0;
  {
    tcp::acceptor acc(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = acc.local_endpoint().port();
  }  // closed: nothing listens there now
  const upstream_target target = loopback_target(port);
  const auto r = run_connect(ioc, target);
  CHECK(r.error == connect_error::unreachable);
  CHECK(r.conn == nullptr);
  CHECK_THAT(r.detail, Catch::Contains("connect 127.0.0.1:" + std::to_string(port)));
  CHECK_THAT(r.detail, Catch::Contains("refused"));
}

TEST_CASE("upstream connect: out of file descriptors is reported as such, not as a cancelled connect") {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizer runtime needs descriptors of its own (UBSan's vptr check
  // opens a pipe to probe memory) and reports a false "invalid vptr" when none
  // is left; this case runs in the release build only.
  WARN("skipped under the sanitizers: they need file descriptors themselves");
  return;
#endif
  asio::io_context ioc;
  tcp::acceptor acc(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const upstream_target target = loopback_target(acc.local_endpoint().port());
  connect_result r;
  {
    // Every descriptor number below the limit is taken: the next socket fails
    // with EMFILE.
    const fd_limit limit(static_cast<rlim_t>(lowest_free_fd()));
    r = run_connect(ioc, target);
  }
  CHECK(r.error == connect_error::unreachable);
  CHECK(r.conn == nullptr);
  CHECK_THAT(r.detail, Catch::Contains("cannot open a socket"));
  CHECK_THAT(r.detail, Catch::Contains("Too many open files"));
  CHECK_THAT(r.detail, !Catch::Contains("canceled"));
}
