#include "tests/harness/cluster.h"

#include <signal.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/grpcpp.h"

namespace conductor::testing {

absl::StatusOr<std::unique_ptr<TestCluster>> TestCluster::Start(const Options& options) {
  std::unique_ptr<TestCluster> cluster(new TestCluster);
  cluster->options_ = options;
  if (options.root_dir.empty()) {
    cluster->root_ = MakeTempDir("cluster");
  } else {
    cluster->root_ = options.root_dir;
    std::error_code error;
    std::filesystem::create_directories(cluster->root_, error);
    if (error) {
      return absl::InternalError("cannot create " + cluster->root_ + ": " + error.message());
    }
  }
  cluster->nodes_.resize(options.storage_nodes);
  for (int i = 0; i < options.storage_nodes; ++i) {
    cluster->nodes_[i].data_dir = absl::StrCat(cluster->root_, "/", cluster->node_id(i));
    if (auto s = cluster->StartNode(i, "127.0.0.1:0"); !s.ok()) return s;
  }
  cluster->conductor_dir_ = cluster->root_ + "/conductor";
  if (auto s = cluster->StartConductor("127.0.0.1:0"); !s.ok()) return s;
  for (int i = 0; i < options.workers; ++i) {
    if (auto s = cluster->StartWorker(i); !s.ok()) return s;
  }
  return cluster;
}

TestCluster::~TestCluster() {
  // Workers first: they would only log a conductor that went away.
  for (auto& worker : workers_) {
    if (worker.process != nullptr && worker.process->running()) {
      worker.process->Stop().IgnoreError();
    }
  }
  if (conductor_ != nullptr && conductor_->running()) conductor_->Stop().IgnoreError();
  for (auto& node : nodes_) {
    if (node.process != nullptr && node.process->running()) node.process->Stop().IgnoreError();
  }
}

absl::Status TestCluster::StartNode(int i, const std::string& listen) {
  Node& node = nodes_[i];
  std::vector<std::string> argv = {BinaryPath("storage_node/storage_node"), "--listen=" + listen,
                                   "--data_dir=" + node.data_dir, "--node_id=" + node_id(i)};
  for (const auto& flag : options_.extra_storage_node_flags) argv.push_back(flag);
  auto process = Process::Start(argv, absl::StrCat(root_, "/", node_id(i), ".log"),
                                {.die_with_parent = options_.die_with_parent});
  if (!process.ok()) return process.status();
  auto address = (*process)->WaitForListening(absl::Seconds(30));
  if (!address.ok()) return address.status();
  node.address = *address;
  node.process = std::move(*process);
  return absl::OkStatus();
}

absl::Status TestCluster::StartConductor(const std::string& listen) {
  std::vector<std::string> addresses;
  for (const Node& node : nodes_) addresses.push_back(node.address);
  std::vector<std::string> argv = {
      BinaryPath("conductor/conductor"), "--listen=" + listen, "--data_dir=" + conductor_dir_,
      "--storage_nodes=" + absl::StrJoin(addresses, ","), "--storage_timeout_ms=5000"};
  for (const auto& flag : options_.extra_conductor_flags) argv.push_back(flag);
  auto process =
      Process::Start(argv, root_ + "/conductor.log", {.die_with_parent = options_.die_with_parent});
  if (!process.ok()) return process.status();
  auto address = (*process)->WaitForListening(absl::Seconds(60));
  if (!address.ok()) return address.status();
  conductor_address_ = *address;
  conductor_ = std::move(*process);
  ops_ = conductor::v1::TableOps::NewStub(
      MakeChannel(conductor_address_, grpc::ChannelArguments(), options_.client_security));
  return absl::OkStatus();
}

absl::Status TestCluster::StartWorker(int i) {
  if (i < 0 || i > worker_count()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no worker ", i, "; there are ", worker_count()));
  }
  if (i < worker_count() && workers_[i].process != nullptr && workers_[i].process->running() &&
      !workers_[i].process->Wait(absl::ZeroDuration()).ok()) {  // reaps one that died by itself
    return absl::FailedPreconditionError(absl::StrCat(worker_id(i), " is running"));
  }
  std::vector<std::string> argv = {BinaryPath("queue_worker/queue_worker"),
                                   "--conductor=" + conductor_address_,
                                   "--worker_id=" + worker_id(i)};
  for (const auto& flag : options_.extra_worker_flags) argv.push_back(flag);
  auto process = Process::Start(argv, absl::StrCat(root_, "/", worker_id(i), ".log"),
                                {.die_with_parent = options_.die_with_parent});
  if (!process.ok()) return process.status();
  // The worker prints "listening on" (its health server) once its lease
  // loops run; it does not wait for the conductor to answer.
  auto address = (*process)->WaitForListening(absl::Seconds(30));
  if (!address.ok()) return address.status();
  if (i == worker_count()) workers_.emplace_back();
  workers_[i].address = *address;
  workers_[i].process = std::move(*process);
  return absl::OkStatus();
}

absl::Status TestCluster::KillWorker(int i, int signal) {
  if (i < 0 || i >= worker_count()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no worker ", i, "; there are ", worker_count()));
  }
  Worker& worker = workers_[i];
  if (worker.process == nullptr || !worker.process->running()) {
    return absl::FailedPreconditionError("worker not running");
  }
  worker.process->Signal(signal);
  auto code = worker.process->Wait(absl::Seconds(15));
  return code.ok() ? absl::OkStatus() : code.status();
}

absl::Status TestCluster::KillNode(int i, int signal) {
  Node& node = nodes_[i];
  if (node.process == nullptr || !node.process->running()) {
    return absl::FailedPreconditionError("node not running");
  }
  node.process->Signal(signal);
  auto code = node.process->Wait(absl::Seconds(15));
  return code.ok() ? absl::OkStatus() : code.status();
}

absl::Status TestCluster::RestartNode(int i) { return StartNode(i, nodes_[i].address); }

absl::Status TestCluster::KillConductor(int signal) {
  if (conductor_ == nullptr || !conductor_->running()) {
    return absl::FailedPreconditionError("conductor not running");
  }
  conductor_->Signal(signal);
  auto code = conductor_->Wait(absl::Seconds(15));
  return code.ok() ? absl::OkStatus() : code.status();
}

absl::Status TestCluster::RestartConductor() { return StartConductor(conductor_address_); }

absl::Status TestCluster::AddNodeAndRestartConductor() {
  int i = node_count();
  nodes_.emplace_back();
  nodes_[i].data_dir = absl::StrCat(root_, "/", node_id(i));
  if (auto s = StartNode(i, "127.0.0.1:0"); !s.ok()) return s;
  if (auto s = KillConductor(SIGTERM); !s.ok()) return s;
  return RestartConductor();
}

}  // namespace conductor::testing
