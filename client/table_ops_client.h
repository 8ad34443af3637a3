// TableOpsClient: the C++ client of a Conductor cluster.
//
// One method per conductor.v1.TableOps RPC (DESIGN.md §4). Every method
// returns absl::Status / absl::StatusOr; a failed call keeps the server's
// code, message and stable reason (read it with conductor::ErrorReason()).
// Every call carries a deadline: Options::default_deadline unless the call's
// CallOptions override it; when it passes the call fails DEADLINE_EXCEEDED.
//
// Thread-safe: one client may serve any number of concurrent calls.
//
//   auto client = conductor::TableOpsClient::Connect("127.0.0.1:50051");
//   if (!client.ok()) return client.status();
//   auto tables = (*client)->ListTables();
#ifndef CONDUCTOR_CLIENT_TABLE_OPS_CLIENT_H_
#define CONDUCTOR_CLIENT_TABLE_OPS_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "conductor/v1/table_ops.grpc.pb.h"
#include "grpcpp/channel.h"

namespace conductor {

// Per-call settings.
struct CallOptions {
  // The call's deadline, relative to its start. Zero (the default) means the
  // client's Options::default_deadline; absl::InfiniteDuration() means none.
  absl::Duration deadline = absl::ZeroDuration();
};

// Settings of a client (TableOpsClient::Options).
struct TableOpsClientOptions {
  // Deadline of every call that does not set its own.
  absl::Duration default_deadline = absl::Seconds(30);
  // Largest response accepted (large SELECT results).
  int max_receive_message_bytes = 256 << 20;
  // TLS (docs/security.md): a CA file makes the channel TLS, verifying the
  // conductor's certificate against it; a cert and key file (both or
  // neither) are presented as the client certificate. Empty: plaintext.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  // Name to check the conductor's certificate against instead of the
  // address's host; empty: the host.
  std::string tls_server_name;
  // Bearer token sent as "authorization: Bearer <token>" on every call;
  // empty: none (Connect does not read CONDUCTOR_AUTH_TOKEN; conductorctl does).
  std::string token;
  // The cluster's internal token, sent as "x-conductor-internal-token" on
  // every call: for admin calls on the channel to internal services (backup)
  // when the cluster uses an internal token rather than mutual TLS.
  std::string internal_token;
};

class TableOpsClient {
 public:
  using Options = TableOpsClientOptions;

  // Makes a client for the conductor at `address` ("host:port"). The channel
  // connects lazily: an unreachable conductor shows as UNAVAILABLE on the
  // first call, not here. INVALID_ARGUMENT when `address` is empty or the
  // options are out of range.
  static absl::StatusOr<std::unique_ptr<TableOpsClient>> Connect(
      absl::string_view address, const Options& options = Options());

  // A client over an existing channel (tests, custom credentials).
  static std::unique_ptr<TableOpsClient> FromChannel(std::shared_ptr<grpc::Channel> channel,
                                                     const Options& options = Options());

  // The channel to the conductor (with its credentials), for the other
  // services on the conductor's port (conductorctl backup).
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

  TableOpsClient(const TableOpsClient&) = delete;
  TableOpsClient& operator=(const TableOpsClient&) = delete;

  // Every table of the cluster, in the server's order (by name).
  absl::StatusOr<std::vector<v1::TableInfo>> ListTables(const CallOptions& call = {});

  // The table's info, shards, indexes and columns. NOT_FOUND (TABLE_NOT_FOUND)
  // when there is no such table; names are case-insensitive.
  absl::StatusOr<v1::DescribeTableResponse> Describe(absl::string_view table,
                                                     const CallOptions& call = {});

  // Row counts per active shard and in total. A shard whose node is down
  // answers status "error" without failing the call.
  absl::StatusOr<v1::GetTableStatsResponse> GetStats(absl::string_view table,
                                                     const CallOptions& call = {});

