// Index build (issue 4) on a cluster of 3 storage nodes, a conductor (default
// flags) and 1 queue worker (default flags; --workers=N for more: a build is
// one IndexBuildJob over all shards, so further workers idle), each figure
// next to baselines measured in the same run:
//
//  Table t (id INTEGER PRIMARY KEY, c INTEGER, pad TEXT), 8 shards, 1M rows
//  loaded through the conductor (batched INSERTs of 1000 rows, 4 client
//  threads; not part of the result, its rate is printed), c = id % 100000:
//  100k distinct values, most of them on every shard, so the index holds
//  ~590k (value, shard) entries.
//
//  Build: wall time from `CREATE INDEX ib_N ON t (c)` (TableOps.Execute)
//  until ListIndexes shows the index `ready` (polled every 20 ms); rows/s =
//  table rows / that time; entry_count at ready. Target: ready <= 5 s.
//  Where the time goes: the phases from the call's return and the
//  conductor's and worker's log lines (index building; job leased, started,
//  done), and the CPU each process used during the build. Each round also
//  builds the index once more watching the conductor's log instead of
//  polling (then one ListIndexes confirms ready): ListIndexes counts the
//  entries, so the polls themselves load the conductor.
//
//  Baselines, each round:
//   - direct DISTINCT: `SELECT DISTINCT c FROM t WHERE _virtualShard = ?1`
//     for each of the 8 shards, sent straight to the owning node (storage.v1
//     ExecuteBatch, read_only, one call per shard; shard -> node from
//     DescribeTable), all shards at once and one after another; before the
//     build (no SQLite index on c: what the nodes had when CREATE INDEX was
//     called) and after it (the build leaves an index on (_virtualShard, c)).
//   - direct CREATE INDEX: the SQLite index the conductor puts on every node,
//     sent straight to the 3 nodes at once (then dropped): the build's first
//     phase without the conductor.
//   - direct ScanShard: the worker's reads without the conductor: every
//     shard's distinct tuples through storage.v1 ScanShard, shard after
//     shard, in blocks of the table's block size (as IndexBuildJob reads).
//  Once, in process:
//   - SQLite on one plain file with the same 1M rows: SELECT DISTINCT c
//     without an index, CREATE INDEX on c, SELECT DISTINCT c with it.
//   - the conductor's entry writes without RPC: the same (value, shard)
//     tuples through the product's IndexEntryStore::Add and EncodeIndexKey
//     (fresh file), per block as AddScannedKeys does, and 10000 per call.
//
// Each build's index is dropped afterwards; figures are medians over --rounds.
//
//   bazel run -c opt //bench:index_build_bench [-- --rounds=3 --workers=1 --rows=N]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"
#include "common/sql/create_table.h"
#include "common/sqlite.h"
#include "conductor/index/index_entries.h"
#include "conductor/index/index_key.h"

