#include "audit/row.hpp"

#include <array>
#include <cstring>
#include <type_traits>

namespace customs::audit {

namespace {

std::string_view as_text(crypto::byte_view b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace

void decode_row(std::span<const column_value, schema::record_column_count> cols, stored_row& out) {
  using namespace schema;
  out.well_formed = true;
  out.problem.clear();
  const auto bad = [&out](const char* what) {
    if (out.well_formed) out.problem = what;
    out.well_formed = false;
  };
  const auto text = [&](int col, std::string& dst) {
    const auto& c = cols[static_cast<std::size_t>(col)];
    dst.clear();
    if (c.type != SQLITE_TEXT) return bad("an index column is not text");
    if (c.size > format::max_field_bytes || c.bytes.size() > format::max_field_bytes)
      return bad("an index field is longer than the format allows");
    dst.assign(as_text(c.bytes));
  };
  // A non-negative integer (seq, epoch, tokens: u64 in the format, never above
  // INT64_MAX as written).
  const auto count = [&](int col, const char* what) -> std::uint64_t {
    const auto& c = cols[static_cast<std::size_t>(col)];
    if (c.type != SQLITE_INTEGER) {
      bad("an integer column is not an integer");
      return 0;
    }
    if (c.integer < 0) {
      bad(what);
      return 0;
    }
    return static_cast<std::uint64_t>(c.integer);
  };
  const auto h32 = [&](int col, crypto::hash& dst) {
    const auto& c = cols[static_cast<std::size_t>(col)];
    if (c.type != SQLITE_BLOB || c.bytes.size() != dst.size()) {
      bad("a hash column is not 32 bytes");
      dst = format::zero_hash;
      return;
    }
    std::memcpy(dst.data(), c.bytes.data(), dst.size());
  };
  auto& h = out.h;
  h.seq = count(c_seq, "seq is negative");
  if (out.well_formed && h.seq == 0) bad("seq is 0");
  const auto& kind = cols[c_kind];
  if (kind.type != SQLITE_INTEGER) bad("an integer column is not an integer");
  else if (kind.integer != 1 && kind.integer != 2 && kind.integer != 3 && kind.integer != 16) bad("unknown record kind");
  h.kind = static_cast<record_kind>(kind.type == SQLITE_INTEGER ? static_cast<std::uint8_t>(kind.integer) : 0);
  h.epoch = count(c_epoch, "epoch is negative");
  const auto& t = cols[c_time_us];
  if (t.type != SQLITE_INTEGER) bad("an integer column is not an integer");
  h.time_us = t.type == SQLITE_INTEGER ? t.integer : 0;
  text(c_flow_id, h.flow_id);
  text(c_route, h.index.route);
  text(c_src, h.index.src);
  text(c_dst, h.index.dst);
  text(c_tenant, h.index.tenant);
  text(c_action, h.index.action);
  std::string rules;
  text(c_rules, rules);
  h.index.rules = format::split_rules(rules);
  text(c_rule_set_hash, h.index.rule_set_hash);
  // Token counts: a count, or -1 for tokens_unknown (no usage reported).
  const auto tokens = [&](int col) -> std::uint64_t {
    const auto& c = cols[static_cast<std::size_t>(col)];
    if (c.type == SQLITE_INTEGER && c.integer == -1) return tokens_unknown;
    return count(col, "a token count is negative");
  };
  h.index.tokens_in = tokens(c_tokens_in);
  h.index.tokens_out = tokens(c_tokens_out);
  h32(c_payload_hash, out.payload_hash);
  h32(c_hash, out.hash);
  h32(c_mac, out.mac);
  const auto& p = cols[c_payload];
  out.payload_null = p.type == SQLITE_NULL;
  out.payload = {};
  if (out.payload_null) return;
  if (p.type != SQLITE_BLOB) return bad("the payload is not a blob");
  if (p.size > format::max_stored_payload_bytes || p.bytes.size() > format::max_stored_payload_bytes)
    return bad("the payload is larger than the format allows");
  out.payload = p.bytes;
}

void read_row(const sql::statement& st, stored_row& out) {
  std::array<column_value, schema::record_column_count> cols;
  for (int i = 0; i < schema::record_column_count; ++i) {
    auto& c = cols[static_cast<std::size_t>(i)];
    c.type = sqlite3_column_type(st.get(), i);
    switch (c.type) {
      case SQLITE_INTEGER: c.integer = st.column_int(i); break;
      case SQLITE_TEXT: {
        const auto t = st.column_text(i);
        c.bytes = {reinterpret_cast<const std::uint8_t*>(t.data()), t.size()};
        c.size = t.size();
        break;
      }
      case SQLITE_BLOB: {
        // The payload's length comes first (schema::record_columns_sized): a
        // blob over its bound is not loaded at all.
        if (i == schema::c_payload && sqlite3_column_count(st.get()) > schema::c_payload_size) {
          c.size = static_cast<std::size_t>(st.column_int(schema::c_payload_size));
          if (c.size > format::max_stored_payload_bytes) break;
        }
        c.bytes = st.column_blob(i);
        c.size = c.bytes.size();
        break;
      }
      default: break;
    }
  }
  decode_row(cols, out);
}

bool decode_row_image(crypto::byte_view image, stored_row& out) {
  std::array<column_value, schema::record_column_count> cols;
  std::size_t at = 0;
  const auto take = [&](std::size_t n) -> const std::uint8_t* {
    if (image.size() - at < n) return nullptr;
    const auto* p = image.data() + at;
    at += n;
    return p;
  };
  const auto le = [](const std::uint8_t* p, int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= std::uint64_t{p[i]} << (8 * i);
    return v;
  };
  bool ok = true;
  for (auto& c : cols) {
    const auto* type = take(1);
    if (!type) {
      ok = false;
      break;
    }
    c.type = *type;
    if (c.type == SQLITE_INTEGER || c.type == SQLITE_FLOAT) {
      const auto* v = take(8);
      if (!v) {
        ok = false;
        break;
      }
      c.integer = static_cast<std::int64_t>(le(v, 8));
    } else if (c.type == SQLITE_TEXT || c.type == SQLITE_BLOB) {
      const auto* n = take(4);
      const std::size_t len = n ? static_cast<std::size_t>(le(n, 4)) : 0;
      const auto* v = n ? take(len) : nullptr;
      if (!v && len > 0) {
        ok = false;
        break;
      }
      c.bytes = {v, len};
      c.size = len;
    } else if (c.type != SQLITE_NULL) {
      ok = false;
      break;
    }
  }
  if (!ok || at != image.size()) {
    out = stored_row{};
    out.well_formed = false;
    out.problem = "the row image is malformed";
    return false;
  }
  decode_row(cols, out);
  return true;
}

void read_checkpoint(const sql::statement& st, stored_checkpoint& out) {
  out = stored_checkpoint{};
  const auto integer = [&](int col, auto& dst) {
    if (sqlite3_column_type(st.get(), col) != SQLITE_INTEGER) out.well_formed = false;
    dst = static_cast<std::remove_reference_t<decltype(dst)>>(st.column_int(col));
  };
  // Types first: reading a column as another type converts it.
  const bool blobs = sqlite3_column_type(st.get(), 3) == SQLITE_BLOB && sqlite3_column_type(st.get(), 4) == SQLITE_BLOB;
  integer(0, out.cp.seq);
  integer(1, out.cp.epoch);
  integer(2, out.cp.time_us);
  if (st.column_int(0) < 0 || st.column_int(1) < 0) out.well_formed = false;
  const auto sig = blobs ? st.column_blob(4) : crypto::byte_view{};
  if (!blobs || !sql::column_hash(st, 3, out.cp.head) || sig.size() != out.cp.sig.size())
    out.well_formed = false;
  else
    std::memcpy(out.cp.sig.data(), sig.data(), sig.size());
}

}  // namespace customs::audit
