// Volume counters (not a test): what counting costs a flow, in one run, for
//   none    the same rule set without counters (baseline)
//   sqlite  the embedded store
//   redis   a redis-server on loopback (started by the bench, or --redis URL)
// and for each: CPU per flow (this process's CPU clock: the stores' own
// threads, the SQLite writer and the Redis I/O thread, included; flows run one
// at a time, so that is the flow's cost) and added wall latency
// per flow (p50 / p99 / max) of the counting step, counter updates per second,
// for flows that carry findings (each flow adds 3 new subjects) and flows that
// carry none; the size of SQLite's WAL after the flows, with the store
// still open. Then, with --subjects N (default 10,000,000), the SQLite store
// filled with N subjects in one key: the time it takes, the file size, this
// process's peak RSS, and a flow's latency at that size.
//
// usage: volume_bench [--flows N] [--subjects N] [--inflight N] [--redis URL] [--dir DIR] [--no-redis]
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "crypto/key_file.hpp"
#include "daemon/config.hpp"
#include "daemon/volume/counting.hpp"
#include "daemon/volume/redis_store.hpp"
#include "daemon/volume/sqlite_store.hpp"
#include "policy/volume.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace customs;
using clk = std::chrono::steady_clock;

namespace {

struct options {
  std::size_t flows = 20000;
  std::uint64_t subjects = 10'000'000;
  std::size_t inflight = 32;
  std::string redis_url;
  bool redis = true;
  fs::path dir;
};

const char* pack_with_counter = R"(schema: customs/v1
pack: {id: bench, version: "1"}
detectors:
  - id: bench.member
    category: pi.member_id
    pattern: 'MID-\d{8}'
    fullwidth_digits: false
rules:
  - id: bench.member.tag
    when: {direction: request, detectors: [bench.member]}
    then: {action: tag}
volumes:
  - id: bench.members
    count: {detectors: [bench.member]}
    per: [tenant]
    window: {calendar_year: true, time_zone: Asia/Shanghai}
    levels:
      - {id: bench.members.limit, exceeding: 100000000, action: block}
)";

std::int64_t cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct result {
  std::string name;
  double cpu_us = 0;       // per flow, counting step only
  double p50_us = 0, p99_us = 0, max_us = 0;  // wall, counting step only
  double flows_per_s = 0;  // counting steps per second (one thread; in flight: flows per second)
  double empty_ns = 0;     // a flow without findings: the whole check
};

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// Sum of the wall times (seconds) of the counting steps.
double total_seconds(const std::vector<double>& us) {
  double s = 0;
  for (const auto x : us) s += x;
  return s / 1e6;
}

