#include "audit/reader.hpp"

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <variant>

#include "audit/row.hpp"
#include "audit/schema.hpp"
#include "audit/sqlite.hpp"

namespace customs::audit {

namespace {

void json_escape(std::string& out, std::string_view s) {
  out.push_back('"');
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

// WHERE clause fragments and their bound values, built from a filter.
struct where_clause {
  std::string sql;
  std::vector<std::variant<std::int64_t, std::string>> values;
  void add(const std::string& cond) { sql += (sql.empty() ? " WHERE " : " AND ") + cond; }
  void add(const std::string& cond, std::variant<std::int64_t, std::string> v) {
    values.push_back(std::move(v));
    add(cond + std::to_string(values.size()));
  }
  void bind(sql::statement& st) const {
    for (std::size_t i = 0; i < values.size(); ++i) {
      const int at = static_cast<int>(i + 1);
      if (const auto* n = std::get_if<std::int64_t>(&values[i])) st.bind(at, *n);
      else st.bind(at, std::string_view(std::get<std::string>(values[i])));
    }
  }
};

where_clause make_where(const record_filter& f, const std::string& p) {
  where_clause w;
  if (!f.include_internal) w.add(p + "kind IN (1, 2, 3)");
  if (f.since_us) w.add(p + "time_us >= ?", *f.since_us);
  if (f.until_us) w.add(p + "time_us < ?", *f.until_us);
  if (f.flow) w.add(p + "flow_id = ?", *f.flow);
  if (f.action) w.add(p + "action = ?", *f.action);
  if (f.last_of_flow || (f.action && f.action_final)) {
    // The flow's last flow record (through the flow_id index).
    const std::string outer = p.empty() ? std::string("records.") : p;
    w.add(p + "kind IN (1, 2) AND " + p + "seq = (SELECT max(f.seq) FROM records f WHERE f.flow_id = " + outer +
          "flow_id AND f.kind IN (1, 2))");
  }
  if (f.src) w.add(p + "src = ?", *f.src);
  if (f.dst) w.add(p + "dst = ?", *f.dst);
  if (f.tenant) w.add(p + "tenant = ?", *f.tenant);
  if (f.rule) {
    w.values.emplace_back(*f.rule);
    w.add("instr(',' || " + p + "rules || ',', ',' || ?" + std::to_string(w.values.size()) +
          " || ',') > 0");
  }
  return w;
}

}  // namespace

struct reader::impl {
  static constexpr std::size_t max_cached_epochs = 4096;
  sql::database db;
  std::optional<crypto::box_public_key> pk;
  crypto::box_secret_key sk;
  std::map<std::uint64_t, crypto::aead_key> data_keys;
  std::map<std::uint64_t, std::string> key_errors;
  std::optional<std::map<std::uint64_t, std::int64_t>> epoch_starts;  // epoch -> seq of its (first) epoch_start

  // The file may be hostile: opened as untrusted, values bounded (row.hpp).
  explicit impl(const std::filesystem::path& file) : db(sql::open_untrusted(file)) {
    // No memory map: a file that shrinks under a mapped read (truncated while
    // it is read) would end the process with SIGBUS; read(2) sees an error.
    if (db.query_int("PRAGMA application_id") != format::application_id)
      throw std::runtime_error(file.string() + ": not a customs audit database");
    const auto v = db.query_int("PRAGMA user_version");
    if (v != format::schema_version)
      throw std::runtime_error(file.string() + ": audit schema version " + std::to_string(v) +
                               " is not the one this build reads");
  }

