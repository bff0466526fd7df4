#pragma once
// Whether a database's schema is exactly the audit format's (internal to
// audit/): the verifier reports a difference as a failure, the writer refuses to
// open such a trail (an added trigger would run on its own writes).

#include <string>
#include <vector>

#include "audit/sqlite.hpp"

namespace customs::audit::schema {

struct difference {
  std::string what;    // "holds a trigger 't' that the audit format does not have"
  bool table = false;  // the records or checkpoints table itself differs
};

// Every table, index, view and trigger that differs from what create_sql makes
// (compared by type, name, table and SQL text). Empty when the schema is exact.
// Throws sql::sql_error when the schema cannot be read.
[[nodiscard]] std::vector<difference> differences(sql::database& db);

}  // namespace customs::audit::schema
