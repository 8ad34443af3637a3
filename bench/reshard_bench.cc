// Online resharding (issue 5) on a cluster of 3 storage nodes, a conductor
// (default flags) and 2 queue workers (default flags), each figure next to a
// baseline measured in the same run:
//
//  Tables t1 and t2 (id INTEGER PRIMARY KEY, v INTEGER, pad TEXT), 1 shard,
//  --rows rows each (default 1M), loaded through the conductor (INSERTs of
//  1000 rows, 4 client threads; not part of the result, its rate is printed).
//
//  Run A (idle): ReshardTable(t1, 8); GetReshardStatus every 20 ms until
//  complete (failed: exit 1). Total time = call -> complete seen; copy time =
//  call -> first status with rows_copied >= rows_total; copy rows/s =
//  rows_total / copy time; write_pause_ms from the status; COUNT(*) and
//  sum(id) through the conductor equal before and after.
//
//  Run B (under load): ReshardTable(t2, 8) while 2 writer threads do steady
//  single-row INSERTs / UPDATEs / DELETEs on t2 (each on its own ids) and keep
//  a ledger of acknowledged writes; afterwards the table is compared with the
//  ledger (lost writes = acknowledged writes not found as acknowledged), and
//  the writers' latencies (p50/p99/max, and the max of the writes in flight
//  during the switch's pause, located by the conductor's "switched … paused"
//  log line) are printed with the same figures as run A.
//
//  Baseline: raw SQLite export/import of the same rows in this process: a
//  file with the same schema and rows (built untimed), SELECT * from it into
//  another file (one transaction, synchronous=FULL) -> rows/s; the ratio copy
//  rows/s / raw rows/s.
//
//  Where the time goes: the conductor's and workers' log lines about the
//  reshard ("copying", job started/done, "switched … paused N ms",
//  "complete"), in ms after the call.
//
//   bazel run -c opt //bench:reshard_bench [-- --rows=N --writers=2]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"
#include "client/views.h"
#include "common/sqlite.h"