namespace conductor::bench {
namespace {

namespace v1 = ::conductor::v1;
using storage::v1::ExecuteBatchRequest;
using storage::v1::ExecuteBatchResponse;

constexpr int kNodes = 3;
constexpr int kShards = 8;
constexpr int kDistinct = 100000;
constexpr int kInsertBatch = 1000;
constexpr int kLoadThreads = 4;
constexpr double kTargetSeconds = 5.0;
constexpr auto kPollInterval = std::chrono::milliseconds(20);
constexpr double kBuildTimeoutSeconds = 300;

struct Options {
  int rounds = 3;
  int workers = 1;
  int64_t rows = 1000000;
};

void Fail(const std::string& what) { Check(absl::InternalError(what), "check"); }

int64_t ValueOf(int64_t id) { return id % kDistinct; }

std::string PadFor(int64_t id) {
  std::string pad = absl::StrFormat("pad-%010d-", id);
  pad.resize(40, 'x');
  return pad;
}

double Seconds(double us) { return us / 1e6; }

// ---------------------------------------------------------------- loading

// INSERT INTO t (id, c, pad) VALUES (?, ?, ?) x 1000 through the conductor,
// kLoadThreads threads, each on its own channel.
void LoadThroughConductor(TestCluster& cluster, int64_t rows) {
  const int64_t batches = (rows + kInsertBatch - 1) / kInsertBatch;
  CpuTimes before = SampleCpu(cluster);
  const double us = bench::LoadThroughConductor(cluster, "INSERT INTO t (id, c, pad) VALUES ",
                                                "(?, ?, ?)", rows, kLoadThreads, kInsertBatch,
                                                [](int64_t id, v1::ExecuteRequest* request) {
                                                  request->add_params()->set_integer(id);
                                                  request->add_params()->set_integer(ValueOf(id));
                                                  request->add_params()->set_text(PadFor(id));
                                                });
  CpuTimes cpu = SampleCpu(cluster) - before;
  Line(absl::StrFormat(
      "  loaded %d rows through the conductor in %s: %s (%d threads, %d rows/statement; "
      "not part of the result)",
      rows, FormatMicros(us), FormatRate(rows / Seconds(us)), kLoadThreads, kInsertBatch));
  Line("    load " + FormatCpuPerOp(cpu, static_cast<double>(batches)) + "  (per statement)");
  auto counted = MustExecute(cluster.ops(), "SELECT COUNT(*) FROM t");
  if (counted.result_sets_size() != 1 || counted.result_sets(0).rows_size() != 1 ||
      counted.result_sets(0).rows(0).values(0).integer() != rows) {
    Fail("COUNT(*) after loading: " + counted.ShortDebugString());
  }
}

// ---------------------------------------------------------------- layout

struct Layout {
  std::vector<int> shard_ids;  // active shards, sorted
  std::vector<int> nodes;      // node index per entry of shard_ids
  int block_size = 0;
};

Layout LayoutOf(TestCluster& cluster, const std::string& table) {
  v1::DescribeTableResponse described = MustDescribe(cluster.ops(), table);
  std::vector<std::pair<int, int>> shards;
  for (const auto& shard : described.shards()) {
    if (shard.status() != "active") continue;
    int node = NodeIndex(cluster, shard.node_id());
    if (node < 0) Fail("DescribeTable names unknown node " + shard.node_id());
    shards.emplace_back(shard.shard_id(), node);
  }
  std::sort(shards.begin(), shards.end());
  Layout layout;
  for (const auto& [id, node] : shards) {
    layout.shard_ids.push_back(id);
    layout.nodes.push_back(node);
  }
  layout.block_size = described.table().block_size();
  return layout;
}

// ---------------------------------------------------------------- direct scans

struct ScanResult {
  double us = 0;
  int64_t tuples = 0;  // (value, shard) pairs: what the index records
  CpuTimes cpu;
};

// Counts the tuples and checks that the shards hold exactly the values
// 0 .. kDistinct-1 between them, each at most once per shard.
class TupleCheck {
 public:
  TupleCheck() : seen_(kDistinct, 0) {}
  void Shard(const google::protobuf::RepeatedPtrField<v1::Row>& rows) {
    for (const auto& row : rows) Add(row);
  }
  void Add(const v1::Row& row) {
    if (row.values_size() != 1 || !row.values(0).has_integer()) {
      Fail("unexpected tuple " + row.ShortDebugString());
    }
    int64_t v = row.values(0).integer();
    if (v < 0 || v >= kDistinct) Fail(absl::StrCat("unexpected value ", v));
    seen_[v] = 1;
    ++tuples_;
  }
  int64_t Finish(const std::string& what) {
    int64_t distinct = std::count(seen_.begin(), seen_.end(), 1);
    if (distinct != kDistinct) {
      Fail(absl::StrCat(what, ": ", distinct, " distinct values, expected ", kDistinct));
    }
    return tuples_;
  }

