#include "tests/harness/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tools/cpp/runfiles/runfiles.h"

extern char** environ;

namespace conductor::testing {

namespace {

// fork + exec with PR_SET_PDEATHSIG (posix_spawn cannot set it). The child
// makes only async-signal-safe calls before exec. Returns 0 or an errno.
int SpawnDyingWithParent(pid_t* pid, char* const* args, int stdout_fd, int stderr_fd) {
  pid_t parent = getpid();
  *pid = fork();
  if (*pid < 0) return errno;
  if (*pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    dup2(stdout_fd, 1);
    dup2(stderr_fd, 2);
    execv(args[0], args);
    _exit(127);
  }
  return 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Process>> Process::Start(const std::vector<std::string>& argv,
                                                        const std::string& log_path,
                                                        const ProcessOptions& options) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(absl::StrCat("cannot open ", log_path));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = 0;
  if (options.die_with_parent) {
    rc = SpawnDyingWithParent(&pid, args.data(), out[1], log_fd);
  } else {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, log_fd, 2);
    rc = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
  }
  close(out[1]);
  close(log_fd);
  if (rc != 0) {
    close(out[0]);
    return absl::InternalError(absl::StrCat("cannot start ", argv[0], ": ", strerror(rc)));
  }
  return std::unique_ptr<Process>(new Process(pid, out[0], log_path));
}

Process::~Process() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
  // Under --config=asan/tsan the servers are instrumented too, but their
  // reports land in their logs, which the test would never read: a report
  // in any child's log fails the test run here, with the report shown.
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string log = ss.str();
  for (const char* marker : {"WARNING: ThreadSanitizer:", "ERROR: AddressSanitizer:",
                             "ERROR: LeakSanitizer:", "runtime error:"}) {
    size_t at = log.find(marker);
    if (at == std::string::npos) continue;
    std::fprintf(stderr, "\nSANITIZER REPORT in child process log %s:\n%s\n", log_path_.c_str(),
                 log.substr(at, 20000).c_str());
    std::fflush(stderr);
    _exit(66);
  }
}

absl::StatusOr<std::string> Process::WaitForListening(absl::Duration timeout) {
  absl::Time give_up = absl::Now() + timeout;
  const std::string marker = "listening on ";
  while (true) {
    size_t at = buffered_.find(marker);
    if (at != std::string::npos) {
      size_t end = buffered_.find('\n', at);
      if (end != std::string::npos) {
        std::string address = buffered_.substr(at + marker.size(), end - at - marker.size());
        buffered_.erase(0, end + 1);
        return address;
      }
    }
    absl::Duration left = give_up - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          absl::StrCat("process never printed 'listening on'; log:\n", LogTail()));
    }
    pollfd pfd{stdout_fd_, POLLIN, 0};
    int ready = poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready <= 0) continue;
    char buf[4096];
    ssize_t n = read(stdout_fd_, buf, sizeof(buf));
    if (n <= 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("process exited before listening; log:\n", LogTail()));
    }
    buffered_.append(buf, static_cast<size_t>(n));
  }
}

void Process::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

namespace {

// The state letter of /proc/PID/stat ('R', 'S', 'T' for stopped, …).
char ProcessState(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() ? stat[paren + 2] : '?';
}

}  // namespace

void Process::Freeze() {
  Signal(SIGSTOP);
  for (int i = 0; i < 500 && pid_ > 0 && ProcessState(pid_) != 'T'; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void Process::Thaw() {
  Signal(SIGCONT);
  for (int i = 0; i < 500 && pid_ > 0 && ProcessState(pid_) == 'T'; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

absl::StatusOr<int> Process::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  absl::Time give_up = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (absl::Now() >= give_up) return absl::DeadlineExceededError("process did not exit");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

absl::StatusOr<int> Process::Stop(absl::Duration grace) {
  Signal(SIGTERM);
  auto code = Wait(grace);
  if (code.ok()) return code;
  Signal(SIGKILL);
  Wait(absl::Seconds(10)).IgnoreError();
  return absl::DeadlineExceededError(absl::StrCat("did not stop on SIGTERM; log:\n", LogTail()));
}

std::string Process::LogTail(size_t bytes) const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > bytes ? all.substr(all.size() - bytes) : all;
}

std::string BinaryPath(const std::string& workspace_relative) {
  std::string error;
  static std::unique_ptr<bazel::tools::cpp::runfiles::Runfiles> runfiles = [&] {
    std::unique_ptr<bazel::tools::cpp::runfiles::Runfiles> r(
        bazel::tools::cpp::runfiles::Runfiles::CreateForTest(&error));
    if (r == nullptr) {  // not under `bazel test`: the runfiles of this executable
      char self[4096];
      ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
      if (n > 0) {
        r.reset(bazel::tools::cpp::runfiles::Runfiles::Create(std::string(self, n), &error));
      }
    }
    return r;
  }();
  if (runfiles == nullptr) return workspace_relative;
  return runfiles->Rlocation("conductor/" + workspace_relative);
}

std::string MakeTempDir(const std::string& prefix) {
  static std::atomic<int> counter{0};
  const char* base = getenv("TEST_TMPDIR");
  std::string dir =
      absl::StrCat(base != nullptr ? base : "/tmp", "/", prefix, "-", getpid(), "-", counter++);
  mkdir(dir.c_str(), 0755);
  return dir;
}

}  // namespace conductor::testing
