// The conductor and queue_worker binaries as an operator meets them: bad
// flags and unusable data directories give a message and a non-zero exit;
// SIGTERM gives a clean exit 0. (storage_node has its own test beside it.)
#include <signal.h>
#include <sys/stat.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/harness/cluster.h"
#include "tests/harness/process.h"

namespace conductor::testing {
namespace {

int ExitCodeOf(const std::vector<std::string>& argv, std::string* log) {
  std::string log_path = MakeTempDir("bin") + "/out.log";
  auto process = Process::Start(argv, log_path);
  EXPECT_TRUE(process.ok()) << process.status();
  auto code = (*process)->Wait(absl::Seconds(30));
  EXPECT_TRUE(code.ok()) << code.status();
  *log = (*process)->LogTail();
  return code.ok() ? *code : -1;
}

TEST(ConductorBinaryTest, BadFlagsExitTwoWithAMessage) {
  const std::string conductor = BinaryPath("conductor/conductor");
  const std::string dir = MakeTempDir("conductor");
  std::string log;
  EXPECT_EQ(ExitCodeOf({conductor, "--listen=127.0.0.1:0", "--storage_nodes=127.0.0.1:1"}, &log),
            2);
  EXPECT_NE(log.find("--data_dir"), std::string::npos) << log;
  EXPECT_EQ(ExitCodeOf({conductor, "--listen=127.0.0.1:0", "--data_dir=" + dir}, &log), 2);
  EXPECT_NE(log.find("--storage_nodes"), std::string::npos) << log;
  EXPECT_EQ(ExitCodeOf({conductor, "--no_such_flag=1"}, &log), 2) << log;
  EXPECT_EQ(ExitCodeOf({conductor, "--storage_timeout_ms=soon"}, &log), 2) << log;
  EXPECT_EQ(ExitCodeOf({conductor, "--listen=nonsense", "--data_dir=" + dir,
                        "--storage_nodes=127.0.0.1:1"},
                       &log),
            2);
  EXPECT_NE(log.find("HOST:PORT"), std::string::npos) << log;
  EXPECT_EQ(ExitCodeOf({conductor, "--listen=127.0.0.1:0", "--data_dir=" + dir,
                        "--storage_nodes=127.0.0.1:1,127.0.0.1:1"},
                       &log),
            2);
  EXPECT_NE(log.find("twice"), std::string::npos) << log;
}

TEST(ConductorBinaryTest, UnusableDataDirExitsOne) {
  const std::string conductor = BinaryPath("conductor/conductor");
  std::string file = MakeTempDir("conductor") + "/not-a-dir";
  std::ofstream(file) << "x";
  std::string log;
  EXPECT_EQ(ExitCodeOf({conductor, "--listen=127.0.0.1:0", "--data_dir=" + file,
                        "--storage_nodes=127.0.0.1:1"},
                       &log),
            1);
  EXPECT_NE(log.find("not a directory"), std::string::npos) << log;
  // A topology file that is not a database.
  std::string dir = MakeTempDir("conductor");
  std::ofstream(dir + "/topology.db") << "this is not a SQLite database, not even close.....";
  EXPECT_EQ(ExitCodeOf({conductor, "--listen=127.0.0.1:0", "--data_dir=" + dir,
                        "--storage_nodes=127.0.0.1:1"},
                       &log),
            1);
  EXPECT_NE(log.find("topology.db"), std::string::npos) << log;
}

TEST(ConductorBinaryTest, NeverAnsweringStorageNodeIsReportedAtFirstStart) {
  const std::string conductor = BinaryPath("conductor/conductor");
  std::string log;
  // (The data dir's missing parents are created, as mkdir -p would.)
  EXPECT_EQ(ExitCodeOf({conductor, "--listen=127.0.0.1:0",
                        "--data_dir=" + MakeTempDir("c") + "/deeper/still",
                        "--storage_nodes=127.0.0.1:1", "--storage_wait_s=1"},
                       &log),
            1);
  EXPECT_NE(log.find("never answered"), std::string::npos) << log;
}

TEST(ConductorBinaryTest, ASecondConductorOnTheSameDataDirIsRefused) {
  auto cluster = TestCluster::Start({.storage_nodes = 1});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  std::string log;
  EXPECT_EQ(ExitCodeOf({BinaryPath("conductor/conductor"), "--listen=127.0.0.1:0",
                        "--data_dir=" + (*cluster)->conductor_data_dir(),
                        "--storage_nodes=" + (*cluster)->node_address(0)},
                       &log),
            1);
  EXPECT_NE(log.find("in use by another conductor"), std::string::npos) << log;
}

TEST(ClusterBinariesTest, SigtermIsACleanExit) {
  auto cluster = TestCluster::Start({.storage_nodes = 1});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto worker =
      Process::Start({BinaryPath("queue_worker/queue_worker"),
                      "--conductor=" + (*cluster)->conductor_address(), "--listen=127.0.0.1:0"},
                     MakeTempDir("worker") + "/worker.log");
  ASSERT_TRUE(worker.ok());
  ASSERT_TRUE((*worker)->WaitForListening(absl::Seconds(30)).ok());
  auto worker_code = (*worker)->Stop(absl::Seconds(10));
  ASSERT_TRUE(worker_code.ok()) << worker_code.status();
  EXPECT_EQ(*worker_code, 0);
  auto conductor_code = (*cluster)->conductor_process()->Stop(absl::Seconds(10));
  ASSERT_TRUE(conductor_code.ok()) << conductor_code.status();
  EXPECT_EQ(*conductor_code, 0);
  auto node_code = (*cluster)->node_process(0)->Stop(absl::Seconds(10));
  ASSERT_TRUE(node_code.ok());
  EXPECT_EQ(*node_code, 0);
}

TEST(StorageNodeBinaryTest, APortAlreadyServedIsRefused) {
  const std::string node = BinaryPath("storage_node/storage_node");
  auto first = Process::Start(
      {node, "--listen=127.0.0.1:0", "--data_dir=" + MakeTempDir("n1"), "--node_id=n1"},
      MakeTempDir("n1log") + "/log");
  ASSERT_TRUE(first.ok());
  auto address = (*first)->WaitForListening(absl::Seconds(30));
  ASSERT_TRUE(address.ok());
  std::string log;
  EXPECT_EQ(
      ExitCodeOf({node, "--listen=" + *address, "--data_dir=" + MakeTempDir("n2"), "--node_id=n2"},
                 &log),
      1)
      << "a second server on a served port must fail, not share it (SO_REUSEPORT)";
  EXPECT_EQ(*(*first)->Stop(absl::Seconds(10)), 0);
}

TEST(QueueWorkerBinaryTest, BadFlagsExitTwo) {
  const std::string worker = BinaryPath("queue_worker/queue_worker");
  std::string log;
  EXPECT_EQ(ExitCodeOf({worker}, &log), 2);
  EXPECT_NE(log.find("--conductor"), std::string::npos) << log;
  EXPECT_EQ(ExitCodeOf({worker, "--conductor=nowhere"}, &log), 2);
  EXPECT_EQ(ExitCodeOf({worker, "--conductor=127.0.0.1:1", "--concurrency=0"}, &log), 2);
}

}  // namespace
}  // namespace conductor::testing
