#include "services/control/workers/worker_registry.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include <map>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace latchkey::control {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

v1::WorkerLoad IdleLoad() {
  v1::WorkerLoad load;
  load.set_sessions(0);
  load.set_max_sessions(100);
  load.set_free_ports(1000);
  load.set_total_ports(1000);
  return load;
}

v1::RegisterWorkerRequest Registration(const std::string& id, std::vector<std::string> keepalive_ips = {}) {
  v1::RegisterWorkerRequest request;
  request.set_worker_id(id);
  request.set_grpc_address("127.0.0.1:1");  // never dialled: channels connect lazily
  request.add_advertised_ips("203.0.113.10");
  for (const std::string& ip : keepalive_ips) request.add_keepalive_source_ips(ip);
  *request.mutable_load() = IdleLoad();
  request.set_version("test");
  return request;
}

v1::HeartbeatRequest HeartbeatOf(const std::string& id, const std::string& registration_id,
                                 v1::WorkerLoad load = IdleLoad()) {
  v1::HeartbeatRequest request;
  request.set_worker_id(id);
  request.set_registration_id(registration_id);
  *request.mutable_load() = load;
  return request;
}

WorkerRegistryOptions Options() {
  WorkerRegistryOptions options;
  options.heartbeat_interval = absl::Seconds(1);
  options.lost_after_missed = 3;
  return options;
}

class WorkerRegistryTest : public ::testing::Test {
 protected:
  WorkerRegistryTest() : metrics_(registry_), workers_(Options(), &metrics_) {}

  v1::WorkerState StateOf(const std::string& id) {
    for (const v1::Worker& w : workers_.List()) {
      if (w.worker_id() == id) return w.state();
    }
    ADD_FAILURE() << "no worker " << id;
    return v1::WORKER_STATE_UNSPECIFIED;
  }
  double Gauge(v1::WorkerState state) { return metrics_.workers[state]->Value(); }
  std::string Exposition() {
    return prometheus::TextSerializer().Serialize(registry_.Collect());
  }

  prometheus::Registry registry_;
  ControlMetrics metrics_;
  WorkerRegistry workers_;
};

TEST_F(WorkerRegistryTest, RegisterReturnsIdAndListsWorkerReady) {
  const std::string id = *workers_.Register(Registration("w1"), kT0);
  EXPECT_FALSE(id.empty());
  auto list = workers_.List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].worker_id(), "w1");
  EXPECT_EQ(list[0].state(), v1::WORKER_STATE_READY);
  EXPECT_EQ(list[0].grpc_address(), "127.0.0.1:1");
  EXPECT_EQ(list[0].load().total_ports(), 1000u);

  auto handle = workers_.Get("w1");
  ASSERT_TRUE(handle.ok()) << handle.status();
  EXPECT_EQ(handle->worker_id, "w1");
  EXPECT_NE(handle->stub, nullptr);
}

