// The fake provider's server: one io_context on one thread, one C++20 coroutine
// per connection. The bytes of each reply come from provider_wire.cpp; this file
// frames them (HTTP/1.1, chunked), paces them and applies the scripted faults.
//
// Stopping: the destructor posts a shutdown that closes the acceptor, cancels
// every connection's timer and closes every socket, so every pending operation
// (stalled reads included) completes with an error, every coroutine returns,
// io_context::run() runs out of work and the thread is joined.

#include "tests/support/fake_provider.hpp"
#include "tests/support/provider_wire.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

namespace customs::testing {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
constexpr std::size_t max_header_bytes = 64 * 1024;
constexpr std::size_t max_body_bytes = 16 * 1024 * 1024;
constexpr std::chrono::milliseconds default_slow_interval{50};

std::uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::uint64_t(ts.tv_sec) * 1'000'000'000u + std::uint64_t(ts.tv_nsec);
}

// An HTTP/1.1 chunk: size in hex, CRLF, data, CRLF, in one buffer so that it
// leaves in one write (an SSL stream writes one buffer per record).
std::string http_chunk(std::string_view data) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string size;
  for (std::size_t n = data.size(); n > 0; n >>= 4) size.insert(size.begin(), hex[n & 15]);
  std::string out;
  out.reserve(size.size() + data.size() + 4);
  out += size;
  out += "\r\n";
  out += data;
  out += "\r\n";
  return out;
}

}  // namespace

struct fake_provider::impl {
  explicit impl(fake_provider_options o) : opts(std::move(o)) {}

  fake_provider_options opts;
  net::io_context ioc{1};
  std::optional<net::ssl::context> tls;
  tcp::acceptor acceptor{ioc};
  std::uint16_t port = 0;
  std::thread thread;

  // Shared with the test thread.
  mutable std::mutex mutex;
  mutable std::condition_variable seen;
  script current;                        // guarded by mutex
  std::vector<recorded_request> recorded;  // guarded by mutex
  std::size_t request_count = 0;         // guarded by mutex
  std::atomic<std::size_t> accepted{0};
  std::atomic<std::size_t> stream_bytes{0};      // body bytes of streams written so far
  std::atomic<std::size_t> streams_finished{0};  // streams whose last chunk was written

  // I/O thread only.
  bool stopping = false;
  std::uint64_t serial = 0;
  struct live_connection {
    tcp::socket* socket;
    net::steady_timer* timer;
  };
  std::map<std::size_t, live_connection> live;

  // Keeps a connection in `live` for its lifetime, so shutdown can close it.
  struct registration {
    registration(impl& i, std::size_t index, tcp::socket& s, net::steady_timer& t)
        : self(i), key(index) {
      self.live.emplace(key, live_connection{&s, &t});
      if (self.stopping) {
        boost::system::error_code ec;
        s.close(ec);
      }
    }
    ~registration() { self.live.erase(key); }
    registration(const registration&) = delete;
    registration& operator=(const registration&) = delete;
    impl& self;
    std::size_t key;
  };

  void shutdown() {
    stopping = true;
    boost::system::error_code ec;
    acceptor.close(ec);
    for (auto& [index, c] : live) {
      c.timer->cancel();
      c.socket->close(ec);
    }
  }

  // Records the request and returns the script it is answered with.
  script on_request(const http::request<http::string_body>& req, std::size_t connection) {
    std::lock_guard lock(mutex);
    if (recorded.size() < opts.max_recorded_requests) {
      recorded_request r;
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      for (const auto& f : req.base())
        r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      r.body = req.body();
      r.connection_index = connection;
      recorded.push_back(std::move(r));
    }
    ++request_count;
    seen.notify_all();
    return current;
  }

  net::awaitable<void> accept_loop();
  net::awaitable<void> connection(tcp::socket socket, std::size_t index);
  template <class Stream>
  net::awaitable<void> serve(Stream& stream, net::steady_timer& timer, std::size_t index);
  template <class Stream>
  net::awaitable<bool> send_plain(Stream& stream, detail::planned_reply& plan, const script& s,
                                  bool keep_alive);
  template <class Stream>
  net::awaitable<bool> send_stream(Stream& stream, net::steady_timer& timer,
                                   detail::planned_reply& plan, const script& s, bool keep_alive);
  template <class Stream>
  net::awaitable<void> stall(Stream& stream);
  template <class Stream>
  void reset(Stream& stream);
};

namespace {

template <class Message>
void add_common_fields(Message& m, const script& s, std::string_view content_type,
                       bool keep_alive) {
  m.set(http::field::server, "customs-fake-provider");
  m.set(http::field::content_type, content_type);
  for (const auto& [name, value] : s.extra_headers) m.insert(name, value);
  m.keep_alive(keep_alive);
}

}  // namespace

