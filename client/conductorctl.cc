// conductorctl: the command-line client of a Conductor cluster.
//
//   conductorctl [--conductor=HOST:PORT] [--json] [--timeout_s=N] COMMAND [ARGS...]
//
// Results go to stdout (aligned text tables, or JSON with --json); errors go
// to stderr as "error: CODE REASON: message". Exit status: 0 success, 1 the
// call failed (or a reshard ended failed), 2 usage error.
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/backup.h"
#include "client/params.h"
#include "client/table_format.h"
#include "client/table_ops_client.h"
#include "client/views.h"
#include "common/errors.h"
#include "common/tls.h"
#include "google/protobuf/util/json_util.h"

ABSL_FLAG(std::string, conductor, "127.0.0.1:50051", "HOST:PORT of the conductor");
ABSL_FLAG(bool, json, false, "print JSON instead of text tables");
ABSL_FLAG(int, timeout_s, 30, "deadline of each call in seconds (reshard --wait has none)");
ABSL_FLAG(bool, wait, false, "reshard: follow the operation until it completes or fails");
ABSL_FLAG(std::string, out, "", "backup: the directory to write the backup to (new or empty)");
ABSL_FLAG(std::string, from, "", "restore: the backup directory to restore from");
ABSL_FLAG(std::string, data_dir, "", "restore: the data directory to restore into (new or empty)");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA file: connect with TLS and verify the conductor against it (docs/security.md)");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate to present (needs --tls_key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "name to verify the conductor's certificate against instead of the host of --conductor");
ABSL_FLAG(std::string, token_file, "",
          "file holding the bearer token sent on every call (alternative: env "
          "CONDUCTOR_AUTH_TOKEN)");
ABSL_FLAG(std::string, internal_token_file, "",
          "file holding the cluster's internal token, for admin commands that call internal "
          "services (backup) when the cluster does not use mutual TLS (alternative: env "
          "CONDUCTOR_INTERNAL_TOKEN)");

namespace conductor {
namespace {

constexpr char kUsage[] =
    R"(usage: conductorctl [--conductor=HOST:PORT] [--json] [--timeout_s=N]
                    [--tls_ca=FILE [--tls_cert=FILE --tls_key=FILE]] [--token_file=FILE]
                    COMMAND [ARGS...]

commands:
  sql "STATEMENT" [PARAM...]  run one SQL statement; each PARAM binds the next ?:
                              42 integer, 1.5 or 2e3 real, NULL null, x'00ff' blob,
                              anything else text (put -- before negative numbers)
  tables                      list the tables
  describe TABLE              a table's info, shards, indexes and columns
  stats TABLE                 row counts, in total and per shard
  indexes [TABLE]             the virtual indexes, of TABLE or of every table
  reshard TABLE N [--wait]    change TABLE's shard count to N; --wait follows it
  backup --out=DIR            online backup of the topology and every storage node
                              into DIR (new or empty), with DIR/manifest.json
  restore --from=DIR --data_dir=DIR conductor
                              restore the conductor's files of a backup (offline)
  restore --from=DIR --data_dir=DIR node NODE_ID
                              restore one storage node's file (offline); start the
                              node with --node_id=NODE_ID
  help                        this text

exit status: 0 success, 1 the call failed, 2 usage error
flags: --helpfull lists them all)";

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

using Args = std::vector<std::string>;

int UsageError(const std::string& message) {
  fprintf(stderr, "conductorctl: %s\n\n%s\n", message.c_str(), kUsage);
  return kExitUsage;
}

// "NOT_FOUND" for absl::StatusCode::kNotFound.
std::string CodeName(absl::StatusCode code) {
  return absl::AsciiStrToUpper(absl::StrReplaceAll(absl::StatusCodeToString(code), {{" ", "_"}}));
}

// Prints "error: CODE REASON: message" (the reason left out when there is
// none or it only repeats the code; an empty message explained) and returns
// the error exit status.
int Fail(const absl::Status& status) {
  std::string head = CodeName(status.code());
  std::string reason = ErrorReason(status);
  if (!reason.empty() && reason != head) absl::StrAppend(&head, " ", reason);
  std::string message(status.message());
  if (message.empty()) {
    message = status.code() == absl::StatusCode::kUnimplemented
                  ? "this conductor does not implement the call"
                  : "(no message from the conductor)";
  }
  fprintf(stderr, "error: %s: %s\n", head.c_str(), message.c_str());
  return kExitError;
}

void Print(const std::string& text) { fwrite(text.data(), 1, text.size(), stdout); }

// Prints `message` as one line of JSON (proto3 mapping, defaults included).
int PrintJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return Fail(absl::InternalError(status.ToString()));
  Print(json + "\n");
  return 0;
}

void PrintSets(const std::vector<v1::ResultSet>& sets) {
  for (size_t i = 0; i < sets.size(); ++i) Print((i > 0 ? "\n" : "") + FormatResultSet(sets[i]));
}

