// A trail is outside input for the verifier and the reader: crafted databases
// (extra schema objects, malformed rows, over-large values, hostile epochs) are
// reported as failures, never crash them or make them read without bound. And
// the writer keeps every record within the format's size bounds.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <array>

#include "audit/row.hpp"
#include "audit_test_support.hpp"

using namespace customs::audit;
using namespace customs::audit::testing;
namespace crypto = customs::crypto;

namespace {

// A small valid trail (closed), ready to be tampered with.
struct small_trail : trail {
  small_trail() {
    opts.epoch_records = 4;
    write_flows(0, 5);
  }
  verify_failure first_failure() const {
    const auto sum = verify();
    REQUIRE_FALSE(sum.ok());
    return sum.failures[0];
  }
};

bool any_detail(const verify_summary& s, const std::string& needle) {
  for (const auto& f : s.failures)
    if (f.detail.find(needle) != std::string::npos) return true;
  return false;
}

// The row image of decode_row_image: u8 type then the value, per column.
struct image_builder {
  crypto::bytes out;
  void le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  image_builder& integer(std::int64_t v) {
    out.push_back(SQLITE_INTEGER);
    le(static_cast<std::uint64_t>(v), 8);
    return *this;
  }
  image_builder& bytes(int type, std::string_view s) {
    out.push_back(static_cast<std::uint8_t>(type));
    le(s.size(), 4);
    out.insert(out.end(), s.begin(), s.end());
    return *this;
  }
  image_builder& text(std::string_view s) { return bytes(SQLITE_TEXT, s); }
  image_builder& blob(std::string_view s) { return bytes(SQLITE_BLOB, s); }
  image_builder& null() {
    out.push_back(SQLITE_NULL);
    return *this;
  }
};

// A well-formed flow record as an image; `payload` as given.
image_builder valid_image(std::string_view payload) {
  image_builder b;
  const std::string h32(32, 'h');
  b.integer(7).integer(1).integer(0).integer(1700000000000000);
  b.text("flow-7").text("/openai/").text("CN").text("US").text("t").text("allow").text("r1,r2").text("abc");
  b.integer(10).integer(20);
  b.blob(h32).blob(payload).blob(h32).blob(h32);
  return b;
}

}  // namespace

TEST_CASE("hostile trail: an added table, index, view or trigger fails verification", "[audit][hostile]") {
  for (const char* sql : {"CREATE TABLE extra (x)", "CREATE INDEX records_time ON records(time_us)",
                          "CREATE VIEW v AS SELECT seq FROM records",
                          "CREATE TRIGGER t AFTER INSERT ON checkpoints BEGIN DELETE FROM records; END"}) {
    INFO(sql);
    small_trail t;
    REQUIRE(t.verify().ok());
    tamper_db(t.db).exec(sql);
    const auto f = t.first_failure();
    CHECK(f.kind == failure_kind::altered);
    CHECK(f.seq == 0);
    CHECK_THAT(f.detail, Catch::Contains("that the audit format does not have"));
  }
}

TEST_CASE("hostile trail: the writer refuses to open a trail with an added trigger", "[audit][hostile]") {
  small_trail t;
  tamper_db(t.db).exec("CREATE TRIGGER t AFTER INSERT ON checkpoints BEGIN DELETE FROM records; END");
  CHECK_THROWS_WITH(store::open_store(t.opts), Catch::Contains("holds a trigger 't' that the audit format does not have"));
  // Nothing ran: the records are all there.
  auto d = tamper_db(t.db);
  CHECK(d.query_int("SELECT count(*) FROM records") > 10);
}

TEST_CASE("hostile trail: a records table of another definition fails without its rows being read", "[audit][hostile]") {
  small_trail t;
  {
    auto d = tamper_db(t.db);
    d.exec("ALTER TABLE records ADD COLUMN note TEXT");
  }
  const auto sum = t.verify(10);
  REQUIRE_FALSE(sum.ok());
  CHECK(any_detail(sum, "that the audit format does not have"));
  CHECK(sum.records == 0);
}

