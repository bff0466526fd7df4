#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <string>
#include <set>
#include <thread>

#include "audit_test_support.hpp"

using namespace customs::audit;
using namespace customs::audit::testing;
namespace crypto = customs::crypto;

namespace {
std::map<std::string, std::string> payloads_by_flow(const fs::path& db, const fs::path* key,
                                                    std::vector<std::string>* errors = nullptr) {
  reader r(db);
  if (key) r.set_auditor_key(crypto::load_auditor_secret(*key));
  std::map<std::string, std::string> out;
  r.for_each({}, [&](const read_record& rec) {
    if (rec.kind != record_kind::flow_opened) return true;
    if (rec.payload) out[rec.flow_id] = *rec.payload;
    else if (errors) errors->push_back(rec.payload_error);
    return true;
  });
  return out;
}
}  // namespace

TEST_CASE("round trip: written records verify and decrypt with each auditor key", "[audit]") {
  trail t;
  t.write_flows(0, 25);
  const auto sum = t.verify();
  INFO((sum.failures.empty() ? "" : sum.failures[0].detail));
  REQUIRE(sum.ok());
  CHECK(sum.flows_records == 50);
  CHECK(sum.macs_checked);
  CHECK(sum.signer_trusted);
  CHECK(sum.epochs >= 5);  // epochs of 10 records
  CHECK(sum.checkpoints >= sum.epochs);

  for (const auto* key : {&t.keys, &t.keys2}) {
    const fs::path k = *key / "auditor.key";
    const auto got = payloads_by_flow(t.db, &k);
    REQUIRE(got.size() == 25);
    for (std::uint64_t i = 0; i < 25; ++i) CHECK(got.at("flow-" + std::to_string(i)) == payload_for(i));
  }
  // A key that was not configured reads nothing, and says why.
  temp_dir other;
  (void)crypto::generate_key_set(other.path, crypto::key_set::auditor);
  std::vector<std::string> errors;
  const fs::path k = other.path / "auditor.key";
  CHECK(payloads_by_flow(t.db, &k, &errors).empty());
  REQUIRE(errors.size() == 25);
  CHECK_THAT(errors[0], Catch::Contains("not sealed to this auditor key"));
  // Without a key: index fields only.
  reader r(t.db);
  std::size_t n = 0;
  r.for_each({}, [&](const read_record& rec) {
    CHECK_FALSE(rec.payload);
    if (rec.flow_id == "flow-5" && rec.kind == record_kind::flow_opened) {
      CHECK(rec.index.action == "block");
      CHECK(rec.index.rules == std::vector<std::string>{"pii.card", "cn.pipl.export"});
      CHECK(rec.index.tokens_out == 10);
    }
    ++n;
    return true;
  });
  CHECK(n == 50);
}

TEST_CASE("payloads are encrypted at rest", "[audit]") {
  trail t;
  t.write_flows(0, 3);
  auto d = tamper_db(t.db);
  sql::statement st(d, "SELECT payload FROM records WHERE kind = 1");
  while (st.step() == SQLITE_ROW) {
    const auto b = st.column_blob(0);
    const std::string raw(b.begin(), b.end());
    CHECK(raw.find("hello") == std::string::npos);
  }
}

TEST_CASE("durable handlers report increasing sequence numbers", "[audit]") {
  trail t;
  auto s = store::open_store(t.opts);
  ack_counter acks;
  std::vector<std::uint64_t> seqs(20);
  for (std::size_t i = 0; i < seqs.size(); ++i) REQUIRE_FALSE(s->append(make_record(i), acks.handler(&seqs[i])));
  acks.wait_for(seqs.size());
  for (std::size_t i = 1; i < seqs.size(); ++i) CHECK(seqs[i] > seqs[i - 1]);
  // Each acknowledged seq holds that record.
  s->close();
  reader r(t.db);
  std::map<std::uint64_t, std::string> flows;
  r.for_each({}, [&](const read_record& rec) {
    flows[rec.seq] = rec.flow_id;
    return true;
  });
  for (std::size_t i = 0; i < seqs.size(); ++i) CHECK(flows.at(seqs[i]) == "flow-" + std::to_string(i));
  CHECK(s->append(make_record(99)) == make_error_code(errc::closed));
}

