// Load generator for the audit store. Writes synthetic flows with 1 KB payloads
// and prints, each next to a baseline measured in the same run:
//   durable records/s  (encryption + chain + MAC + group commit, synchronous=FULL)
//                      vs plain batched SQLite inserts of 1 KB blobs (same pragmas)
//   durable wait       p50 / p99 / max from append to the durable handler, at a
//                      paced load (--rate records/s for --seconds)
//   verify records/s   (chain, MACs, signatures) vs a plain scan of the same rows
// and, for each store phase, its WAL checkpoint runs and restarts and the
// largest size the -wal file reached.
// usage: audit_bench [--records N] [--rate R] [--seconds S] [--dir DIR]
//                    [--commit-records N] [--commit-ms T] [--store-only]
// Files go to a new folder customs-audit-bench-PID inside DIR (default: the
// temporary folder), which is deleted at the end; nothing else in DIR is touched.
#include <sqlite3.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "audit/store.hpp"
#include "audit/verifier.hpp"
#include "crypto/key_file.hpp"

namespace fs = std::filesystem;
using namespace customs;
using clk = std::chrono::steady_clock;

namespace {

struct options {
  std::uint64_t records = 200000;
  std::uint64_t rate = 50000;
  double seconds = 4;
  fs::path dir;
  std::uint32_t commit_records = 512;
  int commit_ms = 0;  // as customsd ships it (audit.commit_interval: 0ms)
  bool store_only = false;  // only the unpaced store phase (for profiling)
  int verify_runs = 0;      // with --store-only: verify its database this many times
};

double secs(clk::duration d) { return std::chrono::duration<double>(d).count(); }

// CPU time (user + system) of the whole process so far, in seconds: reported per
// record next to the rates, since it is steadier than wall time on a shared machine.
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::string make_payload(std::uint64_t i) {
  std::string p = "{\"request_texts\":[\"flow " + std::to_string(i) + " ";
  p.append(1024 - p.size() - 3, 'x');
  p += "\"]}";
  return p;
}

audit::record make_record(std::uint64_t i, const std::string& payload) {
  audit::record r;
  r.kind = i % 2 ? audit::record_kind::flow_closed : audit::record_kind::flow_opened;
  r.flow_id = "bench-" + std::to_string(i / 2);
  r.index.route = "/v1/chat/completions";
  r.index.src = "CN";
  r.index.dst = "US";
  r.index.tenant = "tenant-" + std::to_string(i % 7);
  r.index.action = i % 11 ? "allow" : "block";
  r.index.rule_set_hash = "3f2a9c";
  r.index.tokens_in = 100 + i % 50;
  r.index.tokens_out = 200 + i % 90;
  r.payload = payload;
  return r;
}

void check(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    std::cerr << what << ": " << sqlite3_errmsg(db) << "\n";
    std::exit(2);
  }
}

// Plain batched SQLite inserts of 1 KB blobs, WAL + synchronous=FULL.
double baseline_insert(const fs::path& file, std::uint64_t n, std::uint32_t batch) {
  sqlite3* db = nullptr;
  check(sqlite3_open(file.c_str(), &db), db, "open");
  check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                         "CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
                     nullptr, nullptr, nullptr), db, "schema");
  sqlite3_stmt* st = nullptr;
  check(sqlite3_prepare_v2(db, "INSERT INTO t (id, data) VALUES (?1, ?2)", -1, &st, nullptr), db, "prepare");
  std::string blob(1024, 'x');
  const auto t0 = clk::now();
  for (std::uint64_t i = 0; i < n;) {
    check(sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr), db, "begin");
    for (std::uint32_t j = 0; j < batch && i < n; ++j, ++i) {
      std::memcpy(blob.data(), &i, sizeof i);
      sqlite3_bind_int64(st, 1, static_cast<sqlite3_int64>(i + 1));
      sqlite3_bind_blob(st, 2, blob.data(), static_cast<int>(blob.size()), SQLITE_STATIC);
      check(sqlite3_step(st), db, "insert");
      sqlite3_reset(st);
    }
    check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db, "commit");
  }
  const double rate = static_cast<double>(n) / secs(clk::now() - t0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rate;
}

// A plain scan reading every column of every record (the floor under verify).
double baseline_scan(const fs::path& file, std::uint64_t& rows) {
  sqlite3* db = nullptr;
  check(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), db, "open");
  sqlite3_stmt* st = nullptr;
  check(sqlite3_prepare_v2(db, "SELECT * FROM records ORDER BY seq", -1, &st, nullptr), db, "prepare");
  const auto t0 = clk::now();
  rows = 0;
  std::uint64_t bytes = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    for (int c = 0; c < sqlite3_column_count(st); ++c) {
      (void)sqlite3_column_blob(st, c);
      bytes += static_cast<std::uint64_t>(sqlite3_column_bytes(st, c));
    }
    ++rows;
  }
  const double rate = static_cast<double>(rows) / secs(clk::now() - t0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return bytes ? rate : 0;
}

