#include "common/errors.h"

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace conductor {
namespace {

TEST(ErrorsTest, ReasonSurvivesTheGrpcBoundary) {
  absl::Status status = Error(absl::StatusCode::kNotFound, reason::kTableNotFound, "no table t");
  EXPECT_EQ(ErrorReason(status), "TABLE_NOT_FOUND");
  grpc::Status wire = ToGrpcStatus(status);
  EXPECT_EQ(wire.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(wire.error_message(), "no table t");

  google::rpc::Status rpc_status;
  ASSERT_TRUE(rpc_status.ParseFromString(wire.error_details()));
  ASSERT_EQ(rpc_status.details_size(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(rpc_status.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "TABLE_NOT_FOUND");
  EXPECT_EQ(info.domain(), "conductor");

  absl::Status back = FromGrpcStatus(wire);
  EXPECT_EQ(back.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(back.message(), "no table t");
  EXPECT_EQ(ErrorReason(back), "TABLE_NOT_FOUND");
}

TEST(ErrorsTest, PlainStatusGetsItsCodeAsReason) {
  grpc::Status wire = ToGrpcStatus(absl::DeadlineExceededError("too slow"));
  EXPECT_EQ(ErrorReason(FromGrpcStatus(wire)), "DEADLINE_EXCEEDED");
  EXPECT_EQ(ErrorReason(FromGrpcStatus(ToGrpcStatus(absl::InternalError("x")))), "INTERNAL");
}

TEST(ErrorsTest, OkStaysOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(ErrorsTest, AnnotateKeepsCodeAndReason) {
  absl::Status status = Annotate(
      Error(absl::StatusCode::kUnavailable, reason::kStorageUnavailable, "refused"), "node n1");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "node n1: refused");
  EXPECT_EQ(ErrorReason(status), "STORAGE_UNAVAILABLE");
}

TEST(ErrorsTest, ForeignGrpcStatusWithoutDetails) {
  absl::Status status = FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrorReason(status), "");
}

}  // namespace
}  // namespace conductor
