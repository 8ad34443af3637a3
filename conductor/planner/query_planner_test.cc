#include "conductor/planner/query_planner.h"

#include "common/errors.h"
#include "gtest/gtest.h"

namespace conductor {
namespace {

class QueryPlannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    snapshot_.nodes = {{"n1", "a:1"}, {"n2", "a:2"}};
    table_.table_id = 1;
    table_.name = "users";
    table_.state = TableState::kActive;
    table_.primary_key = {"id"};
    table_.shard_key = "id";
    table_.user_sql = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)";
    table_.columns = {{"id", "INTEGER", false, "", 1},
                      {"name", "TEXT", false, "", 0},
                      {"age", "INTEGER", false, "", 0}};
    for (int i = 0; i < 4; ++i) {
      table_.shards.push_back({i, i % 2 == 0 ? "n1" : "n2", shard_status::kActive});
    }
  }

  absl::StatusOr<QueryPlan> Plan(const std::string& sql, std::vector<Value> params = {},
                                 int64_t max_rows = -1) {
    auto statement = sql::AnalyzeDml(sql);
    if (!statement.ok()) return statement.status();
    return PlanQuery(*statement, &table_, snapshot_, params, nullptr, max_rows);
  }

  Snapshot snapshot_;
  TableMeta table_;
};

TEST_F(QueryPlannerTest, PointSelectTargetsTheOwningShardOnly) {
  auto plan = Plan("SELECT * FROM users WHERE id = ?", {IntegerValue(42)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->route, "shard_key");
  EXPECT_EQ(plan->merge, MergeKind::kPassThrough);
  ASSERT_EQ(plan->statements.size(), 1u);
  const ShardStatement& s = plan->statements[0];
  EXPECT_EQ(s.shard_id, OwningShard(table_, IntegerValue(42))->shard_id);
  EXPECT_EQ(s.sql,
            "SELECT \"id\", \"name\", \"age\" FROM users WHERE _virtualShard = ?2 AND (id = ?1)");
  ASSERT_EQ(s.params.size(), 2u);
  EXPECT_EQ(s.params[1].integer(), s.shard_id);
}

TEST_F(QueryPlannerTest, AffinityMakesTextAndIntegerKeysRouteTheSame) {
  for (int key = 0; key < 50; ++key) {
    auto as_int = Plan("SELECT name FROM users WHERE id = ?", {IntegerValue(key)});
    auto as_text = Plan("SELECT name FROM users WHERE id = ?", {TextValue(std::to_string(key))});
    auto literal = Plan("SELECT name FROM users WHERE '" + std::to_string(key) + "' = id");
    ASSERT_TRUE(as_int.ok() && as_text.ok() && literal.ok());
    EXPECT_EQ(as_int->statements[0].shard_id, as_text->statements[0].shard_id);
    EXPECT_EQ(as_int->statements[0].shard_id, literal->statements[0].shard_id);
  }
}

TEST_F(QueryPlannerTest, InListTargetsTheOwningShards) {
  auto plan = Plan("SELECT name FROM users WHERE age > 3 AND id IN (1, 2, 3, 4, 5, 6, 7, 8)");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->route, "shard_key");
  std::set<int32_t> expected;
  for (int k = 1; k <= 8; ++k) expected.insert(OwningShard(table_, IntegerValue(k))->shard_id);
  std::set<int32_t> got;
  for (const auto& s : plan->statements) got.insert(s.shard_id);
  EXPECT_EQ(got, expected);
}

TEST_F(QueryPlannerTest, NonKeyFilterScattersAndConcatenates) {
  auto plan = Plan("SELECT name FROM users WHERE age = 3 LIMIT 5 OFFSET 2");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->route, "scatter");
  EXPECT_EQ(plan->merge, MergeKind::kConcat);
  EXPECT_EQ(plan->statements.size(), 4u);
  EXPECT_EQ(plan->limit, 5);
  EXPECT_EQ(plan->offset, 2);
  EXPECT_NE(plan->statements[0].sql.find("LIMIT 7"), std::string::npos) << plan->statements[0].sql;
}

