// Minimal structured logging to stderr (Debian's Abseil has no absl/log).
#ifndef CONDUCTOR_COMMON_LOGGING_H_
#define CONDUCTOR_COMMON_LOGGING_H_

#include <string>

#include "absl/strings/str_format.h"

namespace conductor {

enum class LogLevel { kInfo, kWarning, kError };

// Names this process in every line ("conductor", "storage_node[n1]"…).
void SetLogTag(const std::string& tag);
void LogLine(LogLevel level, const std::string& message);

template <typename... Args>
void LogInfo(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kInfo, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogWarning(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kWarning, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogError(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(LogLevel::kError, absl::StrFormat(format, args...));
}

}  // namespace conductor

#endif  // CONDUCTOR_COMMON_LOGGING_H_
