// The gRPC face of conductor.v1.TableOps: deadlines in, statuses out. Every
// method is a thin adapter over TableOperations / SqlFrontDoor, so the one
// conversion to a gRPC status (with ErrorInfo) happens here and only here.
#ifndef CONDUCTOR_CONDUCTOR_SERVER_TABLE_OPS_SERVICE_H_
#define CONDUCTOR_CONDUCTOR_SERVER_TABLE_OPS_SERVICE_H_

#include "conductor/reshard/resharder.h"
#include "conductor/schema/table_operations.h"
#include "conductor/sql/sql_front_door.h"
#include "conductor/v1/table_ops.grpc.pb.h"

namespace conductor {

class TableOpsService final : public v1::TableOps::Service {
 public:
  // `reshards` may be null: the reshard RPCs answer UNIMPLEMENTED.
  TableOpsService(TableOperations* tables, SqlFrontDoor* sql, Resharder* reshards = nullptr)
      : tables_(tables), sql_(sql), reshards_(reshards) {}

  grpc::Status Execute(grpc::ServerContext* context, const v1::ExecuteRequest* request,
                       v1::ExecuteResponse* response) override;
  grpc::Status ListTables(grpc::ServerContext* context, const v1::ListTablesRequest* request,
                          v1::ListTablesResponse* response) override;
  grpc::Status CreateTable(grpc::ServerContext* context, const v1::CreateTableRequest* request,
                           v1::CreateTableResponse* response) override;
  grpc::Status DropTable(grpc::ServerContext* context, const v1::DropTableRequest* request,
                         v1::DropTableResponse* response) override;
  grpc::Status DescribeTable(grpc::ServerContext* context, const v1::DescribeTableRequest* request,
                             v1::DescribeTableResponse* response) override;
  grpc::Status GetTableStats(grpc::ServerContext* context, const v1::GetTableStatsRequest* request,
                             v1::GetTableStatsResponse* response) override;
  grpc::Status RenameTable(grpc::ServerContext* context, const v1::RenameTableRequest* request,
                           v1::RenameTableResponse* response) override;
  grpc::Status SetBlockSize(grpc::ServerContext* context, const v1::SetBlockSizeRequest* request,
                            v1::SetBlockSizeResponse* response) override;
  grpc::Status ListIndexes(grpc::ServerContext* context, const v1::ListIndexesRequest* request,
                           v1::ListIndexesResponse* response) override;

  // Online resharding (ReshardManager). WatchReshard sends the status at
  // once, then on every change, and ends after complete or failed.
  grpc::Status ReshardTable(grpc::ServerContext* context, const v1::ReshardTableRequest* request,
                            v1::ReshardTableResponse* response) override;
  grpc::Status GetReshardStatus(grpc::ServerContext* context,
                                const v1::GetReshardStatusRequest* request,
                                v1::ReshardStatus* response) override;
  grpc::Status WatchReshard(grpc::ServerContext* context,
                            const v1::GetReshardStatusRequest* request,
                            grpc::ServerWriter<v1::ReshardStatus>* writer) override;
  grpc::Status CreateIndex(grpc::ServerContext* context, const v1::CreateIndexRequest* request,
                           v1::CreateIndexResponse* response) override;
  grpc::Status DropIndex(grpc::ServerContext* context, const v1::DropIndexRequest* request,
                         v1::DropIndexResponse* response) override;

 private:
  // The call's deadline after --default_deadline_ms and --max_deadline_ms
  // (SqlFrontDoor::limits()).
  absl::Time Deadline(const grpc::ServerContext& context) const;

  TableOperations* tables_;
  SqlFrontDoor* sql_;
  Resharder* reshards_;
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_SERVER_TABLE_OPS_SERVICE_H_
