#include "bench/bench_util.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <numeric>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/sqlite.h"
#include "common/tls.h"

namespace conductor::bench {

namespace {

// The cluster root to remove when the benchmark aborts.
std::string& CleanupRoot() {
  static auto* root = new std::string();
  return *root;
}

[[noreturn]] void Abort() {
  fflush(stderr);
  if (!CleanupRoot().empty() && getenv("BENCH_KEEP_DATA") == nullptr) {
    std::error_code ignored;
    std::filesystem::remove_all(CleanupRoot(), ignored);
  }
  std::exit(1);  // the servers die with us (PR_SET_PDEATHSIG)
}

std::vector<std::string>& Verdicts() {
  static auto* verdicts = new std::vector<std::string>();
  return *verdicts;
}

}  // namespace

void Check(const absl::Status& status, const std::string& what) {
  if (status.ok()) return;
  fprintf(stderr, "FATAL: %s: %s\n", what.c_str(), status.ToString().c_str());
  Abort();
}

void Check(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return;
  fprintf(stderr, "FATAL: %s: gRPC code %d: %s\n", what.c_str(),
          static_cast<int>(status.error_code()), status.error_message().c_str());
  Abort();
}

// --- the cluster ---

BenchCluster StartCluster(int storage_nodes, int workers) {
  const char* base = getenv("BENCH_TMPDIR");
  TestCluster::Options options;
  options.storage_nodes = storage_nodes;
  options.workers = workers;
  options.extra_storage_node_flags = {"--synchronous=full"};
  // TestCluster passes --storage_timeout_ms=5000 (for fault tests); the
  // benchmarks measure the product default (the last flag wins).
  options.extra_conductor_flags = {"--storage_timeout_ms=10000"};
  options.root_dir = absl::StrCat(base != nullptr ? base : "/tmp", "/conductor-bench-", getpid());
  options.die_with_parent = true;
  CleanupRoot() = options.root_dir;
  auto cluster = TestCluster::Start(options);
  Check(cluster.status(), "start the cluster (logs in " + options.root_dir + ")");
  return BenchCluster(cluster->release());
}

void StopAndRemoveData::operator()(TestCluster* cluster) const {
  std::string root = cluster->root();
  delete cluster;
  if (getenv("BENCH_KEEP_DATA") == nullptr) {
    std::error_code ignored;
    std::filesystem::remove_all(root, ignored);
  }
}

int NodeIndex(const TestCluster& cluster, const std::string& node_id) {
  for (int i = 0; i < cluster.node_count(); ++i) {
    if (cluster.node_id(i) == node_id) return i;
  }
  return -1;
}

// --- gRPC helpers ---

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  return MakeChannel(address, args);
}

std::unique_ptr<grpc::ClientContext> NewContext(int timeout_s) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  return context;
}

v1::ExecuteResponse MustExecute(v1::TableOps::Stub& ops, const std::string& sql,
                                const std::vector<v1::Value>& params) {
  v1::ExecuteRequest request;
  request.set_sql(sql);
  for (const auto& p : params) *request.add_params() = p;
  v1::ExecuteResponse response;
  auto context = NewContext(120);
  Check(ops.Execute(context.get(), request, &response), "Execute " + sql.substr(0, 120));
  return response;
}

v1::DescribeTableResponse MustDescribe(v1::TableOps::Stub& ops, const std::string& table) {
  v1::DescribeTableRequest request;
  request.set_table(table);
  v1::DescribeTableResponse response;
  auto context = NewContext();
  Check(ops.DescribeTable(context.get(), request, &response), "DescribeTable " + table);
  return response;
}

std::vector<ExplainRow> MustExplain(v1::TableOps::Stub& ops, const std::string& sql,
                                    const std::vector<v1::Value>& params) {
  v1::ExecuteResponse response = MustExecute(ops, "EXPLAIN " + sql, params);
  // route, shard_id, node_id, sql, merge, index_name
  if (response.result_sets_size() != 1 || response.result_sets(0).columns_size() != 6) {
    Check(absl::InternalError("EXPLAIN did not return one 6-column result set: " +
                              response.DebugString()),
          "EXPLAIN " + sql);
  }
  std::vector<ExplainRow> rows;
  for (const auto& row : response.result_sets(0).rows()) {
    ExplainRow out;
    out.route = row.values(0).text();
    out.shard_id = row.values(1).has_integer() ? static_cast<int>(row.values(1).integer()) : -1;
    out.node_id = row.values(2).text();
    out.sql = row.values(3).text();
    out.merge = row.values(4).text();
    rows.push_back(std::move(out));
  }
  return rows;
}

