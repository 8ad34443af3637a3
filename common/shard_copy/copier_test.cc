#include "common/shard_copy/copier.h"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/routing.h"
#include "common/shard_copy/change_capture.h"
#include "common/sqlite.h"
#include "gtest/gtest.h"

namespace conductor::shard_copy {
namespace {

using conductor::v1::Value;
using storage::v1::ExecuteBatchRequest;
using storage::v1::ExecuteBatchResponse;
using ::testing::TestWithParam;
using ::testing::Values;

using Row = std::vector<Value>;
// Rows rendered exactly (storage class and contents), as a multiset.
using RowSet = std::multiset<std::string>;

// ---------------------------------------------------------------------------
// Exact rendering of values and rows.

std::string Render(const Value& value) {
  switch (value.kind_case()) {
    case Value::kInteger:
      return absl::StrCat(value.integer());
    case Value::kReal:
      return absl::StrFormat("%ar", value.real());  // hex: every bit shows
    case Value::kText: {
      std::string out = "'";
      for (unsigned char c : value.text()) {
        if (c == '\'' || c == '\\' || c < 0x20 || c >= 0x7f) {
          absl::StrAppendFormat(&out, "\\x%02x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
      }
      return out + "'";
    }
    case Value::kBlob: {
      static constexpr char kHex[] = "0123456789abcdef";
      std::string out = "x'";
      out.reserve(value.blob().size() * 2 + 3);
      for (unsigned char c : value.blob()) {
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
      }
      return out + "'";
    }
    default:
      return "NULL";
  }
}

std::string Render(const Row& row) {
  std::vector<std::string> values;
  for (const Value& value : row) values.push_back(Render(value));
  return absl::StrCat("(", absl::StrJoin(values, ", "), ")");
}

// ---------------------------------------------------------------------------
// Fake storage nodes: one SQLite database each, running batches the way
// storage_node/batch_runner.cc does (one transaction per batch; read_only
// batches refuse writes), with SQLite's default parameter limit enforced, the
// writer's recursive_triggers on, and every statement's query plan recorded.

struct NodeStats {
  int read_batches = 0;
  int write_batches = 0;
  int statements = 0;
  int max_parameters = 0;  // in one statement
  int64_t max_request_bytes = 0;
};

class FakeCluster {
 public:
  // A node whose database holds `schema`.
  Database& AddNode(const std::string& name, const std::vector<std::string>& schema) {
    auto db = Database::Open(":memory:");
    EXPECT_TRUE(db.ok()) << db.status();
    Database& ref = **db;
    EXPECT_TRUE(ref.Exec("PRAGMA recursive_triggers = ON").ok());
    sqlite3_limit(ref.handle(), SQLITE_LIMIT_VARIABLE_NUMBER, kMaxSqlParameters);
    for (const std::string& sql : schema) EXPECT_TRUE(ref.Exec(sql).ok()) << sql;
    nodes_[name] = std::move(*db);
    return ref;
  }

  Database& db(const std::string& node) { return *nodes_.at(node); }
  const std::map<std::string, std::unique_ptr<Database>>& nodes() const { return nodes_; }

  NodeExecutor executor() {
    return [this](const std::string& node, const ExecuteBatchRequest& request) {
      return Execute(node, request);
    };
  }

  absl::StatusOr<ExecuteBatchResponse> Execute(const std::string& node,
                                               const ExecuteBatchRequest& request) {
    auto it = nodes_.find(node);
    if (it == nodes_.end()) return absl::UnavailableError(absl::StrCat("no node ", node));
    if (fail) {
      if (absl::Status s = fail(node, request); !s.ok()) return s;
    }
    if (request.statements().empty()) return absl::InvalidArgumentError("empty batch");
    NodeStats& s = stats[node];
    ++(request.read_only() ? s.read_batches : s.write_batches);
    s.statements += request.statements_size();
    s.max_request_bytes =
        std::max(s.max_request_bytes, static_cast<int64_t>(request.ByteSizeLong()));
    batches.push_back({node, request});
    Database& db = *it->second;
    if (auto s = db.Exec(request.read_only() ? "BEGIN" : "BEGIN IMMEDIATE"); !s.ok()) return s;
    ExecuteBatchResponse response;
    absl::Status status;
    for (const storage::v1::Statement& statement : request.statements()) {
      status = RunStatement(node, db, statement, request.read_only(), response.add_results());
      if (!status.ok()) break;
    }
    if (status.ok() && !request.read_only()) status = db.Exec("COMMIT");
    if (sqlite3_get_autocommit(db.handle()) == 0) db.Exec("ROLLBACK").IgnoreError();
    if (!status.ok()) return status;
    if (max_response_bytes > 0 &&
        static_cast<int64_t>(response.ByteSizeLong()) > max_response_bytes) {
      return absl::ResourceExhaustedError("the response would exceed the limit");
    }
    return response;
  }

  // Query plan lines (EXPLAIN QUERY PLAN "detail") of every statement run,
  // with the statement.
  struct Plan {
    std::string sql;
    std::string detail;
  };
  std::vector<Plan> plans;
  // Plan lines that read a whole table (or a whole shard of it) row by row.
  std::vector<std::string> FullScans() const {
    std::vector<std::string> out;
    for (const Plan& plan : plans) {
      if (!absl::StartsWith(plan.detail, "SCAN ")) continue;
      if (absl::StrContains(plan.detail, "CONSTANT ROW") ||
          absl::StrContains(plan.detail, "VALUES CLAUSE") ||
          absl::StrContains(plan.detail, "_conductor_keys") ||
          // One row per captured shard.
          absl::StrContains(plan.detail, "_conductor_counts_")) {
        continue;
      }
      out.push_back(absl::StrCat(plan.detail, "   <- ", plan.sql.substr(0, 200)));
    }
    return out;
  }

  std::map<std::string, NodeStats> stats;
  std::vector<std::pair<std::string, ExecuteBatchRequest>> batches;
  // The node's response size limit (0: none), as BatchLimits.
  int64_t max_response_bytes = 0;
  // Fault injection: a non-OK status fails the batch before it runs.
  std::function<absl::Status(const std::string& node, const ExecuteBatchRequest&)> fail;

 private:
  absl::Status RunStatement(const std::string& node, Database& db,
                            const storage::v1::Statement& request, bool read_only,
                            storage::v1::StatementResult* result) {
    NodeStats& s = stats[node];
    s.max_parameters = std::max(s.max_parameters, request.params_size());
    if (request.params_size() > kMaxSqlParameters) {
      return absl::InvalidArgumentError(
          absl::StrCat(request.params_size(), " parameters: too many SQL variables"));
    }
    std::vector<Value> params(request.params().begin(), request.params().end());
    {
      auto explain = db.Prepare(absl::StrCat("EXPLAIN QUERY PLAN ", request.sql()));
      if (!explain.ok()) return explain.status();
      if (auto st = explain->BindAll(params); !st.ok()) return st;
      while (true) {
        auto row = explain->Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        plans.push_back({request.sql(), explain->ColumnText(3)});
      }
    }
    auto statement = db.Prepare(request.sql());
    if (!statement.ok()) return statement.status();
    if (read_only && !statement->ReadOnly()) {
      return absl::FailedPreconditionError("a read_only batch cannot write");
    }
    if (statement->ParameterCount() != request.params_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the statement has ", statement->ParameterCount(),
                       " parameters, the request binds ", request.params_size()));
    }
    if (auto st = statement->BindAll(params); !st.ok()) return st;
    for (int i = 0; i < statement->ColumnCount(); ++i) {
      result->add_columns(statement->ColumnName(i));
    }
    const int64_t before = sqlite3_total_changes64(db.handle());
    while (true) {
      auto row = statement->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      conductor::v1::Row* out = result->add_rows();
      for (int i = 0; i < statement->ColumnCount(); ++i) {
        *out->add_values() = statement->ColumnValue(i);
      }
    }
    if (!statement->ReadOnly() && sqlite3_total_changes64(db.handle()) != before) {
      result->set_rows_affected(sqlite3_changes64(db.handle()));
    }
    return absl::OkStatus();
  }

  std::map<std::string, std::unique_ptr<Database>> nodes_;
};

// ---------------------------------------------------------------------------
// Direct access to a node's database (what the conductor's writes and
// ScanShard do; not through the copier).

void Exec(Database& db, const std::string& sql, const std::vector<Value>& params = {}) {
  auto statement = db.Prepare(sql);
  ASSERT_TRUE(statement.ok()) << sql << ": " << statement.status();
  ASSERT_TRUE(statement->BindAll(params).ok()) << sql;
  absl::Status s = statement->Run();
  ASSERT_TRUE(s.ok()) << sql << ": " << s;
}

std::vector<Row> Query(Database& db, const std::string& sql, const std::vector<Value>& params) {
  std::vector<Row> rows;
  auto statement = db.Prepare(sql);
  EXPECT_TRUE(statement.ok()) << sql << ": " << statement.status();
  if (!statement.ok()) return rows;
  EXPECT_TRUE(statement->BindAll(params).ok()) << sql;
  while (true) {
    auto has_row = statement->Step();
    EXPECT_TRUE(has_row.ok()) << sql << ": " << has_row.status();
    if (!has_row.ok() || !*has_row) break;
    Row row;
    for (int i = 0; i < statement->ColumnCount(); ++i) row.push_back(statement->ColumnValue(i));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string Columns(const std::vector<std::string>& columns) {
  std::vector<std::string> quoted;
  for (const std::string& column : columns) quoted.push_back(QuoteIdentifier(column));
  return absl::StrJoin(quoted, ", ");
}

// The rows of one shard (`columns`, default the layout's), in key order.
std::vector<Row> ShardRows(FakeCluster& cluster, const TableLayout& layout,
                           const ShardOnNode& shard, const std::vector<std::string>& columns = {}) {
  return Query(cluster.db(shard.node),
               absl::StrCat("SELECT ", Columns(columns.empty() ? layout.columns : columns),
                            " FROM ", QuoteIdentifier(layout.table),
                            " WHERE _virtualShard = ?1 ORDER BY ", Columns(layout.primary_key)),
               {IntegerValue(shard.shard_id)});
}

RowSet RowsOf(FakeCluster& cluster, const TableLayout& layout,
              const std::vector<ShardOnNode>& shards,
              const std::vector<std::string>& columns = {}) {
  RowSet set;
  for (const ShardOnNode& shard : shards) {
    for (const Row& row : ShardRows(cluster, layout, shard, columns)) set.insert(Render(row));
  }
  return set;
}

int Position(const std::vector<std::string>& names, const std::string& name) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<int>(i);
  }
  ADD_FAILURE() << name << " not found";
  return 0;
}

// The routing function, spelled out (not through the copier).
int RouteIndex(const TableLayout& layout, const Value& value, int n) {
  return routing::ShardIndex(
      routing::RoutingHash(value, routing::AffinityOf(layout.shard_key_type)), n);
}

// Shards `first_id`, `first_id`+1, … spread round-robin over `nodes`.
std::vector<ShardOnNode> Shards(int count, int first_id, const std::vector<std::string>& nodes) {
  std::vector<ShardOnNode> shards;
  for (int i = 0; i < count; ++i) {
    shards.push_back({first_id + i, nodes[i % nodes.size()]});
  }
  return shards;
}

// Every row of every target is on the target the routing function names.
void ExpectRoutedCorrectly(FakeCluster& cluster, const TableLayout& layout,
                           const std::vector<TargetShard>& targets) {
  const int key = Position(layout.columns, layout.shard_key);
  for (size_t t = 0; t < targets.size(); ++t) {
    for (const Row& row : ShardRows(cluster, layout, targets[t])) {
      EXPECT_EQ(RouteIndex(layout, row[key], static_cast<int>(targets.size())), static_cast<int>(t))
          << Render(row) << " is on target shard " << targets[t].shard_id;
    }
  }
}

// Copies a source shard the way a ReshardTableJob does: key-ordered blocks
// (ScanShard), each applied with ApplyRows; `between_blocks` runs after each.
void Copy(FakeCluster& cluster, const TableLayout& layout, const SourceShard& source,
          const std::vector<TargetShard>& targets, int block_size,
          const std::function<void()>& between_blocks = nullptr) {
  // Each block is read when the scan gets there (after the last key copied),
  // so writes between blocks show as they would on the node.
  std::vector<int> key_positions;
  for (const std::string& column : layout.primary_key) {
    key_positions.push_back(Position(layout.columns, column));
  }
  std::vector<Value> last_key;
  while (true) {
    std::string sql = absl::StrCat("SELECT ", Columns(layout.columns), " FROM ",
                                   QuoteIdentifier(layout.table), " WHERE _virtualShard = ?1");
    std::vector<Value> params = {IntegerValue(source.shard_id)};
    if (!last_key.empty()) {
      std::vector<std::string> holes;
      for (size_t i = 0; i < last_key.size(); ++i) holes.push_back(absl::StrCat("?", i + 2));
      absl::StrAppend(&sql, " AND (", Columns(layout.primary_key), ") > (",
                      absl::StrJoin(holes, ", "), ")");
      params.insert(params.end(), last_key.begin(), last_key.end());
    }
    absl::StrAppend(&sql, " ORDER BY ", Columns(layout.primary_key), " LIMIT ", block_size);
    std::vector<Row> block = Query(cluster.db(source.node), sql, params);
    if (block.empty()) break;
    auto written = ApplyRows(layout, targets, block, cluster.executor());
    ASSERT_TRUE(written.ok()) << written.status();
    EXPECT_EQ(*written, static_cast<int64_t>(block.size()));
    last_key.clear();
    for (int position : key_positions) last_key.push_back(block.back()[position]);
    if (between_blocks) between_blocks();
    if (static_cast<int>(block.size()) < block_size) break;
  }
}

struct CatchUpTotals {
  int passes = 0;
  int64_t last_seq = 0;
  int64_t changes = 0;
  int64_t upserted = 0;
  int64_t deleted = 0;
};

// CatchUpOnce until a pass finds nothing.
CatchUpTotals CatchUpUntilEmpty(FakeCluster& cluster, const TableLayout& layout,
                                const SourceShard& source, const std::vector<TargetShard>& targets,
                                int max_changes, int64_t after_seq = 0) {
  CatchUpTotals totals;
  totals.last_seq = after_seq;
  for (int pass = 0; pass < 100000; ++pass) {
    auto result =
        CatchUpOnce(layout, source, targets, totals.last_seq, max_changes, cluster.executor());
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) break;
    ++totals.passes;
    if (result->changes == 0) {
      EXPECT_EQ(result->last_seq, totals.last_seq) << "a pass with nothing to do";
      break;
    }
    EXPECT_GT(result->last_seq, totals.last_seq);
    EXPECT_LE(result->changes, max_changes);
    totals.last_seq = result->last_seq;
    totals.changes += result->changes;
    totals.upserted += result->upserted;
    totals.deleted += result->deleted;
  }
  return totals;
}

int64_t PendingChanges(FakeCluster& cluster, const TableLayout& layout, const SourceShard& source) {
  auto rows = Query(cluster.db(source.node),
                    absl::StrCat("SELECT count(*) FROM ",
                                 QuoteIdentifier(ChangesTable(layout.table)), " WHERE shard = ?1"),
                    {IntegerValue(source.shard_id)});
  return rows.empty() ? -1 : rows[0][0].integer();
}

void EnableCapture(FakeCluster& cluster, const TableLayout& layout,
                   const std::vector<SourceShard>& sources) {
  std::map<std::string, std::vector<int32_t>> ids_by_node;
  for (const SourceShard& source : sources) ids_by_node[source.node].push_back(source.shard_id);
  for (const auto& [node, ids] : ids_by_node) {
    for (const std::string& sql : EnableCaptureSql(layout.table, layout.primary_key, ids)) {
      Exec(cluster.db(node), sql);
    }
  }
}

// ---------------------------------------------------------------------------
// TargetFor

TEST(TargetForTest, IsTheRoutingFunctionOverTheTargets) {
  TableLayout layout{"t", {"k"}, {"k"}, "k", "INTEGER"};
  const std::vector<Value> values = {IntegerValue(0),      IntegerValue(-7),
                                     IntegerValue(123456), TextValue("abc"),
                                     RealValue(2.5),       BlobValue(std::string("\0\1", 2))};
  for (int n : {1, 2, 3, 4, 8, 256}) {
    std::vector<TargetShard> targets = Shards(n, 10, {"a"});
    for (const Value& value : values) {
      for (const char* type : {"INTEGER", "TEXT", "", "REAL", "NUMERIC"}) {
        layout.shard_key_type = type;
        EXPECT_EQ(TargetFor(layout, targets, value),
                  routing::ShardIndex(routing::RoutingHash(value, routing::AffinityOf(type)), n))
            << Render(value) << " " << type << " n=" << n;
      }
    }
  }
  // The declared type's affinity counts: 1 and '1' are one INTEGER value.
  layout.shard_key_type = "BIGINT";
  std::vector<TargetShard> targets = Shards(64, 1, {"a"});
  int same = 0;
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(TargetFor(layout, targets, IntegerValue(i)),
              TargetFor(layout, targets, TextValue(absl::StrCat(" ", i, " "))));
  }
  // Without affinity (BLOB) they are different values, routed independently.
  layout.shard_key_type = "BLOB";
  for (int i = 0; i < 50; ++i) {
    same += TargetFor(layout, targets, IntegerValue(1000 + i)) ==
            TargetFor(layout, targets, TextValue(absl::StrCat(" ", 1000 + i, " ")));
  }
  EXPECT_LT(same, 10);
}

