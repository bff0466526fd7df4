// The writer watches its files: a database (or WAL, shared-memory or lock file)
// deleted or replaced under it makes the store lose the trail for good, a
// database made read-only makes it refuse records while that lasts.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "audit_test_support.hpp"

using namespace customs::audit;
using namespace customs::audit::testing;
namespace crypto = customs::crypto;

namespace {

// Appends one record and waits for its durable handler: its error code.
std::error_code append_and_wait(store& s, std::uint64_t i) {
  std::error_code result;
  ack_counter acks;
  const auto h = acks.handler();
  const auto ec = s.append(make_record(i), [&result, h](std::error_code e, std::uint64_t seq) {
    result = e;
    h(e, seq);
  });
  if (ec) return ec;
  acks.wait_for(1);
  return result;
}

// Waits (at most 10 s) until the store reports itself unhealthy.
bool becomes_unhealthy(const store& s) {
  for (int i = 0; i < 1000 && s.healthy(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return !s.healthy();
}

fs::path sibling(const fs::path& db, const char* suffix) {
  fs::path p = db;
  p += suffix;
  return p;
}

// Puts another file in place of `p` (rename over it, as an editor or a restore would).
void replace_file(const fs::path& p) {
  const fs::path tmp = sibling(p, ".other");
  fs::copy_file(p, tmp);
  fs::rename(tmp, p);
}

}  // namespace

TEST_CASE("trail watch: a database deleted under the writer fails the next record and every later one", "[audit][trail]") {
  trail t;
  auto s = store::open_store(t.opts);
  REQUIRE_FALSE(append_and_wait(*s, 1));
  fs::remove(t.db);
  CHECK(append_and_wait(*s, 2) == make_error_code(errc::trail_lost));
  CHECK_FALSE(s->healthy());
  // Refused at once from now on: nothing is queued for a trail that is gone.
  CHECK(s->append(make_record(3)) == make_error_code(errc::trail_lost));
  CHECK(s->get_stats().trail_lost);
  s->close();
}

TEST_CASE("trail watch: a database replaced by another file fails the next record", "[audit][trail]") {
  trail t;
  auto s = store::open_store(t.opts);
  REQUIRE_FALSE(append_and_wait(*s, 1));
  replace_file(t.db);
  CHECK(append_and_wait(*s, 2) == make_error_code(errc::trail_lost));
  CHECK(s->append(make_record(3)) == make_error_code(errc::trail_lost));
  CHECK_FALSE(s->healthy());
}

TEST_CASE("trail watch: a deleted WAL file loses the trail", "[audit][trail]") {
  trail t;
  auto s = store::open_store(t.opts);
  REQUIRE_FALSE(append_and_wait(*s, 1));
  REQUIRE(fs::exists(sibling(t.db, "-wal")));
  fs::remove(sibling(t.db, "-wal"));
  CHECK(append_and_wait(*s, 2) == make_error_code(errc::trail_lost));
  CHECK_FALSE(s->healthy());
}

TEST_CASE("trail watch: a removed lock file loses the trail (another writer could open it)", "[audit][trail]") {
  trail t;
  auto s = store::open_store(t.opts);
  REQUIRE_FALSE(append_and_wait(*s, 1));
  fs::remove(sibling(t.db, "-writer.lock"));
  CHECK(append_and_wait(*s, 2) == make_error_code(errc::trail_lost));
}

TEST_CASE("trail watch: a deletion is noticed without traffic", "[audit][trail]") {
  trail t;
  t.opts.trail_check_interval = std::chrono::milliseconds(20);
  auto s = store::open_store(t.opts);
  REQUIRE(s->healthy());
  fs::remove(t.db);
  CHECK(becomes_unhealthy(*s));
  CHECK(s->append(make_record(1)) == make_error_code(errc::trail_lost));
}

TEST_CASE("trail watch: the health callback reports the loss once, with the reason", "[audit][trail]") {
  trail t;
  std::mutex mu;
  std::vector<writer::health> seen;
  t.opts.on_health = [&](const writer::health& h) {
    std::lock_guard lk(mu);
    seen.push_back(h);
  };
  auto s = store::open_store(t.opts);
  REQUIRE_FALSE(append_and_wait(*s, 1));
  fs::remove(t.db);
  CHECK(append_and_wait(*s, 2) == make_error_code(errc::trail_lost));
  s->close();
  std::lock_guard lk(mu);
  REQUIRE(seen.size() == 1);
  CHECK_FALSE(seen[0].healthy);
  CHECK(seen[0].lost);
  CHECK_THAT(seen[0].reason, Catch::Contains("deleted"));
}

TEST_CASE("trail watch: a read-only database refuses records while it lasts, then writing resumes", "[audit][trail]") {
  trail t;
  auto s = store::open_store(t.opts);
  REQUIRE_FALSE(append_and_wait(*s, 1));
  REQUIRE(::chmod(t.db.c_str(), 0444) == 0);
  CHECK(append_and_wait(*s, 2) == make_error_code(errc::store_failed));
  CHECK_FALSE(s->healthy());
  CHECK_FALSE(s->get_stats().trail_lost);
  REQUIRE(::chmod(t.db.c_str(), 0600) == 0);
  CHECK_FALSE(append_and_wait(*s, 3));
  CHECK(s->healthy());
  s->close();
  const auto sum = t.verify();
  INFO((sum.failures.empty() ? "" : sum.failures[0].detail));
  CHECK(sum.ok());
  // Record 2 was refused, not written.
  reader r(t.db);
  std::set<std::string> flows;
  r.for_each({}, [&](const read_record& rec) {
    flows.insert(rec.flow_id);
    return true;
  });
  CHECK(flows == std::set<std::string>{"flow-1", "flow-3"});
}

TEST_CASE("trail watch: an epoch that ends while the database is read-only writes no checkpoint into it", "[audit][trail]") {
  // Found in review: the idle writer ended an epoch by time and inserted its
  // checkpoint into a database made read-only (the writer's handle still
  // writes).
  trail t;
  t.opts.epoch_duration = std::chrono::seconds(1);
  auto s = store::open_store(t.opts);
  REQUIRE_FALSE(append_and_wait(*s, 1));
  REQUIRE_FALSE(append_and_wait(*s, 2));
  REQUIRE(::chmod(t.db.c_str(), 0444) == 0);
  CHECK(append_and_wait(*s, 3) == make_error_code(errc::store_failed));
  const auto before = s->get_stats().checkpoints;
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // past the epoch's end
  CHECK(s->get_stats().checkpoints == before);
  REQUIRE(::chmod(t.db.c_str(), 0600) == 0);
  CHECK_FALSE(append_and_wait(*s, 4));
  s->close();
  const auto sum = t.verify();
  INFO((sum.failures.empty() ? "" : sum.failures[0].detail));
  CHECK(sum.ok());
}

TEST_CASE("trail watch: a lost trail is not continued by a restart on the file left in its place", "[audit][trail]") {
  trail t;
  t.write_flows(0, 3);
  {
    auto s = store::open_store(t.opts);
    fs::remove(t.db);
    CHECK(append_and_wait(*s, 9) == make_error_code(errc::trail_lost));
  }
  // The key has moved past epoch 0; an empty database in the trail's place is refused.
  CHECK_THROWS_WITH(store::open_store(t.opts), Catch::Contains("create fresh keys"));
}
