#include "services/control/bindings/binding_manager.h"

#include <atomic>
#include <functional>
#include <thread>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/time/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "services/control/store/memory_binding_store.h"

namespace latchkey::control {
namespace {

const grpcutil::Caller kLocal = grpcutil::Caller::Local();

using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
constexpr char kRegistrarIp[] = "198.51.100.1";

// Delegates to a MemoryBindingStore and counts the calls, to show what a sweep touches.
class CountingStore : public BindingStore {
 public:
  absl::StatusOr<BindingChange> Upsert(const BindingIdentity& identity, const v1::Binding& candidate,
                                       const BindingLimits& limits) override {
    ++writes;
    return inner.Upsert(identity, candidate, limits);
  }
  absl::StatusOr<v1::Binding> RemoveIdentity(const BindingIdentity& identity) override {
    ++writes;
    return inner.RemoveIdentity(identity);
  }
  absl::StatusOr<v1::Binding> Remove(const std::string& binding_id, const std::optional<std::string>& owner) override {
    ++writes;
    return inner.Remove(binding_id, owner);
  }
  absl::StatusOr<v1::Binding> Get(const std::string& binding_id) override {
    ++reads;
    return inner.Get(binding_id);
  }
  absl::StatusOr<std::optional<v1::Binding>> SetReachability(const std::string& binding_id,
                                                             v1::Reachability reachability) override {
    ++writes;
    return inner.SetReachability(binding_id, reachability);
  }
  absl::StatusOr<BindingPage> List(const BindingFilter& filter, const std::string& cursor, size_t limit) override {
    ++reads;
    return inner.List(filter, cursor, limit);
  }
  absl::StatusOr<std::vector<v1::Binding>> TakeExpired(absl::Time now, size_t limit) override {
    auto out = inner.TakeExpired(now, limit);
    if (out.ok()) taken += out->size();
    return out;
  }
  absl::StatusOr<uint64_t> Count() override { return inner.Count(); }
  absl::StatusOr<std::string> LogTail() override { return inner.LogTail(); }
  absl::StatusOr<LogPage<BindingLogEntry>> ReadLog(const std::string& after, size_t limit) override {
    return inner.ReadLog(after, limit);
  }

  size_t size() { return inner.Count().value_or(0); }
  void ResetCounters() { writes = reads = taken = 0; }

  MemoryBindingStore inner;
  size_t writes = 0, reads = 0, taken = 0;
};

v1::SocketAddress Address(const std::string& ip, uint32_t port) {
  v1::SocketAddress address;
  address.set_ip(ip);
  address.set_port(port);
  return address;
}

// A phone behind NAT: private Contact host, public source.
v1::AllocateBindingRequest NatRequest(const std::string& user = "alice", int64_t expires_seconds = 3600) {
  v1::AllocateBindingRequest request;
  request.set_aor(absl::StrCat("sip:", user, "@example.com"));
  request.set_contact(absl::StrCat("<sip:", user, "@192.168.1.10:5060>"));
  request.set_transport(v1::TRANSPORT_UDP);
  *request.mutable_source() = Address("203.0.113.5", 40000);
  *request.mutable_registrar() = Address(kRegistrarIp, 5060);
  request.mutable_expires()->set_seconds(expires_seconds);
  request.set_user_agent("TestPhone/1.0");
  return request;
}

// A phone with a public address that matches where it sends from.
v1::AllocateBindingRequest PublicRequest(const std::string& user = "bob", int64_t expires_seconds = 3600) {
  v1::AllocateBindingRequest request;
  request.set_aor(absl::StrCat("sip:", user, "@example.com"));
  request.set_contact(absl::StrCat("<sip:", user, "@203.0.113.6:5060>"));
  request.set_transport(v1::TRANSPORT_UDP);
  *request.mutable_source() = Address("203.0.113.6", 5060);
  *request.mutable_registrar() = Address(kRegistrarIp, 5060);
  request.mutable_expires()->set_seconds(expires_seconds);
  return request;
}

v1::RegisterWorkerRequest WorkerWithKeepaliveIp(const std::string& id, const std::string& ip) {
  v1::RegisterWorkerRequest request;
  request.set_worker_id(id);
  request.set_grpc_address("127.0.0.1:1");  // never dialled
  request.add_keepalive_source_ips(ip);
  request.mutable_load()->set_max_sessions(100);
  request.mutable_load()->set_free_ports(1000);
  request.mutable_load()->set_total_ports(1000);
  return request;
}

class BindingManagerTest : public ::testing::Test {
 protected:
  BindingManagerTest()
      : detector_(NatDetector::Create({}).value()),
        metrics_(registry_),
        workers_(WorkerRegistryOptions{}, &metrics_) {
    Reset(BindingManagerOptions{});
  }