// ---------------------------------------------------------------------------
// Routing of a whole copy: 1→4, 4→8, 8→3.

constexpr char kPlainTable[] =
    "CREATE TABLE t (id INTEGER NOT NULL, name TEXT, score REAL, data BLOB, extra, "
    "_virtualShard INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (_virtualShard, id))";

TableLayout PlainLayout() {
  return TableLayout{"t", {"id", "name", "score", "data", "extra"}, {"id"}, "id", "INTEGER"};
}

Row PlainRow(int64_t id) {
  return {IntegerValue(id), TextValue(absl::StrCat("name-", id)), RealValue(id / 8.0),
          BlobValue(std::string("\0b", 2) + std::to_string(id)),
          id % 3 == 0 ? NullValue() : IntegerValue(id * 7)};
}

// Writes `row` to the source shard that owns it.
void InsertIntoSource(FakeCluster& cluster, const TableLayout& layout,
                      const std::vector<SourceShard>& sources, const Row& row) {
  const int key = Position(layout.columns, layout.shard_key);
  const SourceShard& source =
      sources[RouteIndex(layout, row[key], static_cast<int>(sources.size()))];
  std::vector<std::string> holes;
  for (size_t i = 0; i < row.size() + 1; ++i) holes.push_back(absl::StrCat("?", i + 1));
  std::vector<Value> params = row;
  params.push_back(IntegerValue(source.shard_id));
  Exec(cluster.db(source.node),
       absl::StrCat("INSERT INTO ", QuoteIdentifier(layout.table), " (", Columns(layout.columns),
                    ", _virtualShard) VALUES (", absl::StrJoin(holes, ", "), ")"),
       params);
}

