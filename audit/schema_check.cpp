#include "audit/schema_check.hpp"

#include <set>
#include <tuple>

#include "audit/schema.hpp"

namespace customs::audit::schema {

namespace {

// type, name, tbl_name, sql
using object = std::tuple<std::string, std::string, std::string, std::string>;

std::set<object> objects_of(sql::database& d) {
  std::set<object> out;
  sql::statement st(d, "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema");
  int rc;
  while ((rc = st.step()) == SQLITE_ROW)
    out.emplace(st.column_text(0), st.column_text(1), st.column_text(2), st.column_text(3));
  if (rc != SQLITE_DONE) throw sql::sql_error("cannot read the schema: " + d.message(), rc);
  return out;
}

const std::set<object>& expected() {
  static const std::set<object> objects = [] {
    sql::database mem(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    mem.exec(create_sql);
    return objects_of(mem);
  }();
  return objects;
}

bool is_table(const std::string& name) { return name == "records" || name == "checkpoints"; }

}  // namespace

std::vector<difference> differences(sql::database& db) {
  const auto& want = expected();
  const auto have = objects_of(db);
  std::vector<difference> out;
  for (const auto& o : have) {
    if (want.count(o)) continue;
    const auto& [type, name, table, sql] = o;
    out.push_back({"holds a " + type + " '" + name + "' that the audit format does not have", is_table(name)});
  }
  for (const auto& o : want) {
    if (have.count(o)) continue;
    const auto& [type, name, table, sql] = o;
    out.push_back({"lacks the format's " + type + " '" + name + "' (or it was changed)", is_table(name)});
  }
  return out;
}

}  // namespace customs::audit::schema
