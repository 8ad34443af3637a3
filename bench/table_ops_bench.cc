// Table operations on 16 storage nodes (issue 2), each against a baseline
// measured in the same run:
//
//  (a) CREATE TABLE fan-out: TableOps.CreateTable (then DropTable, untimed)
//      vs the same physical CREATE TABLE IF NOT EXISTS sent straight to all
//      16 nodes at once (storage.v1 ExecuteBatch, async), then dropped.
//      Target: conductor p50 < 2x direct.
//  (b) TABLE_STATS on a 256-shard table of 1M rows spread over the 16 nodes
//      (loaded by writing the nodes' SQLite files directly): GetTableStats
//      vs the same COUNT(*) per shard sent straight to the nodes (one
//      read-only batch per node, all nodes at once). Target: p50 < 2x.
//
// Conductor and direct rounds are interleaved (alternating which goes
// first), so background load on the machine hits both alike.
//
//   bazel run -c opt //bench:table_ops_bench [-- --rounds=N]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "common/sql/create_table.h"
#include "common/sqlite.h"

namespace conductor::bench {
namespace {

namespace v1 = ::conductor::v1;
using storage::v1::ExecuteBatchRequest;
using storage::v1::ExecuteBatchResponse;

constexpr int kNodes = 16;

struct Options {
  int create_rounds = 40;
  int stats_rounds = 40;
  int stats_rows = 1000000;
  int stats_shards = 256;
};

void PrintPair(const std::string& label, const LatencySummary& s) {
  Line(absl::StrFormat("  %-44s n=%-4d p50 %-10s p90 %-10s p99 %-10s min %s", label,
                       static_cast<int>(s.count), FormatMicros(s.p50_us), FormatMicros(s.p90_us),
                       FormatMicros(s.p99_us), FormatMicros(s.min_us)));
}

void PrintRatio(const LatencySummary& ours, const LatencySummary& base) {
  Line(absl::StrFormat("  ratio conductor/direct: p50 %.2fx  p90 %.2fx", ours.p50_us / base.p50_us,
                       ours.p90_us / base.p90_us));
}

// (a) CREATE TABLE fan-out.
void BenchCreateTable(TestCluster& cluster, DirectStorage& direct, const Options& options) {
  Section(absl::StrCat("(a) CREATE TABLE fan-out on ", kNodes, " storage nodes"));
  const std::string user_sql =
      "CREATE TABLE ct_bench (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, "
      "score REAL, created_at INTEGER) /* SHARDS=16 */";
  // The direct baseline sends exactly what the conductor sends to each node
  // (the same rewrite code), under another name so the two never collide.
  auto schema = sql::AnalyzeCreateTable(
      "CREATE TABLE ct_direct (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, "
      "score REAL, created_at INTEGER) /* SHARDS=16 */");
  Check(schema.status(), "AnalyzeCreateTable");
  Line("  physical statement: " + schema->physical_sql);

  std::vector<int> all_nodes;
  for (int i = 0; i < kNodes; ++i) all_nodes.push_back(i);
  auto batches_of = [&](const std::string& sql) {
    ExecuteBatchRequest request;
    request.add_statements()->set_sql(sql);
    return std::vector<ExecuteBatchRequest>(kNodes, request);
  };
  const auto create_batches = batches_of(schema->physical_sql);
  const auto drop_batches = batches_of("DROP TABLE IF EXISTS \"ct_direct\"");

  CpuTimes cpu_ours, cpu_base;
  auto conductor_round = [&]() {
    v1::CreateTableRequest create;
    create.set_sql(user_sql);
    v1::CreateTableResponse created;
    auto context = NewContext();
    CpuTimes before = SampleCpu(cluster);
    auto start = Clock::now();
    Check(cluster.ops().CreateTable(context.get(), create, &created), "CreateTable");
    double us = MicrosSince(start);
    cpu_ours += SampleCpu(cluster) - before;
    if (!created.created()) Check(absl::InternalError("table not created"), "CreateTable");
    v1::DropTableRequest drop;
    drop.set_table("ct_bench");
    v1::DropTableResponse dropped;
    auto drop_context = NewContext();
    Check(cluster.ops().DropTable(drop_context.get(), drop, &dropped), "DropTable");
    return us;
  };
  auto direct_round = [&]() {
    std::vector<ExecuteBatchResponse> responses;
    CpuTimes before = SampleCpu(cluster);
    auto start = Clock::now();
    Check(direct.FanOut(all_nodes, create_batches, &responses), "direct CREATE");
    double us = MicrosSince(start);
    cpu_base += SampleCpu(cluster) - before;
    Check(direct.FanOut(all_nodes, drop_batches, &responses), "direct DROP");
    return us;
  };

  for (int i = 0; i < 3; ++i) {  // warm-up: connections, page cache, code paths
    conductor_round();
    direct_round();
  }
  cpu_ours = cpu_base = CpuTimes();
  std::vector<double> ours, base;
  for (int i = 0; i < options.create_rounds; ++i) {
    if (i % 2 == 0) {
      ours.push_back(conductor_round());
      base.push_back(direct_round());
    } else {
      base.push_back(direct_round());
      ours.push_back(conductor_round());
    }
  }
  LatencySummary s_ours = Summarize(ours), s_base = Summarize(base);
  PrintPair("conductor CreateTable (16 shards)", s_ours);
  PrintPair("direct: CREATE on 16 nodes in parallel", s_base);
  PrintRatio(s_ours, s_base);
  Line("  conductor " + FormatCpuPerOp(cpu_ours, ours.size()));
  Line("  direct    " + FormatCpuPerOp(cpu_base, base.size()));
  double ratio = s_ours.p50_us / s_base.p50_us;
  Verdict("2a CREATE TABLE fan-out, conductor/direct p50",
          absl::StrFormat("%.2fx (%s vs %s)", ratio, FormatMicros(s_ours.p50_us),
                          FormatMicros(s_base.p50_us)),
          "< 2x", ratio < 2.0);
}

// (b) TABLE_STATS over 256 shards and 1M rows.
void BenchTableStats(TestCluster& cluster, DirectStorage& direct, const Options& options) {
  Section(absl::StrFormat("(b) TABLE_STATS: %d shards, %d rows, %d nodes", options.stats_shards,
                          options.stats_rows, kNodes));
  const std::string table = "stats_bench";
  MustExecute(cluster.ops(), absl::StrFormat("CREATE TABLE %s (id INTEGER PRIMARY KEY, v TEXT) "
                                             "/* SHARDS=%d */",
                                             table, options.stats_shards));
  v1::DescribeTableResponse described = MustDescribe(cluster.ops(), table);
  if (described.shards_size() != options.stats_shards) {
    Check(absl::InternalError(absl::StrCat("expected ", options.stats_shards, " shards, got ",
                                           described.shards_size())),
          "DescribeTable");
  }
  std::vector<std::pair<int, int>> shards;  // (shard_id, node index)
  std::vector<int> shards_per_node(kNodes, 0);
  for (const auto& shard : described.shards()) {
    int node = NodeIndex(cluster, shard.node_id());
    if (node < 0) Check(absl::InternalError("unknown node " + shard.node_id()), "placement");
    shards.emplace_back(shard.shard_id(), node);
    ++shards_per_node[node];
  }
  std::string placement;
  for (int i = 0; i < kNodes; ++i) absl::StrAppend(&placement, i ? "," : "", shards_per_node[i]);
  Line("  shards per node: " + placement);

  // Row i goes to shard i % 256 (STATS only counts, so any spread will do).
  auto load_start = Clock::now();
  std::vector<std::vector<DirectRow>> rows(kNodes);
  for (int i = 0; i < options.stats_rows; ++i) {
    const auto& [shard_id, node] = shards[i % shards.size()];
    rows[node].push_back({shard_id, i, absl::StrCat("value-", i)});
  }
  {
    std::vector<std::thread> loaders;
    const int workers = std::max(2u, std::thread::hardware_concurrency());
    for (int w = 0; w < workers; ++w) {
      loaders.emplace_back([&, w] {
        for (int node = w; node < kNodes; node += workers) {
          LoadIntoNodeFile(cluster.node_database(node), table, rows[node]);
        }
      });
    }
    for (auto& t : loaders) t.join();
  }
  rows.clear();
  Line(absl::StrFormat("  loaded %d rows into the node files in %s", options.stats_rows,
                       FormatMicros(MicrosSince(load_start))));

  // The direct baseline: the statement GetTableStats sends, one read-only
  // batch per node holding one COUNT(*) per shard of that node.
  const std::string count_sql =
      absl::StrCat("SELECT COUNT(*) FROM ", QuoteIdentifier(table), " WHERE _virtualShard = ?");
  std::vector<int> nodes;
  std::vector<ExecuteBatchRequest> batches;
  {
    std::vector<int> batch_of_node(kNodes, -1);
    for (const auto& [shard_id, node] : shards) {
      if (batch_of_node[node] < 0) {
        batch_of_node[node] = static_cast<int>(batches.size());
        nodes.push_back(node);
        batches.emplace_back().set_read_only(true);
      }
      auto* stmt = batches[batch_of_node[node]].add_statements();
      stmt->set_sql(count_sql);
      *stmt->add_params() = IntegerValue(shard_id);
    }
  }

  CpuTimes cpu_ours, cpu_base;
  auto conductor_round = [&]() {
    v1::GetTableStatsRequest request;
    request.set_table(table);
    v1::GetTableStatsResponse response;
    auto context = NewContext();
    CpuTimes before = SampleCpu(cluster);
    auto start = Clock::now();
    Check(cluster.ops().GetTableStats(context.get(), request, &response), "GetTableStats");
    double us = MicrosSince(start);
    cpu_ours += SampleCpu(cluster) - before;
    if (response.total_rows() != options.stats_rows) {
      Check(absl::InternalError(absl::StrCat("total_rows ", response.total_rows())), "STATS");
    }
    return us;
  };
  auto execute_round = [&]() {
    auto start = Clock::now();
    v1::ExecuteResponse response =
        MustExecute(cluster.ops(), absl::StrCat("SELECT * FROM TABLE_STATS('", table, "')"));
    double us = MicrosSince(start);
    if (response.result_sets_size() < 1 ||
        response.result_sets(0).rows(0).values(1).integer() != options.stats_rows) {
      Check(absl::InternalError("wrong TABLE_STATS answer"), "TABLE_STATS");
    }
    return us;
  };
  auto direct_round = [&]() {
    std::vector<ExecuteBatchResponse> responses;
    CpuTimes before = SampleCpu(cluster);
    auto start = Clock::now();
    Check(direct.FanOut(nodes, batches, &responses), "direct COUNT(*)");
    int64_t total = 0;
    for (const auto& response : responses) {
      for (const auto& result : response.results()) total += result.rows(0).values(0).integer();
    }
    double us = MicrosSince(start);
    cpu_base += SampleCpu(cluster) - before;
    if (total != options.stats_rows) {
      Check(absl::InternalError(absl::StrCat("direct total ", total)), "direct COUNT(*)");
    }
    return us;
  };

  std::vector<std::string> paths;
  for (int node : nodes) paths.push_back(cluster.node_database(node));
  InProcessBatches in_process(paths, batches);
  auto in_process_round = [&]() {
    auto start = Clock::now();
    int64_t total = in_process.RunSum();
    double us = MicrosSince(start);
    if (total != options.stats_rows) {
      Check(absl::InternalError(absl::StrCat("in-process total ", total)), "in-process");
    }
    return us;
  };
  for (int i = 0; i < 3; ++i) {
    conductor_round();
    execute_round();
    direct_round();
    in_process_round();
  }
  cpu_ours = cpu_base = CpuTimes();
  std::vector<double> ours, via_sql, base, same_sql;
  for (int i = 0; i < options.stats_rounds; ++i) {
    if (i % 2 == 0) {
      ours.push_back(conductor_round());
      base.push_back(direct_round());
      via_sql.push_back(execute_round());
    } else {
      base.push_back(direct_round());
      via_sql.push_back(execute_round());
      ours.push_back(conductor_round());
    }
    same_sql.push_back(in_process_round());
  }
  LatencySummary s_ours = Summarize(ours), s_sql = Summarize(via_sql), s_base = Summarize(base);
  PrintPair("conductor GetTableStats", s_ours);
  PrintPair("conductor Execute SELECT * FROM TABLE_STATS", s_sql);
  PrintPair(absl::StrCat("direct: ", batches.size(), " node batches in parallel"), s_base);
  PrintPair("in-process: the 256 COUNTs on the node files, serially", Summarize(same_sql));
  PrintRatio(s_ours, s_base);
  Line("  conductor " + FormatCpuPerOp(cpu_ours, ours.size()));
  Line("  direct    " + FormatCpuPerOp(cpu_base, base.size()));
  double ratio = s_ours.p50_us / s_base.p50_us;
  Verdict("2b TABLE_STATS 256 shards/1M rows, conductor/direct p50",
          absl::StrFormat("%.2fx (%s vs %s)", ratio, FormatMicros(s_ours.p50_us),
                          FormatMicros(s_base.p50_us)),
          "< 2x", ratio < 2.0);
}

int Main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "--rounds=", 9) == 0) {
      options.create_rounds = options.stats_rounds = atoi(argv[i] + 9);
    }
  }
  Line("table_ops_bench — " + MachineDescription());
  auto total_start = Clock::now();
  auto cluster = StartCluster(kNodes);
  Line(absl::StrFormat("  cluster: conductor + %d storage nodes (synchronous=full), data in %s",
                       kNodes, cluster->root()));
  std::vector<std::string> addresses;
  for (int i = 0; i < kNodes; ++i) addresses.push_back(cluster->node_address(i));
  DirectStorage direct(addresses);

  BenchCreateTable(*cluster, direct, options);
  BenchTableStats(*cluster, direct, options);
  PrintVerdicts();
  Line(absl::StrFormat("total time %s", FormatMicros(MicrosSince(total_start))));
  return 0;
}

}  // namespace
}  // namespace conductor::bench

int main(int argc, char** argv) { return conductor::bench::Main(argc, argv); }
