// conductor: the cluster's front door and the holder of its topology.
//
//   conductor --listen=127.0.0.1:50051 --data_dir=DIR --storage_nodes=H:P,H:P,…
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/logging.h"
#include "common/security_flags.h"
#include "common/server.h"
#include "conductor/schema/table_operations.h"
#include "conductor/server/bootstrap.h"
#include "conductor/server/table_ops_auth.h"
#include "conductor/server/table_ops_service.h"
#include "conductor/sql/sql_front_door.h"

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
ABSL_FLAG(std::string, auth_token_file, "",
          "file holding the bearer token every conductor.v1.TableOps call must carry "
          "(authorization: Bearer <token>); alternative: env CONDUCTOR_AUTH_TOKEN. Needs "
          "--tls_ca or --internal_token_file (docs/security.md)");
// Limits of the public API (docs/data-path.md#limits).
ABSL_FLAG(int, max_request_bytes, 64 << 20,
          "largest request message accepted, in bytes; gRPC answers RESOURCE_EXHAUSTED beyond");
ABSL_FLAG(int64_t, max_sql_bytes, 4 << 20,
          "longest SQL statement accepted by Execute, in bytes (INVALID_ARGUMENT beyond)");
ABSL_FLAG(int, max_params, 32765,
          "most parameters one statement may carry, 0..32765 (INVALID_ARGUMENT beyond)");
ABSL_FLAG(int64_t, max_response_rows, 100000,
          "most rows one SELECT may answer (RESOURCE_EXHAUSTED beyond: add LIMIT or page)");
ABSL_FLAG(int, default_deadline_ms, 60000, "deadline of a call whose client sent none; 0 = none");
ABSL_FLAG(int, max_deadline_ms, 3600000,
          "longer client deadlines are shortened to this; 0 = no cap");
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
  // Before anything makes a channel: SecurityFromFlags sets the client
  // security of the conductor's calls to the storage nodes.
  auto security = conductor::SecurityFromFlags();
  if (security.ok()) {
    auto token = conductor::LoadToken(absl::GetFlag(FLAGS_auth_token_file), "auth_token_file",
                                      conductor::kAuthTokenEnv);
    if (!token.ok()) {
      security = token.status();
    } else {
      security->public_token = *token;
      if (!security->public_token.empty() && !security->internal_auth()) {
        security = absl::InvalidArgumentError(
            "a public token (--auth_token_file or CONDUCTOR_AUTH_TOKEN) needs --tls_ca (mutual "
            "TLS) or --internal_token_file: otherwise the internal services on this port would "
            "be open to anyone (docs/security.md)");
      }
    }
  }
  if (!security.ok()) {
    fprintf(stderr, "conductor: %s\n", std::string(security.status().message()).c_str());
    return 2;
  }

  conductor::BootstrapOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.storage_nodes = absl::GetFlag(FLAGS_storage_nodes);
  options.storage_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_storage_timeout_ms));
  options.storage_wait = absl::Seconds(absl::GetFlag(FLAGS_storage_wait_s));
  options.job_lease = absl::Seconds(absl::GetFlag(FLAGS_job_lease_s));
  options.job_max_attempts = absl::GetFlag(FLAGS_job_max_attempts);
  {
    conductor::RequestLimits& limits = options.limits;
    const int64_t sql_bytes = absl::GetFlag(FLAGS_max_sql_bytes);
    limits.max_sql_bytes = sql_bytes > 0 ? static_cast<size_t>(sql_bytes) : 0;
    limits.max_params = absl::GetFlag(FLAGS_max_params);
    limits.max_response_rows = absl::GetFlag(FLAGS_max_response_rows);
    const int default_ms = absl::GetFlag(FLAGS_default_deadline_ms);
    const int max_ms = absl::GetFlag(FLAGS_max_deadline_ms);
    if (default_ms < 0 || max_ms < 0 || absl::GetFlag(FLAGS_max_request_bytes) < 1024) {
      fprintf(stderr,
              "conductor: --default_deadline_ms and --max_deadline_ms must not be negative; "
              "--max_request_bytes must be at least 1024\n");
      return 2;
    }
    limits.default_deadline =
        default_ms == 0 ? absl::InfiniteDuration() : absl::Milliseconds(default_ms);
    limits.max_deadline = max_ms == 0 ? absl::InfiniteDuration() : absl::Milliseconds(max_ms);
  }
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
  // With a public token, TableOps is served behind AuthenticatedTableOps,
  // whose refusals carry an ErrorInfo (docs/security.md).
  std::unique_ptr<conductor::AuthenticatedTableOps> authenticated_ops;
  if (!security->public_token.empty()) {
    for (grpc::Service*& service : server.services) {
      auto* ops = dynamic_cast<conductor::v1::TableOps::Service*>(service);
      if (ops == nullptr) continue;
      authenticated_ops = std::make_unique<conductor::AuthenticatedTableOps>(ops, *security);
      service = authenticated_ops.get();
    }
    security->public_checked_in_service = authenticated_ops != nullptr;
  }
  server.security = *security;
  server.health_listen = conductor::HealthListenFlag();
  server.max_receive_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  server.on_shutdown = [&conductor] { (*conductor)->Shutdown(); };
  if (auto s = conductor::ServeUntilSignal(server); !s.ok()) {
    fprintf(stderr, "conductor: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
