// Virtual indexes end to end (DESIGN.md §5 CREATE INDEX): a real conductor,
// three real storage nodes and real queue workers on loopback. Index builds
// run as jobs on the workers; what an index routes to is read back through
// EXPLAIN and compared with the truth computed from the nodes' SQLite files:
// the (value tuple → shard) pairs `SELECT DISTINCT _virtualShard, c … WHERE c
// IS NOT NULL` gives over every node.
//
// Every wait polls ListIndexes with a generous deadline; nothing asserts on
// how long anything took.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/errors.h"
#include "common/sqlite.h"
#include "gtest/gtest.h"
#include "tests/harness/cluster.h"
#include "tests/harness/cluster_sql_test.h"

namespace conductor {
namespace {

using testing::Render;
using testing::RenderRow;
using testing::TestCluster;
namespace v1 = ::conductor::v1;

// Builds over unthrottled workers finish in well under a second; the deadline
// is for slow, loaded machines.
constexpr absl::Duration kBuildTimeout = absl::Seconds(60);
// Builds over throttled workers (several seconds each by design).
constexpr absl::Duration kSlowBuildTimeout = absl::Seconds(180);

std::string ShardList(const std::set<int64_t>& shards) {
  return absl::StrCat("{", absl::StrJoin(shards, ","), "}");
}

// What the nodes' files say about one index: for every indexed value tuple
// (no NULL in it), the shards holding it and the rows holding it.
struct Truth {
  // Render(value tuple) → the tuple, its shards, its rows (rendered).
  std::map<std::string, std::vector<Value>> key_values;
  std::map<std::string, std::set<int64_t>> shards;
  std::map<std::string, std::multiset<std::string>> rows;
  // Distinct (shard, value tuple) pairs: what entry_count must converge to.
  int64_t entries = 0;
  int64_t total_rows = 0;
};

// The route EXPLAIN reports for one statement.
struct Route {
  grpc::Status status;
  std::vector<std::string> columns;
  std::string route;
  std::string index_name;  // "" when NULL or absent
  std::set<int64_t> shards;
  int rows = 0;
  bool consistent = true;  // every row names the same route and index
  std::string Describe() const {
    return absl::StrCat("route=", route, " index_name=", index_name, " shards=", ShardList(shards),
                        " rows=", rows, status.ok() ? "" : " error=" + status.error_message());
  }
};

class IndexIntegrationTest : public testing::ClusterSqlTest {
 protected:
  v1::CreateIndexResponse CreateIndex(const std::string& name, const std::string& table,
                                      const std::vector<std::string>& columns,
                                      bool unique = false) {
    v1::CreateIndexRequest request;
    request.set_name(name);
    request.set_table(table);
    for (const auto& c : columns) request.add_columns(c);
    request.set_unique(unique);
    v1::CreateIndexResponse response;
    grpc::Status status = Call(&v1::TableOps::Stub::CreateIndex, request, &response);
    EXPECT_TRUE(status.ok()) << "CreateIndex " << name << ": " << status.error_message();
    EXPECT_TRUE(response.created());
    EXPECT_EQ(response.index().status(), "building")
        << "CreateIndex returns at once, before the build job ran";
    return response;
  }