 private:
  std::vector<char> seen_;
  int64_t tuples_ = 0;
};

ExecuteBatchRequest DistinctRequest(int shard_id) {
  ExecuteBatchRequest request;
  request.set_read_only(true);
  auto* stmt = request.add_statements();
  stmt->set_sql("SELECT DISTINCT c FROM t WHERE _virtualShard = ?1");
  *stmt->add_params() = IntegerValue(shard_id);
  return request;
}

// All 8 per-shard DISTINCT statements at once (one call per shard).
ScanResult DirectDistinctParallel(TestCluster& cluster, DirectStorage& direct,
                                  const Layout& layout) {
  std::vector<ExecuteBatchRequest> batches;
  for (int shard_id : layout.shard_ids) batches.push_back(DistinctRequest(shard_id));
  std::vector<ExecuteBatchResponse> responses;
  ScanResult result;
  CpuTimes before = SampleCpu(cluster);
  auto start = Clock::now();
  Check(direct.FanOut(layout.nodes, batches, &responses), "direct DISTINCT (parallel)");
  result.us = MicrosSince(start);
  result.cpu = SampleCpu(cluster) - before;
  TupleCheck check;
  for (const auto& response : responses) {
    if (response.results_size() != 1) Fail("direct DISTINCT: no result");
    check.Shard(response.results(0).rows());
  }
  result.tuples = check.Finish("direct DISTINCT (parallel)");
  return result;
}

// The same statements one after another.
ScanResult DirectDistinctSequential(TestCluster& cluster, DirectStorage& direct,
                                    const Layout& layout) {
  std::vector<ExecuteBatchResponse> responses(layout.shard_ids.size());
  ScanResult result;
  CpuTimes before = SampleCpu(cluster);
  auto start = Clock::now();
  for (size_t i = 0; i < layout.shard_ids.size(); ++i) {
    ExecuteBatchRequest request = DistinctRequest(layout.shard_ids[i]);
    auto context = NewContext(120);
    Check(direct.stub(layout.nodes[i]).ExecuteBatch(context.get(), request, &responses[i]),
          "direct DISTINCT (sequential)");
  }
  result.us = MicrosSince(start);
  result.cpu = SampleCpu(cluster) - before;
  TupleCheck check;
  for (const auto& response : responses) {
    if (response.results_size() != 1) Fail("direct DISTINCT: no result");
    check.Shard(response.results(0).rows());
  }
  result.tuples = check.Finish("direct DISTINCT (sequential)");
  return result;
}

// What IndexBuildJob reads: each shard's distinct tuples through ScanShard,
// shard after shard, blocks of `block_size`.
ScanResult DirectScanShards(TestCluster& cluster, DirectStorage& direct, const Layout& layout,
                            int block_size) {
  ScanResult result;
  TupleCheck check;
  CpuTimes before = SampleCpu(cluster);
  auto start = Clock::now();
  for (size_t i = 0; i < layout.shard_ids.size(); ++i) {
    storage::v1::ScanShardRequest request;
    request.set_table("t");
    request.set_shard_id(layout.shard_ids[i]);
    request.add_key_columns("c");
    request.set_block_size(block_size);
    request.set_distinct(true);
    auto context = NewContext(120);
    auto reader = direct.stub(layout.nodes[i]).ScanShard(context.get(), request);
    storage::v1::ScanShardResponse block;
    bool done = false;
    while (reader->Read(&block)) {
      for (const auto& row : block.rows()) check.Add(row);
      if (block.done()) done = true;
    }
    Check(reader->Finish(), "direct ScanShard");
    if (!done) Fail("ScanShard ended without a done block");
  }
  result.us = MicrosSince(start);
  result.cpu = SampleCpu(cluster) - before;
  result.tuples = check.Finish("direct ScanShard");
  return result;
}

// The conductor's physical index (CREATE INDEX … ON t (_virtualShard, c)),
// straight to every node at once; dropped again (untimed).
double DirectCreateIndex(DirectStorage& direct) {
  std::vector<int> nodes;
  std::vector<ExecuteBatchRequest> create(kNodes), drop(kNodes);
  for (int i = 0; i < kNodes; ++i) {
    nodes.push_back(i);
    create[i].add_statements()->set_sql(
        "CREATE INDEX IF NOT EXISTS \"direct_c\" ON \"t\" (_virtualShard, \"c\")");
    drop[i].add_statements()->set_sql("DROP INDEX IF EXISTS \"direct_c\"");
  }
  std::vector<ExecuteBatchResponse> responses;
  auto start = Clock::now();
  Check(direct.FanOut(nodes, create, &responses), "direct CREATE INDEX");
  double us = MicrosSince(start);
  Check(direct.FanOut(nodes, drop, &responses), "direct DROP INDEX");
  return us;
}

// ---------------------------------------------------------------- in-process SQLite

struct InProcessFigures {
  double distinct_us = 0;        // SELECT DISTINCT c, no index (median)
  double create_index_us = 0;    // CREATE INDEX ON t (c)
  double distinct_index_us = 0;  // SELECT DISTINCT c with it (median)
};

InProcessFigures InProcessBaseline(const std::string& root, int64_t rows) {
  const std::string path = root + "/plain_t.db";
  auto db = Database::Open(path);
  Check(db.status(), "open " + path);
  Check((*db)->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, c INTEGER, pad TEXT); BEGIN"),
        "create plain t");
  {
    auto insert = (*db)->Prepare("INSERT INTO t (id, c, pad) VALUES (?1, ?2, ?3)");
    Check(insert.status(), "prepare insert");
    for (int64_t id = 0; id < rows; ++id) {
      Check(insert->Reset(), "reset");
      Check(insert->BindInt64(1, id), "bind");
      Check(insert->BindInt64(2, ValueOf(id)), "bind");
      Check(insert->BindText(3, PadFor(id)), "bind");
      Check(insert->Run(), "insert");
    }
  }
  Check((*db)->Exec("COMMIT; PRAGMA wal_checkpoint(TRUNCATE)"), "commit");
  auto distinct = [&]() {
    auto stmt = (*db)->Prepare("SELECT DISTINCT c FROM t");
    Check(stmt.status(), "prepare DISTINCT");
    auto start = Clock::now();
    int64_t n = 0;
    while (true) {
      auto row = stmt->Step();
      Check(row.status(), "step DISTINCT");
      if (!*row) break;
      ++n;
    }
    double us = MicrosSince(start);
    if (n != kDistinct) Fail(absl::StrCat("in-process DISTINCT: ", n, " values"));
    return us;
  };
  InProcessFigures figures;
  std::vector<double> times;
  for (int i = 0; i < 3; ++i) times.push_back(distinct());
  figures.distinct_us = Median(times);
  auto start = Clock::now();
  Check((*db)->Exec("CREATE INDEX plain_c ON t (c)"), "CREATE INDEX");
  figures.create_index_us = MicrosSince(start);
  times.clear();
  for (int i = 0; i < 3; ++i) times.push_back(distinct());
  figures.distinct_index_us = Median(times);
  return figures;
}

// Each shard's distinct values of c, ascending (the order ScanShard gives).
std::vector<std::vector<int64_t>> ShardValues(DirectStorage& direct, const Layout& layout) {
  std::vector<std::vector<int64_t>> values;
  for (size_t i = 0; i < layout.shard_ids.size(); ++i) {
    ExecuteBatchRequest request = DistinctRequest(layout.shard_ids[i]);
    ExecuteBatchResponse response;
    auto context = NewContext(120);
    Check(direct.stub(layout.nodes[i]).ExecuteBatch(context.get(), request, &response),
          "DISTINCT c of one shard");
    if (response.results_size() != 1) Fail("DISTINCT c: no result");
    std::vector<int64_t>& shard = values.emplace_back();
    for (const auto& row : response.results(0).rows()) shard.push_back(row.values(0).integer());
    std::sort(shard.begin(), shard.end());
  }
  return values;
}

// The conductor's share of the build without RPC: the same (value, shard)
// entries written in process with the product's own IndexEntryStore (a fresh
// file, as DATA_DIR/index_entries.db) and EncodeIndexKey, `per_call` tuples
// per Add (one transaction each, as one AddScannedKeys call), shard after
// shard. Also times Count over the result (what every ListIndexes does).
struct EntryStoreFigures {
  double add_us = 0;    // all the Adds
  double count_us = 0;  // one Count of all the entries (median of 5)
};
EntryStoreFigures InProcessEntryStore(const std::string& path,
                                      const std::vector<std::vector<int64_t>>& values,
                                      const Layout& layout, int per_call) {
  auto store = IndexEntryStore::Open(path);
  Check(store.status(), "open " + path);
  sql::ColumnSchema c;
  c.name = "c";
  c.type = "INTEGER";
  const std::vector<const sql::ColumnSchema*> columns = {&c};
  int64_t seq = 0, total = 0;
  auto start = Clock::now();
  for (size_t i = 0; i < values.size(); ++i) {
    ++seq;  // a new scan sequence per shard, as BeginShardScan hands out
    for (size_t first = 0; first < values[i].size(); first += per_call) {
      std::vector<IndexEntry> entries;
      const size_t last = std::min(values[i].size(), first + per_call);
      for (size_t k = first; k < last; ++k) {
        auto key = EncodeIndexKey({IntegerValue(values[i][k])}, columns);
        if (!key.has_value()) Fail("EncodeIndexKey gave no key");
        entries.push_back({std::move(*key), layout.shard_ids[i]});
      }
      Check((*store)->Add(1, entries, seq), "IndexEntryStore::Add");
      total += static_cast<int64_t>(entries.size());
    }
  }
  EntryStoreFigures figures;
  figures.add_us = MicrosSince(start);
  std::vector<double> counts;
  for (int i = 0; i < 5; ++i) {
    auto count_start = Clock::now();
    auto count = (*store)->Count(1);
    counts.push_back(MicrosSince(count_start));
    Check(count.status(), "IndexEntryStore::Count");
    if (*count != total) Fail(absl::StrCat("entry store holds ", *count, " entries, not ", total));
  }
  figures.count_us = Median(counts);
  return figures;
}

// ---------------------------------------------------------------- logs

// FileSize, LinesFrom, LineTime, LogFile: bench_util.

constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();

// The job's milestones, in ms after the CREATE INDEX call (NaN: not found).
// Log times have millisecond resolution.
struct Milestones {
  double started_ms = kUnknown;  // worker: "job N (IndexBuildJob) attempt A: started"
  double done_ms = kUnknown;     // conductor: "job N (IndexBuildJob) done at attempt A" (the
                                 // same transaction makes the index ready)
};

// Prints the servers' lines about this build (offsets from `call`), and
// returns the milestones.
Milestones ReadTimeline(const std::vector<LogFile>& logs, const std::string& index_name,
                        absl::Time call) {
  Milestones m;
  // The build job's id, from the conductor's "job N (IndexBuildJob) attempt
  // A/M leased to …" (the job is enqueued in CREATE INDEX's transaction,
  // which logs no line of its own).
  std::string job_prefix;
  for (const std::string& line : LinesFrom(logs[0].path, logs[0].offset)) {
    size_t at = line.find("(IndexBuildJob) attempt ");
    size_t job = line.find(": job ");
    if (at != std::string::npos && job != std::string::npos && job < at &&
        absl::StrContains(line, " leased to ")) {
      job_prefix = line.substr(job + 2, at - job - 2);  // "job N "
      break;
    }
  }
  struct Event {
    double ms;
    std::string line;
  };
  std::vector<Event> events;
  for (const LogFile& log : logs) {
    for (const std::string& line : LinesFrom(log.path, log.offset)) {
      const bool about_job = !job_prefix.empty() && absl::StrContains(line, job_prefix);
      const bool about_index = absl::StrContains(line, absl::StrCat("index ", index_name, " "));
      if (!about_job && !about_index) continue;
      auto t = LineTime(line);
      if (!t.has_value()) continue;
      const double ms = absl::ToDoubleMilliseconds(*t - call);
      events.push_back({ms, line});
      if (about_job && absl::StrContains(line, ": started")) {
        m.started_ms = ms;
      } else if (about_job && absl::StrContains(line, " done at attempt")) {
        m.done_ms = ms;
      }
    }
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const Event& a, const Event& b) { return a.ms < b.ms; });
  for (const Event& e : events) {
    // The line without its level and time: "tag: message".
    std::string text = e.line.size() > 27 ? e.line.substr(27) : e.line;
    if (text.size() > 120) text = text.substr(0, 120) + "…";
    Line(absl::StrFormat("      %+8.0f ms  %s", e.ms, text));
  }
  return m;
}

