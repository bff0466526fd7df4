#include "audit/sqlite.hpp"

#include <sys/stat.h>

#include <cstring>

namespace customs::audit::sql {

database::database(const std::filesystem::path& file, int flags) {
  // SQLite would open a FIFO or a device as well, and wait on it for ever (a
  // FIFO handed to customsctl as --db). Only a regular file (or a new one).
  if (struct stat st {}; file != ":memory:" && ::stat(file.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw sql_error(file.string() + ": cannot open database: not a regular file", SQLITE_CANTOPEN);
  const int rc = sqlite3_open_v2(file.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw sql_error(file.string() + ": cannot open database: " + why, rc);
  }
  sqlite3_extended_result_codes(db_, 1);
}

database::~database() {
  if (db_) sqlite3_close_v2(db_);
}

void database::exec(const char* sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string why = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw sql_error(why, rc);
  }
}

int database::try_exec(const char* sql) noexcept {
  return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
}

std::int64_t database::query_int(const char* sql) {
  statement st(*this, sql);
  const int rc = st.step();
  if (rc != SQLITE_ROW) throw sql_error(std::string("no result for: ") + sql + ": " + message(), rc);
  return st.column_int(0);
}

std::string database::query_text(const char* sql) {
  statement st(*this, sql);
  const int rc = st.step();
  if (rc != SQLITE_ROW) throw sql_error(std::string("no result for: ") + sql + ": " + message(), rc);
  return std::string(st.column_text(0));
}

statement::statement(const database& db, const char* sql) {
  const int rc = sqlite3_prepare_v3(db.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &st_, nullptr);
  if (rc != SQLITE_OK) throw sql_error(std::string("cannot prepare: ") + db.message(), rc);
}

statement::~statement() { sqlite3_finalize(st_); }

statement& statement::operator=(statement&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(st_);
    st_ = o.st_;
    o.st_ = nullptr;
  }
  return *this;
}

database open_untrusted(const std::filesystem::path& file) {
  database d(file, SQLITE_OPEN_READONLY);
  sqlite3_busy_timeout(d.get(), 5000);
  sqlite3_limit(d.get(), SQLITE_LIMIT_LENGTH, max_untrusted_value_bytes);
  d.exec("PRAGMA trusted_schema=OFF");
  d.exec("PRAGMA cell_size_check=ON");
  return d;
}

bool column_hash(const statement& st, int i, crypto::hash& out) noexcept {
  const auto b = st.column_blob(i);
  if (b.size() != out.size()) return false;
  std::memcpy(out.data(), b.data(), out.size());
  return true;
}

}  // namespace customs::audit::sql
