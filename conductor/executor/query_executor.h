// QueryExecutor: runs a QueryPlan — one batch per storage node, every node
// in parallel — and merges the answers into the statement's result.
#ifndef CONDUCTOR_CONDUCTOR_EXECUTOR_QUERY_EXECUTOR_H_
#define CONDUCTOR_CONDUCTOR_EXECUTOR_QUERY_EXECUTOR_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "conductor/planner/query_planner.h"
#include "conductor/storage/storage_client.h"
#include "conductor/v1/table_ops.pb.h"

namespace conductor {

class QueryExecutor {
 public:
  QueryExecutor(StorageClient* storage, absl::Duration storage_timeout)
      : storage_(storage), storage_timeout_(storage_timeout) {}

  // Runs `plan`. Reads never return partial results: any shard failing fails
  // the statement (UNAVAILABLE naming the node when it cannot be reached).
  // Result rows are named `result_name`. A SELECT whose answer would hold
  // more than `max_rows` rows (when not negative) fails with
  // RESOURCE_EXHAUSTED / RESULT_TOO_LARGE; the merge stops reading there.
  absl::StatusOr<v1::ExecuteResponse> Run(const QueryPlan& plan, const std::string& result_name,
                                          absl::Time deadline, int64_t max_rows = -1);

  // The route of `plan` as the EXPLAIN result set: one row per shard
  // statement (route, shard_id, node_id, sql, merge, index_name).
  static v1::ExecuteResponse Explain(const QueryPlan& plan);

 private:
  StorageClient* storage_;
  absl::Duration storage_timeout_;
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_EXECUTOR_QUERY_EXECUTOR_H_
