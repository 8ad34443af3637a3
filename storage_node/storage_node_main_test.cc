// Starts the real storage_node binary: serving, health, SIGTERM, bad flags and
// unusable data directories.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "storage/v1/storage.grpc.pb.h"
#include "tools/cpp/runfiles/runfiles.h"

extern char** environ;

namespace {

using bazel::tools::cpp::runfiles::Runfiles;

// A child process with its stdout on a pipe and its stderr in a file.
class ChildProcess {
 public:
  // Starts `argv`; null when the process cannot be spawned.
  static std::unique_ptr<ChildProcess> Start(const std::vector<std::string>& argv,
                                             const std::string& stderr_path) {
    int out[2];
    if (pipe(out) != 0) return nullptr;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    posix_spawn_file_actions_addclose(&actions, out[1]);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    if (rc != 0) {
      close(out[0]);
      return nullptr;
    }
    return std::unique_ptr<ChildProcess>(new ChildProcess(pid, out[0], stderr_path));
  }

  ~ChildProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(stdout_fd_);
  }

  // The next line of stdout (without '\n'), or nullopt at end of file or when
  // `timeout` passes first.
  std::optional<std::string> ReadLine(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      const int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (wait_ms <= 0) return std::nullopt;
      pollfd fd = {stdout_fd_, POLLIN, 0};
      if (poll(&fd, 1, wait_ms) <= 0) continue;
      char chunk[4096];
      ssize_t n = read(stdout_fd_, chunk, sizeof(chunk));
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, n);
    }
  }

  void Signal(int signal) { kill(pid_, signal); }

  // The exit code, -signal when killed by a signal, or nullopt when the
  // process is still running after `timeout`.
  std::optional<int> Wait(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      int status = 0;
      pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      }
      if (absl::Now() >= deadline) return std::nullopt;
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  std::string Stderr() const {
    std::ifstream in(stderr_path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  ChildProcess(pid_t pid, int stdout_fd, std::string stderr_path)
      : pid_(pid), stdout_fd_(stdout_fd), stderr_path_(std::move(stderr_path)) {}

  pid_t pid_;
  int stdout_fd_;
  std::string stderr_path_;
  std::string buffer_;
};

class StorageNodeMainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    std::unique_ptr<Runfiles> runfiles(Runfiles::CreateForTest(&error));
    ASSERT_NE(runfiles, nullptr) << error;
    binary_ = runfiles->Rlocation("conductor/storage_node/storage_node");
    ASSERT_TRUE(std::filesystem::exists(binary_)) << binary_;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = ::testing::TempDir() + "/storage_node_main_test/" + info->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }

  std::unique_ptr<ChildProcess> Start(std::vector<std::string> flags) {
    flags.insert(flags.begin(), binary_);
    auto child = ChildProcess::Start(flags, dir_ + "/stderr.txt");
    EXPECT_NE(child, nullptr) << "cannot start " << binary_;
    return child;
  }

  // Runs the binary with `flags`, expecting it to exit on its own; returns the
  // exit code and (in `*stderr_text`) what it printed on stderr.
  int RunToExit(std::vector<std::string> flags, std::string* stderr_text) {
    auto child = Start(std::move(flags));
    if (child == nullptr) return -1000;
    std::optional<int> code = child->Wait(absl::Seconds(10));
    *stderr_text = child->Stderr();
    EXPECT_TRUE(code.has_value()) << "the binary did not exit";
    return code.value_or(-1000);
  }

  std::string binary_;
  std::string dir_;
};

