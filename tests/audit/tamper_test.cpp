// Every kind of tampering the issue names is detected, and named.
#include <catch2/catch.hpp>

#include <set>

#include "audit_test_support.hpp"

using namespace customs::audit;
using namespace customs::audit::testing;
namespace crypto = customs::crypto;

namespace {

// A trail of 20 flows (40 records plus epoch starts) in epochs of 10 records.
// Written once; each test gets its own copy of the database and keys.
struct tampered : trail {
  tampered() {
    static trail original;
    static const bool written = (original.write_flows(0, 20), true);
    REQUIRE(written);
    for (const auto& [from, to] : {std::pair{original.keys, keys}, std::pair{original.keys2, keys2}}) {
      fs::remove_all(to);
      fs::copy(from, to);  // copy_file keeps the 0600 modes
    }
    fs::copy_file(original.db, db);
  }
  verify_failure first_failure() {
    const auto sum = verify();
    REQUIRE_FALSE(sum.ok());
    return sum.failures.front();
  }
};

constexpr std::uint64_t victim = 17;  // a flow record in the middle

void require_flow_record(const fs::path& db, std::uint64_t seq) {
  auto d = tamper_db(db);
  REQUIRE(d.query_int(("SELECT kind FROM records WHERE seq = " + std::to_string(seq)).c_str()) <= 2);
}

}  // namespace

TEST_CASE("the untampered fixture verifies", "[audit][tamper]") {
  tampered t;
  require_flow_record(t.db, victim);
  require_flow_record(t.db, victim + 1);
  CHECK(t.verify().ok());
}

TEST_CASE("a changed byte anywhere in a payload is detected as altered", "[audit][tamper]") {
  for (const std::size_t at : {std::size_t{0}, std::size_t{30}, std::size_t{60}}) {
    tampered t;
    flip_blob_byte(t.db, victim, "payload", at);
    const auto f = t.first_failure();
    CHECK(f.kind == failure_kind::altered);
    CHECK(f.seq == victim);
    CHECK_THAT(f.detail, Catch::Contains("payload"));
  }
}

TEST_CASE("a changed header or index field is detected as altered", "[audit][tamper]") {
  for (const char* change :
       {"time_us = time_us + 1", "flow_id = 'flow-x'", "kind = 3 - kind", "epoch = epoch + 1",
        "action = 'tag'", "src = 'FR'", "rules = 'x'", "rule_set_hash = 'def'",
        "tokens_out = tokens_out + 1", "tenant = ''", "route = '/v1/other'", "dst = 'CN'"}) {
    INFO(change);
    tampered t;
    tamper_db(t.db).exec(("UPDATE records SET " + std::string(change) + " WHERE seq = " +
                          std::to_string(victim)).c_str());
    const auto f = t.first_failure();
    CHECK(f.kind == failure_kind::altered);
    CHECK(f.seq == victim);
  }
}

TEST_CASE("a changed stored hash, payload hash or MAC is detected", "[audit][tamper]") {
  {
    tampered t;
    flip_blob_byte(t.db, victim, "hash", 5);
    const auto f = t.first_failure();
    CHECK(f.kind == failure_kind::altered);
    CHECK(f.seq == victim);
  }
  {
    tampered t;
    flip_blob_byte(t.db, victim, "payload_hash", 31);
    const auto f = t.first_failure();
    CHECK(f.kind == failure_kind::altered);
    CHECK(f.seq == victim);
  }
  {
    tampered t;
    flip_blob_byte(t.db, victim, "mac", 0);
    const auto f = t.first_failure();
    CHECK(f.kind == failure_kind::bad_mac);
    CHECK(f.seq == victim);
  }
}

TEST_CASE("a deleted row is detected as missing", "[audit][tamper]") {
  tampered t;
  tamper_db(t.db).exec(("DELETE FROM records WHERE seq = " + std::to_string(victim)).c_str());
  const auto f = t.first_failure();
  CHECK(f.kind == failure_kind::missing);
  CHECK(f.seq == victim);
}

TEST_CASE("two swapped rows are detected as reordered", "[audit][tamper]") {
  tampered t;
  // Each row moves to the other's place, everything but its seq with it.
  const auto a = std::to_string(victim), b = std::to_string(victim + 1);
  tamper_db(t.db).exec(("BEGIN;"
                        "UPDATE records SET seq = -1 WHERE seq = " + a + ";"
                        "UPDATE records SET seq = " + a + " WHERE seq = " + b + ";"
                        "UPDATE records SET seq = " + b + " WHERE seq = -1;"
                        "COMMIT;").c_str());
  const auto f = t.first_failure();
  CHECK(f.kind == failure_kind::reordered);
  CHECK(f.seq == victim);
}

