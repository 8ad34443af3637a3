#include "common/sqlite.h"

#include <cstdio>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/errors.h"
#include "google/protobuf/stubs/common.h"

namespace conductor {

absl::Status SqliteStatus(int rc, absl::string_view message) {
  switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
      return absl::OkStatus();
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Error(absl::StatusCode::kAlreadyExists, reason::kUniqueViolation, message);
      }
      return Error(absl::StatusCode::kInvalidArgument, reason::kConstraintViolation, message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::AbortedError(message);
    case SQLITE_ERROR:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG:
    case SQLITE_AUTH:
      return Error(absl::StatusCode::kInvalidArgument, reason::kSqlError, message);
    case SQLITE_READONLY:
      return absl::FailedPreconditionError(message);
    case SQLITE_INTERRUPT:
      return absl::CancelledError(message);
    case SQLITE_NOMEM:
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

namespace {

absl::Status DbError(sqlite3* db, int rc) {
  const char* msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  int extended = db != nullptr ? sqlite3_extended_errcode(db) : rc;
  return SqliteStatus(extended != 0 ? extended : rc, msg);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path,
                                                         const DatabaseOptions& options) {
  int flags = SQLITE_OPEN_NOMUTEX;
  if (options.read_only) {
    flags |= SQLITE_OPEN_READONLY;
  } else {
    flags |= SQLITE_OPEN_READWRITE;
    if (options.create) flags |= SQLITE_OPEN_CREATE;
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  std::unique_ptr<Database> db(new Database(raw));
  if (rc != SQLITE_OK) {
    return absl::Status(DbError(raw, rc).code(),
                        absl::StrCat("cannot open SQLite database ", path, ": ",
                                     raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  if (path != ":memory:") {
    if (options.wal && !options.read_only) {
      // journal_mode returns a row; a plain Exec ignores it.
      if (auto s = db->Exec("PRAGMA journal_mode=WAL"); !s.ok()) return s;
    }
    if (auto s = db->Exec(options.synchronous_full ? "PRAGMA synchronous=FULL"
                                                   : "PRAGMA synchronous=NORMAL");
        !s.ok()) {
      return s;
    }
  }
  return db;
}

Database::~Database() { sqlite3_close_v2(db_); }

absl::Status Database::Exec(absl::string_view sql) {
  char* err = nullptr;
  std::string text(sql);
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string message = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return SqliteStatus(sqlite3_extended_errcode(db_), message);
  }
  return absl::OkStatus();
}

absl::StatusOr<Statement> Database::Prepare(absl::string_view sql) {
  // SQLite stops reading at a NUL: what follows would be silently dropped.
  if (sql.find('\0') != absl::string_view::npos) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
                 "the statement contains a NUL character");
  }
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, &tail);
  if (rc != SQLITE_OK) return DbError(db_, rc);
  Statement statement(db_, stmt);
  if (stmt == nullptr) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax, "empty statement");
  }
  // Anything after the first statement must be blank, comments or ';'.
  const char* end = sql.data() + sql.size();
  while (tail != nullptr && tail < end) {
    sqlite3_stmt* extra = nullptr;
    const char* next = nullptr;
    rc = sqlite3_prepare_v2(db_, tail, static_cast<int>(end - tail), &extra, &next);
    if (extra != nullptr) {
      sqlite3_finalize(extra);
      return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
                   "only one statement is allowed per request");
    }
    if (rc != SQLITE_OK) {
      // A second statement that does not even compile still means two statements.
      return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
                   "only one statement is allowed per request");
    }
    if (next == tail) break;
    tail = next;
  }
  return statement;
}

absl::Status Database::ForEachRow(absl::string_view sql,
                                  const std::function<absl::Status(const Statement&)>& row) {
  auto stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  while (true) {
    auto has_row = stmt->Step();
    if (!has_row.ok()) return has_row.status();
    if (!*has_row) return absl::OkStatus();
    if (auto s = row(*stmt); !s.ok()) return s;
  }
}

int64_t Database::Changes() const { return sqlite3_changes64(db_); }

Statement::Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
  other.stmt_ = nullptr;
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = other.db_;
    stmt_ = other.stmt_;
    other.stmt_ = nullptr;
  }
  return *this;
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

absl::Status Statement::Bind(int index, const Value& value) {
  int rc;
  switch (value.kind_case()) {
    case Value::kInteger:
      rc = sqlite3_bind_int64(stmt_, index, value.integer());
      break;
    case Value::kReal:
      rc = sqlite3_bind_double(stmt_, index, value.real());
      break;
    case Value::kText:
      rc = sqlite3_bind_text64(stmt_, index, value.text().data(), value.text().size(),
                               SQLITE_TRANSIENT, SQLITE_UTF8);
      break;
    case Value::kBlob:
      rc = sqlite3_bind_blob64(stmt_, index, value.blob().data(), value.blob().size(),
                               SQLITE_TRANSIENT);
      break;
    case Value::kNullValue:
    case Value::KIND_NOT_SET:
    default:
      rc = sqlite3_bind_null(stmt_, index);
      break;
  }
  return rc == SQLITE_OK ? absl::OkStatus() : DbError(db_, rc);
}

