// libFuzzer target: the audit verifier (audit::verify) and reader
// (audit::reader) on a small real trail edited by the input, as an attacker who
// holds the database file (but no key) edits it.
//
// Once per process a trail is written with the real store: three epochs of
// flows, an erased flow, checkpoints. Each input then edits a fresh copy:
//   byte 0 even: SQL edits. Each edit is an operation byte (update a records
//     column / delete a record / move a record to another seq / copy a record
//     to a new seq / update a checkpoints column / delete a checkpoint / set
//     user_version), a row byte, a column byte and a value (NULL, an integer,
//     a text, a blob, or the value of the same column in another row).
//   byte 0 odd: raw bytes of the file overwritten (pairs of a 16-bit position,
//     scaled to the file, and a byte).
// The copy is verified with the sealing seed, the trusted signer and the last
// checkpoint held, and read with the auditor key.
//
// Properties:
//   - the verifier and the reader throw nothing but std::runtime_error;
//   - tamper evidence: when the records (every column, typed, in seq order)
//     differ from the original, or a checkpoint's signed columns are not those
//     of an original checkpoint, or the file no longer reads, verification
//     fails (or refuses the file with std::runtime_error). Deleting or copying
//     checkpoint rows and editing their unsigned columns is allowed.
#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "audit/reader.hpp"
#include "audit/store.hpp"
#include "audit/verifier.hpp"
#include "crypto/key_file.hpp"
#include "tests/fuzz/fuzz_files.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

namespace fs = std::filesystem;
namespace audit = customs::audit;
namespace crypto = customs::crypto;
using customs::fuzz::check;

struct fixture {
  fs::path dir;
  std::string image;  // the original database file
  crypto::sealing_state seed;
  crypto::sign_public_key signer{};
  crypto::box_secret_key auditor{};
  audit::format::checkpoint held;
  std::uint64_t records = 0;
};

void write_trail(const fs::path& db, const fs::path& keys) {
  audit::writer_options o;
  o.db = db;
  o.auditor_keys = {keys / "auditor.pub"};
  o.sealing_key = keys / "sealing.key";
  o.signing_key = keys / "signing.key";
  o.epoch_records = 5;
  o.commit_interval = std::chrono::milliseconds(1);
  auto s = audit::store::open_store(o);
  std::size_t pending = 0;
  std::mutex mu;
  std::condition_variable cv;
  for (int i = 0; i < 6; ++i) {
    for (auto kind : {audit::record_kind::flow_opened, audit::record_kind::flow_closed}) {
      audit::record r;
      r.kind = kind;
      r.flow_id = "flow-" + std::to_string(i);
      r.index = {"/openai/", i % 2 ? "CN" : "DE", "US", "t", i % 3 ? "allow" : "block",
                 i % 3 ? std::vector<std::string>{} : std::vector<std::string>{"cn.pipl.block", "x"},
                 "abc", static_cast<std::uint64_t>(i), 2u * i};
      r.payload = "{\"request_texts\":[\"hello " + std::to_string(i) + "\"],\"findings\":[]}";
      {
        std::lock_guard lk(mu);
        ++pending;
      }
      const auto ec = s->append(std::move(r), [&](std::error_code e, std::uint64_t) {
        if (e) customs::fuzz::fail("the fixture trail could not be written");
        std::lock_guard lk(mu);
        --pending;
        cv.notify_all();
      });
      if (ec) customs::fuzz::fail("the fixture trail could not be written");
    }
  }
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return pending == 0; });
  }
  (void)s->erase_flow("flow-2", "erasure request");
  s->close();
}

const fixture& the_fixture() {
  static const fixture f = [] {
    fixture x;
    x.dir = customs::fuzz::scratch_dir() / "trail";
    const fs::path keys = x.dir / "keys", db = x.dir / "audit.db";
    (void)crypto::generate_key_set(keys);
    write_trail(db, keys);
    sqlite3* h = nullptr;
    if (sqlite3_open(db.c_str(), &h) != SQLITE_OK ||
        sqlite3_exec(h, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr) != SQLITE_OK) {
      customs::fuzz::fail("cannot checkpoint the fixture trail");
    }
    sqlite3_close(h);
    std::ifstream in(db, std::ios::binary);
    x.image.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    x.seed = crypto::load_sealing_seed(keys / "sealing.seed");
    x.signer = crypto::load_signing_public(keys / "signing.pub");
    x.auditor = crypto::load_auditor_secret(keys / "auditor.key");
    audit::reader r(db);
    auto cp = r.latest_checkpoint();
    if (!cp) customs::fuzz::fail("the fixture trail has no checkpoint");
    x.held = *cp;
    audit::verify_options vo;
    vo.seed = &x.seed;
    vo.signer = x.signer;
    vo.held = x.held;
    const auto sum = audit::verify(db, vo);
    if (!sum.ok() || sum.erased_payloads == 0 || sum.epochs < 3) customs::fuzz::fail("the fixture trail is not as meant");
    x.records = sum.records;
    return x;
  }();
  return f;
}