struct Command {
  const char* name;
  size_t min_args;
  size_t max_args;
  std::function<int(TableOpsClient&, bool json, const Args&)> run;
};

int RunSql(TableOpsClient& client, bool json, const Args& args) {
  std::vector<v1::Value> params;
  for (size_t i = 1; i < args.size(); ++i) {
    auto value = ParseParam(args[i]);
    if (!value.ok()) return UsageError(std::string(value.status().message()));
    params.push_back(*value);
  }
  auto response = client.Execute(args[0], params);
  if (!response.ok()) return Fail(response.status());
  Print(json ? ExecuteResponseToJson(*response) + "\n" : FormatExecuteResponse(*response));
  return 0;
}

int RunTables(TableOpsClient& client, bool json, const Args&) {
  auto tables = client.ListTables();
  if (!tables.ok()) return Fail(tables.status());
  if (json) {
    v1::ListTablesResponse response;
    for (const auto& t : *tables) *response.add_tables() = t;
    return PrintJson(response);
  }
  Print(FormatResultSet(TablesView(*tables)));
  return 0;
}

int RunDescribe(TableOpsClient& client, bool json, const Args& args) {
  auto described = client.Describe(args[0]);
  if (!described.ok()) return Fail(described.status());
  if (json) return PrintJson(*described);
  PrintSets(DescribeView(*described));
  return 0;
}

int RunStats(TableOpsClient& client, bool json, const Args& args) {
  auto stats = client.GetStats(args[0]);
  if (!stats.ok()) return Fail(stats.status());
  if (json) return PrintJson(*stats);
  PrintSets(StatsView(*stats));
  return 0;
}

int RunIndexes(TableOpsClient& client, bool json, const Args& args) {
  auto indexes = client.ListIndexes(args.empty() ? "" : args[0]);
  if (!indexes.ok()) return Fail(indexes.status());
  if (json) {
    v1::ListIndexesResponse response;
    for (const auto& i : *indexes) *response.add_indexes() = i;
    return PrintJson(response);
  }
  Print(FormatResultSet(IndexesView(*indexes)));
  return 0;
}

// Follows the reshard `id` to its end, drawing progress on stderr (a live
// line on a terminal, a line per second or phase change otherwise; JSON
// lines on stdout with --json). Exit status 1 when it ends failed.
int WaitForReshard(TableOpsClient& client, bool json, const std::string& id) {
  const bool tty = !json && isatty(STDERR_FILENO);
  ReshardProgress progress;
  absl::Time last_print = absl::InfinitePast();
  v1::ReshardPhase last_phase = v1::RESHARD_PHASE_UNSPECIFIED;
  absl::Status stream = client.WatchReshard(id, [&](const v1::ReshardStatus& status) {
    absl::Time now = absl::Now();
    progress.Update(status, now);
    if (json) {
      PrintJson(status);
      fflush(stdout);
    } else if (tty) {
      fprintf(stderr, "\r%s\x1b[K", progress.Line().c_str());
    } else if (status.phase() != last_phase || now - last_print >= absl::Seconds(1)) {
      fprintf(stderr, "%s\n", progress.Line().c_str());
      last_print = now;
    }
    last_phase = status.phase();
  });
  if (tty && progress.seen()) fprintf(stderr, "\n");
  if (!stream.ok()) return Fail(stream);
  const v1::ReshardStatus& last = progress.last();
  if (!json) {
    Print(absl::StrCat("phase: ", PhaseName(last.phase()),
                       "\nwrite_pause_ms: ", last.write_pause_ms(), "\n"));
  }
  if (last.phase() == v1::RESHARD_PHASE_FAILED) {
    fprintf(stderr, "error: reshard %s failed: %s\n", id.c_str(), last.error().c_str());
    return kExitError;
  }
  if (last.phase() != v1::RESHARD_PHASE_COMPLETE) {
    fprintf(stderr, "error: the status stream of reshard %s ended in phase %s\n", id.c_str(),
            PhaseName(last.phase()).c_str());
    return kExitError;
  }
  return 0;
}

int RunReshard(TableOpsClient& client, bool json, const Args& args) {
  int shards = 0;
  if (!absl::SimpleAtoi(args[1], &shards)) {
    return UsageError(absl::StrCat("reshard: N must be an integer, not '", args[1], "'"));
  }
  auto response = client.Reshard(args[0], shards);
  if (!response.ok()) return Fail(response.status());
  if (json) {
    PrintJson(*response);
  } else {
    const v1::ReshardStatus& s = response->status();
    Print(absl::StrCat("change_log_id: ", response->change_log_id(),
                       "\nphase: ", PhaseName(s.phase()), " (", s.source_shard_count(), " -> ",
                       s.target_shard_count(), " shards)\n"));
  }
  fflush(stdout);
  if (!absl::GetFlag(FLAGS_wait)) return 0;
  return WaitForReshard(client, json, response->change_log_id());
}

