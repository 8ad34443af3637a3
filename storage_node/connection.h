// One SQLite connection of a storage node, with the guards the node puts
// around statements it is sent: an authorizer that refuses statements which
// would break the node's own transaction handling, and a progress handler
// that interrupts a statement once its call must stop.
#ifndef CONDUCTOR_STORAGE_NODE_CONNECTION_H_
#define CONDUCTOR_STORAGE_NODE_CONNECTION_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/sqlite.h"
#include "storage_node/call_control.h"

namespace conductor {
namespace storage_node {

// Not thread-safe: one caller at a time (ConnectionPool hands it out).
class Connection {
 public:
  // Opens `path` with `options`. A `query_only` connection refuses every write
  // (PRAGMA query_only=1).
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path,
                                                          const DatabaseOptions& options,
                                                          bool query_only);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs the node's own SQL (BEGIN, COMMIT, ...), unrestricted.
  absl::Status ExecInternal(absl::string_view sql);

  // Compiles one statement sent by a client. Refuses (INVALID_ARGUMENT,
  // UNSUPPORTED_STATEMENT) transaction control (BEGIN, COMMIT, SAVEPOINT...),
  // ATTACH / DETACH and changing the pragmas the node relies on.
  absl::StatusOr<Statement> PrepareClientStatement(absl::string_view sql);

  // Until EndCall(), statements on this connection are interrupted once
  // `control` says the call must stop. REQUIRES: `control` outlives EndCall().
  void BeginCall(const CallControl* control);
  void EndCall();

  // Ends an open transaction, if any (after an error SQLite may or may not
  // have rolled back already). Logs when the rollback fails.
  void RollbackIfOpen();

  bool InTransaction() const;
  Database& db() { return *db_; }
  sqlite3* handle() const { return db_->handle(); }

 private:
  explicit Connection(std::unique_ptr<Database> db) : db_(std::move(db)) {}
  static int Authorize(void* self, int action, const char* arg1, const char* arg2,
                       const char* database, const char* trigger);
  static int Progress(void* self);

  std::unique_ptr<Database> db_;
  // True while client SQL is being compiled; the authorizer then restricts.
  bool client_sql_ = false;
  // Why the authorizer refused the last client statement ("" when it did not).
  std::string refusal_;
  // The call in progress, or null.
  const CallControl* control_ = nullptr;
};

}  // namespace storage_node
}  // namespace conductor

#endif  // CONDUCTOR_STORAGE_NODE_CONNECTION_H_