  // Creates a table from a CREATE TABLE statement. The response's `created`
  // is false when if_not_exists found it already there; ALREADY_EXISTS
  // (TABLE_ALREADY_EXISTS) otherwise.
  absl::StatusOr<v1::CreateTableResponse> CreateTable(const v1::CreateTableRequest& request,
                                                      const CallOptions& call = {});

  // Drops `table`. Returns true when dropped, false when it was absent and
  // `if_exists` is set; NOT_FOUND (TABLE_NOT_FOUND) when absent otherwise;
  // FAILED_PRECONDITION while a reshard is active.
  absl::StatusOr<bool> Drop(absl::string_view table, bool if_exists = false,
                            const CallOptions& call = {});

  // Renames `table` to `new_name` (indexes follow) and returns the new info.
  absl::StatusOr<v1::TableInfo> Rename(absl::string_view table, absl::string_view new_name,
                                       const CallOptions& call = {});

  // Sets the rows-per-block of streaming operations (1..10000, else
  // INVALID_ARGUMENT / INVALID_BLOCK_SIZE) and returns the new info.
  absl::StatusOr<v1::TableInfo> SetBlockSize(absl::string_view table, int block_size,
                                             const CallOptions& call = {});

  // Starts changing the table's shard count to `new_shard_count` (1..256).
  // Returns at once with the operation's change_log_id and first status.
  absl::StatusOr<v1::ReshardTableResponse> Reshard(absl::string_view table, int new_shard_count,
                                                   const CallOptions& call = {});

  // The current status of a reshard. NOT_FOUND for an unknown id.
  absl::StatusOr<v1::ReshardStatus> GetReshardStatus(absl::string_view change_log_id,
                                                     const CallOptions& call = {});

  // Follows a reshard: calls `on_status` (on this thread) with every status
  // the server streams, and returns when the stream ends: OK after a
  // terminal phase (complete or failed — check the last status), or the
  // stream's error. Unlike the other calls, the default deadline here is
  // none (a reshard may take hours); set call.deadline to bound it.
  absl::Status WatchReshard(absl::string_view change_log_id,
                            const std::function<void(const v1::ReshardStatus&)>& on_status,
                            const CallOptions& call = {});

  // Creates a virtual index; it starts `building` and the call returns at
  // once. `created` is false when if_not_exists found it already there.
  absl::StatusOr<v1::CreateIndexResponse> CreateIndex(const v1::CreateIndexRequest& request,
                                                      const CallOptions& call = {});

  // The indexes of `table`, or of every table when `table` is empty.
  absl::StatusOr<std::vector<v1::IndexInfo>> ListIndexes(absl::string_view table = "",
                                                         const CallOptions& call = {});

  // Drops index `name` (which must belong to `table` when `table` is not
  // empty). Same contract as Drop: true dropped, false absent with if_exists,
  // NOT_FOUND (INDEX_NOT_FOUND) otherwise.
  absl::StatusOr<bool> DropIndex(absl::string_view name, absl::string_view table = "",
                                 bool if_exists = false, const CallOptions& call = {});

  // Runs one SQL statement with `?` placeholders bound from `params` in order.
  absl::StatusOr<v1::ExecuteResponse> Execute(absl::string_view sql,
                                              const std::vector<v1::Value>& params = {},
                                              const CallOptions& call = {});

 private:
  TableOpsClient(std::shared_ptr<grpc::Channel> channel, const Options& options);
  // Applies the deadline `call` resolves to (given the default `fallback`).
  void SetDeadline(grpc::ClientContext* context, const CallOptions& call,
                   absl::Duration fallback) const;

  template <typename Request, typename Response>
  absl::StatusOr<Response> Unary(grpc::Status (v1::TableOps::Stub::*method)(grpc::ClientContext*,
                                                                            const Request&,
                                                                            Response*),
                                 const Request& request, const CallOptions& call);

  Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TableOps::Stub> stub_;
};

}  // namespace conductor

#endif  // CONDUCTOR_CLIENT_TABLE_OPS_CLIENT_H_