// CPU time all processes on the machine have used so far (busy time summed
// over the CPUs, from /proc/stat), in microseconds.
double MachineBusyUs() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                     steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return (user + nice + system + irq + softirq + steal) * (1e6 / sysconf(_SC_CLK_TCK));
}

double CpuSum(const CpuTimes& t) {
  return t.conductor_user + t.conductor_sys + t.nodes_user + t.nodes_sys + t.workers_user +
         t.workers_sys + t.client_user + t.client_sys;
}

// ---------------------------------------------------------------- the build

struct BuildResult {
  double total_us = 0;           // call -> ready observed
  double call_us = 0;            // the CREATE INDEX call itself
  double first_entries_us = -1;  // first poll that saw entries
  int64_t entry_count = 0;
  int32_t stale_shards = 0;
  int polls = 0;
  double poll_p50_us = 0, poll_max_us = 0;  // ListIndexes latency while polling
  CpuTimes cpu;
  double others_us = 0;  // CPU used by processes outside the benchmark meanwhile
  Milestones milestones;
};

v1::IndexInfo FindIndex(v1::TableOps::Stub& ops, const std::string& name) {
  v1::ListIndexesRequest request;
  request.set_table("t");
  v1::ListIndexesResponse response;
  auto context = NewContext(30);
  Check(ops.ListIndexes(context.get(), request, &response), "ListIndexes");
  for (const auto& index : response.indexes()) {
    if (index.name() == name) return index;
  }
  Fail("ListIndexes does not list " + name + ": " + response.ShortDebugString());
  return {};
}