  // ListIndexes(table), or NOT_FOUND when the index is not listed.
  absl::StatusOr<v1::IndexInfo> GetIndex(const std::string& table, const std::string& name) {
    v1::ListIndexesRequest request;
    request.set_table(table);
    v1::ListIndexesResponse response;
    grpc::Status status = Call(&v1::TableOps::Stub::ListIndexes, request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    for (const auto& index : response.indexes()) {
      if (index.name() == name) return index;
    }
    return absl::NotFoundError(absl::StrCat("index ", name, " not listed for table ", table));
  }

  // (WaitConverged: entries < 0 accepts any entry_count.)
  // Polls ListIndexes until `done` holds for the index. Gives up early when the
  // index is `failed` and `done` does not accept that.
  absl::StatusOr<v1::IndexInfo> WaitForIndex(const std::string& table, const std::string& name,
                                             const std::function<bool(const v1::IndexInfo&)>& done,
                                             absl::Duration timeout, const std::string& what) {
    absl::Time give_up = absl::Now() + timeout;
    absl::StatusOr<v1::IndexInfo> last = absl::UnknownError("never polled");
    while (true) {
      last = GetIndex(table, name);
      // The index is listed from the moment CreateIndex returns: an error
      // (not listed, or ListIndexes refused) will not go away by waiting.
      if (!last.ok()) {
        return absl::Status(last.status().code(),
                            absl::StrCat("waiting for ", what, ": ", last.status().message()));
      }
      if (done(*last)) return last;
      if (last->status() == "failed") {
        return absl::FailedPreconditionError(absl::StrCat(
            "index ", name, " failed while waiting for ", what, ": ", last->DebugString()));
      }
      if (absl::Now() >= give_up) {
        return absl::DeadlineExceededError(absl::StrCat("index ", name, " never reached ", what,
                                                        " within ", absl::FormatDuration(timeout),
                                                        "; last seen: ", last->DebugString()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  absl::StatusOr<v1::IndexInfo> WaitReady(const std::string& table, const std::string& name,
                                          absl::Duration timeout = kBuildTimeout) {
    return WaitForIndex(
        table, name, [](const v1::IndexInfo& i) { return i.status() == "ready"; }, timeout,
        "ready");
  }

  // Ready, no shard awaiting a recount, and exactly the entries the files hold.
  absl::StatusOr<v1::IndexInfo> WaitConverged(const std::string& table, const std::string& name,
                                              int64_t entries,
                                              absl::Duration timeout = kBuildTimeout) {
    return WaitForIndex(
        table, name,
        [entries](const v1::IndexInfo& i) {
          return i.status() == "ready" && i.stale_shards() == 0 &&
                 (entries < 0 || i.entry_count() == entries);
        },
        timeout, absl::StrCat("convergence (ready, stale_shards 0, entry_count ", entries, ")"));
  }

  // The truth of an index on `key_columns` of `table`, with the rows as
  // `row_columns` (the same list the test's SELECTs name), from every node.
  Truth ReadTruth(const std::string& table, const std::vector<std::string>& key_columns,
                  const std::vector<std::string>& row_columns) {
    Truth truth;
    std::vector<std::string> quoted_keys, not_null, quoted_rows;
    for (const auto& c : key_columns) {
      quoted_keys.push_back(QuoteIdentifier(c));
      not_null.push_back(QuoteIdentifier(c) + " IS NOT NULL");
    }
    for (const auto& c : row_columns) quoted_rows.push_back(QuoteIdentifier(c));
    const std::string sql =
        absl::StrCat("SELECT _virtualShard, ", absl::StrJoin(quoted_keys, ", "), ", ",
                     absl::StrJoin(quoted_rows, ", "), ", (", absl::StrJoin(not_null, " AND "),
                     ") FROM ", QuoteIdentifier(table));
    const int keys = static_cast<int>(key_columns.size());
    for (int n = 0; n < cluster_->node_count(); ++n) {
      DatabaseOptions options;
      options.read_only = true;
      auto db = Database::Open(cluster_->node_database(n), options);
      if (!db.ok()) {
        ADD_FAILURE() << "node " << n << ": " << db.status();
        return truth;
      }
      absl::Status read = (*db)->ForEachRow(sql, [&](const Statement& row) {
        ++truth.total_rows;
        if (row.ColumnInt64(1 + keys + static_cast<int>(row_columns.size())) == 0) {
          return absl::OkStatus();  // a NULL in the key: not indexed
        }
        std::vector<Value> key;
        std::vector<std::string> rendered_key;
        for (int k = 0; k < keys; ++k) {
          key.push_back(row.ColumnValue(1 + k));
          rendered_key.push_back(Render(key.back()));
        }
        std::vector<std::string> rendered_row;
        for (size_t r = 0; r < row_columns.size(); ++r) {
          rendered_row.push_back(Render(row.ColumnValue(1 + keys + static_cast<int>(r))));
        }
        std::string k = absl::StrJoin(rendered_key, "|");
        truth.key_values[k] = key;
        truth.shards[k].insert(row.ColumnInt64(0));
        truth.rows[k].insert(absl::StrJoin(rendered_row, "|"));
        return absl::OkStatus();
      });
      if (!read.ok()) ADD_FAILURE() << "node " << n << ": " << sql << ": " << read;
    }
    for (const auto& [key, shards] : truth.shards) truth.entries += shards.size();
    return truth;
  }

  Route Explain(const std::string& sql, const std::vector<Value>& params) {
    Route route;
    v1::ExecuteResponse response;
    route.status = Run("EXPLAIN " + sql, params, &response);
    if (!route.status.ok() || response.result_sets_size() != 1) {
      route.consistent = false;
      return route;
    }
    const v1::ResultSet& set = response.result_sets(0);
    route.columns.assign(set.columns().begin(), set.columns().end());
    const int route_at = ColumnIndex(set, "route");
    const int shard_at = ColumnIndex(set, "shard_id");
    const int index_at = ColumnIndex(set, "index_name");
    route.rows = set.rows_size();
    for (int r = 0; r < set.rows_size(); ++r) {
      const v1::Row& row = set.rows(r);
      std::string this_route =
          route_at >= 0 && route_at < row.values_size() ? row.values(route_at).text() : "";
      std::string this_index =
          index_at >= 0 && index_at < row.values_size() ? row.values(index_at).text() : "";
      if (r == 0) {
        route.route = this_route;
        route.index_name = this_index;
      } else if (this_route != route.route || this_index != route.index_name) {
        route.consistent = false;
      }
      if (shard_at >= 0 && shard_at < row.values_size()) {
        route.shards.insert(row.values(shard_at).integer());
      }
    }
    return route;
  }

  // The rows of a SELECT, rendered, order-insensitive.
  std::multiset<std::string> SelectRows(const std::string& sql, const std::vector<Value>& params) {
    std::multiset<std::string> rows;
    const v1::ResultSet set = Query(sql, params);
    for (const auto& row : set.rows()) rows.insert(RenderRow(row));
    return rows;
  }

  int ActiveShards(const std::string& table) {
    v1::DescribeTableRequest request;
    request.set_table(table);
    v1::DescribeTableResponse response;
    grpc::Status status = Call(&v1::TableOps::Stub::DescribeTable, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    int active = 0;
    for (const auto& shard : response.shards()) active += shard.status() == "active";
    return active;
  }

  // The shard of a shard-key value, as the planner routes it.
  int64_t ShardOf(const std::string& table, const std::string& key_column, const Value& key) {
    Route route =
        Explain(absl::StrCat("SELECT * FROM ", table, " WHERE ", key_column, " = ?"), {key});
    EXPECT_EQ(route.route, "shard_key") << route.Describe();
    EXPECT_EQ(route.shards.size(), 1u) << route.Describe();
    return route.shards.empty() ? -1 : *route.shards.begin();
  }
};

// ---------------------------------------------------------------------------
// 1. A build over existing rows routes every value to exactly its shards.

TEST_F(IndexIntegrationTest, BuildOverExistingRowsRoutesEveryValueToExactlyItsShards) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  // Shard key g; every value of c lives under at most three values of g, so
  // the shard sets range from one shard to three, never "all of them".
  ASSERT_NO_FATAL_FAILURE(CreateTable(
      "CREATE TABLE items (g INTEGER, id INTEGER, c TEXT, n INTEGER, PRIMARY KEY (g, id))", 6,
      100));
  std::vector<std::string> rows;
  for (int k = 0; k < 200; ++k) {
    const int copies = k % 19 + 1;
    for (int j = 0; j < copies; ++j) {
      rows.push_back(absl::StrCat("(", k * 3 + j % 3, ", ", k * 100 + j, ", ",
                                  QuoteString(absl::StrCat("value-", k)), ", ", j, ")"));
    }
  }
  for (int j = 0; j < 100; ++j) rows.push_back(absl::StrCat("(", 9000 + j, ", ", j, ", NULL, 0)"));
  ASSERT_NO_FATAL_FAILURE(InsertRows("items (g, id, c, n)", rows));
  const std::vector<std::string> row_columns = {"g", "id", "c", "n"};
  Truth truth = ReadTruth("items", {"c"}, row_columns);
  ASSERT_EQ(truth.total_rows, static_cast<int64_t>(rows.size()));
  ASSERT_EQ(truth.key_values.size(), 200u);

  // Before any index: scatter over every active shard.
  Route before = Explain("SELECT * FROM items WHERE c = ?", {TextValue("value-5")});
  EXPECT_EQ(before.route, "scatter") << before.Describe();
  EXPECT_EQ(before.rows, 6) << before.Describe();

  v1::ExecuteResponse created;
  grpc::Status status = Run("CREATE INDEX items_c ON items (c)", {}, &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(created.result_sets_size(), 0);
  auto listed = GetIndex("items", "items_c");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->status() == "building" || listed->status() == "ready") << listed->status();

  auto ready = WaitReady("items", "items_c");
  ASSERT_TRUE(ready.ok()) << ready.status();
  auto converged = WaitConverged("items", "items_c", truth.entries);
  ASSERT_TRUE(converged.ok()) << converged.status();
  EXPECT_EQ(converged->name(), "items_c");
  EXPECT_EQ(converged->table(), "items");
  ASSERT_EQ(converged->columns_size(), 1);
  EXPECT_EQ(converged->columns(0), "c");
  EXPECT_EQ(converged->type(), "hash");
  EXPECT_EQ(converged->error(), "");
  EXPECT_GT(converged->created_at_ms(), 0);
  EXPECT_EQ(converged->entry_count(), truth.entries);

  // EXPLAIN's columns, index_name last.
  Route first = Explain("SELECT * FROM items WHERE c = ?", {TextValue("value-0")});
  EXPECT_EQ(first.columns, (std::vector<std::string>{"route", "shard_id", "node_id", "sql", "merge",
                                                     "index_name"}));

  // Every value: exactly its shards, and exactly its rows.
  const std::string select = "SELECT g, id, c, n FROM items WHERE c = ?";
  for (const auto& [key, values] : truth.key_values) {
    Route route = Explain(select, values);
    EXPECT_TRUE(route.consistent) << key << ": " << route.Describe();
    EXPECT_EQ(route.route, "virtual_index") << key << ": " << route.Describe();
    EXPECT_EQ(route.index_name, "items_c") << key;
    EXPECT_EQ(route.shards, truth.shards[key]) << key << ": explain " << ShardList(route.shards)
                                               << ", files " << ShardList(truth.shards[key]);
    EXPECT_EQ(SelectRows(select, values), truth.rows[key]) << key;
  }
  // The same answers from a scatter (`c || ''` pins nothing), for a sample.
  int sampled = 0;
  for (const auto& [key, values] : truth.key_values) {
    if (++sampled % 5 != 0) continue;
    const std::string unpinned = "SELECT g, id, c, n FROM items WHERE c || '' = ?";
    Route route = Explain(unpinned, values);
    EXPECT_EQ(route.route, "scatter") << key << ": " << route.Describe();
    EXPECT_EQ(SelectRows(unpinned, values), SelectRows(select, values)) << key;
  }
  // The EXPLAIN rows name the node each shard lives on.
  {
    v1::DescribeTableRequest request;
    request.set_table("items");
    v1::DescribeTableResponse described;
    ASSERT_TRUE(IsOk(Call(&v1::TableOps::Stub::DescribeTable, request, &described)));
    std::map<int64_t, std::string> node_of;
    for (const auto& shard : described.shards()) node_of[shard.shard_id()] = shard.node_id();
    v1::ExecuteResponse response;
    ASSERT_TRUE(
        IsOk(Run("EXPLAIN SELECT * FROM items WHERE c = ?", {TextValue("value-18")}, &response)));
    ASSERT_EQ(response.result_sets_size(), 1);
    for (const auto& row : response.result_sets(0).rows()) {
      ASSERT_GE(row.values_size(), 3);
      EXPECT_EQ(row.values(2).text(), node_of[row.values(1).integer()]);
    }
  }

  // A value no row holds: one shard is asked, nothing comes back.
  Route absent = Explain(select, {TextValue("no-such-value")});
  EXPECT_EQ(absent.route, "virtual_index") << absent.Describe();
  EXPECT_EQ(absent.rows, 1) << absent.Describe();
  EXPECT_TRUE(SelectRows(select, {TextValue("no-such-value")}).empty());

  // IN: the union of the values' shards, and the union of their rows. Three
  // values on different shards whose union is not every shard (so that a
  // scatter could not pass for the union).
  {
    std::set<int64_t> shards;
    std::multiset<std::string> expected;
    std::vector<Value> params;
    for (const auto& [key, key_shards] : truth.shards) {
      std::set<int64_t> with = shards;
      with.insert(key_shards.begin(), key_shards.end());
      if (with.size() == shards.size() || with.size() > 4) continue;
      shards = with;
      expected.insert(truth.rows[key].begin(), truth.rows[key].end());
      params.push_back(truth.key_values[key][0]);
      if (params.size() == 3) break;
    }
    ASSERT_EQ(params.size(), 3u) << "the data has no three such values";
    const std::string in = "SELECT g, id, c, n FROM items WHERE c IN (?, ?, ?)";
    Route route = Explain(in, params);
    EXPECT_EQ(route.route, "virtual_index") << route.Describe();
    EXPECT_EQ(route.index_name, "items_c");
    EXPECT_EQ(route.shards, shards) << route.Describe() << " vs files " << ShardList(shards);
    EXPECT_EQ(SelectRows(in, params), expected);
  }

  // SHOW INDEXES, SHOW INDEXES FROM, DESCRIBE, ListIndexes.
  {
    ASSERT_NO_FATAL_FAILURE(CreateTable("CREATE TABLE others (id INTEGER PRIMARY KEY, x TEXT)", 2));
    v1::CreateIndexResponse other = CreateIndex("others_x", "others", {"x"});
    v1::ExecuteResponse show;
    ASSERT_TRUE(IsOk(Run("SHOW INDEXES", {}, &show)));
    const v1::ResultSet* all = Set(show, "INDEXES");
    ASSERT_NE(all, nullptr);
    EXPECT_EQ(std::vector<std::string>(all->columns().begin(), all->columns().end()),
              (std::vector<std::string>{"index_name", "table_name", "columns", "index_type",
                                        "status", "created_at"}));
    std::set<std::string> names;
    for (const auto& row : all->rows()) {
      ASSERT_EQ(row.values_size(), 6);
      names.insert(row.values(0).text());
      if (row.values(0).text() != "items_c") continue;
      EXPECT_EQ(row.values(1).text(), "items");
      EXPECT_EQ(row.values(2).text(), "c");
      EXPECT_EQ(row.values(3).text(), "hash");
      EXPECT_EQ(row.values(4).text(), "ready");
      EXPECT_NE(row.values(5).kind_case(), Value::kNullValue);
    }
    EXPECT_EQ(names, (std::set<std::string>{"items_c", "others_x"}));

    v1::ExecuteResponse from;
    ASSERT_TRUE(IsOk(Run("SHOW INDEXES FROM items", {}, &from)));
    const v1::ResultSet* only = Set(from, "INDEXES");
    ASSERT_NE(only, nullptr);
    ASSERT_EQ(only->rows_size(), 1);
    EXPECT_EQ(only->rows(0).values(0).text(), "items_c");

    v1::ExecuteResponse describe;
    ASSERT_TRUE(IsOk(Run("DESCRIBE items", {}, &describe)));
    const v1::ResultSet* indexes = Set(describe, "INDEXES");
    ASSERT_NE(indexes, nullptr);
    EXPECT_EQ(std::vector<std::string>(indexes->columns().begin(), indexes->columns().end()),
              (std::vector<std::string>{"index_name", "columns", "index_type", "status"}));
    ASSERT_EQ(indexes->rows_size(), 1);
    ASSERT_EQ(indexes->rows(0).values_size(), 4);
    EXPECT_EQ(indexes->rows(0).values(0).text(), "items_c");
    EXPECT_EQ(indexes->rows(0).values(1).text(), "c");
    EXPECT_EQ(indexes->rows(0).values(2).text(), "hash");
    EXPECT_EQ(indexes->rows(0).values(3).text(), "ready");

    v1::ListIndexesRequest request;
    v1::ListIndexesResponse response;
    ASSERT_TRUE(IsOk(Call(&v1::TableOps::Stub::ListIndexes, request, &response)));
    std::set<std::string> listed_names;
    for (const auto& index : response.indexes()) listed_names.insert(index.name());
    EXPECT_EQ(listed_names, (std::set<std::string>{"items_c", "others_x"}));
    request.set_table("items");
    ASSERT_TRUE(IsOk(Call(&v1::TableOps::Stub::ListIndexes, request, &response)));
    ASSERT_EQ(response.indexes_size(), 1);
    EXPECT_EQ(response.indexes(0).name(), "items_c");
    EXPECT_EQ(response.indexes(0).status(), "ready");

    // An index over an empty table is ready with no entries.
    auto empty = WaitConverged("others", "others_x", 0);
    EXPECT_TRUE(empty.ok()) << empty.status();
  }
}

// ---------------------------------------------------------------------------
// 2. Writes while the build runs (and after) never hide a row from the index.

TEST_F(IndexIntegrationTest, WritesDuringTheBuildAreNeverLost) {
  // Throttled scans: the build takes several seconds, so the writes below
  // land while it is `building` (checked, not assumed).
  ASSERT_NO_FATAL_FAILURE(StartCluster(2, {"--scan_rows_per_s=60"}));
  ASSERT_NO_FATAL_FAILURE(CreateTable(
      "CREATE TABLE events (g INTEGER, id INTEGER, c TEXT, PRIMARY KEY (g, id))", 6, 50));
  std::vector<std::string> rows;
  for (int k = 0; k < 150; ++k) {
    for (int j = 0; j < 10; ++j) {
      rows.push_back(absl::StrCat("(", k * 3 + j % 3, ", ", k * 100 + j, ", ",
                                  QuoteString(absl::StrCat("v", k)), ")"));
    }
  }
  for (int j = 0; j < 60; ++j) rows.push_back(absl::StrCat("(", 9000 + j % 7, ", ", j, ", NULL)"));
  ASSERT_NO_FATAL_FAILURE(InsertRows("events (g, id, c)", rows));
  const std::vector<std::string> row_columns = {"g", "id", "c"};
  const std::string select = "SELECT g, id, c FROM events WHERE c = ?";

  v1::CreateIndexResponse created = CreateIndex("events_c", "events", {"c"});
  ASSERT_TRUE(created.created());

  // While building: new values, rows moved to new values (all of a value's
  // rows, and half of them), values set to NULL, values deleted.
  std::vector<std::string> inserted;
  for (int k = 0; k < 20; ++k) {
    inserted.push_back(absl::StrCat("(", 7000 + k, ", ", k, ", 'new", k, "')"));
    inserted.push_back(absl::StrCat("(", 7100 + k, ", ", k, ", 'new", k, "')"));
  }
  ASSERT_NO_FATAL_FAILURE(InsertRows("events (g, id, c)", inserted));
  std::vector<std::string> gone;  // values no row holds any more
  for (int k = 0; k < 10; ++k) {
    ASSERT_TRUE(IsOk(Run("UPDATE events SET c = ? WHERE c = ?",
                         {TextValue(absl::StrCat("moved", k)), TextValue(absl::StrCat("v", k))})));
    gone.push_back(absl::StrCat("v", k));
  }
  for (int k = 10; k < 20; ++k) {
    ASSERT_TRUE(IsOk(Run("UPDATE events SET c = ? WHERE c = ? AND id % 10 < 5",
                         {TextValue(absl::StrCat("split", k)), TextValue(absl::StrCat("v", k))})));
  }
  ASSERT_TRUE(IsOk(Run("UPDATE events SET c = NULL WHERE c = 'v20'")));
  gone.push_back("v20");
  for (int k = 30; k < 40; ++k) {
    v1::ExecuteResponse deleted;
    ASSERT_TRUE(
        IsOk(Run("DELETE FROM events WHERE c = ?", {TextValue(absl::StrCat("v", k))}, &deleted)));
    EXPECT_EQ(deleted.rows_affected(), 10);
    gone.push_back(absl::StrCat("v", k));
  }
  // Not ready yet: the planner must not use the index.
  Route during = Explain(select, {TextValue("v50")});
  auto still = GetIndex("events", "events_c");
  ASSERT_TRUE(still.ok()) << still.status();
  ASSERT_EQ(still->status(), "building")
      << "the build ended before the writes did; the test needs a slower --scan_rows_per_s";
  EXPECT_EQ(during.route, "scatter") << during.Describe();
  EXPECT_EQ(during.rows, 6) << during.Describe();

  Truth truth = ReadTruth("events", {"c"}, row_columns);
  auto ready = WaitReady("events", "events_c", kSlowBuildTimeout);
  ASSERT_TRUE(ready.ok()) << ready.status();
  // At ready (perhaps before the recount): a superset for every value.
  for (const auto& [key, values] : truth.key_values) {
    Route route = Explain(select, values);
    EXPECT_EQ(route.route, "virtual_index") << key << ": " << route.Describe();
    for (int64_t shard : truth.shards[key]) {
      EXPECT_TRUE(route.shards.count(shard))
          << key << " lives on shard " << shard << "; explain " << ShardList(route.shards);
    }
    EXPECT_EQ(SelectRows(select, values), truth.rows[key]) << key;
  }
  auto converged = WaitConverged("events", "events_c", truth.entries, kSlowBuildTimeout);
  ASSERT_TRUE(converged.ok()) << converged.status();
  for (const auto& [key, values] : truth.key_values) {
    Route route = Explain(select, values);
    EXPECT_EQ(route.shards, truth.shards[key]) << key << ": explain " << ShardList(route.shards)
                                               << ", files " << ShardList(truth.shards[key]);
  }
  for (const auto& value : gone) {
    EXPECT_EQ(truth.key_values.count("t:" + value), 0u) << value;
    Route route = Explain(select, {TextValue(value)});
    EXPECT_EQ(route.route, "virtual_index") << value << ": " << route.Describe();
    EXPECT_EQ(route.rows, 1) << value << " has no entries left: " << route.Describe();
    EXPECT_TRUE(SelectRows(select, {TextValue(value)}).empty()) << value;
  }
  for (int k = 0; k < 20; ++k) {
    EXPECT_TRUE(truth.key_values.count(absl::StrCat("t:new", k))) << k;
  }

  // Once ready, every write keeps the index a superset at once, and the
  // entries converge again.
  ASSERT_TRUE(
      IsOk(Run("INSERT INTO events (g, id, c) VALUES (8000, 1, 'late'), (8001, 1, 'late'), "
               "(8002, 1, 'late')")));
  ASSERT_TRUE(IsOk(Run("UPDATE events SET c = 'late-moved' WHERE c = 'v41' AND id % 10 < 3")));
  ASSERT_TRUE(IsOk(Run("DELETE FROM events WHERE c = 'v42'")));
  Truth after = ReadTruth("events", {"c"}, row_columns);
  ASSERT_TRUE(after.key_values.count("t:late"));
  ASSERT_TRUE(after.key_values.count("t:late-moved"));
  for (const auto& [key, values] : after.key_values) {
    Route route = Explain(select, values);
    for (int64_t shard : after.shards[key]) {
      EXPECT_TRUE(route.shards.count(shard))
          << key << " lives on shard " << shard << "; explain " << ShardList(route.shards);
    }
  }
  EXPECT_EQ(SelectRows(select, {TextValue("late")}), after.rows["t:late"]);
  auto again = WaitConverged("events", "events_c", after.entries, kSlowBuildTimeout);
  ASSERT_TRUE(again.ok()) << again.status();
  for (const char* value : {"late", "late-moved", "v41"}) {
    Route route = Explain(select, {TextValue(value)});
    EXPECT_EQ(route.shards, after.shards[absl::StrCat("t:", value)]) << value;
  }
  Route deleted = Explain(select, {TextValue("v42")});
  EXPECT_EQ(deleted.rows, 1) << deleted.Describe();
}

// ---------------------------------------------------------------------------
// 3. A worker SIGKILLed mid-build: another one finishes the job, and the
//    result is the same as an undisturbed build's.

TEST_F(IndexIntegrationTest, BuildSurvivesItsWorkerBeingKilled) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(1, {"--scan_rows_per_s=150"}));
  ASSERT_NO_FATAL_FAILURE(
      CreateTable("CREATE TABLE scans (id INTEGER PRIMARY KEY, c INTEGER, pad TEXT)", 4, 50));
  std::vector<std::string> rows;
  for (int id = 0; id < 1200; ++id) {
    // About three rows per value, so most values live on one to three shards.
    rows.push_back(absl::StrCat("(", id, ", ", id % 397 == 13 ? "NULL" : absl::StrCat(id % 397),
                                ", 'row ", id, "')"));
  }
  ASSERT_NO_FATAL_FAILURE(InsertRows("scans (id, c, pad)", rows));
  Truth truth = ReadTruth("scans", {"c"}, {"id", "c", "pad"});
  ASSERT_EQ(truth.key_values.size(), 396u);

  CreateIndex("scans_c1", "scans", {"c"});
  auto started = WaitForIndex(
      "scans", "scans_c1",
      [](const v1::IndexInfo& i) { return i.status() != "building" || i.entry_count() > 0; },
      kSlowBuildTimeout, "some entries while building");
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_EQ(started->status(), "building")
      << "the build ended before it could be interrupted; slow --scan_rows_per_s further";
  absl::Status killed = cluster_->KillWorker(0, SIGKILL);
  ASSERT_TRUE(killed.ok()) << killed;
  auto interrupted = GetIndex("scans", "scans_c1");
  ASSERT_TRUE(interrupted.ok()) << interrupted.status();
  ASSERT_EQ(interrupted->status(), "building") << "the worker was killed after the build ended";
  absl::Status replaced = cluster_->StartWorker(1);
  ASSERT_TRUE(replaced.ok()) << replaced;
  EXPECT_EQ(cluster_->worker_count(), 2);

  auto first = WaitReady("scans", "scans_c1", kSlowBuildTimeout);
  ASSERT_TRUE(first.ok()) << first.status();
  auto first_converged = WaitConverged("scans", "scans_c1", truth.entries, kSlowBuildTimeout);
  ASSERT_TRUE(first_converged.ok()) << first_converged.status();
  const std::string select = "SELECT id, c, pad FROM scans WHERE c = ?";
  std::map<std::string, std::set<int64_t>> first_shards;
  for (const auto& [key, values] : truth.key_values) {
    Route route = Explain(select, values);
    EXPECT_EQ(route.route, "virtual_index") << key << ": " << route.Describe();
    EXPECT_EQ(route.index_name, "scans_c1") << key;
    first_shards[key] = route.shards;
    EXPECT_EQ(route.shards, truth.shards[key]) << key;
    EXPECT_EQ(SelectRows(select, values), truth.rows[key]) << key;
  }

  // An undisturbed build of the same column.
  CreateIndex("scans_c2", "scans", {"c"});
  auto second = WaitConverged("scans", "scans_c2", truth.entries, kSlowBuildTimeout);
  ASSERT_TRUE(second.ok()) << second.status();
  auto first_now = GetIndex("scans", "scans_c1");
  ASSERT_TRUE(first_now.ok()) << first_now.status();
  EXPECT_EQ(first_now->entry_count(), second->entry_count());
  // Route through the second one alone.
  ASSERT_TRUE(IsOk(Run("DROP INDEX scans_c1")));
  for (const auto& [key, values] : truth.key_values) {
    Route route = Explain(select, values);
    EXPECT_EQ(route.route, "virtual_index") << key << ": " << route.Describe();
    EXPECT_EQ(route.index_name, "scans_c2") << key;
    EXPECT_EQ(route.shards, first_shards[key]) << key;
  }
}

// ---------------------------------------------------------------------------
// 4. UNIQUE indexes.

TEST_F(IndexIntegrationTest, UniqueIndexRefusesDuplicatesAcrossShards) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_NO_FATAL_FAILURE(
      CreateTable("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, name TEXT)", 8));
  std::vector<std::string> rows;
  for (int id = 1; id <= 50; ++id) {
    rows.push_back(absl::StrCat("(", id, ", 'user", id, "@example.com', 'user ", id, "')"));
  }
  ASSERT_NO_FATAL_FAILURE(InsertRows("users (id, email, name)", rows));
  v1::ExecuteResponse created;
  ASSERT_TRUE(IsOk(Run("CREATE UNIQUE INDEX users_email ON users (email)", {}, &created)));
  EXPECT_EQ(created.result_sets_size(), 0);
  auto ready = WaitReady("users", "users_email");
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(ready->type(), "unique");
  auto converged = WaitConverged("users", "users_email", 50);
  ASSERT_TRUE(converged.ok()) << converged.status();

  // user7's email again, under a key on user 7's shard and under one on another.
  const int64_t home = ShardOf("users", "id", IntegerValue(7));
  int64_t same_shard = -1, other_shard = -1;
  for (int64_t id = 1000; id < 2000 && (same_shard < 0 || other_shard < 0); ++id) {
    int64_t shard = ShardOf("users", "id", IntegerValue(id));
    if (shard == home && same_shard < 0) same_shard = id;
    if (shard != home && other_shard < 0) other_shard = id;
  }
  ASSERT_GE(same_shard, 0);
  ASSERT_GE(other_shard, 0);
  for (int64_t id : {same_shard, other_shard}) {
    SCOPED_TRACE(absl::StrCat("id ", id));
    ExpectError(Run("INSERT INTO users (id, email, name) VALUES (?, 'user7@example.com', 'dup')",
                    {IntegerValue(id)}),
                grpc::StatusCode::ALREADY_EXISTS, "UNIQUE_VIOLATION");
    EXPECT_EQ(Count("SELECT count(*) FROM users WHERE id = ?", {IntegerValue(id)}), 0);
  }
  EXPECT_EQ(Count("SELECT count(*) FROM users"), 50);
  EXPECT_EQ(ReadTruth("users", {"email"}, {"id"}).total_rows, 50);

  // NULLs are not indexed: any number of rows may have no email.
  ASSERT_TRUE(
      IsOk(Run("INSERT INTO users (id, email, name) VALUES (500, NULL, 'a'), (501, NULL, 'b')")));

  // 16 clients race for one new email: exactly one wins.
  constexpr int kRacers = 16;
  std::vector<grpc::Status> outcomes(kRacers);
  std::atomic<bool> go{false};
  std::vector<std::thread> racers;
  for (int i = 0; i < kRacers; ++i) {
    racers.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      outcomes[i] = Run("INSERT INTO users (id, email, name) VALUES (?, 'race@example.com', ?)",
                        {IntegerValue(3000 + i), TextValue(absl::StrCat("racer ", i))});
    });
  }
  go = true;
  for (auto& t : racers) t.join();
  int winners = 0;
  for (int i = 0; i < kRacers; ++i) {
    if (outcomes[i].ok()) {
      ++winners;
      continue;
    }
    SCOPED_TRACE(absl::StrCat("racer ", i));
    ExpectError(outcomes[i], grpc::StatusCode::ALREADY_EXISTS, "UNIQUE_VIOLATION");
  }
  EXPECT_EQ(winners, 1);
  Truth truth = ReadTruth("users", {"email"}, {"id"});
  EXPECT_EQ(truth.rows["t:race@example.com"].size(), 1u) << "rows holding the email on the nodes";
  EXPECT_EQ(Count("SELECT count(*) FROM users WHERE email = 'race@example.com'"), 1);
  EXPECT_EQ(truth.total_rows, 50 + 2 + 1);

  // A UNIQUE build over a column that already holds a duplicate, on two
  // different shards, fails and names the value.
  ASSERT_NO_FATAL_FAILURE(CreateTable("CREATE TABLE codes (id INTEGER PRIMARY KEY, code TEXT)", 4));
  rows.clear();
  for (int id = 1; id <= 40; ++id) rows.push_back(absl::StrCat("(", id, ", 'code-", id, "')"));
  ASSERT_NO_FATAL_FAILURE(InsertRows("codes (id, code)", rows));
  const int64_t first_home = ShardOf("codes", "id", IntegerValue(100));
  int64_t elsewhere = -1;
  for (int64_t id = 101; id < 200 && elsewhere < 0; ++id) {
    if (ShardOf("codes", "id", IntegerValue(id)) != first_home) elsewhere = id;
  }
  ASSERT_GE(elsewhere, 0);
  ASSERT_TRUE(
      IsOk(Run("INSERT INTO codes (id, code) VALUES (100, 'dup-code-42'), (?, 'dup-code-42')",
               {IntegerValue(elsewhere)})));
  v1::CreateIndexRequest request;
  request.set_name("codes_code");
  request.set_table("codes");
  request.add_columns("code");
  request.set_unique(true);
  v1::CreateIndexResponse response;
  grpc::Status status = Call(&v1::TableOps::Stub::CreateIndex, request, &response);
  ASSERT_TRUE(status.ok()) << "the duplicate is found by the build, not by the call: "
                           << status.error_message();
  EXPECT_EQ(response.index().type(), "unique");
  auto failed = WaitForIndex(
      "codes", "codes_code", [](const v1::IndexInfo& i) { return i.status() != "building"; },
      kBuildTimeout, "the end of the build");
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->status(), "failed");
  EXPECT_NE(failed->error().find("dup-code-42"), std::string::npos) << failed->error();
  // A failed index routes nothing.
  Route route = Explain("SELECT * FROM codes WHERE code = ?", {TextValue("code-3")});
  EXPECT_EQ(route.route, "scatter") << route.Describe();
  EXPECT_EQ(route.rows, 4) << route.Describe();
}

// ---------------------------------------------------------------------------
// 5. CREATE INDEX errors; DROP INDEX; DROP TABLE and RENAME carry indexes along.

TEST_F(IndexIntegrationTest, CreateIndexErrors) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_NO_FATAL_FAILURE(
      CreateTable("CREATE TABLE things (id INTEGER PRIMARY KEY, c TEXT, d INTEGER)", 4));
  CreateIndex("things_c", "things", {"c"});