TEST_F(WorkerRegistryTest, EachRegistrationGetsANewId) {
  const std::string first = *workers_.Register(Registration("w1"), kT0);
  const std::string second = *workers_.Register(Registration("w1"), kT0 + absl::Seconds(1));
  EXPECT_NE(first, second);
  EXPECT_EQ(workers_.List().size(), 1u);
  // The stale incarnation is told to re-register.
  EXPECT_EQ(workers_.Heartbeat(HeartbeatOf("w1", first), kT0 + absl::Seconds(2)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(workers_.Heartbeat(HeartbeatOf("w1", second), kT0 + absl::Seconds(2)).ok());
}

TEST_F(WorkerRegistryTest, HeartbeatWithWrongRegistrationIdIsNotFound) {
  EXPECT_TRUE(workers_.Register(Registration("w1"), kT0).ok());
  auto response = workers_.Heartbeat(HeartbeatOf("w1", "not-the-id"), kT0 + absl::Seconds(1));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(WorkerRegistryTest, HeartbeatFromUnknownWorkerIsNotFound) {
  auto response = workers_.Heartbeat(HeartbeatOf("ghost", "x"), kT0);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(WorkerRegistryTest, HeartbeatUpdatesLoad) {
  const std::string id = *workers_.Register(Registration("w1"), kT0);
  v1::WorkerLoad load = IdleLoad();
  load.set_sessions(7);
  auto response = workers_.Heartbeat(HeartbeatOf("w1", id, load), kT0 + absl::Seconds(1));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_FALSE(response->drain());
  EXPECT_EQ(workers_.List()[0].load().sessions(), 7u);
}

TEST_F(WorkerRegistryTest, SweepLostAfterMissedHeartbeats) {
  const std::string id = *workers_.Register(Registration("w1"), kT0);
  // heartbeat_interval 1 s * 3 missed = 3 s of silence allowed.
  EXPECT_THAT(workers_.SweepLost(kT0 + absl::Seconds(2)), IsEmpty());
  EXPECT_THAT(workers_.SweepLost(kT0 + absl::Seconds(3)), IsEmpty());
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_READY);
  EXPECT_THAT(workers_.SweepLost(kT0 + absl::Seconds(3) + absl::Milliseconds(1)), UnorderedElementsAre("w1"));
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_LOST);
  EXPECT_EQ(metrics_.workers_lost->Value(), 1.0);
  // Not reported twice.
  EXPECT_THAT(workers_.SweepLost(kT0 + absl::Seconds(10)), IsEmpty());
  EXPECT_EQ(metrics_.workers_lost->Value(), 1.0);

  EXPECT_EQ(workers_.Get("w1").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(workers_.Get("nobody").status().code(), absl::StatusCode::kNotFound);

  // Heartbeat from a lost worker, even with its right id: it must register again.
  auto response = workers_.Heartbeat(HeartbeatOf("w1", id), kT0 + absl::Seconds(11));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_LOST);
}

TEST_F(WorkerRegistryTest, HeartbeatsKeepWorkerAlive) {
  const std::string id = *workers_.Register(Registration("w1"), kT0);
  for (int s = 2; s <= 20; s += 2) {
    ASSERT_TRUE(workers_.Heartbeat(HeartbeatOf("w1", id), kT0 + absl::Seconds(s)).ok());
    EXPECT_THAT(workers_.SweepLost(kT0 + absl::Seconds(s + 1)), IsEmpty());
  }
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_READY);
}

TEST_F(WorkerRegistryTest, OnlySilentWorkersAreLost) {
  const std::string a = *workers_.Register(Registration("a"), kT0);
  EXPECT_TRUE(workers_.Register(Registration("b"), kT0).ok());
  ASSERT_TRUE(workers_.Heartbeat(HeartbeatOf("a", a), kT0 + absl::Seconds(3)).ok());
  EXPECT_THAT(workers_.SweepLost(kT0 + absl::Seconds(4)), UnorderedElementsAre("b"));
  EXPECT_EQ(StateOf("a"), v1::WORKER_STATE_READY);
}

TEST_F(WorkerRegistryTest, ReRegisterRevivesLostWorker) {
  EXPECT_TRUE(workers_.Register(Registration("w1"), kT0).ok());
  ASSERT_THAT(workers_.SweepLost(kT0 + absl::Seconds(10)), UnorderedElementsAre("w1"));
  const std::string id = *workers_.Register(Registration("w1"), kT0 + absl::Seconds(11));
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_READY);
  EXPECT_TRUE(workers_.Get("w1").ok());
  EXPECT_TRUE(workers_.Heartbeat(HeartbeatOf("w1", id), kT0 + absl::Seconds(12)).ok());
  EXPECT_THAT(workers_.SweepLost(kT0 + absl::Seconds(13)), IsEmpty());
  EXPECT_TRUE(workers_.Place(4, {}).ok());
}

TEST_F(WorkerRegistryTest, DrainMarksDrainingTellsWorkerAndPlaceSkipsIt) {
  const std::string id = *workers_.Register(Registration("w1"), kT0);
  auto drained = workers_.Drain("w1");
  ASSERT_TRUE(drained.ok()) << drained.status();
  EXPECT_EQ(drained->state(), v1::WORKER_STATE_DRAINING);
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_DRAINING);

  // The worker's own heartbeat (not yet draining) does not undo the operator's drain.
  auto response = workers_.Heartbeat(HeartbeatOf("w1", id), kT0 + absl::Seconds(1));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_TRUE(response->drain());
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_DRAINING);

  auto placed = workers_.Place(4, {});
  EXPECT_EQ(placed.status().code(), absl::StatusCode::kResourceExhausted) << placed.status();

  EXPECT_TRUE(workers_.Register(Registration("w2"), kT0 + absl::Seconds(1)).ok());
  placed = workers_.Place(4, {});
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->worker_id, "w2");
}