// How the benchmark learns that the index is ready.
enum class Watch {
  // ListIndexes every 20 ms (the measurement the issue asks for).
  kPoll,
  // The conductor's log line "job N (IndexBuildJob) done", read from the file
  // every 5 ms, then one ListIndexes: the build without the polls' load.
  kLog,
};

// The conductor's log has a line saying that an IndexBuildJob ended.
bool BuildJobEnded(const LogFile& log) {
  for (const std::string& line : LinesFrom(log.path, log.offset)) {
    if (absl::StrContains(line, "(IndexBuildJob) done at attempt") ||
        absl::StrContains(line, "(IndexBuildJob) failed at attempt")) {
      return true;
    }
  }
  return false;
}

BuildResult Build(TestCluster& cluster, const std::string& name, Watch watch) {
  std::vector<LogFile> logs = {{cluster.root() + "/conductor.log", 0}};
  for (int i = 0; i < cluster.worker_count(); ++i) {
    logs.push_back({cluster.root() + "/" + cluster.worker_id(i) + ".log", 0});
  }
  for (LogFile& log : logs) log.offset = FileSize(log.path);
  auto ops = v1::TableOps::NewStub(NewChannel(cluster.conductor_address()));

  BuildResult result;
  std::vector<double> polls;
  CpuTimes before = SampleCpu(cluster);
  const double busy_before = MachineBusyUs();
  const absl::Time call = absl::Now();
  auto start = Clock::now();
  {
    v1::ExecuteRequest request;
    request.set_sql(absl::StrCat("CREATE INDEX ", name, " ON t (c)"));
    v1::ExecuteResponse response;
    auto context = NewContext(120);
    Check(ops->Execute(context.get(), request, &response), "CREATE INDEX " + name);
  }
  result.call_us = MicrosSince(start);
  while (true) {
    auto poll_start = Clock::now();
    if (watch == Watch::kLog && !BuildJobEnded(logs[0])) {
      if (MicrosSince(start) > kBuildTimeoutSeconds * 1e6) {
        Fail(absl::StrCat("index ", name, " not ready after ", kBuildTimeoutSeconds, " s"));
      }
      std::this_thread::sleep_until(poll_start + std::chrono::milliseconds(5));
      continue;
    }
    const double seen_us = MicrosSince(start);
    v1::IndexInfo info = FindIndex(*ops, name);
    polls.push_back(MicrosSince(poll_start));
    if (info.status() == "ready") {
      result.total_us = seen_us;
      result.entry_count = info.entry_count();
      result.stale_shards = info.stale_shards();
      break;
    }
    if (info.status() != "building" || watch == Watch::kLog) {
      Fail(absl::StrCat("index ", name, " is ", info.status(), " ", info.error()));
    }
    if (info.entry_count() > 0 && result.first_entries_us < 0) result.first_entries_us = seen_us;
    if (seen_us > kBuildTimeoutSeconds * 1e6) {
      Fail(absl::StrCat("index ", name, " not ready after ", kBuildTimeoutSeconds, " s"));
    }
    std::this_thread::sleep_until(poll_start + kPollInterval);
  }
  result.cpu = SampleCpu(cluster) - before;
  // Whatever else ran on the machine meanwhile (other processes' CPU).
  result.others_us = std::max(0.0, MachineBusyUs() - busy_before - CpuSum(result.cpu));
  result.polls = static_cast<int>(polls.size());
  LatencySummary poll = Summarize(polls);
  result.poll_p50_us = poll.p50_us;
  result.poll_max_us = poll.max_us;
  Line(absl::StrFormat(
      "    build %s (%s): ready after %s (call returned after %s%s), entry_count %d, "
      "stale_shards %d",
      name, watch == Watch::kPoll ? "ListIndexes every 20 ms" : "watching the conductor's log",
      FormatMicros(result.total_us), FormatMicros(result.call_us),
      result.first_entries_us < 0
          ? ""
          : absl::StrCat("; first entries seen at ", FormatMicros(result.first_entries_us)),
      result.entry_count, result.stale_shards));
  Line(absl::StrFormat("      %d ListIndexes call%s, p50 %s, max %s", result.polls,
                       result.polls == 1 ? "" : "s", FormatMicros(result.poll_p50_us),
                       FormatMicros(result.poll_max_us)));
  Line("      build " + FormatCpuPerOp(result.cpu, 1));
  Line(absl::StrFormat(
      "      other processes on the machine used %s of CPU meanwhile (%.0f%% of one core)",
      FormatMicros(result.others_us), 100 * result.others_us / result.total_us));
  Line("      timeline (ms after the CREATE INDEX call; server log lines):");
  result.milestones = ReadTimeline(logs, name, call);
  return result;
}

