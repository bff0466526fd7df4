#pragma once
// One stored record as read back from the records table (internal to audit/):
// shared by the verifier and the reader. The trail is outside input (a file an
// auditor is handed): every column may have the wrong type, size or value, and
// decoding says so (well_formed, problem) instead of trusting it.

#include <cstdint>
#include <span>
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
  crypto::byte_view payload;  // valid until the statement steps again (or the image goes)
  // False when a column has the wrong type or size, or a value is out of bounds
  // (what is wrong is in problem).
  bool well_formed = true;
  std::string problem;
};

// One column as stored: SQLite's type code (SQLITE_INTEGER, SQLITE_FLOAT,
// SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL), the integer, or the bytes of a TEXT
// or BLOB. `size` is the byte length when the bytes were not loaded because the
// value is over its bound (then bytes is empty).
struct column_value {
  int type = SQLITE_NULL;
  std::int64_t integer = 0;
  crypto::byte_view bytes;
  std::size_t size = 0;
};

// Decodes the columns of a record (schema::record_columns order). Never throws
// on bad values; a value past format's bounds makes the row malformed.
void decode_row(std::span<const column_value, schema::record_column_count> cols, stored_row& out);

// Reads the current row of a statement over schema::record_columns_sized: the
// columns, and the payload's length first, so that a payload over
// format::max_stored_payload_bytes is never loaded.
void read_row(const sql::statement& st, stored_row& out);

// A row as bytes, for fuzzing and tests: for each of the record_column_count
// columns, u8 type (SQLite's code) then, by type, i64 (INTEGER), 8 bytes
// (FLOAT), u32 length and bytes (TEXT, BLOB), nothing (NULL); all little-endian;
// nothing after the last column. False (and out malformed) if the image is not
// of that shape; otherwise as decode_row. out.payload points into image.
bool decode_row_image(crypto::byte_view image, stored_row& out);

// The checkpoints table's columns as read back (schema::checkpoint_columns order).
struct stored_checkpoint {
  format::checkpoint cp;
  bool well_formed = true;
};
void read_checkpoint(const sql::statement& st, stored_checkpoint& out);

}  // namespace customs::audit