class RoutingLayoutTest : public TestWithParam<std::pair<int, int>> {};

TEST_P(RoutingLayoutTest, EveryRowLandsOnTheTargetTheRoutingFunctionNames) {
  const auto [n, m] = GetParam();
  const TableLayout layout = PlainLayout();
  FakeCluster cluster;
  const std::vector<std::string> nodes = {"n0", "n1", "n2"};
  for (const std::string& node : nodes) cluster.AddNode(node, {kPlainTable});
  // Sources and targets share the nodes, as they do when targets go to the
  // least-loaded nodes.
  const std::vector<SourceShard> sources = Shards(n, 1, nodes);
  const std::vector<TargetShard> targets = Shards(m, n + 1, {"n2", "n1", "n0"});
  for (int64_t id = 0; id < 800; ++id) {
    InsertIntoSource(cluster, layout, sources, PlainRow(id * 7919 - 40000));
  }
  for (const SourceShard& source : sources) {
    cluster.stats.clear();
    std::vector<Row> rows = ShardRows(cluster, layout, source);
    ASSERT_FALSE(rows.empty()) << "source shard " << source.shard_id;
    auto written = ApplyRows(layout, targets, rows, cluster.executor());
    ASSERT_TRUE(written.ok()) << written.status();
    EXPECT_EQ(*written, static_cast<int64_t>(rows.size()));
    // One write batch per target node, nothing else.
    for (const auto& [node, stats] : cluster.stats) {
      EXPECT_EQ(stats.write_batches, 1) << node;
      EXPECT_EQ(stats.read_batches, 0) << node;
    }
  }

  ExpectRoutedCorrectly(cluster, layout, targets);
  EXPECT_EQ(RowsOf(cluster, layout, targets), RowsOf(cluster, layout, sources));
  EXPECT_EQ(RowsOf(cluster, layout, targets).size(), 800u);
  // Each source row is on exactly one target, and on the one the routing
  // function names; when m == 2n, that target is one of the two halves of
  // the row's source shard.
  std::multimap<std::string, int> target_of;  // rendered row → target index
  for (size_t i = 0; i < targets.size(); ++i) {
    for (const Row& row : ShardRows(cluster, layout, targets[i])) {
      target_of.emplace(Render(row), static_cast<int>(i));
    }
  }
  for (size_t s = 0; s < sources.size(); ++s) {
    for (const Row& row : ShardRows(cluster, layout, sources[s])) {
      const int t = RouteIndex(layout, row[0], m);
      ASSERT_EQ(target_of.count(Render(row)), 1u) << Render(row);
      EXPECT_EQ(target_of.find(Render(row))->second, t) << Render(row);
      if (m == 2 * n) {
        EXPECT_EQ(t / 2, static_cast<int>(s)) << Render(row);
      }
    }
  }
  // Every target got rows (800 rows over at most 8 shards).
  for (const TargetShard& target : targets) {
    EXPECT_FALSE(ShardRows(cluster, layout, target).empty()) << target.shard_id;
  }
  EXPECT_TRUE(cluster.FullScans().empty()) << absl::StrJoin(cluster.FullScans(), "\n");
}

INSTANTIATE_TEST_SUITE_P(Layouts, RoutingLayoutTest,
                         Values(std::make_pair(1, 4), std::make_pair(4, 8), std::make_pair(8, 3)),
                         [](const auto& info) {
                           return absl::StrCat(info.param.first, "to", info.param.second);
                         });

// ---------------------------------------------------------------------------
// ApplyRows

TEST(ApplyRowsTest, IsIdempotentAndNewerVersionsWin) {
  const TableLayout layout = PlainLayout();
  FakeCluster cluster;
  cluster.AddNode("a", {kPlainTable});
  cluster.AddNode("b", {kPlainTable});
  const std::vector<TargetShard> targets = {{5, "a"}, {6, "b"}, {9, "a"}};
  std::vector<Row> rows;
  for (int64_t id = 0; id < 300; ++id) rows.push_back(PlainRow(id));
  auto executor = cluster.executor();
  ASSERT_TRUE(ApplyRows(layout, targets, rows, executor).ok());
  const RowSet once = RowsOf(cluster, layout, targets);
  ASSERT_EQ(once.size(), 300u);
  ASSERT_TRUE(ApplyRows(layout, targets, rows, executor).ok());
  std::vector<Row> some(rows.begin() + 100, rows.begin() + 150);
  ASSERT_TRUE(ApplyRows(layout, targets, some, executor).ok());
  EXPECT_EQ(RowsOf(cluster, layout, targets), once);

  // A newer version of a row replaces the older one (no duplicate).
  std::vector<Row> newer = {PlainRow(7)};
  newer[0][1] = TextValue("renamed");
  newer[0][4] = RealValue(-0.0);
  ASSERT_TRUE(ApplyRows(layout, targets, newer, executor).ok());
  RowSet expected = once;
  expected.erase(expected.find(Render(PlainRow(7))));
  expected.insert(Render(newer[0]));
  EXPECT_EQ(RowsOf(cluster, layout, targets), expected);

  // Nothing to write: no batch at all.
  cluster.stats.clear();
  auto none = ApplyRows(layout, targets, {}, executor);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);
  EXPECT_TRUE(cluster.stats.empty());
  ExpectRoutedCorrectly(cluster, layout, targets);
}

TEST(ApplyRowsTest, RefusesWhatCannotBeRoutedAndWritesNothing) {
  const TableLayout layout = PlainLayout();
  FakeCluster cluster;
  cluster.AddNode("a", {kPlainTable});
  const std::vector<TargetShard> targets = {{1, "a"}, {2, "a"}};
  auto executor = cluster.executor();

  std::vector<Row> rows = {PlainRow(1), PlainRow(2)};
  rows[1][0] = NullValue();
  auto status = ApplyRows(layout, targets, rows, executor).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "NULL shard key")) << status;

  rows = {PlainRow(1), Row{IntegerValue(2)}};
  EXPECT_EQ(ApplyRows(layout, targets, rows, executor).status().code(),
            absl::StatusCode::kInvalidArgument);
  rows = {PlainRow(1)};
  EXPECT_EQ(ApplyRows(layout, {{2, "a"}, {1, "a"}}, rows, executor).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyRows(layout, {{1, "a"}, {1, "a"}}, rows, executor).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyRows(layout, {}, rows, executor).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(cluster.stats.empty()) << "nothing may be sent";
  EXPECT_TRUE(RowsOf(cluster, layout, targets).empty());

  // Invalid layouts.
  auto invalid = [&](TableLayout bad) {
    EXPECT_FALSE(ValidateLayout(bad).ok());
    return ApplyRows(bad, targets, {}, executor).status().code();
  };
  TableLayout bad = layout;
  bad.shard_key = "name";  // not a key column
  EXPECT_EQ(invalid(bad), absl::StatusCode::kInvalidArgument);
  bad = layout;
  bad.primary_key = {"id", "nope"};
  EXPECT_EQ(invalid(bad), absl::StatusCode::kInvalidArgument);
  bad = layout;
  bad.primary_key = {};
  EXPECT_EQ(invalid(bad), absl::StatusCode::kInvalidArgument);
  bad = layout;
  bad.columns.push_back("_VIRTUALSHARD");
  EXPECT_EQ(invalid(bad), absl::StatusCode::kInvalidArgument);
  bad = layout;
  bad.columns.push_back("NAME");
  EXPECT_EQ(invalid(bad), absl::StatusCode::kInvalidArgument);
  bad = layout;
  bad.table = "";
  EXPECT_EQ(invalid(bad), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateLayout(layout).ok());
  // Names are case-insensitive, as in SQL.
  bad = layout;
  bad.shard_key = "ID";
  EXPECT_TRUE(ValidateLayout(bad).ok());
}

TEST(ApplyRowsTest, ExecutorErrorsComeBackWithTheNode) {
  const TableLayout layout = PlainLayout();
  FakeCluster cluster;
  cluster.AddNode("a", {kPlainTable});
  cluster.AddNode("b", {kPlainTable});
  const std::vector<TargetShard> targets = {{1, "a"}, {2, "b"}};
  cluster.fail = [](const std::string& node, const ExecuteBatchRequest&) {
    return node == "b" ? absl::UnavailableError("connection refused") : absl::OkStatus();
  };
  std::vector<Row> rows;
  for (int64_t id = 0; id < 50; ++id) rows.push_back(PlainRow(id));
  auto status = ApplyRows(layout, targets, rows, cluster.executor()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "node b")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "connection refused")) << status;
  // A re-run once the node is back completes the write.
  cluster.fail = nullptr;
  ASSERT_TRUE(ApplyRows(layout, targets, rows, cluster.executor()).ok());
  EXPECT_EQ(RowsOf(cluster, layout, targets).size(), 50u);
}

// ---------------------------------------------------------------------------
// Catch-up under writes.

