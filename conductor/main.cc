// conductor: the cluster's front door and the holder of its topology.
//
//   conductor --listen=127.0.0.1:50051 --data_dir=DIR --storage_nodes=H:P,H:P,…
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/logging.h"
#include "common/server.h"
#include "conductor/bootstrap.h"
#include "conductor/sql_front_door.h"
#include "conductor/table_operations.h"
#include "conductor/table_ops_service.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "HOST:PORT to serve on; port 0 picks one");
ABSL_FLAG(std::string, data_dir, "", "directory for the topology store (created if missing)");
ABSL_FLAG(std::vector<std::string>, storage_nodes, {},
          "comma-separated HOST:PORT of every storage node");
ABSL_FLAG(int, storage_timeout_ms, 10000, "upper bound on one round of storage-node calls");
ABSL_FLAG(int, storage_wait_s, 60,
          "at first start, how long to wait for a storage node that has never answered");
ABSL_FLAG(int, job_lease_s, 30,
          "how long a worker's job lease (and each heartbeat's extension) lasts, 1..3600");
ABSL_FLAG(int, job_max_attempts, 5, "attempts per job before it (and its operation) fails");
ABSL_FLAG(int, reshard_max_pause_ms, 2000,
          "the longest a reshard's switch may hold the table's writes; past it the switch "
          "rolls back to copying and is retried, 10..600000");
ABSL_FLAG(bool, reshard_verify_checksums, false,
          "a reshard's switch also compares checksums of every row of the source and target "
          "shards (reads the whole table while writes are held: a longer pause)");
ABSL_FLAG(int, testing_reshard_switch_hold_before_ms, 0,
          "TESTING ONLY: a reshard's switch waits this long with writes held, just before its "
          "topology transaction (fault-injection point)");
ABSL_FLAG(int, testing_reshard_switch_hold_after_ms, 0,
          "TESTING ONLY: a reshard's switch waits this long with writes held, just after its "
          "topology transaction (fault-injection point)");

int main(int argc, char** argv) {
  conductor::BlockTerminationSignals();
  absl::SetProgramUsageMessage(
      "conductor --listen=HOST:PORT --data_dir=DIR --storage_nodes=HOST:PORT,...");
  absl::ParseCommandLine(argc, argv);
  conductor::SetLogTag("conductor");

  conductor::BootstrapOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.storage_nodes = absl::GetFlag(FLAGS_storage_nodes);
  options.storage_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_storage_timeout_ms));
  options.storage_wait = absl::Seconds(absl::GetFlag(FLAGS_storage_wait_s));
  options.job_lease = absl::Seconds(absl::GetFlag(FLAGS_job_lease_s));
  options.job_max_attempts = absl::GetFlag(FLAGS_job_max_attempts);
  options.reshard_max_pause = absl::Milliseconds(absl::GetFlag(FLAGS_reshard_max_pause_ms));
  options.reshard_verify_checksums = absl::GetFlag(FLAGS_reshard_verify_checksums);
  options.testing_switch_hold_before =
      absl::Milliseconds(absl::GetFlag(FLAGS_testing_reshard_switch_hold_before_ms));
  options.testing_switch_hold_after =
      absl::Milliseconds(absl::GetFlag(FLAGS_testing_reshard_switch_hold_after_ms));
  if (auto s = conductor::ValidateBootstrapOptions(options); !s.ok()) {
    fprintf(stderr, "conductor: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  auto conductor = conductor::Conductor::Start(options);
  if (!conductor.ok()) {
    fprintf(stderr, "conductor: %s\n", std::string(conductor.status().message()).c_str());
    return 1;
  }
  conductor::ServerConfig server;
  server.listen = options.listen;
  server.services = (*conductor)->services();
  server.on_shutdown = [&conductor] { (*conductor)->Shutdown(); };
  if (auto s = conductor::ServeUntilSignal(server); !s.ok()) {
    fprintf(stderr, "conductor: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