TEST_CASE("a reopened store continues the chain in a new epoch", "[audit]") {
  trail t;
  t.write_flows(0, 3);
  const auto e1 = crypto::load_sealing_key(t.opts.sealing_key).epoch;
  t.write_flows(3, 3);
  t.write_flows(6, 3);
  CHECK(crypto::load_sealing_key(t.opts.sealing_key).epoch > e1);
  const auto sum = t.verify();
  INFO((sum.failures.empty() ? "" : sum.failures[0].detail));
  CHECK(sum.ok());
  CHECK(sum.flows_records == 18);
}

TEST_CASE("crash between the key replacement and the epoch-end checkpoint: the store resumes", "[audit]") {
  trail t;
  t.opts.epoch_records = 1000;
  // The key is evolved before the epoch-end checkpoint is signed: a crash
  // between the two leaves the key one epoch ahead and the head uncovered.
  t.write_flows(0, 4);
  {
    auto d = tamper_db(t.db);
    d.exec("DELETE FROM checkpoints WHERE id = (SELECT max(id) FROM checkpoints)");
  }
  t.write_flows(4, 4);
  const auto sum = t.verify();
  INFO((sum.failures.empty() ? "" : sum.failures[0].detail));
  CHECK(sum.ok());
  CHECK(sum.flows_records == 16);
}

TEST_CASE("a sealing key older than the trail is refused", "[audit]") {
  trail t;
  const auto k0 = crypto::load_sealing_key(t.opts.sealing_key);
  t.write_flows(0, 2);
  t.write_flows(2, 2);  // the trail now holds epoch 1 and later
  fs::remove(t.opts.sealing_key);
  crypto::write_key_file(t.opts.sealing_key, crypto::key_kind::sealing_key, k0.key.view(), 0);
  CHECK_THROWS_WITH(store::open_store(t.opts), Catch::Contains("restored from a backup"));
}

TEST_CASE("a sealing key restored one epoch back is refused", "[audit]") {
  trail t;
  t.opts.epoch_records = 1000;
  auto s = store::open_store(t.opts);
  const auto backup = crypto::load_sealing_key(t.opts.sealing_key);  // epoch 0, in use
  t.write_flows(0, 4, s.get());
  s->close();  // ends epoch 0: the key file moves to epoch 1
  REQUIRE(crypto::load_sealing_key(t.opts.sealing_key).epoch == backup.epoch + 1);
  fs::remove(t.opts.sealing_key);
  crypto::write_key_file(t.opts.sealing_key, crypto::key_kind::sealing_key, backup.key.view(), backup.epoch);
  CHECK_THROWS_WITH(store::open_store(t.opts), Catch::Contains("restored from a backup"));
  // Nothing was written: the trail still ends where it ended.
  const auto sum = t.verify();
  CHECK(sum.ok());
  CHECK(sum.flows_records == 8);
}

TEST_CASE("a writer refuses a sealing key others can read", "[audit][keys]") {
  trail t;
  REQUIRE(::chmod(t.opts.sealing_key.c_str(), 0644) == 0);
  CHECK_THROWS_WITH(store::open_store(t.opts), Catch::Contains("chmod 600"));
  REQUIRE(::chmod(t.opts.sealing_key.c_str(), 0600) == 0);
  REQUIRE(::chmod(t.opts.signing_key.c_str(), 0640) == 0);
  CHECK_THROWS_WITH(store::open_store(t.opts), Catch::Contains("others may read"));
  CHECK_FALSE(fs::exists(t.db));
}