  void Reset(BindingManagerOptions options) {
    options.grace = absl::Seconds(30);
    manager_ = std::make_unique<BindingManager>(options, &store_, &detector_, &workers_, &metrics_, nullptr,
                                                [this] { return now_; });
  }

  v1::AllocateBindingResponse MustAllocate(const v1::AllocateBindingRequest& request) {
    auto response = manager_->Allocate(request, kLocal);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::AllocateBindingResponse();
  }

  // Watchers' events from here on: Drain returns those logged since the last call.
  void Watch() { log_position_ = store_.LogTail().value(); }
  std::vector<v1::WatchBindingsResponse> Drain() {
    std::vector<v1::WatchBindingsResponse> out;
    auto page = store_.ReadLog(log_position_, 10'000);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) return out;
    for (const auto& entry : page->entries) {
      auto event = manager_->EventOf(entry.value);
      EXPECT_TRUE(event.ok()) << event.status();
      if (event.ok()) out.push_back(*std::move(event));
    }
    log_position_ = page->next;
    return out;
  }

  absl::Time now_ = kT0;
  CountingStore store_;
  NatDetector detector_;
  prometheus::Registry registry_;
  ControlMetrics metrics_;
  WorkerRegistry workers_;
  std::string log_position_;
  std::unique_ptr<BindingManager> manager_;
};

TEST_F(BindingManagerTest, NatBindingGetsShortExpiryPlusGrace) {
  auto response = MustAllocate(NatRequest());
  EXPECT_TRUE(response.created());
  EXPECT_EQ(response.suggested_expires().seconds(), 60);
  const v1::Binding& binding = response.binding();
  EXPECT_EQ(binding.verdict().state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_EQ(FromProto(binding.expires()), absl::Seconds(60));
  EXPECT_EQ(FromProto(binding.expires_at()), kT0 + absl::Seconds(90));
  EXPECT_EQ(FromProto(binding.created_at()), kT0);
  EXPECT_EQ(FromProto(binding.refreshed_at()), kT0);
  EXPECT_THAT(binding.effective_contact(), HasSubstr("203.0.113.5:40000"));
  EXPECT_EQ(metrics_.bindings_behind_nat->Value(), 1.0);
  EXPECT_EQ(metrics_.binding_created->Value(), 1.0);
}

TEST_F(BindingManagerTest, RefreshAfterTheSweepTookTheBindingCreatesANewOne) {
  const auto created = MustAllocate(NatRequest());  // expires at kT0 + 60 s + 30 s grace
  Watch();
  now_ = kT0 + absl::Seconds(100);
  EXPECT_EQ(manager_->SweepExpired(), 1u);
  const auto again = MustAllocate(NatRequest());
  EXPECT_TRUE(again.created());
  EXPECT_NE(again.binding().binding_id(), created.binding().binding_id());
  auto events = Drain();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type(), v1::BINDING_EVENT_TYPE_EXPIRED);
  EXPECT_EQ(events[1].type(), v1::BINDING_EVENT_TYPE_CREATED);
  EXPECT_EQ(store_.size(), 1u);
}

// Two control replicas on one store: neither holds a lock of its own, the store's atomic operations
// keep one binding per identity and expire each binding once.
TEST_F(BindingManagerTest, ReplicasSharingTheStoreMakeOneBindingPerIdentityAndExpireItOnce) {
  BindingManager other(BindingManagerOptions{}, &store_, &detector_, &workers_, &metrics_, nullptr,
                       [this] { return now_; });
  constexpr int kPhones = 50;
  constexpr int kRounds = 20;
  std::atomic<int> failures{0};
  auto refresh_all = [&](BindingManager* manager) {
    for (int round = 0; round < kRounds; ++round) {
      for (int i = 0; i < kPhones; ++i) {
        if (!manager->Allocate(NatRequest(absl::StrCat("p", i)), kLocal).ok()) ++failures;
      }
    }
  };
  std::thread a(refresh_all, manager_.get());
  std::thread b(refresh_all, &other);
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store_.size(), static_cast<size_t>(kPhones));
  for (int i = 0; i < kPhones; ++i) {
    auto page = store_.inner.List(BindingFilter{std::string(), absl::StrCat("sip:p", i, "@example.com")}, "", 10);
    ASSERT_TRUE(page.ok());
    ASSERT_EQ(page->bindings.size(), 1u);
    EXPECT_EQ(page->bindings[0].version(), static_cast<uint64_t>(2 * kRounds));  // every refresh counted once
  }
  now_ = kT0 + absl::Seconds(100);
  size_t swept = 0;
  std::thread sweep_a([&] { swept += manager_->SweepExpired(); });
  const size_t swept_b = other.SweepExpired();
  sweep_a.join();
  EXPECT_EQ(swept + swept_b, static_cast<size_t>(kPhones));
  EXPECT_EQ(store_.size(), 0u);
}

TEST_F(BindingManagerTest, PublicBindingKeepsRequestedExpiry) {
  auto response = MustAllocate(PublicRequest());
  EXPECT_EQ(response.binding().verdict().state(), v1::NAT_STATE_NOT_BEHIND_NAT);
  EXPECT_EQ(response.suggested_expires().seconds(), 3600);
  EXPECT_EQ(FromProto(response.binding().expires_at()), kT0 + absl::Seconds(3630));
  EXPECT_EQ(response.binding().keepalive().method(), v1::KEEPALIVE_METHOD_NONE);
}

TEST_F(BindingManagerTest, SweepRemovesExactlyTheExpiredBindingAtExpiryPlusGrace) {
  Watch();
  const v1::Binding nat = MustAllocate(NatRequest()).binding();
  const v1::Binding pub = MustAllocate(PublicRequest()).binding();
  Drain();
  ASSERT_EQ(store_.size(), 2u);

  now_ = kT0 + absl::Seconds(89);
  EXPECT_EQ(manager_->SweepExpired(), 0u);
  EXPECT_EQ(store_.size(), 2u);
  EXPECT_TRUE(Drain().empty());

  now_ = kT0 + absl::Seconds(90);
  EXPECT_EQ(manager_->SweepExpired(), 1u);
  EXPECT_EQ(store_.size(), 1u);
  EXPECT_EQ(manager_->Get(nat.binding_id(), kLocal).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(manager_->Get(pub.binding_id(), kLocal).ok());

  auto events = Drain();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type(), v1::BINDING_EVENT_TYPE_EXPIRED);
  EXPECT_EQ(events[0].binding().binding_id(), nat.binding_id());
  // Stamped by the store as it logs the change (a shared store's clock, not a replica's).
  EXPECT_LT(absl::AbsDuration(absl::Now() - FromProto(events[0].time())), absl::Seconds(10));
  // The event carries the whole binding, derived fields included.
  EXPECT_EQ(events[0].binding().effective_contact(), nat.effective_contact());
  EXPECT_EQ(events[0].binding().keepalive().note(), nat.keepalive().note());
  EXPECT_FALSE(events[0].binding().keepalive().note().empty());
  EXPECT_EQ(metrics_.binding_expired->Value(), 1.0);
  EXPECT_EQ(metrics_.bindings_behind_nat->Value(), 0.0);
  EXPECT_EQ(metrics_.bindings_not_behind_nat->Value(), 1.0);

  // Nothing more to do.
  EXPECT_EQ(manager_->SweepExpired(), 0u);

  // The identity index went with it: the same AOR+contact makes a new binding.
  auto again = MustAllocate(NatRequest());
  EXPECT_TRUE(again.created());
  EXPECT_NE(again.binding().binding_id(), nat.binding_id());
  EXPECT_EQ(store_.size(), 2u);
}

TEST_F(BindingManagerTest, RefreshPushesExpiryForward) {
  const v1::Binding first = MustAllocate(NatRequest()).binding();
  now_ = kT0 + absl::Seconds(50);
  auto refreshed = MustAllocate(NatRequest());
  EXPECT_FALSE(refreshed.created());
  EXPECT_FALSE(refreshed.source_changed());
  EXPECT_EQ(refreshed.binding().binding_id(), first.binding_id());
  EXPECT_EQ(FromProto(refreshed.binding().created_at()), kT0);
  EXPECT_EQ(FromProto(refreshed.binding().refreshed_at()), now_);
  EXPECT_EQ(FromProto(refreshed.binding().expires_at()), kT0 + absl::Seconds(140));
  EXPECT_EQ(store_.size(), 1u);
  EXPECT_EQ(metrics_.bindings_behind_nat->Value(), 1.0);
  EXPECT_EQ(metrics_.binding_refreshed->Value(), 1.0);

  // The old expiry (T0+90) no longer applies.
  now_ = kT0 + absl::Seconds(100);
  EXPECT_EQ(manager_->SweepExpired(), 0u);
  EXPECT_TRUE(manager_->Get(first.binding_id(), kLocal).ok());

  now_ = kT0 + absl::Seconds(140);
  EXPECT_EQ(manager_->SweepExpired(), 1u);
  EXPECT_EQ(manager_->Get(first.binding_id(), kLocal).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BindingManagerTest, RefreshFromNewSourceIsReportedAsSourceChange) {
  Watch();
  MustAllocate(NatRequest());
  v1::AllocateBindingRequest moved = NatRequest();
  moved.mutable_source()->set_port(40001);
  auto refreshed = MustAllocate(moved);
  EXPECT_FALSE(refreshed.created());
  EXPECT_TRUE(refreshed.source_changed());
  EXPECT_EQ(refreshed.binding().source_changes(), 1u);
  auto events = Drain();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type(), v1::BINDING_EVENT_TYPE_CREATED);
  EXPECT_EQ(events[1].type(), v1::BINDING_EVENT_TYPE_SOURCE_CHANGED);
}

TEST_F(BindingManagerTest, InstanceIdIdentifiesTheBindingAcrossContactChanges) {
  v1::AllocateBindingRequest first = NatRequest();
  first.set_contact("<sip:alice@192.168.1.10:5060>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000000000001>\"");
  auto created = MustAllocate(first);
  EXPECT_EQ(created.binding().instance_id(), "urn:uuid:00000000-0000-1000-8000-000000000001");

  v1::AllocateBindingRequest moved = first;
  moved.set_contact("<sip:alice@192.168.1.77:5062>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000000000001>\"");
  auto refreshed = MustAllocate(moved);
  EXPECT_FALSE(refreshed.created());
  EXPECT_EQ(refreshed.binding().binding_id(), created.binding().binding_id());
  EXPECT_EQ(refreshed.binding().contact(), moved.contact());
  EXPECT_EQ(store_.size(), 1u);
  auto got = manager_->Get(created.binding().binding_id(), kLocal);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->instance_id(), "urn:uuid:00000000-0000-1000-8000-000000000001");
}

TEST_F(BindingManagerTest, MaxBindingsRejectsNewButAllowsRefresh) {
  BindingManagerOptions options;
  options.max_bindings = 2;
  Reset(options);
  const v1::Binding a = MustAllocate(NatRequest("a")).binding();
  MustAllocate(NatRequest("b"));

  auto third = manager_->Allocate(NatRequest("c"), kLocal);
  ASSERT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_THAT(std::string(third.status().message()), HasSubstr("2"));
  EXPECT_EQ(store_.size(), 2u);

  now_ = kT0 + absl::Seconds(10);
  auto refresh = manager_->Allocate(NatRequest("a"), kLocal);
  ASSERT_TRUE(refresh.ok()) << refresh.status();
  EXPECT_FALSE(refresh->created());
  EXPECT_EQ(refresh->binding().binding_id(), a.binding_id());
  EXPECT_EQ(store_.size(), 2u);
}

TEST_F(BindingManagerTest, UnregisterRemovesBinding) {
  const v1::Binding binding = MustAllocate(NatRequest()).binding();
  auto removed = manager_->Allocate(NatRequest("alice", 0), kLocal);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(removed->binding().binding_id(), binding.binding_id());
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(metrics_.bindings_behind_nat->Value(), 0.0);
  EXPECT_EQ(manager_->Allocate(NatRequest("alice", 0), kLocal).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BindingManagerTest, TcpBindingHasNoKeepaliveAndMentionsRfc5626) {
  v1::AllocateBindingRequest request = NatRequest();
  request.set_transport(v1::TRANSPORT_TCP);
  ASSERT_TRUE(workers_.Register(WorkerWithKeepaliveIp("w1", kRegistrarIp), kT0).ok());
  auto response = MustAllocate(request);
  EXPECT_EQ(response.binding().verdict().state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_EQ(response.binding().keepalive().method(), v1::KEEPALIVE_METHOD_NONE);
  EXPECT_EQ(response.binding().keepalive().worker_id(), "");
  EXPECT_THAT(response.binding().keepalive().note(), HasSubstr("RFC 5626"));
}

TEST_F(BindingManagerTest, NatUdpBindingWithoutKeepaliveWorker) {
  auto response = MustAllocate(NatRequest());
  const v1::KeepalivePlan& plan = response.binding().keepalive();
  EXPECT_EQ(plan.method(), v1::KEEPALIVE_METHOD_OPTIONS);
  EXPECT_EQ(plan.worker_id(), "");
  EXPECT_EQ(plan.interval().seconds(), 30);
  EXPECT_EQ(plan.failure_threshold(), 3u);
  EXPECT_THAT(plan.note(), HasSubstr(kRegistrarIp));
}

TEST_F(BindingManagerTest, NatUdpBindingAssignedToWorkerThatCanSendFromRegistrarIp) {
  EXPECT_TRUE(workers_.Register(WorkerWithKeepaliveIp("w-other", "192.0.2.200"), kT0).ok());
  EXPECT_TRUE(workers_.Register(WorkerWithKeepaliveIp("w-reg", kRegistrarIp), kT0).ok());
  auto response = MustAllocate(NatRequest());
  const v1::KeepalivePlan& plan = response.binding().keepalive();
  EXPECT_EQ(plan.method(), v1::KEEPALIVE_METHOD_OPTIONS);
  EXPECT_EQ(plan.worker_id(), "w-reg");
  EXPECT_THAT(plan.note(), HasSubstr("w-reg"));
  // Stored that way too.
  auto stored = manager_->Get(response.binding().binding_id(), kLocal);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->keepalive().worker_id(), "w-reg");
  EXPECT_EQ(stored->effective_contact(), response.binding().effective_contact());
  EXPECT_EQ(stored->keepalive().note(), plan.note());
}

TEST_F(BindingManagerTest, SweepOfManyBindingsTouchesOnlyTheExpired) {
  constexpr int kTotal = 10'000;
  constexpr int kExpiring = 10;
  for (int i = 0; i < kExpiring; ++i) MustAllocate(NatRequest(absl::StrCat("nat", i)));  // expire at T0+90
  for (int i = 0; i < kTotal - kExpiring; ++i) {
    auto response = manager_->Allocate(PublicRequest(absl::StrCat("pub", i)), kLocal);  // expire at T0+3630
    ASSERT_TRUE(response.ok()) << response.status();
  }
  ASSERT_EQ(store_.size(), static_cast<size_t>(kTotal));
  Watch();

  store_.ResetCounters();
  now_ = kT0 + absl::Seconds(100);
  EXPECT_EQ(manager_->SweepExpired(), static_cast<size_t>(kExpiring));
  EXPECT_EQ(store_.size(), static_cast<size_t>(kTotal - kExpiring));
  EXPECT_EQ(store_.taken, static_cast<size_t>(kExpiring));
  // One atomic take of what expired; no per-binding reads or writes, nothing for the others.
  EXPECT_EQ(store_.reads, 0u);
  EXPECT_EQ(store_.writes, 0u);

  auto events = Drain();
  ASSERT_EQ(events.size(), static_cast<size_t>(kExpiring));
  for (const auto& event : events) {
    EXPECT_EQ(event.type(), v1::BINDING_EVENT_TYPE_EXPIRED);
    EXPECT_THAT(event.binding().aor(), HasSubstr("sip:nat"));
  }
  EXPECT_EQ(metrics_.bindings_behind_nat->Value(), 0.0);
  EXPECT_EQ(metrics_.bindings_not_behind_nat->Value(), static_cast<double>(kTotal - kExpiring));
}

TEST_F(BindingManagerTest, InvalidRequestsNameTheField) {
  v1::AllocateBindingRequest no_aor = NatRequest();
  no_aor.clear_aor();
  auto status = manager_->Allocate(no_aor, kLocal).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("aor"));

  v1::AllocateBindingRequest no_transport = NatRequest();
  no_transport.set_transport(v1::TRANSPORT_UNSPECIFIED);
  status = manager_->Allocate(no_transport, kLocal).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("transport"));

  v1::AllocateBindingRequest no_expires = NatRequest();
  no_expires.clear_expires();
  status = manager_->Allocate(no_expires, kLocal).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("expires"));
  EXPECT_EQ(store_.size(), 0u);
}

}  // namespace
}  // namespace latchkey::control
