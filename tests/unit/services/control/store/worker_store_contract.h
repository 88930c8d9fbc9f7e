#pragma once
// The rules every WorkerStore and Lease keep (services/control/store/worker_store.h, lease.h), as
// parameterized suites: instantiated for the in-memory ones (memory_worker_store_test.cc) and for
// Redis against a real redis-server (tests/integration/redis_store_test.cc).
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "gtest/gtest.h"
#include "common/time/proto_time.h"
#include "services/control/store/lease.h"
#include "services/control/store/worker_store.h"

namespace latchkey::control::worker_contract {

// Whole milliseconds: Redis keeps heartbeat times to the millisecond.
const absl::Time kT0 = absl::FromUnixMillis(1'700'000'000'000);

inline v1::RegisterWorkerRequest Registration(const std::string& id, bool draining = false) {
  v1::RegisterWorkerRequest request;
  request.set_worker_id(id);
  request.set_grpc_address("127.0.0.1:7410");
  request.add_advertised_ips("192.0.2.10");
  request.add_keepalive_source_ips("192.0.2.1");
  request.set_keepalive_mode(v1::KEEPALIVE_SOURCE_MODE_REGISTRAR_SOURCE);
  request.set_port_min(30000);
  request.set_port_max(30999);
  request.set_version("1.2.3");
  request.set_draining(draining);
  request.mutable_load()->set_sessions(4);
  request.mutable_load()->set_total_ports(1000);
  return request;
}

inline v1::HeartbeatRequest Beat(const std::string& id, const std::string& registration_id, uint32_t sessions = 5,
                                 bool draining = false) {
  v1::HeartbeatRequest request;
  request.set_worker_id(id);
  request.set_registration_id(registration_id);
  request.mutable_load()->set_sessions(sessions);
  request.set_draining(draining);
  return request;
}

struct WorkerStoreFactory {
  std::string name;
  std::function<std::unique_ptr<WorkerStore>()> make;
  // A fresh lease, empty, of its own name.
  std::function<std::unique_ptr<Lease>()> make_lease;
  std::function<std::string()> skip_reason = [] { return std::string(); };
  // Whether the lease keeps time itself (Redis: PX) rather than by the `now` it is given.
  bool lease_uses_real_time = false;
};
inline void PrintTo(const WorkerStoreFactory& factory, std::ostream* os) { *os << factory.name; }

class WorkerStoreContract : public ::testing::TestWithParam<WorkerStoreFactory> {
 protected:
  void SetUp() override {
    if (const std::string reason = GetParam().skip_reason(); !reason.empty()) GTEST_SKIP() << reason;
    store_ = GetParam().make();
    ASSERT_NE(store_, nullptr) << "no " << GetParam().name << " store";
  }
  std::unique_ptr<WorkerStore> store_;
};

TEST_P(WorkerStoreContract, RegisterStoresTheWholeRecordReady) {
  auto stored = store_->Register(Registration("w1"), "reg-1", kT0);
  ASSERT_TRUE(stored.ok()) << stored.status();
  auto list = store_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 1u);
  const WorkerRecord& r = (*list)[0];
  EXPECT_EQ(r.registration_id, "reg-1");
  EXPECT_EQ(r.worker.worker_id(), "w1");
  EXPECT_EQ(r.worker.grpc_address(), "127.0.0.1:7410");
  EXPECT_EQ(r.worker.advertised_ips(0), "192.0.2.10");
  EXPECT_EQ(r.worker.keepalive_source_ips(0), "192.0.2.1");
  EXPECT_EQ(r.worker.port_max(), 30999u);
  EXPECT_EQ(r.worker.version(), "1.2.3");
  EXPECT_EQ(r.worker.load().sessions(), 4u);
  EXPECT_EQ(r.worker.state(), v1::WORKER_STATE_READY);
  EXPECT_EQ(FromProto(r.worker.last_heartbeat()), kT0);
  EXPECT_EQ(FromProto(r.worker.registered_at()), kT0);
  EXPECT_EQ(stored->worker.SerializeAsString(), r.worker.SerializeAsString());
}

TEST_P(WorkerStoreContract, HeartbeatNeedsTheCurrentRegistration) {
  ASSERT_TRUE(store_->Register(Registration("w1"), "reg-1", kT0).ok());
  ASSERT_TRUE(store_->Register(Registration("w1"), "reg-2", kT0 + absl::Seconds(1)).ok());
  EXPECT_TRUE(absl::IsNotFound(store_->Heartbeat(Beat("w1", "reg-1"), kT0 + absl::Seconds(2)).status()));
  EXPECT_TRUE(absl::IsNotFound(store_->Heartbeat(Beat("w-unknown", "reg-2"), kT0 + absl::Seconds(2)).status()));
  auto beat = store_->Heartbeat(Beat("w1", "reg-2", 9), kT0 + absl::Seconds(2));
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_EQ(beat->worker.load().sessions(), 9u);
  EXPECT_EQ(FromProto(beat->worker.last_heartbeat()), kT0 + absl::Seconds(2));
  EXPECT_EQ(FromProto(beat->worker.registered_at()), kT0 + absl::Seconds(1));
}