TEST_CASE("hostile trail: a dropped index fails verification", "[audit][hostile]") {
  small_trail t;
  tamper_db(t.db).exec("DROP INDEX records_flow");
  const auto f = t.first_failure();
  CHECK(f.kind == failure_kind::altered);
  CHECK_THAT(f.detail, Catch::Contains("lacks the format's index 'records_flow'"));
}

TEST_CASE("hostile trail: malformed rows are named, not trusted", "[audit][hostile]") {
  const std::pair<const char*, const char*> cases[] = {
      {"UPDATE records SET hash = substr(hash, 1, 31) WHERE seq = 3", "a hash column is not 32 bytes"},
      {"UPDATE records SET mac = 'x' WHERE seq = 3", "a hash column is not 32 bytes"},
      {"UPDATE records SET tokens_in = 'many' WHERE seq = 3", "an integer column is not an integer"},
      {"UPDATE records SET tokens_out = 1.5 WHERE seq = 3", "an integer column is not an integer"},
      {"UPDATE records SET tokens_in = -2 WHERE seq = 3", "a token count is negative"},
      {"UPDATE records SET epoch = -1 WHERE seq = 3", "epoch is negative"},
      {"UPDATE records SET kind = 99 WHERE seq = 3", "unknown record kind"},
      {"UPDATE records SET route = x'00ff' WHERE seq = 3", "an index column is not text"},
      {"UPDATE records SET payload = 'text, not a blob' WHERE seq = 3", "the payload is not a blob"},
  };
  for (const auto& [sql, problem] : cases) {
    INFO(sql);
    small_trail t;
    tamper_db(t.db).exec(sql);
    const auto f = t.first_failure();
    CHECK(f.kind == failure_kind::altered);
    CHECK(f.seq == 3);
    CHECK_THAT(f.detail, Catch::Contains(problem));
    // The reader reports it per record and goes on.
    reader r(t.db);
    r.set_auditor_key(crypto::load_auditor_secret(t.keys / "auditor.key"));
    std::size_t n = 0;
    std::string error_at_3;
    record_filter all;
    all.include_internal = true;
    r.for_each(all, [&](const read_record& rec) {
      ++n;
      if (rec.seq == 3) error_at_3 = rec.payload_error;
      return true;
    });
    CHECK(n >= 10);
    CHECK_THAT(error_at_3, Catch::Contains(problem));
  }
}

TEST_CASE("hostile trail: a record with seq 0 or below is named", "[audit][hostile]") {
  small_trail t;
  tamper_db(t.db).exec("UPDATE records SET seq = -5 WHERE seq = 1");
  const auto sum = t.verify(10);
  REQUIRE_FALSE(sum.ok());
  CHECK(any_detail(sum, "a record has seq -5 (seqs start at 1)"));
  CHECK(sum.failures[0].seq == 0);
}

TEST_CASE("hostile trail: an index field or payload over the format's bounds is malformed, not loaded whole", "[audit][hostile]") {
  {
    small_trail t;
    tamper_db(t.db).exec(("UPDATE records SET tenant = '" + std::string(format::max_field_bytes + 1, 't') +
                          "' WHERE seq = 2").c_str());
    const auto f = t.first_failure();
    CHECK(f.seq == 2);
    CHECK_THAT(f.detail, Catch::Contains("an index field is longer than the format allows"));
  }
  {
    small_trail t;
    tamper_db(t.db).exec(("UPDATE records SET payload = zeroblob(" +
                          std::to_string(format::max_stored_payload_bytes + 1) + ") WHERE seq = 2").c_str());
    const auto f = t.first_failure();
    CHECK(f.seq == 2);
    CHECK_THAT(f.detail, Catch::Contains("the payload is larger than the format allows"));
  }
}

TEST_CASE("hostile trail: a value over the reading limit stops verification with an error naming where", "[audit][hostile]") {
  small_trail t;
  tamper_db(t.db).exec(("UPDATE records SET flow_id = '" +
                        std::string(static_cast<std::size_t>(sql::max_untrusted_value_bytes) + 1, 'f') +
                        "' WHERE seq = 6").c_str());
  CHECK_THROWS_WITH(t.verify(), Catch::Contains("after seq 5"));
  reader r(t.db);
  CHECK_THROWS_WITH(r.for_each({}, [](const read_record&) { return true; }), Catch::Contains("too big"));
}

