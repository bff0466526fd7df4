#include "audit/row.hpp"

#include <algorithm>

namespace customs::audit {

void read_row(const sql::statement& st, stored_row& out) {
  using namespace schema;
  out.well_formed = true;
  out.problem.clear();
  const auto bad = [&out](const char* what) {
    if (out.well_formed) out.problem = what;
    out.well_formed = false;
  };
  const auto text = [&](int col, std::string& dst) {
    if (sqlite3_column_type(st.get(), col) != SQLITE_TEXT) bad("an index column is not text");
    const auto v = st.column_text(col);
    if (v.size() > format::max_field_bytes) bad("an index field is too long");
    dst.assign(v.substr(0, format::max_field_bytes));
  };
  const auto integer = [&](int col) {
    if (sqlite3_column_type(st.get(), col) != SQLITE_INTEGER) bad("an integer column is not an integer");
    return st.column_int(col);
  };
  const auto h32 = [&](int col, crypto::hash& dst) {
    if (sqlite3_column_type(st.get(), col) != SQLITE_BLOB || !sql::column_hash(st, col, dst)) {
      bad("a hash column is not 32 bytes");
      dst = format::zero_hash;
    }
  };
  auto& h = out.h;
  h.seq = static_cast<std::uint64_t>(integer(c_seq));
  const auto kind = integer(c_kind);
  if (kind != 1 && kind != 2 && kind != 3 && kind != 16) bad("unknown record kind");
  h.kind = static_cast<record_kind>(kind);
  h.epoch = static_cast<std::uint64_t>(integer(c_epoch));
  h.time_us = integer(c_time_us);
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
  h.index.tokens_in = static_cast<std::uint64_t>(integer(c_tokens_in));
  h.index.tokens_out = static_cast<std::uint64_t>(integer(c_tokens_out));
  h32(c_payload_hash, out.payload_hash);
  h32(c_hash, out.hash);
  h32(c_mac, out.mac);
  out.payload_null = st.column_null(c_payload);
  if (!out.payload_null && sqlite3_column_type(st.get(), c_payload) != SQLITE_BLOB)
    bad("the payload is not a blob");
  out.payload = out.payload_null ? crypto::byte_view{} : st.column_blob(c_payload);
}

bool read_checkpoint_row(const sql::statement& st, format::checkpoint& out) {
  const auto type = [&](int col) { return sqlite3_column_type(st.get(), col); };
  const bool typed = type(0) == SQLITE_INTEGER && type(1) == SQLITE_INTEGER && type(2) == SQLITE_INTEGER &&
                     type(3) == SQLITE_BLOB && type(4) == SQLITE_BLOB;
  out.seq = static_cast<std::uint64_t>(st.column_int(0));
  out.epoch = static_cast<std::uint64_t>(st.column_int(1));
  out.time_us = st.column_int(2);
  const auto sig = st.column_blob(4);
  if (!typed || !sql::column_hash(st, 3, out.head) || sig.size() != out.sig.size()) return false;
  std::copy(sig.begin(), sig.end(), out.sig.begin());
  return true;
}

}  // namespace customs::audit