namespace conductor::bench {
namespace {

namespace v1 = ::conductor::v1;

constexpr int kNodes = 3;
constexpr int kWorkers = 2;
constexpr int kTargetShards = 8;
constexpr int kInsertBatch = 1000;
constexpr int kLoadThreads = 4;
constexpr auto kPollInterval = std::chrono::milliseconds(20);
constexpr double kReshardTimeoutSeconds = 900;
constexpr double kTargetRowsPerSecond = 200000;
constexpr double kTargetPauseMs = 100;
constexpr int64_t kWriterIdBase = 1000000000000LL;  // writers' own ids
constexpr int64_t kWriterIdStride = 100000000000LL;

struct Options {
  int64_t rows = 1000000;
  int writers = 2;
};

void Fail(const std::string& what) { Check(absl::InternalError(what), "check"); }

double Seconds(double us) { return us / 1e6; }

std::string PadFor(int64_t id) {
  std::string pad = absl::StrFormat("pad-%010d-", id);
  pad.resize(40, 'x');
  return pad;
}

v1::Value Int(int64_t x) {
  v1::Value v;
  v.set_integer(x);
  return v;
}

// ---------------------------------------------------------------- loading

void LoadThroughConductor(TestCluster& cluster, const std::string& table, int64_t rows) {
  const double us = bench::LoadThroughConductor(
      cluster, "INSERT INTO " + table + " (id, v, pad) VALUES ", "(?, ?, ?)", rows, kLoadThreads,
      kInsertBatch, [](int64_t id, v1::ExecuteRequest* request) {
        request->add_params()->set_integer(id);
        request->add_params()->set_integer(id);
        request->add_params()->set_text(PadFor(id));
      });
  Line(absl::StrFormat(
      "  loaded %d rows into %s through the conductor in %s: %s (%d threads, %d rows/statement; "
      "not part of the result)",
      rows, table, FormatMicros(us), FormatRate(rows / Seconds(us)), kLoadThreads, kInsertBatch));
}

struct Totals {
  int64_t count = 0;
  int64_t sum_id = 0;
};

Totals TotalsOf(TestCluster& cluster, const std::string& table) {
  auto r = MustExecute(cluster.ops(), "SELECT COUNT(*), SUM(id) FROM " + table);
  if (r.result_sets_size() != 1 || r.result_sets(0).rows_size() != 1) {
    Fail("COUNT/SUM: " + r.ShortDebugString());
  }
  Totals t;
  t.count = r.result_sets(0).rows(0).values(0).integer();
  t.sum_id = r.result_sets(0).rows(0).values(1).integer();
  return t;
}

std::string ShardLayout(TestCluster& cluster, const std::string& table) {
  auto d = MustDescribe(cluster.ops(), table);
  std::vector<std::string> parts;
  for (const auto& s : d.shards()) {
    parts.push_back(absl::StrCat(s.shard_id(), "->", s.node_id(), "(", s.status(), ")"));
  }
  return absl::StrCat(absl::StrJoin(parts, " "), "; block_size ", d.table().block_size());
}

// ---------------------------------------------------------------- raw SQLite

struct RawFigures {
  double us = 0;
  int64_t rows = 0;
};

RawFigures RawExportImport(const std::string& root, int64_t rows) {
  const std::string src_path = root + "/raw_src.db";
  const std::string dst_path = root + "/raw_dst.db";
  {
    auto db = Database::Open(src_path);
    Check(db.status(), "open " + src_path);
    Check((*db)->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, pad TEXT); BEGIN"),
          "create src");
    auto insert = (*db)->Prepare("INSERT INTO t (id, v, pad) VALUES (?1, ?2, ?3)");
    Check(insert.status(), "prepare");
    for (int64_t id = 0; id < rows; ++id) {
      Check(insert->Reset(), "reset");
      Check(insert->BindInt64(1, id), "bind");
      Check(insert->BindInt64(2, id), "bind");
      Check(insert->BindText(3, PadFor(id)), "bind");
      Check(insert->Run(), "insert");
    }
    Check((*db)->Exec("COMMIT; PRAGMA wal_checkpoint(TRUNCATE)"), "commit");
  }
  RawFigures f;
  auto start = Clock::now();
  DatabaseOptions ro;
  ro.read_only = true;
  auto src = Database::Open(src_path, ro);
  Check(src.status(), "open src");
  auto dst = Database::Open(dst_path);  // WAL, synchronous=FULL
  Check(dst.status(), "open dst");
  Check((*dst)->Exec("PRAGMA synchronous=FULL; "
                     "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, pad TEXT); BEGIN"),
        "create dst");
  {
    auto select = (*src)->Prepare("SELECT * FROM t");
    Check(select.status(), "prepare SELECT");
    auto insert = (*dst)->Prepare("INSERT INTO t (id, v, pad) VALUES (?1, ?2, ?3)");
    Check(insert.status(), "prepare INSERT");
    while (true) {
      auto row = select->Step();
      Check(row.status(), "step");
      if (!*row) break;
      Check(insert->Reset(), "reset");
      for (int c = 0; c < 3; ++c) Check(insert->Bind(c + 1, select->ColumnValue(c)), "bind");
      Check(insert->Run(), "insert");
      ++f.rows;
    }
  }
  Check((*dst)->Exec("COMMIT"), "commit");
  f.us = MicrosSince(start);
  if (f.rows != rows) Fail(absl::StrCat("raw copy: ", f.rows, " rows"));
  return f;
}

// ---------------------------------------------------------------- logs

// FileSize, LinesFrom, LineTime, LogFile: bench_util.

std::vector<LogFile> LogsNow(TestCluster& cluster) {
  std::vector<LogFile> logs = {{cluster.root() + "/conductor.log", 0}};
  for (int i = 0; i < kWorkers; ++i) {
    logs.push_back({cluster.root() + "/" + cluster.worker_id(i) + ".log", 0});
  }
  for (LogFile& log : logs) log.offset = FileSize(log.path);
  return logs;
}

// Prints the servers' lines about the reshard (ms after `call`) and returns
// the time of the conductor's "switched" line, if any.
std::optional<absl::Time> Timeline(const std::vector<LogFile>& logs, absl::Time call,
                                   absl::Time* copy_done) {
  // Job ids of ReshardTableJob ("job N (ReshardTableJob) ...").
  std::vector<std::string> jobs;
  for (const LogFile& log : logs) {
    for (const std::string& line : LinesFrom(log.path, log.offset)) {
      size_t at = line.find(" (ReshardTableJob)");
      if (at == std::string::npos) continue;
      size_t job = line.rfind("job ", at);
      if (job == std::string::npos) continue;
      std::string prefix = line.substr(job, at - job) + " ";  // "job N "
      if (std::find(jobs.begin(), jobs.end(), prefix) == jobs.end()) jobs.push_back(prefix);
    }
  }
  struct Event {
    double ms;
    std::string who;
    std::string line;
  };
  std::vector<Event> events;
  std::optional<absl::Time> switched;
  for (size_t i = 0; i < logs.size(); ++i) {
    const std::string who = i == 0 ? "conductor" : absl::StrCat("worker-", i);
    for (const std::string& line : LinesFrom(logs[i].path, logs[i].offset)) {
      bool relevant = absl::StrContains(line, "reshard");
      for (const auto& j : jobs) relevant = relevant || absl::StrContains(line, j);
      if (!relevant) continue;
      auto t = LineTime(line);
      if (!t.has_value()) continue;
      if (i == 0 && absl::StrContains(line, ": switched to ")) switched = *t;
      if (i == 0 && absl::StrContains(line, "(ReshardTableJob) done at attempt")) {
        *copy_done = std::max(*copy_done, *t);
      }
      events.push_back({absl::ToDoubleMilliseconds(*t - call), who, line});
    }
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const Event& a, const Event& b) { return a.ms < b.ms; });
  Line("      timeline (ms after the ReshardTable call; server log lines):");
  for (const Event& e : events) {
    std::string text = e.line.size() > 27 ? e.line.substr(27) : e.line;
    if (text.size() > 140) text = text.substr(0, 140) + "…";
    Line(absl::StrFormat("      %+8.0f ms  %-9s %s", e.ms, e.who, text));
  }
  return switched;
}