// --- DirectStorage ---

DirectStorage::DirectStorage(const std::vector<std::string>& addresses) {
  for (const auto& address : addresses) {
    stubs_.push_back(storage::v1::Storage::NewStub(NewChannel(address)));
  }
}

absl::Status DirectStorage::FanOut(const std::vector<int>& nodes,
                                   const std::vector<storage::v1::ExecuteBatchRequest>& batches,
                                   std::vector<storage::v1::ExecuteBatchResponse>* responses) {
  const size_t n = batches.size();
  responses->clear();
  responses->resize(n);
  std::vector<grpc::ClientContext> contexts(n);
  std::vector<grpc::Status> statuses(n);
  std::mutex mu;
  std::condition_variable cv;
  size_t pending = n;
  for (size_t i = 0; i < n; ++i) {
    contexts[i].set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    stubs_[nodes[i]]->async()->ExecuteBatch(&contexts[i], &batches[i], &(*responses)[i],
                                            [&, i](grpc::Status status) {
                                              std::lock_guard<std::mutex> lock(mu);
                                              statuses[i] = std::move(status);
                                              if (--pending == 0) cv.notify_all();
                                            });
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return pending == 0; });
  for (size_t i = 0; i < n; ++i) {
    if (!statuses[i].ok()) {
      return absl::InternalError(absl::StrCat("node batch ", i, ": ", statuses[i].error_message()));
    }
  }
  return absl::OkStatus();
}

struct InProcessBatches::Prepared {
  std::unique_ptr<Database> db;
  std::vector<Statement> statements;
  std::vector<std::vector<Value>> params;
};

InProcessBatches::InProcessBatches(const std::vector<std::string>& database_paths,
                                   const std::vector<storage::v1::ExecuteBatchRequest>& batches) {
  for (size_t i = 0; i < batches.size(); ++i) {
    auto prepared = std::make_unique<Prepared>();
    DatabaseOptions options;
    options.read_only = true;
    auto db = Database::Open(database_paths[i], options);
    Check(db.status(), "open " + database_paths[i]);
    prepared->db = std::move(*db);
    for (const auto& statement : batches[i].statements()) {
      auto stmt = prepared->db->Prepare(statement.sql());
      Check(stmt.status(), "prepare " + statement.sql());
      prepared->statements.push_back(std::move(*stmt));
      prepared->params.emplace_back(statement.params().begin(), statement.params().end());
    }
    prepared_.push_back(std::move(prepared));
  }
}

InProcessBatches::~InProcessBatches() = default;

int64_t InProcessBatches::RunSum() {
  int64_t sum = 0;
  for (auto& prepared : prepared_) {
    // One snapshot per batch, as a node runs a read-only batch.
    Check(prepared->db->Exec("BEGIN"), "begin");
    for (size_t i = 0; i < prepared->statements.size(); ++i) {
      Statement& stmt = prepared->statements[i];
      Check(stmt.Reset(), "reset");
      Check(stmt.BindAll(prepared->params[i]), "bind");
      auto row = stmt.Step();
      Check(row.status(), "step");
      if (*row) sum += stmt.ColumnInt64(0);
    }
    Check(prepared->db->Exec("COMMIT"), "commit");
  }
  return sum;
}

