#include "client/table_ops_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/tls.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace conductor {

absl::StatusOr<std::unique_ptr<TableOpsClient>> TableOpsClient::Connect(absl::string_view address,
                                                                        const Options& options) {
  if (address.empty()) return absl::InvalidArgumentError("conductor address is empty");
  if (options.default_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("default_deadline must be positive");
  }
  if (options.max_receive_message_bytes <= 0) {
    return absl::InvalidArgumentError("max_receive_message_bytes must be positive");
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  ClientSecurity security;
  auto tls =
      LoadClientTls(TlsFiles{options.tls_cert_file, options.tls_key_file, options.tls_ca_file});
  if (!tls.ok()) return tls.status();
  security.tls = *std::move(tls);
  security.server_name = options.tls_server_name;
  if (!options.token.empty()) {
    security.metadata.emplace_back(kAuthorizationHeader, absl::StrCat("Bearer ", options.token));
  }
  if (!options.internal_token.empty()) {
    security.metadata.emplace_back(kInternalTokenHeader, options.internal_token);
  }
  auto channel = MakeChannel(std::string(address), args, security);
  return FromChannel(std::move(channel), options);
}

std::unique_ptr<TableOpsClient> TableOpsClient::FromChannel(std::shared_ptr<grpc::Channel> channel,
                                                            const Options& options) {
  return std::unique_ptr<TableOpsClient>(new TableOpsClient(std::move(channel), options));
}

TableOpsClient::TableOpsClient(std::shared_ptr<grpc::Channel> channel, const Options& options)
    : options_(options), channel_(std::move(channel)), stub_(v1::TableOps::NewStub(channel_)) {}

void TableOpsClient::SetDeadline(grpc::ClientContext* context, const CallOptions& call,
                                 absl::Duration fallback) const {
  absl::Duration deadline = call.deadline == absl::ZeroDuration() ? fallback : call.deadline;
  if (deadline == absl::InfiniteDuration()) return;
  context->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
}

template <typename Request, typename Response>
absl::StatusOr<Response> TableOpsClient::Unary(
    grpc::Status (v1::TableOps::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
    const Request& request, const CallOptions& call) {
  grpc::ClientContext context;
  SetDeadline(&context, call, options_.default_deadline);
  Response response;
  grpc::Status status = (stub_.get()->*method)(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<std::vector<v1::TableInfo>> TableOpsClient::ListTables(const CallOptions& call) {
  auto response = Unary(&v1::TableOps::Stub::ListTables, v1::ListTablesRequest(), call);
  if (!response.ok()) return response.status();
  return std::vector<v1::TableInfo>(response->tables().begin(), response->tables().end());
}

absl::StatusOr<v1::DescribeTableResponse> TableOpsClient::Describe(absl::string_view table,
                                                                   const CallOptions& call) {
  v1::DescribeTableRequest request;
  request.set_table(std::string(table));
  return Unary(&v1::TableOps::Stub::DescribeTable, request, call);
}

absl::StatusOr<v1::GetTableStatsResponse> TableOpsClient::GetStats(absl::string_view table,
                                                                   const CallOptions& call) {
  v1::GetTableStatsRequest request;
  request.set_table(std::string(table));
  return Unary(&v1::TableOps::Stub::GetTableStats, request, call);
}

absl::StatusOr<v1::CreateTableResponse> TableOpsClient::CreateTable(
    const v1::CreateTableRequest& request, const CallOptions& call) {
  return Unary(&v1::TableOps::Stub::CreateTable, request, call);
}

absl::StatusOr<bool> TableOpsClient::Drop(absl::string_view table, bool if_exists,
                                          const CallOptions& call) {
  v1::DropTableRequest request;
  request.set_table(std::string(table));
  request.set_if_exists(if_exists);
  auto response = Unary(&v1::TableOps::Stub::DropTable, request, call);
  if (!response.ok()) return response.status();
  return response->dropped();
}

absl::StatusOr<v1::TableInfo> TableOpsClient::Rename(absl::string_view table,
                                                     absl::string_view new_name,
                                                     const CallOptions& call) {
  v1::RenameTableRequest request;
  request.set_table(std::string(table));
  request.set_new_name(std::string(new_name));
  auto response = Unary(&v1::TableOps::Stub::RenameTable, request, call);
  if (!response.ok()) return response.status();
  return response->table();
}

absl::StatusOr<v1::TableInfo> TableOpsClient::SetBlockSize(absl::string_view table, int block_size,
                                                           const CallOptions& call) {
  v1::SetBlockSizeRequest request;
  request.set_table(std::string(table));
  request.set_block_size(block_size);
  auto response = Unary(&v1::TableOps::Stub::SetBlockSize, request, call);
  if (!response.ok()) return response.status();
  return response->table();
}

absl::StatusOr<v1::ReshardTableResponse> TableOpsClient::Reshard(absl::string_view table,
                                                                 int new_shard_count,
                                                                 const CallOptions& call) {
  v1::ReshardTableRequest request;
  request.set_table(std::string(table));
  request.set_new_shard_count(new_shard_count);
  return Unary(&v1::TableOps::Stub::ReshardTable, request, call);
}

absl::StatusOr<v1::ReshardStatus> TableOpsClient::GetReshardStatus(absl::string_view change_log_id,
                                                                   const CallOptions& call) {
  v1::GetReshardStatusRequest request;
  request.set_change_log_id(std::string(change_log_id));
  return Unary(&v1::TableOps::Stub::GetReshardStatus, request, call);
}

absl::Status TableOpsClient::WatchReshard(
    absl::string_view change_log_id, const std::function<void(const v1::ReshardStatus&)>& on_status,
    const CallOptions& call) {
  v1::GetReshardStatusRequest request;
  request.set_change_log_id(std::string(change_log_id));
  grpc::ClientContext context;
  SetDeadline(&context, call, absl::InfiniteDuration());
  std::unique_ptr<grpc::ClientReader<v1::ReshardStatus>> reader =
      stub_->WatchReshard(&context, request);
  v1::ReshardStatus status;
  while (reader->Read(&status)) {
    if (on_status) on_status(status);
  }
  return FromGrpcStatus(reader->Finish());
}

absl::StatusOr<v1::CreateIndexResponse> TableOpsClient::CreateIndex(
    const v1::CreateIndexRequest& request, const CallOptions& call) {
  return Unary(&v1::TableOps::Stub::CreateIndex, request, call);
}

absl::StatusOr<std::vector<v1::IndexInfo>> TableOpsClient::ListIndexes(absl::string_view table,
                                                                       const CallOptions& call) {
  v1::ListIndexesRequest request;
  request.set_table(std::string(table));
  auto response = Unary(&v1::TableOps::Stub::ListIndexes, request, call);
  if (!response.ok()) return response.status();
  return std::vector<v1::IndexInfo>(response->indexes().begin(), response->indexes().end());
}

absl::StatusOr<bool> TableOpsClient::DropIndex(absl::string_view name, absl::string_view table,
                                               bool if_exists, const CallOptions& call) {
  v1::DropIndexRequest request;
  request.set_name(std::string(name));
  request.set_table(std::string(table));
  request.set_if_exists(if_exists);
  auto response = Unary(&v1::TableOps::Stub::DropIndex, request, call);
  if (!response.ok()) return response.status();
  return response->dropped();
}

absl::StatusOr<v1::ExecuteResponse> TableOpsClient::Execute(absl::string_view sql,
                                                            const std::vector<v1::Value>& params,
                                                            const CallOptions& call) {
  v1::ExecuteRequest request;
  request.set_sql(std::string(sql));
  for (const v1::Value& value : params) *request.add_params() = value;
  return Unary(&v1::TableOps::Stub::Execute, request, call);
}

}  // namespace conductor