// ---------------------------------------------------------------- reshard

struct ReshardResult {
  double total_s = 0;
  double copy_s = 0;  // call -> copy done (see Reshard)
  int64_t rows_total = 0;
  int64_t rows_copied = 0;  // rows_copied when the copy was seen done
  std::string copy_end;     // what marked the end of the copy
  int64_t write_pause_ms = 0;
  absl::Time call;
  absl::Time switched;  // the conductor's "switched" line (or InfinitePast)
  int polls = 0;
  CpuTimes cpu;
};

ReshardResult Reshard(TestCluster& cluster, const std::string& table, int shards) {
  ReshardResult r;
  std::vector<LogFile> logs = LogsNow(cluster);
  CpuTimes before = SampleCpu(cluster);
  v1::ReshardTableRequest request;
  request.set_table(table);
  request.set_new_shard_count(shards);
  v1::ReshardTableResponse response;
  r.call = absl::Now();
  auto start = Clock::now();
  {
    auto context = NewContext(120);
    Check(cluster.ops().ReshardTable(context.get(), request, &response), "ReshardTable");
  }
  const double call_ms = MicrosSince(start) / 1000;
  if (response.change_log_id().empty()) Fail("ReshardTable returned no operation");
  r.copy_s = std::numeric_limits<double>::quiet_NaN();
  v1::ReshardPhase last_phase = v1::RESHARD_PHASE_UNSPECIFIED;
  v1::ReshardStatus status;
  while (true) {
    v1::GetReshardStatusRequest get;
    get.set_change_log_id(response.change_log_id());
    auto context = NewContext(60);
    Check(cluster.ops().GetReshardStatus(context.get(), get, &status), "GetReshardStatus");
    ++r.polls;
    const double s = Seconds(MicrosSince(start));
    if (status.phase() != last_phase) {
      Line(absl::StrFormat("      %8.0f ms  status: %s (%d / %d rows copied)", s * 1000,
                           PhaseName(status.phase()), status.rows_copied(), status.rows_total()));
      last_phase = status.phase();
    }
    // The copy is done when rows_copied reaches rows_total or the phase
    // leaves copying (rows_total also counts rows written after the scan
    // started, which catch-up applies without counting them).
    if (std::isnan(r.copy_s) && status.rows_total() > 0 &&
        (status.rows_copied() >= status.rows_total() ||
         status.phase() == v1::RESHARD_PHASE_SWITCHING ||
         status.phase() == v1::RESHARD_PHASE_COMPLETE)) {
      r.copy_s = s;
      r.rows_copied = status.rows_copied();
      r.copy_end = "status poll";
      Line(absl::StrFormat("      %8.0f ms  status: %s, %d / %d rows copied: copy seen done",
                           s * 1000, PhaseName(status.phase()), status.rows_copied(),
                           status.rows_total()));
    }
    if (status.phase() == v1::RESHARD_PHASE_COMPLETE) {
      r.total_s = s;
      break;
    }
    if (status.phase() == v1::RESHARD_PHASE_FAILED) {
      fprintf(stderr, "FATAL: reshard of %s failed: %s\n", table.c_str(), status.error().c_str());
      Fail("reshard failed");
    }
    if (s > kReshardTimeoutSeconds) Fail("reshard did not complete in time");
    std::this_thread::sleep_for(kPollInterval);
  }
  r.cpu = SampleCpu(cluster) - before;
  r.rows_total = status.rows_total();
  r.write_pause_ms = status.write_pause_ms();
  Line(absl::StrFormat("      ReshardTable call returned in %.1f ms; %d status polls", call_ms,
                       r.polls));
  absl::Time copy_done = absl::InfinitePast();
  auto switched = Timeline(logs, r.call, &copy_done);
  if (copy_done != absl::InfinitePast()) {
    // The conductor's "job N (ReshardTableJob) done" line: the copy's end
    // without the poll interval; rows_copied in the polls lags the job (it
    // rides on heartbeats), so the rows are the final rows_copied.
    r.copy_s = absl::ToDoubleSeconds(copy_done - r.call);
    r.rows_copied = status.rows_copied();
    r.copy_end = "conductor's log: copy job done";
  }
  r.switched = switched.value_or(absl::InfinitePast());
  Line("      " + FormatCpuPerOp(r.cpu, 1) + "  (whole reshard)");
  return r;
}

