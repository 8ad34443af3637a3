// queue_worker: runs background jobs (IndexBuildJob, ReshardTableJob) leased
// from the conductor. Stateless; any number may run.
//
//   queue_worker --conductor=HOST:PORT [--listen=HOST:PORT]
//
// This version connects to the conductor and serves health and reflection;
// job leasing arrives with the job queue (docs/roadmap.md).
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/server.h"

ABSL_FLAG(std::string, conductor, "", "HOST:PORT of the conductor (required)");
ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "HOST:PORT for this worker's health and reflection service; port 0 picks one");
ABSL_FLAG(int, concurrency, 2, "jobs run at once");

int main(int argc, char** argv) {
  conductor::BlockTerminationSignals();
  absl::SetProgramUsageMessage("queue_worker --conductor=HOST:PORT [--listen=HOST:PORT]");
  absl::ParseCommandLine(argc, argv);
  conductor::SetLogTag("queue_worker");
  const std::string conductor_address = absl::GetFlag(FLAGS_conductor);
  if (conductor_address.empty()) {
    fprintf(stderr, "queue_worker: --conductor=HOST:PORT is required\n");
    return 2;
  }
  if (auto s = conductor::ValidateListenAddress(conductor_address); !s.ok()) {
    fprintf(stderr, "queue_worker: --conductor: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (auto s = conductor::ValidateListenAddress(absl::GetFlag(FLAGS_listen)); !s.ok()) {
    fprintf(stderr, "queue_worker: --listen: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_concurrency) < 1) {
    fprintf(stderr, "queue_worker: --concurrency must be at least 1\n");
    return 2;
  }
  conductor::LogInfo("working for conductor %s", conductor_address);
  conductor::ServerConfig server;
  server.listen = absl::GetFlag(FLAGS_listen);
  if (auto s = conductor::ServeUntilSignal(server); !s.ok()) {
    fprintf(stderr, "queue_worker: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
