// AuthenticatedTableOps: conductor.v1.TableOps behind the public bearer token
// (docs/security.md). Every method checks the caller's metadata with
// CheckAccess() and answers UNAUTHENTICATED with ErrorInfo reason
// UNAUTHENTICATED when the token is missing or wrong; otherwise it forwards
// to the wrapped service. An RPC added to the proto but not forwarded here
// answers UNIMPLEMENTED: it never bypasses the check.
//
// The conductor registers this instead of the plain service when a public
// token is configured, and sets ServerSecurity::public_checked_in_service so
// the port's auth processor leaves TableOps calls to it.
#ifndef CONDUCTOR_CONDUCTOR_SERVER_TABLE_OPS_AUTH_H_
#define CONDUCTOR_CONDUCTOR_SERVER_TABLE_OPS_AUTH_H_

#include "common/tls.h"
#include "conductor/v1/table_ops.grpc.pb.h"

namespace conductor {

class AuthenticatedTableOps final : public v1::TableOps::Service {
 public:
  // `inner` must outlive this service.
  AuthenticatedTableOps(v1::TableOps::Service* inner, ServerSecurity security)
      : inner_(inner), security_(std::move(security)) {}

#define CONDUCTOR_FORWARD_UNARY(Method, Request, Response)                                     \
  grpc::Status Method(grpc::ServerContext* context, const v1::Request* request,                \
                      v1::Response* response) override {                                       \
    if (grpc::Status denied = Check(context, "/conductor.v1.TableOps/" #Method); !denied.ok()) \
      return denied;                                                                           \
    return inner_->Method(context, request, response);                                         \
  }
  CONDUCTOR_FORWARD_UNARY(Execute, ExecuteRequest, ExecuteResponse)
  CONDUCTOR_FORWARD_UNARY(ListTables, ListTablesRequest, ListTablesResponse)
  CONDUCTOR_FORWARD_UNARY(CreateTable, CreateTableRequest, CreateTableResponse)
  CONDUCTOR_FORWARD_UNARY(DropTable, DropTableRequest, DropTableResponse)
  CONDUCTOR_FORWARD_UNARY(DescribeTable, DescribeTableRequest, DescribeTableResponse)
  CONDUCTOR_FORWARD_UNARY(GetTableStats, GetTableStatsRequest, GetTableStatsResponse)
  CONDUCTOR_FORWARD_UNARY(RenameTable, RenameTableRequest, RenameTableResponse)
  CONDUCTOR_FORWARD_UNARY(SetBlockSize, SetBlockSizeRequest, SetBlockSizeResponse)
  CONDUCTOR_FORWARD_UNARY(ReshardTable, ReshardTableRequest, ReshardTableResponse)
  CONDUCTOR_FORWARD_UNARY(GetReshardStatus, GetReshardStatusRequest, ReshardStatus)
  CONDUCTOR_FORWARD_UNARY(CreateIndex, CreateIndexRequest, CreateIndexResponse)
  CONDUCTOR_FORWARD_UNARY(DropIndex, DropIndexRequest, DropIndexResponse)
  CONDUCTOR_FORWARD_UNARY(ListIndexes, ListIndexesRequest, ListIndexesResponse)
#undef CONDUCTOR_FORWARD_UNARY

  grpc::Status WatchReshard(grpc::ServerContext* context,
                            const v1::GetReshardStatusRequest* request,
                            grpc::ServerWriter<v1::ReshardStatus>* writer) override {
    if (grpc::Status denied = Check(context, "/conductor.v1.TableOps/WatchReshard"); !denied.ok()) {
      return denied;
    }
    return inner_->WatchReshard(context, request, writer);
  }

 private:
  // OK, or the refusal with its ErrorInfo.
  grpc::Status Check(grpc::ServerContext* context, const char* path) const;

  v1::TableOps::Service* inner_;
  const ServerSecurity security_;
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_SERVER_TABLE_OPS_AUTH_H_
