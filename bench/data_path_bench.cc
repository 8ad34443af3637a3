// The data path (issue 3) on a cluster of 3 storage nodes, each figure next
// to baselines measured in the same run:
//
//  (a) Point SELECT by shard key on `kv` (100k rows, 8 shards): through the
//      conductor (TableOps.Execute) vs the same per-shard SELECT sent straight
//      to the owning node (storage.v1 ExecuteBatch, read_only) vs in-process
//      SQLite (a plain file with the same rows, prepared statement reused).
//      1, 4 and 16 client threads; every thread has its own channel (its own
//      TCP connection) or its own SQLite connection. p50/p99 and throughput.
//      Targets: conductor p50 <= 2x direct; >= 10k routed point reads/s.
//  (b) Batched INSERT, 1000 rows per statement with ? params, through the
//      conductor with synchronous=FULL on the nodes (the default), 1 and 4
//      client threads, vs raw SQLite bulk insert into one file (WAL,
//      synchronous=FULL, one transaction per 1000 rows); also, for
//      attribution, the conductor's per-node batches sent straight to the
//      nodes. Target: >= 100k rows/s durable.
//  (c) Scatter SELECT COUNT(*) over 16 and 256 shards of 1M rows (loaded by
//      writing the node files directly): conductor vs the per-shard
//      statements from EXPLAIN sent straight to the nodes, one read-only
//      batch per node, all nodes at once.
//
// Each timed configuration runs --reps times (default 3), interleaved with
// its baselines; the figures are the medians over the repetitions.
//
//   bazel run -c opt //bench:data_path_bench [-- --seconds=2 --reps=3]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/bench_util.h"
#include "common/routing.h"
#include "common/sqlite.h"

namespace conductor::bench {
namespace {

namespace v1 = ::conductor::v1;
using storage::v1::ExecuteBatchRequest;
using storage::v1::ExecuteBatchResponse;

constexpr int kNodes = 3;
constexpr int kKvRows = 100000;
constexpr int kKvShards = 8;
constexpr int kInsertBatch = 1000;
constexpr int kCountRows = 1000000;

struct Options {
  double seconds = 2.0;         // per point-read configuration and repetition
  double insert_seconds = 3.0;  // per insert configuration and repetition
  int reps = 3;
  int count_rounds = 30;
};

std::string ValueFor(int64_t id) {
  std::string v = absl::StrFormat("value-%010d-", id);
  v.resize(64, 'x');
  return v;
}

// The routing of one table, as the conductor computes it: active shards
// sorted by id, each with its node.
struct Routing {
  std::vector<int> shard_ids;  // sorted
  std::vector<int> nodes;      // node index per entry of shard_ids
  routing::Affinity affinity = routing::Affinity::kInteger;