TEST_CASE("one writer per database", "[audit]") {
  trail t;
  auto s = store::open_store(t.opts);
  CHECK_THROWS_WITH(store::open_store(t.opts), Catch::Contains("is in use by another process"));
}

TEST_CASE("one writer per database also through a symbolic link or another spelling of its path", "[audit]") {
  trail t;
  auto s = store::open_store(t.opts);
  const fs::path link = t.dir.path / "link.db";
  fs::create_symlink(t.db, link);
  auto other = t.opts;
  other.db = link;
  CHECK_THROWS_WITH(store::open_store(other), Catch::Contains("is in use by another process"));
  fs::create_directories(t.dir.path / "sub");
  other.db = t.dir.path / "sub" / ".." / "audit.db";
  CHECK_THROWS_WITH(store::open_store(other), Catch::Contains("is in use by another process"));
}

TEST_CASE("a database of another schema version is refused", "[audit]") {
  trail t;
  t.write_flows(0, 1);
  tamper_db(t.db).exec("PRAGMA user_version=99");
  CHECK_THROWS_WITH(store::open_store(t.opts), Catch::Contains("schema version 99"));
}

TEST_CASE("a full queue refuses records at once", "[audit]") {
  trail t;
  t.opts.queue_capacity = 4;
  auto s = store::open_store(t.opts);
  ack_counter acks;
  std::uint64_t taken = 0;
  std::error_code ec;
  for (int i = 0; i < 200000 && !ec; ++i) {
    ec = s->append(make_record(static_cast<std::uint64_t>(i)), acks.handler());
    if (!ec) ++taken;
  }
  CHECK(ec == make_error_code(errc::queue_full));
  acks.wait_for(taken);
  CHECK(acks.failed() == 0);
  CHECK(s->get_stats().append_refused >= 1);
}

TEST_CASE("disk full: commits fail and are reported, then writing resumes with a valid chain", "[audit]") {
  trail t;
  t.opts.epoch_records = 50;
  auto s = store::open_store(t.opts);
  t.write_flows(0, 5, s.get());
  const auto pages = [&] {
    auto d = sql::database(t.db, SQLITE_OPEN_READONLY);
    return d.query_int("PRAGMA page_count");
  }();
  s->set_max_pages(static_cast<std::uint32_t>(pages + 8));
  ack_counter acks;
  std::set<std::string> acked, failed;
  // The store's health as each failure is reported. A later, smaller batch may
  // still fit and make the store healthy again, so health is sampled when the
  // failure is reported rather than after the loop.
  std::vector<bool> healthy_at_failure;
  std::mutex mu;
  std::uint64_t sent = 0;
  auto* const sp = s.get();
  for (std::uint64_t i = 100; i < 400; ++i) {
    auto r = make_record(i);
    r.payload.append(1000, 'x');
    const std::string flow = r.flow_id;
    const auto h = acks.handler();
    REQUIRE_FALSE(s->append(std::move(r), [&, sp, flow, h](std::error_code ec, std::uint64_t seq) {
      {
        std::lock_guard lk(mu);
        (ec ? failed : acked).insert(flow);
        if (ec) healthy_at_failure.push_back(sp->healthy());
      }
      h(ec, seq);
    }));
    ++sent;
  }
  acks.wait_for(sent);
  CHECK(acks.failed() > 0);
  {
    std::lock_guard lk(mu);
    REQUIRE_FALSE(healthy_at_failure.empty());
    CHECK(std::count(healthy_at_failure.begin(), healthy_at_failure.end(), true) == 0);
  }
  CHECK(s->get_stats().store_errors > 0);
  // The disk has room again.
  s->set_max_pages(0);
  t.write_flows(400, 20, s.get());
  CHECK(s->healthy());
  s->close();
  const auto sum = t.verify();
  INFO((sum.failures.empty() ? "" : sum.failures[0].detail));
  REQUIRE(sum.ok());
  // Exactly the acknowledged records are there; the failed ones are not.
  reader r(t.db);
  std::set<std::string> present;
  r.for_each({}, [&](const read_record& rec) {
    present.insert(rec.flow_id);
    return true;
  });
  for (const auto& f : acked) CHECK(present.count(f) == 1);
  for (const auto& f : failed) CHECK(present.count(f) == 0);
  CHECK(present.count("flow-419") == 1);
}

