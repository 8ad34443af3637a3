// Runs one ExecuteBatch request on one connection, in one transaction.
#ifndef CONDUCTOR_STORAGE_NODE_BATCH_RUNNER_H_
#define CONDUCTOR_STORAGE_NODE_BATCH_RUNNER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "storage/v1/storage.pb.h"
#include "storage_node/call_control.h"
#include "storage_node/connection.h"

namespace conductor {
namespace storage_node {

struct BatchLimits {
  // Largest response, in (approximate) serialized bytes; beyond it the batch
  // fails with RESOURCE_EXHAUSTED.
  int64_t max_response_bytes = int64_t{64} << 20;
};

// Runs the statements of `request` in order inside one transaction on
// `connection`: BEGIN ... ROLLBACK for a read_only batch (which refuses any
// statement that writes with FAILED_PRECONDITION), BEGIN IMMEDIATE ... COMMIT
// otherwise. On success `response` holds one result per statement; on any
// error nothing is applied, `response` is cleared and the status names the
// failing statement when there are several. Statements are interrupted once
// `control` says the call must stop (DEADLINE_EXCEEDED / CANCELLED).
// REQUIRES: the caller has `connection` to itself; `request` is not empty.
absl::Status RunBatch(Connection& connection, const storage::v1::ExecuteBatchRequest& request,
                      const CallControl& control, const BatchLimits& limits,
                      storage::v1::ExecuteBatchResponse* response);

}  // namespace storage_node
}  // namespace conductor

#endif  // CONDUCTOR_STORAGE_NODE_BATCH_RUNNER_H_
