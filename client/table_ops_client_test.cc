// TableOpsClient against an in-process fake TableOps service: requests are
// filled in, responses unwrapped, errors keep code and reason, the reshard
// stream is delivered in order, and deadlines apply.
#include "client/table_ops_client.h"

#include <thread>
#include <vector>

#include "common/errors.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace conductor {
namespace {

class FakeTableOps : public v1::TableOps::Service {
 public:
  grpc::Status DropTable(grpc::ServerContext*, const v1::DropTableRequest* request,
                         v1::DropTableResponse* response) override {
    if (request->table() != "t") {
      if (request->if_exists()) return grpc::Status::OK;
      return ToGrpcStatus(Error(absl::StatusCode::kNotFound, reason::kTableNotFound,
                                "table " + request->table() + " does not exist"));
    }
    response->set_dropped(true);
    return grpc::Status::OK;
  }

  grpc::Status RenameTable(grpc::ServerContext*, const v1::RenameTableRequest* request,
                           v1::RenameTableResponse* response) override {
    response->mutable_table()->set_name(request->table() + "->" + request->new_name());
    return grpc::Status::OK;
  }

  grpc::Status Execute(grpc::ServerContext*, const v1::ExecuteRequest* request,
                       v1::ExecuteResponse* response) override {
    auto* set = response->add_result_sets();
    set->set_name(request->sql());
    auto* row = set->add_rows();
    for (const auto& param : request->params()) *row->add_values() = param;
    return grpc::Status::OK;
  }

  grpc::Status ListTables(grpc::ServerContext* context, const v1::ListTablesRequest*,
                          v1::ListTablesResponse* response) override {
    // Slow: answers after 2 s unless the call is cancelled first.
    for (int i = 0; i < 200 && !context->IsCancelled(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    response->add_tables()->set_name("slow");
    return grpc::Status::OK;
  }

  grpc::Status WatchReshard(grpc::ServerContext*, const v1::GetReshardStatusRequest* request,
                            grpc::ServerWriter<v1::ReshardStatus>* writer) override {
    if (request->change_log_id() != "42") {
      return ToGrpcStatus(Error(absl::StatusCode::kNotFound, reason::kReshardNotFound, "no such"));
    }
    for (int copied : {0, 50, 100}) {
      v1::ReshardStatus status;
      status.set_change_log_id("42");
      status.set_rows_copied(copied);
      status.set_rows_total(100);
      status.set_phase(copied == 100 ? v1::RESHARD_PHASE_COMPLETE : v1::RESHARD_PHASE_COPYING);
      writer->Write(status);
    }
    return grpc::Status::OK;
  }
};

class TableOpsClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    client_ = TableOpsClient::FromChannel(server_->InProcessChannel(grpc::ChannelArguments()));
  }
  void TearDown() override { server_->Shutdown(); }

  FakeTableOps service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<TableOpsClient> client_;
};

TEST_F(TableOpsClientTest, DropUnwrapsAndKeepsReasons) {
  auto dropped = client_->Drop("t");
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_TRUE(*dropped);
  auto absent = client_->Drop("u", /*if_exists=*/true);
  ASSERT_TRUE(absent.ok()) << absent.status();
  EXPECT_FALSE(*absent);
  auto missing = client_->Drop("u");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrorReason(missing.status()), "TABLE_NOT_FOUND");
  EXPECT_EQ(missing.status().message(), "table u does not exist");
}

TEST_F(TableOpsClientTest, RenameSendsBothNames) {
  auto renamed = client_->Rename("a", "b");
  ASSERT_TRUE(renamed.ok()) << renamed.status();
  EXPECT_EQ(renamed->name(), "a->b");
}

TEST_F(TableOpsClientTest, ExecuteSendsParamsInOrder) {
  v1::Value one, text;
  one.set_integer(1);
  text.set_text("x");
  auto response = client_->Execute("Q", {one, text});
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->result_sets_size(), 1);
  EXPECT_EQ(response->result_sets(0).name(), "Q");
  ASSERT_EQ(response->result_sets(0).rows(0).values_size(), 2);
  EXPECT_EQ(response->result_sets(0).rows(0).values(0).integer(), 1);
  EXPECT_EQ(response->result_sets(0).rows(0).values(1).text(), "x");
}

TEST_F(TableOpsClientTest, UnimplementedCallsSayUnimplemented) {
  EXPECT_EQ(client_->Reshard("t", 2).status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(client_->ListIndexes().status().code(), absl::StatusCode::kUnimplemented);
}

TEST_F(TableOpsClientTest, CallDeadlineAndDefaultDeadline) {
  CallOptions call;
  call.deadline = absl::Milliseconds(100);
  absl::Time start = absl::Now();
  EXPECT_EQ(client_->ListTables(call).status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(1.5));

  TableOpsClient::Options options;
  options.default_deadline = absl::Milliseconds(100);
  auto hasty =
      TableOpsClient::FromChannel(server_->InProcessChannel(grpc::ChannelArguments()), options);
  EXPECT_EQ(hasty->ListTables().status().code(), absl::StatusCode::kDeadlineExceeded);
  call.deadline = absl::Seconds(30);
  auto patient = hasty->ListTables(call);
  ASSERT_TRUE(patient.ok()) << patient.status();
  EXPECT_EQ(patient->at(0).name(), "slow");
}

TEST_F(TableOpsClientTest, WatchReshardDeliversEveryStatusThenEnds) {
  std::vector<int64_t> copied;
  absl::Status status = client_->WatchReshard(
      "42", [&copied](const v1::ReshardStatus& s) { copied.push_back(s.rows_copied()); });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(copied, (std::vector<int64_t>{0, 50, 100}));

  absl::Status missing = client_->WatchReshard(
      "7", [](const v1::ReshardStatus&) { ADD_FAILURE() << "no status expected"; });
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrorReason(missing), "RESHARD_NOT_FOUND");
}

}  // namespace
}  // namespace conductor