// Each flow carries 3 new member ids; counting is timed apart from scanning.
result run(const std::string& name, const policy::rule_set& rules, daemon::volume::volume_counter* counter,
           std::size_t flows, std::uint32_t& next_member) {
  result r;
  r.name = name;
  policy::flow_context ctx;
  ctx.src = "CN";
  ctx.dst = "US";
  ctx.tenant = "acme";
  std::vector<double> wall;
  wall.reserve(flows);
  std::int64_t cpu = 0;
  char text[128];
  for (std::size_t i = 0; i < flows; ++i) {
    std::snprintf(text, sizeof text, "members MID-%08u, MID-%08u and MID-%08u please", next_member,
                  next_member + 1, next_member + 2);
    next_member += 3;
    auto v = rules.decide(ctx, rules.scan(text, 0));
    const auto c0 = cpu_ns();
    const auto w0 = clk::now();
    if (counter != nullptr) {
      auto out = counter->run(rules, ctx, v, unix_now());
      if (out.refused || out.added.empty()) {
        std::cerr << name << ": flow " << i << " was not counted (" << out.detail << ")\n";
        std::exit(1);
      }
    } else {
      // The same entry point a flow without counters reaches.
      if (policy::has_volumes(rules)) std::exit(1);
    }
    wall.push_back(std::chrono::duration<double, std::micro>(clk::now() - w0).count());
    cpu += cpu_ns() - c0;
  }
  r.cpu_us = static_cast<double>(cpu) / 1000.0 / static_cast<double>(flows);
  r.p50_us = pct(wall, 0.50);
  r.p99_us = pct(wall, 0.99);
  r.max_us = wall.empty() ? 0 : *std::max_element(wall.begin(), wall.end());
  r.flows_per_s = static_cast<double>(flows) / std::max(1e-9, total_seconds(wall));
  // A flow without findings: decide + the volume check, nothing else differs.
  const std::size_t empties = 200000;
  auto v0 = rules.decide(ctx, rules.scan("hello, how are you today?", 0));
  const auto e0 = cpu_ns();
  std::size_t demands = 0;
  for (std::size_t i = 0; i < empties; ++i) {
    if (policy::has_volumes(rules)) demands += policy::volume_demands(rules, ctx, v0, 1'780'000'000).size();
  }
  r.empty_ns = static_cast<double>(cpu_ns() - e0) / static_cast<double>(empties);
  if (demands != 0) std::exit(1);
  return r;
}

// The data plane's way: one worker thread keeps `inflight` flows waiting on
// the store at once (add_async, as customsd's workers do) and takes each
// answer when it comes. CPU is this process's over the whole run, per flow:
// the worker's prepare/take and the store's threads (for SQLite, one group
// commit carries every flow that waited meanwhile). Wall latency per flow is
// from its first ask to its last answer.
result run_inflight(const std::string& name, const policy::rule_set& rules, daemon::volume::volume_counter& counter,
                    std::size_t flows, std::size_t inflight, std::uint32_t& next_member) {
  struct flow {
    policy::verdict v;
    daemon::volume::counting_state st;
    clk::time_point t0;
  };
  struct answer {
    std::size_t index;
    daemon::volume::counter_result r;
  };
  std::mutex m;
  std::condition_variable cv;
  std::vector<answer> answers;
  policy::flow_context ctx;
  ctx.src = "CN";
  ctx.dst = "US";
  ctx.tenant = "acme";
  std::vector<flow> fl(flows);
  std::vector<double> wall;
  wall.reserve(flows);
  const auto now = unix_now();
  const auto ask = [&](std::size_t i) {
    auto& f = fl[i];
    counter.store_for(f.st).add_async(f.st.ops, [&, i](daemon::volume::counter_result r) {
      {
        std::lock_guard lock(m);
        answers.push_back({i, std::move(r)});
      }
      cv.notify_one();
    });
  };
  // Scanning and deciding are not the counting step: done first.
  char text[128];
  for (auto& f : fl) {
    std::snprintf(text, sizeof text, "members MID-%08u, MID-%08u and MID-%08u please", next_member,
                  next_member + 1, next_member + 2);
    next_member += 3;
    f.v = rules.decide(ctx, rules.scan(text, 0));
  }
  std::size_t started = 0, finished = 0, waiting = 0;
  const auto c0 = cpu_ns();
  const auto w0 = clk::now();
  while (finished < flows) {
    while (started < flows && waiting < inflight) {
      auto& f = fl[started];
      f.t0 = clk::now();
      if (!counter.prepare(rules, ctx, f.v, now, f.st)) {
        std::cerr << name << ": flow " << started << " has nothing to count\n";
        std::exit(1);
      }
      ++waiting;
      ask(started++);
    }
    std::vector<answer> got;
    {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return !answers.empty(); });
      got.swap(answers);
    }
    for (auto& a : got) {
      auto& f = fl[a.index];
      counter.take(rules, ctx, f.v, f.st, std::move(a.r));
      if (counter.prepare(rules, ctx, f.v, now, f.st)) {
        ask(a.index);
        continue;
      }
      if (f.st.out.refused || f.st.out.added.empty()) {
        std::cerr << name << ": flow " << a.index << " was not counted (" << f.st.out.detail << ")\n";
        std::exit(1);
      }
      wall.push_back(std::chrono::duration<double, std::micro>(clk::now() - f.t0).count());
      --waiting;
      ++finished;
    }
  }
  const double seconds = std::chrono::duration<double>(clk::now() - w0).count();
  result r;
  r.name = name;
  r.cpu_us = static_cast<double>(cpu_ns() - c0) / 1000.0 / static_cast<double>(flows);
  r.p50_us = pct(wall, 0.50);
  r.p99_us = pct(wall, 0.99);
  r.max_us = wall.empty() ? 0 : *std::max_element(wall.begin(), wall.end());
  r.flows_per_s = static_cast<double>(flows) / seconds;
  r.empty_ns = -1;  // measured by run()
  return r;
}

}  // namespace

