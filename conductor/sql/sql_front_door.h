// SqlFrontDoor: TableOps.Execute. Parses one statement, dispatches it to the
// operation that serves it and shapes the answer into the named result sets
// of DESIGN.md §4.
#ifndef CONDUCTOR_CONDUCTOR_SQL_SQL_FRONT_DOOR_H_
#define CONDUCTOR_CONDUCTOR_SQL_SQL_FRONT_DOOR_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "conductor/executor/query_executor.h"
#include "conductor/index/index_manager.h"
#include "conductor/reshard/resharder.h"
#include "conductor/schema/table_operations.h"
#include "conductor/sql/write_gate.h"
#include "conductor/topo/topology_store.h"
#include "conductor/v1/table_ops.pb.h"

namespace conductor {

// Per-request limits of the public API (docs/data-path.md#limits), each a
// conductor flag. Exceeding one is refused with a clear error before any
// work is done where possible.
struct RequestLimits {
  // --max_sql_bytes: longer statements answer INVALID_ARGUMENT /
  // REQUEST_TOO_LARGE (large values belong in parameters).
  size_t max_sql_bytes = 4 << 20;
  // --max_params: more `params` (or a higher parameter number) answer
  // INVALID_ARGUMENT / REQUEST_TOO_LARGE. At most kMaxParamsCeiling: the
  // conductor binds one more parameter (the shard id) than the user's, and
  // SQLite accepts 32766.
  int max_params = 32765;
  static constexpr int kMaxParamsCeiling = 32765;
  // --max_response_rows: a SELECT whose answer would hold more rows answers
  // RESOURCE_EXHAUSTED / RESULT_TOO_LARGE.
  int64_t max_response_rows = 100000;
  // --default_deadline_ms: the deadline of a call whose client sent none
  // (InfiniteDuration: none).
  absl::Duration default_deadline = absl::Seconds(60);
  // --max_deadline_ms: longer client deadlines are shortened to this
  // (InfiniteDuration: no cap).
  absl::Duration max_deadline = absl::Hours(1);

  // The deadline a call works under: the client's `deadline`
  // (InfiniteFuture when it sent none) after the default and the cap.
  absl::Time EffectiveDeadline(absl::Time deadline, absl::Time now) const;
};

class SqlFrontDoor {
 public:
  // `indexes` may be null: no index routing or maintenance; `gate` may be
  // null: writes are never held.
  SqlFrontDoor(TableOperations* tables, TopologyStore* store, QueryExecutor* executor,
               IndexManager* indexes = nullptr, WriteGate* gate = nullptr,
               Resharder* reshards = nullptr)
      : tables_(tables),
        store_(store),
        executor_(executor),
        indexes_(indexes),
        gate_(gate),
        reshards_(reshards) {}

  absl::StatusOr<v1::ExecuteResponse> Execute(const v1::ExecuteRequest& request,
                                              absl::Time deadline);

  void set_limits(const RequestLimits& limits) { limits_ = limits; }
  // INVALID_ARGUMENT / REQUEST_TOO_LARGE when `sql` is longer than
  // --max_sql_bytes (Execute and the typed CreateTable).
  absl::Status CheckSqlLength(absl::string_view sql) const;
  const RequestLimits& limits() const { return limits_; }

 private:
  // Routes and runs one SELECT / INSERT / UPDATE / DELETE, or (explain)
  // only describes its route.
  absl::StatusOr<v1::ExecuteResponse> RunData(absl::string_view sql,
                                              const std::vector<Value>& params, absl::Time deadline,
                                              bool explain);

  TableOperations* tables_;
  TopologyStore* store_;
  QueryExecutor* executor_;
  IndexManager* indexes_;
  WriteGate* gate_;
  Resharder* reshards_;
  RequestLimits limits_;
};

// Renders epoch milliseconds as ISO 8601 UTC ("2026-11-23T21:05:00.123Z").
std::string FormatTimestamp(int64_t epoch_ms);

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_SQL_SQL_FRONT_DOOR_H_
