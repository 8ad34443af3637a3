#include "common/shard_copy/change_capture.h"

#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sqlite.h"
#include "gtest/gtest.h"

namespace conductor::shard_copy {
namespace {

// A node's physical table (the conductor's rewrite: _virtualShard leads the
// primary key and every uniqueness), written to by a connection set up like
// the node's writer (recursive_triggers on).
class ChangeCaptureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = std::move(*Database::Open(":memory:"));
    ASSERT_TRUE(db_->Exec("PRAGMA recursive_triggers = ON").ok());
    ASSERT_TRUE(db_->Exec("CREATE TABLE \"odd \"\"name\" (_virtualShard INTEGER NOT NULL, "
                          "a INTEGER, b TEXT, email TEXT, PRIMARY KEY (_virtualShard, a, b), "
                          "UNIQUE (_virtualShard, email))")
                    .ok());
  }
  void Run(const std::vector<std::string>& statements) {
    for (const auto& sql : statements) ASSERT_TRUE(db_->Exec(sql).ok()) << sql;
  }
  // (seq, shard, a, b) of every captured change after `after`.
  std::vector<std::tuple<int64_t, int64_t, int64_t, std::string>> Changes(int64_t after = 0) {
    std::vector<std::tuple<int64_t, int64_t, int64_t, std::string>> out;
    auto stmt = db_->Prepare(ReadChangesSql(kTable, {"a", "b"}));
    EXPECT_TRUE(stmt.ok()) << stmt.status();
    stmt->BindInt64(1, after).IgnoreError();
    stmt->BindInt64(2, 1000).IgnoreError();
    while (*stmt->Step()) {
      out.emplace_back(stmt->ColumnInt64(0), stmt->ColumnInt64(1), stmt->ColumnInt64(2),
                       stmt->ColumnText(3));
    }
    return out;
  }
  std::set<std::tuple<int64_t, int64_t, std::string>> Keys(int64_t after = 0) {
    std::set<std::tuple<int64_t, int64_t, std::string>> keys;
    for (const auto& [seq, shard, a, b] : Changes(after)) keys.emplace(shard, a, b);
    return keys;
  }

  static constexpr char kTable[] = "odd \"name";
  std::unique_ptr<Database> db_;
};

TEST_F(ChangeCaptureTest, CapturesEveryWriteToTheChosenShardsOnly) {
  Run({"INSERT INTO \"odd \"\"name\" VALUES (1, 1, 'x', 'before@x')"});  // before capture
  Run(EnableCaptureSql(kTable, {"a", "b"}, {1, 2}));
  EXPECT_TRUE(Changes().empty()) << "rows written before capture are the copy's job";
  Run({"INSERT INTO \"odd \"\"name\" VALUES (1, 2, 'y', 'a@x')",
       "INSERT INTO \"odd \"\"name\" VALUES (3, 2, 'y', 'other-shard@x')",
       "UPDATE \"odd \"\"name\" SET email = 'b@x' WHERE _virtualShard = 1 AND a = 2",
       "DELETE FROM \"odd \"\"name\" WHERE _virtualShard = 1 AND a = 1",
       "INSERT INTO \"odd \"\"name\" VALUES (2, 7, 'z', 'c@x') ON CONFLICT DO NOTHING"});
  EXPECT_EQ(Keys(), (std::set<std::tuple<int64_t, int64_t, std::string>>{
                        {1, 2, "y"}, {1, 1, "x"}, {2, 7, "z"}}));
  // Sequence numbers order the changes; reading resumes after one.
  auto all = Changes();
  ASSERT_EQ(all.size(), 5u);  // insert, update (old + new), delete, insert
  EXPECT_EQ(Changes(std::get<0>(all[2])).size(), 2u);
}

TEST_F(ChangeCaptureTest, AnUpdateMovingARowBetweenShardsRecordsBothKeys) {
  Run(EnableCaptureSql(kTable, {"a", "b"}, {1}));
  Run({"INSERT INTO \"odd \"\"name\" VALUES (5, 1, 'k', 'm@x')",
       "UPDATE \"odd \"\"name\" SET _virtualShard = 1, a = 9 WHERE a = 1"});
  EXPECT_EQ(Keys(),
            (std::set<std::tuple<int64_t, int64_t, std::string>>{{5, 1, "k"}, {1, 9, "k"}}));
}

TEST_F(ChangeCaptureTest, ReplaceThroughAnotherUniqueConstraintIsCaptured) {
  Run({"INSERT INTO \"odd \"\"name\" VALUES (1, 1, 'old', 'dup@x')"});
  Run(EnableCaptureSql(kTable, {"a", "b"}, {1}));
  // Replaces row (1, 1, 'old') through UNIQUE (_virtualShard, email).
  Run({"INSERT OR REPLACE INTO \"odd \"\"name\" VALUES (1, 2, 'new', 'dup@x')"});
  EXPECT_EQ(Keys(),
            (std::set<std::tuple<int64_t, int64_t, std::string>>{{1, 1, "old"}, {1, 2, "new"}}));
}