// A table with a composite key whose shard key is not first, and a second
// uniqueness (rewritten to lead with _virtualShard, as the conductor does).
constexpr char kAccounts[] =
    "CREATE TABLE \"acc ounts\" (id INTEGER NOT NULL, tenant TEXT NOT NULL, email TEXT, "
    "score REAL, payload BLOB, _virtualShard INTEGER NOT NULL DEFAULT 0, "
    "PRIMARY KEY (_virtualShard, id, tenant), UNIQUE (_virtualShard, email))";

TableLayout AccountsLayout() {
  return TableLayout{"acc ounts",
                     {"id", "tenant", "email", "score", "payload"},
                     {"id", "tenant"},
                     "tenant",
                     "TEXT"};
}

// Writes to the sources, as the conductor would route them: a random mix of
// inserts, updates (also of key columns), deletes, REPLACEs on the key and
// through the UNIQUE email, delete + re-insert in one transaction.
class SourceWriter {
 public:
  SourceWriter(FakeCluster* cluster, TableLayout layout, std::vector<SourceShard> sources,
               uint32_t seed)
      : cluster_(cluster), layout_(std::move(layout)), sources_(std::move(sources)), rng_(seed) {}

  std::string Tenant() { return absl::StrCat("tenant-", Uniform(40)); }
  const SourceShard& SourceOf(const std::string& tenant) {
    return sources_[RouteIndex(layout_, TextValue(tenant), static_cast<int>(sources_.size()))];
  }
  std::string FreshEmail() { return absl::StrCat("user", ++counter_, "@example.com"); }

  void Insert(int64_t id, const std::string& tenant, const char* verb = "INSERT") {
    const SourceShard& source = SourceOf(tenant);
    Exec(cluster_->db(source.node),
         absl::StrCat(verb, " INTO ", Table(),
                      " (id, tenant, email, score, payload, _virtualShard) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
         {IntegerValue(id), TextValue(tenant), TextValue(FreshEmail()),
          RealValue(Uniform(1000) / 7.0), BlobValue(std::string(Uniform(40), '\xfe')),
          IntegerValue(source.shard_id)});
  }

  // One random write.
  void Write() {
    const int op = Uniform(9);
    if (op <= 1) {
      Insert(++next_id_, Tenant());
      return;
    }
    // An existing row of a random source shard.
    const SourceShard& source = sources_[Uniform(sources_.size())];
    Database& db = cluster_->db(source.node);
    std::vector<Row> rows = Query(db,
                                  absl::StrCat("SELECT id, tenant, email FROM ", Table(),
                                               " WHERE _virtualShard = ?1 ORDER BY id, tenant"),
                                  {IntegerValue(source.shard_id)});
    if (rows.size() < 2) {
      Insert(++next_id_, Tenant());
      return;
    }
    const Row& row = rows[Uniform(rows.size())];
    const Row& other = rows[Uniform(rows.size())];
    const std::vector<Value> key = {IntegerValue(source.shard_id), row[0], row[1]};
    const std::string where = " WHERE _virtualShard = ?1 AND id = ?2 AND tenant = ?3";
    switch (op) {
      case 2:  // update non-key columns
        Exec(db, absl::StrCat("UPDATE ", Table(), " SET score = ?4, payload = ?5", where),
             Append(key, {RealValue(Uniform(100) - 50.5), BlobValue(absl::StrCat(Uniform(9)))}));
        break;
      case 3:  // update the UNIQUE column
        Exec(db, absl::StrCat("UPDATE ", Table(), " SET email = ?4", where),
             Append(key, {TextValue(FreshEmail())}));
        break;
      case 4:  // delete
        Exec(db, absl::StrCat("DELETE FROM ", Table(), where), key);
        break;
      case 5:  // REPLACE on the primary key
        Insert(row[0].integer(), row[1].text(), "INSERT OR REPLACE");
        break;
      case 6:  // REPLACE through the UNIQUE email: removes `other`
        Exec(
            db,
            absl::StrCat("INSERT OR REPLACE INTO ", Table(),
                         " (id, tenant, email, score, _virtualShard) VALUES (?1, ?2, ?3, 1.5, ?4)"),
            {IntegerValue(++next_id_), other[1], other[2], IntegerValue(source.shard_id)});
        break;
      case 7:  // change a key column (the id; the tenant, hence the shard, stays)
        Exec(db, absl::StrCat("UPDATE ", Table(), " SET id = ?4", where),
             Append(key, {IntegerValue(++next_id_)}));
        break;
      default:  // delete and re-insert the same key in one transaction
        ASSERT_TRUE(db.Exec("BEGIN IMMEDIATE").ok());
        Exec(db, absl::StrCat("DELETE FROM ", Table(), where), key);
        Exec(db,
             absl::StrCat("INSERT INTO ", Table(),
                          " (id, tenant, email, _virtualShard) VALUES (?2, ?3, ?4, ?1)"),
             Append(key, {TextValue(FreshEmail())}));
        ASSERT_TRUE(db.Exec("COMMIT").ok());
        break;
    }
  }

  int64_t next_id() const { return next_id_; }
  int64_t* mutable_next_id() { return &next_id_; }

 private:
  std::string Table() const { return QuoteIdentifier(layout_.table); }
  int Uniform(size_t n) { return static_cast<int>(rng_() % n); }
  static std::vector<Value> Append(std::vector<Value> a, const std::vector<Value>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  FakeCluster* cluster_;
  TableLayout layout_;
  std::vector<SourceShard> sources_;
  std::mt19937 rng_;
  int64_t counter_ = 0;
  int64_t next_id_ = 0;
};

class CatchUpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* node : {"n0", "n1", "n2"}) cluster_.AddNode(node, {kAccounts});
    // Two source shards share n0 (and its changes table).
    sources_ = {{1, "n0"}, {2, "n0"}, {3, "n1"}};
    targets_ = {{4, "n1"}, {5, "n2"}, {6, "n0"}, {7, "n2"}};
    writer_ = std::make_unique<SourceWriter>(&cluster_, layout_, sources_, 20240601);
    for (int i = 0; i < 400; ++i) writer_->Insert(writer_->next_id() + 1 + i, writer_->Tenant());
    *writer_->mutable_next_id() += 1000;
  }
  void TearDown() override {
    EXPECT_TRUE(cluster_.FullScans().empty()) << absl::StrJoin(cluster_.FullScans(), "\n");
  }

  void ExpectTargetsEqualSources() {
    const RowSet source_rows = RowsOf(cluster_, layout_, sources_);
    const RowSet target_rows = RowsOf(cluster_, layout_, targets_);
    EXPECT_EQ(target_rows.size(), source_rows.size());
    EXPECT_TRUE(target_rows == source_rows) << Diff(source_rows, target_rows);
    ExpectRoutedCorrectly(cluster_, layout_, targets_);
  }

  static std::string Diff(const RowSet& expected, const RowSet& actual) {
    std::vector<std::string> lines;
    for (const std::string& row : expected) {
      if (actual.count(row) != expected.count(row)) lines.push_back("source only: " + row);
    }
    for (const std::string& row : actual) {
      if (actual.count(row) != expected.count(row)) lines.push_back("target only: " + row);
    }
    if (lines.size() > 20) lines.resize(20);
    return absl::StrJoin(lines, "\n");
  }

  TableLayout layout_ = AccountsLayout();
  FakeCluster cluster_;
  std::vector<SourceShard> sources_;
  std::vector<TargetShard> targets_;
  std::unique_ptr<SourceWriter> writer_;
};