void PrintReshard(const std::string& label, const ReshardResult& r, double raw_rate) {
  const double copy_rate = r.rows_copied / r.copy_s;
  Line(
      absl::StrFormat("  %s: total %.2f s (call -> complete), copy %.2f s (call -> %s; %d rows "
                      "copied, rows_total %d) = %s rows, write pause %d ms",
                      label, r.total_s, r.copy_s, r.copy_end, r.rows_copied, r.rows_total,
                      FormatRate(copy_rate), r.write_pause_ms));
  Line(absl::StrFormat("    copy rows/s / raw SQLite export-import rows/s = %s / %s = %.2fx",
                       FormatRate(copy_rate), FormatRate(raw_rate), copy_rate / raw_rate));
}

// ---------------------------------------------------------------- writers

struct WriteSample {
  absl::Time start;
  absl::Time end;
  double us;
};

struct Writer {
  // Acknowledged state: id -> v (-1: deleted).
  std::unordered_map<int64_t, int64_t> ledger;
  std::vector<int64_t> live;  // ids believed present (own inserts)
  std::vector<WriteSample> samples;
  int64_t inserts = 0, updates = 0, deletes = 0, errors = 0;
  std::vector<int64_t> uncertain;  // ids whose write failed (state unknown)
  std::vector<std::string> error_messages;
};