  // (shard_id, node index) owning `id`.
  std::pair<int, int> Owner(int64_t id) const {
    uint64_t hash = routing::RoutingHash(IntegerValue(id), affinity);
    int index = routing::ShardIndex(hash, static_cast<int>(shard_ids.size()));
    return {shard_ids[index], nodes[index]};
  }
};

Routing RoutingOf(TestCluster& cluster, const std::string& table) {
  v1::DescribeTableResponse described = MustDescribe(cluster.ops(), table);
  std::vector<std::pair<int, int>> shards;
  for (const auto& shard : described.shards()) {
    if (shard.status() != "active") continue;
    shards.emplace_back(shard.shard_id(), NodeIndex(cluster, shard.node_id()));
  }
  std::sort(shards.begin(), shards.end());
  Routing routing;
  for (const auto& [id, node] : shards) {
    if (node < 0) Check(absl::InternalError("unknown node"), "DescribeTable " + table);
    routing.shard_ids.push_back(id);
    routing.nodes.push_back(node);
  }
  std::string key_type;
  for (const auto& column : described.columns()) {
    if (column.name() == described.table().shard_key()) key_type = column.type();
  }
  routing.affinity = routing::AffinityOf(key_type);
  return routing;
}

// Runs `threads` workers for `seconds`. Each worker first runs setup(t)
// (connections, prepared statements, warm-up), then op(t, rng) in a loop;
// op returns the number of rows it handled. All workers start together.
struct RunResult {
  LatencySummary latency;
  double ops_per_s = 0;
  double rows_per_s = 0;
  // CPU used by each process during the timed window.
  CpuTimes cpu;
};

template <typename Worker>
RunResult RunWorkers(TestCluster& cluster, int threads, double seconds,
                     const std::function<std::unique_ptr<Worker>(int)>& make) {
  std::vector<std::unique_ptr<Worker>> workers(threads);
  std::vector<std::vector<double>> latencies(threads);
  std::vector<int64_t> rows(threads, 0);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  Clock::time_point start, deadline;
  std::vector<Clock::time_point> ends(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      workers[t] = make(t);
      std::mt19937_64 rng(1234 + t);
      latencies[t].reserve(1 << 16);
      ++ready;
      while (!go.load()) std::this_thread::yield();
      while (true) {
        auto op_start = Clock::now();
        if (op_start >= deadline) break;
        rows[t] += workers[t]->Op(rng);
        latencies[t].push_back(MicrosSince(op_start));
      }
      ends[t] = Clock::now();
    });
  }
  while (ready.load() < threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CpuTimes cpu_before = SampleCpu(cluster);
  start = Clock::now();
  deadline = start + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
  go = true;
  for (auto& t : pool) t.join();
  CpuTimes cpu_after = SampleCpu(cluster);
  double elapsed_s = 0;
  for (const auto& end : ends) {
    elapsed_s = std::max(elapsed_s, std::chrono::duration<double>(end - start).count());
  }
  std::vector<double> all;
  int64_t total_rows = 0;
  for (int t = 0; t < threads; ++t) {
    all.insert(all.end(), latencies[t].begin(), latencies[t].end());
    total_rows += rows[t];
  }
  RunResult result;
  result.latency = Summarize(std::move(all));
  result.ops_per_s = result.latency.count / elapsed_s;
  result.rows_per_s = total_rows / elapsed_s;
  result.cpu = cpu_after - cpu_before;
  return result;
}

// Medians over repetitions.
struct Medians {
  std::vector<double> p50, p99, ops, rows;
  CpuTimes cpu;  // summed over repetitions
  double total_ops = 0;
  void Add(const RunResult& r) {
    cpu += r.cpu;
    total_ops += r.latency.count;
    p50.push_back(r.latency.p50_us);
    p99.push_back(r.latency.p99_us);
    ops.push_back(r.ops_per_s);
    rows.push_back(r.rows_per_s);
  }
  double P50() const { return Median(p50); }
  double P99() const { return Median(p99); }
  double Ops() const { return Median(ops); }
  double Rows() const { return Median(rows); }
};

void Fail(const std::string& what) { Check(absl::InternalError(what), "check"); }

// ---------------------------------------------------------------- (a) point reads

struct PointReadSetup {
  TestCluster* cluster;
  Routing routing;
  std::string shard_sql;  // from EXPLAIN: ?1 = id, ?2 = shard
  std::string plain_db;   // in-process SQLite baseline
};

class ConductorReader {
 public:
  explicit ConductorReader(const std::string& address)
      : stub_(v1::TableOps::NewStub(NewChannel(address))) {
    request_.set_sql("SELECT id, v FROM kv WHERE id = ?");
    request_.add_params();
    for (int i = 0; i < 20; ++i) Op(warm_);
  }
  int64_t Op(std::mt19937_64& rng) {
    int64_t id = static_cast<int64_t>(rng() % kKvRows);
    request_.mutable_params(0)->set_integer(id);
    v1::ExecuteResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    Check(stub_->Execute(&context, request_, &response), "conductor point read");
    if (response.result_sets_size() != 1 || response.result_sets(0).rows_size() != 1 ||
        response.result_sets(0).rows(0).values(0).integer() != id) {
      Fail(absl::StrCat("conductor point read of id ", id, ": ", response.ShortDebugString()));
    }
    return 1;
  }

 private:
  std::unique_ptr<v1::TableOps::Stub> stub_;
  v1::ExecuteRequest request_;
  std::mt19937_64 warm_{99};
};

class DirectReader {
 public:
  explicit DirectReader(const PointReadSetup& setup) : setup_(setup) {
    for (int i = 0; i < kNodes; ++i) {
      stubs_.push_back(storage::v1::Storage::NewStub(NewChannel(setup.cluster->node_address(i))));
    }
    request_.set_read_only(true);
    auto* stmt = request_.add_statements();
    stmt->set_sql(setup.shard_sql);
    stmt->add_params();
    stmt->add_params();
    for (int i = 0; i < 20; ++i) Op(warm_);
  }
  int64_t Op(std::mt19937_64& rng) {
    int64_t id = static_cast<int64_t>(rng() % kKvRows);
    auto [shard_id, node] = setup_.routing.Owner(id);
    auto* stmt = request_.mutable_statements(0);
    stmt->mutable_params(0)->set_integer(id);
    stmt->mutable_params(1)->set_integer(shard_id);
    ExecuteBatchResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    Check(stubs_[node]->ExecuteBatch(&context, request_, &response), "direct point read");
    if (response.results_size() != 1 || response.results(0).rows_size() != 1 ||
        response.results(0).rows(0).values(0).integer() != id) {
      Fail(absl::StrCat("direct point read of id ", id, ": ", response.ShortDebugString()));
    }
    return 1;
  }

 private:
  const PointReadSetup& setup_;
  std::vector<std::unique_ptr<storage::v1::Storage::Stub>> stubs_;
  ExecuteBatchRequest request_;
  std::mt19937_64 warm_{99};
};

// gRPC floors: the cheapest call each server answers, no SQL, no fan-out.
class NodeInfoCaller {
 public:
  explicit NodeInfoCaller(TestCluster& cluster) {
    for (int i = 0; i < kNodes; ++i) {
      stubs_.push_back(storage::v1::Storage::NewStub(NewChannel(cluster.node_address(i))));
    }
    for (int i = 0; i < 20; ++i) Op(warm_);
  }
  int64_t Op(std::mt19937_64& rng) {
    storage::v1::GetNodeInfoRequest request;
    storage::v1::GetNodeInfoResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    Check(stubs_[rng() % kNodes]->GetNodeInfo(&context, request, &response), "GetNodeInfo");
    return 1;
  }

