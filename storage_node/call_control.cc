#include "storage_node/call_control.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace conductor {
namespace storage_node {

bool CallControl::ShouldStop() const {
  const absl::Time now = absl::Now();
  if (deadline != absl::InfiniteFuture() && now >= deadline) return true;
  // ServerContext::IsCancelled takes locks in gRPC's sync server; asking it
  // on every progress callback cost a scan more in futex calls than in SQL.
  if (!is_cancelled || now < next_cancel_check_) return false;
  next_cancel_check_ = now + kCancelCheckInterval;
  return is_cancelled();
}

absl::Status CallControl::Check(const char* what) const {
  if (deadline != absl::InfiniteFuture() && absl::Now() >= deadline) {
    return absl::DeadlineExceededError(absl::StrCat("deadline exceeded ", what));
  }
  if (is_cancelled && is_cancelled()) {
    return absl::CancelledError(absl::StrCat("call cancelled ", what));
  }
  return absl::OkStatus();
}

}  // namespace storage_node
}  // namespace conductor