TEST_F(CatchUpTest, TargetsEqualTheSourcesAfterWritesDuringCopyAndCatchUp) {
  EnableCapture(cluster_, layout_, sources_);
  // Copy every source in blocks, writing between blocks.
  for (const SourceShard& source : sources_) {
    Copy(cluster_, layout_, source, targets_, 23, [this] {
      for (int i = 0; i < 5; ++i) writer_->Write();
    });
  }
  ASSERT_NE(RowsOf(cluster_, layout_, targets_), RowsOf(cluster_, layout_, sources_))
      << "the writes must have left the copy behind, or this test proves nothing";
  // Catch-up passes with writes going on.
  std::map<int32_t, int64_t> applied;
  for (int round = 0; round < 30; ++round) {
    for (const SourceShard& source : sources_) {
      auto result =
          CatchUpOnce(layout_, source, targets_, applied[source.shard_id], 7, cluster_.executor());
      ASSERT_TRUE(result.ok()) << result.status();
      EXPECT_GE(result->last_seq, applied[source.shard_id]);
      applied[source.shard_id] = result->last_seq;
      for (int i = 0; i < 3; ++i) writer_->Write();
    }
  }
  // Writes stop (the write gate): the last catch-up.
  int64_t deleted = 0;
  for (const SourceShard& source : sources_) {
    CatchUpTotals totals =
        CatchUpUntilEmpty(cluster_, layout_, source, targets_, 50, applied[source.shard_id]);
    deleted += totals.deleted;
    EXPECT_EQ(PendingChanges(cluster_, layout_, source), 0) << "applied changes are trimmed";
  }
  ExpectTargetsEqualSources();

  // The verification of the switch agrees.
  auto source_count = CountShards(layout_, sources_, cluster_.executor());
  auto target_count = CountShards(layout_, targets_, cluster_.executor());
  ASSERT_TRUE(source_count.ok() && target_count.ok());
  EXPECT_EQ(*source_count, *target_count);
  EXPECT_EQ(*source_count, static_cast<int64_t>(RowsOf(cluster_, layout_, sources_).size()));
  // The capture triggers' counters say the same, and know no target.
  auto counted = CountCapturedShards(layout_, sources_, cluster_.executor());
  ASSERT_TRUE(counted.ok()) << counted.status();
  EXPECT_EQ(*counted, *source_count);
  EXPECT_EQ(CountCapturedShards(layout_, targets_, cluster_.executor()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto source_sum = ChecksumShards(layout_, sources_, 10, cluster_.executor());
  auto target_sum = ChecksumShards(layout_, targets_, 10, cluster_.executor());
  ASSERT_TRUE(source_sum.ok() && target_sum.ok());
  EXPECT_EQ(*source_sum, *target_sum);
  // Catch-up does not capture its own writes to the targets, and nothing is
  // left to do.
  for (const SourceShard& source : sources_) {
    auto result = CatchUpOnce(layout_, source, targets_, 0, 100, cluster_.executor());
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result->changes, 0);
    EXPECT_EQ(result->last_seq, 0);
  }
}

TEST_F(CatchUpTest, OneShardsCatchUpNeitherSkipsNorForgetsAnotherShardsChanges) {
  EnableCapture(cluster_, layout_, sources_);
  for (const SourceShard& source : sources_) Copy(cluster_, layout_, source, targets_, 1000);
  for (int i = 0; i < 200; ++i) writer_->Write();
  ASSERT_GT(PendingChanges(cluster_, layout_, sources_[0]), 0);
  const int64_t second_pending = PendingChanges(cluster_, layout_, sources_[1]);
  ASSERT_GT(second_pending, 0) << "shard 2 shares n0 with shard 1";

  CatchUpTotals first = CatchUpUntilEmpty(cluster_, layout_, sources_[0], targets_, 4);
  EXPECT_GT(first.changes, 0);
  EXPECT_EQ(PendingChanges(cluster_, layout_, sources_[0]), 0);
  EXPECT_EQ(PendingChanges(cluster_, layout_, sources_[1]), second_pending)
      << "shard 1's trim removed shard 2's changes";
  // Shard 2 still sees all of its changes, even after shard 1 moved far past
  // them in the shared sequence.
  CatchUpTotals second = CatchUpUntilEmpty(cluster_, layout_, sources_[1], targets_, 4);
  EXPECT_EQ(second.changes, second_pending);
  CatchUpUntilEmpty(cluster_, layout_, sources_[2], targets_, 4);
  ExpectTargetsEqualSources();
}

TEST_F(CatchUpTest, RerunningOrFailingPassesIsHarmless) {
  EnableCapture(cluster_, layout_, sources_);
  for (const SourceShard& source : sources_) Copy(cluster_, layout_, source, targets_, 1000);
  for (int i = 0; i < 150; ++i) writer_->Write();
  const SourceShard& source = sources_[0];

  // Keep every captured change, to replay them later.
  std::vector<Row> captured = Query(
      cluster_.db(source.node),
      absl::StrCat("SELECT shard, id, tenant FROM ", QuoteIdentifier(ChangesTable(layout_.table)),
                   " WHERE shard = ?1 ORDER BY seq"),
      {IntegerValue(source.shard_id)});
  ASSERT_GT(captured.size(), 20u);

  // The trim fails: the pass fails, and the same pass again does it all.
  cluster_.fail = [](const std::string&, const ExecuteBatchRequest& request) {
    return absl::StartsWith(request.statements(0).sql(), "DELETE FROM \"_conductor_changes")
               ? absl::UnavailableError("trim lost")
               : absl::OkStatus();
  };
  auto failed = CatchUpOnce(layout_, source, targets_, 0, 10, cluster_.executor());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  // A target write fails half-way (one node written, the next not).
  int writes = 0;
  cluster_.fail = [&writes](const std::string&, const ExecuteBatchRequest& request) {
    if (request.read_only()) return absl::OkStatus();
    return ++writes == 2 ? absl::UnavailableError("node down") : absl::OkStatus();
  };
  failed = CatchUpOnce(layout_, source, targets_, 0, 40, cluster_.executor());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  cluster_.fail = nullptr;

  // The same pass again, then the same pass once more (nothing left).
  auto pass = CatchUpOnce(layout_, source, targets_, 0, 10, cluster_.executor());
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->changes, 10);
  auto again = CatchUpOnce(layout_, source, targets_, 0, 10, cluster_.executor());
  ASSERT_TRUE(again.ok());
  EXPECT_GT(again->last_seq, pass->last_seq) << "the first ten were trimmed";
  for (const SourceShard& s : sources_) CatchUpUntilEmpty(cluster_, layout_, s, targets_, 9);
  ExpectTargetsEqualSources();

  // Replaying old changes, in any order, changes nothing: each re-reads the
  // current row.
  std::reverse(captured.begin(), captured.end());
  for (const Row& change : captured) {
    Exec(cluster_.db(source.node),
         absl::StrCat("INSERT INTO ", QuoteIdentifier(ChangesTable(layout_.table)),
                      " (shard, id, tenant) VALUES (?1, ?2, ?3)"),
         change);
  }
  CatchUpTotals replay = CatchUpUntilEmpty(cluster_, layout_, source, targets_, 13);
  EXPECT_EQ(replay.changes, static_cast<int64_t>(captured.size()));
  EXPECT_GT(replay.deleted, 0) << "some replayed keys are gone";
  ExpectTargetsEqualSources();
}

TEST_F(CatchUpTest, DeletedKeysAreDeletedOnTheirOwningTargetOnly) {
  EnableCapture(cluster_, layout_, sources_);
  for (const SourceShard& source : sources_) Copy(cluster_, layout_, source, targets_, 1000);
  // A target row that no source ever held, with the key of a deleted source
  // row, but on another target shard than the key routes to: a delete must
  // not touch it (it names the owning target's shard id).
  std::vector<Row> rows = ShardRows(cluster_, layout_, sources_[2]);
  ASSERT_FALSE(rows.empty());
  const Row victim = rows[0];
  const int owner = RouteIndex(layout_, victim[1], 4);
  const TargetShard& elsewhere = targets_[(owner + 1) % 4];
  Exec(cluster_.db(elsewhere.node),
       "INSERT INTO \"acc ounts\" (id, tenant, email, _virtualShard) VALUES (?1, ?2, 'x', ?3)",
       {victim[0], victim[1], IntegerValue(elsewhere.shard_id)});
  Exec(cluster_.db(sources_[2].node),
       "DELETE FROM \"acc ounts\" WHERE _virtualShard = 3 AND id = ?1 AND tenant = ?2",
       {victim[0], victim[1]});
  auto result = CatchUpOnce(layout_, sources_[2], targets_, 0, 100, cluster_.executor());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->changes, 1);
  EXPECT_EQ(result->deleted, 1);
  EXPECT_EQ(result->upserted, 0);
  std::vector<Row> left = ShardRows(cluster_, layout_, elsewhere);
  int found = 0;
  for (const Row& row : left)
    found += Render(row[0]) == Render(victim[0]) && Render(row[1]) == Render(victim[1]);
  EXPECT_EQ(found, 1);
  for (const Row& row : ShardRows(cluster_, layout_, targets_[owner])) {
    EXPECT_FALSE(Render(row[0]) == Render(victim[0]) && Render(row[1]) == Render(victim[1]));
  }
}

