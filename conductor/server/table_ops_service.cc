#include "conductor/server/table_ops_service.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/server.h"

namespace conductor {
namespace {

// Copies an OK result into the response; converts a failure once.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status NotYet(const char* what) {
  return ToGrpcStatus(Error(absl::StatusCode::kUnimplemented, reason::kUnsupportedStatement,
                            absl::StrCat(what,
                                         " is not available in this version of Conductor "
                                         "yet (see README.md, Roadmap)")));
}

}  // namespace

absl::Time TableOpsService::Deadline(const grpc::ServerContext& context) const {
  return sql_->limits().EffectiveDeadline(CallDeadline(context), absl::Now());
}

grpc::Status TableOpsService::ReshardTable(grpc::ServerContext* context,
                                           const v1::ReshardTableRequest* request,
                                           v1::ReshardTableResponse* response) {
  if (reshards_ == nullptr) return NotYet("ReshardTable (online resharding)");
  return Reply(reshards_->Start(*request, Deadline(*context)), response);
}

grpc::Status TableOpsService::GetReshardStatus(grpc::ServerContext*,
                                               const v1::GetReshardStatusRequest* request,
                                               v1::ReshardStatus* response) {
  if (reshards_ == nullptr) return NotYet("GetReshardStatus (online resharding)");
  return Reply(reshards_->Status(request->change_log_id()), response);
}

grpc::Status TableOpsService::WatchReshard(grpc::ServerContext* context,
                                           const v1::GetReshardStatusRequest* request,
                                           grpc::ServerWriter<v1::ReshardStatus>* writer) {
  if (reshards_ == nullptr) return NotYet("WatchReshard (online resharding)");
  // Every change of phase or progress, then the end after a terminal phase.
  std::string last;
  while (!context->IsCancelled()) {
    auto status = reshards_->Status(request->change_log_id());
    if (!status.ok()) return ToGrpcStatus(status.status());
    v1::ReshardStatus shown = *status;
    shown.clear_updated_at_ms();
    std::string now = shown.SerializeAsString();
    if (now != last) {
      if (!writer->Write(*status)) return grpc::Status::OK;
      last = now;
    }
    if (status->phase() == v1::RESHARD_PHASE_COMPLETE ||
        status->phase() == v1::RESHARD_PHASE_FAILED) {
      return grpc::Status::OK;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
}

grpc::Status TableOpsService::CreateIndex(grpc::ServerContext* context,
                                          const v1::CreateIndexRequest* request,
                                          v1::CreateIndexResponse* response) {
  return Reply(tables_->CreateIndex(*request, Deadline(*context)), response);
}

grpc::Status TableOpsService::DropIndex(grpc::ServerContext* context,
                                        const v1::DropIndexRequest* request,
                                        v1::DropIndexResponse* response) {
  return Reply(tables_->DropIndex(*request, Deadline(*context)), response);
}

grpc::Status TableOpsService::Execute(grpc::ServerContext* context,
                                      const v1::ExecuteRequest* request,
                                      v1::ExecuteResponse* response) {
  return Reply(sql_->Execute(*request, Deadline(*context)), response);
}

grpc::Status TableOpsService::ListTables(grpc::ServerContext*, const v1::ListTablesRequest*,
                                         v1::ListTablesResponse* response) {
  *response = tables_->ListTables();
  return grpc::Status::OK;
}

grpc::Status TableOpsService::CreateTable(grpc::ServerContext* context,
                                          const v1::CreateTableRequest* request,
                                          v1::CreateTableResponse* response) {
  if (auto s = sql_->CheckSqlLength(request->sql()); !s.ok()) return ToGrpcStatus(s);
  return Reply(tables_->CreateTable(*request, Deadline(*context)), response);
}

grpc::Status TableOpsService::DropTable(grpc::ServerContext* context,
                                        const v1::DropTableRequest* request,
                                        v1::DropTableResponse* response) {
  return Reply(tables_->DropTable(*request, Deadline(*context)), response);
}

grpc::Status TableOpsService::DescribeTable(grpc::ServerContext*,
                                            const v1::DescribeTableRequest* request,
                                            v1::DescribeTableResponse* response) {
  return Reply(tables_->DescribeTable(*request), response);
}

grpc::Status TableOpsService::GetTableStats(grpc::ServerContext* context,
                                            const v1::GetTableStatsRequest* request,
                                            v1::GetTableStatsResponse* response) {
  return Reply(tables_->GetTableStats(*request, Deadline(*context)), response);
}

grpc::Status TableOpsService::RenameTable(grpc::ServerContext* context,
                                          const v1::RenameTableRequest* request,
                                          v1::RenameTableResponse* response) {
  return Reply(tables_->RenameTable(*request, Deadline(*context)), response);
}

grpc::Status TableOpsService::SetBlockSize(grpc::ServerContext* context,
                                           const v1::SetBlockSizeRequest* request,
                                           v1::SetBlockSizeResponse* response) {
  return Reply(tables_->SetBlockSize(*request, Deadline(*context)), response);
}

grpc::Status TableOpsService::ListIndexes(grpc::ServerContext*,
                                          const v1::ListIndexesRequest* request,
                                          v1::ListIndexesResponse* response) {
  return Reply(tables_->ListIndexes(*request), response);
}

}  // namespace conductor
