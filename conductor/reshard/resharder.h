// The reshard operations as the public API layer sees them (TableOps RPCs,
// the SQL front door, DROP/RENAME checks). ReshardManager implements it; the
// interface keeps those layers free of the manager's dependencies.
#ifndef CONDUCTOR_CONDUCTOR_RESHARD_RESHARDER_H_
#define CONDUCTOR_CONDUCTOR_RESHARD_RESHARDER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "conductor/v1/table_ops.pb.h"

namespace conductor {

class Resharder {
 public:
  virtual ~Resharder() = default;
  virtual absl::StatusOr<v1::ReshardTableResponse> Start(const v1::ReshardTableRequest& request,
                                                         absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::ReshardStatus> Status(const std::string& change_log_id) = 0;
  // Whether a reshard of the table is pending, copying or switching.
  virtual absl::StatusOr<bool> Active(int64_t table_id) = 0;
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_RESHARD_RESHARDER_H_