TEST_F(CatchUpTest, RefusesBadArguments) {
  auto executor = cluster_.executor();
  EXPECT_EQ(CatchUpOnce(layout_, sources_[0], targets_, 0, 0, executor).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CatchUpOnce(layout_, sources_[0], {}, 0, 10, executor).status().code(),
            absl::StatusCode::kInvalidArgument);
  TableLayout bad = layout_;
  bad.shard_key = "email";
  EXPECT_EQ(CatchUpOnce(bad, sources_[0], targets_, 0, 10, executor).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Without capture there is no changes table: the node's error comes back.
  auto status = CatchUpOnce(layout_, sources_[0], targets_, 0, 10, executor).status();
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(absl::StrContains(status.message(), "node n0")) << status;
}

// ---------------------------------------------------------------------------
// Collations: keys are matched exactly, and still through the key index.

TEST(CollationTest, KeysDifferingOnlyInCaseStayApart) {
  // The column compares NOCASE, but the key is BINARY: 'EU' and 'eu' are two
  // rows. A NOCASE match would upsert or delete the wrong one.
  const char* schema =
      "CREATE TABLE t (region TEXT COLLATE NOCASE NOT NULL, user_id INTEGER NOT NULL, v TEXT, "
      "_virtualShard INTEGER NOT NULL DEFAULT 0, "
      "PRIMARY KEY (_virtualShard, region COLLATE BINARY, user_id))";
  const TableLayout layout{
      "t", {"region", "user_id", "v"}, {"region", "user_id"}, "user_id", "INTEGER"};
  FakeCluster cluster;
  cluster.AddNode("s", {schema});
  cluster.AddNode("t", {schema});
  const std::vector<SourceShard> sources = {{1, "s"}};
  const std::vector<TargetShard> targets = {{2, "t"}, {3, "t"}};
  Database& db = cluster.db("s");
  for (int id = 0; id < 20; ++id) {
    for (const char* region : {"EU", "eu", "Eu"}) {
      Exec(db, "INSERT INTO t VALUES (?1, ?2, ?3, 1)",
           {TextValue(region), IntegerValue(id), TextValue(absl::StrCat(region, id))});
    }
  }
  EnableCapture(cluster, layout, sources);
  // One block: keyset paging by the columns' own (NOCASE) collation could not
  // tell 'EU' from 'eu' (nor can ScanShard; see the report).
  Copy(cluster, layout, sources[0], targets, 1000);
  Exec(db, "DELETE FROM t WHERE region = 'EU' COLLATE BINARY AND user_id < 10");
  Exec(db, "UPDATE t SET v = 'changed' WHERE region = 'eu' COLLATE BINARY AND user_id >= 10");
  CatchUpTotals totals = CatchUpUntilEmpty(cluster, layout, sources[0], targets, 1000);
  EXPECT_EQ(totals.deleted, 10);
  EXPECT_EQ(totals.upserted, 10);
  EXPECT_EQ(RowsOf(cluster, layout, targets), RowsOf(cluster, layout, sources));
  EXPECT_EQ(RowsOf(cluster, layout, targets).size(), 50u);
}

TEST(CollationTest, NocaseKeysFollowTheirRows) {
  // A NOCASE key: 'EU' replaced by 'eu' is the same key, stored differently.
  const char* schema =
      "CREATE TABLE t (region TEXT COLLATE NOCASE NOT NULL, user_id INTEGER NOT NULL, v TEXT, "
      "_virtualShard INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (_virtualShard, region, user_id))";
  const TableLayout layout{
      "t", {"region", "user_id", "v"}, {"region", "user_id"}, "user_id", "INTEGER"};
  FakeCluster cluster;
  cluster.AddNode("s", {schema});
  cluster.AddNode("t", {schema});
  const std::vector<SourceShard> sources = {{1, "s"}};
  const std::vector<TargetShard> targets = {{2, "t"}, {3, "t"}, {4, "s"}};
  Database& db = cluster.db("s");
  for (int id = 0; id < 30; ++id) {
    Exec(db, "INSERT INTO t VALUES ('EU', ?1, 'v', 1)", {IntegerValue(id)});
  }
  EnableCapture(cluster, layout, sources);
  Copy(cluster, layout, sources[0], targets, 1000);
  for (int id = 0; id < 30; id += 2) {
    Exec(db, "INSERT OR REPLACE INTO t VALUES ('eu', ?1, 'lower', 1)", {IntegerValue(id)});
  }
  for (int id = 1; id < 30; id += 4) {
    Exec(db,
         "UPDATE t SET region = 'Eu' WHERE _virtualShard = 1 AND region = 'eu' AND "
         "user_id = ?1",
         {IntegerValue(id)});
  }
  CatchUpUntilEmpty(cluster, layout, sources[0], targets, 1000);
  EXPECT_EQ(RowsOf(cluster, layout, targets), RowsOf(cluster, layout, sources));
  EXPECT_EQ(RowsOf(cluster, layout, targets).size(), 30u);
  // The catch-up reads and deletes seek the whole key (no per-shard scan).
  int seen = 0;
  for (const FakeCluster::Plan& plan : cluster.plans) {
    if (absl::StrContains(plan.sql, "LEFT JOIN") ||
        absl::StartsWith(plan.sql, "DELETE FROM \"t\"")) {
      if (!absl::StartsWith(plan.detail, "SEARCH")) continue;
      ++seen;
      EXPECT_TRUE(absl::StrContains(plan.detail, "_virtualShard=? AND region=? AND user_id=?"))
          << plan.detail << " <- " << plan.sql.substr(0, 300);
    }
  }
  EXPECT_GT(seen, 0);
  EXPECT_TRUE(cluster.FullScans().empty()) << absl::StrJoin(cluster.FullScans(), "\n");
}

// ---------------------------------------------------------------------------
// Values round-trip exactly, through the copy and through catch-up.

class RoundTripTest : public TestWithParam<const char*> {};

TEST_P(RoundTripTest, EveryStorageClassComesThroughBitForBit) {
  // `k` has no declared type: its values keep their storage class, so 1, '1'
  // and x'31' are three keys. Generated columns are recomputed on the target.
  const std::string schema = absl::StrCat(
      "CREATE TABLE \"we\"\"ird\" (k NOT NULL, i INTEGER, r REAL, t TEXT, b BLOB, u, "
      "g INTEGER GENERATED ALWAYS AS (length(t)) VIRTUAL, "
      "h TEXT GENERATED ALWAYS AS (typeof(u)) STORED, "
      "_virtualShard INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (_virtualShard, k))",
      GetParam());
  const TableLayout layout{"we\"ird", {"k", "i", "r", "t", "b", "u"}, {"k"}, "k", ""};
  FakeCluster cluster;
  cluster.AddNode("s", {schema});
  cluster.AddNode("x", {schema});
  cluster.AddNode("y", {schema});
  const std::vector<SourceShard> sources = {{1, "s"}};
  const std::vector<TargetShard> targets = {{2, "x"}, {3, "y"}, {4, "x"}, {5, "s"}};

  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<Value> keys = {
      IntegerValue(1),
      TextValue("1"),
      BlobValue("1"),
      RealValue(1.5),
      IntegerValue(std::numeric_limits<int64_t>::min()),
      IntegerValue(std::numeric_limits<int64_t>::max()),
      TextValue(""),
      BlobValue(""),
      TextValue(std::string("nul\0inside", 10)),
      BlobValue(std::string("\0\xff\x80", 3)),
      TextValue("h\xc3\xa9llo \xf0\x9f\x8c\x8d"),
      RealValue(-inf),
      RealValue(5e-324),
      TextValue("'; DROP TABLE t; --"),
  };
  const std::vector<Value> payloads = {
      NullValue(),
      IntegerValue(0),
      IntegerValue(-1),
      RealValue(-0.0),
      RealValue(0.1),
      RealValue(1e308),
      RealValue(inf),
      TextValue(std::string("a\0b", 3)),
      BlobValue(std::string(3000, '\0')),
      TextValue(std::string(5000, 'z')),
  };
  Database& db = cluster.db("s");
  for (size_t i = 0; i < keys.size(); ++i) {
    const Value& p = payloads[i % payloads.size()];
    const Value& q = payloads[(i + 3) % payloads.size()];
    Exec(db,
         "INSERT INTO \"we\"\"ird\" (k, i, r, t, b, u, _virtualShard) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
         {keys[i], i % 2 ? IntegerValue(static_cast<int64_t>(i) << 40) : NullValue(),
          i % 3 ? RealValue(i / 3.0) : NullValue(), i % 4 ? TextValue("t") : q,
          i % 5 ? BlobValue(std::string(i, '\x01')) : q, p});
  }
  EnableCapture(cluster, layout, sources);
  const std::vector<std::string> all = {"k", "i", "r", "t", "b", "u", "g", "h"};
  Copy(cluster, layout, sources[0], targets, 3);
  EXPECT_EQ(RowsOf(cluster, layout, targets, all), RowsOf(cluster, layout, sources, all));

  // Change every row through catch-up: values move between columns and
  // storage classes, keys are deleted and re-created.
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i % 4 == 0) {
      Exec(db, "DELETE FROM \"we\"\"ird\" WHERE _virtualShard = 1 AND k = ?1", {keys[i]});
    } else {
      Exec(db, "UPDATE \"we\"\"ird\" SET u = ?2, t = ?3, r = ?4 WHERE _virtualShard = 1 AND k = ?1",
           {keys[i], payloads[(i + 5) % payloads.size()], TextValue(std::string(i, '\0')),
            RealValue(-static_cast<double>(i))});
    }
  }
  Exec(db, "INSERT INTO \"we\"\"ird\" (k, u, _virtualShard) VALUES (?1, ?2, 1), (?3, ?4, 1)",
       {RealValue(-0.5), BlobValue(std::string(70000, '\x7f')), TextValue("new"), RealValue(-0.0)});
  CatchUpTotals totals = CatchUpUntilEmpty(cluster, layout, sources[0], targets, 5);
  EXPECT_EQ(totals.deleted, 4);
  EXPECT_EQ(RowsOf(cluster, layout, targets, all), RowsOf(cluster, layout, sources, all));
  EXPECT_EQ(RowsOf(cluster, layout, targets).size(), keys.size() - 4 + 2);
  ExpectRoutedCorrectly(cluster, layout, targets);
  auto a = ChecksumShards(layout, sources, 2, cluster.executor());
  auto b = ChecksumShards(layout, targets, 2, cluster.executor());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
}

INSTANTIATE_TEST_SUITE_P(Tables, RoundTripTest, Values("", " WITHOUT ROWID"), [](const auto& info) {
  return std::string(*info.param ? "WithoutRowid" : "Rowid");
});

// ---------------------------------------------------------------------------
// Large batches.

