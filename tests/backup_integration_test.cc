// Online backup and restore end to end (docs/operations.md#backups-and-restore):
// a real cluster (three storage nodes, queue workers) with several sharded
// tables and virtual indexes is backed up with `conductorctl backup` while a
// writer keeps inserting, then restored with `conductorctl restore` into new
// data directories and started as a fresh cluster on new ports (the source
// cluster is gone by then, so nothing can reach its processes). Every table
// must come back as it was: the tables nobody wrote during the backup
// exactly, the written one as whole rows, each acknowledged before the
// backup ended. A corrupted backup is refused.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/backup.h"
#include "common/backup_file.h"
#include "common/errors.h"
#include "common/sqlite.h"
#include "gtest/gtest.h"
#include "tests/harness/cluster.h"
#include "tests/harness/cluster_sql_test.h"
#include "tests/harness/process.h"

namespace conductor {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::conductor::v1;
using testing::TestCluster;

struct CtlRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs conductorctl with `args`, stdout to a file, stderr to the log.
CtlRun RunCtl(const std::vector<std::string>& args) {
  std::string dir = testing::MakeTempDir("conductorctl");
  std::vector<std::string> argv = {"/bin/sh",
                                   "-c",
                                   "out=$1; shift; exec \"$@\" > \"$out\"",
                                   "sh",
                                   dir + "/stdout",
                                   testing::BinaryPath("client/conductorctl")};
  argv.insert(argv.end(), args.begin(), args.end());
  CtlRun run;
  auto process = testing::Process::Start(argv, dir + "/stderr");
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return run;
  auto code = (*process)->Wait(absl::Seconds(120));
  EXPECT_TRUE(code.ok()) << code.status();
  run.exit_code = code.ok() ? *code : -1;
  run.out = ReadWholeFile(dir + "/stdout");
  run.err = ReadWholeFile(dir + "/stderr");
  return run;
}

std::vector<std::string> RenderRows(const v1::ResultSet& set) {
  std::vector<std::string> rows;
  for (const auto& row : set.rows()) rows.push_back(testing::RenderRow(row));
  return rows;
}

std::string RenderResponse(const v1::ExecuteResponse& response) {
  std::string out;
  for (const auto& set : response.result_sets()) {
    absl::StrAppend(&out, "[", set.name(), "] ", absl::StrJoin(set.columns(), ","), "\n");
    for (const std::string& row : RenderRows(set)) absl::StrAppend(&out, "  ", row, "\n");
  }
  return out;
}

constexpr int kInitialLedgerRows = 200;

class BackupIntegrationTest : public testing::ClusterSqlTest {
 protected:
  // The whole content of every table, and the topology as users see it.
  struct Picture {
    std::map<std::string, std::vector<std::string>> rows;  // table -> rendered rows
    std::string show_tables;
    std::map<std::string, std::string> describe;  // table -> rendered DESCRIBE
    std::string show_indexes;
  };

  std::string Described(const std::string& table) {
    v1::ExecuteResponse response;
    EXPECT_TRUE(IsOk(Run("DESCRIBE " + table, {}, &response)));
    return RenderResponse(response);
  }

  Picture Take(const std::vector<std::string>& tables) {
    Picture picture;
    for (const std::string& table : tables) {
      picture.rows[table] = RenderRows(Query("SELECT * FROM " + table + " ORDER BY 1, 2"));
      picture.describe[table] = Described(table);
    }
    v1::ExecuteResponse response;
    EXPECT_TRUE(IsOk(Run("SHOW TABLES", {}, &response)));
    picture.show_tables = RenderResponse(response);
    EXPECT_TRUE(IsOk(Run("SHOW INDEXES", {}, &response)));
    picture.show_indexes = RenderResponse(response);
    return picture;
  }

  // Polls until every index is ready with no stale shard.
  void WaitIndexesSettled() {
    const absl::Time give_up = absl::Now() + absl::Seconds(90);
    while (true) {
      v1::ListIndexesRequest request;
      v1::ListIndexesResponse response;
      ASSERT_TRUE(IsOk(Call(&v1::TableOps::Stub::ListIndexes, request, &response)));
      bool settled = response.indexes_size() > 0;
      for (const auto& index : response.indexes()) {
        settled &= index.status() == "ready" && index.stale_shards() == 0;
      }
      if (settled) return;
      ASSERT_LT(absl::Now(), give_up) << response.DebugString();
      absl::SleepFor(absl::Milliseconds(100));
    }
  }

