#pragma once
// Minimal RAII over the SQLite C API for audit/ (internal to audit/). Control-plane
// helpers throw sql_error; step() returns the SQLite result code so the writer
// thread can handle SQLITE_FULL and friends without exceptions.

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "crypto/crypto.hpp"

namespace customs::audit::sql {

class sql_error : public std::runtime_error {
 public:
  sql_error(const std::string& what, int code) : std::runtime_error(what), code_(code) {}
  [[nodiscard]] int code() const noexcept { return code_; }

 private:
  int code_;
};

class database {
 public:
  database() = default;
  database(const std::filesystem::path& file, int flags);
  ~database();
  database(const database&) = delete;
  database& operator=(const database&) = delete;
  database(database&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  database& operator=(database&& o) noexcept {
    if (this != &o) {
      if (db_) sqlite3_close_v2(db_);
      db_ = o.db_;
      o.db_ = nullptr;
    }
    return *this;
  }

  [[nodiscard]] sqlite3* get() const noexcept { return db_; }
  // Runs SQL without results; throws sql_error.
  void exec(const char* sql);
  // Runs SQL; returns the SQLite result code (no throw).
  [[nodiscard]] int try_exec(const char* sql) noexcept;
  [[nodiscard]] std::string message() const { return sqlite3_errmsg(db_); }
  // First column of the first row as an integer (throws when there is none).
  [[nodiscard]] std::int64_t query_int(const char* sql);
  [[nodiscard]] std::string query_text(const char* sql);

 private:
  sqlite3* db_ = nullptr;
};

class statement {
 public:
  statement() = default;
  statement(const database& db, const char* sql);
  ~statement();
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  statement(statement&& o) noexcept : st_(o.st_) { o.st_ = nullptr; }
  statement& operator=(statement&& o) noexcept;

  void bind(int i, std::int64_t v) noexcept { sqlite3_bind_int64(st_, i, v); }
  void bind(int i, std::string_view v) noexcept {
    sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void bind(int i, crypto::byte_view v) noexcept {
    sqlite3_bind_blob(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void bind_null(int i) noexcept { sqlite3_bind_null(st_, i); }
  [[nodiscard]] int step() noexcept { return sqlite3_step(st_); }
  void reset() noexcept {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }

  [[nodiscard]] std::int64_t column_int(int i) const noexcept { return sqlite3_column_int64(st_, i); }
  [[nodiscard]] bool column_null(int i) const noexcept {
    return sqlite3_column_type(st_, i) == SQLITE_NULL;
  }
  [[nodiscard]] std::string_view column_text(int i) const noexcept {
    const auto* p = sqlite3_column_text(st_, i);
    const int n = sqlite3_column_bytes(st_, i);
    return p ? std::string_view(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n))
             : std::string_view{};
  }
  [[nodiscard]] crypto::byte_view column_blob(int i) const noexcept {
    const auto* p = sqlite3_column_blob(st_, i);
    const int n = sqlite3_column_bytes(st_, i);
    return p ? crypto::byte_view(static_cast<const std::uint8_t*>(p), static_cast<std::size_t>(n))
             : crypto::byte_view{};
  }
  [[nodiscard]] sqlite3_stmt* get() const noexcept { return st_; }

 private:
  sqlite3_stmt* st_ = nullptr;
};

// Opens a database that may be hostile (a trail handed to an auditor),
// read-only: no trust in its schema (PRAGMA trusted_schema=OFF: no functions
// with side effects run from its views or triggers), cell size checks on, and
// no value longer than max_untrusted_value_bytes is loaded (SQLITE_LIMIT_LENGTH:
// reading one fails with SQLITE_TOOBIG).
inline constexpr int max_untrusted_value_bytes = 32 << 20;
[[nodiscard]] database open_untrusted(const std::filesystem::path& file);

// Copies a 32-byte column into a hash; false if the size is wrong.
[[nodiscard]] bool column_hash(const statement& st, int i, crypto::hash& out) noexcept;

}  // namespace customs::audit::sql