void RunWriter(TestCluster& cluster, const std::string& table, int index, int64_t loaded_rows,
               int writers, const std::atomic<bool>& stop, Writer* w) {
  auto stub = v1::TableOps::NewStub(NewChannel(cluster.conductor_address()));
  std::mt19937_64 rng(1234 + index);
  int64_t next_id = kWriterIdBase + index * kWriterIdStride;
  int64_t version = 1;
  while (!stop.load()) {
    const int kind = static_cast<int>(rng() % 10);  // 0-3 insert, 4-7 update, 8-9 delete
    v1::ExecuteRequest request;
    int64_t id = 0;
    int64_t v = version++;
    int op;
    if (kind < 4 || w->live.empty()) {
      op = 0;
      id = next_id++;
      request.set_sql("INSERT INTO " + table + " (id, v, pad) VALUES (?, ?, ?)");
      *request.add_params() = Int(id);
      *request.add_params() = Int(v);
      request.add_params()->set_text(PadFor(id));
    } else if (kind < 8) {
      op = 1;
      // Half the updates go to loaded rows of this writer's residue class.
      if (rng() % 2 == 0 && loaded_rows > writers) {
        id = static_cast<int64_t>(rng() % (loaded_rows / writers)) * writers + index;
      } else {
        id = w->live[rng() % w->live.size()];
      }
      request.set_sql("UPDATE " + table + " SET v = ? WHERE id = ?");
      *request.add_params() = Int(v);
      *request.add_params() = Int(id);
    } else {
      op = 2;
      size_t at = rng() % w->live.size();
      id = w->live[at];
      w->live[at] = w->live.back();
      w->live.pop_back();
      request.set_sql("DELETE FROM " + table + " WHERE id = ?");
      *request.add_params() = Int(id);
    }
    v1::ExecuteResponse response;
    auto context = NewContext(60);
    const absl::Time t0 = absl::Now();
    auto c0 = Clock::now();
    grpc::Status status = stub->Execute(context.get(), request, &response);
    const double us = MicrosSince(c0);
    w->samples.push_back({t0, absl::Now(), us});
    if (!status.ok() || response.rows_affected() != 1) {
      ++w->errors;
      w->uncertain.push_back(id);
      w->ledger.erase(id);
      if (w->error_messages.size() < 5) {
        w->error_messages.push_back(
            status.ok() ? absl::StrCat("rows_affected ", response.rows_affected(), " for id ", id)
                        : status.error_message());
      }
      continue;
    }
    if (op == 0) {
      ++w->inserts;
      w->ledger[id] = v;
      w->live.push_back(id);
    } else if (op == 1) {
      ++w->updates;
      w->ledger[id] = v;
    } else {
      ++w->deletes;
      w->ledger[id] = -1;
    }
  }
}

struct LedgerCheck {
  int64_t checked = 0, lost = 0, present = 0, deleted = 0;
  std::vector<std::string> examples;
};