  v1::CreateIndexRequest request;
  request.set_name("things_c");
  request.set_table("things");
  request.add_columns("d");
  v1::CreateIndexResponse response;
  ExpectError(Call(&v1::TableOps::Stub::CreateIndex, request, &response),
              grpc::StatusCode::ALREADY_EXISTS, "INDEX_ALREADY_EXISTS");
  ExpectError(Run("CREATE INDEX things_c ON things (c)"), grpc::StatusCode::ALREADY_EXISTS,
              "INDEX_ALREADY_EXISTS");
  request.set_if_not_exists(true);
  grpc::Status status = Call(&v1::TableOps::Stub::CreateIndex, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(response.created());
  EXPECT_EQ(response.index().name(), "things_c");
  ASSERT_EQ(response.index().columns_size(), 1);
  EXPECT_EQ(response.index().columns(0), "c") << "the existing index, untouched";
  EXPECT_TRUE(IsOk(Run("CREATE INDEX IF NOT EXISTS things_c ON things (c)")));

  v1::CreateIndexRequest ghost;
  ghost.set_name("ghosts_c");
  ghost.set_table("ghosts");
  ghost.add_columns("c");
  ExpectError(Call(&v1::TableOps::Stub::CreateIndex, ghost, &response), grpc::StatusCode::NOT_FOUND,
              "TABLE_NOT_FOUND");
  ExpectError(Run("CREATE INDEX ghosts_c ON ghosts (c)"), grpc::StatusCode::NOT_FOUND,
              "TABLE_NOT_FOUND");
  v1::CreateIndexRequest bad_column;
  bad_column.set_name("things_nope");
  bad_column.set_table("things");
  bad_column.add_columns("nope");
  ExpectError(Call(&v1::TableOps::Stub::CreateIndex, bad_column, &response),
              grpc::StatusCode::INVALID_ARGUMENT, "");
  ExpectError(Run("CREATE INDEX things_nope ON things (c, nope)"),
              grpc::StatusCode::INVALID_ARGUMENT, "");

  // None of the refused calls left an index behind.
  v1::ListIndexesRequest all;
  v1::ListIndexesResponse listed;
  ASSERT_TRUE(IsOk(Call(&v1::TableOps::Stub::ListIndexes, all, &listed)));
  ASSERT_EQ(listed.indexes_size(), 1);
  EXPECT_EQ(listed.indexes(0).name(), "things_c");
  ASSERT_EQ(listed.indexes(0).columns_size(), 1);
  EXPECT_EQ(listed.indexes(0).columns(0), "c");
}

TEST_F(IndexIntegrationTest, DropIndexDropTableAndRename) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const std::string table_sql = "CREATE TABLE t5 (id INTEGER PRIMARY KEY, c TEXT)";
  ASSERT_NO_FATAL_FAILURE(CreateTable(table_sql, 4));
  ASSERT_NO_FATAL_FAILURE(CreateTable("CREATE TABLE other5 (id INTEGER PRIMARY KEY, c TEXT)", 2));
  std::vector<std::string> rows;
  for (int id = 0; id < 200; ++id) rows.push_back(absl::StrCat("(", id, ", 'c", id % 10, "')"));
  ASSERT_NO_FATAL_FAILURE(InsertRows("t5 (id, c)", rows));
  CreateIndex("t5_c", "t5", {"c"});
  auto ready = WaitReady("t5", "t5_c");
  ASSERT_TRUE(ready.ok()) << ready.status();
  const std::string select = "SELECT * FROM t5 WHERE c = ?";
  EXPECT_EQ(Explain(select, {TextValue("c1")}).route, "virtual_index");

