#include "conductor/server/bootstrap.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/server.h"

namespace conductor {
namespace {

absl::Status EnsureDirectory(const std::string& dir) {
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("--data_dir=", dir, " exists but is not a directory"));
    }
  } else {
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create --data_dir=", dir, ": ", error.message()));
    }
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("--data_dir=", dir, " is not writable: ", strerror(errno)));
  }
  return absl::OkStatus();
}

// The restored node `node` holds every active table of the restored
// topology; FAILED_PRECONDITION naming the first missing one otherwise.
absl::Status CheckRestoredNode(StorageClient& storage, const Snapshot& snapshot,
                               const NodeMeta& node, absl::Time deadline) {
  storage::v1::ExecuteBatchRequest request;
  request.set_read_only(true);
  request.add_statements()->set_sql("SELECT name FROM sqlite_schema WHERE type = 'table'");
  auto answer = storage.ExecuteBatchBlocking(node, request, deadline);
  if (!answer.ok()) {
    return Annotate(answer.status(),
                    absl::StrCat("listing the tables of restored storage node ", node.node_id));
  }
  std::set<std::string> held;
  for (const auto& row : answer->results(0).rows()) held.insert(row.values(0).text());
  for (const auto& [key, table] : snapshot.tables) {
    if (table.state != TableState::kActive || held.count(table.name) > 0) continue;
    return absl::FailedPreconditionError(
        absl::StrCat("restored storage node ", node.node_id, " at ", node.address,
                     " does not hold table ", table.name,
                     " of the restored topology: its data file was not restored (conductorctl "
                     "restore --from=BACKUP --data_dir=DIR node ",
                     node.node_id, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateBootstrapOptions(const BootstrapOptions& options) {
  if (auto s = ValidateListenAddress(options.listen); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--listen: ", s.message()));
  }
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data_dir is required");
  if (options.storage_nodes.empty()) {
    return absl::InvalidArgumentError(
        "--storage_nodes is required (comma-separated HOST:PORT of the storage nodes)");
  }
  std::set<std::string> seen;
  for (const std::string& address : options.storage_nodes) {
    if (auto s = ValidateListenAddress(address); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--storage_nodes: ", s.message()));
    }
    if (!seen.insert(address).second) {
      return absl::InvalidArgumentError(absl::StrCat("--storage_nodes lists ", address, " twice"));
    }
  }
  if (options.storage_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--storage_timeout_ms must be positive");
  }
  if (options.job_lease < absl::Seconds(1) || options.job_lease > absl::Hours(1)) {
    return absl::InvalidArgumentError("--job_lease_s must be within 1..3600");
  }
  if (options.reshard_max_pause < absl::Milliseconds(10) ||
      options.reshard_max_pause > absl::Minutes(10)) {
    return absl::InvalidArgumentError("--reshard_max_pause_ms must be within 10..600000");
  }
  if (options.job_max_attempts < 1) {
    return absl::InvalidArgumentError("--job_max_attempts must be at least 1");
  }
  if (options.limits.max_sql_bytes < 1) {
    return absl::InvalidArgumentError("--max_sql_bytes must be positive");
  }
  if (options.limits.max_params < 0 ||
      options.limits.max_params > RequestLimits::kMaxParamsCeiling) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_params must be within 0..", RequestLimits::kMaxParamsCeiling));
  }
  if (options.limits.max_response_rows < 1) {
    return absl::InvalidArgumentError("--max_response_rows must be positive");
  }
  if (options.limits.default_deadline <= absl::ZeroDuration() ||
      options.limits.max_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--default_deadline_ms and --max_deadline_ms must be positive (0 on the command line "
        "means none)");
  }
  return absl::OkStatus();
}

Conductor::Conductor(std::unique_ptr<TopologyStore> store, std::unique_ptr<IndexEntryStore> entries,
                     TableOperationsOptions options, JobQueueOptions job_options,
                     ReshardOptions reshard_options)
    : store_(std::move(store)),
      job_queue_(store_.get(), std::move(job_options)),
      indexes_(store_.get(), &storage_, &job_queue_, std::move(entries),
               IndexManagerOptions{options.storage_timeout}),
      tables_(store_.get(), &storage_, options, &indexes_, &job_queue_),
      reshards_(store_.get(), &storage_, &job_queue_, &indexes_, &write_gate_, &tables_,
                std::move(reshard_options)),
      executor_(&storage_, options.storage_timeout),
      sql_(&tables_, store_.get(), &executor_, &indexes_, &write_gate_, &reshards_),
      table_ops_service_(&tables_, &sql_, &reshards_),
      job_queue_service_(&job_queue_),
      index_build_service_(store_.get(), &indexes_),
      reshard_service_(&reshards_) {
  tables_.SetResharder(&reshards_);
}

void Conductor::Shutdown() { job_queue_.Shutdown(); }

absl::StatusOr<std::unique_ptr<Conductor>> Conductor::Start(const BootstrapOptions& options) {
  if (auto s = EnsureDirectory(options.data_dir); !s.ok()) return s;
  // One conductor per data directory: two would each keep their own
  // topology snapshot over one file. The lock lives as long as the process.
  const std::string lock_path = options.data_dir + "/LOCK";
  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("--data_dir=", options.data_dir,
                     " is in use by another conductor (cannot lock ", lock_path, ")"));
  }
  auto store = TopologyStore::Open(options.data_dir + "/topology.db");
  if (!store.ok()) return store.status();
  auto entries = IndexEntryStore::Open(options.data_dir + "/index_entries.db");
  if (!entries.ok()) return entries.status();
  TableOperationsOptions table_options;
  table_options.storage_timeout = options.storage_timeout;
  JobQueueOptions job_options;
  job_options.lease_ms = absl::ToInt64Milliseconds(options.job_lease);
  job_options.max_attempts = options.job_max_attempts;
  ReshardOptions reshard_options;
  reshard_options.storage_timeout = options.storage_timeout;
  reshard_options.max_pause = options.reshard_max_pause;
  reshard_options.verify_checksums = options.reshard_verify_checksums;
  reshard_options.testing_hold_before_switch = options.testing_switch_hold_before;
  reshard_options.testing_hold_after_switch = options.testing_switch_hold_after;
  std::unique_ptr<Conductor> conductor(new Conductor(std::move(*store), std::move(*entries),
                                                     table_options, std::move(job_options),
                                                     std::move(reshard_options)));
  if (auto s = conductor->indexes_.Init(); !s.ok()) return s;
  conductor->sql_.set_limits(options.limits);

  // Register the storage nodes the topology does not know yet.
  for (const std::string& address : options.storage_nodes) {
    auto snapshot = conductor->store_->snapshot();
    bool known = false;
    for (const NodeMeta& node : snapshot->nodes) known |= node.address == address;
    if (known) continue;
    absl::Time give_up = absl::Now() + options.storage_wait;
    absl::StatusOr<std::string> node_id = absl::UnavailableError("not asked yet");
    while (true) {
      node_id = conductor->storage_.GetNodeId(address, absl::Now() + absl::Seconds(2));
      if (node_id.ok() || absl::Now() >= give_up) break;
      LogInfo("waiting for storage node %s: %s", address, node_id.status().message());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    if (!node_id.ok()) {
      return absl::UnavailableError(absl::StrCat("storage node ", address, " never answered (",
                                                 node_id.status().message(),
                                                 "); start it first or fix --storage_nodes"));
    }
    const NodeMeta* clash = snapshot->FindNode(*node_id);
    if (clash != nullptr) {
      LogWarning("storage node %s moved from %s to %s", *node_id, clash->address, address);
    }
    if (clash != nullptr && absl::StartsWith(clash->address, kRestoredAddressPrefix)) {
      // A node of a restored topology must bring its restored file: one that
      // lacks the topology's tables would be given empty ones, and its rows
      // would be lost without a word.
      if (auto s = CheckRestoredNode(conductor->storage_, *snapshot, {*node_id, address},
                                     absl::Now() + options.storage_timeout);
          !s.ok()) {
        return s;
      }
    }
    if (auto s = conductor->store_->UpsertNode({*node_id, address}); !s.ok()) return s;
    LogInfo("registered storage node %s at %s", *node_id, address);
    // A node that joins later gets every existing table, so that operations
    // that run on every node (rename, drop, index, reshard) find them there.
    if (auto s = conductor->tables_.CreateTablesOn({*node_id, address},
                                                   absl::Now() + options.storage_timeout);
        !s.ok()) {
      return Annotate(s,
                      absl::StrCat("creating the existing tables on new storage node ", *node_id));
    }
  }
  // A restored topology (conductorctl restore) knows its nodes by id only:
  // each must have answered at one of the --storage_nodes addresses.
  for (const NodeMeta& node : conductor->store_->snapshot()->nodes) {
    if (absl::StartsWith(node.address, kRestoredAddressPrefix)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "restored storage node ", node.node_id,
          " was not found at any --storage_nodes address: start a storage node with --node_id=",
          node.node_id, " on its restored data directory and list its address"));
    }
  }
  conductor->backup_service_ = std::make_unique<BackupService>(
      options.data_dir, conductor->store_.get(), &conductor->storage_);
  // Every node has every table: a node registered just before a crash may
  // have missed them. Idempotent; a node that is down now is left for later.
  for (const NodeMeta& node : conductor->store_->snapshot()->nodes) {
    if (auto s = conductor->tables_.CreateTablesOn(node, absl::Now() + absl::Seconds(2)); !s.ok()) {
      LogWarning("could not check the tables on storage node %s: %s", node.node_id, s.message());
    }
  }
  conductor->tables_.StartBackgroundReconciler();
  conductor->job_queue_.StartReaper();
  conductor->indexes_.StartScheduler();
  conductor->reshards_.StartCoordinator();
  return conductor;
}

}  // namespace conductor
