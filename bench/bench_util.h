// Shared pieces of the benchmarks under bench/: the cluster of real processes
// on loopback (tests/harness's TestCluster, started the benchmarks' way), a
// direct storage.v1 client that fans batches out to nodes the way the
// conductor does, CPU accounting, latency statistics, and the report format
// (figure, baseline, ratio, target, PASS/MISS).
#ifndef CONDUCTOR_BENCH_BENCH_UTIL_H_
#define CONDUCTOR_BENCH_BENCH_UTIL_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "conductor/v1/table_ops.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "storage/v1/storage.grpc.pb.h"
#include "tests/harness/cluster.h"

namespace conductor::bench {

// Aborts the benchmark with `what` and the status when `status` is not OK.
void Check(const absl::Status& status, const std::string& what);
void Check(const grpc::Status& status, const std::string& what);

using testing::TestCluster;

// Stops the cluster's servers (SIGTERM, then SIGKILL after 10 s), then
// removes its data directory unless BENCH_KEEP_DATA is set.
struct StopAndRemoveData {
  void operator()(TestCluster* cluster) const;
};
using BenchCluster = std::unique_ptr<TestCluster, StopAndRemoveData>;

// Starts N storage nodes ("node-1" … "node-N", --synchronous=full: the
// product default, stated so that the figures stay durable ones), a
// conductor (with its own default storage timeout) and `workers` queue
// workers (default flags; the target needs "//queue_worker" in its data),
// each in its own data directory under $BENCH_TMPDIR/conductor-bench-PID
// (default /tmp). The servers die with the benchmark. Aborts on failure.
BenchCluster StartCluster(int storage_nodes, int workers = 0);

// Index of "node-K" in `cluster`, or -1.
int NodeIndex(const TestCluster& cluster, const std::string& node_id);

// A channel of its own (its own TCP connection: no subchannel sharing with
// other channels to the same address).
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address);

// A client context with a generous deadline.
std::unique_ptr<grpc::ClientContext> NewContext(int timeout_s = 60);

// Convenience wrappers over the public API that abort on failure.
v1::ExecuteResponse MustExecute(v1::TableOps::Stub& ops, const std::string& sql,
                                const std::vector<v1::Value>& params = {});
v1::DescribeTableResponse MustDescribe(v1::TableOps::Stub& ops, const std::string& table);

// The EXPLAIN of a data statement: one entry per shard statement.
struct ExplainRow {
  std::string route;
  int shard_id = -1;
  std::string node_id;
  std::string sql;
  std::string merge;
};
std::vector<ExplainRow> MustExplain(v1::TableOps::Stub& ops, const std::string& sql,
                                    const std::vector<v1::Value>& params = {});

// One storage.v1 stub per node, over channels of its own; FanOut sends one
// batch per node at once with the async callback API (as the conductor's
// GrpcStorageClient does) and waits for all answers.
class DirectStorage {
 public:
  explicit DirectStorage(const std::vector<std::string>& addresses);
  storage::v1::Storage::Stub& stub(int node) { return *stubs_[node]; }
  // batches[i] goes to node nodes[i]. Returns the first error, if any.
  absl::Status FanOut(const std::vector<int>& nodes,
                      const std::vector<storage::v1::ExecuteBatchRequest>& batches,
                      std::vector<storage::v1::ExecuteBatchResponse>* responses);

 private:
  std::vector<std::unique_ptr<storage::v1::Storage::Stub>> stubs_;
};

// The same read-only batches run in this process, one after another, on the
// nodes' SQLite files (connections and prepared statements kept): the pure
// SQLite cost of what the nodes are asked to do, without RPC or parallelism.
class InProcessBatches {
 public:
  InProcessBatches(const std::vector<std::string>& database_paths,
                   const std::vector<storage::v1::ExecuteBatchRequest>& batches);
  ~InProcessBatches();
  // Runs every statement; returns the sum of the first column of the first
  // row of each.
  int64_t RunSum();

 private:
  struct Prepared;
  std::vector<std::unique_ptr<Prepared>> prepared_;
};

// Loads rows (columns _virtualShard, id, v) straight into `table` of a node's
// SQLite file in one transaction; the node keeps serving (WAL lets both
// connections share the file).
struct DirectRow {
  int64_t virtual_shard;
  int64_t id;
  std::string v;
};
void LoadIntoNodeFile(const std::string& database_path, const std::string& table,
                      const std::vector<DirectRow>& rows);

// --- CPU accounting ---

// CPU time (user, system) consumed so far by the conductor, by all storage
// nodes together, by all queue workers together and by this benchmark
// process, in microseconds (from /proc/PID/stat and getrusage; 10 ms
// resolution).
struct CpuTimes {
  double conductor_user = 0, conductor_sys = 0;
  double nodes_user = 0, nodes_sys = 0;
  double workers_user = 0, workers_sys = 0;
  double client_user = 0, client_sys = 0;
  CpuTimes operator-(const CpuTimes& o) const;
  CpuTimes& operator+=(const CpuTimes& o);
};
CpuTimes SampleCpu(TestCluster& cluster);
// "cpu/op: conductor 120 µs (usr 40 + sys 80) | nodes … | client …"; workers
// are listed only when they used CPU.
std::string FormatCpuPerOp(const CpuTimes& delta, double ops);

// --- timing ---

using Clock = std::chrono::steady_clock;
inline double MicrosSince(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

struct LatencySummary {
  size_t count = 0;
  double p50_us = 0, p90_us = 0, p99_us = 0, mean_us = 0, min_us = 0, max_us = 0;
};
// Sorts `samples` (microseconds) and summarises them.
LatencySummary Summarize(std::vector<double> samples);
double Percentile(const std::vector<double>& sorted, double p);
double Median(std::vector<double> values);

// --- loading ---

// Inserts rows 0..rows-1 through the conductor: `threads` clients, `batch`
// rows per INSERT statement `insert_prefix` + "(?, …), …" (`marks` is one
// row's "(?, ?, ?)"); `add_row` appends row `id`'s parameters. Aborts on any
// error or a wrong rows_affected. Returns the wall time in microseconds.
double LoadThroughConductor(TestCluster& cluster, const std::string& insert_prefix,
                            const std::string& marks, int64_t rows, int threads, int batch,
                            const std::function<void(int64_t id, v1::ExecuteRequest*)>& add_row);

// --- server logs ---

// A server's log file, and where the lines of the part being measured start.
struct LogFile {
  std::string path;
  size_t offset = 0;
};
// Bytes of `path` so far (where the next lines will start); 0 when missing.
size_t FileSize(const std::string& path);
// The lines of `path` from byte `offset` on.
std::vector<std::string> LinesFrom(const std::string& path, size_t offset);
// The time of a log line "I 2026-11-23T23:50:14.123Z tag: message".
std::optional<absl::Time> LineTime(const std::string& line);

// --- report ---

std::string FormatMicros(double us);   // "412 µs" / "12.3 ms" / "1.20 s"
std::string FormatRate(double per_s);  // "12.3 k/s"
// Prints a section header (and flushes).
void Section(const std::string& title);
// Prints one line and flushes.
void Line(const std::string& text);
// A verdict line: "  → <what>: <value>  target <target>  PASS|MISS"; appends
// to the global verdict list printed by PrintVerdicts().
void Verdict(const std::string& what, const std::string& value, const std::string& target,
             bool pass);
void PrintVerdicts();

// Machine description (nproc, memory, CPU model, date).
std::string MachineDescription();

}  // namespace conductor::bench

#endif  // CONDUCTOR_BENCH_BENCH_UTIL_H_
