#include "conductor/server/table_ops_auth.h"

#include "common/errors.h"

namespace conductor {
namespace {

absl::string_view Metadata(const grpc::ServerContext& context, const char* key) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(key);
  if (it == metadata.end()) return absl::string_view();
  return absl::string_view(it->second.data(), it->second.size());
}

}  // namespace

grpc::Status AuthenticatedTableOps::Check(grpc::ServerContext* context, const char* path) const {
  std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  const bool peer_verified = auth != nullptr && auth->IsPeerAuthenticated();
  grpc::Status status = CheckAccess(security_, path, Metadata(*context, kAuthorizationHeader),
                                    Metadata(*context, kInternalTokenHeader), peer_verified);
  if (status.ok()) return status;
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  if (code != absl::StatusCode::kUnauthenticated) {
    return ToGrpcStatus(absl::Status(code, status.error_message()));
  }
  return ToGrpcStatus(Error(code, reason::kUnauthenticated, status.error_message()));
}

}  // namespace conductor