net::awaitable<void> fake_provider::impl::accept_loop() {
  net::steady_timer backoff(ioc);
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    if (stopping) co_return;
    if (ec) {
      // Out of descriptors and the like: wait a little instead of spinning.
      backoff.expires_after(std::chrono::milliseconds(10));
      co_await backoff.async_wait(use_tuple);
      if (stopping) co_return;
      continue;
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    const std::size_t index = accepted.fetch_add(1);
    net::co_spawn(ioc, connection(std::move(socket), index), net::detached);
  }
}

net::awaitable<void> fake_provider::impl::connection(tcp::socket socket, std::size_t index) {
  net::steady_timer timer(ioc);
  if (tls) {
    net::ssl::stream<tcp::socket> stream(std::move(socket), *tls);
    registration reg(*this, index, stream.next_layer(), timer);
    auto [ec] = co_await stream.async_handshake(net::ssl::stream_base::server, use_tuple);
    if (!ec) co_await serve(stream, timer, index);
  } else {
    registration reg(*this, index, socket, timer);
    co_await serve(socket, timer, index);
  }
}

template <class Stream>
net::awaitable<void> fake_provider::impl::serve(Stream& stream, net::steady_timer& timer,
                                                std::size_t index) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(max_header_bytes);
    parser.body_limit(max_body_bytes);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple);
    if (stopping) co_return;
    if (ec) {
      // A request that does not parse gets a plain 400 and the connection ends;
      // a closed or reset connection just ends.
      if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
          ec != http::error::end_of_stream && ec != http::error::partial_message) {
        const unsigned status = ec == http::error::body_limit ? 413 : 400;
        http::response<http::string_body> res{static_cast<http::status>(status), 11};
        add_common_fields(res, script{}, "application/json", false);
        res.body() = detail::error_body(detail::error_shape::openai, status, ec.message());
        res.prepare_payload();
        co_await http::async_write(stream, res, use_tuple);
      }
      co_return;
    }
    const auto& req = parser.get();
    const script s = on_request(req, index);
    const bool keep_alive = req.keep_alive();
    if (s.what == fault::stall_before_headers) {
      co_await stall(stream);
      co_return;
    }
    detail::planned_reply plan = detail::plan_reply(
        {req.method_string(), req.target(), req.body()}, s, ++serial);
    const bool ok = plan.streamed ? co_await send_stream(stream, timer, plan, s, keep_alive)
                                  : co_await send_plain(stream, plan, s, keep_alive);
    if (!ok || stopping) co_return;
    if (!keep_alive) {
      boost::system::error_code ignored;
      beast::get_lowest_layer(stream).shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
  }
}

template <class Stream>
net::awaitable<bool> fake_provider::impl::send_plain(Stream& stream, detail::planned_reply& plan,
                                                     const script& s, bool keep_alive) {
  if (s.what == fault::malformed_sse) plan.body.resize(plan.body.size() / 2);
  http::response<http::string_body> res{static_cast<http::status>(plan.status), 11};
  add_common_fields(res, s, plan.content_type, keep_alive);
  res.body() = std::move(plan.body);
  res.prepare_payload();

  if (s.what == fault::stall_mid_stream || s.what == fault::reset_mid_stream) {
    // The header and half of the promised body, then the fault.
    std::ostringstream os;
    os << res.base();
    std::string bytes = os.str();
    bytes.append(res.body(), 0, res.body().size() / 2);
    auto [ec, n] = co_await net::async_write(stream, net::buffer(bytes), use_tuple);
    if (!ec) {
      if (s.what == fault::stall_mid_stream) co_await stall(stream);
      else reset(stream);
    }
    co_return false;
  }
  auto [ec, n] = co_await http::async_write(stream, res, use_tuple);
  co_return !ec;
}