 private:
  std::vector<std::unique_ptr<storage::v1::Storage::Stub>> stubs_;
  std::mt19937_64 warm_{99};
};

class ListTablesCaller {
 public:
  explicit ListTablesCaller(const std::string& address)
      : stub_(v1::TableOps::NewStub(NewChannel(address))) {
    for (int i = 0; i < 20; ++i) Op(warm_);
  }
  int64_t Op(std::mt19937_64&) {
    v1::ListTablesRequest request;
    v1::ListTablesResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    Check(stub_->ListTables(&context, request, &response), "ListTables");
    return 1;
  }

 private:
  std::unique_ptr<v1::TableOps::Stub> stub_;
  std::mt19937_64 warm_{99};
};

class SqliteReader {
 public:
  explicit SqliteReader(const std::string& path) {
    DatabaseOptions options;
    options.read_only = true;
    auto db = Database::Open(path, options);
    Check(db.status(), "open " + path);
    db_ = std::move(*db);
    auto stmt = db_->Prepare("SELECT id, v FROM kv WHERE id = ?1");
    Check(stmt.status(), "prepare");
    stmt_ = std::make_unique<Statement>(std::move(*stmt));
    for (int i = 0; i < 20; ++i) Op(warm_);
  }
  int64_t Op(std::mt19937_64& rng) {
    int64_t id = static_cast<int64_t>(rng() % kKvRows);
    stmt_->Reset().IgnoreError();
    stmt_->BindInt64(1, id).IgnoreError();
    auto row = stmt_->Step();
    if (!row.ok() || !*row || stmt_->ColumnInt64(0) != id) Fail("sqlite point read");
    std::string v = stmt_->ColumnText(1);  // the value leaves SQLite, as it does over RPC
    if (v.size() != 64) Fail("sqlite value");
    return 1;
  }

 private:
  std::unique_ptr<Database> db_;
  std::unique_ptr<Statement> stmt_;
  std::mt19937_64 warm_{99};
};

PointReadSetup PreparePointReads(TestCluster& cluster, const std::string& root) {
  PointReadSetup setup;
  setup.cluster = &cluster;
  MustExecute(cluster.ops(), "CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT) /* SHARDS=8 */");
  setup.routing = RoutingOf(cluster, "kv");
  if (setup.routing.shard_ids.size() != kKvShards) Fail("kv does not have 8 active shards");

  // Rows go where the conductor would route them (common/routing), written
  // straight into the node files; then sampled through the conductor.
  std::vector<std::vector<DirectRow>> rows(kNodes);
  for (int64_t id = 0; id < kKvRows; ++id) {
    auto [shard_id, node] = setup.routing.Owner(id);
    rows[node].push_back({shard_id, id, ValueFor(id)});
  }
  std::string spread;
  for (int i = 0; i < kNodes; ++i) {
    absl::StrAppend(&spread, i ? ", " : "", cluster.node_id(i), "=", rows[i].size());
    LoadIntoNodeFile(cluster.node_database(i), "kv", rows[i]);
  }
  Line("  kv rows per node: " + spread);

  // The in-process baseline: one plain SQLite file with the same rows.
  setup.plain_db = root + "/plain_kv.db";
  {
    auto db = Database::Open(setup.plain_db);
    Check(db.status(), "open plain db");
    Check((*db)->Exec("CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT); BEGIN"), "create");
    auto insert = (*db)->Prepare("INSERT INTO kv (id, v) VALUES (?1, ?2)");
    Check(insert.status(), "prepare");
    for (int64_t id = 0; id < kKvRows; ++id) {
      insert->Reset().IgnoreError();
      insert->BindInt64(1, id).IgnoreError();
      insert->BindText(2, ValueFor(id)).IgnoreError();
      Check(insert->Run(), "insert");
    }
    Check((*db)->Exec("COMMIT; PRAGMA wal_checkpoint(TRUNCATE)"), "commit");
  }

  // The per-shard statement the conductor sends, from EXPLAIN; and a sample
  // of keys checked against our routing and through the conductor. The
  // conductor refuses EXPLAIN with ? parameters, so EXPLAIN gets a literal key
  // and the template is that SQL with the literal made ?1 and the shard ?2 —
  // the numbering the planner gives a one-parameter statement.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 50; ++i) {
    int64_t id = i == 0 ? 99991 : static_cast<int64_t>(rng() % kKvRows);
    auto explained =
        MustExplain(cluster.ops(), absl::StrCat("SELECT id, v FROM kv WHERE id = ", id));
    if (explained.size() != 1 || explained[0].route != "shard_key") {
      Fail(absl::StrCat("EXPLAIN of a point read of ", id, " is not one shard_key route"));
    }
    auto [shard_id, node] = setup.routing.Owner(id);
    if (explained[0].shard_id != shard_id || explained[0].node_id != cluster.node_id(node)) {
      Fail(absl::StrCat("routing mismatch for id ", id, ": conductor says shard ",
                        explained[0].shard_id, " on ", explained[0].node_id, ", we say ", shard_id,
                        " on ", cluster.node_id(node)));
    }
    if (i == 0) {
      Line("  EXPLAIN SELECT id, v FROM kv WHERE id = 99991 -> " + explained[0].sql);
      std::string sql = explained[0].sql;
      const std::string shard_filter = "_virtualShard = ?1";
      const std::string key_filter = "= 99991";
      size_t at = sql.find(shard_filter);
      if (at == std::string::npos) Fail("no shard filter in " + sql);
      sql.replace(at, shard_filter.size(), "_virtualShard = ?2");
      at = sql.find(key_filter);
      if (at == std::string::npos) Fail("no key literal in " + sql);
      sql.replace(at, key_filter.size(), "= ?1");
      setup.shard_sql = sql;
    }
    auto answer =
        MustExecute(cluster.ops(), "SELECT id, v FROM kv WHERE id = ?", {IntegerValue(id)});
    if (answer.result_sets_size() != 1 || answer.result_sets(0).rows_size() != 1 ||
        answer.result_sets(0).rows(0).values(1).text() != ValueFor(id)) {
      Fail(absl::StrCat("conductor did not find id ", id, ": ", answer.ShortDebugString()));
    }
  }
  Line("  direct per-shard SQL: " + setup.shard_sql + "   params: [id, shard_id]");
  return setup;
}