  // The right name on the wrong table: not found, and still there.
  v1::DropIndexRequest wrong_table;
  wrong_table.set_name("t5_c");
  wrong_table.set_table("other5");
  v1::DropIndexResponse dropped;
  ExpectError(Call(&v1::TableOps::Stub::DropIndex, wrong_table, &dropped),
              grpc::StatusCode::NOT_FOUND, "INDEX_NOT_FOUND");
  EXPECT_TRUE(GetIndex("t5", "t5_c").ok());

  v1::ExecuteResponse response;
  ASSERT_TRUE(IsOk(Run("DROP INDEX t5_c", {}, &response)));
  EXPECT_EQ(response.result_sets_size(), 0);
  EXPECT_EQ(GetIndex("t5", "t5_c").status().code(), absl::StatusCode::kNotFound);
  Route after_drop = Explain(select, {TextValue("c1")});
  EXPECT_EQ(after_drop.route, "scatter") << after_drop.Describe();
  EXPECT_EQ(after_drop.rows, 4) << after_drop.Describe();
  EXPECT_EQ(SelectRows(select, {TextValue("c1")}).size(), 20u);

  ExpectError(Run("DROP INDEX t5_c"), grpc::StatusCode::NOT_FOUND, "INDEX_NOT_FOUND");
  EXPECT_TRUE(IsOk(Run("DROP INDEX IF EXISTS t5_c")));
  v1::DropIndexRequest missing;
  missing.set_name("t5_c");
  ExpectError(Call(&v1::TableOps::Stub::DropIndex, missing, &dropped), grpc::StatusCode::NOT_FOUND,
              "INDEX_NOT_FOUND");
  missing.set_if_exists(true);
  dropped.set_dropped(true);
  ASSERT_TRUE(IsOk(Call(&v1::TableOps::Stub::DropIndex, missing, &dropped)));
  EXPECT_FALSE(dropped.dropped());