template <class Stream>
net::awaitable<bool> fake_provider::impl::send_stream(Stream& stream, net::steady_timer& timer,
                                                      detail::planned_reply& plan, const script& s,
                                                      bool keep_alive) {
  http::response<http::empty_body> res{static_cast<http::status>(plan.status), 11};
  add_common_fields(res, s, plan.content_type, keep_alive);
  res.set(http::field::cache_control, "no-cache");
  res.chunked(true);
  http::response_serializer<http::empty_body> sr{res};
  if (auto [ec, n] = co_await http::async_write_header(stream, sr, use_tuple); ec) co_return false;

  const bool mid_fault = s.what == fault::stall_mid_stream || s.what == fault::reset_mid_stream;
  const std::size_t fault_at = std::min(s.fault_after_events, plan.events.size());
  auto interval = s.event_interval;
  if (s.what == fault::slow_events && interval.count() == 0) interval = default_slow_interval;

  const auto write = [&](std::string_view data) -> net::awaitable<bool> {
    const std::string chunk = http_chunk(data);
    auto [ec, n] = co_await net::async_write(stream, net::buffer(chunk), use_tuple);
    stream_bytes.fetch_add(n);
    co_return !ec && !stopping;
  };
  const auto fault_now = [&]() -> net::awaitable<void> {
    if (s.what == fault::stall_mid_stream) co_await stall(stream);
    else reset(stream);
  };

  if (mid_fault && fault_at == 0) {
    co_await fault_now();
    co_return false;
  }
  for (std::size_t i = 0; i < plan.events.size(); ++i) {
    if (i > 0 && interval.count() > 0) {
      timer.expires_after(interval);
      co_await timer.async_wait(use_tuple);
      if (stopping) co_return false;
    }
    const std::string event = s.stamp_send_time ? detail::stamped(plan.events[i], monotonic_ns())
                                                : plan.events[i].bytes;
    if (s.split_at_byte && event.size() >= 2) {
      const std::size_t at = std::clamp<std::size_t>(*s.split_at_byte, 1, event.size() - 1);
      if (!co_await write(std::string_view(event).substr(0, at))) co_return false;
      if (!co_await write(std::string_view(event).substr(at))) co_return false;
    } else if (!co_await write(event)) {
      co_return false;
    }
    if (i + 1 == fault_at) {
      if (s.what == fault::malformed_sse && !co_await write(plan.malformed_event)) co_return false;
      if (mid_fault) {
        co_await fault_now();
        co_return false;
      }
    }
  }
  auto [ec, n] = co_await net::async_write(stream, net::buffer("0\r\n\r\n", 5), use_tuple);
  stream_bytes.fetch_add(n);
  if (!ec) streams_finished.fetch_add(1);
  co_return !ec;
}

template <class Stream>
net::awaitable<void> fake_provider::impl::stall(Stream& stream) {
  // Reads (and drops) whatever comes until the client closes the connection or
  // shutdown closes the socket; writes nothing.
  char sink[512];
  for (;;) {
    auto [ec, n] = co_await stream.async_read_some(net::buffer(sink), use_tuple);
    if (ec || stopping) co_return;
  }
}

template <class Stream>
void fake_provider::impl::reset(Stream& stream) {
  // SO_LINGER with a zero timeout makes close() send RST instead of FIN.
  auto& socket = beast::get_lowest_layer(stream);
  boost::system::error_code ignored;
  socket.set_option(net::socket_base::linger(true, 0), ignored);
  socket.close(ignored);
}

fake_provider::fake_provider(fake_provider_options opts)
    : impl_(std::make_unique<impl>(std::move(opts))) {
  auto& i = *impl_;
  if (i.opts.tls_cert && i.opts.tls_key) {
    i.tls.emplace(net::ssl::context::tls_server);
    i.tls->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                       net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                       net::ssl::context::no_tlsv1_1);
    i.tls->use_certificate_chain_file(i.opts.tls_cert->string());
    i.tls->use_private_key_file(i.opts.tls_key->string(), net::ssl::context::pem);
  }
  const tcp::endpoint endpoint(net::ip::make_address(i.opts.address), i.opts.port);
  i.acceptor.open(endpoint.protocol());
  i.acceptor.set_option(net::socket_base::reuse_address(true));
  i.acceptor.bind(endpoint);
  i.acceptor.listen();
  i.port = i.acceptor.local_endpoint().port();
  net::co_spawn(i.ioc, i.accept_loop(), net::detached);
  i.thread = std::thread([&i] { i.ioc.run(); });
}

fake_provider::~fake_provider() {
  net::post(impl_->ioc, [i = impl_.get()] { i->shutdown(); });
  impl_->thread.join();
}

std::uint16_t fake_provider::port() const { return impl_->port; }

void fake_provider::set_script(script s) {
  std::lock_guard lock(impl_->mutex);
  impl_->current = std::move(s);
}

std::vector<recorded_request> fake_provider::requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->recorded;
}

std::size_t fake_provider::request_count() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->request_count;
}

std::size_t fake_provider::connections_accepted() const { return impl_->accepted.load(); }
std::size_t fake_provider::stream_bytes_sent() const { return impl_->stream_bytes.load(); }
std::size_t fake_provider::streams_finished() const { return impl_->streams_finished.load(); }

bool fake_provider::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->seen.wait_for(lock, timeout, [&] { return impl_->request_count >= n; });
}

}  // namespace customs::testing