void BenchPointReads(TestCluster& cluster, const PointReadSetup& setup, const Options& options) {
  Section("(a) point SELECT by shard key: kv, 100k rows, 8 shards on 3 nodes");
  const std::vector<int> thread_counts = {1, 4, 16};
  enum { kConductor, kDirect, kSqlite, kTargets, kNodeInfo = kTargets, kListTables, kAll };
  const char* names[kAll] = {"conductor Execute", "direct ExecuteBatch", "in-process SQLite",
                             "ref: node GetNodeInfo", "ref: conductor ListTables"};
  std::map<int, std::vector<Medians>> results;
  for (int threads : thread_counts) results[threads].resize(kAll);
  for (int rep = 0; rep < options.reps; ++rep) {
    for (int threads : thread_counts) {
      // The gRPC floors (no SQL) are measured with one thread only.
      const int targets = threads == 1 ? kAll : kTargets;
      for (int k = 0; k < targets; ++k) {
        int target = (k + rep) % targets;  // rotate who goes first
        RunResult r;
        if (target == kNodeInfo) {
          r = RunWorkers<NodeInfoCaller>(cluster, threads, options.seconds, [&](int) {
            return std::make_unique<NodeInfoCaller>(cluster);
          });
        } else if (target == kListTables) {
          r = RunWorkers<ListTablesCaller>(cluster, threads, options.seconds, [&](int) {
            return std::make_unique<ListTablesCaller>(cluster.conductor_address());
          });
        } else if (target == kConductor) {
          r = RunWorkers<ConductorReader>(cluster, threads, options.seconds, [&](int) {
            return std::make_unique<ConductorReader>(cluster.conductor_address());
          });
        } else if (target == kDirect) {
          r = RunWorkers<DirectReader>(cluster, threads, options.seconds,
                                       [&](int) { return std::make_unique<DirectReader>(setup); });
        } else {
          r = RunWorkers<SqliteReader>(cluster, threads, options.seconds, [&](int) {
            return std::make_unique<SqliteReader>(setup.plain_db);
          });
        }
        results[threads][target].Add(r);
        Line(absl::StrFormat("    rep %d  %2d thr  %-25s p50 %-9s p99 %-9s %s", rep + 1, threads,
                             names[target], FormatMicros(r.latency.p50_us),
                             FormatMicros(r.latency.p99_us), FormatRate(r.ops_per_s)));
      }
    }
  }
  Line(
      absl::StrFormat("  medians over %d reps of %.1f s each (each thread: own channel / own "
                      "SQLite connection):",
                      options.reps, options.seconds));
  Line(absl::StrFormat("  %-7s %-25s %10s %10s %12s", "threads", "path", "p50", "p99", "calls/s"));
  double best_conductor = 0;
  int best_threads = 0;
  for (int threads : thread_counts) {
    for (int target = 0; target < (threads == 1 ? kAll : kTargets); ++target) {
      const Medians& m = results[threads][target];
      Line(absl::StrFormat("  %-7d %-25s %10s %10s %12s   %s", threads, names[target],
                           FormatMicros(m.P50()), FormatMicros(m.P99()), FormatRate(m.Ops()),
                           FormatCpuPerOp(m.cpu, m.total_ops)));
    }
    const Medians& c = results[threads][kConductor];
    const Medians& d = results[threads][kDirect];
    const Medians& s = results[threads][kSqlite];
    Line(absl::StrFormat(
        "  %-7s conductor/direct p50 %.2fx, p99 %.2fx, throughput %.2fx; "
        "conductor/SQLite p50 %.0fx",
        "", c.P50() / d.P50(), c.P99() / d.P99(), c.Ops() / d.Ops(), c.P50() / s.P50()));
    if (c.Ops() > best_conductor) {
      best_conductor = c.Ops();
      best_threads = threads;
    }
  }
  for (int threads : thread_counts) {
    const Medians& c = results[threads][kConductor];
    const Medians& d = results[threads][kDirect];
    double ratio = c.P50() / d.P50();
    Verdict(
        absl::StrFormat("3a point read p50 conductor/direct, %d thread%s", threads,
                        threads == 1 ? "" : "s"),
        absl::StrFormat("%.2fx (%s vs %s)", ratio, FormatMicros(c.P50()), FormatMicros(d.P50())),
        "<= 2x", ratio <= 2.0);
  }
  Verdict("3a routed point reads/s (best thread count)",
          absl::StrFormat("%s @%d thr", FormatRate(best_conductor), best_threads), ">= 10k/s",
          best_conductor >= 10000);
}