  // DROP INDEX … ON t, and the typed DropIndex naming the right table.
  CreateIndex("t5_c", "t5", {"c"});
  EXPECT_TRUE(IsOk(Run("DROP INDEX t5_c ON t5")));
  EXPECT_EQ(GetIndex("t5", "t5_c").status().code(), absl::StatusCode::kNotFound);
  CreateIndex("t5_c", "t5", {"c"});
  v1::DropIndexRequest right_table;
  right_table.set_name("t5_c");
  right_table.set_table("t5");
  ASSERT_TRUE(IsOk(Call(&v1::TableOps::Stub::DropIndex, right_table, &dropped)));
  EXPECT_TRUE(dropped.dropped());

  // DROP TABLE takes its indexes along; the names are free again.
  CreateIndex("t5_c", "t5", {"c"});
  auto ready_again = WaitReady("t5", "t5_c");
  ASSERT_TRUE(ready_again.ok()) << ready_again.status();
  ASSERT_TRUE(IsOk(Run("DROP TABLE t5")));
  v1::ListIndexesRequest all;
  v1::ListIndexesResponse listed;
  ASSERT_TRUE(IsOk(Call(&v1::TableOps::Stub::ListIndexes, all, &listed)));
  for (const auto& index : listed.indexes()) {
    EXPECT_NE(index.table(), "t5") << index.DebugString();
    EXPECT_NE(index.name(), "t5_c") << index.DebugString();
  }
  ASSERT_NO_FATAL_FAILURE(CreateTable(table_sql, 4));
  ASSERT_TRUE(IsOk(Run("INSERT INTO t5 (id, c) VALUES (1, 'fresh'), (2, 'fresh'), (3, 'other')")));
  CreateIndex("t5_c", "t5", {"c"});
  Truth fresh = ReadTruth("t5", {"c"}, {"id", "c"});
  ASSERT_EQ(fresh.total_rows, 3);
  auto rebuilt = WaitConverged("t5", "t5_c", fresh.entries);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status() << " (entries of the dropped table must not count)";
  Route fresh_route = Explain(select, {TextValue("fresh")});
  EXPECT_EQ(fresh_route.shards, fresh.shards["t:fresh"]) << fresh_route.Describe();
  Route old_value = Explain(select, {TextValue("c1")});
  EXPECT_EQ(old_value.rows, 1) << "c1 lived only in the dropped table: " << old_value.Describe();