namespace {

struct redis_child {
  pid_t pid = -1;
  fs::path dir;
  std::uint16_t port = 0;
  ~redis_child() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int st;
      ::waitpid(pid, &st, 0);
    }
  }
};

bool start_redis(redis_child& c, const fs::path& dir) {
  if (::access("/usr/bin/redis-server", X_OK) != 0) return false;
  c.dir = dir / "redis";
  fs::create_directories(c.dir);
  c.port = static_cast<std::uint16_t>(20000 + (::getpid() % 20000));
  std::vector<std::string> args = {"/usr/bin/redis-server", "--port", std::to_string(c.port), "--bind", "127.0.0.1",
                                   "--dir", c.dir.string(), "--save", "", "--appendonly", "no", "--logfile",
                                   (c.dir / "redis.log").string()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return posix_spawn(&c.pid, argv[0], nullptr, nullptr, argv.data(), environ) == 0;
}

long peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

void print(const result& r) {
  std::printf("%-10s  cpu/flow %8.2f us   wall p50 %8.2f us  p99 %8.2f us  max %9.1f us   %9.0f updates/s",
              r.name.c_str(), r.cpu_us, r.p50_us, r.p99_us, r.max_us, r.flows_per_s);
  if (r.empty_ns >= 0) std::printf("   no-findings flow %7.1f ns", r.empty_ns);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--flows") o.flows = std::stoull(next());
    else if (a == "--subjects") o.subjects = std::stoull(next());
    else if (a == "--redis") o.redis_url = next();
    else if (a == "--no-redis") o.redis = false;
    else if (a == "--inflight") o.inflight = std::max<std::size_t>(1, std::stoull(next()));
    else if (a == "--dir") o.dir = next();
    else {
      std::cerr << "usage: volume_bench [--flows N] [--subjects N] [--inflight N] [--redis URL] [--no-redis] [--dir DIR]\n";
      return 2;
    }
  }
  const bool own_dir = o.dir.empty();
  if (own_dir) o.dir = fs::temp_directory_path() / ("customs-volume-bench-" + std::to_string(::getpid()));
  fs::create_directories(o.dir);
  (void)crypto::generate_key_set(o.dir / "keys", crypto::key_set::subject);
  std::ofstream(o.dir / "with.yaml") << pack_with_counter;
  std::string without = pack_with_counter;
  without.resize(without.find("volumes:"));
  std::ofstream(o.dir / "without.yaml") << without;
  const auto load = [&](const char* f) {
    const std::vector<fs::path> p{o.dir / f};
    auto r = policy::load_rule_set(p);
    if (!r.ok()) {
      for (const auto& d : r.diagnostics) std::cerr << d.to_string() << "\n";
      std::exit(1);
    }
    return r.rules;
  };
  const auto with = load("with.yaml");
  const auto plain = load("without.yaml");
  auto hasher = std::make_shared<const daemon::volume::subject_hasher>(o.dir / "keys" / "subject.key");

  std::printf("volume counters: %zu flows per backend, 3 new subjects per flow, one thread\n", o.flows);
  std::uint32_t member = 1;
  print(run("none", *plain, nullptr, o.flows, member));
  {
    auto store = std::shared_ptr<daemon::volume::counter_store>(daemon::volume::open_sqlite_store(o.dir / "counters.db"));
    daemon::volume::volume_counter c(store, nullptr, hasher);
    print(run("sqlite", *with, &c, o.flows, member));
    print(run_inflight("sqlite/" + std::to_string(o.inflight), *with, c, o.flows, o.inflight, member));
    // The WAL while the store is open: checkpoints keep it near
    // wal_autocheckpoint (1000 pages, about 4 MiB); one that grows with the
    // flows means something holds a read transaction open.
    std::error_code ec;
    const auto wal = fs::file_size(fs::path((o.dir / "counters.db").string() + "-wal"), ec);
    std::printf("sqlite    WAL after %zu flows, store open: %.1f MiB\n", o.flows,
                ec ? 0.0 : static_cast<double>(wal) / 1048576.0);
  }
  redis_child child;
  if (o.redis) {
    std::string url = o.redis_url;
    if (url.empty() && start_redis(child, o.dir)) url = "redis://127.0.0.1:" + std::to_string(child.port);
    if (url.empty()) {
      std::printf("redis    skipped: no redis-server (apt-get install redis-server) and no --redis URL\n");
    } else {
      daemon::volumes_config vc;
      vc.backend = daemon::volumes_config::backend_kind::redis;
      vc.url = url;
      vc.budget = std::chrono::milliseconds(1000);
      auto store = std::shared_ptr<daemon::volume::counter_store>(daemon::volume::open_redis_store(vc));
      std::uint64_t n = 0;
      for (int i = 0; i < 400 && store->count("__probe__", 0, n); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
      daemon::volume::volume_counter c(store, nullptr, hasher);
      print(run("redis", *with, &c, o.flows, member));
      print(run_inflight("redis/" + std::to_string(o.inflight), *with, c, o.flows, o.inflight, member));
      store->close();
    }
  }

  if (o.subjects > 0) {
    // One key filled with N subjects, 10,000 per transaction.
    const auto db = o.dir / "big.db";
    auto store = daemon::volume::open_sqlite_store(db);
    const std::size_t batch = 10000;
    std::mt19937_64 rng(42);
    const auto t0 = clk::now();
    for (std::uint64_t done = 0; done < o.subjects; done += batch) {
      daemon::volume::counter_op op;
      op.key = "bench.members|tenant=acme|2026";
      op.now = unix_now();
      op.expires_at = op.now + 86400 * 400;
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(batch, o.subjects - done));
      op.members.resize(n);
      for (auto& m : op.members) {
        const auto a = rng(), b = rng();
        std::memcpy(m.data(), &a, 8);
        std::memcpy(m.data() + 8, &b, 8);
      }
      std::sort(op.members.begin(), op.members.end());
      const auto r = store->add({op});
      if (r.error || !r.added) {
        std::cerr << "fill failed at " << done << "\n";
        return 1;
      }
    }
    const double fill_s = std::chrono::duration<double>(clk::now() - t0).count();
    std::uint64_t count = 0;
    (void)store->count("bench.members|tenant=acme|2026", 0, count);
    // A flow's latency at that size: 3 new subjects into the big key.
    std::vector<double> wall;
    for (int i = 0; i < 2000; ++i) {
      daemon::volume::counter_op op;
      op.key = "bench.members|tenant=acme|2026";
      op.now = unix_now();
      op.expires_at = op.now + 86400 * 400;
      op.members.resize(3);
      for (auto& m : op.members) {
        const auto a = rng(), b = rng();
        std::memcpy(m.data(), &a, 8);
        std::memcpy(m.data() + 8, &b, 8);
      }
      std::sort(op.members.begin(), op.members.end());
      const auto w0 = clk::now();
      (void)store->add({op});
      wall.push_back(std::chrono::duration<double, std::micro>(clk::now() - w0).count());
    }
    store->close();
    store.reset();
    // Opening reads every key's members into memory.
    const auto r0 = clk::now();
    store = daemon::volume::open_sqlite_store(db);
    std::uint64_t reread = 0;
    (void)store->count("bench.members|tenant=acme|2026", 0, reread);
    const double reopen_s = std::chrono::duration<double>(clk::now() - r0).count();
    store->close();
    store.reset();
    std::uintmax_t bytes = 0;
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::error_code ec;
      const auto s = fs::file_size(fs::path(db.string() + suffix), ec);
      if (!ec) bytes += s;
    }
    std::printf("sqlite at %llu subjects in one key: filled in %.1f s (%.0f subjects/s), %.1f MiB on disk (%.1f bytes/subject), "
                "peak RSS %.1f MiB; a flow then: p50 %.1f us, p99 %.1f us; reopened in %.2f s (%llu subjects read back)\n",
                static_cast<unsigned long long>(count), fill_s, static_cast<double>(o.subjects) / fill_s,
                static_cast<double>(bytes) / 1048576.0, static_cast<double>(bytes) / static_cast<double>(std::max<std::uint64_t>(1, count)),
                static_cast<double>(peak_rss_kb()) / 1024.0, pct(wall, 0.5), pct(wall, 0.99), reopen_s,
                static_cast<unsigned long long>(reread));
  }
  if (own_dir) {
    std::error_code ec;
    fs::remove_all(o.dir, ec);
  }
  return 0;
}
