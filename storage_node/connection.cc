#include "storage_node/connection.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/logging.h"

namespace conductor {
namespace storage_node {
namespace {

// SQLite virtual machine steps between two checks of the call's deadline.
constexpr int kProgressInterval = 1000;

// Pragmas whose setting would undo a guarantee of the node.
bool IsProtectedPragma(absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  return lower == "query_only" || lower == "journal_mode" || lower == "synchronous" ||
         lower == "locking_mode" || lower == "writable_schema" || lower == "recursive_triggers";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& path,
                                                             const DatabaseOptions& options,
                                                             bool query_only) {
  auto db = Database::Open(path, options);
  if (!db.ok()) return db.status();
  std::unique_ptr<Connection> connection(new Connection(std::move(*db)));
  if (query_only) {
    if (auto s = connection->ExecInternal("PRAGMA query_only=1"); !s.ok()) return s;
  }
  sqlite3_set_authorizer(connection->handle(), &Connection::Authorize, connection.get());
  sqlite3_progress_handler(connection->handle(), kProgressInterval, &Connection::Progress,
                           connection.get());
  return connection;
}

Connection::~Connection() {
  if (db_ != nullptr) {
    sqlite3_progress_handler(db_->handle(), 0, nullptr, nullptr);
    sqlite3_set_authorizer(db_->handle(), nullptr, nullptr);
  }
}

absl::Status Connection::ExecInternal(absl::string_view sql) { return db_->Exec(sql); }

absl::StatusOr<Statement> Connection::PrepareClientStatement(absl::string_view sql) {
  client_sql_ = true;
  refusal_.clear();
  auto statement = db_->Prepare(sql);
  client_sql_ = false;
  if (!statement.ok() && !refusal_.empty()) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kUnsupportedStatement, refusal_);
  }
  return statement;
}

void Connection::BeginCall(const CallControl* control) { control_ = control; }

void Connection::EndCall() { control_ = nullptr; }

bool Connection::InTransaction() const { return sqlite3_get_autocommit(db_->handle()) == 0; }

void Connection::RollbackIfOpen() {
  if (!InTransaction()) return;
  if (auto s = db_->Exec("ROLLBACK"); !s.ok()) {
    LogError("ROLLBACK failed: %s", s.ToString());
  }
}

int Connection::Authorize(void* self, int action, const char* arg1, const char* arg2,
                          const char* /*database*/, const char* /*trigger*/) {
  auto* connection = static_cast<Connection*>(self);
  if (!connection->client_sql_) return SQLITE_OK;
  switch (action) {
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
      connection->refusal_ =
          "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) is not allowed: "
          "each batch already runs in one transaction";
      return SQLITE_DENY;
    case SQLITE_ATTACH:
    case SQLITE_DETACH:
      connection->refusal_ = "ATTACH and DETACH are not allowed on a storage node";
      return SQLITE_DENY;
    case SQLITE_PRAGMA:
      if (arg1 != nullptr && arg2 != nullptr && IsProtectedPragma(arg1)) {
        connection->refusal_ =
            absl::StrCat("PRAGMA ", arg1, " is managed by the storage node and cannot be set");
        return SQLITE_DENY;
      }
      return SQLITE_OK;
    default:
      return SQLITE_OK;
  }
}

int Connection::Progress(void* self) {
  auto* connection = static_cast<Connection*>(self);
  return connection->control_ != nullptr && connection->control_->ShouldStop() ? 1 : 0;
}

}  // namespace storage_node
}  // namespace conductor