// What the counters say of `shard`, and what COUNT(*) says.
std::pair<int64_t, int64_t> CounterAndCount(Database& db, const std::string& table, int shard) {
  int64_t counter = -1, count = -1;
  auto counters = db.Prepare(ReadCountsSql(table));
  EXPECT_TRUE(counters.ok()) << counters.status();
  while (*counters->Step()) {
    if (counters->ColumnInt64(0) == shard) counter = counters->ColumnInt64(1);
  }
  auto rows = db.Prepare(absl::StrCat("SELECT count(*) FROM ", QuoteIdentifier(table),
                                      " WHERE _virtualShard = ", shard));
  EXPECT_TRUE(rows.ok()) << rows.status();
  EXPECT_TRUE(*rows->Step());
  count = rows->ColumnInt64(0);
  return {counter, count};
}

TEST_F(ChangeCaptureTest, CountersFollowEveryWriteExactly) {
  // Rows before capture are counted when it starts.
  Run({"INSERT INTO \"odd \"\"name\" VALUES (1, 1, 'x', 'p@x')",
       "INSERT INTO \"odd \"\"name\" VALUES (1, 2, 'x', 'q@x')",
       "INSERT INTO \"odd \"\"name\" VALUES (2, 1, 'x', 'r@x')"});
  Run(EnableCaptureSql(kTable, {"a", "b"}, {1, 2}));
  EXPECT_EQ(CounterAndCount(*db_, kTable, 1), (std::pair<int64_t, int64_t>(2, 2)));
  EXPECT_EQ(CounterAndCount(*db_, kTable, 2), (std::pair<int64_t, int64_t>(1, 1)));
  std::mt19937 rng(7);
  int applied = 0;
  for (int i = 0; i < 3000; ++i) {
    const int shard = 1 + static_cast<int>(rng() % 3);  // 3 is not captured
    const int a = static_cast<int>(rng() % 40);
    const std::string email = absl::StrCat("e", rng() % 30, "@x");
    std::string sql;
    switch (rng() % 7) {
      case 0:
      case 1:
        sql = absl::StrCat("INSERT OR IGNORE INTO \"odd \"\"name\" VALUES (", shard, ", ", a,
                           ", 'k', '", email, "')");
        break;
      case 2:  // replaces through the primary key or the other UNIQUE
        sql = absl::StrCat("INSERT OR REPLACE INTO \"odd \"\"name\" VALUES (", shard, ", ", a,
                           ", 'k', '", email, "')");
        break;
      case 3:
        sql = absl::StrCat("INSERT INTO \"odd \"\"name\" VALUES (", shard, ", ", a, ", 'k', '",
                           email, "') ON CONFLICT DO UPDATE SET email = excluded.email || 'u'");
        break;
      case 4:
        sql = absl::StrCat("DELETE FROM \"odd \"\"name\" WHERE _virtualShard = ", shard,
                           " AND a = ", a);
        break;
      case 5:  // moves rows between shards (OR IGNORE: not over a conflict)
        sql = absl::StrCat("UPDATE OR IGNORE \"odd \"\"name\" SET _virtualShard = ", 1 + rng() % 3,
                           " WHERE _virtualShard = ", shard, " AND a = ", a);
        break;
      default:
        sql = absl::StrCat("UPDATE OR REPLACE \"odd \"\"name\" SET email = '", email,
                           "' WHERE _virtualShard = ", shard, " AND a = ", a);
    }
    // A statement SQLite refuses (a UNIQUE conflict an upsert does not
    // target) changes nothing, counters included.
    if (db_->Exec(sql).ok()) ++applied;
    if (i % 500 == 0 || i == 2999) {
      for (int s = 1; s <= 2; ++s) {
        auto [counter, count] = CounterAndCount(*db_, kTable, s);
        ASSERT_EQ(counter, count) << "shard " << s << " after " << i + 1
                                  << " writes; last: " << sql;
      }
    }
  }
  EXPECT_GT(applied, 2500);
  EXPECT_EQ(CounterAndCount(*db_, kTable, 3).first, -1) << "no counter for an uncaptured shard";
}