  // RENAME: the index follows the table.
  ASSERT_NO_FATAL_FAILURE(CreateTable("CREATE TABLE r5 (id INTEGER PRIMARY KEY, c TEXT)", 4));
  ASSERT_NO_FATAL_FAILURE(InsertRows("r5 (id, c)", rows));
  CreateIndex("r5_c", "r5", {"c"});
  auto r5_ready = WaitReady("r5", "r5_c");
  ASSERT_TRUE(r5_ready.ok()) << r5_ready.status();
  ASSERT_TRUE(IsOk(Run("ALTER TABLE r5 RENAME TO r5_new")));
  v1::ExecuteResponse show;
  ASSERT_TRUE(IsOk(Run("SHOW INDEXES FROM r5_new", {}, &show)));
  const v1::ResultSet* indexes = Set(show, "INDEXES");
  ASSERT_NE(indexes, nullptr);
  ASSERT_EQ(indexes->rows_size(), 1);
  ASSERT_GE(indexes->rows(0).values_size(), 5);
  EXPECT_EQ(indexes->rows(0).values(0).text(), "r5_c");
  EXPECT_EQ(indexes->rows(0).values(1).text(), "r5_new");
  EXPECT_EQ(indexes->rows(0).values(4).text(), "ready");
  auto renamed = GetIndex("r5_new", "r5_c");
  ASSERT_TRUE(renamed.ok()) << renamed.status();
  EXPECT_EQ(renamed->table(), "r5_new");
  Truth truth = ReadTruth("r5_new", {"c"}, {"id", "c"});
  auto converged = WaitConverged("r5_new", "r5_c", truth.entries);
  ASSERT_TRUE(converged.ok()) << converged.status();
  const std::string renamed_select = "SELECT id, c FROM r5_new WHERE c = ?";
  for (const auto& [key, values] : truth.key_values) {
    Route route = Explain(renamed_select, values);
    EXPECT_EQ(route.route, "virtual_index") << key << ": " << route.Describe();
    EXPECT_EQ(route.index_name, "r5_c") << key;
    EXPECT_EQ(route.shards, truth.shards[key]) << key;
    EXPECT_EQ(SelectRows(renamed_select, values), truth.rows[key]) << key;
  }
}

// ---------------------------------------------------------------------------
// 6. A composite index routes full-tuple equality only.

TEST_F(IndexIntegrationTest, CompositeIndexRoutesFullTupleEqualityOnly) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_NO_FATAL_FAILURE(
      CreateTable("CREATE TABLE pairs (id INTEGER PRIMARY KEY, a TEXT, b INTEGER, note TEXT)", 6));
  std::vector<std::string> rows;
  for (int id = 0; id < 560; ++id) {  // 140 (a, b) pairs, 4 rows each
    rows.push_back(absl::StrCat("(", id, ", 'a", id % 20, "', ", id % 7, ", 'note ", id, "')"));
  }
  ASSERT_NO_FATAL_FAILURE(InsertRows("pairs (id, a, b, note)", rows));
  Truth truth = ReadTruth("pairs", {"a", "b"}, {"id", "a", "b", "note"});
  ASSERT_EQ(truth.key_values.size(), 140u);