// ---------------------------------------------------------------- (b) inserts

std::atomic<int64_t> g_next_batch{0};

// INSERT INTO ins (id, v) VALUES (?, ?), … ×1000 through the conductor.
class ConductorInserter {
 public:
  explicit ConductorInserter(const std::string& address)
      : stub_(v1::TableOps::NewStub(NewChannel(address))) {
    std::vector<std::string> tuples(kInsertBatch, "(?, ?)");
    sql_ = "INSERT INTO ins (id, v) VALUES " + absl::StrJoin(tuples, ", ");
  }
  int64_t Op(std::mt19937_64&) {
    int64_t first = g_next_batch.fetch_add(1) * kInsertBatch;
    v1::ExecuteRequest request;
    request.set_sql(sql_);
    for (int64_t id = first; id < first + kInsertBatch; ++id) {
      request.add_params()->set_integer(id);
      request.add_params()->set_text(ValueFor(id));
    }
    v1::ExecuteResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    Check(stub_->Execute(&context, request, &response), "conductor batched INSERT");
    if (response.rows_affected() != kInsertBatch) {
      Fail(absl::StrCat("INSERT affected ", response.rows_affected(), " rows"));
    }
    return kInsertBatch;
  }

 private:
  std::unique_ptr<v1::TableOps::Stub> stub_;
  std::string sql_;
};

// The same rows as the conductor would send them: one write batch per node,
// one multi-row INSERT per shard (the conductor's per-shard statement form).
class DirectInserter {
 public:
  explicit DirectInserter(TestCluster& cluster, const Routing& routing)
      : routing_(routing), direct_(Addresses(cluster)) {}
  int64_t Op(std::mt19937_64&) {
    int64_t first = g_direct_batch.fetch_add(1) * kInsertBatch;
    std::map<int, std::vector<int64_t>> ids_by_shard;
    std::map<int, int> node_of_shard;
    for (int64_t id = first; id < first + kInsertBatch; ++id) {
      auto [shard_id, node] = routing_.Owner(id);
      ids_by_shard[shard_id].push_back(id);
      node_of_shard[shard_id] = node;
    }
    std::vector<int> nodes;
    std::vector<ExecuteBatchRequest> batches;
    std::map<int, int> batch_of_node;
    for (const auto& [shard_id, ids] : ids_by_shard) {
      int node = node_of_shard[shard_id];
      if (!batch_of_node.count(node)) {
        batch_of_node[node] = static_cast<int>(batches.size());
        nodes.push_back(node);
        batches.emplace_back();
      }
      auto* stmt = batches[batch_of_node[node]].add_statements();
      std::string sql = "INSERT INTO \"ins_direct\" (\"id\", \"v\", _virtualShard) VALUES ";
      int next = 0;
      for (size_t r = 0; r < ids.size(); ++r) {
        absl::StrAppend(&sql, r ? ", " : "", "(?", next + 1, ", ?", next + 2, ", ?", next + 3, ")");
        next += 3;
        *stmt->add_params() = IntegerValue(ids[r]);
        *stmt->add_params() = TextValue(ValueFor(ids[r]));
        *stmt->add_params() = IntegerValue(shard_id);
      }
      stmt->set_sql(std::move(sql));
    }
    std::vector<ExecuteBatchResponse> responses;
    Check(direct_.FanOut(nodes, batches, &responses), "direct batched INSERT");
    return kInsertBatch;
  }
  static std::atomic<int64_t> g_direct_batch;

 private:
  static std::vector<std::string> Addresses(TestCluster& cluster) {
    std::vector<std::string> out;
    for (int i = 0; i < cluster.node_count(); ++i) out.push_back(cluster.node_address(i));
    return out;
  }
  const Routing& routing_;
  DirectStorage direct_;
};
std::atomic<int64_t> DirectInserter::g_direct_batch{0};

// Raw SQLite bulk insert: one file, WAL, synchronous=FULL, one transaction
// per 1000 rows, a prepared single-row INSERT reused.
class SqliteInserter {
 public:
  explicit SqliteInserter(const std::string& path) {
    auto db = Database::Open(path);  // WAL + synchronous=FULL
    Check(db.status(), "open " + path);
    db_ = std::move(*db);
    Check(db_->Exec("CREATE TABLE IF NOT EXISTS ins (id INTEGER PRIMARY KEY, v TEXT)"), "create");
    auto stmt = db_->Prepare("INSERT INTO ins (id, v) VALUES (?1, ?2)");
    Check(stmt.status(), "prepare");
    stmt_ = std::make_unique<Statement>(std::move(*stmt));
  }
  int64_t Op(std::mt19937_64&) {
    Check(db_->Exec("BEGIN"), "begin");
    for (int i = 0; i < kInsertBatch; ++i) {
      stmt_->Reset().IgnoreError();
      int64_t id = next_id_++;
      stmt_->BindInt64(1, id).IgnoreError();
      stmt_->BindText(2, ValueFor(id)).IgnoreError();
      Check(stmt_->Run(), "insert");
    }
    Check(db_->Exec("COMMIT"), "commit");
    return kInsertBatch;
  }

