// How the conductor reaches storage nodes. StorageClient is the seam: the
// real implementation speaks storage.v1 over gRPC; unit tests can put a fake
// behind it.
#ifndef CONDUCTOR_CONDUCTOR_STORAGE_STORAGE_CLIENT_H_
#define CONDUCTOR_CONDUCTOR_STORAGE_STORAGE_CLIENT_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "conductor/topo/topology.h"
#include "storage/v1/storage.grpc.pb.h"

namespace conductor {

using storage::v1::ExecuteBatchRequest;
using storage::v1::ExecuteBatchResponse;

class StorageClient {
 public:
  using Callback = std::function<void(absl::StatusOr<ExecuteBatchResponse>)>;
  virtual ~StorageClient() = default;

  // Starts `request` on the node and calls `done` exactly once, possibly on
  // another thread. A node that cannot be reached yields UNAVAILABLE with
  // reason STORAGE_UNAVAILABLE and a message naming the node; a statement
  // error keeps the node's code, reason and message.
  virtual void ExecuteBatch(const NodeMeta& node, const ExecuteBatchRequest& request,
                            absl::Time deadline, Callback done) = 0;

  // The same, blocking the calling thread until the answer. The default goes
  // through ExecuteBatch; the gRPC client overrides it with a plain blocking
  // call, which saves the thread hand-offs of a callback on the hot
  // single-node path.
  virtual absl::StatusOr<ExecuteBatchResponse> ExecuteBatchBlocking(
      const NodeMeta& node, const ExecuteBatchRequest& request, absl::Time deadline);

  // Asks the node who it is (its --node_id).
  virtual absl::StatusOr<std::string> GetNodeId(const std::string& address,
                                                absl::Time deadline) = 0;
};

// One batch for one node, as part of a fan-out.
struct NodeBatch {
  NodeMeta node;
  ExecuteBatchRequest request;
};

// Sends every batch at once and waits for all answers; results are in the
// order of `batches`. A single batch is sent with ExecuteBatchBlocking.
std::vector<absl::StatusOr<ExecuteBatchResponse>> FanOut(StorageClient& client,
                                                         const std::vector<NodeBatch>& batches,
                                                         absl::Time deadline);

// Asks every node a trivial read, all at once; the first failure, else OK.
// Operations that must not be half applied call it before changing anything.
absl::Status CheckReachable(StorageClient& client, const std::vector<NodeMeta>& nodes,
                            absl::Time deadline);

// StorageClient over gRPC, one channel per address, reconnecting quickly
// after a node restarts (reconnect back-off capped at one second).
class GrpcStorageClient : public StorageClient {
 public:
  void ExecuteBatch(const NodeMeta& node, const ExecuteBatchRequest& request, absl::Time deadline,
                    Callback done) override;
  absl::StatusOr<ExecuteBatchResponse> ExecuteBatchBlocking(const NodeMeta& node,
                                                            const ExecuteBatchRequest& request,
                                                            absl::Time deadline) override;
  absl::StatusOr<std::string> GetNodeId(const std::string& address, absl::Time deadline) override;

  // The stub of the node at `address` (on the shared channel), for calls
  // this interface does not wrap (the Backup stream).
  storage::v1::Storage::Stub* stub(const std::string& address) { return StubFor(address); }

 private:
  storage::v1::Storage::Stub* StubFor(const std::string& address);

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<storage::v1::Storage::Stub>> stubs_;  // GUARDED_BY(mu_)
};

// The status a storage call failure becomes at the conductor: transport
// failures name the node; statement errors pass through unchanged.
absl::Status StorageCallStatus(const NodeMeta& node, const grpc::Status& status);

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_STORAGE_STORAGE_CLIENT_H_
