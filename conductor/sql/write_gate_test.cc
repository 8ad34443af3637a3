#include "conductor/sql/write_gate.h"

#include <chrono>
#include <future>

#include "common/errors.h"
#include "gtest/gtest.h"

namespace conductor {
namespace {

absl::Time Soon(int ms) { return absl::Now() + absl::Milliseconds(ms); }

TEST(WriteGateTest, OpenGateAdmitsAtOnceAndCounts) {
  WriteGate gate;
  auto a = gate.Enter(1, Soon(1000));
  auto b = gate.Enter(1, Soon(1000));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(gate.InFlight(1), 2);
  EXPECT_EQ(gate.InFlight(2), 0);
  a->reset();
  EXPECT_EQ(gate.InFlight(1), 1);
}

TEST(WriteGateTest, CloseWaitsForWritesInFlightAndHoldsNewOnes) {
  WriteGate gate;
  auto before = gate.Enter(7, Soon(1000));
  ASSERT_TRUE(before.ok());
  auto closing = std::async(std::launch::async, [&] { return gate.CloseAndDrain(7, Soon(30000)); });
  EXPECT_EQ(closing.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "closed while a write was in flight";
  // A new write to the table waits; another table's does not.
  auto other_table = gate.Enter(8, Soon(1000));
  EXPECT_TRUE(other_table.ok());
  before->reset();
  ASSERT_TRUE(closing.get().ok());
  auto held = gate.Enter(7, Soon(50));
  EXPECT_EQ(held.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrorReason(held.status()), "TABLE_BUSY");
  auto waiting = std::async(std::launch::async, [&] { return gate.Enter(7, Soon(30000)); });
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  gate.Open(7);
  auto admitted = waiting.get();
  EXPECT_TRUE(admitted.ok());
  EXPECT_EQ(gate.InFlight(7), 1);
}

TEST(WriteGateTest, ADrainThatTakesTooLongReopensTheGate) {
  WriteGate gate;
  auto stuck = gate.Enter(3, Soon(1000));
  ASSERT_TRUE(stuck.ok());
  EXPECT_EQ(gate.CloseAndDrain(3, Soon(50)).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(gate.Enter(3, Soon(50)).ok()) << "writes flow again after a failed close";
}

TEST(WriteGateTest, OneCloserAtATime) {
  WriteGate gate;
  ASSERT_TRUE(gate.CloseAndDrain(4, Soon(1000)).ok());
  EXPECT_EQ(gate.CloseAndDrain(4, Soon(1000)).code(), absl::StatusCode::kFailedPrecondition);
  gate.Open(4);
  gate.Open(4);  // idempotent
  EXPECT_TRUE(gate.CloseAndDrain(4, Soon(1000)).ok());
}

}  // namespace
}  // namespace conductor