TEST_F(ChangeCaptureTest, TrimForgetsAppliedChangesAndDisableRemovesEverything) {
  Run(EnableCaptureSql(kTable, {"a", "b"}, {1}));
  Run({"INSERT INTO \"odd \"\"name\" VALUES (1, 1, 'a', 'a')",
       "INSERT INTO \"odd \"\"name\" VALUES (1, 2, 'b', 'b')"});
  auto all = Changes();
  ASSERT_EQ(all.size(), 2u);
  auto trim = db_->Prepare(TrimChangesSql(kTable));
  ASSERT_TRUE(trim.ok());
  trim->BindInt64(1, std::get<0>(all[0])).IgnoreError();
  ASSERT_TRUE(trim->Run().ok());
  EXPECT_EQ(Changes().size(), 1u);
  // Enabling again (other shards) keeps what was captured.
  Run(EnableCaptureSql(kTable, {"a", "b"}, {2}));
  EXPECT_EQ(Changes().size(), 1u);
  Run({"INSERT INTO \"odd \"\"name\" VALUES (1, 3, 'c', 'c')"});
  EXPECT_EQ(Changes().size(), 1u) << "shard 1 is no longer captured";
  Run(DisableCaptureSql(kTable));
  Run(DisableCaptureSql(kTable));  // idempotent
  auto left = db_->Prepare("SELECT count(*) FROM sqlite_master WHERE name LIKE '%conductor_c%'");
  ASSERT_TRUE(left.ok());
  ASSERT_TRUE(*left->Step());
  EXPECT_EQ(left->ColumnInt64(0), 0);
  Run({"INSERT INTO \"odd \"\"name\" VALUES (2, 4, 'd', 'd')"});  // writes still work
}

TEST_F(ChangeCaptureTest, PerShardReadAndTrimLeaveOtherShardsChangesAlone) {
  // Two source shards on one node share the changes table; each is caught up
  // on its own.
  Run(EnableCaptureSql(kTable, {"a", "b"}, {1, 2}));
  Run({"INSERT INTO \"odd \"\"name\" VALUES (1, 1, 'a', 'a')",
       "INSERT INTO \"odd \"\"name\" VALUES (2, 2, 'b', 'b')",
       "INSERT INTO \"odd \"\"name\" VALUES (1, 3, 'c', 'c')",
       "INSERT INTO \"odd \"\"name\" VALUES (2, 4, 'd', 'd')"});
  auto read = [&](int64_t shard, int64_t after, int64_t limit) {
    std::vector<std::pair<int64_t, int64_t>> out;  // (seq, a)
    auto stmt = db_->Prepare(ReadShardChangesSql(kTable, {"a", "b"}));
    EXPECT_TRUE(stmt.ok()) << stmt.status();
    stmt->BindInt64(1, after).IgnoreError();
    stmt->BindInt64(2, limit).IgnoreError();
    stmt->BindInt64(3, shard).IgnoreError();
    while (*stmt->Step()) {
      EXPECT_EQ(stmt->ColumnInt64(1), shard);
      out.emplace_back(stmt->ColumnInt64(0), stmt->ColumnInt64(2));
    }
    return out;
  };
  auto first = read(1, 0, 1);
  ASSERT_EQ(first.size(), 1u) << "the limit counts this shard's changes";
  EXPECT_EQ(first[0].second, 1);
  auto shard_one = read(1, 0, 100);
  ASSERT_EQ(shard_one.size(), 2u);
  EXPECT_EQ(shard_one[1].second, 3);
  EXPECT_EQ(read(1, shard_one[0].first, 100).size(), 1u);
  // Trimming shard 1 up to its last change keeps shard 2's earlier ones.
  auto trim = db_->Prepare(TrimShardChangesSql(kTable));
  ASSERT_TRUE(trim.ok());
  trim->BindInt64(1, shard_one[1].first).IgnoreError();
  trim->BindInt64(2, 1).IgnoreError();
  ASSERT_TRUE(trim->Run().ok());
  EXPECT_TRUE(read(1, 0, 100).empty());
  auto shard_two = read(2, 0, 100);
  ASSERT_EQ(shard_two.size(), 2u);
  EXPECT_LT(shard_two[0].first, shard_one[1].first);
  EXPECT_EQ(Changes().size(), 2u);
}

TEST_F(ChangeCaptureTest, TheFenceFailsBatchesOfStaleAttempts) {
  Run({CreateFenceSql(kTable)});
  auto raise = [&](int64_t attempt) {
    auto stmt = db_->Prepare(RaiseFenceSql(kTable));
    ASSERT_TRUE(stmt.ok());
    stmt->BindInt64(1, 3).IgnoreError();
    stmt->BindInt64(2, attempt).IgnoreError();
    ASSERT_TRUE(stmt->Run().ok());
  };
  auto guard = [&](int64_t attempt) {
    auto stmt = db_->Prepare(FenceGuardSql(kTable));
    EXPECT_TRUE(stmt.ok());
    stmt->BindInt64(1, 3).IgnoreError();
    stmt->BindInt64(2, attempt).IgnoreError();
    return stmt->Step().status();
  };
  EXPECT_FALSE(guard(1).ok()) << "no fence yet: nobody may write";
  raise(2);
  EXPECT_TRUE(guard(2).ok());
  EXPECT_FALSE(guard(1).ok());
  raise(1);  // never lowered
  EXPECT_FALSE(guard(1).ok());
  EXPECT_TRUE(guard(2).ok());
  raise(kFenceClosed);
  EXPECT_FALSE(guard(2).ok()) << "closed for every attempt";
  Run({DropFenceSql(kTable), DropFenceSql(kTable)});
}

}  // namespace
}  // namespace conductor::shard_copy
