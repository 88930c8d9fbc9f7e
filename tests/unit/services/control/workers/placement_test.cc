#include "services/control/workers/placement.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::control {
namespace {

using ::testing::DoubleNear;
using ::testing::HasSubstr;

PlacementCandidate Worker(const std::string& id, v1::WorkerState state, uint32_t sessions, uint32_t max_sessions,
                          uint32_t free_ports, uint32_t total_ports, double cpu = 0.0) {
  PlacementCandidate c;
  c.worker_id = id;
  c.state = state;
  c.load.set_sessions(sessions);
  c.load.set_max_sessions(max_sessions);
  c.load.set_free_ports(free_ports);
  c.load.set_total_ports(total_ports);
  c.load.set_cpu(cpu);
  return c;
}

PlacementCandidate Ready(const std::string& id, uint32_t sessions, uint32_t max_sessions = 100,
                         uint32_t free_ports = 1000, uint32_t total_ports = 1000, double cpu = 0.0) {
  return Worker(id, v1::WORKER_STATE_READY, sessions, max_sessions, free_ports, total_ports, cpu);
}

TEST(ChooseWorkerTest, PicksLeastLoadedReadyWorker) {
  std::vector<PlacementCandidate> candidates = {Ready("a", 50), Ready("b", 10), Ready("c", 30)};
  auto chosen = ChooseWorker(candidates, 4);
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ(*chosen, 1u);
}

TEST(ChooseWorkerTest, LoadConsidersPortsAndCpuNotJustSessions) {
  // "a" has few sessions but almost no free ports; "b" has few sessions but a busy CPU.
  std::vector<PlacementCandidate> candidates = {Ready("a", 1, 100, 100, 1000), Ready("b", 1, 100, 1000, 1000, 0.95),
                                                Ready("c", 40, 100, 1000, 1000)};
  auto chosen = ChooseWorker(candidates, 4);
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ(candidates[*chosen].worker_id, "c");
}

TEST(ChooseWorkerTest, SkipsDrainingAndLostWorkers) {
  std::vector<PlacementCandidate> candidates = {
      Worker("draining", v1::WORKER_STATE_DRAINING, 0, 100, 1000, 1000),
      Worker("lost", v1::WORKER_STATE_LOST, 0, 100, 1000, 1000),
      Worker("unspecified", v1::WORKER_STATE_UNSPECIFIED, 0, 100, 1000, 1000),
      Ready("busy", 90),
  };
  auto chosen = ChooseWorker(candidates, 4);
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ(candidates[*chosen].worker_id, "busy");
}

TEST(ChooseWorkerTest, RespectsMaxSessions) {
  std::vector<PlacementCandidate> candidates = {Ready("full", 10, 10), Ready("room", 99, 100)};
  auto chosen = ChooseWorker(candidates, 4);
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ(candidates[*chosen].worker_id, "room");
}

TEST(ChooseWorkerTest, PendingSessionsCountAgainstMaxSessions) {
  PlacementCandidate a = Ready("a", 8, 10);
  a.pending_sessions = 2;  // 8 + 2 = full
  PlacementCandidate b = Ready("b", 90, 100);
  std::vector<PlacementCandidate> candidates = {a, b};
  auto chosen = ChooseWorker(candidates, 4);
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ(candidates[*chosen].worker_id, "b");

  candidates[0].pending_sessions = 1;  // 9 of 10: room again; 0.9 beats "b"'s 0.95
  candidates[1].load.set_sessions(95);
  chosen = ChooseWorker(candidates, 4);
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ(candidates[*chosen].worker_id, "a");
}

TEST(ChooseWorkerTest, RespectsFreePortsIncludingPending) {
  PlacementCandidate few = Ready("few", 0, 100, 3, 1000);  // needs 4
  PlacementCandidate pending = Ready("pending", 0, 100, 10, 1000);
  pending.pending_ports = 8;  // 10 - 8 = 2 < 4
  PlacementCandidate ok = Ready("ok", 50, 100, 500, 1000);
  std::vector<PlacementCandidate> candidates = {few, pending, ok};
  auto chosen = ChooseWorker(candidates, 4);
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ(candidates[*chosen].worker_id, "ok");
}

TEST(ChooseWorkerTest, ExactlyEnoughFreePortsIsEnough) {
  std::vector<PlacementCandidate> candidates = {Ready("exact", 0, 100, 4, 1000)};
  auto chosen = ChooseWorker(candidates, 4);
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ(*chosen, 0u);
}

TEST(ChooseWorkerTest, PendingPortsBeyondFreePortsDoNotWrapAround) {
  PlacementCandidate c = Ready("a", 0, 100, 4, 1000);
  c.pending_ports = 10;  // more than free: must be treated as 0 free, not a huge unsigned number
  auto chosen = ChooseWorker({c}, 4);
  EXPECT_EQ(chosen.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(ChooseWorkerTest, UnavailableWhenNoWorkers) {
  auto chosen = ChooseWorker({}, 4);
  EXPECT_EQ(chosen.status().code(), absl::StatusCode::kUnavailable);
}

TEST(ChooseWorkerTest, UnavailableWhenOnlyLostWorkers) {
  std::vector<PlacementCandidate> candidates = {Worker("lost1", v1::WORKER_STATE_LOST, 0, 100, 1000, 1000),
                                                Worker("lost2", v1::WORKER_STATE_LOST, 0, 100, 1000, 1000)};
  auto chosen = ChooseWorker(candidates, 4);
  EXPECT_EQ(chosen.status().code(), absl::StatusCode::kUnavailable);
}

TEST(ChooseWorkerTest, ResourceExhaustedWhenAllFullOrDrainingWithCounts) {
  std::vector<PlacementCandidate> candidates = {
      Ready("full-sessions", 100, 100),
      Ready("full-ports", 0, 100, 2, 1000),
      Worker("draining", v1::WORKER_STATE_DRAINING, 0, 100, 1000, 1000),
      Worker("lost", v1::WORKER_STATE_LOST, 0, 100, 1000, 1000),
  };
  auto chosen = ChooseWorker(candidates, 4);
  ASSERT_EQ(chosen.status().code(), absl::StatusCode::kResourceExhausted) << chosen.status();
  EXPECT_THAT(std::string(chosen.status().message()), HasSubstr("2 full"));
  EXPECT_THAT(std::string(chosen.status().message()), HasSubstr("1 draining"));
  EXPECT_THAT(std::string(chosen.status().message()), HasSubstr("4 ports needed"));
}

TEST(ChooseWorkerTest, OnlyDrainingIsResourceExhaustedNotUnavailable) {
  std::vector<PlacementCandidate> candidates = {Worker("d", v1::WORKER_STATE_DRAINING, 0, 100, 1000, 1000)};
  auto chosen = ChooseWorker(candidates, 4);
  ASSERT_EQ(chosen.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(chosen.status().message()), HasSubstr("0 full"));
  EXPECT_THAT(std::string(chosen.status().message()), HasSubstr("1 draining"));
}

TEST(LoadScoreTest, IdleWorkerScoresZero) {
  EXPECT_DOUBLE_EQ(LoadScore(Ready("a", 0, 100, 1000, 1000)), 0.0);
}

TEST(LoadScoreTest, SessionRatioDominates) {
  EXPECT_THAT(LoadScore(Ready("a", 50, 100, 900, 1000, 0.1)), DoubleNear(0.5, 1e-9));
}

TEST(LoadScoreTest, PortRatioDominates) {
  // 250 of 1000 ports free: 75% used.
  EXPECT_THAT(LoadScore(Ready("a", 10, 100, 250, 1000, 0.2)), DoubleNear(0.75, 1e-9));
}

TEST(LoadScoreTest, CpuDominates) {
  EXPECT_THAT(LoadScore(Ready("a", 10, 100, 900, 1000, 0.6)), DoubleNear(0.6, 1e-9));
}

TEST(LoadScoreTest, CpuIsClampedToOne) {
  EXPECT_THAT(LoadScore(Ready("a", 0, 100, 1000, 1000, 3.5)), DoubleNear(1.0, 1e-9));
  EXPECT_THAT(LoadScore(Ready("a", 0, 100, 1000, 1000, -2.0)), DoubleNear(0.0, 1e-9));
}

TEST(LoadScoreTest, PendingCountsAreIncluded) {
  PlacementCandidate c = Ready("a", 10, 100, 1000, 1000);
  c.pending_sessions = 30;
  EXPECT_THAT(LoadScore(c), DoubleNear(0.4, 1e-9));
  c.pending_sessions = 0;
  c.pending_ports = 800;
  EXPECT_THAT(LoadScore(c), DoubleNear(0.8, 1e-9));
}

TEST(LoadScoreTest, ZeroMaxSessionsIsFull) {
  EXPECT_THAT(LoadScore(Ready("a", 0, 0, 1000, 1000)), DoubleNear(1.0, 1e-9));
}

}  // namespace
}  // namespace latchkey::control