LedgerCheck CheckLedger(TestCluster& cluster, const std::string& table,
                        const std::vector<Writer>& writers) {
  std::unordered_map<int64_t, int64_t> expected;
  std::unordered_map<int64_t, bool> uncertain;
  for (const auto& w : writers) {
    for (const auto& [id, v] : w.ledger) expected[id] = v;
    for (int64_t id : w.uncertain) uncertain[id] = true;
  }
  for (const auto& [id, unused] : uncertain) expected.erase(id);
  std::vector<int64_t> ids;
  for (const auto& [id, v] : expected) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  LedgerCheck c;
  constexpr size_t kChunk = 500;
  for (size_t i = 0; i < ids.size(); i += kChunk) {
    const size_t n = std::min(kChunk, ids.size() - i);
    std::vector<std::string> marks(n, "?");
    std::vector<v1::Value> params;
    for (size_t k = 0; k < n; ++k) params.push_back(Int(ids[i + k]));
    auto r = MustExecute(
        cluster.ops(),
        "SELECT id, v FROM " + table + " WHERE id IN (" + absl::StrJoin(marks, ", ") + ")", params);
    std::unordered_map<int64_t, int64_t> found;
    for (const auto& rs : r.result_sets()) {
      for (const auto& row : rs.rows()) found[row.values(0).integer()] = row.values(1).integer();
    }
    for (size_t k = 0; k < n; ++k) {
      const int64_t id = ids[i + k];
      const int64_t want = expected[id];
      auto it = found.find(id);
      ++c.checked;
      bool ok;
      if (want < 0) {
        ok = it == found.end();
        ++c.deleted;
      } else {
        ok = it != found.end() && it->second == want;
        ++c.present;
      }
      if (!ok) {
        ++c.lost;
        if (c.examples.size() < 10) {
          c.examples.push_back(absl::StrCat(
              "id ", id, ": want ", want < 0 ? "absent" : absl::StrCat("v=", want), ", found ",
              it == found.end() ? "absent" : absl::StrCat("v=", it->second)));
        }
      }
    }
  }
  return c;
}

// ---------------------------------------------------------------- main

