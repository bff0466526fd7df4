#pragma once
// One stored record or checkpoint as read back from its table (internal to
// audit/): shared by the verifier and the reader.

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

// Reads the signed columns of a checkpoint row (seq, epoch, time_us, head,
// signature in this order). False when a column has another type than its
// declared one or a hash or signature has the wrong size: SQLite would convert
// such a value silently, so a checkpoint edited that way could still read as
// the signed one.
[[nodiscard]] bool read_checkpoint_row(const sql::statement& st, format::checkpoint& out);

}  // namespace customs::audit