// ---- what the file holds, read with SQLite directly -------------------------

// One column value: its SQLite type and its bytes.
using cell = std::pair<int, std::string>;
using row = std::vector<cell>;

cell read_cell(sqlite3_stmt* st, int i) {
  const int type = sqlite3_column_type(st, i);
  switch (type) {
    case SQLITE_INTEGER: return {type, std::to_string(sqlite3_column_int64(st, i))};
    case SQLITE_FLOAT: return {type, std::to_string(sqlite3_column_double(st, i))};
    case SQLITE_NULL: return {type, {}};
    default: {
      const void* p = sqlite3_column_blob(st, i);
      const int n = sqlite3_column_bytes(st, i);
      return {type, p == nullptr ? std::string() : std::string(static_cast<const char*>(p), static_cast<std::size_t>(n))};
    }
  }
}

std::optional<std::vector<row>> query(sqlite3* h, const char* sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(h, sql, -1, &st, nullptr) != SQLITE_OK) return std::nullopt;
  std::vector<row> rows;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    row r;
    for (int i = 0; i < sqlite3_column_count(st); ++i) r.push_back(read_cell(st, i));
    rows.push_back(std::move(r));
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return std::nullopt;
  return rows;
}

struct contents {
  std::vector<row> records;      // every column, by seq
  std::set<row> checkpoints;     // the signed columns
  std::vector<row> pragmas;      // application_id, user_version
  bool operator==(const contents&) const = default;
};

std::optional<contents> read_contents(const fs::path& db) {
  sqlite3* h = nullptr;
  std::optional<contents> out;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    auto rec = query(h, "SELECT * FROM records ORDER BY seq");
    auto cps = query(h, "SELECT seq, epoch, time_us, head, signature FROM checkpoints");
    auto app = query(h, "PRAGMA application_id");
    auto ver = query(h, "PRAGMA user_version");
    if (rec && cps && app && ver) {
      out = contents{std::move(*rec), std::set<row>(cps->begin(), cps->end()), std::move(*app)};
      out->pragmas.insert(out->pragmas.end(), ver->begin(), ver->end());
    }
  }
  sqlite3_close(h);
  return out;
}

// ---- edits ------------------------------------------------------------------

constexpr const char* record_columns[] = {"seq",   "kind",  "epoch",  "time_us",       "flow_id",   "route",
                                          "src",   "dst",   "tenant", "action",        "rules",     "rule_set_hash",
                                          "tokens_in", "tokens_out", "payload_hash", "payload", "hash", "mac"};
constexpr const char* checkpoint_columns[] = {"id", "seq", "epoch", "time_us", "head", "signature", "reason"};

// Binds the value the input describes to parameter 1 of st (or, for "another
// row's value", rewrites nothing and binds that row's number to parameter 1 of
// a sub-select the caller wrote).
void bind_value(sqlite3_stmt* st, customs::fuzz::input& in) {
  switch (in.byte() % 5) {
    case 0: sqlite3_bind_null(st, 1); break;
    case 1: {
      std::int64_t v = 0;
      for (int i = 0; i < 8; ++i) v = static_cast<std::int64_t>(static_cast<std::uint64_t>(v) << 8 | in.byte());
      sqlite3_bind_int64(st, 1, v);
      break;
    }
    case 2: sqlite3_bind_int64(st, 1, static_cast<std::int8_t>(in.byte())); break;
    case 3: {
      const auto t = in.bytes(in.byte() % 40);
      sqlite3_bind_text(st, 1, t.data(), static_cast<int>(t.size()), SQLITE_TRANSIENT);
      break;
    }
    default: {
      const auto b = in.bytes(in.byte() % 40);
      sqlite3_bind_blob(st, 1, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT);
      break;
    }
  }
}

void run(sqlite3* h, const std::string& sql, customs::fuzz::input* value) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) return;
  if (value != nullptr) bind_value(st, *value);
  (void)sqlite3_step(st);  // constraint failures leave the row as it was
  sqlite3_finalize(st);
}