int Main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "--rows=", 7) == 0) {
      options.rows = atoll(argv[i] + 7);
    } else if (strncmp(argv[i], "--writers=", 10) == 0) {
      options.writers = atoi(argv[i] + 10);
    } else {
      fprintf(stderr, "unknown flag %s (flags: --rows=N --writers=N)\n", argv[i]);
      return 2;
    }
  }
  if (options.rows < 1000 || options.writers < 1) {
    fprintf(stderr, "need --rows >= 1000, --writers >= 1\n");
    return 2;
  }
  Line("reshard_bench — " + MachineDescription());
  auto total_start = Clock::now();
  auto cluster = StartCluster(kNodes, kWorkers);
  Line(absl::StrFormat(
      "  cluster: conductor (default flags) + %d storage nodes (synchronous=full) + %d queue "
      "workers (default flags), data in %s",
      kNodes, kWorkers, cluster->root()));
  const std::string rows_label = options.rows == 1000000 ? "1M" : absl::StrCat(options.rows);

  Section(absl::StrFormat("setup: t1 and t2, 1 shard each, %d rows each", options.rows));
  for (const char* table : {"t1", "t2"}) {
    MustExecute(cluster->ops(), absl::StrCat("CREATE TABLE ", table,
                                             " (id INTEGER PRIMARY KEY, v INTEGER, pad TEXT) "
                                             "/* SHARDS=1 */"));
    LoadThroughConductor(*cluster, table, options.rows);
    Line(absl::StrFormat("    %s shards: %s", table, ShardLayout(*cluster, table)));
  }

  Section("baseline: raw SQLite export/import of the same rows, in process");
  RawFigures raw = RawExportImport(cluster->root(), options.rows);
  const double raw_rate = raw.rows / Seconds(raw.us);
  Line(absl::StrFormat(
      "    SELECT * from one file -> INSERT into another (1 transaction, synchronous=FULL): "
      "%d rows in %s = %s rows",
      raw.rows, FormatMicros(raw.us), FormatRate(raw_rate)));

  // ---- run A: idle
  Section(absl::StrFormat("run A (idle): reshard t1 1 -> %d, %s rows", kTargetShards, rows_label));
  Totals a_before = TotalsOf(*cluster, "t1");
  ReshardResult a = Reshard(*cluster, "t1", kTargetShards);
  Totals a_after = TotalsOf(*cluster, "t1");
  Line(absl::StrFormat("    t1 shards after: %s", ShardLayout(*cluster, "t1")));
  const bool a_rows_ok = a_before.count == a_after.count && a_before.sum_id == a_after.sum_id;
  Line(absl::StrFormat("    rows verified: COUNT(*) %d -> %d, SUM(id) %d -> %d: %s", a_before.count,
                       a_after.count, a_before.sum_id, a_after.sum_id,
                       a_rows_ok ? "equal" : "DIFFERENT"));

  // ---- run B: under load
  Section(
      absl::StrFormat("run B (under load): reshard t2 1 -> %d, %s rows, %d writer threads "
                      "(single-row INSERT/UPDATE/DELETE, 4:4:2)",
                      kTargetShards, rows_label, options.writers));
  std::vector<Writer> writers(options.writers);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < options.writers; ++i) {
    threads.emplace_back(
        [&, i] { RunWriter(*cluster, "t2", i, options.rows, options.writers, stop, &writers[i]); });
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));  // steady state first
  const absl::Time load_start = absl::Now();
  ReshardResult b = Reshard(*cluster, "t2", kTargetShards);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // and after
  stop = true;
  for (auto& t : threads) t.join();
  const absl::Time load_end = absl::Now();
  Line(absl::StrFormat("    t2 shards after: %s", ShardLayout(*cluster, "t2")));

  std::vector<double> all, before_switch, during_copy;
  double max_in_pause_us = 0;
  WriteSample slowest{absl::InfinitePast(), absl::InfinitePast(), 0};
  int64_t in_pause = 0;
  int64_t inserts = 0, updates = 0, deletes = 0, errors = 0;
  const absl::Time b_complete = b.call + absl::Seconds(b.total_s);
  const bool have_switch = b.switched != absl::InfinitePast();
  // The pause window (log times have ms resolution: widen by 2 ms).
  const absl::Time pause_from =
      b.switched - absl::Milliseconds(b.write_pause_ms) - absl::Milliseconds(2);
  const absl::Time pause_to = b.switched + absl::Milliseconds(2);
  for (const auto& w : writers) {
    inserts += w.inserts;
    updates += w.updates;
    deletes += w.deletes;
    errors += w.errors;
    for (const auto& s : w.samples) {
      all.push_back(s.us);
      if (s.us > slowest.us) slowest = s;
      if (s.start >= b.call && s.end <= b_complete) during_copy.push_back(s.us);
      if (have_switch && s.start <= pause_to && s.end >= pause_from) {
        ++in_pause;
        max_in_pause_us = std::max(max_in_pause_us, s.us);
      }
    }
    for (const auto& m : w.error_messages) Line("    writer error: " + m);
  }
  const double load_s = absl::ToDoubleSeconds(load_end - load_start) + 2;
  LatencySummary lat = Summarize(all);
  LatencySummary lat_during = Summarize(during_copy);
  Line(absl::StrFormat(
      "    writers: %d acknowledged writes (%d INSERT, %d UPDATE, %d DELETE), %d errors, "
      "~%.0f writes/s",
      inserts + updates + deletes, inserts, updates, deletes, errors,
      (inserts + updates + deletes) / load_s));
  Line(absl::StrFormat("    write latency, whole run:           p50 %s  p99 %s  max %s  (%d)",
                       FormatMicros(lat.p50_us), FormatMicros(lat.p99_us), FormatMicros(lat.max_us),
                       lat.count));
  Line(absl::StrFormat("    write latency, call -> complete:    p50 %s  p99 %s  max %s  (%d)",
                       FormatMicros(lat_during.p50_us), FormatMicros(lat_during.p99_us),
                       FormatMicros(lat_during.max_us), lat_during.count));
  Line(absl::StrFormat("    slowest write: %s, started %+.0f ms after the ReshardTable call",
                       FormatMicros(slowest.us),
                       absl::ToDoubleMilliseconds(slowest.start - b.call)));
  if (have_switch) {
    Line(absl::StrFormat(
        "    write latency, in flight during the switch's pause (%d ms before the log line "
        "\"switched\"): max %s over %d writes",
        b.write_pause_ms, FormatMicros(max_in_pause_us), in_pause));
  } else {
    Line("    (no \"switched\" line found in the conductor's log)");
  }

  LedgerCheck ledger = CheckLedger(*cluster, "t2", writers);
  Totals b_after = TotalsOf(*cluster, "t2");
  int64_t expect_count = options.rows + inserts - deletes;
  Line(absl::StrFormat(
      "    ledger: %d ids checked (%d expected present with their last acknowledged v, %d "
      "expected deleted): %d lost",
      ledger.checked, ledger.present, ledger.deleted, ledger.lost));
  for (const auto& e : ledger.examples) Line("      lost: " + e);
  Line(absl::StrFormat("    COUNT(*) %d, expected %d (rows + acknowledged inserts - deletes%s)",
                       b_after.count, expect_count,
                       errors > 0 ? "; failed writes make this approximate" : ""));
  const bool b_count_ok = b_after.count == expect_count;

  // ---- summary
  Section(absl::StrFormat("summary: %s rows, 1 -> %d shards, %d nodes, %d workers", rows_label,
                          kTargetShards, kNodes, kWorkers));
  Line(absl::StrFormat("  raw SQLite export/import (in process, same rows):  %s rows",
                       FormatRate(raw_rate)));
  PrintReshard("run A (idle)      ", a, raw_rate);
  PrintReshard("run B (under load)", b, raw_rate);
  Line(
      absl::StrFormat("    run B writers: p50 %s  p99 %s  max %s; max in flight during the "
                      "switch %s",
                      FormatMicros(lat.p50_us), FormatMicros(lat.p99_us), FormatMicros(lat.max_us),
                      have_switch ? FormatMicros(max_in_pause_us) : "?"));

  const double a_rate = a.rows_copied / a.copy_s;
  const double b_rate = b.rows_copied / b.copy_s;
  Verdict(absl::StrFormat("5 reshard %s rows 1->8, idle: copy rate", rows_label),
          absl::StrFormat("%s rows (%.2fx raw SQLite)", FormatRate(a_rate), a_rate / raw_rate),
          ">= 200 k/s", a_rate >= kTargetRowsPerSecond);
  Verdict(absl::StrFormat("5 reshard %s rows 1->8, under load: copy rate", rows_label),
          absl::StrFormat("%s rows (%.2fx raw SQLite)", FormatRate(b_rate), b_rate / raw_rate),
          ">= 200 k/s", b_rate >= kTargetRowsPerSecond);
  Verdict("5 reshard, idle: write pause", absl::StrFormat("%d ms", a.write_pause_ms), "<= 100 ms",
          a.write_pause_ms <= kTargetPauseMs);
  Verdict("5 reshard, under load: write pause", absl::StrFormat("%d ms", b.write_pause_ms),
          "<= 100 ms", b.write_pause_ms <= kTargetPauseMs);
  Verdict(
      "5 reshard: lost writes (idle: COUNT/SUM; load: ledger + COUNT)",
      absl::StrFormat("%d lost of %d checked; idle rows %s; COUNT %s", ledger.lost, ledger.checked,
                      a_rows_ok ? "equal" : "DIFFERENT", b_count_ok ? "as expected" : "DIFFERENT"),
      "0", ledger.lost == 0 && a_rows_ok && b_count_ok);
  PrintVerdicts();
  Line(absl::StrFormat("total time %s", FormatMicros(MicrosSince(total_start))));
  return 0;
}

}  // namespace
}  // namespace conductor::bench

int main(int argc, char** argv) { return conductor::bench::Main(argc, argv); }