TEST(LargeBatchTest, WideRowsRespectTheParameterLimit) {
  // 60 user columns: 61 parameters a row, so 5000 rows need ~10 statements.
  std::vector<std::string> columns = {"id"};
  std::string ddl = "CREATE TABLE wide (id INTEGER NOT NULL";
  for (int i = 0; i < 59; ++i) {
    columns.push_back(absl::StrCat("c", i));
    absl::StrAppend(&ddl, ", c", i, i % 2 ? " TEXT" : " INTEGER");
  }
  absl::StrAppend(&ddl,
                  ", _virtualShard INTEGER NOT NULL DEFAULT 0, "
                  "PRIMARY KEY (_virtualShard, id))");
  const TableLayout layout{"wide", columns, {"id"}, "id", "INTEGER"};
  FakeCluster cluster;
  cluster.AddNode("s", {ddl});
  cluster.AddNode("a", {ddl});
  cluster.AddNode("b", {ddl});
  const std::vector<SourceShard> sources = {{1, "s"}};
  const std::vector<TargetShard> targets = {{2, "a"}, {3, "b"}};
  std::vector<Row> rows;
  for (int64_t id = 0; id < 5000; ++id) {
    Row row = {IntegerValue(id)};
    for (int i = 0; i < 59; ++i) {
      row.push_back(i % 2 ? TextValue(absl::StrCat(id, ":", i)) : IntegerValue(id * i));
    }
    rows.push_back(std::move(row));
  }
  auto written = ApplyRows(layout, targets, rows, cluster.executor());
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, 5000);
  for (const char* node : {"a", "b"}) {
    const NodeStats& stats = cluster.stats[node];
    EXPECT_EQ(stats.write_batches, 1) << node;
    EXPECT_LE(stats.max_parameters, kMaxSqlParameters) << node;
    EXPECT_GT(stats.max_parameters, kMaxSqlParameters - 61) << node << ": statements are packed";
    EXPECT_GE(stats.statements, 4) << node;
  }
  RowSet expected;
  for (const Row& row : rows) expected.insert(Render(row));
  EXPECT_EQ(RowsOf(cluster, layout, targets), expected);
}

TEST(LargeBatchTest, CatchUpOfThousandsOfKeysWithAWideKeyRespectsTheLimit) {
  // An 8-column key: 5000 keys are 40000 key values to read and delete.
  std::vector<std::string> key;
  std::string ddl = "CREATE TABLE k8 (";
  for (int i = 0; i < 8; ++i) {
    key.push_back(absl::StrCat("k", i));
    absl::StrAppend(&ddl, "k", i, i == 3 ? " TEXT" : " INTEGER", " NOT NULL, ");
  }
  absl::StrAppend(&ddl,
                  "v TEXT, _virtualShard INTEGER NOT NULL DEFAULT 0, "
                  "PRIMARY KEY (_virtualShard, ",
                  absl::StrJoin(key, ", "), "))");
  std::vector<std::string> columns = key;
  columns.push_back("v");
  const TableLayout layout{"k8", columns, key, "k3", "TEXT"};
  FakeCluster cluster;
  cluster.AddNode("s", {ddl});
  cluster.AddNode("a", {ddl});
  const std::vector<SourceShard> sources = {{1, "s"}};
  const std::vector<TargetShard> targets = {{2, "a"}, {3, "a"}, {4, "a"}};
  Database& db = cluster.db("s");
  ASSERT_TRUE(db.Exec("BEGIN").ok());
  for (int64_t id = 0; id < 5000; ++id) {
    Exec(db,
         "INSERT INTO k8 VALUES (?1, ?1 + 1, ?1 + 2, 'key-' || ?1, ?1 % 7, 0, -?1, ?1 * 3, 'v', 1)",
         {IntegerValue(id)});
  }
  ASSERT_TRUE(db.Exec("COMMIT").ok());
  EnableCapture(cluster, layout, sources);
  Copy(cluster, layout, sources[0], targets, 10000);
  ASSERT_TRUE(db.Exec("UPDATE k8 SET v = 'updated' WHERE k0 % 2 = 0").ok());
  ASSERT_TRUE(db.Exec("DELETE FROM k8 WHERE k0 % 2 = 1").ok());
  cluster.stats.clear();
  auto result = CatchUpOnce(layout, sources[0], targets, 0, 10000, cluster.executor());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->changes, 7500);  // an UPDATE records the old and the new key
  EXPECT_EQ(result->upserted, 2500);
  EXPECT_EQ(result->deleted, 2500);
  EXPECT_LE(cluster.stats["s"].max_parameters, kMaxSqlParameters);
  EXPECT_LE(cluster.stats["a"].max_parameters, kMaxSqlParameters);
  EXPECT_EQ(cluster.stats["s"].read_batches, 2) << "the changes, then the current rows";
  EXPECT_EQ(cluster.stats["s"].write_batches, 1) << "the trim";
  EXPECT_EQ(cluster.stats["a"].write_batches, 1) << "deletes and upserts in one batch";
  EXPECT_EQ(RowsOf(cluster, layout, targets), RowsOf(cluster, layout, sources));
  EXPECT_EQ(RowsOf(cluster, layout, targets).size(), 2500u);
  EXPECT_TRUE(cluster.FullScans().empty()) << absl::StrJoin(cluster.FullScans(), "\n");
}

TEST(LargeBatchTest, HugeRowsAreSplitOverSeveralBatches) {
  const TableLayout layout = PlainLayout();
  FakeCluster cluster;
  cluster.AddNode("a", {kPlainTable});
  const std::vector<TargetShard> targets = {{1, "a"}};
  std::vector<Row> rows;
  for (int64_t id = 0; id < 24; ++id) {
    Row row = PlainRow(id);
    row[3] = BlobValue(std::string(1 << 20, static_cast<char>(id)));
    rows.push_back(std::move(row));
  }
  auto written = ApplyRows(layout, targets, rows, cluster.executor());
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_GE(cluster.stats["a"].write_batches, 2);
  EXPECT_LE(cluster.stats["a"].max_request_bytes, kMaxBatchBytes + (int64_t{2} << 20));
  RowSet expected;
  for (const Row& row : rows) expected.insert(Render(row));
  EXPECT_EQ(RowsOf(cluster, layout, targets), expected);
}

TEST(LargeBatchTest, ReadsTooLargeForOneResponseAreSplit) {
  const TableLayout layout = PlainLayout();
  FakeCluster cluster;
  cluster.AddNode("s", {kPlainTable});
  cluster.AddNode("t", {kPlainTable});
  const std::vector<SourceShard> sources = {{1, "s"}};
  const std::vector<TargetShard> targets = {{2, "t"}, {3, "t"}};
  Database& db = cluster.db("s");
  for (int64_t id = 0; id < 64; ++id) {
    Row row = PlainRow(id);
    row[1] = TextValue(std::string(10000, 'a' + id % 26));
    InsertIntoSource(cluster, layout, sources, row);
  }
  EnableCapture(cluster, layout, sources);
  Copy(cluster, layout, sources[0], targets, 1000);
  ASSERT_TRUE(db.Exec("UPDATE t SET score = -score, name = name || 'x'").ok());
  ASSERT_TRUE(db.Exec("DELETE FROM t WHERE id % 5 = 0").ok());
  // About 100 KB a response: 64 rows of 10 KB need several.
  cluster.max_response_bytes = 100000;
  cluster.stats.clear();
  auto result = CatchUpOnce(layout, sources[0], targets, 0, 1000, cluster.executor());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->upserted + result->deleted, 64);
  EXPECT_GT(cluster.stats["s"].read_batches, 4);
  EXPECT_EQ(RowsOf(cluster, layout, targets), RowsOf(cluster, layout, sources));
  // The checksum halves its blocks the same way.
  auto source_sum = ChecksumShards(layout, sources, 1000, cluster.executor());
  auto target_sum = ChecksumShards(layout, targets, 64, cluster.executor());
  ASSERT_TRUE(source_sum.ok()) << source_sum.status();
  ASSERT_TRUE(target_sum.ok()) << target_sum.status();
  EXPECT_EQ(*source_sum, *target_sum);
  EXPECT_EQ(source_sum->rows, 51);
  // One row over the limit cannot be split: the error comes back.
  Exec(db, "UPDATE t SET name = ?1 WHERE id = 1", {TextValue(std::string(200000, 'z'))});
  auto too_big = CatchUpOnce(layout, sources[0], targets, 0, 1000, cluster.executor());
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kResourceExhausted) << too_big.status();
  EXPECT_EQ(ChecksumShards(layout, sources, 10, cluster.executor()).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// ---------------------------------------------------------------------------
// Verification: counts and checksums.

TEST(RowHashTest, DistinguishesStorageClassesAndColumnBoundaries) {
  const std::vector<Row> rows = {
      {IntegerValue(1)},
      {RealValue(1.0)},
      {TextValue("1")},
      {BlobValue("1")},
      {NullValue()},
      {TextValue("")},
      {BlobValue("")},
      {RealValue(0.0)},
      {RealValue(-0.0)},
      {IntegerValue(0)},
      {TextValue("ab"), TextValue("c")},
      {TextValue("a"), TextValue("bc")},
      {NullValue(), NullValue()},
  };
  std::set<uint64_t> hashes;
  for (const Row& row : rows) hashes.insert(RowHash(row));
  EXPECT_EQ(hashes.size(), rows.size());
  EXPECT_EQ(RowHash({TextValue("x"), IntegerValue(2)}), RowHash({TextValue("x"), IntegerValue(2)}));
  // An unset Value is NULL.
  EXPECT_EQ(RowHash({Value()}), RowHash({NullValue()}));
}

class VerificationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* node : {"n0", "n1"}) cluster_.AddNode(node, {kPlainTable});
    for (int64_t id = 0; id < 500; ++id)
      InsertIntoSource(cluster_, layout_, sources_, PlainRow(id));
    for (const SourceShard& source : sources_) {
      ASSERT_TRUE(
          ApplyRows(layout_, targets_, ShardRows(cluster_, layout_, source), cluster_.executor())
              .ok());
    }
  }
  ShardsChecksum Sum(const std::vector<ShardOnNode>& shards, int block_size = 64) {
    auto sum = ChecksumShards(layout_, shards, block_size, cluster_.executor());
    EXPECT_TRUE(sum.ok()) << sum.status();
    return sum.ok() ? *sum : ShardsChecksum{-1, 0};
  }
  void Change(const TargetShard& shard, const std::string& sql, const std::vector<Value>& params) {
    std::vector<Value> all = {IntegerValue(shard.shard_id)};
    all.insert(all.end(), params.begin(), params.end());
    Exec(cluster_.db(shard.node), sql, all);
  }

  const TableLayout layout_ = PlainLayout();
  FakeCluster cluster_;
  const std::vector<SourceShard> sources_ = {{1, "n0"}, {2, "n1"}};
  const std::vector<TargetShard> targets_ = {{3, "n1"}, {4, "n0"}, {5, "n1"}};
};

