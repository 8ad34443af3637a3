// SqlFrontDoor: TableOps.Execute. Parses one statement, dispatches it to the
// operation that serves it and shapes the answer into the named result sets
// of DESIGN.md §4.
#ifndef CONDUCTOR_CONDUCTOR_SQL_FRONT_DOOR_H_
#define CONDUCTOR_CONDUCTOR_SQL_FRONT_DOOR_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "conductor/index_manager.h"
#include "conductor/query_executor.h"
#include "conductor/resharder.h"
#include "conductor/table_operations.h"
#include "conductor/topology_store.h"
#include "conductor/v1/table_ops.pb.h"
#include "conductor/write_gate.h"

namespace conductor {

class SqlFrontDoor {
 public:
  // Longer statements are refused; large values belong in parameters.
  static constexpr size_t kMaxSqlBytes = 4 << 20;

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
};

// Renders epoch milliseconds as ISO 8601 UTC ("2026-11-23T21:05:00.123Z").
std::string FormatTimestamp(int64_t epoch_ms);

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_SQL_FRONT_DOOR_H_
