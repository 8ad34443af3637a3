#include "conductor/storage/storage_client.h"

#include <condition_variable>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/tls.h"
#include "grpcpp/grpcpp.h"

namespace conductor {

absl::Status StorageCallStatus(const NodeMeta& node, const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  std::string where =
      node.node_id.empty() ? node.address : absl::StrCat(node.node_id, " (", node.address, ")");
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return Error(
          absl::StatusCode::kUnavailable, reason::kStorageUnavailable,
          absl::StrCat("storage node ", where, " is unavailable: ", status.error_message()));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Error(absl::StatusCode::kDeadlineExceeded, "DEADLINE_EXCEEDED",
                   absl::StrCat("deadline exceeded waiting for storage node ", where));
    case grpc::StatusCode::UNIMPLEMENTED:
      return Error(absl::StatusCode::kUnavailable, reason::kStorageUnavailable,
                   absl::StrCat("storage node ", where,
                                " does not speak this storage protocol: ", status.error_message()));
    default:
      return FromGrpcStatus(status);
  }
}

namespace {

std::chrono::system_clock::time_point ToChrono(absl::Time t) { return absl::ToChronoTime(t); }

}  // namespace

storage::v1::Storage::Stub* GrpcStorageClient::StubFor(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& stub = stubs_[address];
  if (stub == nullptr) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetMaxReceiveMessageSize(256 << 20);
    args.SetMaxSendMessageSize(256 << 20);
    stub = storage::v1::Storage::NewStub(MakeChannel(address, args));
  }
  return stub.get();
}

void GrpcStorageClient::ExecuteBatch(const NodeMeta& node, const ExecuteBatchRequest& request,
                                     absl::Time deadline, Callback done) {
  struct Call {
    grpc::ClientContext context;
    ExecuteBatchRequest request;
    ExecuteBatchResponse response;
    NodeMeta node;
    Callback done;
  };
  auto* call = new Call;
  call->node = node;
  call->request = request;
  call->done = std::move(done);
  call->context.set_deadline(ToChrono(deadline));
  StubFor(node.address)
      ->async()
      ->ExecuteBatch(&call->context, &call->request, &call->response,
                     [call](const grpc::Status& status) {
                       std::unique_ptr<Call> owned(call);
                       if (status.ok()) {
                         owned->done(std::move(owned->response));
                       } else {
                         owned->done(StorageCallStatus(owned->node, status));
                       }
                     });
}

absl::StatusOr<ExecuteBatchResponse> GrpcStorageClient::ExecuteBatchBlocking(
    const NodeMeta& node, const ExecuteBatchRequest& request, absl::Time deadline) {
  grpc::ClientContext context;
  context.set_deadline(ToChrono(deadline));
  ExecuteBatchResponse response;
  grpc::Status status = StubFor(node.address)->ExecuteBatch(&context, request, &response);
  if (!status.ok()) return StorageCallStatus(node, status);
  return response;
}

absl::StatusOr<std::string> GrpcStorageClient::GetNodeId(const std::string& address,
                                                         absl::Time deadline) {
  grpc::ClientContext context;
  context.set_deadline(ToChrono(deadline));
  storage::v1::GetNodeInfoRequest request;
  storage::v1::GetNodeInfoResponse response;
  grpc::Status status = StubFor(address)->GetNodeInfo(&context, request, &response);
  if (!status.ok()) return StorageCallStatus(NodeMeta{"", address}, status);
  return response.node_id();
}

namespace {

// Starts every batch with the callback API and waits for all answers.
std::vector<absl::StatusOr<ExecuteBatchResponse>> StartAllAndWait(
    StorageClient& client, const std::vector<NodeBatch>& batches, absl::Time deadline) {
  std::vector<absl::StatusOr<ExecuteBatchResponse>> results(batches.size(),
                                                            absl::UnknownError("no answer"));
  std::mutex mu;
  std::condition_variable cv;
  size_t pending = batches.size();
  for (size_t i = 0; i < batches.size(); ++i) {
    client.ExecuteBatch(batches[i].node, batches[i].request, deadline,
                        [&, i](absl::StatusOr<ExecuteBatchResponse> result) {
                          std::lock_guard<std::mutex> lock(mu);
                          results[i] = std::move(result);
                          if (--pending == 0) cv.notify_all();
                        });
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return pending == 0; });
  return results;
}

}  // namespace

absl::StatusOr<ExecuteBatchResponse> StorageClient::ExecuteBatchBlocking(
    const NodeMeta& node, const ExecuteBatchRequest& request, absl::Time deadline) {
  auto results = StartAllAndWait(*this, {NodeBatch{node, request}}, deadline);
  return std::move(results[0]);
}

std::vector<absl::StatusOr<ExecuteBatchResponse>> FanOut(StorageClient& client,
                                                         const std::vector<NodeBatch>& batches,
                                                         absl::Time deadline) {
  if (batches.size() == 1) {
    std::vector<absl::StatusOr<ExecuteBatchResponse>> results;
    results.push_back(client.ExecuteBatchBlocking(batches[0].node, batches[0].request, deadline));
    return results;
  }
  return StartAllAndWait(client, batches, deadline);
}

absl::Status CheckReachable(StorageClient& client, const std::vector<NodeMeta>& nodes,
                            absl::Time deadline) {
  std::vector<NodeBatch> probes;
  for (const NodeMeta& node : nodes) {
    NodeBatch probe{node, {}};
    probe.request.set_read_only(true);
    probe.request.add_statements()->set_sql("SELECT 1");
    probes.push_back(std::move(probe));
  }
  for (const auto& answer : FanOut(client, probes, deadline)) {
    if (!answer.ok()) return answer.status();
  }
  return absl::OkStatus();
}

}  // namespace conductor