TEST_CASE("a truncated tail is detected against a held checkpoint", "[audit][tamper]") {
  tampered t;
  const auto held = reader(t.db).latest_checkpoint();
  REQUIRE(held);
  auto d = tamper_db(t.db);
  const auto last = d.query_int("SELECT max(seq) FROM records");
  REQUIRE(static_cast<std::uint64_t>(last) == held->seq);
  // The attacker removes the tail and every checkpoint that would betray it.
  d.exec(("DELETE FROM records WHERE seq > " + std::to_string(last - 5)).c_str());
  d.exec(("DELETE FROM checkpoints WHERE seq > " + std::to_string(last - 5)).c_str());
  CHECK(t.verify().ok());  // without the held checkpoint nothing shows
  const auto sum = t.verify(1, held);
  REQUIRE_FALSE(sum.ok());
  CHECK(sum.failures[0].kind == failure_kind::truncated);
  CHECK(sum.failures[0].seq == static_cast<std::uint64_t>(last - 4));
}

TEST_CASE("a truncated tail is detected against the stored checkpoints", "[audit][tamper]") {
  tampered t;
  auto d = tamper_db(t.db);
  const auto last = d.query_int("SELECT max(seq) FROM records");
  d.exec(("DELETE FROM records WHERE seq > " + std::to_string(last - 3)).c_str());
  const auto f = t.first_failure();
  CHECK(f.kind == failure_kind::truncated);
}

TEST_CASE("a rolled-back and re-extended trail is detected against a held checkpoint", "[audit][tamper]") {
  tampered t;
  const auto held = reader(t.db).latest_checkpoint();
  REQUIRE(held);
  // Someone who holds the current keys rewrites the last record and re-chains it.
  const auto key = crypto::load_sealing_key(t.keys / "sealing.key");
  const auto signer = crypto::load_signing_key(t.keys / "signing.key");
  const auto seed = t.seed();
  tamper_db(t.db).exec(("UPDATE records SET action = 'tag' WHERE seq = " + std::to_string(held->seq)).c_str());
  // Give the attacker even the true key of every epoch (only the held checkpoint
  // can catch this).
  std::map<std::uint64_t, crypto::mac_key> keys;
  rechain(t.db, held->seq, [&](std::uint64_t e) -> const crypto::mac_key& {
    if (!keys.count(e)) keys.emplace(e, crypto::evolve_to(seed.key, 0, e));
    return keys.at(e);
  }, signer);
  (void)key;
  CHECK(t.verify().ok());
  const auto sum = t.verify(1, held);
  REQUIRE_FALSE(sum.ok());
  CHECK(sum.failures[0].kind == failure_kind::altered);
  CHECK(sum.failures[0].seq == held->seq);
  CHECK_THAT(sum.failures[0].detail, Catch::Contains("held checkpoint"));
}

TEST_CASE("a forged checkpoint signature is detected", "[audit][tamper]") {
  tampered t;
  auto d = tamper_db(t.db);
  const auto seq = d.query_int("SELECT seq FROM checkpoints ORDER BY id LIMIT 1");
  // A signature by another key (the attacker's own).
  temp_dir other;
  (void)crypto::generate_key_set(other.path, crypto::key_set::signing);
  const auto forged = crypto::load_signing_key(other.path / "signing.key");
  format::checkpoint cp;
  sql::statement st(d, "SELECT seq, epoch, time_us, head FROM checkpoints ORDER BY id LIMIT 1");
  REQUIRE(st.step() == SQLITE_ROW);
  cp.seq = static_cast<std::uint64_t>(st.column_int(0));
  cp.epoch = static_cast<std::uint64_t>(st.column_int(1));
  cp.time_us = st.column_int(2);
  REQUIRE(sql::column_hash(st, 3, cp.head));
  const auto sig = crypto::sign(forged, format::checkpoint_message(cp));
  sql::statement up(d, "UPDATE checkpoints SET signature = ?1 WHERE id = (SELECT min(id) FROM checkpoints)");
  up.bind(1, crypto::byte_view(sig));
  REQUIRE(up.step() == SQLITE_DONE);
  const auto f = t.first_failure();
  CHECK(f.kind == failure_kind::bad_signature);
  CHECK(f.seq == static_cast<std::uint64_t>(seq));
}