// Calls grpc.health.v1.Health/Check without generated code: the request is
// empty (all services) and SERVING is field 1 = 1, i.e. the bytes 08 01.
grpc::Status HealthCheck(const std::shared_ptr<grpc::Channel>& channel, std::string* response) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue queue;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  auto call = stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &queue);
  call->StartCall();
  grpc::ByteBuffer reply;
  grpc::Status status;
  call->Finish(&reply, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  EXPECT_TRUE(queue.Next(&tag, &ok));
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  std::vector<grpc::Slice> slices;
  if (status.ok() && reply.Dump(&slices).ok()) {
    for (const grpc::Slice& slice : slices) {
      response->append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
  }
  return status;
}

TEST_F(StorageNodeMainTest, ServesAndStopsCleanlyOnSigterm) {
  auto node = Start({"--listen=127.0.0.1:0", "--data_dir=" + dir_ + "/data", "--node_id=n-7",
                     "--synchronous=normal", "--reader_connections=2"});
  ASSERT_NE(node, nullptr);
  std::optional<std::string> line = node->ReadLine(absl::Seconds(10));
  ASSERT_TRUE(line.has_value()) << node->Stderr();
  ASSERT_TRUE(absl::StartsWith(*line, "listening on 127.0.0.1:")) << *line;
  const std::string address = line->substr(std::string("listening on ").size());
  EXPECT_NE(address, "127.0.0.1:0");

  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = storage::v1::Storage::NewStub(channel);
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    storage::v1::GetNodeInfoResponse info;
    grpc::Status status = stub->GetNodeInfo(&context, {}, &info);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(info.node_id(), "n-7");
    EXPECT_FALSE(info.sqlite_version().empty());
    EXPECT_TRUE(absl::EndsWith(info.database_path(), "/data/storage.db")) << info.database_path();
  }
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    storage::v1::ExecuteBatchRequest request;
    request.add_statements()->set_sql("CREATE TABLE t (x)");
    request.add_statements()->set_sql("INSERT INTO t VALUES (1), (2)");
    storage::v1::ExecuteBatchResponse response;
    grpc::Status status = stub->ExecuteBatch(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.results(1).rows_affected(), 2);
  }
  std::string health;
  grpc::Status health_status = HealthCheck(channel, &health);
  ASSERT_TRUE(health_status.ok()) << health_status.error_message();
  EXPECT_EQ(health, std::string("\x08\x01", 2)) << "not SERVING";

  node->Signal(SIGTERM);
  std::optional<int> code = node->Wait(absl::Seconds(5));
  ASSERT_TRUE(code.has_value()) << "still running 5 s after SIGTERM";
  EXPECT_EQ(*code, 0) << node->Stderr();
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/data/storage.db"));
}

TEST_F(StorageNodeMainTest, MissingOrBadFlagsExitWithTwo) {
  const std::string data = "--data_dir=" + dir_ + "/data";
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--listen=127.0.0.1:0", data}, "--node_id"},
      {{"--node_id=n1", data}, "--listen"},
      {{"--listen=127.0.0.1:0", "--node_id=n1"}, "--data_dir"},
      {{"--listen=127.0.0.1:0", data, "--node_id=bad/id"}, "node id"},
      {{"--listen=nonsense", data, "--node_id=n1"}, "HOST:PORT"},
      {{"--listen=127.0.0.1:0", data, "--node_id=n1", "--synchronous=off"}, "--synchronous"},
      {{"--listen=127.0.0.1:0", data, "--node_id=n1", "--reader_connections=0"},
       "--reader_connections"},
      {{"--listen=127.0.0.1:0", data, "--node_id=n1", "--reader_connections=many"},
       "reader_connections"},
      {{"--listen=127.0.0.1:0", data, "--node_id=n1", "--no_such_flag=1"}, "no_such_flag"},
  };
  for (const Case& c : cases) {
    std::string stderr_text;
    EXPECT_EQ(RunToExit(c.flags, &stderr_text), 2) << c.flags.back() << ": " << stderr_text;
    EXPECT_TRUE(absl::StrContains(stderr_text, c.message))
        << "expected \"" << c.message << "\" in: " << stderr_text;
  }
}

TEST_F(StorageNodeMainTest, UnusableDataDirExitsWithOne) {
  const std::string file = dir_ + "/plain_file";
  std::ofstream(file) << "I am not a directory";
  std::string stderr_text;
  EXPECT_EQ(RunToExit({"--listen=127.0.0.1:0", "--data_dir=" + file, "--node_id=n1"}, &stderr_text),
            1);
  EXPECT_TRUE(absl::StrContains(stderr_text, "not a directory")) << stderr_text;
  EXPECT_TRUE(absl::StrContains(stderr_text, file)) << stderr_text;

  const std::string corrupt = dir_ + "/corrupt";
  std::filesystem::create_directories(corrupt);
  std::ofstream(corrupt + "/storage.db") << std::string(8192, 'z');
  EXPECT_EQ(
      RunToExit({"--listen=127.0.0.1:0", "--data_dir=" + corrupt, "--node_id=n1"}, &stderr_text),
      1);
  EXPECT_TRUE(absl::StrContains(stderr_text, "storage.db")) << stderr_text;
}

}  // namespace