 private:
  std::unique_ptr<Database> db_;
  std::unique_ptr<Statement> stmt_;
  static int64_t next_id_;  // the file is kept across repetitions
};
int64_t SqliteInserter::next_id_ = 0;

void BenchInserts(TestCluster& cluster, const std::string& root, const Options& options) {
  Section("(b) batched INSERT, 1000 rows/statement, synchronous=FULL, 8 shards on 3 nodes");
  MustExecute(cluster.ops(), "CREATE TABLE ins (id INTEGER PRIMARY KEY, v TEXT) /* SHARDS=8 */");
  MustExecute(cluster.ops(),
              "CREATE TABLE ins_direct (id INTEGER PRIMARY KEY, v TEXT) /* SHARDS=8 */");
  Routing direct_routing = RoutingOf(cluster, "ins_direct");
  const std::string plain = root + "/plain_ins.db";

  enum { kConductor1, kConductor4, kDirect1, kDirect4, kSqlite1, kConfigs };
  const char* names[kConfigs] = {"conductor, 1 thread", "conductor, 4 threads",
                                 "direct node batches, 1 thr", "direct node batches, 4 thr",
                                 "raw SQLite, 1 thread"};
  std::vector<Medians> results(kConfigs);
  for (int rep = 0; rep < options.reps; ++rep) {
    for (int k = 0; k < kConfigs; ++k) {
      int config = (k + rep) % kConfigs;
      RunResult r;
      switch (config) {
        case kConductor1:
        case kConductor4:
          r = RunWorkers<ConductorInserter>(
              cluster, config == kConductor1 ? 1 : 4, options.insert_seconds, [&](int) {
                return std::make_unique<ConductorInserter>(cluster.conductor_address());
              });
          break;
        case kDirect1:
        case kDirect4:
          r = RunWorkers<DirectInserter>(
              cluster, config == kDirect1 ? 1 : 4, options.insert_seconds,
              [&](int) { return std::make_unique<DirectInserter>(cluster, direct_routing); });
          break;
        case kSqlite1:
          r = RunWorkers<SqliteInserter>(cluster, 1, options.insert_seconds, [&](int) {
            return std::make_unique<SqliteInserter>(plain);
          });
          break;
      }
      results[config].Add(r);
      Line(absl::StrFormat("    rep %d  %-28s %12s  statement p50 %-9s p99 %s", rep + 1,
                           names[config], FormatRate(r.rows_per_s), FormatMicros(r.latency.p50_us),
                           FormatMicros(r.latency.p99_us)));
    }
  }
  // Every acknowledged row is there.
  int64_t expected = g_next_batch.load() * kInsertBatch;
  auto counted = MustExecute(cluster.ops(), "SELECT COUNT(*) FROM ins");
  int64_t count = counted.result_sets(0).rows(0).values(0).integer();
  if (count != expected) Fail(absl::StrCat("ins holds ", count, " rows, expected ", expected));
  Line(absl::StrFormat("  ins holds %d rows, as acknowledged", count));
  Line(absl::StrFormat("  medians over %d reps of %.1f s each:", options.reps,
                       options.insert_seconds));
  Line(absl::StrFormat("  %-30s %12s %14s %14s", "path", "rows/s", "stmt p50", "stmt p99"));
  for (int config = 0; config < kConfigs; ++config) {
    const Medians& m = results[config];
    Line(absl::StrFormat("  %-30s %12s %14s %14s   per statement %s", names[config],
                         FormatRate(m.Rows()), FormatMicros(m.P50()), FormatMicros(m.P99()),
                         FormatCpuPerOp(m.cpu, m.total_ops)));
  }
  // Diagnosis: the conductor evaluates the VALUES rows by preparing
  // "VALUES (?1, ?2), …" (parameters renumbered ?N); SQLite's code generator
  // looks each ?N up in a linear list, so that prepare is quadratic in the
  // parameter count. Timed here (thread CPU time) with the same libsqlite3,
  // against plain '?'.
  {
    auto db = Database::Open(":memory:");
    Check(db.status(), "open :memory:");
    auto cpu_us = [] {
      timespec ts;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
    };
    for (int rows : {125, kInsertBatch}) {
      std::string line = absl::StrFormat(
          "  diagnosis: CPU to prepare VALUES of %d rows (%d params):", rows, 2 * rows);
      for (bool numbered : {true, false}) {
        std::vector<std::string> tuples;
        for (int r = 0; r < rows; ++r) {
          tuples.push_back(numbered ? absl::StrCat("(?", 2 * r + 1, ", ?", 2 * r + 2, ")")
                                    : std::string("(?, ?)"));
        }
        const std::string sql = "VALUES " + absl::StrJoin(tuples, ", ");
        std::vector<double> times;
        for (int i = 0; i < 15; ++i) {
          double start = cpu_us();
          auto stmt = (*db)->Prepare(sql);
          times.push_back(cpu_us() - start);
          Check(stmt.status(), "prepare VALUES");
        }
        absl::StrAppend(&line, numbered ? " ?N " : ", plain ? ", FormatMicros(Median(times)));
      }
      Line(line);
    }
  }
  double best = std::max(results[kConductor1].Rows(), results[kConductor4].Rows());
  double raw = results[kSqlite1].Rows();
  Line(
      absl::StrFormat("  conductor (best) / raw SQLite: %.2fx; conductor / direct: 1 thr "
                      "%.2fx, 4 thr %.2fx",
                      best / raw, results[kConductor1].Rows() / results[kDirect1].Rows(),
                      results[kConductor4].Rows() / results[kDirect4].Rows()));
  Verdict("3b durable batched INSERT rows/s (best of 1, 4 threads)",
          absl::StrFormat("%s (raw SQLite %s)", FormatRate(best), FormatRate(raw)), ">= 100k/s",
          best >= 100000);
}