TEST_CASE("a checkpoint column stored as another type than its own is detected", "[audit][tamper]") {
  // Each value still reads as the signed one when converted to the column's
  // type (a blob of its digits, a text with a number prefix, a text of the
  // hash bytes), so only the stored type tells the edit.
  for (const char* change :
       {"seq = CAST(seq AS BLOB)", "epoch = CAST(epoch AS BLOB)", "epoch = CAST(epoch AS TEXT) || 'x'",
        "time_us = CAST(time_us AS BLOB)", "head = CAST(head AS TEXT)",
        "signature = CAST(signature AS TEXT)"}) {
    INFO(change);
    tampered t;
    auto d = tamper_db(t.db);
    const auto id = d.query_int("SELECT min(id) FROM checkpoints");
    const auto seq = d.query_int(("SELECT seq FROM checkpoints WHERE id = " + std::to_string(id)).c_str());
    const auto before = d.query_int(
        ("SELECT count(*) FROM checkpoints WHERE typeof(seq) = 'integer' AND typeof(epoch) = 'integer' AND "
         "typeof(time_us) = 'integer' AND typeof(head) = 'blob' AND typeof(signature) = 'blob' AND id = " +
         std::to_string(id)).c_str());
    REQUIRE(before == 1);
    d.exec(("UPDATE checkpoints SET " + std::string(change) + " WHERE id = " + std::to_string(id)).c_str());
    REQUIRE(d.query_int(
                ("SELECT count(*) FROM checkpoints WHERE typeof(seq) = 'integer' AND typeof(epoch) = 'integer' AND "
                 "typeof(time_us) = 'integer' AND typeof(head) = 'blob' AND typeof(signature) = 'blob' AND id = " +
                 std::to_string(id)).c_str()) == 0);
    const auto f = t.first_failure();
    CHECK(f.kind == failure_kind::altered);
    CHECK(f.seq == static_cast<std::uint64_t>(seq));
    CHECK_THAT(f.detail, Catch::Contains("malformed"));
  }
}

TEST_CASE("records re-MACed with a later epoch's key are detected", "[audit][tamper]") {
  tampered t;
  const auto stolen = crypto::load_sealing_key(t.keys / "sealing.key");  // the latest epoch
  const auto signer = crypto::load_signing_key(t.keys / "signing.key");
  auto d = tamper_db(t.db);
  const auto victim_epoch = static_cast<std::uint64_t>(
      d.query_int(("SELECT epoch FROM records WHERE seq = " + std::to_string(victim)).c_str()));
  REQUIRE(victim_epoch < stolen.epoch);
  d.exec(("UPDATE records SET action = 'tag' WHERE seq = " + std::to_string(victim)).c_str());
  rechain(t.db, victim, [&](std::uint64_t) -> const crypto::mac_key& { return stolen.key; }, signer);
  const auto f = t.first_failure();
  CHECK(f.kind == failure_kind::bad_mac);
  CHECK(f.seq == victim);
  // Without the seed, the chain and signatures alone cannot tell.
  verify_options vo;
  vo.signer = crypto::load_signing_public(t.keys / "signing.pub");
  CHECK(verify(t.db, vo).ok());
}

TEST_CASE("a trail rebuilt by a holder of the current key fails in every earlier epoch", "[audit][tamper]") {
  trail t;
  auto s = store::open_store(t.opts);
  t.write_flows(0, 20, s.get());
  // The key is stolen from the running host in the middle of the trail's life.
  const auto stolen = crypto::load_sealing_key(t.keys / "sealing.key");
  t.write_flows(20, 10, s.get());
  s->close();
  const auto signer = crypto::load_signing_key(t.keys / "signing.key");
  REQUIRE(stolen.epoch >= 3);
  // Everything is rewritten: every record gets a new action, the chain is rebuilt
  // from record 1, each record MACed with the best key the attacker has (the true
  // one from the stolen epoch on), and every checkpoint re-signed.
  tamper_db(t.db).exec("UPDATE records SET action = 'tag' WHERE kind IN (1, 2)");
  std::map<std::uint64_t, crypto::mac_key> keys;
  rechain(t.db, 1, [&](std::uint64_t e) -> const crypto::mac_key& {
    const auto from = std::max(e, stolen.epoch);
    if (!keys.count(from)) keys.emplace(from, crypto::evolve_to(stolen.key, stolen.epoch, from));
    return keys.at(from);
  }, signer);
  const auto sum = t.verify(100000);
  REQUIRE_FALSE(sum.ok());
  std::set<std::uint64_t> failing_epochs;
  auto d = tamper_db(t.db);
  for (const auto& f : sum.failures) {
    CHECK(f.kind == failure_kind::bad_mac);
    failing_epochs.insert(static_cast<std::uint64_t>(
        d.query_int(("SELECT epoch FROM records WHERE seq = " + std::to_string(f.seq)).c_str())));
  }
  std::set<std::uint64_t> earlier;
  for (std::uint64_t e = 0; e < stolen.epoch; ++e) earlier.insert(e);
  CHECK(failing_epochs == earlier);
  CHECK(sum.failures.front().seq == 1);
}

