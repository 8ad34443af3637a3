// queue_worker: runs background jobs leased from the conductor's job queue
// (docs/job-queue.md). Stateless; any number may run. On SIGTERM it stops
// leasing and hands its running jobs back before exiting.
//
//   queue_worker --conductor=HOST:PORT [--listen=HOST:PORT] [--concurrency=N]
//
// No job kinds are registered yet (IndexBuildJob and ReshardTableJob plug in
// here with JobRunner::Register); until then it long-polls for nothing.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/security_flags.h"
#include "common/server.h"
#include "common/tls.h"
#include "queue_worker/index_jobs.h"
#include "queue_worker/job_runner.h"
#include "queue_worker/reshard_jobs.h"

ABSL_FLAG(std::string, conductor, "", "HOST:PORT of the conductor (required)");
ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "HOST:PORT for this worker's health and reflection service; port 0 picks one");
ABSL_FLAG(int, concurrency, 2, "jobs run at once");
ABSL_FLAG(int64_t, scan_rows_per_s, 0,
          "throttle for shard scans (index builds, recounts): tuples per second per job; 0 = "
          "no limit");
ABSL_FLAG(std::string, worker_id, "", "names this worker in leases and logs; default HOST-PID");
ABSL_FLAG(std::string, conductor_tls_ca, "",
          "PEM CA file: reach the conductor over TLS, verifying it against this CA, when the "
          "conductor serves TLS but the cluster does not use mutual TLS (--tls_ca); calls to "
          "storage nodes stay as the other flags say");

namespace {

std::string DefaultWorkerId() {
  char host[256] = "worker";
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, "-", getpid());
}

int Fail(const std::string& message, int code) {
  fprintf(stderr, "queue_worker: %s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  conductor::BlockTerminationSignals();
  absl::SetProgramUsageMessage(
      "queue_worker --conductor=HOST:PORT [--listen=HOST:PORT] [--concurrency=N]");
  absl::ParseCommandLine(argc, argv);
  conductor::SetLogTag("queue_worker");
  conductor::JobRunnerOptions options;
  options.conductor = absl::GetFlag(FLAGS_conductor);
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  options.worker_id = absl::GetFlag(FLAGS_worker_id);
  if (options.worker_id.empty()) options.worker_id = DefaultWorkerId();
  if (options.conductor.empty()) return Fail("--conductor=HOST:PORT is required", 2);
  if (auto s = conductor::ValidateListenAddress(options.conductor); !s.ok()) {
    return Fail(absl::StrCat("--conductor: ", s.message()), 2);
  }
  if (auto s = conductor::ValidateListenAddress(absl::GetFlag(FLAGS_listen)); !s.ok()) {
    return Fail(absl::StrCat("--listen: ", s.message()), 2);
  }
  if (options.concurrency < 1) return Fail("--concurrency must be at least 1", 2);
  // Before the runner and the job handlers make their channels.
  auto security = conductor::SecurityFromFlags();
  if (!security.ok()) return Fail(std::string(security.status().message()), 2);
  if (const std::string ca_file = absl::GetFlag(FLAGS_conductor_tls_ca); !ca_file.empty()) {
    auto ca = conductor::ReadSecretFile(ca_file, "conductor_tls_ca");
    if (!ca.ok()) return Fail(std::string(ca.status().message()), 2);
    conductor::ClientSecurity to_conductor = conductor::InternalClientSecurity(*security);
    to_conductor.tls.ca_pem = *std::move(ca);
    conductor::SetClientSecurityFor(options.conductor, std::move(to_conductor));
  }
  conductor::IndexJobOptions index_options;
  index_options.conductor = options.conductor;
  index_options.scan_rows_per_s = absl::GetFlag(FLAGS_scan_rows_per_s);
  if (index_options.scan_rows_per_s < 0) return Fail("--scan_rows_per_s must not be negative", 2);

  conductor::JobRunner runner(options);
  conductor::IndexJobs index_jobs(index_options);
  if (auto s = index_jobs.RegisterWith(runner); !s.ok()) return Fail(std::string(s.message()), 2);
  conductor::ReshardJobOptions reshard_options;
  reshard_options.conductor = options.conductor;
  reshard_options.scan_rows_per_s = index_options.scan_rows_per_s;
  conductor::ReshardJobs reshard_jobs(reshard_options);
  if (auto s = reshard_jobs.RegisterWith(runner); !s.ok()) return Fail(std::string(s.message()), 2);
  if (auto s = runner.Start(); !s.ok()) return Fail(std::string(s.message()), 2);
  conductor::ServerConfig server;
  server.listen = absl::GetFlag(FLAGS_listen);
  server.on_shutdown = [&runner] { runner.Stop(); };
  server.security = *security;
  server.health_listen = conductor::HealthListenFlag();
  if (auto s = conductor::ServeUntilSignal(server); !s.ok()) {
    return Fail(std::string(s.message()), 1);
  }
  return 0;
}