// ---------------------------------------------------------------- (c) scatter COUNT(*)

void BenchScatterCount(TestCluster& cluster, const std::string& root, const Options& options) {
  Section("(c) scatter SELECT COUNT(*), 1M rows, 3 nodes");
  // In-process reference: COUNT(*) of 1M rows in one plain file.
  const std::string plain = root + "/plain_count.db";
  {
    auto db = Database::Open(plain);
    Check(db.status(), "open");
    Check((*db)->Exec("CREATE TABLE c (id INTEGER PRIMARY KEY, v TEXT); BEGIN"), "create");
    auto insert = (*db)->Prepare("INSERT INTO c (id, v) VALUES (?1, ?2)");
    Check(insert.status(), "prepare");
    for (int64_t id = 0; id < kCountRows; ++id) {
      insert->Reset().IgnoreError();
      insert->BindInt64(1, id).IgnoreError();
      insert->BindText(2, absl::StrCat("value-", id)).IgnoreError();
      Check(insert->Run(), "insert");
    }
    Check((*db)->Exec("COMMIT; PRAGMA wal_checkpoint(TRUNCATE)"), "commit");
  }
  auto plain_db = Database::Open(plain);
  Check(plain_db.status(), "open");
  auto plain_count = (*plain_db)->Prepare("SELECT COUNT(*) FROM c");
  Check(plain_count.status(), "prepare");

  std::vector<std::string> addresses;
  for (int i = 0; i < kNodes; ++i) addresses.push_back(cluster.node_address(i));
  DirectStorage direct(addresses);

  for (int shards : {16, 256}) {
    const std::string table = absl::StrCat("cnt", shards);
    MustExecute(cluster.ops(), absl::StrFormat("CREATE TABLE %s (id INTEGER PRIMARY KEY, v TEXT) "
                                               "/* SHARDS=%d */",
                                               table, shards));
    Routing routing = RoutingOf(cluster, table);
    // Row i → shard i % n: COUNT(*) does not care where a row lives.
    auto load_start = Clock::now();
    std::vector<std::vector<DirectRow>> rows(kNodes);
    for (int i = 0; i < kCountRows; ++i) {
      size_t s = i % routing.shard_ids.size();
      rows[routing.nodes[s]].push_back({routing.shard_ids[s], i, absl::StrCat("value-", i)});
    }
    std::vector<std::thread> loaders;
    for (int node = 0; node < kNodes; ++node) {
      loaders.emplace_back(
          [&, node] { LoadIntoNodeFile(cluster.node_database(node), table, rows[node]); });
    }
    for (auto& t : loaders) t.join();
    rows.clear();

    const std::string count_sql = absl::StrCat("SELECT COUNT(*) FROM ", table);
    auto explained = MustExplain(cluster.ops(), count_sql);
    if (explained.size() != static_cast<size_t>(shards)) {
      Fail(absl::StrCat("EXPLAIN lists ", explained.size(), " shard statements"));
    }
    Line(absl::StrFormat("  %s: loaded in %s; per-shard SQL: %s; merge: %s", table,
                         FormatMicros(MicrosSince(load_start)), explained[0].sql,
                         explained[0].merge));
    std::vector<int> nodes;
    std::vector<ExecuteBatchRequest> batches;
    std::map<std::string, int> batch_of_node;
    for (const ExplainRow& row : explained) {
      if (!batch_of_node.count(row.node_id)) {
        batch_of_node[row.node_id] = static_cast<int>(batches.size());
        nodes.push_back(NodeIndex(cluster, row.node_id));
        batches.emplace_back().set_read_only(true);
      }
      auto* stmt = batches[batch_of_node[row.node_id]].add_statements();
      stmt->set_sql(row.sql);
      *stmt->add_params() = IntegerValue(row.shard_id);
    }

    CpuTimes cpu_ours, cpu_base;
    auto conductor_round = [&]() {
      CpuTimes before = SampleCpu(cluster);
      auto start = Clock::now();
      auto response = MustExecute(cluster.ops(), count_sql);
      double us = MicrosSince(start);
      cpu_ours += SampleCpu(cluster) - before;
      if (response.result_sets(0).rows(0).values(0).integer() != kCountRows) {
        Fail("conductor COUNT(*) wrong: " + response.ShortDebugString());
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
      if (total != kCountRows) Fail(absl::StrCat("direct COUNT(*) = ", total));
      return us;
    };
    std::vector<std::string> paths;
    for (int node : nodes) paths.push_back(cluster.node_database(node));
    InProcessBatches in_process(paths, batches);
    auto in_process_round = [&]() {
      auto start = Clock::now();
      int64_t total = in_process.RunSum();
      double us = MicrosSince(start);
      if (total != kCountRows) Fail(absl::StrCat("in-process per-shard COUNT(*) = ", total));
      return us;
    };
    auto plain_round = [&]() {
      auto start = Clock::now();
      plain_count->Reset().IgnoreError();
      auto row = plain_count->Step();
      int64_t n = plain_count->ColumnInt64(0);
      double us = MicrosSince(start);
      if (!row.ok() || n != kCountRows) Fail("plain COUNT(*)");
      return us;
    };
    for (int i = 0; i < 3; ++i) {
      conductor_round();
      direct_round();
      plain_round();
      in_process_round();
    }
    cpu_ours = cpu_base = CpuTimes();
    std::vector<double> ours, base, local, same_sql;
    for (int i = 0; i < options.count_rounds; ++i) {
      if (i % 2 == 0) {
        ours.push_back(conductor_round());
        base.push_back(direct_round());
      } else {
        base.push_back(direct_round());
        ours.push_back(conductor_round());
      }
      local.push_back(plain_round());
      same_sql.push_back(in_process_round());
    }
    LatencySummary s_ours = Summarize(ours), s_base = Summarize(base), s_local = Summarize(local),
                   s_same = Summarize(same_sql);
    auto print = [](const std::string& label, const LatencySummary& s) {
      Line(absl::StrFormat("  %-46s n=%-3d p50 %-10s p90 %-10s min %s", label,
                           static_cast<int>(s.count), FormatMicros(s.p50_us),
                           FormatMicros(s.p90_us), FormatMicros(s.min_us)));
    };
    print(absl::StrFormat("conductor COUNT(*), %d shards", shards), s_ours);
    print(absl::StrFormat("direct: %d node batches, %d statements", static_cast<int>(nodes.size()),
                          shards),
          s_base);
    print("in-process SQLite COUNT(*) of 1M rows (ref)", s_local);
    print(absl::StrFormat("in-process: the %d per-shard COUNTs, serially", shards), s_same);
    Line("  conductor " + FormatCpuPerOp(cpu_ours, ours.size()));
    Line("  direct    " + FormatCpuPerOp(cpu_base, base.size()));
    double ratio = s_ours.p50_us / s_base.p50_us;
    Line(absl::StrFormat("  ratio conductor/direct: p50 %.2fx  p90 %.2fx", ratio,
                         s_ours.p90_us / s_base.p90_us));
    Verdict(absl::StrFormat("3c scatter COUNT(*) %d shards, conductor/direct p50", shards),
            absl::StrFormat("%.2fx (%s vs %s)", ratio, FormatMicros(s_ours.p50_us),
                            FormatMicros(s_base.p50_us)),
            "< 2x (ref)", ratio < 2.0);
  }
}

int Main(int argc, char** argv) {
  Options options;
  bool run_a = true, run_b = true, run_c = true;
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "--seconds=", 10) == 0) {
      options.seconds = atof(argv[i] + 10);
      options.insert_seconds = 1.5 * options.seconds;
    } else if (strncmp(argv[i], "--reps=", 7) == 0) {
      options.reps = atoi(argv[i] + 7);
    } else if (strncmp(argv[i], "--rounds=", 9) == 0) {
      options.count_rounds = atoi(argv[i] + 9);
    } else if (strncmp(argv[i], "--only=", 7) == 0) {
      std::string only = argv[i] + 7;
      run_a = only.find('a') != std::string::npos;
      run_b = only.find('b') != std::string::npos;
      run_c = only.find('c') != std::string::npos;
    }
  }
  Line("data_path_bench — " + MachineDescription());
  auto total_start = Clock::now();
  auto cluster = StartCluster(kNodes);
  Line(absl::StrFormat("  cluster: conductor + %d storage nodes (synchronous=full), data in %s",
                       kNodes, cluster->root()));
  if (run_a) {
    PointReadSetup setup = PreparePointReads(*cluster, cluster->root());
    BenchPointReads(*cluster, setup, options);
  }
  if (run_b) BenchInserts(*cluster, cluster->root(), options);
  if (run_c) BenchScatterCount(*cluster, cluster->root(), options);
  PrintVerdicts();
  Line(absl::StrFormat("total time %s", FormatMicros(MicrosSince(total_start))));
  return 0;
}

}  // namespace
}  // namespace conductor::bench

int main(int argc, char** argv) { return conductor::bench::Main(argc, argv); }