  v1::CreateIndexResponse created = CreateIndex("pairs_ab", "pairs", {"a", "b"});
  ASSERT_EQ(created.index().columns_size(), 2);
  EXPECT_EQ(created.index().columns(0), "a");
  EXPECT_EQ(created.index().columns(1), "b");
  auto converged = WaitConverged("pairs", "pairs_ab", truth.entries);
  ASSERT_TRUE(converged.ok()) << converged.status();
  v1::ExecuteResponse show;
  ASSERT_TRUE(IsOk(Run("SHOW INDEXES FROM pairs", {}, &show)));
  const v1::ResultSet* indexes = Set(show, "INDEXES");
  ASSERT_NE(indexes, nullptr);
  ASSERT_EQ(indexes->rows_size(), 1);
  ASSERT_GE(indexes->rows(0).values_size(), 3);
  EXPECT_EQ(indexes->rows(0).values(2).text(), "a,b");

  const std::string select = "SELECT id, a, b, note FROM pairs WHERE a = ? AND b = ?";
  const std::string swapped = "SELECT id, a, b, note FROM pairs WHERE b = ? AND a = ?";
  for (const auto& [key, values] : truth.key_values) {
    Route route = Explain(select, values);
    EXPECT_EQ(route.route, "virtual_index") << key << ": " << route.Describe();
    EXPECT_EQ(route.index_name, "pairs_ab") << key;
    EXPECT_EQ(route.shards, truth.shards[key]) << key;
    EXPECT_EQ(SelectRows(select, values), truth.rows[key]) << key;
    Route reversed = Explain(swapped, {values[1], values[0]});
    EXPECT_EQ(reversed.shards, truth.shards[key]) << key << " (b = ? AND a = ?)";
  }
  // A tuple no row holds (b only takes 0..6): one shard.
  Route absent = Explain(select, {TextValue("a1"), IntegerValue(99)});
  EXPECT_EQ(truth.key_values.count("t:a1|i:99"), 0u);
  EXPECT_EQ(absent.route, "virtual_index") << absent.Describe();
  EXPECT_EQ(absent.rows, 1) << absent.Describe();

  // A prefix is not the tuple: scatter.
  Route prefix = Explain("SELECT * FROM pairs WHERE a = ?", {TextValue("a3")});
  EXPECT_EQ(prefix.route, "scatter") << prefix.Describe();
  EXPECT_EQ(prefix.rows, ActiveShards("pairs")) << prefix.Describe();
  EXPECT_EQ(prefix.rows, 6);
  EXPECT_EQ(SelectRows("SELECT id, a, b, note FROM pairs WHERE a = ?", {TextValue("a3")}).size(),
            28u);
}

// A UNIQUE constraint in CREATE TABLE holds across shards: the table gets a
// UNIQUE virtual index backed by the constraint's own SQLite index.
TEST_F(IndexIntegrationTest, UniqueConstraintsOfCreateTableHoldAcrossShards) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_NO_FATAL_FAILURE(
      CreateTable("CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT UNIQUE, code TEXT, "
                  "UNIQUE (id, code))",
                  6));
  // (id, code) contains the shard key: each shard's own constraint suffices.
  v1::ListIndexesRequest list;
  list.set_table("accounts");
  v1::ListIndexesResponse listed;
  ASSERT_TRUE(IsOk(Call(&v1::TableOps::Stub::ListIndexes, list, &listed)));
  ASSERT_EQ(listed.indexes_size(), 1) << listed.DebugString();
  EXPECT_EQ(listed.indexes(0).name(), "accounts_email_key");
  EXPECT_EQ(listed.indexes(0).type(), "unique");
  auto ready = WaitReady("accounts", "accounts_email_key");
  ASSERT_TRUE(ready.ok()) << ready.status();

  const int64_t home = ShardOf("accounts", "id", IntegerValue(1));
  int64_t other = -1;
  for (int64_t id = 2; id < 100 && other < 0; ++id) {
    if (ShardOf("accounts", "id", IntegerValue(id)) != home) other = id;
  }
  ASSERT_GE(other, 0);
  ASSERT_TRUE(IsOk(Run("INSERT INTO accounts VALUES (1, 'a@x', 'c1')")));
  ExpectError(Run("INSERT INTO accounts VALUES (?, 'a@x', 'c2')", {IntegerValue(other)}),
              grpc::StatusCode::ALREADY_EXISTS, "UNIQUE_VIOLATION");
  EXPECT_EQ(Count("SELECT count(*) FROM accounts"), 1);
  // The same value may come back once its row is gone.
  ASSERT_TRUE(IsOk(Run("DELETE FROM accounts WHERE id = 1")));
  ASSERT_TRUE(IsOk(Run("INSERT INTO accounts VALUES (?, 'a@x', 'c2')", {IntegerValue(other)})));
  // Routing through it: a superset at once (the deleted row's entry goes
  // lazily), exactly one shard once recounted.
  Route early = Explain("SELECT * FROM accounts WHERE email = ?", {TextValue("a@x")});
  EXPECT_EQ(early.shards.count(other), 1u) << early.Describe();
  auto converged = WaitConverged("accounts", "accounts_email_key", 1);
  ASSERT_TRUE(converged.ok()) << converged.status();
  Route route = Explain("SELECT * FROM accounts WHERE email = ?", {TextValue("a@x")});
  EXPECT_EQ(route.route, "virtual_index");
  EXPECT_EQ(route.shards, (std::set<int64_t>{other}));
  // It belongs to the table.
  v1::DropIndexRequest drop;
  drop.set_name("accounts_email_key");
  v1::DropIndexResponse dropped;
  ExpectError(Call(&v1::TableOps::Stub::DropIndex, drop, &dropped),
              grpc::StatusCode::FAILED_PRECONDITION, "SQL_ERROR");
  ASSERT_TRUE(IsOk(Run("DROP TABLE accounts")));
  ASSERT_TRUE(IsOk(Call(&v1::TableOps::Stub::ListIndexes, v1::ListIndexesRequest(), &listed)));
  EXPECT_EQ(listed.indexes_size(), 0);
}

