// The C++ client and conductorctl against a real cluster (three storage
// nodes and a conductor on loopback): TableOpsClient's typed calls, and the
// conductorctl binary run as a child process, its stdout, stderr and exit
// status checked.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/table_ops_client.h"
#include "common/errors.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/harness/cluster.h"

namespace conductor {
namespace {

using testing::TestCluster;

// What one conductorctl run left behind.
struct CtlRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class ClientIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = TestCluster::Start({.workers = 1});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
    auto client = TableOpsClient::Connect(cluster_->conductor_address());
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = client->release();
  }
  static void TearDownTestSuite() {
    delete client_;
    client_ = nullptr;
    delete cluster_;
    cluster_ = nullptr;
  }

  // Runs conductorctl against the cluster with `args`. A shell redirects its
  // stdout to a file (the harness keeps stderr in a log file), so output of
  // any size is captured without reading a pipe while it runs.
  static CtlRun RunCtl(const std::vector<std::string>& args) {
    std::string dir = testing::MakeTempDir("conductorctl");
    std::vector<std::string> argv = {"/bin/sh",
                                     "-c",
                                     "out=$1; shift; exec \"$@\" > \"$out\"",
                                     "sh",
                                     dir + "/stdout",
                                     testing::BinaryPath("client/conductorctl"),
                                     "--conductor=" + cluster_->conductor_address()};
    argv.insert(argv.end(), args.begin(), args.end());
    CtlRun run;
    auto process = testing::Process::Start(argv, dir + "/stderr");
    EXPECT_TRUE(process.ok()) << process.status();
    if (!process.ok()) return run;
    auto code = (*process)->Wait(absl::Seconds(60));
    EXPECT_TRUE(code.ok()) << code.status();
    run.exit_code = code.ok() ? *code : -1;
    run.out = ReadFile(dir + "/stdout");
    run.err = ReadFile(dir + "/stderr");
    return run;
  }

  static void ExpectError(const absl::Status& status, absl::StatusCode code,
                          const std::string& reason) {
    EXPECT_EQ(status.code(), code) << status;
    EXPECT_EQ(ErrorReason(status), reason) << status;
    EXPECT_FALSE(status.message().empty());
  }

  static absl::Status CreateTable(const std::string& sql, int shards) {
    v1::CreateTableRequest request;
    request.set_sql(sql);
    request.set_num_shards(shards);
    return client_->CreateTable(request).status();
  }

  static TestCluster* cluster_;
  static TableOpsClient* client_;
};

TestCluster* ClientIntegrationTest::cluster_ = nullptr;
TableOpsClient* ClientIntegrationTest::client_ = nullptr;

TEST_F(ClientIntegrationTest, TypedTableOperations) {
  v1::CreateTableRequest create;
  create.set_sql("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL)");
  create.set_num_shards(3);
  create.set_block_size(100);
  auto created = client_->CreateTable(create);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(created->created());
  EXPECT_EQ(created->table().name(), "orders");
  EXPECT_EQ(created->table().num_shards(), 3);
  EXPECT_EQ(created->table().block_size(), 100);
  EXPECT_EQ(created->table().shard_key(), "id");

  ExpectError(client_->CreateTable(create).status(), absl::StatusCode::kAlreadyExists,
              "TABLE_ALREADY_EXISTS");
  create.set_if_not_exists(true);
  auto again = client_->CreateTable(create);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created());

  auto tables = client_->ListTables();
  ASSERT_TRUE(tables.ok()) << tables.status();
  bool listed = false;
  for (const auto& t : *tables) listed = listed || t.name() == "orders";
  EXPECT_TRUE(listed);

  auto described = client_->Describe("ORDERS");
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(described->table().name(), "orders");
  EXPECT_EQ(described->shards_size(), 3);
  ASSERT_EQ(described->columns_size(), 3);
  EXPECT_EQ(described->columns(0).name(), "id");
  EXPECT_TRUE(described->columns(0).primary_key());

  auto stats = client_->GetStats("orders");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->total_rows(), 0);
  EXPECT_EQ(stats->total_shards(), 3);
  EXPECT_EQ(stats->shards_size(), 3);

  auto renamed = client_->Rename("orders", "purchases");
  ASSERT_TRUE(renamed.ok()) << renamed.status();
  EXPECT_EQ(renamed->name(), "purchases");
  ExpectError(client_->Describe("orders").status(), absl::StatusCode::kNotFound, "TABLE_NOT_FOUND");

  auto resized = client_->SetBlockSize("purchases", 250);
  ASSERT_TRUE(resized.ok()) << resized.status();
  EXPECT_EQ(resized->block_size(), 250);
  ExpectError(client_->SetBlockSize("purchases", 0).status(), absl::StatusCode::kInvalidArgument,
              "INVALID_BLOCK_SIZE");

  auto show = client_->Execute("SHOW TABLES");
  ASSERT_TRUE(show.ok()) << show.status();
  ASSERT_EQ(show->result_sets_size(), 1);
  EXPECT_EQ(show->result_sets(0).name(), "TABLES");
  bool shown = false;
  for (const auto& row : show->result_sets(0).rows()) {
    if (row.values(0).text() == "purchases") {
      shown = true;
      EXPECT_EQ(row.values(5).integer(), 250);
    }
  }
  EXPECT_TRUE(shown);

  auto indexes = client_->ListIndexes("purchases");
  ASSERT_TRUE(indexes.ok()) << indexes.status();
  EXPECT_TRUE(indexes->empty());
  auto all_indexes = client_->ListIndexes();
  ASSERT_TRUE(all_indexes.ok()) << all_indexes.status();
  EXPECT_TRUE(all_indexes->empty());

  auto dropped = client_->Drop("purchases");
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_TRUE(*dropped);
  auto absent = client_->Drop("purchases", /*if_exists=*/true);
  ASSERT_TRUE(absent.ok()) << absent.status();
  EXPECT_FALSE(*absent);
  ExpectError(client_->Drop("purchases", /*if_exists=*/false).status(), absl::StatusCode::kNotFound,
              "TABLE_NOT_FOUND");
}

