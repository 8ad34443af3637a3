// A thin, honest wrapper over the SQLite C API: RAII handles, absl::Status
// errors that keep SQLite's message, and conversion to and from the wire
// Value (which mirrors SQLite's storage classes exactly).
#ifndef CONDUCTOR_COMMON_SQLITE_H_
#define CONDUCTOR_COMMON_SQLITE_H_

#include <sqlite3.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "conductor/v1/value.pb.h"

namespace conductor {

using conductor::v1::Row;
using conductor::v1::Value;

// Maps a SQLite result code (extended codes welcome) and message to a status:
// UNIQUE / PRIMARY KEY violations → ALREADY_EXISTS (UNIQUE_VIOLATION);
// CHECK / NOT NULL → INVALID_ARGUMENT (CONSTRAINT_VIOLATION); statement errors
// → INVALID_ARGUMENT (SQL_ERROR); BUSY/LOCKED → ABORTED; I/O, full disk,
// corruption → INTERNAL.
absl::Status SqliteStatus(int rc, absl::string_view message);

class Statement;

struct DatabaseOptions {
  bool read_only = false;
  bool create = true;
  // PRAGMA journal_mode=WAL.
  bool wal = true;
  // PRAGMA synchronous=FULL when true, NORMAL when false.
  bool synchronous_full = true;
  int busy_timeout_ms = 5000;
};

// One connection. Not thread-safe: callers serialise use of a connection.
class Database {
 public:
  // Opens (and by default creates) `path`; ":memory:" gives a private database.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path,
                                                        const DatabaseOptions& options = {});
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements without parameters or results.
  absl::Status Exec(absl::string_view sql);
  // Compiles exactly one statement; trailing text other than whitespace,
  // comments and a ';' is an error.
  absl::StatusOr<Statement> Prepare(absl::string_view sql);

  // Runs one parameterless query and calls `row` for each result row; stops
  // at the first error, from SQLite or from `row`.
  absl::Status ForEachRow(absl::string_view sql,
                          const std::function<absl::Status(const Statement&)>& row);

  int64_t Changes() const;
  sqlite3* handle() const { return db_; }

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// A compiled statement. Movable, not copyable.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  ~Statement();

  // 1-based positional binding.
  absl::Status Bind(int index, const Value& value);
  absl::Status BindInt64(int index, int64_t value);
  absl::Status BindText(int index, absl::string_view value);
  absl::Status BindAll(const std::vector<Value>& values);
  int ParameterCount() const;

  // Advances: true when a row is ready, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion, discarding rows.
  absl::Status Run();
  absl::Status Reset();

  int ColumnCount() const;
  std::string ColumnName(int i) const;
  // The column as a Value of its storage class, exactly.
  Value ColumnValue(int i) const;
  // The same, for values that go into a message (a proto3 `string` must be
  // UTF-8, and a receiver refuses the whole message otherwise): TEXT that is
  // not valid UTF-8 (CAST of a blob makes such text) is INVALID_ARGUMENT
  // SQL_ERROR naming the column, never converted (a converted value would
  // sort, compare and copy differently).
  absl::StatusOr<Value> ColumnValueUtf8(int i) const;
  int64_t ColumnInt64(int i) const;
  std::string ColumnText(int i) const;
  bool ColumnIsNull(int i) const;
  bool ReadOnly() const;

  sqlite3_stmt* handle() const { return stmt_; }

 private:
  friend class Database;
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

// Value helpers.
Value NullValue();
Value IntegerValue(int64_t v);
Value RealValue(double v);
Value TextValue(absl::string_view v);
Value BlobValue(absl::string_view v);
// A short human-readable rendering (for messages and CLI output).
std::string ValueToString(const Value& value);

// Renders `name` as a double-quoted SQL identifier.
std::string QuoteIdentifier(absl::string_view name);
// Renders `text` as a single-quoted SQL string literal.
std::string QuoteString(absl::string_view text);

}  // namespace conductor

#endif  // CONDUCTOR_COMMON_SQLITE_H_
