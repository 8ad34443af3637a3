// ClusterSqlTest: a gtest fixture over a TestCluster for multi-process
// tests that speak SQL and the typed RPCs (3 storage nodes, queue workers,
// 2 s job leases), with the helpers those tests share.
#ifndef CONDUCTOR_TESTS_HARNESS_CLUSTER_SQL_TEST_H_
#define CONDUCTOR_TESTS_HARNESS_CLUSTER_SQL_TEST_H_

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/sqlite.h"
#include "conductor/v1/table_ops.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/harness/cluster.h"

namespace conductor::testing {

// A value as text that keeps its storage class ("t:abc", "i:5"), so that 5
// and '5' never compare equal by accident. REALs at full precision.
inline std::string Render(const Value& value) {
  switch (value.kind_case()) {
    case Value::kInteger:
      return absl::StrCat("i:", value.integer());
    case Value::kReal:
      return absl::StrFormat("r:%.17g", value.real());
    case Value::kText:
      return "t:" + value.text();
    case Value::kBlob:
      return "b:" + absl::BytesToHexString(value.blob());
    default:
      return "null";
  }
}

inline std::string RenderValues(const std::vector<Value>& values) {
  std::vector<std::string> parts;
  for (const auto& value : values) parts.push_back(Render(value));
  return absl::StrJoin(parts, "|");
}

inline std::string RenderRow(const ::conductor::v1::Row& row) {
  return RenderValues(std::vector<Value>(row.values().begin(), row.values().end()));
}

class ClusterSqlTest : public ::testing::Test {
 protected:
  // 3 storage nodes, `workers` queue workers, 2 s job leases.
  void StartCluster(int workers = 2, std::vector<std::string> worker_flags = {},
                    std::vector<std::string> conductor_flags = {}) {
    TestCluster::Options options;
    options.storage_nodes = 3;
    options.workers = workers;
    options.extra_worker_flags = std::move(worker_flags);
    options.extra_conductor_flags = {"--job_lease_s=2"};
    for (auto& flag : conductor_flags) options.extra_conductor_flags.push_back(std::move(flag));
    auto cluster = TestCluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
  }

  grpc::Status Run(const std::string& sql, const std::vector<Value>& params = {},
                   ::conductor::v1::ExecuteResponse* response = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ::conductor::v1::ExecuteRequest request;
    request.set_sql(sql);
    for (const auto& p : params) *request.add_params() = p;
    ::conductor::v1::ExecuteResponse ignored;
    return cluster_->ops().Execute(&context, request, response ? response : &ignored);
  }

  // The first result set of a statement that must succeed.
  ::conductor::v1::ResultSet Query(const std::string& sql, const std::vector<Value>& params = {}) {
    ::conductor::v1::ExecuteResponse response;
    grpc::Status status = Run(sql, params, &response);
    EXPECT_TRUE(status.ok()) << sql << ": " << status.error_message();
    if (response.result_sets_size() == 0) return ::conductor::v1::ResultSet();
    return response.result_sets(0);
  }

  int64_t Count(const std::string& sql, const std::vector<Value>& params = {}) {
    ::conductor::v1::ResultSet set = Query(sql, params);
    if (set.rows_size() != 1 || set.rows(0).values_size() != 1) {
      ADD_FAILURE() << sql << " gave no single count";
      return -1;
    }
    return set.rows(0).values(0).integer();
  }

  template <typename Req, typename Resp>
  grpc::Status Call(grpc::Status (::conductor::v1::TableOps::Stub::*method)(grpc::ClientContext*,
                                                                            const Req&, Resp*),
                    const Req& request, Resp* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return (cluster_->ops().*method)(&context, request, response);
  }

  // A table through the typed RPC (shard count and block size).
  void CreateTable(const std::string& sql, int shards, int block_size = 0) {
    ::conductor::v1::CreateTableRequest request;
    request.set_sql(sql);
    request.set_num_shards(shards);
    request.set_block_size(block_size);
    ::conductor::v1::CreateTableResponse response;
    grpc::Status status = Call(&::conductor::v1::TableOps::Stub::CreateTable, request, &response);
    ASSERT_TRUE(status.ok()) << sql << ": " << status.error_message();
    ASSERT_EQ(response.table().num_shards(), shards);
  }

  // INSERTs `rows` (each a parenthesised tuple of literals) in batches.
  void InsertRows(const std::string& table_and_columns, const std::vector<std::string>& rows) {
    for (size_t at = 0; at < rows.size(); at += 200) {
      std::vector<std::string> batch(rows.begin() + at,
                                     rows.begin() + std::min(rows.size(), at + 200));
      std::string sql =
          absl::StrCat("INSERT INTO ", table_and_columns, " VALUES ", absl::StrJoin(batch, ", "));
      ::conductor::v1::ExecuteResponse response;
      grpc::Status status = Run(sql, {}, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ASSERT_EQ(response.rows_affected(), static_cast<int64_t>(batch.size()));
    }
  }

  static void ExpectError(const grpc::Status& status, grpc::StatusCode code,
                          const std::string& reason) {
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    if (!reason.empty()) {
      EXPECT_EQ(ErrorReason(FromGrpcStatus(status)), reason) << status.error_message();
    }
    EXPECT_FALSE(status.error_message().empty());
  }

  static ::testing::AssertionResult IsOk(const grpc::Status& status) {
    if (status.ok()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "gRPC code " << status.error_code() << ": " << status.error_message();
  }

  static const ::conductor::v1::ResultSet* Set(const ::conductor::v1::ExecuteResponse& response,
                                               const std::string& name) {
    for (const auto& set : response.result_sets()) {
      if (set.name() == name) return &set;
    }
    return nullptr;
  }

  static int ColumnIndex(const ::conductor::v1::ResultSet& set, const std::string& name) {
    for (int i = 0; i < set.columns_size(); ++i) {
      if (set.columns(i) == name) return i;
    }
    return -1;
  }

  std::unique_ptr<TestCluster> cluster_;
};

}  // namespace conductor::testing

#endif  // CONDUCTOR_TESTS_HARNESS_CLUSTER_SQL_TEST_H_