TEST_F(ClientIntegrationTest, ExecuteBindsParamsAndKeepsErrorReasons) {
  auto described = client_->Execute("DESCRIBE nosuch_table", {});
  ExpectError(described.status(), absl::StatusCode::kNotFound, "TABLE_NOT_FOUND");
  ExpectError(client_->Execute("CREATE TABLE").status(), absl::StatusCode::kInvalidArgument,
              "SQL_SYNTAX");
}

TEST_F(ClientIntegrationTest, PerCallDeadlineOverridesTheDefault) {
  // A listener that accepts TCP connections (the kernel's backlog) but never
  // speaks HTTP/2: a call to it waits until its deadline.
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(listener, 16), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  auto silent = TableOpsClient::Connect(absl::StrCat("127.0.0.1:", ntohs(address.sin_port)));
  ASSERT_TRUE(silent.ok()) << silent.status();

  CallOptions call;
  call.deadline = absl::Milliseconds(300);
  absl::Time start = absl::Now();
  EXPECT_EQ((*silent)->ListTables(call).status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "the 30 s default was not overridden";
  close(listener);

  call.deadline = absl::InfiniteDuration();
  EXPECT_TRUE(client_->ListTables(call).ok());
}

TEST_F(ClientIntegrationTest, ConnectValidatesAndUnreachableIsUnavailable) {
  EXPECT_EQ(TableOpsClient::Connect("").status().code(), absl::StatusCode::kInvalidArgument);
  TableOpsClient::Options options;
  options.default_deadline = absl::ZeroDuration();
  EXPECT_EQ(TableOpsClient::Connect("127.0.0.1:1", options).status().code(),
            absl::StatusCode::kInvalidArgument);

  options.default_deadline = absl::Seconds(5);
  auto nowhere = TableOpsClient::Connect("127.0.0.1:1", options);
  ASSERT_TRUE(nowhere.ok()) << nowhere.status();
  EXPECT_EQ((*nowhere)->ListTables().status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ClientIntegrationTest, CtlTablesPrintsAnAlignedTable) {
  ASSERT_TRUE(CreateTable("CREATE TABLE ctl_tables (id INTEGER PRIMARY KEY)", 2).ok());
  CtlRun run = RunCtl({"tables"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "TABLES\n")) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "primary_key  shard_key  num_shards  strategy"))
      << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "ctl_tables")) << run.out;
  // Every data line starts its second column where the header's does.
  std::istringstream lines(run.out);
  std::string line, header;
  while (std::getline(lines, line)) {
    if (absl::StartsWith(line, "name ")) header = line;
    if (!absl::StartsWith(line, "ctl_tables")) continue;
    ASSERT_FALSE(header.empty());
    EXPECT_EQ(line.find("id"), header.find("primary_key")) << run.out;
  }
}