  struct Explained {
    std::string route;
    std::string index_name;
  };
  Explained Explain(const std::string& sql, const std::vector<Value>& params) {
    v1::ExecuteResponse response;
    EXPECT_TRUE(IsOk(Run("EXPLAIN " + sql, params, &response)));
    Explained explained;
    if (response.result_sets_size() != 1 || response.result_sets(0).rows_size() == 0) {
      ADD_FAILURE() << "no EXPLAIN rows for " << sql;
      return explained;
    }
    const auto& set = response.result_sets(0);
    const auto& row = set.rows(0);
    explained.route = row.values(ColumnIndex(set, "route")).text();
    explained.index_name = row.values(ColumnIndex(set, "index_name")).text();
    return explained;
  }
};

TEST_F(BackupIntegrationTest, BackupWhileWritingThenRestoreIntoAFreshCluster) {
  StartCluster(/*workers=*/2);
  const std::string source_conductor = cluster_->conductor_address();
  std::vector<std::string> source_node_addresses;
  for (int i = 0; i < cluster_->node_count(); ++i) {
    source_node_addresses.push_back(cluster_->node_address(i));
  }

  // --- Tables: several shards each, indexes, every storage class.
  ASSERT_TRUE(IsOk(
      Run("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, name TEXT NOT NULL, score REAL, "
          "avatar BLOB) /* SHARDS=4 */")));
  ASSERT_TRUE(
      IsOk(Run("CREATE TABLE orders (id INTEGER, line INTEGER, amount INTEGER NOT NULL, note TEXT, "
               "PRIMARY KEY (id, line)) /* SHARDS=3 */")));
  ASSERT_TRUE(IsOk(Run(
      "CREATE TABLE ledger (id INTEGER PRIMARY KEY, payload TEXT NOT NULL, check_sum INTEGER NOT "
      "NULL) /* SHARDS=5 */")));
  ASSERT_TRUE(IsOk(Run("CREATE TABLE empty_one (k TEXT PRIMARY KEY, v TEXT) /* SHARDS=2 */")));
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(
        IsOk(Run("INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                 {IntegerValue(i),
                  i % 7 == 0 ? NullValue() : TextValue(absl::StrCat("user", i % 50, "@x.io")),
                  TextValue(absl::StrCat("name-", i)), RealValue(i / 4.0),
                  BlobValue(std::string("\0\x01", 2) + std::to_string(i))})));
  }
  for (int i = 0; i < 100; ++i) {
    for (int line = 0; line < 2; ++line) {
      ASSERT_TRUE(IsOk(Run("INSERT INTO orders VALUES (?, ?, ?, ?)",
                           {IntegerValue(i), IntegerValue(line), IntegerValue(i * 10 + line),
                            line == 0 ? NullValue() : TextValue("second line")})));
    }
  }
  for (int i = 0; i < kInitialLedgerRows; ++i) {
    ASSERT_TRUE(
        IsOk(Run("INSERT INTO ledger VALUES (?, ?, ?)",
                 {IntegerValue(i), TextValue(absl::StrCat("payload-", i)), IntegerValue(i * 7)})));
  }
  ASSERT_TRUE(IsOk(Run("CREATE INDEX users_email ON users (email)")));
  ASSERT_TRUE(IsOk(Run("CREATE UNIQUE INDEX users_name ON users (name)")));
  ASSERT_TRUE(IsOk(Run("CREATE INDEX orders_amount ON orders (amount)")));
  WaitIndexesSettled();
  const std::vector<std::string> quiet_tables = {"users", "orders", "empty_one"};
  const std::vector<std::string> all_tables = {"users", "orders", "empty_one", "ledger"};
  Picture before = Take(all_tables);
  ASSERT_EQ(before.rows["users"].size(), 300u);
  ASSERT_EQ(before.rows["orders"].size(), 200u);

  // --- A writer inserts ledger rows, one at a time, all through the backup.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> attempted{kInitialLedgerRows - 1};  // highest id sent so far
  std::atomic<int64_t> acked{kInitialLedgerRows - 1};      // highest id acknowledged
  std::atomic<int64_t> failures{0};
  std::thread writer([&] {
    for (int64_t id = kInitialLedgerRows; !stop.load(); ++id) {
      attempted.store(id);
      grpc::Status status =
          Run("INSERT INTO ledger VALUES (?, ?, ?)",
              {IntegerValue(id), TextValue(absl::StrCat("payload-", id)), IntegerValue(id * 7)});
      if (!status.ok()) {
        failures.fetch_add(1);
        ADD_FAILURE() << "ledger insert " << id << ": " << status.error_message();
        return;
      }
      acked.store(id);
    }
  });
  absl::SleepFor(absl::Milliseconds(300));
  const int64_t acked_before_backup = acked.load();
  const std::string backup_dir = testing::MakeTempDir("backup") + "/b1";
  CtlRun backup = RunCtl({"--conductor=" + source_conductor, "backup", "--out", backup_dir});
  const int64_t attempted_at_end = attempted.load();
  absl::SleepFor(absl::Milliseconds(200));
  stop = true;
  writer.join();
  ASSERT_EQ(backup.exit_code, 0) << backup.err;
  EXPECT_TRUE(absl::StrContains(backup.out, "backup written to " + backup_dir)) << backup.out;
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(acked.load(), acked_before_backup) << "the writer made no progress during the backup";

  // --- The manifest: every file with its size and checksum, node addresses.
  auto manifest = ReadBackupManifest(backup_dir);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->format(), "conductor-backup/1");
  EXPECT_EQ(manifest->topology_schema_version(), 4);
  EXPECT_GT(manifest->topology_version(), 0);
  EXPECT_GE(manifest->finished_at_ms(), manifest->started_at_ms());
  EXPECT_FALSE(manifest->consistency().empty());
  ASSERT_EQ(manifest->nodes_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(manifest->nodes(i).node_id(), cluster_->node_id(i));
    EXPECT_EQ(manifest->nodes(i).address(), source_node_addresses[i]);
  }
  ASSERT_EQ(manifest->files_size(), 5);
  std::set<std::string> paths;
  for (const auto& file : manifest->files()) {
    paths.insert(file.path());
    int64_t size = 0;
    std::string sha256;
    ASSERT_TRUE(HashFile(backup_dir + "/" + file.path(), &size, &sha256).ok()) << file.path();
    EXPECT_EQ(size, file.size_bytes()) << file.path();
    EXPECT_EQ(sha256, file.sha256()) << file.path();
    EXPECT_GT(size, 0) << file.path();
  }
  EXPECT_EQ(paths, (std::set<std::string>{"conductor/topology.db", "conductor/index_entries.db",
                                          "nodes/node-1/storage.db", "nodes/node-2/storage.db",
                                          "nodes/node-3/storage.db"}));
  // A second backup into the same (now non-empty) directory is refused.
  CtlRun again = RunCtl({"--conductor=" + source_conductor, "backup", "--out=" + backup_dir});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(again.err, "not empty")) << again.err;

  // --- The source cluster goes away; restore into new directories.
  cluster_.reset();
  const std::string root = testing::MakeTempDir("restored");
  CtlRun restored =
      RunCtl({"restore", "--from=" + backup_dir, "--data_dir=" + root + "/conductor", "conductor"});
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  // A freshly formatted volume holds lost+found: restoring into it works.
  fs::create_directories(root + "/node-1/lost+found");
  for (int i = 1; i <= 3; ++i) {
    const std::string id = absl::StrCat("node-", i);
    restored =
        RunCtl({"restore", "--from=" + backup_dir, "--data_dir=" + root + "/" + id, "node", id});
    ASSERT_EQ(restored.exit_code, 0) << restored.err;
    EXPECT_TRUE(absl::StrContains(restored.out, "restored storage node " + id)) << restored.out;
  }
  // Restoring over data is refused.
  CtlRun over = RunCtl(
      {"restore", "--from=" + backup_dir, "--data_dir=" + root + "/node-1", "node", "node-1"});
  EXPECT_EQ(over.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(over.err, "not empty")) << over.err;
  CtlRun unknown = RunCtl(
      {"restore", "--from=" + backup_dir, "--data_dir=" + root + "/node-9", "node", "node-9"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(unknown.err, "no storage node \"node-9\"")) << unknown.err;

  // --- A fresh cluster on the restored directories, on new ports.
  TestCluster::Options options;
  options.storage_nodes = 3;
  options.workers = 2;
  options.extra_conductor_flags = {"--job_lease_s=2"};
  options.root_dir = root;
  auto fresh = TestCluster::Start(options);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  cluster_ = std::move(*fresh);
  EXPECT_NE(cluster_->conductor_address(), source_conductor);
  WaitIndexesSettled();

  Picture after = Take(all_tables);
  EXPECT_EQ(after.show_tables, before.show_tables);
  EXPECT_EQ(after.show_indexes, before.show_indexes);
  for (const std::string& table : all_tables) {
    EXPECT_EQ(after.describe[table], before.describe[table]) << table;
  }
  for (const std::string& table : quiet_tables) {
    EXPECT_EQ(after.rows[table], before.rows[table]) << table;
  }

  // The ledger: whole rows only; every row acknowledged before the backup
  // started is there; nothing that was not sent before the backup ended.
  std::set<int64_t> ledger_ids;
  const v1::ResultSet ledger = Query("SELECT id, payload, check_sum FROM ledger ORDER BY id");
  for (const auto& row : ledger.rows()) {
    ASSERT_EQ(row.values_size(), 3);
    const int64_t id = row.values(0).integer();
    ledger_ids.insert(id);
    EXPECT_EQ(row.values(1).text(), absl::StrCat("payload-", id));
    EXPECT_EQ(row.values(2).integer(), id * 7);
  }
  for (int64_t id = 0; id <= acked_before_backup; ++id) {
    EXPECT_TRUE(ledger_ids.count(id)) << "ledger row " << id << " acknowledged before the backup";
  }
  ASSERT_FALSE(ledger_ids.empty());
  EXPECT_LE(*ledger_ids.rbegin(), attempted_at_end);
  EXPECT_GT(static_cast<int64_t>(ledger_ids.size()), acked_before_backup + 1)
      << "no row written during the backup made it (possible, but unlikely)";

  // Indexes route (EXPLAIN) and answer as before.
  Explained by_email = Explain("SELECT * FROM users WHERE email = ?", {TextValue("user3@x.io")});
  EXPECT_EQ(by_email.route, "virtual_index");
  EXPECT_EQ(by_email.index_name, "users_email");
  EXPECT_EQ(RenderRows(
                Query("SELECT * FROM users WHERE email = ? ORDER BY id", {TextValue("user3@x.io")}))
                .size(),
            5u);  // ids 3, 53, 103, 153, 253 (203 has no email)
  Explained by_amount = Explain("SELECT * FROM orders WHERE amount = ?", {IntegerValue(501)});
  EXPECT_EQ(by_amount.route, "virtual_index");
  EXPECT_EQ(by_amount.index_name, "orders_amount");
  EXPECT_EQ(Count("SELECT count(*) FROM orders WHERE amount = ?", {IntegerValue(501)}), 1);
  // The UNIQUE index still holds across shards; new writes work.
  ExpectError(Run("INSERT INTO users VALUES (1000, NULL, 'name-17', 0, NULL)"),
              grpc::StatusCode::ALREADY_EXISTS, "UNIQUE_VIOLATION");
  ASSERT_TRUE(IsOk(Run("INSERT INTO users VALUES (1000, 'new@x.io', 'name-1000', 0, NULL)")));
  EXPECT_EQ(Count("SELECT count(*) FROM users WHERE email = 'new@x.io'"), 1);

  // --- A corrupted backup is refused, and nothing is left behind.
  const std::string bad = testing::MakeTempDir("corrupt") + "/b";
  fs::copy(backup_dir, bad, fs::copy_options::recursive);
  {
    const std::string victim = bad + "/nodes/node-2/storage.db";
    std::fstream file(victim, std::ios::in | std::ios::out | std::ios::binary);
    const auto size = static_cast<std::streamoff>(fs::file_size(victim));
    file.seekg(size / 2);
    char byte = 0;
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x5a);
    file.seekp(size / 2);
    file.write(&byte, 1);
  }
  const std::string target = testing::MakeTempDir("corrupt-target") + "/node-2";
  CtlRun corrupt = RunCtl({"restore", "--from=" + bad, "--data_dir=" + target, "node", "node-2"});
  EXPECT_EQ(corrupt.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(corrupt.err, "DATA_LOSS")) << corrupt.err;
  EXPECT_TRUE(absl::StrContains(corrupt.err, "nodes/node-2/storage.db is corrupt")) << corrupt.err;
  EXPECT_TRUE(fs::is_empty(target)) << "a refused restore left files in " << target;
  // The other files of that backup are fine.
  CtlRun fine = RunCtl({"restore", "--from=" + bad,
                        "--data_dir=" + testing::MakeTempDir("fine") + "/n1", "node", "node-1"});
  EXPECT_EQ(fine.exit_code, 0) << fine.err;
  // A backup without its manifest (an interrupted one) is refused.
  fs::remove(bad + "/manifest.json");
  CtlRun incomplete = RunCtl({"restore", "--from=" + bad,
                              "--data_dir=" + testing::MakeTempDir("inc") + "/c", "conductor"});
  EXPECT_EQ(incomplete.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(incomplete.err, "incomplete backup")) << incomplete.err;

  // --- A restored conductor that does not find one of its nodes by id at
  // its --storage_nodes addresses refuses to start, and says which.
  const std::string partial = testing::MakeTempDir("partial");
  ASSERT_EQ(RunCtl({"restore", "--from=" + backup_dir, "--data_dir=" + partial + "/conductor",
                    "conductor"})
                .exit_code,
            0);
  for (int i = 1; i <= 2; ++i) {
    const std::string id = absl::StrCat("node-", i);
    ASSERT_EQ(
        RunCtl({"restore", "--from=" + backup_dir, "--data_dir=" + partial + "/" + id, "node", id})
            .exit_code,
        0);
  }
  options.storage_nodes = 2;
  options.workers = 0;
  options.root_dir = partial;
  auto missing = TestCluster::Start(options);
  EXPECT_FALSE(missing.ok());
  const std::string log = ReadWholeFile(partial + "/conductor.log");
  EXPECT_TRUE(absl::StrContains(
      log, "restored storage node node-3 was not found at any --storage_nodes address"))
      << log;

  // --- A node whose file was not restored (a fresh, empty node-3): the
  // restored conductor refuses it instead of giving it empty tables.
  const std::string unrestored = testing::MakeTempDir("unrestored");
  ASSERT_EQ(RunCtl({"restore", "--from=" + backup_dir, "--data_dir=" + unrestored + "/conductor",
                    "conductor"})
                .exit_code,
            0);
  for (int i = 1; i <= 2; ++i) {
    const std::string id = absl::StrCat("node-", i);
    ASSERT_EQ(RunCtl({"restore", "--from=" + backup_dir, "--data_dir=" + unrestored + "/" + id,
                      "node", id})
                  .exit_code,
              0);
  }
  options.storage_nodes = 3;
  options.root_dir = unrestored;
  auto empty_node = TestCluster::Start(options);
  EXPECT_FALSE(empty_node.ok());
  const std::string refused = ReadWholeFile(unrestored + "/conductor.log");
  EXPECT_TRUE(absl::StrContains(refused, "restored storage node node-3 at ")) << refused;
  EXPECT_TRUE(absl::StrContains(refused, "its data file was not restored")) << refused;

  // --- node-1's file restored into node-2's data directory: that node
  // refuses to start (its file records the node it belongs to).
  const std::string swapped = testing::MakeTempDir("swapped");
  ASSERT_EQ(RunCtl({"restore", "--from=" + backup_dir, "--data_dir=" + swapped + "/node-2", "node",
                    "node-1"})
                .exit_code,
            0);
  options.storage_nodes = 2;
  options.root_dir = swapped;
  auto wrong_file = TestCluster::Start(options);
  EXPECT_FALSE(wrong_file.ok());
  const std::string node_log = ReadWholeFile(swapped + "/node-2.log");
  EXPECT_TRUE(absl::StrContains(node_log,
                                "belongs to storage node \"node-1\", not to "
                                "--node_id=node-2"))
      << node_log;
}

TEST_F(BackupIntegrationTest, RefusedWhileAReshardIsActive) {
  // No queue worker: the reshard's copy jobs wait, so it stays active.
  StartCluster(/*workers=*/0);
  ASSERT_TRUE(IsOk(Run("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT) /* SHARDS=2 */")));
  ASSERT_TRUE(IsOk(Run("INSERT INTO t VALUES (1, 'one'), (2, 'two')")));
  ASSERT_TRUE(IsOk(Run("PRAGMA reshardTable('t', 4)")));
  const std::string dir = testing::MakeTempDir("backup") + "/refused";
  CtlRun backup =
      RunCtl({"--conductor=" + cluster_->conductor_address(), "backup", "--out=" + dir});
  EXPECT_EQ(backup.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(backup.err, "FAILED_PRECONDITION RESHARD_IN_PROGRESS"))
      << backup.err;
  EXPECT_TRUE(absl::StrContains(backup.err, "a reshard is active")) << backup.err;
  EXPECT_FALSE(fs::exists(dir + "/manifest.json"));
}

}  // namespace
}  // namespace conductor