TEST_F(QueryPlannerTest, MaxResponseRowsCapsWhatEachShardReturns) {
  // No LIMIT: each shard returns at most max_rows + 1 rows, enough to tell
  // that the answer is over the limit.
  auto plan = Plan("SELECT name FROM users WHERE age = 3", {}, 100);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->merge, MergeKind::kConcat);
  EXPECT_EQ(plan->limit, -1);
  EXPECT_EQ(plan->statements[0].sql,
            "SELECT name FROM users WHERE _virtualShard = ?1 AND (age = 3) LIMIT 101");
  // OFFSET counts; a smaller LIMIT wins; a larger one is capped.
  plan = Plan("SELECT name FROM users ORDER BY age LIMIT -1 OFFSET 10", {}, 100);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->merge, MergeKind::kSort);
  EXPECT_NE(plan->statements[0].sql.find("LIMIT 111"), std::string::npos);
  EXPECT_EQ(plan->offset, 10);
  plan = Plan("SELECT name FROM users LIMIT 5 OFFSET 2", {}, 100);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_NE(plan->statements[0].sql.find("LIMIT 7"), std::string::npos);
  plan = Plan("SELECT name FROM users LIMIT 5000", {}, 100);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_NE(plan->statements[0].sql.find("LIMIT 101"), std::string::npos);
  EXPECT_EQ(plan->limit, 5000);
  // A trailing comment does not swallow the added clause.
  plan = Plan("SELECT name FROM users -- all of them", {}, 100);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_NE(plan->statements[0].sql.find("LIMIT 101"), std::string::npos);
  EXPECT_EQ(plan->statements[0].sql.find("--"), std::string::npos) << plan->statements[0].sql;
}

