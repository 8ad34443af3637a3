#include "storage_node/call_control.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace conductor {
namespace storage_node {

bool CallControl::ShouldStop() const {
  if (deadline != absl::InfiniteFuture() && absl::Now() >= deadline) return true;
  return is_cancelled && is_cancelled();
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
