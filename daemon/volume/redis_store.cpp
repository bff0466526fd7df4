#include "daemon/volume/redis_store.hpp"

#include <pthread.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <atomic>
#include <charconv>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "daemon/log.hpp"
#include "daemon/tls.hpp"
#include "daemon/volume/redis_protocol.hpp"

namespace customs::daemon::volume {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

struct redis_url {
  bool tls = false;
  std::string host;
  std::uint16_t port = 6379;
  unsigned db = 0;
};

redis_url parse_url(const std::string& s) {
  redis_url u;
  std::string_view rest = s;
  if (rest.starts_with("rediss://")) {
    u.tls = true;
    rest.remove_prefix(9);
  } else if (rest.starts_with("redis://")) {
    rest.remove_prefix(8);
  } else {
    throw std::runtime_error("volumes.url: expected redis:// or rediss://");
  }
  const auto slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    const auto db = rest.substr(slash + 1);
    if (!db.empty()) {
      const auto r = std::from_chars(db.data(), db.data() + db.size(), u.db);
      if (r.ec != std::errc{} || r.ptr != db.data() + db.size() || u.db > 1024)
        throw std::runtime_error("volumes.url: the database number is not a number up to 1024");
    }
  }
  std::string_view host = hostport;
  if (hostport.starts_with('[')) {
    const auto close = hostport.find(']');
    if (close == std::string_view::npos) throw std::runtime_error("volumes.url: unclosed [ in the host");
    host = hostport.substr(1, close - 1);
    hostport.remove_prefix(close + 1);
    if (!hostport.empty() && hostport.front() != ':') throw std::runtime_error("volumes.url: malformed host");
    if (!hostport.empty()) hostport.remove_prefix(1);
    else hostport = {};
  } else if (const auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    hostport.remove_prefix(colon + 1);
  } else {
    hostport = {};
  }
  if (!hostport.empty()) {
    const auto r = std::from_chars(hostport.data(), hostport.data() + hostport.size(), u.port);
    if (r.ec != std::errc{} || r.ptr != hostport.data() + hostport.size() || u.port == 0)
      throw std::runtime_error("volumes.url: bad port");
  }
  if (host.empty()) throw std::runtime_error("volumes.url: no host");
  u.host = std::string(host);
  return u;
}