TEST_P(WorkerStoreContract, OperatorDrainSurvivesReRegistrationAndIsKeptApartFromTheWorkers) {
  ASSERT_TRUE(store_->Register(Registration("w1"), "reg-1", kT0).ok());
  EXPECT_TRUE(absl::IsNotFound(store_->SetDrainRequested("w-unknown", true).status()));
  auto drained = store_->SetDrainRequested("w1", true);
  ASSERT_TRUE(drained.ok()) << drained.status();
  EXPECT_EQ(drained->worker.state(), v1::WORKER_STATE_DRAINING);
  auto again = store_->Register(Registration("w1"), "reg-2", kT0 + absl::Seconds(1));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->drain_requested);
  EXPECT_EQ(again->worker.state(), v1::WORKER_STATE_DRAINING);
  // The worker shutting down on its own stays draining when the operator undrains.
  ASSERT_TRUE(store_->Heartbeat(Beat("w1", "reg-2", 1, /*draining=*/true), kT0 + absl::Seconds(2)).ok());
  auto undrained = store_->SetDrainRequested("w1", false);
  ASSERT_TRUE(undrained.ok());
  EXPECT_EQ(undrained->worker.state(), v1::WORKER_STATE_DRAINING);
  auto beat = store_->Heartbeat(Beat("w1", "reg-2", 1, /*draining=*/false), kT0 + absl::Seconds(3));
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->worker.state(), v1::WORKER_STATE_READY);
}

TEST_P(WorkerStoreContract, OnlyOneMarkLostActsAndALostWorkerMustRegisterAgain) {
  ASSERT_TRUE(store_->Register(Registration("w1"), "reg-1", kT0).ok());
  auto early = store_->MarkLost("w1", kT0 + absl::Seconds(3), absl::Seconds(3));
  ASSERT_TRUE(early.ok());
  EXPECT_FALSE(*early) << "silent for exactly the limit is not lost yet";
  auto first = store_->MarkLost("w1", kT0 + absl::Seconds(4), absl::Seconds(3));
  auto second = store_->MarkLost("w1", kT0 + absl::Seconds(4), absl::Seconds(3));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_TRUE(*first);
  EXPECT_FALSE(*second);
  EXPECT_FALSE(*store_->MarkLost("w-unknown", kT0 + absl::Seconds(4), absl::Seconds(3)));
  EXPECT_TRUE(absl::IsNotFound(store_->Heartbeat(Beat("w1", "reg-1"), kT0 + absl::Seconds(5)).status()));
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].worker.state(), v1::WORKER_STATE_LOST);
  auto back = store_->Register(Registration("w1"), "reg-2", kT0 + absl::Seconds(6));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->worker.state(), v1::WORKER_STATE_READY);
}

TEST_P(WorkerStoreContract, ForgetTakesOnlyLongLostWorkers) {
  ASSERT_TRUE(store_->Register(Registration("w1"), "reg-1", kT0).ok());
  ASSERT_TRUE(store_->Register(Registration("w2"), "reg-2", kT0).ok());
  EXPECT_FALSE(*store_->Forget("w1", kT0 + absl::Hours(2), absl::Hours(1))) << "not lost";
  ASSERT_TRUE(*store_->MarkLost("w1", kT0 + absl::Seconds(4), absl::Seconds(3)));
  EXPECT_FALSE(*store_->Forget("w1", kT0 + absl::Minutes(30), absl::Hours(1))) << "lost, not long enough";
  EXPECT_TRUE(*store_->Forget("w1", kT0 + absl::Hours(2), absl::Hours(1)));
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].worker.worker_id(), "w2");
}

TEST_P(WorkerStoreContract, ListIsOrderedById) {
  for (const char* id : {"w-c", "w-a", "w-b"}) ASSERT_TRUE(store_->Register(Registration(id), "r", kT0).ok());
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].worker.worker_id(), "w-a");
  EXPECT_EQ((*list)[2].worker.worker_id(), "w-c");
}

TEST_P(WorkerStoreContract, LeaseHasOneHolderAndItsTokenGrowsWhenItChangesHands) {
  std::unique_ptr<Lease> lease = GetParam().make_lease();
  ASSERT_NE(lease, nullptr);
  const absl::Duration ttl = GetParam().lease_uses_real_time ? absl::Milliseconds(300) : absl::Seconds(5);
  auto a = lease->Acquire("a", kT0, ttl);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_GT(*a, 0u);
  EXPECT_EQ(*lease->Acquire("b", kT0 + absl::Seconds(1), ttl), 0u) << "held by a";
  EXPECT_EQ(*lease->Acquire("a", kT0 + absl::Seconds(1), ttl), *a) << "a renewal keeps the token";
  ASSERT_TRUE(lease->Release("b").ok());
  EXPECT_EQ(*lease->Acquire("b", kT0 + absl::Seconds(1), ttl), 0u) << "b cannot release a's lease";
  ASSERT_TRUE(lease->Release("a").ok());
  auto b = lease->Acquire("b", kT0 + absl::Seconds(1), ttl);
  ASSERT_TRUE(b.ok());
  EXPECT_GT(*b, *a);
  // b's lease lapses: a takes it under a newer token.
  if (GetParam().lease_uses_real_time) absl::SleepFor(ttl + absl::Milliseconds(100));
  auto a_again = lease->Acquire("a", kT0 + absl::Seconds(1) + ttl + absl::Milliseconds(1), ttl);
  ASSERT_TRUE(a_again.ok());
  EXPECT_GT(*a_again, *b);
}

}  // namespace latchkey::control::worker_contract
