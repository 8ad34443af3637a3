// Builds the conductor's object graph: data directory, topology store,
// storage-node registration, table operations and the gRPC services.
#ifndef CONDUCTOR_CONDUCTOR_BOOTSTRAP_H_
#define CONDUCTOR_CONDUCTOR_BOOTSTRAP_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "conductor/query_executor.h"
#include "conductor/sql_front_door.h"
#include "conductor/storage_client.h"
#include "conductor/table_operations.h"
#include "conductor/table_ops_service.h"
#include "conductor/topology_store.h"
#include "grpcpp/grpcpp.h"

namespace conductor {

struct BootstrapOptions {
  std::string listen;
  std::string data_dir;
  std::vector<std::string> storage_nodes;  // HOST:PORT each
  absl::Duration storage_timeout = absl::Seconds(10);
  absl::Duration storage_wait = absl::Seconds(60);
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

  std::vector<grpc::Service*> services() { return {&table_ops_service_}; }

 private:
  explicit Conductor(std::unique_ptr<TopologyStore> store, TableOperationsOptions options);

  std::unique_ptr<TopologyStore> store_;
  GrpcStorageClient storage_;
  TableOperations tables_;
  QueryExecutor executor_;
  SqlFrontDoor sql_;
  TableOpsService table_ops_service_;
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_BOOTSTRAP_H_