TEST_CASE("a trail relabelled to start at the stolen epoch is detected", "[audit][tamper]") {
  tampered t;
  const auto stolen = crypto::load_sealing_key(t.keys / "sealing.key");
  const auto signer = crypto::load_signing_key(t.keys / "signing.key");
  // Keep only the epoch_start of epoch 0 as the start... renumbering every record
  // into the stolen epoch and MACing with the stolen key.
  tamper_db(t.db).exec(("UPDATE records SET epoch = " + std::to_string(stolen.epoch) +
                        "; DELETE FROM records WHERE kind = 16 AND seq > 1;").c_str());
  rechain(t.db, 1, [&](std::uint64_t) -> const crypto::mac_key& { return stolen.key; }, signer);
  const auto f = t.first_failure();
  CHECK(f.seq == 1);
  CHECK(f.kind == failure_kind::altered);
  CHECK_THAT(f.detail, Catch::Contains("epoch 0"));
}

TEST_CASE("a payload removed without an erasure record is detected", "[audit][tamper]") {
  tampered t;
  tamper_db(t.db).exec(("UPDATE records SET payload = NULL WHERE seq = " + std::to_string(victim)).c_str());
  const auto f = t.first_failure();
  CHECK(f.kind == failure_kind::altered);
  CHECK(f.seq == victim);
  CHECK_THAT(f.detail, Catch::Contains("without an erasure record"));
}

TEST_CASE("verify reports every failure when asked to", "[audit][tamper]") {
  tampered t;
  flip_blob_byte(t.db, 5, "mac", 0);
  flip_blob_byte(t.db, 30, "mac", 0);
  const auto sum = t.verify(10);
  REQUIRE(sum.failures.size() == 2);
  CHECK(sum.failures[0].seq == 5);
  CHECK(sum.failures[1].seq == 30);
}

namespace {

// Re-keys the records_flow index entry of record `seq` to `fake_flow` while the
// table row keeps its own flow id: every row, hash, MAC, checkpoint and the
// schema text stay as written, only the index disagrees with the table.
void desync_flow_index(const fs::path& db, std::uint64_t seq, const std::string& fake_flow) {
  std::string real;
  std::int64_t rootpage = 0;
  std::string index_sql;
  {
    auto d = tamper_db(db);
    real = std::string(d.query_text(("SELECT flow_id FROM records WHERE seq = " + std::to_string(seq)).c_str()));
    rootpage = d.query_int("SELECT rootpage FROM sqlite_schema WHERE name = 'records_flow'");
    index_sql = d.query_text("SELECT sql FROM sqlite_schema WHERE name = 'records_flow'");
    sql::statement up(d, "UPDATE records SET flow_id = ?1 WHERE seq = ?2");
    up.bind(1, std::string_view(fake_flow));
    up.bind(2, static_cast<std::int64_t>(seq));
    REQUIRE(up.step() == SQLITE_DONE);
    d.exec("PRAGMA writable_schema=ON");
    d.exec("DELETE FROM sqlite_schema WHERE name = 'records_flow'");
  }
  auto d = tamper_db(db);
  sql::statement up(d, "UPDATE records SET flow_id = ?1 WHERE seq = ?2");
  up.bind(1, std::string_view(real));
  up.bind(2, static_cast<std::int64_t>(seq));
  REQUIRE(up.step() == SQLITE_DONE);
  d.exec("PRAGMA writable_schema=ON");
  sql::statement ins(d, "INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) "
                        "VALUES ('index', 'records_flow', 'records', ?1, ?2)");
  ins.bind(1, rootpage);
  ins.bind(2, std::string_view(index_sql));
  REQUIRE(ins.step() == SQLITE_DONE);
  d.exec("PRAGMA writable_schema=OFF");
}

std::string flow_of(const fs::path& db, std::uint64_t seq) {
  auto d = tamper_db(db);
  return std::string(d.query_text(("SELECT flow_id FROM records WHERE seq = " + std::to_string(seq)).c_str()));
}

}  // namespace

