// TestCluster: a real Conductor cluster of separate processes on loopback
// (storage nodes first, then the conductor, then any queue workers), with the
// controls fault tests need: kill, restart on the same address and data, and
// direct access to the nodes' SQLite files.
//
// A test that starts workers (Options::workers > 0, or StartWorker) needs
// "//queue_worker" in its `data`.
#ifndef CONDUCTOR_TESTS_HARNESS_CLUSTER_H_
#define CONDUCTOR_TESTS_HARNESS_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tls.h"
#include "conductor/v1/table_ops.grpc.pb.h"
#include "tests/harness/process.h"

namespace conductor::testing {

class TestCluster {
 public:
  struct Options {
    int storage_nodes = 3;
    std::vector<std::string> extra_conductor_flags;
    std::vector<std::string> extra_storage_node_flags;
    // Queue workers started after the conductor, with
    // --conductor=<its address> --worker_id=worker-<i+1> and these flags.
    int workers = 0;
    std::vector<std::string> extra_worker_flags;
    // Where the cluster's directories go (created if missing); empty: a
    // fresh directory under TEST_TMPDIR. Never removed by the cluster.
    std::string root_dir;
    // Every server is SIGKILLed when the thread that started it exits
    // (see ProcessOptions).
    bool die_with_parent = false;
    // How ops() reaches the conductor: TLS, client certificate and metadata
    // (a bearer token) when the cluster runs with TLS or auth flags (passed
    // in the extra_*_flags above). Default: plaintext.
    conductor::ClientSecurity client_security;
  };
  static absl::StatusOr<std::unique_ptr<TestCluster>> Start(const Options& options);
  ~TestCluster();

  conductor::v1::TableOps::Stub& ops() { return *ops_; }
  const std::string& conductor_address() const { return conductor_address_; }

  int node_count() const { return static_cast<int>(nodes_.size()); }
  std::string node_id(int i) const { return "node-" + std::to_string(i + 1); }
  const std::string& node_address(int i) const { return nodes_[i].address; }
  // The node's SQLite file, for checks that read it directly.
  std::string node_database(int i) const { return nodes_[i].data_dir + "/storage.db"; }
  Process* node_process(int i) { return nodes_[i].process.get(); }

  absl::Status KillNode(int i, int signal);
  // Starts the node again on the same address and data directory.
  absl::Status RestartNode(int i);
  // Starts one more storage node and restarts the conductor (SIGTERM) with
  // it added to --storage_nodes, as an operator adding capacity would.
  absl::Status AddNodeAndRestartConductor();
  absl::Status KillConductor(int signal);
  absl::Status RestartConductor();
  Process* conductor_process() { return conductor_.get(); }
  const std::string& conductor_data_dir() const { return conductor_dir_; }
  // The directory holding every data directory and log.
  const std::string& root() const { return root_; }

  // Queue workers, "worker-<i+1>", logging to root()/worker-<i+1>.log. They
  // hold no state and reconnect to a restarted conductor by themselves:
  // RestartConductor leaves them running.
  int worker_count() const { return static_cast<int>(workers_.size()); }
  std::string worker_id(int i) const { return "worker-" + std::to_string(i + 1); }
  // The address of the worker's own health/reflection server.
  const std::string& worker_address(int i) const { return workers_[i].address; }
  Process* worker_process(int i) { return workers_[i].process.get(); }
  absl::Status KillWorker(int i, int signal);
  // Starts worker i again (same id and flags) once it has exited, or a new
  // one when i == worker_count(), with Options::extra_worker_flags.
  absl::Status StartWorker(int i);

 private:
  struct Node {
    std::string data_dir;
    std::string address;
    std::unique_ptr<Process> process;
  };
  struct Worker {
    std::string address;
    std::unique_ptr<Process> process;
  };
  TestCluster() = default;
  absl::Status StartNode(int i, const std::string& listen);
  absl::Status StartConductor(const std::string& listen);

  Options options_;
  std::string root_;
  std::vector<Node> nodes_;
  std::string conductor_dir_;
  std::string conductor_address_;
  std::unique_ptr<Process> conductor_;
  std::vector<Worker> workers_;
  std::unique_ptr<conductor::v1::TableOps::Stub> ops_;
};

}  // namespace conductor::testing

#endif  // CONDUCTOR_TESTS_HARNESS_CLUSTER_H_