void sql_edits(const fs::path& db, customs::fuzz::input& in, std::uint64_t records) {
  sqlite3* h = nullptr;
  if (sqlite3_open(db.c_str(), &h) != SQLITE_OK) customs::fuzz::fail("cannot open the copy");
  // A scratch copy: no fsync per edit.
  (void)sqlite3_exec(h, "PRAGMA synchronous=OFF", nullptr, nullptr, nullptr);
  const auto seq = [&] { return std::to_string(1 + in.byte() % (records + 2)); };
  for (int edits = 0; !in.rest().empty() && edits < 16; ++edits) {
    const std::uint8_t op = in.byte() % 8;
    switch (op) {
      case 0: {
        const std::string s = seq();
        const std::string col = record_columns[in.byte() % std::size(record_columns)];
        run(h, "UPDATE records SET " + col + " = ?1 WHERE seq = " + s, &in);
        break;
      }
      case 1: run(h, "DELETE FROM records WHERE seq = " + seq(), nullptr); break;
      case 2: {
        const std::string from = seq(), to = seq();
        run(h, "UPDATE records SET seq = " + to + " WHERE seq = " + from, nullptr);
        break;
      }
      case 3: {
        const std::string from = seq(), to = seq();
        run(h, "INSERT INTO records SELECT " + to + ", kind, epoch, time_us, flow_id, route, src, dst, tenant, "
               "action, rules, rule_set_hash, tokens_in, tokens_out, payload_hash, payload, hash, mac "
               "FROM records WHERE seq = " + from, nullptr);
        break;
      }
      case 4: {
        const std::string id = std::to_string(1 + in.byte() % 8);
        const std::string col = checkpoint_columns[in.byte() % std::size(checkpoint_columns)];
        run(h, "UPDATE checkpoints SET " + col + " = ?1 WHERE id = " + id, &in);
        break;
      }
      case 5: run(h, "DELETE FROM checkpoints WHERE id = " + std::to_string(1 + in.byte() % 8), nullptr); break;
      case 6: {
        // Another row's value of the same column.
        const std::string s = seq(), other = seq();
        const std::string col = record_columns[in.byte() % std::size(record_columns)];
        run(h, "UPDATE records SET " + col + " = (SELECT " + col + " FROM records WHERE seq = " + other +
                   ") WHERE seq = " + s, nullptr);
        break;
      }
      default: run(h, "PRAGMA user_version = " + std::to_string(in.byte() % 3), nullptr); break;
    }
  }
  sqlite3_close(h);
}

void raw_edits(std::string& image, customs::fuzz::input& in) {
  for (int edits = 0; !in.rest().empty() && edits < 16; ++edits) {
    const std::size_t at = (static_cast<std::size_t>(in.byte()) << 8 | in.byte()) * image.size() / 65536;
    image[at] = static_cast<char>(in.byte());
  }
}

void remove_db(const fs::path& db) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(db.string() + suffix, ec);
}

}  // namespace

// The one-time set-up (rule compilation or a written trail; seconds under the
// sanitizers and coverage) runs before libFuzzer starts timing inputs.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)the_fixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fixture& fx = the_fixture();
  customs::fuzz::input in(data, size);
  const bool raw = in.byte() & 1;
  const fs::path db = customs::fuzz::scratch_dir() / "edited.db";
  remove_db(db);
  std::string image = fx.image;
  if (raw) raw_edits(image, in);
  customs::fuzz::write_file(db, image);
  if (!raw) sql_edits(db, in, fx.records);

  static const auto original = read_contents(fx.dir / "audit.db");
  check(original.has_value(), "the fixture trail does not read");
  const auto now = read_contents(db);
  bool changed = !now.has_value() || now->records != original->records || now->pragmas != original->pragmas;
  if (now && !changed) {
    for (const auto& c : now->checkpoints) changed = changed || !original->checkpoints.contains(c);
  }

  bool verified = false;
  try {
    audit::verify_options vo;
    vo.seed = &fx.seed;
    vo.signer = fx.signer;
    vo.held = fx.held;
    verified = audit::verify(db, vo).ok();
  } catch (const std::runtime_error&) {
    verified = false;
  }
  check(!(changed && verified), "an edited trail verifies");
  // Raw edits may break pages no record lives in: SQLite's check rightly fails.
  check(raw || changed || verified, "an unedited trail does not verify");

  try {
    audit::reader r(db);
    r.set_auditor_key(fx.auditor);
    std::size_t n = 0;
    r.for_each({}, [&](const audit::read_record&) { return ++n < 64; });
    (void)r.latest_checkpoint();
    (void)r.report({"src", "day"}, {});
  } catch (const std::runtime_error&) {
  }
  remove_db(db);
  return 0;
}