void LoadIntoNodeFile(const std::string& database_path, const std::string& table,
                      const std::vector<DirectRow>& rows) {
  DatabaseOptions options;
  options.create = false;
  options.synchronous_full = false;
  options.busy_timeout_ms = 60000;
  auto db = Database::Open(database_path, options);
  Check(db.status(), "open " + database_path);
  Check((*db)->Exec("PRAGMA synchronous=OFF"), "synchronous=OFF");
  auto insert = (*db)->Prepare(absl::StrCat("INSERT INTO ", QuoteIdentifier(table),
                                            " (_virtualShard, id, v) VALUES (?, ?, ?)"));
  Check(insert.status(), "prepare insert into " + database_path);
  Check((*db)->Exec("BEGIN IMMEDIATE"), "begin");
  for (const DirectRow& row : rows) {
    Check(insert->Reset(), "reset");
    Check(insert->BindInt64(1, row.virtual_shard), "bind");
    Check(insert->BindInt64(2, row.id), "bind");
    Check(insert->BindText(3, row.v), "bind");
    Check(insert->Run(), "insert");
  }
  Check((*db)->Exec("COMMIT"), "commit");
  // Leave the WAL folded back into the file, as a long-running node would.
  Check((*db)->Exec("PRAGMA wal_checkpoint(TRUNCATE)"), "checkpoint");
}

// --- CPU accounting ---

namespace {

void ProcessCpu(pid_t pid, double* user_us, double* sys_us) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return;
  std::istringstream fields(text.substr(paren + 2));
  std::string field;
  // Fields after "pid (comm) ": state is field 3; utime 14, stime 15.
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  const double tick_us = 1e6 / sysconf(_SC_CLK_TCK);
  *user_us += utime * tick_us;
  *sys_us += stime * tick_us;
}

}  // namespace

CpuTimes CpuTimes::operator-(const CpuTimes& o) const {
  CpuTimes d;
  d.conductor_user = conductor_user - o.conductor_user;
  d.conductor_sys = conductor_sys - o.conductor_sys;
  d.nodes_user = nodes_user - o.nodes_user;
  d.nodes_sys = nodes_sys - o.nodes_sys;
  d.workers_user = workers_user - o.workers_user;
  d.workers_sys = workers_sys - o.workers_sys;
  d.client_user = client_user - o.client_user;
  d.client_sys = client_sys - o.client_sys;
  return d;
}

CpuTimes& CpuTimes::operator+=(const CpuTimes& o) {
  conductor_user += o.conductor_user;
  conductor_sys += o.conductor_sys;
  nodes_user += o.nodes_user;
  nodes_sys += o.nodes_sys;
  workers_user += o.workers_user;
  workers_sys += o.workers_sys;
  client_user += o.client_user;
  client_sys += o.client_sys;
  return *this;
}

CpuTimes SampleCpu(TestCluster& cluster) {
  CpuTimes t;
  ProcessCpu(cluster.conductor_process()->pid(), &t.conductor_user, &t.conductor_sys);
  for (int i = 0; i < cluster.node_count(); ++i) {
    ProcessCpu(cluster.node_process(i)->pid(), &t.nodes_user, &t.nodes_sys);
  }
  for (int i = 0; i < cluster.worker_count(); ++i) {
    testing::Process* worker = cluster.worker_process(i);
    if (worker != nullptr && worker->running()) {
      ProcessCpu(worker->pid(), &t.workers_user, &t.workers_sys);
    }
  }
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  t.client_user = usage.ru_utime.tv_sec * 1e6 + usage.ru_utime.tv_usec;
  t.client_sys = usage.ru_stime.tv_sec * 1e6 + usage.ru_stime.tv_usec;
  return t;
}

std::string FormatCpuPerOp(const CpuTimes& d, double ops) {
  if (ops <= 0) return "";
  auto one = [&](const char* name, double user, double sys) {
    return absl::StrFormat("%s %s (usr %.0f + sys %.0f)", name, FormatMicros((user + sys) / ops),
                           user / ops, sys / ops);
  };
  std::string workers;
  if (d.workers_user + d.workers_sys > 0) {
    workers = absl::StrCat(one("workers", d.workers_user, d.workers_sys), " | ");
  }
  return absl::StrCat("cpu/op: ", one("conductor", d.conductor_user, d.conductor_sys), " | ",
                      one("nodes", d.nodes_user, d.nodes_sys), " | ", workers,
                      one("client", d.client_user, d.client_sys));
}

// --- statistics ---

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  double rank = p / 100.0 * (sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(rank));
  size_t hi = std::min(sorted.size() - 1, lo + 1);
  double frac = rank - lo;
  return sorted[lo] * (1 - frac) + sorted[hi] * frac;
}