TEST_F(WorkerRegistryTest, DrainUnknownWorkerIsNotFound) {
  EXPECT_EQ(workers_.Drain("ghost").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(WorkerRegistryTest, WorkerReportedDrainingIsDraining) {
  v1::RegisterWorkerRequest request = Registration("w1");
  request.set_draining(true);
  EXPECT_TRUE(workers_.Register(request, kT0).ok());
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_DRAINING);
}

TEST_F(WorkerRegistryTest, PlaceWithNoWorkersIsUnavailable) {
  EXPECT_EQ(workers_.Place(4, {}).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(WorkerRegistryTest, PendingCountsSpreadQuickPlacementsOverEqualWorkers) {
  EXPECT_TRUE(workers_.Register(Registration("a"), kT0).ok());
  EXPECT_TRUE(workers_.Register(Registration("b"), kT0).ok());
  auto first = workers_.Place(4, {});
  auto second = workers_.Place(4, {});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(first->worker_id, second->worker_id);
}

TEST_F(WorkerRegistryTest, PendingCountsFillAWorkerUpToItsLimit) {
  v1::RegisterWorkerRequest request = Registration("small");
  request.mutable_load()->set_max_sessions(2);
  const std::string id = *workers_.Register(request, kT0);
  EXPECT_TRUE(workers_.Place(4, {}).ok());
  EXPECT_TRUE(workers_.Place(4, {}).ok());
  EXPECT_EQ(workers_.Place(4, {}).status().code(), absl::StatusCode::kResourceExhausted);

  // A heartbeat reporting the real load replaces the pending estimate.
  v1::HeartbeatRequest heartbeat = HeartbeatOf("small", id);
  heartbeat.mutable_load()->set_max_sessions(2);
  heartbeat.mutable_load()->set_sessions(1);
  ASSERT_TRUE(workers_.Heartbeat(heartbeat, kT0 + absl::Seconds(1)).ok());
  EXPECT_TRUE(workers_.Place(4, {}).ok());
  EXPECT_EQ(workers_.Place(4, {}).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(WorkerRegistryTest, PlaceHonoursExclude) {
  EXPECT_TRUE(workers_.Register(Registration("a"), kT0).ok());
  EXPECT_TRUE(workers_.Register(Registration("b"), kT0).ok());
  for (int i = 0; i < 3; ++i) {
    auto placed = workers_.Place(4, {"a"});
    ASSERT_TRUE(placed.ok()) << placed.status();
    EXPECT_EQ(placed->worker_id, "b");
  }
  EXPECT_EQ(workers_.Place(4, {"a", "b"}).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(WorkerRegistryTest, PlaceSkipsLostWorkers) {
  EXPECT_TRUE(workers_.Register(Registration("old"), kT0).ok());
  EXPECT_TRUE(workers_.Register(Registration("new"), kT0 + absl::Seconds(5)).ok());
  ASSERT_THAT(workers_.SweepLost(kT0 + absl::Seconds(6)), UnorderedElementsAre("old"));
  for (int i = 0; i < 3; ++i) {
    auto placed = workers_.Place(4, {});
    ASSERT_TRUE(placed.ok()) << placed.status();
    EXPECT_EQ(placed->worker_id, "new");
  }
}

TEST_F(WorkerRegistryTest, KeepaliveWorkerForNeedsTheRegistrarAddress) {
  EXPECT_TRUE(workers_.Register(Registration("w-c", {"198.51.100.1"}), kT0).ok());
  EXPECT_TRUE(workers_.Register(Registration("w-b", {"10.0.0.1", "198.51.100.1"}), kT0).ok());
  EXPECT_TRUE(workers_.Register(Registration("w-a", {"10.0.0.2"}), kT0).ok());
  EXPECT_THAT(workers_.KeepaliveWorkerFor("198.51.100.1", "b1"), ::testing::AnyOf("w-b", "w-c"));
  EXPECT_EQ(workers_.KeepaliveWorkerFor("10.0.0.2", "b1"), "w-a");
  EXPECT_EQ(workers_.KeepaliveWorkerFor("192.0.2.99", "b1"), "");
}

TEST_F(WorkerRegistryTest, KeepaliveAssignmentSpreadsAndMovesOnlyTheLeaversShare) {
  for (const char* id : {"w-a", "w-b", "w-c"}) EXPECT_TRUE(workers_.Register(Registration(id, {"198.51.100.1"}), kT0).ok());
  std::map<std::string, std::string> before;
  std::map<std::string, int> per_worker;
  for (int i = 0; i < 3000; ++i) {
    const std::string binding = absl::StrCat("b", i);
    before[binding] = workers_.KeepaliveWorkerFor("198.51.100.1", binding);
    ++per_worker[before[binding]];
  }
  for (const auto& [worker, count] : per_worker) {
    EXPECT_GT(count, 800) << worker;  // ~1000 each
    EXPECT_LT(count, 1200) << worker;
  }
  // Deterministic: asking again (or another control replica asking) gives the same answer.
  EXPECT_EQ(workers_.KeepaliveWorkerFor("198.51.100.1", "b7"), before["b7"]);
  ASSERT_TRUE(workers_.Drain("w-b").ok());
  int moved = 0;
  for (const auto& [binding, worker] : before) {
    const std::string now = workers_.KeepaliveWorkerFor("198.51.100.1", binding);
    EXPECT_NE(now, "w-b");
    if (now != worker) {
      ++moved;
      EXPECT_EQ(worker, "w-b") << binding << " moved although its worker stayed";
    }
  }
  EXPECT_EQ(moved, per_worker["w-b"]);
}

TEST_F(WorkerRegistryTest, KeepaliveWorkerPrefersRegistrarSourceOverOwnSocket) {
  v1::RegisterWorkerRequest own = Registration("w-own", {"203.0.113.10"});
  own.set_keepalive_mode(v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET);
  EXPECT_TRUE(workers_.Register(own, kT0).ok());
  // Only an own-socket worker: it takes any registrar.
  EXPECT_EQ(workers_.KeepaliveWorkerFor("198.51.100.1", "b1"), "w-own");
  EXPECT_TRUE(workers_.Register(Registration("w-raw", {"198.51.100.1"}), kT0).ok());
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(workers_.KeepaliveWorkerFor("198.51.100.1", absl::StrCat("b", i)), "w-raw");
  }
}

TEST_F(WorkerRegistryTest, KeepaliveWorkerForSkipsWorkersNotReadyAndMembershipVersionMoves) {
  const uint64_t v0 = workers_.membership_version();
  EXPECT_TRUE(workers_.Register(Registration("w-a", {"198.51.100.1"}), kT0).ok());
  EXPECT_TRUE(workers_.Register(Registration("w-b", {"198.51.100.1"}), kT0).ok());
  const uint64_t v1 = workers_.membership_version();
  EXPECT_NE(v1, v0);
  ASSERT_TRUE(workers_.Drain("w-a").ok());
  EXPECT_NE(workers_.membership_version(), v1);
  EXPECT_EQ(workers_.KeepaliveWorkerFor("198.51.100.1", "b1"), "w-b");
  const uint64_t v2 = workers_.membership_version();
  ASSERT_EQ(workers_.SweepLost(kT0 + absl::Minutes(1)).size(), 2u);
  EXPECT_NE(workers_.membership_version(), v2);
  EXPECT_EQ(workers_.KeepaliveWorkerFor("198.51.100.1", "b1"), "");
}

TEST_F(WorkerRegistryTest, StateGaugesFollowWorkers) {
  EXPECT_EQ(Gauge(v1::WORKER_STATE_READY), 0.0);
  const std::string a = *workers_.Register(Registration("a"), kT0);
  EXPECT_TRUE(workers_.Register(Registration("b"), kT0).ok());
  EXPECT_TRUE(workers_.Register(Registration("c"), kT0).ok());
  EXPECT_EQ(Gauge(v1::WORKER_STATE_READY), 3.0);
  EXPECT_EQ(Gauge(v1::WORKER_STATE_DRAINING), 0.0);
  EXPECT_EQ(Gauge(v1::WORKER_STATE_LOST), 0.0);

  ASSERT_TRUE(workers_.Drain("b").ok());
  EXPECT_EQ(Gauge(v1::WORKER_STATE_READY), 2.0);
  EXPECT_EQ(Gauge(v1::WORKER_STATE_DRAINING), 1.0);

  ASSERT_TRUE(workers_.Heartbeat(HeartbeatOf("a", a), kT0 + absl::Seconds(4)).ok());
  ASSERT_THAT(workers_.SweepLost(kT0 + absl::Seconds(5)), UnorderedElementsAre("b", "c"));
  EXPECT_EQ(Gauge(v1::WORKER_STATE_READY), 1.0);
  EXPECT_EQ(Gauge(v1::WORKER_STATE_DRAINING), 0.0);
  EXPECT_EQ(Gauge(v1::WORKER_STATE_LOST), 2.0);

  const std::string text = Exposition();
  EXPECT_THAT(text, HasSubstr("latchkey_workers{state=\"ready\"} 1"));
  EXPECT_THAT(text, HasSubstr("latchkey_workers{state=\"draining\"} 0"));
  EXPECT_THAT(text, HasSubstr("latchkey_workers{state=\"lost\"} 2"));
  EXPECT_THAT(text, HasSubstr("latchkey_workers_lost_total 2"));

  EXPECT_TRUE(workers_.Register(Registration("c"), kT0 + absl::Seconds(6)).ok());
  EXPECT_EQ(Gauge(v1::WORKER_STATE_READY), 2.0);
  EXPECT_EQ(Gauge(v1::WORKER_STATE_LOST), 1.0);
}

TEST_F(WorkerRegistryTest, SessionEndedFreesCapacityBeforeNextHeartbeat) {
  v1::RegisterWorkerRequest request = Registration("w1");
  request.mutable_load()->set_sessions(2);
  request.mutable_load()->set_max_sessions(2);
  request.mutable_load()->set_free_ports(996);
  EXPECT_TRUE(workers_.Register(request, kT0).ok());
  EXPECT_EQ(workers_.Place(4, {}).status().code(), absl::StatusCode::kResourceExhausted);
  workers_.SessionEnded("w1", 4);
  EXPECT_EQ(workers_.List()[0].load().sessions(), 1u);
  EXPECT_EQ(workers_.List()[0].load().free_ports(), 1000u);
  EXPECT_TRUE(workers_.Place(4, {}).ok());
  // Free ports never exceed the total.
  workers_.SessionEnded("w1", 4);
  EXPECT_EQ(workers_.List()[0].load().free_ports(), 1000u);
  workers_.SessionEnded("unknown", 4);  // ignored
}

// --- Undrain -------------------------------------------------------------------------------------

TEST_F(WorkerRegistryTest, UndrainWithdrawsAnOperatorsDrain) {
  const std::string id = *workers_.Register(Registration("w1"), kT0);
  ASSERT_TRUE(workers_.Drain("w1").ok());
  auto heartbeat = workers_.Heartbeat(HeartbeatOf("w1", id), kT0 + absl::Seconds(1));
  ASSERT_TRUE(heartbeat.ok()) << heartbeat.status();
  ASSERT_TRUE(heartbeat->drain());

  const uint64_t version = workers_.membership_version();
  auto undrained = workers_.Undrain("w1");
  ASSERT_TRUE(undrained.ok()) << undrained.status();
  EXPECT_EQ(undrained->state(), v1::WORKER_STATE_READY);
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_READY);
  EXPECT_NE(workers_.membership_version(), version);  // keepalives may move back to it
  EXPECT_EQ(Gauge(v1::WORKER_STATE_READY), 1.0);
  EXPECT_EQ(Gauge(v1::WORKER_STATE_DRAINING), 0.0);

  // The worker is told on its next heartbeat, and stays ready.
  heartbeat = workers_.Heartbeat(HeartbeatOf("w1", id), kT0 + absl::Seconds(2));
  ASSERT_TRUE(heartbeat.ok()) << heartbeat.status();
  EXPECT_FALSE(heartbeat->drain());
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_READY);
  auto placed = workers_.Place(4, {});
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->worker_id, "w1");
}

TEST_F(WorkerRegistryTest, UndrainDoesNotOverrideAWorkerDrainingItself) {
  const std::string id = *workers_.Register(Registration("w1"), kT0);
  v1::HeartbeatRequest shutting_down = HeartbeatOf("w1", id);
  shutting_down.set_draining(true);
  ASSERT_TRUE(workers_.Heartbeat(shutting_down, kT0 + absl::Seconds(1)).ok());
  ASSERT_EQ(StateOf("w1"), v1::WORKER_STATE_DRAINING);
  ASSERT_TRUE(workers_.Drain("w1").ok());

  auto undrained = workers_.Undrain("w1");
  ASSERT_TRUE(undrained.ok()) << undrained.status();
  EXPECT_EQ(undrained->state(), v1::WORKER_STATE_DRAINING);
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_DRAINING);
  EXPECT_EQ(workers_.Place(4, {}).status().code(), absl::StatusCode::kResourceExhausted);

  // Still shutting down: still draining, but control no longer asks it to drain.
  auto heartbeat = workers_.Heartbeat(shutting_down, kT0 + absl::Seconds(2));
  ASSERT_TRUE(heartbeat.ok()) << heartbeat.status();
  EXPECT_FALSE(heartbeat->drain());
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_DRAINING);

  // Once the worker itself stops draining it is ready again.
  heartbeat = workers_.Heartbeat(HeartbeatOf("w1", id), kT0 + absl::Seconds(3));
  ASSERT_TRUE(heartbeat.ok()) << heartbeat.status();
  EXPECT_FALSE(heartbeat->drain());
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_READY);
}