audit::writer_options writer_opts(const fs::path& dir, const options& o) {
  audit::writer_options w;
  w.db = dir / "audit.db";
  w.auditor_keys = {dir / "keys/auditor.pub"};
  w.sealing_key = dir / "keys/sealing.key";
  w.signing_key = dir / "keys/signing.key";
  w.commit_records = o.commit_records;
  w.commit_interval = std::chrono::milliseconds(o.commit_ms);
  w.queue_capacity = 65536;
  return w;
}

struct latency_log {
  std::vector<std::int64_t> us;
  std::atomic<std::uint64_t> done{0};
  std::atomic<std::uint64_t> failed{0};
};

void append_retrying(audit::writer& w, audit::record r, audit::writer::durable_handler h) {
  for (;;) {
    const auto ec = w.append(r, h);
    if (!ec) return;
    if (ec != audit::make_error_code(audit::errc::queue_full)) {
      std::cerr << "append: " << ec.message() << "\n";
      std::exit(2);
    }
    // Back off well: each retry copies the record, and the writer needs the core.
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

// The largest the trail's -wal file got (looked at now and then during a run)
// and the store's WAL checkpoint runs and restarts: a WAL that is never
// started again grows, and every commit then appends to it.
struct wal_watch {
  explicit wal_watch(const fs::path& dir) : path(dir / "audit.db-wal") {}
  void look() {
    std::error_code ec;
    const auto n = fs::file_size(path, ec);
    if (!ec) largest = std::max<std::uintmax_t>(largest, n);
  }
  void print(const char* what, const audit::writer::stats& st) const {
    std::printf("%-44s %llu checkpoint runs, %llu restarts, largest -wal file %.1f MiB\n", what,
                static_cast<unsigned long long>(st.wal_checkpoints), static_cast<unsigned long long>(st.wal_restarts),
                static_cast<double>(largest) / (1024.0 * 1024.0));
  }
  fs::path path;
  std::uintmax_t largest = 0;
};

void print_latency(const char* what, std::vector<std::int64_t> us) {
  std::sort(us.begin(), us.end());
  const auto at = [&](double q) { return us.empty() ? 0 : us[static_cast<std::size_t>(q * (us.size() - 1))]; };
  std::printf("%-44s p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", what, at(0.5) / 1000.0, at(0.99) / 1000.0,
              (us.empty() ? 0 : us.back()) / 1000.0);
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--records") o.records = std::stoull(next());
    else if (a == "--rate") o.rate = std::stoull(next());
    else if (a == "--seconds") o.seconds = std::stod(next());
    else if (a == "--dir") o.dir = next();
    else if (a == "--commit-records") o.commit_records = static_cast<std::uint32_t>(std::stoul(next()));
    else if (a == "--commit-ms") o.commit_ms = std::stoi(next());
    else if (a == "--store-only") o.store_only = true;
    else if (a == "--verify-runs") o.verify_runs = std::stoi(next());
    else {
      std::cerr << "usage: audit_bench [--records N] [--rate R] [--seconds S] [--dir DIR] "
                   "[--commit-records N] [--commit-ms T]\n";
      return 2;
    }
  }
  // The bench writes into a folder of its own (inside --dir, or the system's
  // temporary folder) and deletes that folder, never anything it did not make.
  {
    const fs::path parent = o.dir.empty() ? fs::temp_directory_path() : o.dir;
    o.dir = parent / ("customs-audit-bench-" + std::to_string(::getpid()));
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec || !fs::create_directory(o.dir, ec) || ec) {
      std::fprintf(stderr, "audit_bench: cannot make a fresh folder %s%s%s\n", o.dir.c_str(),
                   ec ? ": " : " (it exists)", ec ? ec.message().c_str() : "");
      return 2;
    }
  }
  struct remove_on_exit {
    fs::path path;
    ~remove_on_exit() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } cleanup{o.dir};
  std::printf("audit_bench: %llu records of 1 KB payload, group commit at %u records or %d ms, in %s\n",
              static_cast<unsigned long long>(o.records), o.commit_records, o.commit_ms, o.dir.c_str());

  // 1. Baseline inserts.
  const double cpu0 = cpu_seconds();
  const double base = o.store_only ? 1 : baseline_insert(o.dir / "baseline.db", o.records, o.commit_records);
  if (!o.store_only)
    std::printf("%-44s %10.0f records/s  (%.1f us CPU per record)\n", "baseline: plain batched SQLite inserts",
                base, (cpu_seconds() - cpu0) * 1e6 / static_cast<double>(o.records));

  // 2. Maximum durable throughput of the store.
  const fs::path run1 = o.dir / "throughput";
  fs::create_directories(run1);
  (void)crypto::generate_key_set(run1 / "keys");
  const auto seed = crypto::load_sealing_seed(run1 / "keys/sealing.seed");
  {
    auto w = audit::store::open_store(writer_opts(run1, o));
    latency_log lat;
    lat.us.assign(o.records, 0);
    const std::string payload = make_payload(0);
    const double cpu1 = cpu_seconds();
    const auto t0 = clk::now();
    wal_watch wal(run1);
    for (std::uint64_t i = 0; i < o.records; ++i) {
      if (i % 256 == 0) wal.look();
      const auto sent = clk::now();
      append_retrying(*w, make_record(i, payload), [&lat, i, sent](std::error_code ec, std::uint64_t) {
        if (ec) lat.failed.fetch_add(1);
        lat.us[i] = std::chrono::duration_cast<std::chrono::microseconds>(clk::now() - sent).count();
        lat.done.fetch_add(1, std::memory_order_release);
      });
    }
    while (lat.done.load(std::memory_order_acquire) < o.records) {
      wal.look();
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    const double elapsed = secs(clk::now() - t0);
    const double cpu = cpu_seconds() - cpu1;
    const auto st = w->get_stats();
    wal.look();
    w->close();
    // --store-only measures no baseline: no ratio is printed then.
    const std::string ratio =
        o.store_only ? std::string()
                     : std::to_string(static_cast<int>(100.0 * static_cast<double>(o.records) / elapsed / base)) +
                           "% of baseline; ";
    std::printf("%-44s %10.0f records/s  (%.1f us CPU per record; %s%llu commits, %llu failed)\n",
                "store: durable records/s, unpaced", static_cast<double>(o.records) / elapsed,
                cpu * 1e6 / static_cast<double>(o.records), ratio.c_str(),
                static_cast<unsigned long long>(st.commits), static_cast<unsigned long long>(lat.failed.load()));
    print_latency("store: durable wait, unpaced (queue full)", lat.us);
    wal.print("store: WAL, unpaced", st);
  }

  if (o.store_only) {
    if (!o.verify_runs) return 0;
    audit::verify_options vo;
    vo.seed = &seed;
    for (int i = 0; i < o.verify_runs; ++i) {
      const auto t0 = clk::now();
      const auto sum = audit::verify(run1 / "audit.db", vo);
      std::printf("%-44s %10.0f records/s\n", "verify", static_cast<double>(sum.records) / secs(clk::now() - t0));
    }
    return 0;
  }

  // 3. Durable wait at a paced load.
  const fs::path run2 = o.dir / "paced";
  fs::create_directories(run2);
  (void)crypto::generate_key_set(run2 / "keys");
  {
    auto w = audit::store::open_store(writer_opts(run2, o));
    const auto n = static_cast<std::uint64_t>(static_cast<double>(o.rate) * o.seconds);
    latency_log lat;
    lat.us.assign(n, 0);
    const std::string payload = make_payload(0);
    const auto t0 = clk::now();
    // Sends in 1 ms ticks, each with the records due by then.
    std::uint64_t i = 0;
    wal_watch wal(run2);
    while (i < n) {
      wal.look();
      const auto due = static_cast<std::uint64_t>(secs(clk::now() - t0) * static_cast<double>(o.rate)) + 1;
      for (; i < std::min(due, n); ++i) {
        const auto sent = clk::now();
        append_retrying(*w, make_record(i, payload), [&lat, i, sent](std::error_code ec, std::uint64_t) {
          if (ec) lat.failed.fetch_add(1);
          lat.us[i] = std::chrono::duration_cast<std::chrono::microseconds>(clk::now() - sent).count();
          lat.done.fetch_add(1, std::memory_order_release);
        });
      }
      std::this_thread::sleep_for(std::chrono::microseconds(1000));
    }
    while (lat.done.load(std::memory_order_acquire) < n) std::this_thread::sleep_for(std::chrono::microseconds(100));
    const double elapsed = secs(clk::now() - t0);
    wal.look();
    const auto st = w->get_stats();
    w->close();
    char what[96];
    std::snprintf(what, sizeof what, "store: durable wait at %llu records/s", static_cast<unsigned long long>(o.rate));
    print_latency(what, lat.us);
    std::printf("%-44s %10.0f records/s over %.1f s, %llu failed\n", "store: achieved paced rate",
                static_cast<double>(n) / elapsed, elapsed, static_cast<unsigned long long>(lat.failed.load()));
    wal.print("store: WAL, paced", st);
  }

  // 4. Verify (run 2's database, all checks) vs a plain scan of the same rows.
  {
    std::uint64_t rows = 0;
    const double scan = baseline_scan(run1 / "audit.db", rows);
    audit::verify_options vo;
    vo.seed = &seed;
    vo.signer = crypto::load_signing_public(run1 / "keys/signing.pub");
    const auto t0 = clk::now();
    const auto sum = audit::verify(run1 / "audit.db", vo);
    const double elapsed = secs(clk::now() - t0);
    std::printf("%-44s %10.0f records/s\n", "baseline: plain scan of the same rows", scan);
    std::printf("%-44s %10.0f records/s  (%llu records, %llu epochs, %s)\n",
                "verify: chain + MACs + signatures", static_cast<double>(sum.records) / elapsed,
                static_cast<unsigned long long>(sum.records), static_cast<unsigned long long>(sum.epochs),
                sum.ok() ? "valid" : "INVALID");
    if (!sum.ok()) return 1;
  }
  return 0;
}
