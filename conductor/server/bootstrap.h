// Builds the conductor's object graph: data directory, topology store,
// storage-node registration, table operations, the job queue, virtual index
// maintenance and the gRPC services (TableOps and the internal
// JobQueueService, IndexBuildService, ReshardService and BackupService, on the
// same port).
#ifndef CONDUCTOR_CONDUCTOR_SERVER_BOOTSTRAP_H_
#define CONDUCTOR_CONDUCTOR_SERVER_BOOTSTRAP_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "conductor/executor/query_executor.h"
#include "conductor/index/index_build_service.h"
#include "conductor/index/index_entries.h"
#include "conductor/index/index_manager.h"
#include "conductor/jobs/job_queue_service.h"
#include "conductor/reshard/reshard_manager.h"
#include "conductor/reshard/reshard_service.h"
#include "conductor/schema/table_operations.h"
#include "conductor/server/backup_service.h"
#include "conductor/server/table_ops_service.h"
#include "conductor/sql/sql_front_door.h"
#include "conductor/storage/storage_client.h"
#include "conductor/topo/job_queue.h"
#include "conductor/topo/topology_store.h"
#include "grpcpp/grpcpp.h"

namespace conductor {

struct BootstrapOptions {
  std::string listen;
  std::string data_dir;
  std::vector<std::string> storage_nodes;  // HOST:PORT each
  absl::Duration storage_timeout = absl::Seconds(10);
  absl::Duration storage_wait = absl::Seconds(60);
  // Job queue (docs/job-queue.md): lease length and attempts per job.
  absl::Duration job_lease = absl::Seconds(30);
  int job_max_attempts = 5;
  // Limits of the public API (docs/data-path.md#limits).
  RequestLimits limits;
  // Resharding (docs/resharding.md): the longest a switch may hold writes.
  absl::Duration reshard_max_pause = absl::Seconds(2);
  bool reshard_verify_checksums = false;
  // Fault-injection for tests only: how long a switch waits with writes
  // held, just before / just after its topology transaction.
  absl::Duration testing_switch_hold_before = absl::ZeroDuration();
  absl::Duration testing_switch_hold_after = absl::ZeroDuration();
};

// Flag-level checks: addresses well formed, data_dir given, no duplicates.
absl::Status ValidateBootstrapOptions(const BootstrapOptions& options);

class Conductor {
 public:
  // Opens DATA_DIR/topology.db and registers every storage node that the
  // topology does not know yet (asking each for its node id, waiting up to
  // storage_wait for it to answer). Known nodes are not waited for: a
  // conductor restarts even while a node is down.
  static absl::StatusOr<std::unique_ptr<Conductor>> Start(const BootstrapOptions& options);

  std::vector<grpc::Service*> services() {
    return {&table_ops_service_, &job_queue_service_, &index_build_service_, &reshard_service_,
            backup_service_.get()};
  }

  // The durable job queue, for the operations that enqueue jobs and
  // register OnFinished hooks.
  JobQueue* job_queue() { return &job_queue_; }

  // Called at SIGTERM, before the server shuts down: wakes every long-polling
  // Lease so the server is not held up by them. Idempotent.
  void Shutdown();

 private:
  Conductor(std::unique_ptr<TopologyStore> store, std::unique_ptr<IndexEntryStore> entries,
            TableOperationsOptions options, JobQueueOptions job_options,
            ReshardOptions reshard_options);

  std::unique_ptr<TopologyStore> store_;
  JobQueue job_queue_;
  GrpcStorageClient storage_;
  IndexManager indexes_;
  WriteGate write_gate_;
  TableOperations tables_;
  ReshardManager reshards_;
  QueryExecutor executor_;
  SqlFrontDoor sql_;
  TableOpsService table_ops_service_;
  JobQueueService job_queue_service_;
  IndexBuildService index_build_service_;
  ReshardService reshard_service_;
  std::unique_ptr<BackupService> backup_service_;  // set by Start()
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_SERVER_BOOTSTRAP_H_
