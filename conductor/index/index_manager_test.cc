#include "conductor/index/index_manager.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/sqlite.h"
#include "conductor/topo/job_queue.h"
#include "conductor/topo/topology_store.h"
#include "gtest/gtest.h"

namespace conductor {
namespace {

// Storage nodes for unit tests: one in-memory SQLite database per node id,
// running batches synchronously. (Multi-process tests use real nodes.)
class SqliteNodes : public StorageClient {
 public:
  Database& node(const std::string& id) {
    auto& db = nodes_[id];
    if (db == nullptr) db = std::move(*Database::Open(":memory:"));
    return *db;
  }
  void ExecuteBatch(const NodeMeta& meta, const ExecuteBatchRequest& request, absl::Time,
                    Callback done) override {
    ++batches;
    ExecuteBatchResponse response;
    for (const auto& statement : request.statements()) {
      auto stmt = node(meta.node_id).Prepare(statement.sql());
      if (!stmt.ok()) return done(stmt.status());
      stmt->BindAll({statement.params().begin(), statement.params().end()}).IgnoreError();
      auto* result = response.add_results();
      while (true) {
        auto row = stmt->Step();
        if (!row.ok()) return done(row.status());
        if (!*row) break;
        auto* out = result->add_rows();
        for (int c = 0; c < stmt->ColumnCount(); ++c) *out->add_values() = stmt->ColumnValue(c);
      }
    }
    done(std::move(response));
  }
  absl::StatusOr<std::string> GetNodeId(const std::string&, absl::Time) override {
    return absl::UnimplementedError("not needed");
  }
  int batches = 0;

 private:
  std::map<std::string, std::unique_ptr<Database>> nodes_;
};

constexpr char kTableSql[] = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)";

class IndexManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    store_ = std::move(*TopologyStore::Open(":memory:"));
    ASSERT_TRUE(store_->UpsertNode({"n1", "a1"}).ok());
    ASSERT_TRUE(store_->UpsertNode({"n2", "a2"}).ok());
    TableMeta table;
    table.name = "users";
    table.state = TableState::kActive;
    table.shard_key = "id";
    table.user_sql = kTableSql;
    table.physical_sql = kTableSql;
    sql::ColumnSchema id;
    id.name = "id";
    id.type = "INTEGER";
    id.primary_key_position = 1;
    sql::ColumnSchema email;
    email.name = "email";
    email.type = "TEXT";
    email.collation = "NOCASE";
    table.columns = {id, email};
    table.shards = {{0, "n1", shard_status::kActive}, {1, "n2", shard_status::kActive}};
    auto table_id = store_->InsertTable(table);
    ASSERT_TRUE(table_id.ok());
    for (const char* node : {"n1", "n2"}) {
      ASSERT_TRUE(nodes_.node(node)
                      .Exec("CREATE TABLE users (_virtualShard INTEGER NOT NULL, id INTEGER, "
                            "email TEXT COLLATE NOCASE, PRIMARY KEY (_virtualShard, id))")
                      .ok());
    }
    ASSERT_TRUE(store_
                    ->Mutate([&](Database& db) -> absl::Status {
                      IndexMeta index;
                      index.table_id = *table_id;
                      index.name = "by_email";
                      index.columns = {"email"};
                      index.unique = true;
                      index.status = index_status::kReady;
                      auto id = TopologyStore::InsertIndexIn(db, index);
                      if (!id.ok()) return id.status();
                      index_id_ = *id;
                      return absl::OkStatus();
                    })
                    .ok());
    jobs_ = std::make_unique<JobQueue>(store_.get());
    OpenManager();
  }

  void OpenManager() {
    manager_.reset();
    auto entries = IndexEntryStore::Open(dir_ + "/entries.db");
    ASSERT_TRUE(entries.ok()) << entries.status();
    manager_ =
        std::make_unique<IndexManager>(store_.get(), &nodes_, jobs_.get(), std::move(*entries));
    ASSERT_TRUE(manager_->Init().ok());
  }

  const TableMeta& table() { return *store_->snapshot()->FindActive("users"); }
  const IndexMeta& index() { return table().indexes.at(0); }

  // Scans of every shard with nothing found: what a recount of empty shards does.
  void ScanAllEmpty() {
    for (int32_t shard : {0, 1}) {
      auto seq = manager_->BeginScan(index_id_, shard, absl::Now() + absl::Seconds(10));
      ASSERT_TRUE(seq.ok()) << seq.status();
      ASSERT_TRUE(manager_->FinishScan(index_id_, shard, *seq).ok());
    }
  }

  std::vector<int32_t> Shards(const std::string& email) {
    auto shards = manager_->ShardsFor(table(), index(), {{TextValue(email)}});
    EXPECT_TRUE(shards.ok()) << shards.status();
    return shards.ok() ? *shards : std::vector<int32_t>{};
  }

  QueryPlan Insert(std::vector<std::pair<int32_t, std::pair<int64_t, std::string>>> rows) {
    QueryPlan plan;
    plan.kind = sql::StatementKind::kInsert;
    plan.read_only = false;
    plan.insert_conflict = "ABORT";
    for (const auto& [shard, row] : rows) {
      ShardStatement statement;
      statement.shard_id = shard;
      plan.statements.push_back(statement);
      plan.inserted_rows.push_back({shard, {IntegerValue(row.first), TextValue(row.second)}});
    }
    return plan;
  }

  std::string dir_;
  SqliteNodes nodes_;
  std::unique_ptr<TopologyStore> store_;
  std::unique_ptr<JobQueue> jobs_;
  std::unique_ptr<IndexManager> manager_;
  int64_t index_id_ = 0;
};