  // The data key of an epoch, unsealed from its epoch_start record.
  const crypto::aead_key* data_key(std::uint64_t epoch, std::string& error) {
    if (const auto it = data_keys.find(epoch); it != data_keys.end()) return &it->second;
    if (const auto it = key_errors.find(epoch); it != key_errors.end()) {
      error = it->second;
      return nullptr;
    }
    // Where each epoch starts, found in one pass over the table the first
    // time a key is needed: a lookup per epoch read the table from its start
    // each time (a trail of many short epochs, hostile or not, took time
    // quadratic in its length).
    if (!epoch_starts) {
      epoch_starts.emplace();
      sql::statement all(db, "SELECT seq, epoch FROM records WHERE kind = 16 ORDER BY seq");
      while (all.step() == SQLITE_ROW) {
        if (sqlite3_column_type(all.get(), 0) != SQLITE_INTEGER || sqlite3_column_type(all.get(), 1) != SQLITE_INTEGER)
          continue;  // malformed: verify names it; no key comes from it
        epoch_starts->emplace(static_cast<std::uint64_t>(all.column_int(1)), all.column_int(0));
      }
    }
    sql::statement st(db, "SELECT payload FROM records WHERE seq = ?1");
    const auto at = epoch_starts->find(epoch);
    if (at != epoch_starts->end()) st.bind(1, at->second);
    std::string why;
    if (at == epoch_starts->end() || st.step() != SQLITE_ROW) {
      why = "no epoch_start record for epoch " + std::to_string(epoch);
    } else if (const auto body = format::decode_epoch_start(st.column_blob(0)); !body) {
      why = "epoch_start record of epoch " + std::to_string(epoch) + " is malformed";
    } else {
      why = "epoch " + std::to_string(epoch) + " was not sealed to this auditor key";
      for (const auto& k : body->keys) {
        if (k.auditor != *pk) continue;
        crypto::aead_key dk;
        if (crypto::seal_open(k.box, *pk, sk, {dk.data(), dk.size()})) {
          if (data_keys.size() >= max_cached_epochs) data_keys.clear();
          return &data_keys.emplace(epoch, std::move(dk)).first->second;
        }
        why = "the sealed data key of epoch " + std::to_string(epoch) + " does not open";
      }
    }
    // Bounded caches: a hostile trail may name any number of epochs.
    if (key_errors.size() >= max_cached_epochs) key_errors.clear();
    key_errors[epoch] = why;
    error = why;
    return nullptr;
  }
};

reader::reader(const std::filesystem::path& db) {
  std::error_code ec;
  if (!std::filesystem::exists(db, ec))
    throw std::runtime_error(db.string() + ": no such audit database");
  try {
    impl_ = std::make_unique<impl>(db);
  } catch (const sql::sql_error& e) {
    throw std::runtime_error(db.string() + ": " + e.what());
  }
}

reader::~reader() = default;

void reader::set_auditor_key(const crypto::box_secret_key& sk) {
  std::memcpy(impl_->sk.data(), sk.data(), sk.size());
  impl_->pk = crypto::box_public_from_secret(sk);
  impl_->data_keys.clear();
  impl_->key_errors.clear();
}

void reader::for_each(const record_filter& f, const std::function<bool(const read_record&)>& fn) {
  const auto w = make_where(f, "");
  sql::statement st(impl_->db, (std::string("SELECT ") + schema::record_columns_sized +
                                " FROM records" + w.sql + " ORDER BY seq")
                                   .c_str());
  w.bind(st);
  stored_row row;
  crypto::bytes header;
  read_record out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    read_row(st, row);
    out.seq = static_cast<std::uint64_t>(st.column_int(schema::c_seq));
    out.kind = row.h.kind;
    out.epoch = row.h.epoch;
    out.time_us = row.h.time_us;
    out.flow_id = row.h.flow_id;
    out.index = row.h.index;
    out.erased = row.payload_null;
    out.payload.reset();
    out.payload_error.clear();
    if (!row.well_formed) {
      out.payload_error = "record is malformed: " + row.problem;
    } else if (row.h.kind == record_kind::erasure && !row.payload_null) {
      if (const auto body = format::decode_erasure(row.payload)) {
        std::string j = "{\"reason\":";
        json_escape(j, body->reason);
        j += ",\"erased\":[";
        for (std::size_t i = 0; i < body->seqs.size(); ++i)
          j += (i ? "," : "") + std::to_string(body->seqs[i]);
        j += "]}";
        out.payload = std::move(j);
      } else {
        out.payload_error = "erasure record is malformed";
      }
    } else if (impl_->pk && (row.h.kind == record_kind::flow_opened ||
                             row.h.kind == record_kind::flow_closed)) {
      if (row.payload_null) {
        out.payload_error = "payload erased";
      } else if (row.payload.size() < crypto::aead_nonce_bytes + crypto::aead_tag_bytes) {
        out.payload_error = "payload is too short";
      } else if (const auto* k = impl_->data_key(row.h.epoch, out.payload_error)) {
        format::encode_header(row.h, header);
        const std::span<const std::uint8_t, crypto::aead_nonce_bytes> nonce(row.payload.data(),
                                                                            crypto::aead_nonce_bytes);
        if (auto plain = crypto::aead_decrypt(*k, nonce, row.payload.subspan(crypto::aead_nonce_bytes),
                                              header))
          out.payload = std::move(*plain);
        else
          out.payload_error = "payload does not decrypt (altered?)";
      }
    }
    if (!fn(out)) return;
  }
  if (rc != SQLITE_DONE) throw std::runtime_error("cannot read records: " + impl_->db.message());
}

void reader::for_each_flow(const record_filter& f, const std::function<bool(const std::string&)>& fn) {
  record_filter flows = f;
  flows.include_internal = true;  // flow records only, below
  const auto w = make_where(flows, "");
  const std::string sql = "SELECT flow_id, max(seq) AS last FROM records" +
                          (w.sql.empty() ? std::string(" WHERE") : w.sql + " AND") +
                          " kind IN (1, 2) GROUP BY flow_id ORDER BY last";
  sql::statement st(impl_->db, sql.c_str());
  w.bind(st);
  int rc;
  std::string id;
  while ((rc = st.step()) == SQLITE_ROW) {
    id.assign(st.column_text(0));
    if (!fn(id)) return;
  }
  if (rc != SQLITE_DONE) throw std::runtime_error("cannot read records: " + impl_->db.message());
}

reader::flow_match reader::match_flow(const std::string& prefix) {
  flow_match m;
  {
    sql::statement st(impl_->db, "SELECT 1 FROM records WHERE flow_id = ?1 AND kind IN (1, 2, 3) LIMIT 1");
    st.bind(1, std::string_view(prefix));
    if (st.step() == SQLITE_ROW) return {1, prefix};
  }
  // Ids >= prefix and < the first string past every id that starts with it
  // (BINARY collation compares bytes): prefix with its last byte below 0xFF
  // raised by one and what follows dropped.
  std::string upper = prefix;
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xFF) upper.pop_back();
  if (!upper.empty()) upper.back() = static_cast<char>(static_cast<unsigned char>(upper.back()) + 1);
  const std::string sql = std::string("SELECT count(DISTINCT flow_id), min(flow_id) FROM records WHERE flow_id >= ?1") +
                          (upper.empty() ? "" : " AND flow_id < ?2") + " AND kind IN (1, 2, 3)";
  sql::statement st(impl_->db, sql.c_str());
  st.bind(1, std::string_view(prefix));
  if (!upper.empty()) st.bind(2, std::string_view(upper));
  if (st.step() != SQLITE_ROW) throw std::runtime_error("cannot read records: " + impl_->db.message());
  m.count = static_cast<std::uint64_t>(st.column_int(0));
  if (m.count == 1) m.id.assign(st.column_text(1));
  return m;
}