std::string read_password(const std::filesystem::path& p) {
  if (p.empty()) return {};
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error(p.string() + ": cannot read the Redis password file");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// Calls waiting for a reply, at most: past it an add is answered unavailable at
// once (Redis is far behind; the flows follow on_unavailable).
constexpr std::size_t max_in_flight = 65536;

// One request in flight. Touched on the I/O thread only.
struct call {
  counter_store::completion done;
  clock::time_point deadline = clock::time_point::max();
  std::size_t n_ops = 0;
  bool integer_reply = false;  // ZCOUNT
  bool setup = false;          // AUTH / SELECT: nobody waits
  bool finished = false;       // answered (or timed out); a late reply is dropped
  void finish(counter_result r) {
    if (finished) return;
    finished = true;
    if (done) {
      auto d = std::move(done);
      d(std::move(r));
    }
  }
};

counter_result error_result(store_errc e) {
  counter_result r;
  r.error = e;
  return r;
}

class redis_store final : public counter_store {
 public:
  explicit redis_store(const volumes_config& cfg)
      : url_(parse_url(cfg.url)), password_(read_password(cfg.password_file)), budget_(cfg.budget),
        work_(asio::make_work_guard(io_)), reconnect_timer_(io_), budget_timer_(io_) {
    if (url_.tls) {
      ssl_ = make_client_tls(cfg.tls ? cfg.tls->ca : std::filesystem::path());
      if (cfg.tls && !cfg.tls->cert.empty()) {
        ssl_->use_certificate_chain_file(cfg.tls->cert.string());
        ssl_->use_private_key_file(cfg.tls->key.string(), asio::ssl::context::pem);
      }
    }
    thread_ = std::thread([this] { io_.run(); });
    pthread_setname_np(thread_.native_handle(), "customs-redis");
    asio::post(io_, [this] { connect(); });
  }
  ~redis_store() override { close(); }

  counter_result add(const std::vector<counter_op>& ops) override {
    std::promise<counter_result> answer;
    auto got = answer.get_future();
    add_async(ops, [&answer](counter_result r) { answer.set_value(std::move(r)); });
    return got.get();  // the budget timer, a dropped connection or close() answers
  }

  void add_async(std::vector<counter_op> ops, completion done) override {
    auto c = std::make_shared<call>();
    c->n_ops = ops.size();
    c->done = std::move(done);
    c->deadline = clock::now() + budget_;
    enqueue(std::move(c), redis::eval_command(ops));
  }

  bool asynchronous() const noexcept override { return true; }

  bool available() const noexcept override { return available_.load(); }

  void on_available(std::function<void()> f) noexcept override {
    std::lock_guard lock(available_mutex_);
    on_available_ = std::move(f);
  }

  std::error_code count(const std::string& key, std::int64_t expire_before, std::uint64_t& out) override {
    // ZCOUNT key (expire_before +inf: the members that still count.
    std::promise<counter_result> answer;
    auto got = answer.get_future();
    auto c = std::make_shared<call>();
    c->integer_reply = true;
    c->deadline = clock::now() + std::chrono::seconds(5);
    c->done = [&answer](counter_result r) { answer.set_value(std::move(r)); };
    enqueue(std::move(c), redis::command({"ZCOUNT", std::string(redis::key_prefix) + key,
                                          expire_before > 0 ? std::to_string(expire_before) : std::string("-inf"),
                                          "+inf"}));
    const counter_result r = got.get();
    if (r.error) return r.error;
    out = r.counts.empty() ? 0 : r.counts[0].after;
    return {};
  }

  std::string_view backend() const noexcept override { return "redis"; }

  [[nodiscard]] bool on_io_thread() const noexcept { return std::this_thread::get_id() == thread_.get_id(); }

  void close() noexcept override {
    std::lock_guard lock(close_mutex_);
    if (closed_) return;
    closed_ = true;
    asio::post(io_, [this] {
      stopping_ = true;
      reconnect_timer_.cancel();
      budget_timer_.cancel();
      drop("closing");
      work_.reset();
    });
    thread_.join();
  }

 private:
  // Any thread: hands a call to the I/O thread, or answers it at once when the
  // store is closed. Posts happen under close_mutex_, so every call posted
  // before close() is answered by its drop("closing").
  void enqueue(std::shared_ptr<call> c, std::string cmd) {
    {
      std::lock_guard lock(close_mutex_);
      if (!closed_) {
        asio::post(io_, [this, c = std::move(c), cmd = std::move(cmd)]() mutable { submit(c, std::move(cmd)); });
        return;
      }
    }
    c->finish(error_result(store_errc::unavailable));
  }

  // ---- on the I/O thread ----------------------------------------------------

  void submit(const std::shared_ptr<call>& c, std::string cmd) {
    if (!ready_ || pending_.size() >= max_in_flight) {
      c->finish(error_result(store_errc::unavailable));
      return;
    }
    if (clock::now() >= c->deadline) {
      c->finish(error_result(store_errc::timeout));
      return;
    }
    pending_.push_back(c);
    arm_budget(c->deadline);
    write(std::move(cmd));
  }

  // The budget: one timer at the earliest deadline of the calls waiting. When it
  // fires, every call past its deadline is answered `timeout`; it stays in
  // pending_ (its reply, if one comes, is read and dropped).
  void arm_budget(clock::time_point deadline) {
    if (budget_armed_ && deadline >= budget_at_) return;
    budget_armed_ = true;
    budget_at_ = deadline;
    budget_timer_.expires_at(deadline);
    budget_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;  // re-armed or closing
      budget_armed_ = false;
      expire_late();
    });
  }

  void expire_late() {
    const auto now = clock::now();
    auto next = clock::time_point::max();
    for (const auto& c : pending_) {
      if (c->finished || c->setup) continue;
      if (c->deadline <= now) {
        c->finish(error_result(store_errc::timeout));
      } else {
        next = std::min(next, c->deadline);
      }
    }
    if (next != clock::time_point::max()) arm_budget(next);
  }

  void write(std::string cmd) {
    outbox_ += cmd;
    if (writing_) return;
    flush();
  }

  void flush() {
    if (outbox_.empty() || writing_ || !open_) return;
    writing_ = true;
    sending_ = std::move(outbox_);
    outbox_.clear();
    auto done = [this, gen = generation_](boost::system::error_code ec, std::size_t) {
      if (gen != generation_) return;
      writing_ = false;
      if (ec) return drop("write: " + ec.message());
      flush();
    };
    if (tls_) asio::async_write(*tls_, asio::buffer(sending_), done);
    else asio::async_write(*plain_, asio::buffer(sending_), done);
  }

  void read() {
    auto done = [this, gen = generation_](boost::system::error_code ec, std::size_t n) {
      if (gen != generation_) return;
      if (ec) return drop("read: " + ec.message());
      if (!reader_->feed(std::string_view(inbox_.data(), n))) return drop("reply: " + reader_->error());
      redis::reply rep;
      while (reader_->next(rep)) {
        if (pending_.empty()) return drop("a reply nobody asked for");
        auto c = std::move(pending_.front());
        pending_.pop_front();
        if (c->setup) {
          if (rep.k == redis::reply::kind::error) return drop("setup: " + rep.text);
          continue;
        }
        if (c->finished) continue;  // answered `timeout` already: this reply is late
        counter_result r;
        if (c->integer_reply) {
          if (rep.k != redis::reply::kind::integer || rep.integer < 0) {
            r.error = store_errc::unavailable;
          } else {
            policy::volume_count v;
            v.after = static_cast<std::uint64_t>(rep.integer);
            r.counts.push_back(v);
          }
        } else if (rep.k == redis::reply::kind::error) {
          if (!error_logged_) log_line(log_level::error, "volumes_redis_error").kv("error", rep.text);
          error_logged_ = true;
          // Redis answered this call with an error (a key of another type,
          // out of memory, a replica): the flow follows on_unavailable as for
          // any error; a journal merge tells it from a lost connection.
          r.error = store_errc::refused;
        } else {
          r = redis::decode_add_reply(rep, c->n_ops);
        }
        c->finish(std::move(r));
      }
      if (!reader_->error().empty()) return drop("reply: " + reader_->error());
      read();
    };
    if (tls_) tls_->async_read_some(asio::buffer(inbox_), done);
    else plain_->async_read_some(asio::buffer(inbox_), done);
  }

  void connect() {
    if (stopping_) return;
    ++generation_;
    reader_ = std::make_unique<redis::reply_reader>();
    tcp::resolver resolver(io_);
    boost::system::error_code ec;
    const auto endpoints = resolver.resolve(url_.host, std::to_string(url_.port), ec);
    if (ec) return retry("resolve: " + ec.message());
    if (ssl_) {
      tls_ = std::make_unique<asio::ssl::stream<beast::tcp_stream>>(io_, *ssl_);
      if (!prepare_client_tls(*tls_, url_.host)) return retry("TLS setup failed");
    } else {
      plain_ = std::make_unique<beast::tcp_stream>(io_);
    }
    auto& layer = tls_ ? beast::get_lowest_layer(*tls_) : *plain_;
    layer.expires_after(std::chrono::seconds(5));
    layer.async_connect(endpoints, [this, gen = generation_](boost::system::error_code e, const tcp::endpoint&) {
      if (gen != generation_) return;
      if (e) return retry("connect: " + e.message());
      (tls_ ? beast::get_lowest_layer(*tls_) : *plain_).expires_never();
      boost::system::error_code ignored;
      (tls_ ? beast::get_lowest_layer(*tls_) : *plain_).socket().set_option(tcp::no_delay(true), ignored);
      if (!tls_) return on_open();
      beast::get_lowest_layer(*tls_).expires_after(std::chrono::seconds(5));
      tls_->async_handshake(asio::ssl::stream_base::client, [this, gen](boost::system::error_code h) {
        if (gen != generation_) return;
        if (h) return retry("TLS handshake: " + h.message());
        beast::get_lowest_layer(*tls_).expires_never();
        on_open();
      });
    });
  }

  void on_open() {
    open_ = true;
    std::string setup;
    if (!password_.empty()) setup += redis::command({"AUTH", password_});
    if (url_.db != 0) setup += redis::command({"SELECT", std::to_string(url_.db)});
    if (!setup.empty()) {
      const std::size_t n = (password_.empty() ? 0 : 1) + (url_.db != 0 ? 1 : 0);
      for (std::size_t i = 0; i < n; ++i) {
        auto c = std::make_shared<call>();
        c->setup = true;
        pending_.push_back(std::move(c));
      }
      write(std::move(setup));
    }
    ready_ = true;
    available_ = true;
    if (was_down_) log_line(log_level::info, "volumes_redis_connected").kv("host", url_.host).kv("port", url_.port);
    was_down_ = false;
    error_logged_ = false;
    read();
    std::function<void()> f;
    {
      std::lock_guard lock(available_mutex_);
      f = on_available_;
    }
    if (f) {
      try {
        f();
      } catch (...) {
      }
    }
  }

  void drop(const std::string& why) {
    const bool was_ready = ready_;
    ready_ = false;
    available_ = false;
    open_ = false;
    writing_ = false;
    outbox_.clear();
    ++generation_;
    boost::system::error_code ignored;
    if (tls_) beast::get_lowest_layer(*tls_).socket().close(ignored);
    if (plain_) plain_->socket().close(ignored);
    auto waiting = std::move(pending_);
    pending_.clear();
    for (auto& c : waiting) c->finish(error_result(store_errc::unavailable));
    if (stopping_) return;
    if (was_ready) log_line(log_level::error, "volumes_redis_down").kv("error", why);
    retry(why);
  }

  void retry(const std::string& why) {
    if (stopping_) return;
    if (!was_down_) log_line(log_level::error, "volumes_redis_unreachable").kv("error", why);
    was_down_ = true;
    ready_ = false;
    available_ = false;
    open_ = false;
    reconnect_timer_.expires_after(std::chrono::milliseconds(250));
    reconnect_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) connect();
    });
  }

  redis_url url_;
  std::string password_;
  duration budget_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::shared_ptr<asio::ssl::context> ssl_;
  std::thread thread_;
  std::mutex close_mutex_;
  bool closed_ = false;  // under close_mutex_
  std::atomic<bool> available_{false};  // ready_, for other threads
  std::mutex available_mutex_;
  std::function<void()> on_available_;  // under available_mutex_

  // I/O thread only.
  asio::steady_timer reconnect_timer_;
  asio::steady_timer budget_timer_;
  clock::time_point budget_at_;
  bool budget_armed_ = false;
  std::unique_ptr<beast::tcp_stream> plain_;
  std::unique_ptr<asio::ssl::stream<beast::tcp_stream>> tls_;
  std::unique_ptr<redis::reply_reader> reader_;
  std::deque<std::shared_ptr<call>> pending_;  // in the order of their replies
  std::string outbox_, sending_;
  std::array<char, 16384> inbox_{};
  std::uint64_t generation_ = 0;
  bool ready_ = false, open_ = false, writing_ = false, stopping_ = false, was_down_ = false, error_logged_ = false;
};

}  // namespace

std::shared_ptr<counter_store> open_redis_store(const volumes_config& cfg) {
  // The last reference may be dropped on the store's own I/O thread (a
  // completion that held a flow's snapshot past a shutdown): closing there
  // would join that thread from itself, and destroy the io_context its run()
  // is still in. Such a store is closed and destroyed on a thread of its own,
  // which waits for the I/O thread to leave run().
  return std::shared_ptr<counter_store>(new redis_store(cfg), [](counter_store* p) noexcept {
    auto* r = static_cast<redis_store*>(p);
    if (r->on_io_thread()) {
      try {
        std::thread([r] { delete r; }).detach();
        return;
      } catch (...) {
        // No thread to close it on: the store is left open (leaked) rather
        // than joined from itself.
        return;
      }
    }
    delete r;
  });
}

}  // namespace customs::daemon::volume