int RunBackup(TableOpsClient& client, bool json, const Args&) {
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return UsageError("backup needs --out=DIR");
  auto manifest =
      TakeBackup(client.channel(), out, /*chunk_bytes=*/0, [json](const std::string& line) {
        if (!json) fprintf(stderr, "  %s\n", line.c_str());
      });
  if (!manifest.ok()) return Fail(manifest.status());
  if (json) return PrintJson(*manifest);
  Print(absl::StrCat("backup written to ", out, ": ", manifest->files_size(), " files, ",
                     manifest->nodes_size(), " storage nodes, topology version ",
                     manifest->topology_version(), ", finished at ", manifest->finished_at(),
                     "\n"));
  return 0;
}

int RunRestore(TableOpsClient&, bool, const Args& args) {
  const std::string from = absl::GetFlag(FLAGS_from);
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (from.empty() || data_dir.empty())
    return UsageError("restore needs --from=DIR and --data_dir=DIR");
  absl::Status status;
  std::string what;
  if (args[0] == "conductor" && args.size() == 1) {
    status = RestoreConductor(from, data_dir);
    what = "the conductor's files";
  } else if (args[0] == "node" && args.size() == 2) {
    status = RestoreNode(from, args[1], data_dir);
    what = absl::StrCat("storage node ", args[1]);
  } else {
    return UsageError("restore takes 'conductor' or 'node NODE_ID'");
  }
  if (!status.ok()) return Fail(status);
  Print(absl::StrCat("restored ", what, " from ", from, " into ", data_dir, "\n"));
  return 0;
}

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {"sql", 1, SIZE_MAX, RunSql}, {"tables", 0, 0, RunTables},   {"describe", 1, 1, RunDescribe},
      {"stats", 1, 1, RunStats},    {"indexes", 0, 1, RunIndexes}, {"reshard", 2, 2, RunReshard},
      {"backup", 0, 0, RunBackup},  {"restore", 1, 2, RunRestore},
  };
  return *commands;
}

// absl's usage flags, which this absl version handles without registering.
bool IsUsageFlag(absl::string_view name) {
  for (const char* usage : {"help", "helpfull", "helpshort", "helppackage", "helpon", "helpmatch",
                            "version", "only_check_args"}) {
    if (name == usage) return true;
  }
  return false;
}

// The first argument that names an unknown flag ("" when there is none).
// Checked before absl parses, which would exit 1 instead of 2 on it.
std::string UnknownFlag(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') continue;
    absl::string_view name = arg.substr(arg[1] == '-' ? 2 : 1);
    name = name.substr(0, name.find('='));
    if (IsUsageFlag(name) || absl::FindCommandLineFlag(name) != nullptr) continue;
    if (absl::StartsWith(name, "no")) {
      const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name.substr(2));
      if (flag != nullptr && flag->IsOfType<bool>()) continue;
    }
    return std::string(arg);
  }
  return "";
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  if (std::string flag = UnknownFlag(argc, argv); !flag.empty()) {
    return UsageError(absl::StrCat("unknown flag ", flag));
  }
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  Args args(positional.begin() + 1, positional.end());
  if (args.empty()) return UsageError("no command");
  if (args[0] == "help") {
    printf("%s\n", kUsage);
    return 0;
  }
  const Command* command = nullptr;
  for (const Command& c : Commands()) {
    if (args[0] == c.name) command = &c;
  }
  if (command == nullptr) return UsageError(absl::StrCat("unknown command '", args[0], "'"));
  args.erase(args.begin());
  if (args.size() < command->min_args || args.size() > command->max_args) {
    return UsageError(absl::StrCat("wrong number of arguments for '", command->name, "'"));
  }
  if (absl::GetFlag(FLAGS_wait) && std::string(command->name) != "reshard") {
    return UsageError("--wait applies to reshard only");
  }
  int timeout_s = absl::GetFlag(FLAGS_timeout_s);
  if (timeout_s <= 0) return UsageError("--timeout_s must be positive");
  TableOpsClient::Options options;
  options.default_deadline = absl::Seconds(timeout_s);
  options.tls_ca_file = absl::GetFlag(FLAGS_tls_ca);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  auto token = LoadToken(absl::GetFlag(FLAGS_token_file), "token_file", kAuthTokenEnv);
  if (!token.ok()) return UsageError(std::string(token.status().message()));
  options.token = *token;
  auto internal_token =
      LoadToken(absl::GetFlag(FLAGS_internal_token_file), "internal_token_file", kInternalTokenEnv);
  if (!internal_token.ok()) return UsageError(std::string(internal_token.status().message()));
  options.internal_token = *internal_token;
  auto client = TableOpsClient::Connect(absl::GetFlag(FLAGS_conductor), options);
  if (!client.ok()) return UsageError(std::string(client.status().message()));
  return command->run(**client, absl::GetFlag(FLAGS_json), args);
}

}  // namespace
}  // namespace conductor

int main(int argc, char** argv) { return conductor::Main(argc, argv); }