// Log times have millisecond resolution: -0.4 ms is 0.
std::string Ms(double ms) {
  if (std::isnan(ms)) return "n/a";
  return absl::StrFormat("%.0f ms", ms > -1 && ms < 0 ? 0.0 : ms);
}

void PrintScan(const std::string& label, const ScanResult& r, int64_t rows) {
  Line(absl::StrFormat("    %-52s %10s  %10s rows  %7d tuples  %s", label, FormatMicros(r.us),
                       FormatRate(rows / Seconds(r.us)), r.tuples, FormatCpuPerOp(r.cpu, 1)));
}

int Main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "--rounds=", 9) == 0) {
      options.rounds = atoi(argv[i] + 9);
    } else if (strncmp(argv[i], "--workers=", 10) == 0) {
      options.workers = atoi(argv[i] + 10);
    } else if (strncmp(argv[i], "--rows=", 7) == 0) {
      options.rows = atoll(argv[i] + 7);
    } else {
      fprintf(stderr, "unknown flag %s (flags: --rounds=N --workers=N --rows=N)\n", argv[i]);
      return 2;
    }
  }
  if (options.rounds < 1 || options.workers < 1 || options.rows < kDistinct) {
    fprintf(stderr, "need --rounds >= 1, --workers >= 1, --rows >= %d\n", kDistinct);
    return 2;
  }
  Line("index_build_bench — " + MachineDescription());
  auto total_start = Clock::now();
  auto cluster = StartCluster(kNodes, options.workers);
  Line(absl::StrFormat(
      "  cluster: conductor (default flags) + %d storage nodes (synchronous=full) + %d queue "
      "worker%s (default flags), data in %s",
      kNodes, options.workers, options.workers == 1 ? "" : "s", cluster->root()));

  Section(absl::StrFormat("setup: t, %d rows, %d distinct values of c, %d shards on %d nodes",
                          options.rows, kDistinct, kShards, kNodes));
  MustExecute(cluster->ops(),
              "CREATE TABLE t (id INTEGER PRIMARY KEY, c INTEGER, pad TEXT) /* SHARDS=8 */");
  Layout layout = LayoutOf(*cluster, "t");
  if (layout.shard_ids.size() != kShards) Fail("t does not have 8 active shards");
  std::vector<std::string> placement;
  for (size_t i = 0; i < layout.shard_ids.size(); ++i) {
    placement.push_back(absl::StrCat(layout.shard_ids[i], "->", cluster->node_id(layout.nodes[i])));
  }
  Line(absl::StrFormat("  shards: %s; block_size %d", absl::StrJoin(placement, " "),
                       layout.block_size));
  LoadThroughConductor(*cluster, options.rows);

  std::vector<std::string> addresses;
  for (int i = 0; i < kNodes; ++i) addresses.push_back(cluster->node_address(i));
  DirectStorage direct(addresses);

  Section("in-process SQLite, one plain file with the same rows (reference)");
  InProcessFigures local = InProcessBaseline(cluster->root(), options.rows);
  Line(absl::StrFormat("    SELECT DISTINCT c, no index          %10s  %10s rows",
                       FormatMicros(local.distinct_us),
                       FormatRate(options.rows / Seconds(local.distinct_us))));
  Line(absl::StrFormat("    CREATE INDEX ON t (c)                %10s  %10s rows",
                       FormatMicros(local.create_index_us),
                       FormatRate(options.rows / Seconds(local.create_index_us))));
  Line(absl::StrFormat("    SELECT DISTINCT c, with that index   %10s  %10s rows",
                       FormatMicros(local.distinct_index_us),
                       FormatRate(options.rows / Seconds(local.distinct_index_us))));

  Section("in-process: the conductor's entry writes for the same tuples (reference)");
  const std::vector<std::vector<int64_t>> shard_values = ShardValues(direct, layout);
  int64_t shard_tuples = 0;
  for (const auto& v : shard_values) shard_tuples += static_cast<int64_t>(v.size());
  const EntryStoreFigures entries_block = InProcessEntryStore(
      cluster->root() + "/entries_block.db", shard_values, layout, layout.block_size);
  const EntryStoreFigures entries_big =
      InProcessEntryStore(cluster->root() + "/entries_big.db", shard_values, layout, 10000);
  auto print_entries = [&](int per_call, const EntryStoreFigures& f) {
    Line(absl::StrFormat(
        "    IndexEntryStore::Add + EncodeIndexKey, %5d tuples per call   %10s  %10s tuples  "
        "(%d tuples; %.2f µs each)",
        per_call, FormatMicros(f.add_us), FormatRate(shard_tuples / Seconds(f.add_us)),
        shard_tuples, f.add_us / shard_tuples));
  };
  print_entries(layout.block_size, entries_block);
  print_entries(10000, entries_big);
  Line(absl::StrFormat("    IndexEntryStore::Count of those %d entries (each ListIndexes)   %10s",
                       shard_tuples, FormatMicros(entries_block.count_us)));

  Section(absl::StrFormat(
      "index builds, %d rounds (each: baselines without an index, a build watched by "
      "ListIndexes polls, baselines with the index, drop, a build watched in the log, drop)",
      options.rounds));
  struct Series {
    std::vector<double> total_s, call_s, queue_ms, job_ms, finish_ms;
    CpuTimes cpu;
    double others_us = 0;
    int polls = 0;
    void Add(const BuildResult& b) {
      const Milestones& m = b.milestones;
      const double call_ms = b.call_us / 1000, total_ms = b.total_us / 1000;
      total_s.push_back(Seconds(b.total_us));
      call_s.push_back(Seconds(b.call_us));
      queue_ms.push_back(m.started_ms - call_ms);  // NaN when unknown
      job_ms.push_back(m.done_ms - m.started_ms);
      finish_ms.push_back(total_ms - m.done_ms);
      cpu += b.cpu;
      others_us += b.others_us;
      polls += b.polls;
    }
  };
  Series polled, logged;
  std::vector<double> par_s, seq_s, par_idx_s, seq_idx_s, scan_s, scan_max_s, create_s;
  int64_t tuples = -1;
  auto check_entries = [&](const BuildResult& build) {
    if (build.entry_count != tuples) {
      Fail(absl::StrCat("entry_count ", build.entry_count, " at ready; the shards hold ", tuples,
                        " (value, shard) tuples"));
    }
  };
  auto drop = [&](const std::string& name) {
    auto drop_start = Clock::now();
    MustExecute(cluster->ops(), "DROP INDEX " + name);
    Line(absl::StrFormat("    DROP INDEX %s: %s (untimed)", name,
                         FormatMicros(MicrosSince(drop_start))));
  };
  for (int round = 1; round <= options.rounds; ++round) {
    {
      double load[3] = {0, 0, 0};
      getloadavg(load, 3);
      Line(absl::StrFormat("  round %d (%s, load avg %.2f)", round,
                           absl::FormatTime("%H:%M:%S UTC", absl::Now(), absl::UTCTimeZone()),
                           load[0]));
    }
    // Without an SQLite index on c, as when CREATE INDEX is called; the
    // order alternates so that background load hits both alike.
    ScanResult par, seq;
    if (round % 2 == 1) {
      par = DirectDistinctParallel(*cluster, direct, layout);
      seq = DirectDistinctSequential(*cluster, direct, layout);
    } else {
      seq = DirectDistinctSequential(*cluster, direct, layout);
      par = DirectDistinctParallel(*cluster, direct, layout);
    }
    PrintScan("direct DISTINCT, 8 shards at once, no index", par, options.rows);
    PrintScan("direct DISTINCT, shard after shard, no index", seq, options.rows);
    if (tuples < 0) tuples = par.tuples;
    if (par.tuples != tuples || seq.tuples != tuples) Fail("tuple counts differ between scans");
    const double create_us = DirectCreateIndex(direct);
    Line(absl::StrFormat("    %-52s %10s", "direct CREATE INDEX (_virtualShard, c), 3 nodes",
                         FormatMicros(create_us)));

    const std::string name = absl::StrCat("ib_", round);
    BuildResult build = Build(*cluster, name, Watch::kPoll);
    check_entries(build);
    polled.Add(build);

    ScanResult par_idx = DirectDistinctParallel(*cluster, direct, layout);
    ScanResult seq_idx = DirectDistinctSequential(*cluster, direct, layout);
    ScanResult scan = DirectScanShards(*cluster, direct, layout, layout.block_size);
    ScanResult scan_max = DirectScanShards(*cluster, direct, layout, 10000);
    PrintScan("direct DISTINCT, 8 shards at once, with the index", par_idx, options.rows);
    PrintScan("direct DISTINCT, shard after shard, with the index", seq_idx, options.rows);
    PrintScan(absl::StrFormat("direct ScanShard distinct, serial, block %d", layout.block_size),
              scan, options.rows);
    PrintScan("direct ScanShard distinct, serial, block 10000", scan_max, options.rows);
    for (const ScanResult* r : {&par_idx, &seq_idx, &scan, &scan_max}) {
      if (r->tuples != tuples) Fail("tuple counts differ between scans");
    }
    drop(name);

    const std::string watched = absl::StrCat("ibw_", round);
    BuildResult quiet = Build(*cluster, watched, Watch::kLog);
    check_entries(quiet);
    logged.Add(quiet);
    drop(watched);

    par_s.push_back(Seconds(par.us));
    seq_s.push_back(Seconds(seq.us));
    par_idx_s.push_back(Seconds(par_idx.us));
    seq_idx_s.push_back(Seconds(seq_idx.us));
    scan_s.push_back(Seconds(scan.us));
    scan_max_s.push_back(Seconds(scan_max.us));
    create_s.push_back(Seconds(create_us));
  }

  Section(absl::StrFormat("summary: medians over %d rounds; %d rows, %d (value, shard) tuples",
                          options.rounds, options.rows, tuples));
  const double build = Median(polled.total_s);
  auto rounds_of = [](const std::vector<double>& v) {
    std::vector<std::string> out;
    for (double x : v) out.push_back(absl::StrFormat("%.2f", x));
    return absl::StrJoin(out, " / ");
  };
  Line(absl::StrFormat("  %-54s %8.3f s  %10s rows   (rounds: %s s)",
                       "index build, CREATE INDEX -> ready (ListIndexes polls)", build,
                       FormatRate(options.rows / build), rounds_of(polled.total_s)));
  const double quiet = Median(logged.total_s);
  Line(absl::StrFormat("  %-54s %8.3f s  %10s rows   (rounds: %s s)",
                       "index build, watched in the conductor's log", quiet,
                       FormatRate(options.rows / quiet), rounds_of(logged.total_s)));
  Line(absl::StrFormat("  %-54s %8s    %10s        build (polled) / baseline", "baseline", "time",
                       "rate"));
  auto row = [&](const std::string& label, double s) {
    Line(absl::StrFormat("  %-54s %8.3f s  %10s rows   %6.2fx", label, s,
                         FormatRate(options.rows / s), build / s));
  };
  row("direct DISTINCT, 8 shards at once, no index", Median(par_s));
  row("direct DISTINCT, shard after shard, no index", Median(seq_s));
  row("direct DISTINCT, 8 shards at once, with the index", Median(par_idx_s));
  row("direct DISTINCT, shard after shard, with the index", Median(seq_idx_s));
  row(absl::StrFormat("direct ScanShard distinct, serial, block %d", layout.block_size),
      Median(scan_s));
  row("direct ScanShard distinct, serial, block 10000", Median(scan_max_s));
  row("direct CREATE INDEX (_virtualShard, c) on 3 nodes", Median(create_s));
  row("in-process SQLite: SELECT DISTINCT c (no index)", Seconds(local.distinct_us));
  row("in-process SQLite: CREATE INDEX ON t (c)", Seconds(local.create_index_us));
  row("in-process SQLite: SELECT DISTINCT c (with it)", Seconds(local.distinct_index_us));
  row(absl::StrFormat("in-process entry store, %d tuples per Add", layout.block_size),
      Seconds(entries_block.add_us));
  row("in-process entry store, 10000 tuples per Add", Seconds(entries_big.add_us));

  auto median_known = [](std::vector<double> v) {
    v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
    return v.empty() ? kUnknown : Median(v);
  };
  Line("  where the build's time goes (medians; the call's return and the servers' log lines):");
  Line(absl::StrFormat("  %-60s %12s %12s", "", "polled", "log-watched"));
  auto phase = [&](const std::string& label, double a, double b) {
    Line(absl::StrFormat("    %-58s %12s %12s", label, Ms(a), Ms(b)));
  };
  phase("CREATE INDEX call (SQLite index on every node, job queued)", Median(polled.call_s) * 1000,
        Median(logged.call_s) * 1000);
  phase("call returned -> worker started the job", median_known(polled.queue_ms),
        median_known(logged.queue_ms));
  phase("worker started -> job done (shard scans + entries)", median_known(polled.job_ms),
        median_known(logged.job_ms));
  phase("job done -> ready seen", median_known(polled.finish_ms), median_known(logged.finish_ms));
  Line("    polled:      " + FormatCpuPerOp(polled.cpu, options.rounds) + "  (per build)");
  Line(absl::StrFormat("                 %.0f ListIndexes calls per build",
                       static_cast<double>(polled.polls) / options.rounds));
  Line("    log-watched: " + FormatCpuPerOp(logged.cpu, options.rounds) + "  (per build)");
  Line(absl::StrFormat(
      "    other processes on the machine (not the benchmark) used %s (polled) / %s "
      "(log-watched) of CPU per build",
      FormatMicros(polled.others_us / options.rounds),
      FormatMicros(logged.others_us / options.rounds)));

  Verdict(absl::StrFormat("4 index build, %s rows / 100k values / 8 shards: time to ready",
                          options.rows == 1000000 ? "1M" : absl::StrCat(options.rows)),
          absl::StrFormat("%.2f s (%s rows)", build, FormatRate(options.rows / build)), "<= 5 s",
          build <= kTargetSeconds);
  PrintVerdicts();
  Line(absl::StrFormat("total time %s", FormatMicros(MicrosSince(total_start))));
  return 0;
}

}  // namespace
}  // namespace conductor::bench

int main(int argc, char** argv) { return conductor::bench::Main(argc, argv); }
