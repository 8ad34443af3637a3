#include "common/logging.h"

#include <cstdio>
#include <mutex>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace conductor {
namespace {
std::mutex& TagMutex() {
  static std::mutex mu;
  return mu;
}
std::string& Tag() {
  static std::string tag = "conductor";
  return tag;
}
}  // namespace

void SetLogTag(const std::string& tag) {
  std::lock_guard<std::mutex> lock(TagMutex());
  Tag() = tag;
}

void LogLine(LogLevel level, const std::string& message) {
  const char* name = level == LogLevel::kInfo ? "I" : level == LogLevel::kWarning ? "W" : "E";
  std::string time = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  std::lock_guard<std::mutex> lock(TagMutex());
  fprintf(stderr, "%s %s %s: %s\n", name, time.c_str(), Tag().c_str(), message.c_str());
  fflush(stderr);
}

}  // namespace conductor