absl::Status Statement::BindInt64(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  return rc == SQLITE_OK ? absl::OkStatus() : DbError(db_, rc);
}

absl::Status Statement::BindText(int index, absl::string_view value) {
  int rc =
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return rc == SQLITE_OK ? absl::OkStatus() : DbError(db_, rc);
}

absl::Status Statement::BindAll(const std::vector<Value>& values) {
  if (static_cast<int>(values.size()) != ParameterCount()) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kSqlError,
                 absl::StrCat("the statement has ", ParameterCount(), " parameter(s) but ",
                              values.size(), " value(s) were given"));
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (auto s = Bind(static_cast<int>(i) + 1, values[i]); !s.ok()) return s;
  }
  return absl::OkStatus();
}

int Statement::ParameterCount() const { return sqlite3_bind_parameter_count(stmt_); }

absl::StatusOr<bool> Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return DbError(db_, rc);
}

absl::Status Statement::Run() {
  while (true) {
    auto row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

absl::Status Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  return absl::OkStatus();
}

int Statement::ColumnCount() const { return sqlite3_column_count(stmt_); }

std::string Statement::ColumnName(int i) const {
  const char* name = sqlite3_column_name(stmt_, i);
  return name != nullptr ? name : "";
}

Value Statement::ColumnValue(int i) const {
  switch (sqlite3_column_type(stmt_, i)) {
    case SQLITE_INTEGER:
      return IntegerValue(sqlite3_column_int64(stmt_, i));
    case SQLITE_FLOAT:
      return RealValue(sqlite3_column_double(stmt_, i));
    case SQLITE_TEXT: {
      const char* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
      return TextValue(absl::string_view(text, sqlite3_column_bytes(stmt_, i)));
    }
    case SQLITE_BLOB: {
      const char* blob = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
      return BlobValue(absl::string_view(blob, sqlite3_column_bytes(stmt_, i)));
    }
    default:
      return NullValue();
  }
}

absl::StatusOr<Value> Statement::ColumnValueUtf8(int i) const {
  Value value = ColumnValue(i);
  // The check protobuf itself applies to `string` fields.
  if (value.kind_case() == Value::kText && !google::protobuf::internal::IsStructurallyValidUTF8(
                                               value.text().data(), value.text().size())) {
    const std::string name = ColumnName(i);
    return Error(absl::StatusCode::kInvalidArgument, reason::kSqlError,
                 absl::StrCat("column ", i + 1, " (", name,
                              ") holds TEXT that is not valid UTF-8 (CAST of a blob makes such "
                              "text), which the API cannot carry: its strings are UTF-8. Read it "
                              "as a BLOB (CAST(",
                              name, " AS BLOB)) or store it as one"));
  }
  return value;
}

int64_t Statement::ColumnInt64(int i) const { return sqlite3_column_int64(stmt_, i); }

std::string Statement::ColumnText(int i) const {
  const unsigned char* text = sqlite3_column_text(stmt_, i);
  if (text == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt_, i));
}

bool Statement::ColumnIsNull(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }

bool Statement::ReadOnly() const { return sqlite3_stmt_readonly(stmt_) != 0; }

Value NullValue() {
  Value v;
  v.set_null_value(true);
  return v;
}

Value IntegerValue(int64_t x) {
  Value v;
  v.set_integer(x);
  return v;
}

Value RealValue(double x) {
  Value v;
  v.set_real(x);
  return v;
}

Value TextValue(absl::string_view x) {
  Value v;
  v.set_text(std::string(x));
  return v;
}

Value BlobValue(absl::string_view x) {
  Value v;
  v.set_blob(std::string(x));
  return v;
}

std::string ValueToString(const Value& value) {
  switch (value.kind_case()) {
    case Value::kInteger:
      return absl::StrCat(value.integer());
    case Value::kReal: {
      char buf[64];
      snprintf(buf, sizeof(buf), "%.17g", value.real());
      return buf;
    }
    case Value::kText:
      return value.text();
    case Value::kBlob:
      return absl::StrCat("x'", absl::BytesToHexString(value.blob()), "'");
    default:
      return "NULL";
  }
}

std::string QuoteIdentifier(absl::string_view name) {
  return absl::StrCat("\"", absl::StrReplaceAll(name, {{"\"", "\"\""}}), "\"");
}

std::string QuoteString(absl::string_view text) {
  return absl::StrCat("'", absl::StrReplaceAll(text, {{"'", "''"}}), "'");
}

}  // namespace conductor
