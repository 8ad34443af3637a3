// A child process for multi-process tests: spawned with its stdout on a
// pipe (to read the "listening on HOST:PORT" line) and its stderr in a log
// file, and signalled, waited for and reaped by the test.
#ifndef CONDUCTOR_TESTS_HARNESS_PROCESS_H_
#define CONDUCTOR_TESTS_HARNESS_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace conductor::testing {

struct ProcessOptions {
  // SIGKILL the child when the thread that started it exits
  // (PR_SET_PDEATHSIG), so that a crashed or killed caller never leaves it
  // behind. For programs run outside `bazel test` (the benchmarks).
  bool die_with_parent = false;
};

class Process {
 public:
  // Starts `argv[0]` with `argv`; stderr goes to `log_path`.
  static absl::StatusOr<std::unique_ptr<Process>> Start(const std::vector<std::string>& argv,
                                                        const std::string& log_path,
                                                        const ProcessOptions& options = {});
  // SIGKILLs a still-running child. If the child's log holds a sanitizer
  // report (ThreadSanitizer, AddressSanitizer, LeakSanitizer, UBSan), prints
  // it and ends the whole test program with exit code 66.
  ~Process();

  // Reads stdout until a line "listening on ADDR" and returns ADDR.
  absl::StatusOr<std::string> WaitForListening(absl::Duration timeout);
  void Signal(int sig);
  // SIGSTOP / SIGCONT and wait until the kernel reports the process stopped
  // or running again (signal delivery is asynchronous).
  void Freeze();
  void Thaw();
  // Waits for exit; returns the exit code (128+signal when killed), or
  // DEADLINE_EXCEEDED.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // SIGTERM, then SIGKILL if it has not exited within `grace`.
  absl::StatusOr<int> Stop(absl::Duration grace = absl::Seconds(10));
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  // The last `bytes` of the log, for failure messages.
  std::string LogTail(size_t bytes = 4000) const;

 private:
  Process(pid_t pid, int stdout_fd, std::string log_path)
      : pid_(pid), stdout_fd_(stdout_fd), log_path_(std::move(log_path)) {}
  pid_t pid_;
  int stdout_fd_;
  std::string log_path_;
  std::string buffered_;
};

// Absolute path of a binary in this test's runfiles ("storage_node/storage_node");
// outside `bazel test` (`bazel run`, or the binary started by hand), in the
// runfiles of the running executable.
std::string BinaryPath(const std::string& workspace_relative);

// A fresh directory under TEST_TMPDIR.
std::string MakeTempDir(const std::string& prefix);

}  // namespace conductor::testing

#endif  // CONDUCTOR_TESTS_HARNESS_PROCESS_H_