TEST_F(VerificationTest, CountsAreOneReadBatchPerNode) {
  cluster_.stats.clear();
  auto sources = CountShards(layout_, sources_, cluster_.executor());
  auto targets = CountShards(layout_, targets_, cluster_.executor());
  ASSERT_TRUE(sources.ok() && targets.ok());
  EXPECT_EQ(*sources, 500);
  EXPECT_EQ(*targets, 500);
  EXPECT_EQ(cluster_.stats["n0"].read_batches, 2);  // one per call
  EXPECT_EQ(cluster_.stats["n1"].read_batches, 2);
  EXPECT_EQ(cluster_.stats["n0"].write_batches + cluster_.stats["n1"].write_batches, 0);
  Change(targets_[0],
         "DELETE FROM t WHERE _virtualShard = ?1 AND id IN (SELECT id FROM t "
         "WHERE _virtualShard = ?1 LIMIT 3)",
         {});
  EXPECT_EQ(*CountShards(layout_, targets_, cluster_.executor()), 497);
  EXPECT_EQ(*CountShards(layout_, {}, cluster_.executor()), 0);
  EXPECT_EQ(*CountShards(layout_, {{99, "n0"}}, cluster_.executor()), 0);
  EXPECT_FALSE(CountShards(layout_, {{1, "gone"}}, cluster_.executor()).ok());
  EXPECT_TRUE(cluster_.FullScans().empty()) << absl::StrJoin(cluster_.FullScans(), "\n");
}

TEST_F(VerificationTest, ParallelCountsAreOneCallPerShardWithTheSameTotals) {
  // The fake cluster is single-threaded: serialise its calls.
  std::mutex mu;
  NodeExecutor serialised = [&](const std::string& node, const ExecuteBatchRequest& request) {
    std::lock_guard<std::mutex> lock(mu);
    return cluster_.Execute(node, request);
  };
  cluster_.stats.clear();
  auto targets = CountShards(layout_, targets_, serialised, /*parallel=*/true);
  ASSERT_TRUE(targets.ok()) << targets.status();
  EXPECT_EQ(*targets, 500);
  EXPECT_EQ(cluster_.stats["n1"].read_batches, 2);  // shards 3 and 5
  EXPECT_EQ(cluster_.stats["n0"].read_batches, 1);  // shard 4
  EXPECT_EQ(*CountShards(layout_, sources_, serialised, /*parallel=*/true), 500);
  EXPECT_EQ(*CountShards(layout_, {}, serialised, /*parallel=*/true), 0);
  EXPECT_FALSE(CountShards(layout_, {{3, "n1"}, {1, "gone"}}, serialised, true).ok());
  // More shards than run at once: every one is still counted, once.
  std::vector<ShardOnNode> many(targets_.begin(), targets_.end());
  for (int32_t id = 100; id < 140; ++id) many.push_back({id, "n0"});  // empty shards
  cluster_.stats.clear();
  EXPECT_EQ(*CountShards(layout_, many, serialised, /*parallel=*/true), 500);
  EXPECT_EQ(cluster_.stats["n0"].read_batches, 41);
  EXPECT_EQ(cluster_.stats["n1"].read_batches, 2);
}

TEST_F(VerificationTest, ChecksumsAreEqualExactlyWhenTheContentsAre) {
  const ShardsChecksum source = Sum(sources_);
  EXPECT_EQ(source.rows, 500);
  EXPECT_EQ(Sum(targets_), source);
  // Any block size, any shard order.
  for (int block_size : {1, 7, 500, 501, 10000}) {
    EXPECT_EQ(Sum(targets_, block_size), source) << block_size;
  }
  EXPECT_EQ(Sum({targets_[2], targets_[0], targets_[1]}), source);
  cluster_.stats.clear();
  Sum(sources_, 100);
  for (const SourceShard& shard : sources_) {
    // Blocks of 100 rows; a full last block is followed by an empty one.
    EXPECT_EQ(cluster_.stats[shard.node].read_batches,
              ShardRows(cluster_, layout_, shard).size() / 100 + 1);
  }

  const TargetShard& shard = targets_[1];
  // A row whose `extra` is not NULL (see PlainRow), and another.
  std::vector<Row> rows = ShardRows(cluster_, layout_, shard);
  std::stable_partition(rows.begin(), rows.end(),
                        [](const Row& row) { return row[0].integer() % 3 != 0; });
  const Row row = rows[0];
  const Row second = rows[1];
  const int64_t id = row[0].integer();
  const std::string where = " WHERE _virtualShard = ?1 AND id = ?2";
  auto expect_differs_then_restore = [&](const std::string& set, const Value& changed,
                                         const Value& original, const char* what) {
    Change(shard, absl::StrCat("UPDATE t SET ", set, " = ?3", where), {IntegerValue(id), changed});
    const ShardsChecksum sum = Sum(targets_);
    EXPECT_NE(sum, source) << what;
    EXPECT_EQ(sum.rows, source.rows) << what;
    Change(shard, absl::StrCat("UPDATE t SET ", set, " = ?3", where), {IntegerValue(id), original});
    EXPECT_EQ(Sum(targets_), source) << what << " (restored)";
  };
  expect_differs_then_restore("name", TextValue(row[1].text() + " "), row[1], "one text");
  expect_differs_then_restore("score", RealValue(std::nextafter(row[2].real(), 1e9)), row[2],
                              "one real, by one ulp");
  expect_differs_then_restore("data", TextValue(row[3].blob()), row[3], "blob → same text");
  expect_differs_then_restore("extra", RealValue(7.0 * id), row[4], "integer → real");
  expect_differs_then_restore("extra", NullValue(), row[4], "value → NULL");

  // Two rows swapping a value: same multiset of values, different rows.
  Change(shard, "UPDATE t SET name = ?3 WHERE _virtualShard = ?1 AND id = ?2", {row[0], second[1]});
  Change(shard, "UPDATE t SET name = ?3 WHERE _virtualShard = ?1 AND id = ?2", {second[0], row[1]});
  EXPECT_NE(Sum(targets_), source);
  Change(shard, "UPDATE t SET name = ?3 WHERE _virtualShard = ?1 AND id = ?2", {row[0], row[1]});
  Change(shard, "UPDATE t SET name = ?3 WHERE _virtualShard = ?1 AND id = ?2",
         {second[0], second[1]});
  EXPECT_EQ(Sum(targets_), source);

  // A row deleted, or a row too many.
  Change(shard, "DELETE FROM t" + where, {row[0]});
  EXPECT_NE(Sum(targets_), source);
  EXPECT_EQ(Sum(targets_).rows, source.rows - 1);
  Change(targets_[0],
         "INSERT INTO t (id, name, score, data, extra, _virtualShard) "
         "VALUES (?2, ?3, ?4, ?5, ?6, ?1)",
         row);
  EXPECT_EQ(Sum(targets_), source) << "the contents count, not where they are";
  Change(shard,
         "INSERT INTO t (id, name, score, data, extra, _virtualShard) "
         "VALUES (?2, ?3, ?4, ?5, ?6, ?1)",
         row);
  EXPECT_NE(Sum(targets_), source) << "a duplicate";
  EXPECT_TRUE(cluster_.FullScans().empty()) << absl::StrJoin(cluster_.FullScans(), "\n");
}

TEST(ChecksumTest, KeysWithNullsAreReadInFullBlockByBlock) {
  // A rowid table's key columns may hold NULLs unless declared NOT NULL (the
  // conductor declares them so, but the scan must not lose rows either way).
  const char* schema =
      "CREATE TABLE n (a INTEGER NOT NULL, b TEXT, v, _virtualShard INTEGER NOT NULL DEFAULT 0, "
      "PRIMARY KEY (_virtualShard, a, b))";
  const TableLayout layout{"n", {"a", "b", "v"}, {"a", "b"}, "a", "INTEGER"};
  FakeCluster cluster;
  cluster.AddNode("x", {schema});
  Database& db = cluster.db("x");
  int expected = 0;
  uint64_t sum = 0;
  for (int a = 0; a < 5; ++a) {
    for (int b = -1; b < 4; ++b) {
      Row row = {IntegerValue(a), b < 0 ? NullValue() : TextValue(absl::StrCat(b)),
                 IntegerValue(a * 10 + b)};
      std::vector<Value> params = row;
      Exec(db, "INSERT INTO n (a, b, v, _virtualShard) VALUES (?1, ?2, ?3, 1)", params);
      sum += RowHash(row);
      ++expected;
    }
  }
  for (int block_size : {1, 2, 3, 5, 100}) {
    auto checksum = ChecksumShards(layout, {{1, "x"}}, block_size, cluster.executor());
    ASSERT_TRUE(checksum.ok()) << checksum.status();
    EXPECT_EQ(checksum->rows, expected) << block_size;
    EXPECT_EQ(checksum->checksum, sum) << block_size;
  }
  EXPECT_EQ(ChecksumShards(layout, {{1, "x"}}, 0, cluster.executor()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace conductor::shard_copy