TEST_F(QueryPlannerTest, OrderByLimitIsPushedDownAndMergedBySortKeys) {
  auto plan = Plan("SELECT name AS n FROM users ORDER BY age DESC, n LIMIT ?", {IntegerValue(3)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->merge, MergeKind::kSort);
  const std::string& sql = plan->statements[0].sql;
  EXPECT_NE(sql.find("LIMIT 3"), std::string::npos) << sql;
  EXPECT_NE(sql.find("(age), (name)"), std::string::npos) << sql;
  ASSERT_EQ(plan->sort_keys.size(), 2u);
  EXPECT_EQ(plan->sort_keys[0].direction, "DESC");
  EXPECT_EQ(plan->limit, 3);
}

TEST_F(QueryPlannerTest, AggregatesArePushedAsPartials) {
  auto plan = Plan(
      "SELECT age, count(*), avg(id) FROM users WHERE name <> 'x' GROUP BY age "
      "HAVING count(*) > 1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->merge, MergeKind::kInMemory);
  EXPECT_EQ(plan->statements[0].sql,
            "SELECT \"age\", count(*), total(id), count(id) FROM users WHERE _virtualShard = ?1 "
            "AND (name <> 'x') GROUP BY age");
  EXPECT_EQ(plan->final_sql,
            "SELECT age, sum(\"__p0\") AS \"count(*)\", (total(\"__p1\") / sum(\"__p2\")) AS "
            "\"avg(id)\" FROM users  GROUP BY age HAVING sum(\"__p0\") > 1");
}

TEST_F(QueryPlannerTest, WhatCannotBePushedRunsOnAReplica) {
  for (const char* sql : {"SELECT count(DISTINCT age) FROM users", "SELECT DISTINCT age FROM users",
                          "SELECT name, max(age) FROM users GROUP BY age",
                          "SELECT id, row_number() OVER (ORDER BY id) FROM users"}) {
    auto plan = Plan(sql);
    ASSERT_TRUE(plan.ok()) << sql << ": " << plan.status();
    EXPECT_EQ(plan->merge, MergeKind::kInMemory) << sql;
    EXPECT_EQ(plan->final_sql, sql);
    // A replica has the columns' affinity and collation but no constraints:
    // UNIQUE holds per shard only, so rows of two shards may repeat a value.
    EXPECT_EQ(plan->merge_setup[0],
              "CREATE TABLE \"users\" (\"id\" INTEGER COLLATE BINARY, \"name\" TEXT COLLATE "
              "BINARY, \"age\" INTEGER COLLATE BINARY)");
  }
}

TEST_F(QueryPlannerTest, InsertGroupsRowsByShardAndNeedsTheKey) {
  auto plan = Plan("INSERT INTO users (id, name) VALUES (1, 'a'), (2, ?), (3, upper('c'))",
                   {TextValue("b")});
  ASSERT_TRUE(plan.ok()) << plan.status();
  size_t rows = 0;
  for (const auto& s : plan->statements) {
    EXPECT_NE(s.sql.find("(\"id\", \"name\", _virtualShard)"), std::string::npos) << s.sql;
    rows += s.params.size() / 3;
    // Every row in a statement belongs to that statement's shard.
    for (size_t i = 0; i < s.params.size(); i += 3) {
      EXPECT_EQ(OwningShard(table_, s.params[i])->shard_id, s.shard_id);
      EXPECT_EQ(s.params[i + 2].integer(), s.shard_id);
    }
  }
  EXPECT_EQ(rows, 3u);

  auto missing = Plan("INSERT INTO users (name) VALUES ('x')");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorReason(missing.status()), "SHARD_KEY_REQUIRED");
  auto null_key = Plan("INSERT INTO users VALUES (NULL, 'x', 1)");
  EXPECT_EQ(ErrorReason(null_key.status()), "SHARD_KEY_REQUIRED");
  auto wide = Plan("INSERT INTO users VALUES (1, 'x')");
  EXPECT_EQ(wide.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(QueryPlannerTest, UpsertTailKeepsItsParameters) {
  auto plan = Plan(
      "INSERT INTO users (id, name) VALUES (?, 'a') ON CONFLICT (id) DO UPDATE SET "
      "name = ? RETURNING *",
      {IntegerValue(5), TextValue("z")});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->statements.size(), 1u);
  const auto& s = plan->statements[0];
  EXPECT_EQ(s.sql,
            "INSERT INTO \"users\" (\"id\", \"name\", _virtualShard) VALUES (?3, ?4, ?5) "
            "ON CONFLICT (_virtualShard, id) DO UPDATE SET name = ?2 RETURNING \"id\", \"name\", "
            "\"age\"");
  ASSERT_EQ(s.params.size(), 5u);
  EXPECT_EQ(s.params[1].text(), "z");
  EXPECT_EQ(s.params[2].integer(), 5);
}

TEST_F(QueryPlannerTest, UpdatesMayNotMoveRowsBetweenShards) {
  auto plan = Plan("UPDATE users SET id = 5 WHERE id = 4");
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  auto ok = Plan("UPDATE users SET age = age + 1 WHERE id = 4 RETURNING *");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->statements.size(), 1u);
  EXPECT_EQ(ok->statements[0].sql,
            "UPDATE users SET age = age + 1 WHERE _virtualShard = ?1 AND (id = 4) RETURNING "
            "\"id\", \"name\", \"age\"");
  auto all = Plan("DELETE FROM users");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->statements.size(), 4u);
  EXPECT_EQ(all->statements[0].sql, "DELETE FROM users WHERE _virtualShard = ?1 ");
}

TEST_F(QueryPlannerTest, ParameterCountMustMatch) {
  auto plan = Plan("SELECT * FROM users WHERE id = ?");
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(QueryPlannerTest, PlainParametersAreNumberedBeforeTheShardFilterIsInjected) {
  auto plan =
      Plan("SELECT name FROM users WHERE age = ? LIMIT ?", {IntegerValue(1), IntegerValue(2)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->statements[0].sql,
            "SELECT name FROM users WHERE _virtualShard = ?3 AND (age = ?1) LIMIT 2");
}

}  // namespace
}  // namespace conductor