TEST_CASE("erase removes a flow's payloads, records it, and the trail still verifies", "[audit]") {
  trail t;
  t.write_flows(0, 6);
  {
    auto s = store::open_store(t.opts);
    const auto res = s->erase_flow("flow-3", "GDPR art. 17 request 42");
    CHECK(res.erased.size() == 2);
    CHECK(res.erasure_seq > res.erased.back());
    CHECK_THROWS_WITH(s->erase_flow("flow-3", "again"), Catch::Contains("no stored payload"));
    CHECK_THROWS_WITH(s->erase_flow("no-such-flow", "x"), Catch::Contains("no stored payload"));
  }
  const auto sum = t.verify();
  INFO((sum.failures.empty() ? "" : sum.failures[0].detail));
  REQUIRE(sum.ok());
  CHECK(sum.erased_payloads == 2);
  CHECK(sum.erased_flows == std::vector<std::string>{"flow-3"});
  // The payload is gone from the file, not only unlinked.
  auto d = tamper_db(t.db);
  CHECK(d.query_int("SELECT count(*) FROM records WHERE flow_id = 'flow-3' AND payload IS NULL") == 2);
  // Readers see the erasure and its reason.
  reader r(t.db);
  r.set_auditor_key(crypto::load_auditor_secret(t.keys / "auditor.key"));
  bool saw_erasure = false;
  record_filter only_flow3;
  only_flow3.flow = "flow-3";
  r.for_each(only_flow3, [&](const read_record& rec) {
    if (rec.kind == record_kind::erasure) {
      saw_erasure = true;
      REQUIRE(rec.payload);
      CHECK_THAT(*rec.payload, Catch::Contains("GDPR art. 17 request 42"));
    } else {
      CHECK(rec.erased);
      CHECK_FALSE(rec.payload);
    }
    return true;
  });
  CHECK(saw_erasure);
}

TEST_CASE("index fields not configured are not stored", "[audit]") {
  trail t;
  t.opts.index_fields = {"action"};
  t.write_flows(0, 2);
  reader r(t.db);
  r.for_each({}, [&](const read_record& rec) {
    CHECK(rec.index.src.empty());
    CHECK(rec.index.tenant.empty());
    CHECK(rec.index.tokens_in == 0);
    CHECK_FALSE(rec.index.action.empty());
    return true;
  });
  CHECK(t.verify().ok());
}

TEST_CASE("report totals flows by their final verdict", "[audit]") {
  trail t;
  t.write_flows(0, 10);
  reader r(t.db);
  const auto groups = r.report({"src"}, {});
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].key == std::vector<std::string>{"CN"});  // even i: 0, 2, 4, 6, 8
  CHECK(groups[0].flows == 5);
  CHECK(groups[0].blocked == 1);  // i = 0
  CHECK(groups[0].tokens_in == 20);
  CHECK(groups[0].tokens_out == 40);
  CHECK(groups[1].key == std::vector<std::string>{"DE"});
  CHECK(groups[1].blocked == 1);  // i = 5
  CHECK(groups[1].tokens_in == 25);
  record_filter blocked;
  blocked.action = "block";
  const auto by_day = r.report({"dst", "day"}, blocked);
  REQUIRE(by_day.size() == 1);
  CHECK(by_day[0].key.at(0) == "US");
  CHECK(by_day[0].flows == 2);
  CHECK_THROWS_AS(r.report({"planet"}, {}), std::invalid_argument);
}