LatencySummary Summarize(std::vector<double> samples) {
  LatencySummary s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.count = samples.size();
  s.p50_us = Percentile(samples, 50);
  s.p90_us = Percentile(samples, 90);
  s.p99_us = Percentile(samples, 99);
  s.mean_us = std::accumulate(samples.begin(), samples.end(), 0.0) / samples.size();
  s.min_us = samples.front();
  s.max_us = samples.back();
  return s;
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return Percentile(values, 50);
}

// --- report ---

std::string FormatMicros(double us) {
  if (us < 1000) return absl::StrFormat("%.0f µs", us);
  if (us < 1e6) return absl::StrFormat("%.2f ms", us / 1000);
  return absl::StrFormat("%.2f s", us / 1e6);
}

std::string FormatRate(double per_s) {
  if (per_s >= 1e6) return absl::StrFormat("%.2f M/s", per_s / 1e6);
  if (per_s >= 1e3) return absl::StrFormat("%.1f k/s", per_s / 1e3);
  return absl::StrFormat("%.0f /s", per_s);
}

void Section(const std::string& title) {
  printf("\n=== %s ===\n", title.c_str());
  fflush(stdout);
}

void Line(const std::string& text) {
  printf("%s\n", text.c_str());
  fflush(stdout);
}

void Verdict(const std::string& what, const std::string& value, const std::string& target,
             bool pass) {
  std::string line =
      absl::StrFormat("%-58s %-22s target %-14s %s", what, value, target, pass ? "PASS" : "MISS");
  Verdicts().push_back(line);
  Line("  -> " + line);
}

void PrintVerdicts() {
  Section("verdicts");
  for (const auto& v : Verdicts()) Line(v);
}

std::string MachineDescription() {
  std::string cpu = "unknown";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  long pages = sysconf(_SC_PHYS_PAGES);
  long page_size = sysconf(_SC_PAGE_SIZE);
  double gib = static_cast<double>(pages) * page_size / (1024.0 * 1024 * 1024);
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  char date[64];
  time_t now = time(nullptr);
  strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
  return absl::StrFormat("%s; nproc=%d; RAM %.1f GiB; load avg %.2f %.2f %.2f; %s", cpu,
                         static_cast<int>(std::thread::hardware_concurrency()), gib, load[0],
                         load[1], load[2], date);
}

// ---------------------------------------------------------------- loading

double LoadThroughConductor(TestCluster& cluster, const std::string& insert_prefix,
                            const std::string& marks, int64_t rows, int threads, int batch,
                            const std::function<void(int64_t id, v1::ExecuteRequest*)>& add_row) {
  const std::string full_sql =
      insert_prefix + absl::StrJoin(std::vector<std::string>(batch, marks), ", ");
  const int64_t batches = (rows + batch - 1) / batch;
  std::atomic<int64_t> next_batch{0};
  auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      auto stub = v1::TableOps::NewStub(NewChannel(cluster.conductor_address()));
      for (int64_t b; (b = next_batch.fetch_add(1)) < batches;) {
        const int64_t first = b * batch;
        const int64_t last = std::min(rows, first + batch);
        v1::ExecuteRequest request;
        request.set_sql(
            last - first == batch
                ? full_sql
                : insert_prefix +
                      absl::StrJoin(std::vector<std::string>(last - first, marks), ", "));
        for (int64_t id = first; id < last; ++id) add_row(id, &request);
        v1::ExecuteResponse response;
        auto context = NewContext(120);
        Check(stub->Execute(context.get(), request, &response), "load INSERT");
        if (response.rows_affected() != last - first) {
          Check(absl::InternalError(absl::StrCat("affected ", response.rows_affected(),
                                                 " rows, not ", last - first)),
                "load INSERT");
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  return MicrosSince(start);
}

// ---------------------------------------------------------------- server logs

size_t FileSize(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  return in ? static_cast<size_t>(in.tellg()) : 0;
}

std::vector<std::string> LinesFrom(const std::string& path, size_t offset) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  if (!in) return lines;
  in.seekg(static_cast<std::streamoff>(offset));
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::optional<absl::Time> LineTime(const std::string& line) {
  if (line.size() < 27 || line[1] != ' ') return std::nullopt;
  absl::Time t;
  std::string err;
  if (!absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", line.substr(2, 24), &t, &err)) {
    return std::nullopt;
  }
  return t;
}

}  // namespace conductor::bench