TEST_F(WorkerRegistryTest, UndrainDoesNotOverrideAWorkerThatRegisteredDraining) {
  v1::RegisterWorkerRequest request = Registration("w1");
  request.set_draining(true);
  EXPECT_TRUE(workers_.Register(request, kT0).ok());
  auto undrained = workers_.Undrain("w1");
  ASSERT_TRUE(undrained.ok()) << undrained.status();
  EXPECT_EQ(undrained->state(), v1::WORKER_STATE_DRAINING);
}

TEST_F(WorkerRegistryTest, UndrainOfAReadyWorkerLeavesItReady) {
  const std::string id = *workers_.Register(Registration("w1"), kT0);
  auto undrained = workers_.Undrain("w1");
  ASSERT_TRUE(undrained.ok()) << undrained.status();
  EXPECT_EQ(undrained->state(), v1::WORKER_STATE_READY);
  auto heartbeat = workers_.Heartbeat(HeartbeatOf("w1", id), kT0 + absl::Seconds(1));
  ASSERT_TRUE(heartbeat.ok()) << heartbeat.status();
  EXPECT_FALSE(heartbeat->drain());
}

TEST_F(WorkerRegistryTest, UndrainDoesNotReviveALostWorker) {
  EXPECT_TRUE(workers_.Register(Registration("w1"), kT0).ok());
  ASSERT_TRUE(workers_.Drain("w1").ok());
  ASSERT_THAT(workers_.SweepLost(kT0 + absl::Seconds(10)), UnorderedElementsAre("w1"));
  auto undrained = workers_.Undrain("w1");
  ASSERT_TRUE(undrained.ok()) << undrained.status();
  EXPECT_EQ(undrained->state(), v1::WORKER_STATE_LOST);
  EXPECT_EQ(workers_.Get("w1").status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(WorkerRegistryTest, AnOperatorDrainSurvivesReRegistrationUntilUndrained) {
  EXPECT_TRUE(workers_.Register(Registration("w1"), kT0).ok());
  ASSERT_TRUE(workers_.Drain("w1").ok());
  const std::string id = *workers_.Register(Registration("w1"), kT0 + absl::Seconds(1));  // a worker restart
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_DRAINING);
  ASSERT_TRUE(workers_.Undrain("w1").ok());
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_READY);
  auto heartbeat = workers_.Heartbeat(HeartbeatOf("w1", id), kT0 + absl::Seconds(2));
  ASSERT_TRUE(heartbeat.ok()) << heartbeat.status();
  EXPECT_FALSE(heartbeat->drain());
}