TEST_CASE("hostile trail: records claiming far and alternating epochs exhaust the key evolution budget", "[audit][hostile]") {
  small_trail t;
  {
    auto d = tamper_db(t.db);
    // Every other record claims an epoch 2^16 away from the last one.
    d.exec("UPDATE records SET epoch = CASE WHEN seq % 2 = 0 THEN 65536 ELSE 0 END WHERE seq > 1");
  }
  const auto sum = t.verify(100);
  REQUIRE_FALSE(sum.ok());
  std::size_t bad_macs = 0;
  for (const auto& f : sum.failures) bad_macs += f.kind == failure_kind::bad_mac;
  CHECK(bad_macs >= 5);
  CHECK(any_detail(sum, "more key evolution than the trail's size allows"));
}

TEST_CASE("hostile trail: many checkpoints are checked in one pass", "[audit][hostile]") {
  small_trail t;
  {
    auto d = tamper_db(t.db);
    d.exec("BEGIN");
    // A thousand copies of the stored checkpoints, and some beyond the end.
    d.exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) "
           "INSERT INTO checkpoints (seq, epoch, time_us, head, signature, reason) "
           "SELECT c.seq, c.epoch, c.time_us, c.head, c.signature, 'copy' FROM checkpoints c, n");
    d.exec("INSERT INTO checkpoints (seq, epoch, time_us, head, signature, reason) "
           "SELECT seq + 1000, epoch, time_us, head, signature, 'beyond' FROM checkpoints LIMIT 3");
    d.exec("COMMIT");
  }
  const auto sum = t.verify(5);
  REQUIRE_FALSE(sum.ok());
  CHECK(sum.failures[0].kind == failure_kind::truncated);
  CHECK(sum.checkpoints > 3000);
}

TEST_CASE("row images: a valid image decodes, malformed ones are refused", "[audit][hostile]") {
  stored_row row;
  const auto good = valid_image("payload");
  REQUIRE(decode_row_image(good.out, row));
  CHECK(row.well_formed);
  CHECK(row.h.seq == 7);
  CHECK(row.h.index.rules == std::vector<std::string>{"r1", "r2"});
  CHECK(std::string(row.payload.begin(), row.payload.end()) == "payload");
  // Truncated anywhere, or with bytes after the last column: not an image.
  for (std::size_t n = 0; n < good.out.size(); n += 7) {
    INFO(n);
    CHECK_FALSE(decode_row_image(crypto::byte_view(good.out.data(), n), row));
    CHECK_FALSE(row.well_formed);
  }
  auto longer = good.out;
  longer.push_back(0);
  CHECK_FALSE(decode_row_image(longer, row));
  // An unknown type code.
  auto odd = good.out;
  odd[0] = 9;
  CHECK_FALSE(decode_row_image(odd, row));
  // A NULL payload is an erased one.
  image_builder erased;
  const std::string h32(32, 'h');
  erased.integer(1).integer(2).integer(0).integer(0);
  for (int i = 0; i < 8; ++i) erased.text("");
  erased.integer(0).integer(0).blob(h32).null().blob(h32).blob(h32);
  REQUIRE(decode_row_image(erased.out, row));
  CHECK(row.well_formed);
  CHECK(row.payload_null);
}

