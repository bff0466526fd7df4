#pragma once
// One stored record as read back from the records table (internal to audit/):
// shared by the verifier and the reader.

#include <cstdint>
#include <string>

#include "audit/format.hpp"
#include "audit/schema.hpp"
#include "audit/sqlite.hpp"

namespace customs::audit {

struct stored_row {
  format::header_fields h;
  crypto::hash payload_hash{};
  crypto::hash hash{};
  crypto::hash mac{};
  bool payload_null = false;
  crypto::byte_view payload;  // valid until the statement steps again
  // False when a column has the wrong type or size, or a value is out of bounds
  // (what is wrong is in problem).
  bool well_formed = true;
  std::string problem;
};

// Reads the columns (schema::record_columns order) of the current row.
void read_row(const sql::statement& st, stored_row& out);

}  // namespace customs::audit