TEST_F(WorkerRegistryTest, UndrainUnknownWorkerIsNotFound) {
  const auto undrained = workers_.Undrain("ghost");
  EXPECT_EQ(undrained.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(undrained.status().message(), HasSubstr("ghost"));
}

// --- CheckClaims ---------------------------------------------------------------------------------

v1::RegisterWorkerRequest WithRange(const std::string& id, std::vector<std::string> ips, uint32_t port_min,
                                    uint32_t port_max) {
  v1::RegisterWorkerRequest request = Registration(id);
  request.clear_advertised_ips();
  for (const std::string& ip : ips) request.add_advertised_ips(ip);
  request.set_port_min(port_min);
  request.set_port_max(port_max);
  return request;
}

TEST_F(WorkerRegistryTest, CheckClaimsRefusesAnOverlappingRangeOnAnotherWorkersAddress) {
  const v1::RegisterWorkerRequest a = WithRange("a", {"203.0.113.10"}, 20000, 29999);
  ASSERT_TRUE(workers_.CheckClaims(a).ok());
  EXPECT_TRUE(workers_.Register(a, kT0).ok());

  for (const auto& [low, high] : std::vector<std::pair<uint32_t, uint32_t>>{
           {25000, 35000}, {10000, 20000}, {29999, 30000}, {20000, 29999}, {21000, 22000}, {1, 65535}}) {
    const absl::Status status = workers_.CheckClaims(WithRange("b", {"203.0.113.10"}, low, high));
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << low << "-" << high;
    EXPECT_THAT(status.message(), HasSubstr("203.0.113.10")) << low << "-" << high;
    EXPECT_THAT(status.message(), HasSubstr("worker a")) << low << "-" << high;
  }
  // One overlapping address among several is enough.
  EXPECT_EQ(workers_.CheckClaims(WithRange("b", {"198.51.100.7", "203.0.113.10"}, 25000, 25999)).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(WorkerRegistryTest, CheckClaimsLetsAWorkerReRegisterItsOwnRange) {
  const v1::RegisterWorkerRequest a = WithRange("a", {"203.0.113.10"}, 20000, 29999);
  EXPECT_TRUE(workers_.Register(a, kT0).ok());
  EXPECT_TRUE(workers_.CheckClaims(a).ok());
  EXPECT_TRUE(workers_.CheckClaims(WithRange("a", {"203.0.113.10"}, 20000, 39999)).ok());  // grown
}

TEST_F(WorkerRegistryTest, CheckClaimsAllowsDisjointRangesAndOtherAddresses) {
  EXPECT_TRUE(workers_.Register(WithRange("a", {"203.0.113.10"}, 20000, 29999), kT0).ok());
  EXPECT_TRUE(workers_.CheckClaims(WithRange("b", {"203.0.113.10"}, 30000, 39999)).ok());
  EXPECT_TRUE(workers_.CheckClaims(WithRange("b", {"203.0.113.10"}, 10000, 19999)).ok());
  EXPECT_TRUE(workers_.CheckClaims(WithRange("b", {"203.0.113.11"}, 20000, 29999)).ok());
  EXPECT_TRUE(workers_.CheckClaims(WithRange("b", {"2001:db8::10"}, 20000, 29999)).ok());
  // A worker that announces no range claims nothing.
  EXPECT_TRUE(workers_.CheckClaims(WithRange("b", {"203.0.113.10"}, 0, 0)).ok());
}

TEST_F(WorkerRegistryTest, CheckClaimsIgnoresLostWorkers) {
  EXPECT_TRUE(workers_.Register(WithRange("a", {"203.0.113.10"}, 20000, 29999), kT0).ok());
  EXPECT_TRUE(workers_.Register(WithRange("b", {"203.0.113.20"}, 20000, 29999), kT0 + absl::Seconds(5)).ok());
  ASSERT_THAT(workers_.SweepLost(kT0 + absl::Seconds(6)), UnorderedElementsAre("a"));
  // a's replacement (another pod on the same address) may take its place.
  EXPECT_TRUE(workers_.CheckClaims(WithRange("a2", {"203.0.113.10"}, 20000, 29999)).ok());
  EXPECT_FALSE(workers_.CheckClaims(WithRange("b2", {"203.0.113.20"}, 20000, 29999)).ok());
}

TEST_F(WorkerRegistryTest, CheckClaimsComparesAddressesNotTheirSpelling) {
  // A second worker must not claim the same address and ports by spelling it differently (upper
  // case or zero groups in IPv6, brackets, v4-mapped IPv4).
  EXPECT_TRUE(workers_.Register(WithRange("a", {"2001:db8::10", "203.0.113.10"}, 20000, 29999), kT0).ok());
  for (const char* spelling : {"2001:DB8::10", "2001:db8:0:0::10", "2001:0db8::0010", "::ffff:203.0.113.10",
                               "[2001:db8::10]"}) {
    EXPECT_EQ(workers_.CheckClaims(WithRange("b", {spelling}, 25000, 25999)).code(),
              absl::StatusCode::kPermissionDenied)
        << spelling << " is the address worker a advertises";
  }
}

// --- Forgetting lost workers ---------------------------------------------------------------------

TEST_F(WorkerRegistryTest, SweepLostForgetsWorkersLostLongerThanForgetLostAfter) {
  // Options(): 1 s heartbeats, lost after 3 missed, forgotten 1 h (the default) after that.
  ASSERT_EQ(Options().forget_lost_after, absl::Hours(1));
  EXPECT_TRUE(workers_.Register(WithRange("old", {"203.0.113.10"}, 20000, 29999), kT0).ok());
  ASSERT_THAT(workers_.SweepLost(kT0 + absl::Seconds(4)), UnorderedElementsAre("old"));
  EXPECT_EQ(StateOf("old"), v1::WORKER_STATE_LOST);
  EXPECT_EQ(Gauge(v1::WORKER_STATE_LOST), 1.0);

  // Just at the limit: still listed as lost.
  EXPECT_THAT(workers_.SweepLost(kT0 + absl::Seconds(3) + absl::Hours(1)), IsEmpty());
  ASSERT_EQ(workers_.List().size(), 1u);
  EXPECT_EQ(metrics_.workers_forgotten->Value(), 0.0);

  const uint64_t version = workers_.membership_version();
  EXPECT_THAT(workers_.SweepLost(kT0 + absl::Seconds(3) + absl::Hours(1) + absl::Milliseconds(1)), IsEmpty());
  EXPECT_THAT(workers_.List(), IsEmpty());
  EXPECT_EQ(workers_.Get("old").status().code(), absl::StatusCode::kNotFound);  // no longer "lost"
  EXPECT_EQ(metrics_.workers_forgotten->Value(), 1.0);
  EXPECT_THAT(Exposition(), HasSubstr("latchkey_workers_forgotten_total 1"));
  EXPECT_EQ(Gauge(v1::WORKER_STATE_LOST), 0.0);
  EXPECT_NE(workers_.membership_version(), version);

  // Its id is free: the worker coming back is a plain new registration.
  EXPECT_TRUE(workers_.Register(WithRange("old", {"203.0.113.10"}, 20000, 29999), kT0 + absl::Hours(2)).ok());
  EXPECT_EQ(StateOf("old"), v1::WORKER_STATE_READY);
}

TEST_F(WorkerRegistryTest, SweepLostForgetsOnlyTheLongLostWorkers) {
  EXPECT_TRUE(workers_.Register(Registration("early"), kT0).ok());
  const absl::Time later = kT0 + absl::Minutes(30);
  EXPECT_TRUE(workers_.Register(Registration("late"), later).ok());
  ASSERT_THAT(workers_.SweepLost(later), UnorderedElementsAre("early"));
  const std::string live = *workers_.Register(Registration("live"), kT0 + absl::Hours(1));

  // early: silent since kT0, late: since kT0+30m, live: heartbeating.
  const absl::Time sweep = kT0 + absl::Hours(1) + absl::Seconds(4);
  ASSERT_TRUE(workers_.Heartbeat(HeartbeatOf("live", live), sweep).ok());
  EXPECT_THAT(workers_.SweepLost(sweep), UnorderedElementsAre("late"));
  std::vector<std::string> listed;
  for (const v1::Worker& w : workers_.List()) listed.push_back(w.worker_id());
  EXPECT_THAT(listed, UnorderedElementsAre("late", "live"));
  EXPECT_EQ(StateOf("late"), v1::WORKER_STATE_LOST);
  EXPECT_EQ(StateOf("live"), v1::WORKER_STATE_READY);
  EXPECT_EQ(metrics_.workers_forgotten->Value(), 1.0);
}

TEST_F(WorkerRegistryTest, AWorkerSilentForVeryLongIsFirstReportedLostThenForgotten) {
  // Whoever acts on "lost" (re-placing its sessions) must hear about it before the worker vanishes.
  EXPECT_TRUE(workers_.Register(Registration("w1"), kT0).ok());
  const absl::Time much_later = kT0 + absl::Hours(5);
  EXPECT_THAT(workers_.SweepLost(much_later), UnorderedElementsAre("w1"));
  EXPECT_EQ(StateOf("w1"), v1::WORKER_STATE_LOST);
  EXPECT_EQ(metrics_.workers_lost->Value(), 1.0);
  EXPECT_THAT(workers_.SweepLost(much_later + absl::Seconds(1)), IsEmpty());
  EXPECT_THAT(workers_.List(), IsEmpty());
  EXPECT_EQ(metrics_.workers_forgotten->Value(), 1.0);
}

}  // namespace
}  // namespace latchkey::control