TEST_CASE("a records_flow index that disagrees with the table is detected", "[audit][tamper]") {
  tampered t;
  const std::string other = flow_of(t.db, 5);
  REQUIRE(other != flow_of(t.db, victim));
  desync_flow_index(t.db, victim, other);
  {
    // Looked up through the index, the victim now answers for the other flow.
    auto d = tamper_db(t.db);
    sql::statement q(d, "SELECT seq FROM records INDEXED BY records_flow WHERE flow_id = ?1");
    q.bind(1, std::string_view(other));
    std::set<std::int64_t> seqs;
    while (q.step() == SQLITE_ROW) seqs.insert(q.column_int(0));
    REQUIRE(seqs.count(static_cast<std::int64_t>(victim)) == 1);
  }
  const auto f = t.first_failure();
  CHECK(f.kind == failure_kind::altered);
  CHECK_THAT(f.detail, Catch::Contains("integrity check"));
}

TEST_CASE("erase goes by the table's flow ids and not by a hostile index", "[audit][tamper]") {
  tampered t;
  const std::string other = flow_of(t.db, 5);
  const std::string own = flow_of(t.db, victim);
  desync_flow_index(t.db, victim, other);
  auto opts = t.opts;
  auto s = store::open_store(opts);
  const auto res = s->erase_flow(other, "request 7");
  for (const auto seq : res.erased) CHECK(flow_of(t.db, seq) == other);
  s->close();
  auto d = tamper_db(t.db);
  sql::statement q(d, "SELECT payload IS NOT NULL FROM records WHERE seq = ?1");
  q.bind(1, static_cast<std::int64_t>(victim));
  REQUIRE(q.step() == SQLITE_ROW);
  CHECK(q.column_int(0) == 1);  // the victim (flow `own`) keeps its payload
  INFO(own);
}

TEST_CASE("a payload put back after its erasure is detected", "[audit][tamper]") {
  tampered t;
  const fs::path before = t.dir.path / "before-erase.db";
  fs::copy_file(t.db, before);
  const std::string flow = flow_of(t.db, victim);
  {
    auto s = store::open_store(t.opts);
    REQUIRE(s->erase_flow(flow, "request 8").erased.size() == 2);
  }
  REQUIRE(t.verify().ok());
  // Both payloads of the flow copied back from the copy taken before.
  {
    auto d = tamper_db(t.db);
    d.exec(("ATTACH DATABASE '" + before.string() + "' AS old").c_str());
    d.exec(("UPDATE records SET payload = (SELECT payload FROM old.records o WHERE o.seq = records.seq) "
            "WHERE flow_id = '" + flow + "' AND kind IN (1, 2)").c_str());
  }
  const auto f = t.first_failure();
  CHECK(f.kind == failure_kind::altered);
  CHECK_THAT(f.detail, Catch::Contains("lists it as erased"));
}

TEST_CASE("the checkpoint handed to auditors is the one of the greatest seq whatever its storage id", "[audit][tamper]") {
  tampered t;
  const auto latest = reader(t.db).latest_checkpoint();
  REQUIRE(latest);
  // An older checkpoint moved to the end of the storage order.
  tamper_db(t.db).exec("UPDATE checkpoints SET id = 1000000 WHERE seq = (SELECT min(seq) FROM checkpoints)");
  const auto after = reader(t.db).latest_checkpoint();
  REQUIRE(after);
  CHECK(after->seq == latest->seq);
}

TEST_CASE("a held checkpoint at seq 0 is refused", "[audit][tamper]") {
  tampered t;
  auto held = reader(t.db).latest_checkpoint();
  REQUIRE(held);
  held->seq = 0;
  const auto sum = t.verify(1, held);
  REQUIRE_FALSE(sum.ok());
  CHECK_THAT(sum.failures.front().detail, Catch::Contains("held checkpoint names no record"));
}