std::optional<format::checkpoint> reader::latest_checkpoint() {
  sql::statement st(impl_->db, (std::string("SELECT ") + schema::checkpoint_columns +
                                " FROM checkpoints ORDER BY seq DESC, id DESC LIMIT 1")
                                   .c_str());
  if (st.step() != SQLITE_ROW) return std::nullopt;
  stored_checkpoint stored;
  read_checkpoint(st, stored);
  if (!stored.well_formed) throw std::runtime_error("the latest checkpoint is malformed");
  format::checkpoint cp = stored.cp;
  sql::statement es(impl_->db, "SELECT payload FROM records WHERE kind = 16 AND epoch = ?1 LIMIT 1");
  es.bind(1, static_cast<std::int64_t>(cp.epoch));
  if (es.step() == SQLITE_ROW)
    if (const auto body = format::decode_epoch_start(es.column_blob(0))) cp.signer = body->signer;
  return cp;
}

std::vector<reader::group_totals> reader::report(const std::vector<std::string>& by,
                                                 const record_filter& f) {
  std::string dims;
  for (const auto& d : by) {
    std::string col;
    if (d == "src" || d == "dst" || d == "tenant" || d == "route") col = "r." + d;
    else if (d == "day") col = "strftime('%Y-%m-%d', r.time_us / 1000000, 'unixepoch')";
    else if (d == "month") col = "strftime('%Y-%m', r.time_us / 1000000, 'unixepoch')";
    else if (d == "year") col = "strftime('%Y', r.time_us / 1000000, 'unixepoch')";
    else throw std::invalid_argument("unknown report dimension \"" + d +
                                     "\" (use src, dst, tenant, route, day, month, year; model with --key)");
    dims += (dims.empty() ? "" : ", ") + col;
  }
  record_filter outer = f;
  outer.include_internal = true;  // the join below already keeps flow records only
  const auto w = make_where(outer, "r.");
  const std::string sql =
      "WITH last AS (SELECT max(seq) AS seq FROM records WHERE kind IN (1, 2) GROUP BY flow_id) "
      "SELECT " + (dims.empty() ? std::string("'all'") : dims) +
      ", count(*), sum(r.action = 'block'), sum(r.action = 'redact'), sum(r.action = 'tag'), "
      "sum(max(r.tokens_in, 0)), sum(max(r.tokens_out, 0)), sum(r.tokens_in < 0 OR r.tokens_out < 0), "
      "sum(r.action = 'allow'), sum(r.action = 'unscannable'), sum(r.action = 'refused'), sum(r.action = 'error') "
      "FROM records r JOIN last ON r.seq = last.seq" + w.sql +
      (dims.empty() ? std::string() : " GROUP BY " + dims + " ORDER BY " + dims);
  sql::statement st(impl_->db, sql.c_str());
  w.bind(st);
  std::vector<group_totals> out;
  const int n = by.empty() ? 1 : static_cast<int>(by.size());
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    group_totals g;
    if (!by.empty())
      for (int i = 0; i < n; ++i) g.key.emplace_back(st.column_text(i));
    g.flows = static_cast<std::uint64_t>(st.column_int(n));
    if (g.flows == 0) continue;  // the ungrouped query yields one row even when empty
    g.blocked = static_cast<std::uint64_t>(st.column_int(n + 1));
    g.redacted = static_cast<std::uint64_t>(st.column_int(n + 2));
    g.tagged = static_cast<std::uint64_t>(st.column_int(n + 3));
    g.tokens_in = static_cast<std::uint64_t>(st.column_int(n + 4));
    g.tokens_out = static_cast<std::uint64_t>(st.column_int(n + 5));
    g.usage_unknown = static_cast<std::uint64_t>(st.column_int(n + 6));
    g.allowed = static_cast<std::uint64_t>(st.column_int(n + 7));
    g.unscannable = static_cast<std::uint64_t>(st.column_int(n + 8));
    g.refused = static_cast<std::uint64_t>(st.column_int(n + 9));
    g.failed = static_cast<std::uint64_t>(st.column_int(n + 10));
    g.other = g.flows - g.allowed - g.tagged - g.redacted - g.blocked - g.unscannable - g.refused - g.failed;
    out.push_back(std::move(g));
  }
  if (rc != SQLITE_DONE) throw std::runtime_error("cannot read records: " + impl_->db.message());
  return out;
}

}  // namespace customs::audit
