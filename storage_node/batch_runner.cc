#include "storage_node/batch_runner.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/sqlite.h"

namespace conductor {
namespace storage_node {
namespace {

using storage::v1::ExecuteBatchRequest;
using storage::v1::ExecuteBatchResponse;
using storage::v1::StatementResult;

// Approximate wire overhead of one nested message (tag and length).
constexpr int64_t kMessageOverhead = 4;

// Runs one statement of a batch into `result`, adding the size of what it
// produced to `*response_bytes`.
absl::Status RunStatement(Connection& connection, const storage::v1::Statement& request,
                          bool read_only, const BatchLimits& limits, int64_t* response_bytes,
                          StatementResult* result) {
  auto statement = connection.PrepareClientStatement(request.sql());
  if (!statement.ok()) return statement.status();
  if (read_only && !statement->ReadOnly()) {
    return absl::FailedPreconditionError(
        "a read_only batch cannot run a statement that writes (use a write batch)");
  }
  std::vector<Value> params(request.params().begin(), request.params().end());
  if (auto s = statement->BindAll(params); !s.ok()) return s;

  const int columns = statement->ColumnCount();
  for (int i = 0; i < columns; ++i) result->add_columns(statement->ColumnName(i));
  *response_bytes += static_cast<int64_t>(result->ByteSizeLong()) + kMessageOverhead;

  sqlite3* db = connection.handle();
  const int64_t total_changes_before = sqlite3_total_changes64(db);
  while (true) {
    absl::StatusOr<bool> has_row = statement->Step();
    if (!has_row.ok()) return has_row.status();
    if (!*has_row) break;
    conductor::v1::Row* row = result->add_rows();
    for (int i = 0; i < columns; ++i) {
      absl::StatusOr<Value> value = statement->ColumnValueUtf8(i);
      if (!value.ok()) return value.status();
      *row->add_values() = *std::move(value);
    }
    *response_bytes += static_cast<int64_t>(row->ByteSizeLong()) + kMessageOverhead;
    if (*response_bytes > limits.max_response_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the response would exceed ", limits.max_response_bytes,
                       " bytes; read fewer rows per batch (LIMIT, or smaller key ranges)"));
    }
  }
  // sqlite3_changes64() keeps the count of the last INSERT/UPDATE/DELETE, so it
  // is only this statement's when this statement changed something.
  if (!statement->ReadOnly() && sqlite3_total_changes64(db) != total_changes_before) {
    result->set_rows_affected(sqlite3_changes64(db));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunBatch(Connection& connection, const ExecuteBatchRequest& request,
                      const CallControl& control, const BatchLimits& limits,
                      ExecuteBatchResponse* response) {
  response->Clear();
  const bool read_only = request.read_only();
  // A connection is never left inside a transaction, but be sure: a stale one
  // would swallow this batch into it.
  connection.RollbackIfOpen();
  if (auto s = connection.ExecInternal(read_only ? "BEGIN" : "BEGIN IMMEDIATE"); !s.ok()) {
    return Annotate(s, "cannot begin a transaction");
  }

  connection.BeginCall(&control);
  absl::Status status;
  int64_t response_bytes = 0;
  const int count = request.statements_size();
  for (int i = 0; i < count && status.ok(); ++i) {
    status = control.Check("before the statement ran");
    if (status.ok()) {
      status = RunStatement(connection, request.statements(i), read_only, limits, &response_bytes,
                            response->add_results());
    }
    if (status.code() == absl::StatusCode::kCancelled) {
      // SQLITE_INTERRUPT: say why the statement was interrupted.
      if (auto why = control.Check("while the statement ran"); !why.ok()) status = why;
    }
    if (!status.ok() && count > 1) status = Annotate(status, absl::StrCat("statement ", i + 1));
  }
  connection.EndCall();

  if (status.ok() && !read_only) {
    status = connection.ExecInternal("COMMIT");
    if (!status.ok()) status = Annotate(status, "COMMIT failed");
  }
  // Ends a read batch's snapshot, or undoes a failed write batch.
  connection.RollbackIfOpen();
  if (!status.ok()) response->Clear();
  return status;
}

}  // namespace storage_node
}  // namespace conductor