TEST_CASE("an epoch also ends after its duration, without further records", "[audit]") {
  trail t;
  t.opts.epoch_records = 1000000;
  t.opts.epoch_duration = std::chrono::seconds(1);
  auto s = store::open_store(t.opts);
  const auto first = s->epoch();
  t.write_flows(0, 2, s.get());
  // Bounded wait for the writer's own timer (no timing assertion beyond the bound).
  for (int i = 0; i < 100 && s->epoch() == first; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(s->epoch() == first + 1);
  CHECK(crypto::load_sealing_key(t.opts.sealing_key).epoch == first + 1);
  s->close();
  CHECK(t.verify().ok());
}

TEST_CASE("an unknown index field name is refused at open", "[audit]") {
  trail t;
  t.opts.index_fields = {"action", "colour"};
  CHECK_THROWS_WITH(store::open_store(t.opts), Catch::Contains("unknown index field \"colour\""));
}

TEST_CASE("the checkpoint counter counts the signed checkpoints the store writes", "[audit]") {
  trail t;
  t.opts.epoch_records = 10;
  auto s = store::open_store(t.opts);
  t.write_flows(0, 30, s.get());  // 60 records: several epoch ends
  const auto written = [&] {
    auto d = sql::database(t.db, SQLITE_OPEN_READONLY);
    return static_cast<std::uint64_t>(d.query_int("SELECT count(*) FROM checkpoints"));
  }();
  REQUIRE(written >= 5);
  CHECK(s->get_stats().checkpoints == written);
}

TEST_CASE("under a queue that never empties the WAL is started again and stays bounded", "[audit]") {
  // Background checkpoint passes alone are overtaken by new commits while
  // records keep coming; only a WAL copied to its end starts again. 96 MiB of
  // records are queued at once, so that the writer never waits for one; the
  // -wal file must stay well under that (the writer copies once the WAL is
  // past 4000 pages, 16 MiB of 4 KiB pages, or when offered a short tail).
  trail t;
  t.opts.commit_interval = std::chrono::milliseconds(0);
  t.opts.commit_records = 512;
  t.opts.epoch_records = 1000000;
  constexpr std::uint64_t n = 96u << 20 >> 11;  // records of about 2 KiB each
  t.opts.queue_capacity = n;
  std::vector<record> records;
  records.reserve(n);
  const std::string filler(1900, 'x');
  for (std::uint64_t i = 0; i < n; ++i) {
    records.push_back(make_record(i));
    records.back().payload = "{\"filler\":\"" + filler + std::to_string(i) + "\"}";
  }
  auto s = store::open_store(t.opts);
  ack_counter acks;
  for (auto& r : records) REQUIRE_FALSE(s->append(std::move(r), acks.handler()));
  std::uintmax_t largest = 0;
  const fs::path wal = t.db.string() + "-wal";
  while (acks.ok() + acks.failed() < n) {
    std::error_code ec;
    const auto size = fs::file_size(wal, ec);
    if (!ec) largest = std::max(largest, size);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(acks.failed() == 0);
  const auto st = s->get_stats();
  INFO("largest -wal " << largest << " bytes, " << st.wal_checkpoints << " checkpoint runs, "
                       << st.wal_restarts << " restarts");
  CHECK(st.wal_restarts >= 1);
  CHECK(largest < (40u << 20));
  s->close();
  CHECK(t.verify().ok());
}

TEST_CASE("the store's writer and checkpointer threads are named", "[audit]") {
  const auto thread_names = [] {
    std::multiset<std::string> names;
    for (const auto& t : fs::directory_iterator("/proc/self/task")) {
      std::ifstream in(t.path() / "comm");
      std::string name;
      std::getline(in, name);
      names.insert(name);
    }
    return names;
  };
  trail t;
  auto s = store::open_store(t.opts);
  const auto open = thread_names();
  CHECK(open.count("customs-audit") == 1);
  CHECK(open.count("customs-ckpt") == 1);
  s->close();
  s.reset();
  CHECK(thread_names().count("customs-audit") == 0);
}