TEST_CASE("writer bounds: a payload over the record size limit is replaced by the documented marker", "[audit][bounds]") {
  trail t;
  auto s = store::open_store(t.opts);
  auto r = make_record(1);
  r.payload = "{\"request_texts\":[\"" + std::string(format::max_payload_bytes, 'x') + "\"]}";
  const auto original = r.payload.size();
  ack_counter acks;
  REQUIRE_FALSE(s->append(std::move(r), acks.handler()));
  acks.wait_for(1);
  REQUIRE(acks.ok() == 1);
  CHECK(s->get_stats().records_truncated == 1);
  s->close();
  CHECK(t.verify().ok());
  reader rd(t.db);
  rd.set_auditor_key(crypto::load_auditor_secret(t.keys / "auditor.key"));
  std::optional<std::string> payload;
  rd.for_each({}, [&](const read_record& rec) {
    if (rec.flow_id == "flow-1") payload = rec.payload;
    return true;
  });
  REQUIRE(payload);
  CHECK(*payload == format::payload_over_limit(original));
  CHECK_THAT(*payload, Catch::StartsWith("{\"truncated\":{\"reason\":\"payload over the audit record size limit\""));
}

TEST_CASE("writer bounds: a payload at the limit is kept whole", "[audit][bounds]") {
  trail t;
  auto s = store::open_store(t.opts);
  auto r = make_record(1);
  r.payload = "{\"x\":\"" + std::string(format::max_payload_bytes - 8, 'x') + "\"}";
  REQUIRE(r.payload.size() == format::max_payload_bytes);
  const std::string want = r.payload;
  ack_counter acks;
  REQUIRE_FALSE(s->append(std::move(r), acks.handler()));
  acks.wait_for(1);
  CHECK(s->get_stats().records_truncated == 0);
  s->close();
  CHECK(t.verify().ok());
  reader rd(t.db);
  rd.set_auditor_key(crypto::load_auditor_secret(t.keys / "auditor.key"));
  std::size_t size = 0;
  rd.for_each({}, [&](const read_record& rec) {
    if (rec.flow_id == "flow-1" && rec.payload) size = rec.payload->size();
    return true;
  });
  CHECK(size == want.size());
}

TEST_CASE("writer bounds: index fields over the bound are cut and the record still verifies", "[audit][bounds]") {
  trail t;
  auto s = store::open_store(t.opts);
  auto r = make_record(1);
  r.index.tenant = std::string(format::max_field_bytes - 1, 't') + "\xc3\xa9";  // é across the bound
  r.index.rules.clear();
  for (int i = 0; i < 10000; ++i) r.index.rules.push_back("rule-" + std::to_string(i));
  ack_counter acks;
  REQUIRE_FALSE(s->append(std::move(r), acks.handler()));
  acks.wait_for(1);
  CHECK(s->get_stats().records_truncated == 1);
  s->close();
  CHECK(t.verify().ok());
  reader rd(t.db);
  rd.for_each({}, [&](const read_record& rec) {
    if (rec.flow_id != "flow-1") return true;
    CHECK(rec.index.tenant == std::string(format::max_field_bytes - 1, 't'));
    CHECK(rec.index.rules.back() == "...");
    CHECK(format::join_rules(rec.index.rules).size() <= format::max_field_bytes);
    return true;
  });
}

TEST_CASE("writer bounds: the queue refuses a record past queue_bytes at once", "[audit][bounds]") {
  trail t;
  t.opts.queue_bytes = 1024;
  t.opts.commit_interval = std::chrono::milliseconds(200);
  auto s = store::open_store(t.opts);
  auto big = make_record(1);
  big.payload = std::string(2000, 'x');
  CHECK(s->append(std::move(big)) == make_error_code(errc::queue_full));
  CHECK_FALSE(s->append(make_record(2)));
  CHECK(s->get_stats().append_refused == 1);
}

TEST_CASE("hostile trail: a FIFO or a directory given as the database is refused at once", "[audit][hostile]") {
  // SQLite opens a FIFO and waits on it for ever: verify, the reader and the
  // writer refuse what is not a regular file before opening it.
  temp_dir dir;
  const fs::path fifo = dir.path / "trail.db";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  trail t;
  for (const fs::path& p : {fifo, dir.path}) {
    INFO(p);
    CHECK_THROWS_WITH(verify(p, verify_options{}), Catch::Contains("not a regular file"));
    CHECK_THROWS_WITH(reader(p), Catch::Contains("not a regular file"));
    auto opts = t.opts;
    opts.db = p;
    CHECK_THROWS_WITH(store::open_store(opts), Catch::Contains("not a regular file"));
  }
}
