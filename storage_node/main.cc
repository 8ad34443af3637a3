// storage_node: serves one SQLite database file over storage.v1.Storage.
//
// Exit codes: 0 after SIGTERM/SIGINT, 2 for bad or missing flags, 1 when the
// data dir or the listen address cannot be used.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/config.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/security_flags.h"
#include "common/server.h"
#include "storage_node/node_database.h"
#include "storage_node/storage_service.h"

ABSL_FLAG(std::string, listen, "", "HOST:PORT to serve on (required); port 0 picks a free port");
ABSL_FLAG(std::string, data_dir, "",
          "directory of the database file storage.db (required; created when missing)");
ABSL_FLAG(std::string, node_id, "", "this node's id (required): letters, digits, '-', '_' and '.'");
ABSL_FLAG(std::string, synchronous, "full", "SQLite synchronous mode: full or normal");
ABSL_FLAG(int, reader_connections, 8, "connections serving read_only batches concurrently");

namespace {

constexpr int kExitFlags = 2;
constexpr int kExitUnusable = 1;
constexpr int kMaxReaderConnections = 256;

// Reads the flags (beyond what Abseil checks) into the node's settings.
absl::Status ReadFlags(std::string* node_id, std::string* listen,
                       conductor::storage_node::NodeDatabaseOptions* options) {
  *listen = absl::GetFlag(FLAGS_listen);
  if (listen->empty()) return absl::InvalidArgumentError("--listen=HOST:PORT is required");
  if (auto s = conductor::ValidateListenAddress(*listen); !s.ok()) return s;
  *node_id = absl::GetFlag(FLAGS_node_id);
  if (node_id->empty()) return absl::InvalidArgumentError("--node_id is required");
  if (auto s = conductor::storage_node::ValidateNodeId(*node_id); !s.ok()) return s;
  options->data_dir = absl::GetFlag(FLAGS_data_dir);
  if (options->data_dir.empty()) return absl::InvalidArgumentError("--data_dir is required");
  const std::string synchronous = absl::GetFlag(FLAGS_synchronous);
  if (synchronous != "full" && synchronous != "normal") {
    return absl::InvalidArgumentError(
        absl::StrCat("--synchronous must be full or normal, not \"", synchronous, "\""));
  }
  options->synchronous_full = synchronous == "full";
  options->reader_connections = absl::GetFlag(FLAGS_reader_connections);
  if (options->reader_connections < 1 || options->reader_connections > kMaxReaderConnections) {
    return absl::InvalidArgumentError(
        absl::StrCat("--reader_connections must be 1..", kMaxReaderConnections));
  }
  return absl::OkStatus();
}

int Fail(int exit_code, const absl::Status& status) {
  fprintf(stderr, "storage_node: %s\n", std::string(status.message()).c_str());
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  conductor::BlockTerminationSignals();
  absl::SetProgramUsageMessage(
      "Serves one SQLite database over storage.v1.Storage.\n"
      "  storage_node --listen=HOST:PORT --data_dir=DIR --node_id=ID");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() > 1) {
    return Fail(kExitFlags,
                absl::InvalidArgumentError(absl::StrCat("unexpected argument \"", args[1], "\"")));
  }
  std::string node_id, listen;
  conductor::storage_node::NodeDatabaseOptions options;
  if (auto s = ReadFlags(&node_id, &listen, &options); !s.ok()) return Fail(kExitFlags, s);
  auto security = conductor::SecurityFromFlags();
  if (!security.ok()) return Fail(kExitFlags, security.status());
  conductor::SetLogTag(absl::StrCat("storage_node[", node_id, "]"));

  auto database = conductor::storage_node::NodeDatabase::Open(options);
  if (!database.ok()) return Fail(kExitUnusable, database.status());
  if (auto s = (*database)->ClaimNodeId(node_id); !s.ok()) return Fail(kExitUnusable, s);
  conductor::storage_node::StorageService service(node_id, std::move(*database));
  conductor::ServerConfig config;
  config.listen = listen;
  config.services = {&service};
  config.security = *security;
  config.health_listen = conductor::HealthListenFlag();
  if (auto s = conductor::ServeUntilSignal(config); !s.ok()) return Fail(kExitUnusable, s);
  return 0;
}