// A storage node that joins later gets the SQLite indexes of the existing
// virtual indexes along with the tables.
TEST_F(IndexIntegrationTest, NodeJoiningLaterGetsTheIndexes) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(/*workers=*/1));
  ASSERT_NO_FATAL_FAILURE(CreateTable("CREATE TABLE items (id INTEGER PRIMARY KEY, tag TEXT)", 3));
  ASSERT_TRUE(IsOk(Run("CREATE INDEX items_by_tag ON items (tag)")));
  ASSERT_TRUE(cluster_->AddNodeAndRestartConductor().ok());
  auto db = Database::Open(cluster_->node_database(cluster_->node_count() - 1),
                           DatabaseOptions{.read_only = true, .create = false});
  ASSERT_TRUE(db.ok()) << db.status();
  auto found = (*db)->Prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?");
  ASSERT_TRUE(found.ok());
  found->BindText(1, "items_by_tag").IgnoreError();
  auto row = found->Step();
  ASSERT_TRUE(row.ok() && *row) << "the new node has no index items_by_tag";
  EXPECT_NE(found->ColumnText(0).find("_virtualShard"), std::string::npos) << found->ColumnText(0);
  // After the restart every shard is recounted; the index converges again.
  auto converged = WaitConverged("items", "items_by_tag", 0);
  EXPECT_TRUE(converged.ok()) << converged.status();
}

// A DEFAULT the node computes (random(), CURRENT_TIMESTAMP) cannot be known
// when the entries are added: the shards are recounted, and routing is right
// meanwhile and after.
TEST_F(IndexIntegrationTest, ColumnsFilledByANonConstantDefaultAreStillFound) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_NO_FATAL_FAILURE(CreateTable(
      "CREATE TABLE draws (id INTEGER PRIMARY KEY, v INTEGER DEFAULT (abs(random()) % 50))", 4));
  ASSERT_TRUE(IsOk(Run("CREATE INDEX draws_v ON draws (v)")));
  ASSERT_TRUE(WaitReady("draws", "draws_v").ok());
  for (int id = 1; id <= 40; ++id) {
    ASSERT_TRUE(IsOk(Run("INSERT INTO draws (id) VALUES (?)", {IntegerValue(id)})));
  }
  auto check = [&](const char* when) {
    for (int v = 0; v < 50; ++v) {
      EXPECT_EQ(Count("SELECT count(*) FROM draws WHERE v = ?", {IntegerValue(v)}),
                Count("SELECT count(*) FROM draws WHERE v + 0 = ?", {IntegerValue(v)}))
          << "v = " << v << " " << when;
    }
  };
  check("right after the inserts");
  ASSERT_TRUE(WaitConverged("draws", "draws_v", -1).ok());
  check("after the recount");
  // A UNIQUE index cannot be checked on such a column.
  ASSERT_TRUE(
      IsOk(Run("CREATE TABLE tickets (id INTEGER PRIMARY KEY, "
               "code INTEGER DEFAULT (random()) UNIQUE) /* SHARDS=2 */")));
  ExpectError(Run("INSERT INTO tickets (id) VALUES (1)"), grpc::StatusCode::UNIMPLEMENTED,
              "UNSUPPORTED_STATEMENT");
  ASSERT_TRUE(IsOk(Run("INSERT INTO tickets (id, code) VALUES (1, 7)")));
}

TEST_F(IndexIntegrationTest, TablesAndIndexesShareOneNamespace) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(/*workers=*/0));
  ASSERT_NO_FATAL_FAILURE(CreateTable("CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT UNIQUE)", 2));
  ASSERT_TRUE(IsOk(Run("CREATE INDEX a_by_x ON a (x)")));
  ExpectError(Run("CREATE TABLE a_by_x (id INTEGER PRIMARY KEY)"), grpc::StatusCode::ALREADY_EXISTS,
              "TABLE_ALREADY_EXISTS");
  ExpectError(Run("CREATE TABLE a_x_key (id INTEGER PRIMARY KEY)"),
              grpc::StatusCode::ALREADY_EXISTS, "TABLE_ALREADY_EXISTS");
  ExpectError(Run("ALTER TABLE a RENAME TO a_by_x"), grpc::StatusCode::ALREADY_EXISTS,
              "TABLE_ALREADY_EXISTS");
  ExpectError(Run("CREATE INDEX a ON a (x)"), grpc::StatusCode::ALREADY_EXISTS,
              "INDEX_ALREADY_EXISTS");
}

// An index on a generated column follows UPDATEs of the columns it is
// computed from.
TEST_F(IndexIntegrationTest, IndexOnAGeneratedColumnFollowsUpdates) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_NO_FATAL_FAILURE(
      CreateTable("CREATE TABLE g (id INTEGER PRIMARY KEY, email TEXT, "
                  "lc TEXT GENERATED ALWAYS AS (lower(email)))",
                  4));
  for (int id = 1; id <= 40; ++id) {
    ASSERT_TRUE(IsOk(Run("INSERT INTO g (id, email) VALUES (?, ?)",
                         {IntegerValue(id), TextValue(absl::StrCat("User", id, "@X"))})));
  }
  ASSERT_TRUE(IsOk(Run("CREATE INDEX g_lc ON g (lc)")));
  ASSERT_TRUE(WaitConverged("g", "g_lc", 40).ok());
  ASSERT_TRUE(IsOk(Run("UPDATE g SET email = 'Moved' || id || '@Y' WHERE id % 2 = 0")));
  auto check = [&](const char* when) {
    for (int id = 1; id <= 40; ++id) {
      const std::string lc =
          id % 2 == 0 ? absl::StrCat("moved", id, "@y") : absl::StrCat("user", id, "@x");
      EXPECT_EQ(Count("SELECT count(*) FROM g WHERE lc = ?", {TextValue(lc)}), 1)
          << lc << " " << when;
    }
  };
  check("right after the update");
  ASSERT_TRUE(WaitConverged("g", "g_lc", 40).ok());
  check("after the recount");
}

// ON CONFLICT may name a UNIQUE virtual index's column; DO NOTHING and OR
// IGNORE into such a table are not supported yet (they would have to drop
// rows that conflict on other shards).
TEST_F(IndexIntegrationTest, UpsertsOnAUniqueIndexColumn) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ASSERT_NO_FATAL_FAILURE(
      CreateTable("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT, hits INTEGER)", 4));
  ASSERT_TRUE(IsOk(Run("CREATE UNIQUE INDEX u_email ON u (email)")));
  ASSERT_TRUE(WaitReady("u", "u_email").ok());
  ASSERT_TRUE(IsOk(Run("INSERT INTO u VALUES (1, 'a@x', 0)")));
  // The same row again: the upsert updates it.
  ASSERT_TRUE(
      IsOk(Run("INSERT INTO u VALUES (1, 'a@x', 0) ON CONFLICT (email) DO UPDATE SET "
               "hits = hits + 1")));
  EXPECT_EQ(Count("SELECT hits FROM u WHERE id = 1"), 1);
  ExpectError(Run("INSERT INTO u VALUES (2, 'a@x', 0) ON CONFLICT DO NOTHING"),
              grpc::StatusCode::UNIMPLEMENTED, "UNSUPPORTED_STATEMENT");
  ExpectError(Run("INSERT OR IGNORE INTO u VALUES (2, 'a@x', 0)"), grpc::StatusCode::UNIMPLEMENTED,
              "UNSUPPORTED_STATEMENT");
  EXPECT_EQ(Count("SELECT count(*) FROM u"), 1);
}

}  // namespace
}  // namespace conductor