TEST_F(IndexManagerTest, AfterStartEveryShardIsDirtyUntilScanned) {
  // Nothing is known about writes before the start: every shard may hold any value.
  EXPECT_EQ(Shards("a@x"), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(manager_->Counts(index_id_).stale_shards, 2);
  ScanAllEmpty();
  EXPECT_TRUE(Shards("a@x").empty());
  EXPECT_EQ(manager_->Counts(index_id_).stale_shards, 0);
}

TEST_F(IndexManagerTest, InsertAddsEntriesBeforeTheWriteAndScansRemoveUnbackedOnes) {
  ScanAllEmpty();
  {
    auto write = manager_->BeginWrite();
    ASSERT_TRUE(manager_
                    ->PrepareWrite(*write, table(), Insert({{1, {7, "A@x"}}}),
                                   absl::Now() + absl::Seconds(5))
                    .ok());
    // The entry exists while the write is still in flight; the collation folds case.
    EXPECT_EQ(Shards("a@X"), std::vector<int32_t>{1});
    write->set_succeeded();
  }
  EXPECT_EQ(manager_->Counts(index_id_).entry_count, 1);
  // The row never reached the node (say it was deleted): a scan of shard 1
  // that finds nothing removes the entry.
  auto seq = manager_->BeginScan(index_id_, 1, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(seq.ok());
  ASSERT_TRUE(manager_->FinishScan(index_id_, 1, *seq).ok());
  EXPECT_TRUE(Shards("a@x").empty());
  EXPECT_EQ(manager_->Counts(index_id_).entry_count, 0);
}

TEST_F(IndexManagerTest, EntriesOfWritesAfterTheScanStartedSurviveIt) {
  ScanAllEmpty();
  auto seq = manager_->BeginScan(index_id_, 0, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(seq.ok());
  ASSERT_TRUE(
      manager_
          ->AddScanned(index_id_, 0, *seq, {{TextValue("old@x")}}, absl::Now() + absl::Seconds(5))
          .ok());
  {
    auto write = manager_->BeginWrite();
    ASSERT_TRUE(manager_
                    ->PrepareWrite(*write, table(), Insert({{0, {1, "new@x"}}}),
                                   absl::Now() + absl::Seconds(5))
                    .ok());
    write->set_succeeded();
  }
  ASSERT_TRUE(manager_->FinishScan(index_id_, 0, *seq).ok());
  EXPECT_EQ(Shards("old@x"), std::vector<int32_t>{0});
  EXPECT_EQ(Shards("new@x"), std::vector<int32_t>{0}) << "the scan may not have seen this row";
}

TEST_F(IndexManagerTest, ScanWaitsForWritesThatStartedBeforeIt) {
  ScanAllEmpty();
  auto write = manager_->BeginWrite();
  const int64_t write_seq = write->seq();
  auto scan = std::async(std::launch::async, [&] {
    return manager_->BeginScan(index_id_, 0, absl::Now() + absl::Seconds(30));
  });
  EXPECT_EQ(scan.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "the scan started while an earlier write was in flight";
  write.reset();
  auto seq = scan.get();
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_GT(*seq, write_seq) << "the scan's number is above every write it waited for";
  // A write that starts after the scan gets a larger number, so its entries
  // outlive the scan (EntriesOfWritesAfterTheScanStartedSurviveIt).
  EXPECT_GT(manager_->BeginWrite()->seq(), *seq);
}

TEST_F(IndexManagerTest, ScanGivesUpAtItsDeadline) {
  auto write = manager_->BeginWrite();
  auto seq = manager_->BeginScan(index_id_, 0, absl::Now() + absl::Milliseconds(50));
  EXPECT_EQ(seq.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(IndexManagerTest, UpdateOfAnIndexedColumnMakesItsShardsDirty) {
  ScanAllEmpty();
  // A hash (non-unique) index would take updates; the unique one refuses them.
  QueryPlan update;
  update.kind = sql::StatementKind::kUpdate;
  update.read_only = false;
  update.assigned_columns = {"EMAIL"};
  ShardStatement statement;
  statement.shard_id = 1;
  update.statements.push_back(statement);
  auto write = manager_->BeginWrite();
  absl::Status s = manager_->PrepareWrite(*write, table(), update, absl::Now() + absl::Seconds(5));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(ErrorReason(s), "UNSUPPORTED_STATEMENT");
  update.assigned_columns = {"id_other"};
  EXPECT_TRUE(manager_->PrepareWrite(*write, table(), update, absl::Now() + absl::Seconds(5)).ok());
  EXPECT_TRUE(Shards("x@x").empty()) << "an UPDATE of other columns changes no entry";
}

TEST_F(IndexManagerTest, UniqueValueHeldByAnotherShardIsRefused) {
  ScanAllEmpty();
  ASSERT_TRUE(nodes_.node("n2").Exec("INSERT INTO users VALUES (1, 5, 'taken@x')").ok());
  {
    auto write = manager_->BeginWrite();
    ASSERT_TRUE(manager_
                    ->PrepareWrite(*write, table(), Insert({{1, {5, "taken@x"}}}),
                                   absl::Now() + absl::Seconds(5))
                    .ok());
    write->set_succeeded();
  }
  auto write = manager_->BeginWrite();
  absl::Status s = manager_->PrepareWrite(*write, table(), Insert({{0, {6, "TAKEN@x"}}}),
                                          absl::Now() + absl::Seconds(5));
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrorReason(s), "UNIQUE_VIOLATION");
  EXPECT_NE(s.message().find("'TAKEN@x'"), std::string::npos) << s.message();
  // Nothing was added for the refused row.
  EXPECT_EQ(Shards("taken@x"), std::vector<int32_t>{1});
}

TEST_F(IndexManagerTest, UniqueEntryWithoutARowIsNoConflict) {
  ScanAllEmpty();
  {
    // An entry whose row is gone (deleted, not yet recounted).
    auto write = manager_->BeginWrite();
    ASSERT_TRUE(manager_
                    ->PrepareWrite(*write, table(), Insert({{1, {5, "gone@x"}}}),
                                   absl::Now() + absl::Seconds(5))
                    .ok());
  }
  auto write = manager_->BeginWrite();
  EXPECT_TRUE(manager_
                  ->PrepareWrite(*write, table(), Insert({{0, {6, "gone@x"}}}),
                                 absl::Now() + absl::Seconds(5))
                  .ok());
  EXPECT_GT(nodes_.batches, 0) << "the entry's shard was asked";
}

TEST_F(IndexManagerTest, TwoRowsOfOneStatementWithOneValueAreRefused) {
  ScanAllEmpty();
  auto write = manager_->BeginWrite();
  absl::Status s =
      manager_->PrepareWrite(*write, table(), Insert({{0, {1, "same@x"}}, {1, {2, "same@x"}}}),
                             absl::Now() + absl::Seconds(5));
  EXPECT_EQ(ErrorReason(s), "UNIQUE_VIOLATION");
}

TEST_F(IndexManagerTest, ConcurrentWritersOfOneUniqueValueSerialise) {
  ScanAllEmpty();
  auto first = manager_->BeginWrite();
  ASSERT_TRUE(manager_
                  ->PrepareWrite(*first, table(), Insert({{0, {1, "race@x"}}}),
                                 absl::Now() + absl::Seconds(5))
                  .ok());
  // The second writer waits for the first one's key lock.
  auto second = manager_->BeginWrite();
  absl::Status waited = manager_->PrepareWrite(*second, table(), Insert({{1, {2, "race@x"}}}),
                                               absl::Now() + absl::Milliseconds(100));
  EXPECT_EQ(waited.code(), absl::StatusCode::kDeadlineExceeded);
  // The first one's row lands, then it finishes: the second now sees it.
  ASSERT_TRUE(nodes_.node("n1").Exec("INSERT INTO users VALUES (0, 1, 'race@x')").ok());
  first->set_succeeded();
  first.reset();
  absl::Status refused = manager_->PrepareWrite(*second, table(), Insert({{1, {2, "race@x"}}}),
                                                absl::Now() + absl::Seconds(5));
  EXPECT_EQ(ErrorReason(refused), "UNIQUE_VIOLATION");
}

TEST_F(IndexManagerTest, ScannedDuplicateAcrossShardsFailsTheBuild) {
  ScanAllEmpty();
  ASSERT_TRUE(nodes_.node("n1").Exec("INSERT INTO users VALUES (0, 1, 'dup@x')").ok());
  auto seq0 = manager_->BeginScan(index_id_, 0, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(
      manager_
          ->AddScanned(index_id_, 0, *seq0, {{TextValue("dup@x")}}, absl::Now() + absl::Seconds(5))
          .ok());
  ASSERT_TRUE(manager_->FinishScan(index_id_, 0, *seq0).ok());
  ASSERT_TRUE(nodes_.node("n2").Exec("INSERT INTO users VALUES (1, 2, 'DUP@x')").ok());
  auto seq1 = manager_->BeginScan(index_id_, 1, absl::Now() + absl::Seconds(5));
  absl::Status s = manager_->AddScanned(index_id_, 1, *seq1, {{TextValue("DUP@x")}},
                                        absl::Now() + absl::Seconds(5));
  EXPECT_EQ(ErrorReason(s), "UNIQUE_VIOLATION");
  EXPECT_NE(s.message().find("DUP@x"), std::string::npos) << s.message();
}

TEST_F(IndexManagerTest, SequenceNumbersContinueAcrossARestart) {
  ScanAllEmpty();
  int64_t before;
  {
    auto write = manager_->BeginWrite();
    before = write->seq();
    ASSERT_TRUE(manager_
                    ->PrepareWrite(*write, table(), Insert({{0, {1, "kept@x"}}}),
                                   absl::Now() + absl::Seconds(5))
                    .ok());
    write->set_succeeded();
  }
  OpenManager();
  auto write = manager_->BeginWrite();
  EXPECT_GT(write->seq(), before);
  write.reset();
  // The entry survived, and every shard is dirty again until recounted.
  EXPECT_EQ(manager_->Counts(index_id_).entry_count, 1);
  EXPECT_EQ(Shards("other@x"), (std::vector<int32_t>{0, 1}));
}

TEST_F(IndexManagerTest, UnknownIndexOrShardIsNotFound) {
  EXPECT_EQ(ErrorReason(manager_->BeginScan(999, 0, absl::Now()).status()), "INDEX_NOT_FOUND");
  EXPECT_EQ(ErrorReason(manager_->BeginScan(index_id_, 7, absl::Now()).status()),
            "INDEX_NOT_FOUND");
}

TEST_F(IndexManagerTest, ScanNumbersThisConductorNeverGaveAreRefused) {
  // E.g. saved in a job's progress before the entry file was replaced.
  auto next = manager_->BeginWrite()->seq();
  absl::Status add = manager_->AddScanned(index_id_, 0, next + 1000, {{TextValue("a@x")}},
                                          absl::Now() + absl::Seconds(5));
  EXPECT_EQ(add.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(add), IndexManager::kScanRestartReason);
  EXPECT_EQ(ErrorReason(manager_->FinishScan(index_id_, 0, next + 1000)),
            IndexManager::kScanRestartReason);
  EXPECT_EQ(manager_->Counts(index_id_).entry_count, 0);
  EXPECT_EQ(manager_->Counts(index_id_).stale_shards, 2) << "no mark was cleared";
}

TEST_F(IndexManagerTest, AWriteWithAnUnknownOutcomeHoldsScansAndItsValuesUntilSettled) {
  ScanAllEmpty();
  {
    auto write = manager_->BeginWrite();
    ASSERT_TRUE(manager_
                    ->PrepareWrite(*write, table(), Insert({{0, {1, "late@x"}}}),
                                   absl::Now() + absl::Seconds(5))
                    .ok());
    write->set_outcome_unknown();  // e.g. DEADLINE_EXCEEDED: the node may still commit
  }
  // A scan cannot start: the row could still land after it read the shard.
  EXPECT_EQ(manager_->BeginScan(index_id_, 0, absl::Now() + absl::Milliseconds(50)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  // Another writer of the value waits.
  auto other = manager_->BeginWrite();
  EXPECT_EQ(manager_
                ->PrepareWrite(*other, table(), Insert({{1, {2, "late@x"}}}),
                               absl::Now() + absl::Milliseconds(50))
                .code(),
            absl::StatusCode::kDeadlineExceeded);
  other.reset();
  EXPECT_EQ(manager_->ReleaseSettledWrites(absl::Now()), 0) << "not settled yet";
  EXPECT_EQ(manager_->ReleaseSettledWrites(absl::Now() + absl::Hours(1)), 1);
  EXPECT_TRUE(manager_->BeginScan(index_id_, 0, absl::Now() + absl::Seconds(5)).ok());
}

TEST_F(IndexManagerTest, AUniqueValueThatMovedDuringTheScanIsNoDuplicate) {
  ScanAllEmpty();
  // The scan of shard 1 read 'moved@x'; then the row was deleted there and
  // inserted on shard 0 (with its entry).
  auto seq = manager_->BeginScan(index_id_, 1, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(seq.ok());
  ASSERT_TRUE(nodes_.node("n1").Exec("INSERT INTO users VALUES (0, 1, 'moved@x')").ok());
  {
    auto write = manager_->BeginWrite();
    ASSERT_TRUE(manager_
                    ->PrepareWrite(*write, table(), Insert({{0, {1, "moved@x"}}}),
                                   absl::Now() + absl::Seconds(5))
                    .ok());
    write->set_succeeded();
  }
  EXPECT_TRUE(
      manager_
          ->AddScanned(index_id_, 1, *seq, {{TextValue("moved@x")}}, absl::Now() + absl::Seconds(5))
          .ok())
      << "shard 1 no longer holds the value";
  // Had shard 1 still held it, it would have been a duplicate.
  ASSERT_TRUE(nodes_.node("n2").Exec("INSERT INTO users VALUES (1, 9, 'moved@x')").ok());
  EXPECT_EQ(ErrorReason(manager_->AddScanned(index_id_, 1, *seq, {{TextValue("moved@x")}},
                                             absl::Now() + absl::Seconds(5))),
            "UNIQUE_VIOLATION");
}

}  // namespace
}  // namespace conductor