TEST_F(ClientIntegrationTest, CtlJsonDescribeIsTheResponse) {
  ASSERT_TRUE(CreateTable("CREATE TABLE ctl_json (k TEXT PRIMARY KEY, v BLOB)", 4).ok());
  CtlRun run = RunCtl({"--json", "describe", "ctl_json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "\"numShards\":4")) << run.out;
  v1::DescribeTableResponse parsed;
  auto status = google::protobuf::util::JsonStringToMessage(run.out, &parsed);
  ASSERT_TRUE(status.ok()) << status.ToString() << "\n" << run.out;
  EXPECT_EQ(parsed.table().name(), "ctl_json");
  EXPECT_EQ(parsed.shards_size(), 4);
  EXPECT_EQ(parsed.columns_size(), 2);
}

TEST_F(ClientIntegrationTest, CtlDescribeStatsIndexesAndDdl) {
  CtlRun create = RunCtl({"sql", "CREATE TABLE ctl_ddl (id INTEGER PRIMARY KEY) /* SHARDS=2 */"});
  ASSERT_EQ(create.exit_code, 0) << create.err;
  EXPECT_EQ(create.out, "0 row(s) affected\n");

  CtlRun describe = RunCtl({"describe", "ctl_ddl"});
  ASSERT_EQ(describe.exit_code, 0) << describe.err;
  for (const char* set : {"TABLE_INFO\n", "\nSHARDS\n", "\nINDEXES\n", "\nCOLUMNS\n"}) {
    EXPECT_TRUE(absl::StrContains(describe.out, set)) << set << "\n" << describe.out;
  }

  CtlRun stats = RunCtl({"stats", "ctl_ddl"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_TRUE(absl::StrContains(stats.out, "TABLE_STATS\n")) << stats.out;
  EXPECT_TRUE(absl::StrContains(stats.out, "SHARD_STATS\n")) << stats.out;

  CtlRun indexes = RunCtl({"indexes", "ctl_ddl"});
  ASSERT_EQ(indexes.exit_code, 0) << indexes.err;
  EXPECT_TRUE(absl::StrContains(indexes.out, "(0 rows)")) << indexes.out;
}

TEST_F(ClientIntegrationTest, CtlUnsupportedStatementIsACleanError) {
  // ADD COLUMN is refused by design (DESIGN.md §4).
  CtlRun alter = RunCtl({"sql", "ALTER TABLE ctl_x ADD COLUMN y INTEGER"});
  EXPECT_EQ(alter.exit_code, 1) << alter.out << alter.err;
  EXPECT_TRUE(absl::StartsWith(alter.err, "error: ")) << alter.err;

  // SELECT waits for the data path: today UNIMPLEMENTED, later a result.
  CtlRun select = RunCtl({"sql", "SELECT 40 + 2 AS answer, ?", "x"});
  EXPECT_EQ(select.exit_code, 0) << select.err;
  EXPECT_TRUE(absl::StrContains(select.out, "answer")) << select.out;
  EXPECT_TRUE(absl::StrContains(select.out, "42")) << select.out;
}

TEST_F(ClientIntegrationTest, CtlReshardReportsTheServersAnswer) {
  ASSERT_TRUE(CreateTable("CREATE TABLE ctl_reshard (id INTEGER PRIMARY KEY)", 1).ok());
  CtlRun run = RunCtl({"reshard", "ctl_reshard", "2", "--wait"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "change_log_id: ")) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "phase: complete")) << run.out;
  // An invalid count: the server's error, printed, nothing else.
  CtlRun bad = RunCtl({"reshard", "ctl_reshard", "0"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_TRUE(absl::StartsWith(bad.err, "error: INVALID_ARGUMENT INVALID_SHARD_COUNT")) << bad.err;
  EXPECT_TRUE(bad.out.empty()) << bad.out;
}

TEST_F(ClientIntegrationTest, CtlErrorsAndUsage) {
  CtlRun missing = RunCtl({"describe", "nosuch"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(absl::StartsWith(missing.err, "error: NOT_FOUND TABLE_NOT_FOUND: ")) << missing.err;
  EXPECT_TRUE(missing.out.empty()) << missing.out;

  CtlRun no_args = RunCtl({});
  EXPECT_EQ(no_args.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(no_args.err, "usage: conductorctl")) << no_args.err;

  EXPECT_EQ(RunCtl({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(RunCtl({"describe"}).exit_code, 2);
  EXPECT_EQ(RunCtl({"reshard", "t", "many"}).exit_code, 2);
  EXPECT_EQ(RunCtl({"--no_such_flag", "tables"}).exit_code, 2);
  EXPECT_EQ(RunCtl({"tables", "--wait"}).exit_code, 2);
  EXPECT_EQ(RunCtl({"sql", "SELECT ?", "x'abc'"}).exit_code, 2);
}

}  // namespace
}  // namespace conductor
