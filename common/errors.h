// Errors that cross process boundaries.
//
// Inside a process every failure is an absl::Status. A status made by Error()
// carries a stable reason (google.rpc.ErrorInfo, domain "conductor"); the one
// conversion to a gRPC status at the server edge, ToGrpcStatus(), attaches it
// as a status detail, and FromGrpcStatus() reads it back on the client side.
#ifndef CONDUCTOR_COMMON_ERRORS_H_
#define CONDUCTOR_COMMON_ERRORS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace conductor {

// Stable reasons of DESIGN.md §4, plus a few for SQLite's own errors.
namespace reason {
inline constexpr char kTableAlreadyExists[] = "TABLE_ALREADY_EXISTS";
inline constexpr char kTableNotFound[] = "TABLE_NOT_FOUND";
inline constexpr char kIndexAlreadyExists[] = "INDEX_ALREADY_EXISTS";
inline constexpr char kIndexNotFound[] = "INDEX_NOT_FOUND";
inline constexpr char kReshardInProgress[] = "RESHARD_IN_PROGRESS";
inline constexpr char kReshardNotFound[] = "RESHARD_NOT_FOUND";
inline constexpr char kInvalidShardCount[] = "INVALID_SHARD_COUNT";
inline constexpr char kInvalidBlockSize[] = "INVALID_BLOCK_SIZE";
inline constexpr char kSqlSyntax[] = "SQL_SYNTAX";
inline constexpr char kUnsupportedStatement[] = "UNSUPPORTED_STATEMENT";
inline constexpr char kUniqueViolation[] = "UNIQUE_VIOLATION";
inline constexpr char kShardKeyRequired[] = "SHARD_KEY_REQUIRED";
inline constexpr char kStorageUnavailable[] = "STORAGE_UNAVAILABLE";
// Additions: a valid statement SQLite refused (no such column, type error…).
inline constexpr char kSqlError[] = "SQL_ERROR";
// A CHECK or NOT NULL constraint refused a row.
inline constexpr char kConstraintViolation[] = "CONSTRAINT_VIOLATION";
// A request argument that is not SQL (empty name, bad identifier…).
inline constexpr char kInvalidArgument[] = "INVALID_ARGUMENT";
// The table is in the middle of another schema operation (create, drop, rename).
inline constexpr char kTableBusy[] = "TABLE_BUSY";
// A TableOps call without the configured bearer token, or with a wrong one
// (UNAUTHENTICATED; docs/security.md).
inline constexpr char kUnauthenticated[] = "UNAUTHENTICATED";
// A request over a configured limit: SQL longer than --max_sql_bytes, more
// parameters than --max_params (INVALID_ARGUMENT).
inline constexpr char kRequestTooLarge[] = "REQUEST_TOO_LARGE";
// An answer over a configured limit: more rows than --max_response_rows
// (RESOURCE_EXHAUSTED).
inline constexpr char kResultTooLarge[] = "RESULT_TOO_LARGE";
// Backups (docs/operations.md#backups-and-restore).
inline constexpr char kBackupInProgress[] = "BACKUP_IN_PROGRESS";
inline constexpr char kBackupChecksumMismatch[] = "BACKUP_CHECKSUM_MISMATCH";
inline constexpr char kBackupCorrupt[] = "BACKUP_CORRUPT";
inline constexpr char kTopologyChanged[] = "TOPOLOGY_CHANGED";
}  // namespace reason

inline constexpr char kErrorDomain[] = "conductor";

// A status with `code`, `message` and the stable `reason`.
absl::Status Error(absl::StatusCode code, absl::string_view reason, absl::string_view message);

// The reason attached by Error(), or "" when there is none.
std::string ErrorReason(const absl::Status& status);

// Prefixes the message with `context` and keeps code and reason.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

// The boundary conversion. Every non-OK result carries an ErrorInfo: a status
// without a reason gets the name of its code as reason.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The inverse: keeps code, message and the ErrorInfo reason (if any).
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace conductor

#endif  // CONDUCTOR_COMMON_ERRORS_H_
