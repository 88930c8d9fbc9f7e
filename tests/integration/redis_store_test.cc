// The shared store on a real redis-server: RedisBindingStore keeps every rule the in-memory store
// keeps (the same contract suite), and two latchkey-control processes on one Redis serve the same
// bindings, which outlive a control restart.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "latchkey/v1/nat_control.grpc.pb.h"
#include "services/control/store/redis/fcall.h"
#include "services/control/store/redis/redis_binding_store.h"
#include "services/control/store/redis/redis_session_store.h"
#include "services/control/store/redis/redis_worker_store.h"
#include "services/control/store/redis/redis_client.h"
#include "tests/integration/support/cluster.h"
#include "tests/integration/support/redis_servers.h"
#include "tests/unit/services/control/store/binding_store_contract.h"
#include "tests/unit/services/control/store/session_store_contract.h"
#include "tests/unit/services/control/store/worker_store_contract.h"

namespace latchkey::control::contract {
namespace {

using ::latchkey::testing::LocalControl;
using ::latchkey::testing::RedisMissingReason;
using ::latchkey::testing::RedisServer;

// One redis-server and one client for the whole binary; each test gets keys of its own prefix.
struct SharedRedis {
  std::unique_ptr<RedisServer> server;
  std::unique_ptr<redis::RedisClient> client;
  std::string error;
  int next_prefix = 0;
};

SharedRedis& Shared() {
  static SharedRedis* shared = [] {
    auto* s = new SharedRedis();
    if (!RedisMissingReason().empty()) return s;
    auto server = RedisServer::Start();
    if (!server.ok()) {
      s->error = server.status().ToString();
      return s;
    }
    s->server = *std::move(server);
    redis::RedisClientOptions options;
    options.target = *redis::ParseRedisTarget(absl::StrCat("redis://127.0.0.1:", s->server->port()));
    options.on_connected = redis::LoadFunctionsOnConnect;
    auto client = redis::RedisClient::Start(std::move(options));
    if (!client.ok()) {
      s->error = client.status().ToString();
      return s;
    }
    s->client = *std::move(client);
    return s;
  }();
  return *shared;
}

std::string SkipReason() {
  if (std::string missing = RedisMissingReason(); !missing.empty()) return "redis: " + missing;
  return "";
}

std::unique_ptr<BindingStore> MakeRedisStore(uint64_t log_length) {
  SharedRedis& shared = Shared();
  if (!shared.client) {
    ADD_FAILURE() << "redis: " << shared.error;
    return nullptr;
  }
  return std::make_unique<redis::RedisBindingStore>(shared.client.get(), absl::StrCat("t", shared.next_prefix++, ":"),
                                                    log_length);
}

INSTANTIATE_TEST_SUITE_P(Redis, BindingStoreContract,
                         ::testing::Values(BindingStoreFactory{"redis", MakeRedisStore, SkipReason}),
                         [](const ::testing::TestParamInfo<BindingStoreFactory>& info) { return info.param.name; });

std::unique_ptr<SessionStore> MakeRedisSessionStore(uint64_t log_length) {
  SharedRedis& shared = Shared();
  if (!shared.client) {
    ADD_FAILURE() << "redis: " << shared.error;
    return nullptr;
  }
  return std::make_unique<redis::RedisSessionStore>(shared.client.get(), absl::StrCat("t", shared.next_prefix++, ":"),
                                                    log_length);
}

}  // namespace
}  // namespace latchkey::control::contract

namespace latchkey::control::session_contract {
namespace {

INSTANTIATE_TEST_SUITE_P(Redis, SessionStoreContract,
                         ::testing::Values(SessionStoreFactory{"redis", contract::MakeRedisSessionStore,
                                                               contract::SkipReason}),
                         [](const ::testing::TestParamInfo<SessionStoreFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace latchkey::control::session_contract

namespace latchkey::control::worker_contract {
namespace {

std::unique_ptr<WorkerStore> MakeRedisWorkerStore() {
  contract::SharedRedis& shared = contract::Shared();
  if (!shared.client) {
    ADD_FAILURE() << "redis: " << shared.error;
    return nullptr;
  }
  return std::make_unique<redis::RedisWorkerStore>(shared.client.get(), absl::StrCat("t", shared.next_prefix++, ":"));
}

std::unique_ptr<Lease> MakeRedisLease() {
  contract::SharedRedis& shared = contract::Shared();
  if (!shared.client) return nullptr;
  return std::make_unique<redis::RedisLease>(shared.client.get(), absl::StrCat("t", shared.next_prefix++, ":"), "leader");
}

INSTANTIATE_TEST_SUITE_P(Redis, WorkerStoreContract,
                         ::testing::Values(WorkerStoreFactory{"redis", MakeRedisWorkerStore, MakeRedisLease,
                                                              contract::SkipReason, /*lease_uses_real_time=*/true}),
                         [](const ::testing::TestParamInfo<WorkerStoreFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace latchkey::control::worker_contract

namespace latchkey::control::contract {
namespace {

// --- Two control processes on one Redis.

v1::AllocateBindingRequest Register(const std::string& user, int source_port) {
  v1::AllocateBindingRequest request;
  request.set_aor(absl::StrCat("sip:", user, "@example.com"));
  request.set_contact(absl::StrCat("<sip:", user, "@192.168.1.10:5060>"));
  request.set_transport(v1::TRANSPORT_UDP);
  request.mutable_source()->set_ip("203.0.113.5");
  request.mutable_source()->set_port(source_port);
  request.mutable_registrar()->set_ip("127.0.0.1");
  request.mutable_registrar()->set_port(5060);
  request.mutable_expires()->set_seconds(3600);
  return request;
}

class RedisReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string reason = SkipReason(); !reason.empty()) GTEST_SKIP() << reason;
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    redis_ = *std::move(server);
  }
  std::unique_ptr<LocalControl> StartControl() {
    auto control = LocalControl::Start(absl::StrCat("store: \"redis://127.0.0.1:", redis_->port(), "\""));
    EXPECT_TRUE(control.ok()) << control.status();
    return control.ok() ? *std::move(control) : nullptr;
  }
  std::unique_ptr<RedisServer> redis_;
};

TEST_F(RedisReplicasTest, ABindingWrittenThroughOneReplicaIsServedByTheOther) {
  auto a = StartControl();
  auto b = StartControl();
  ASSERT_TRUE(a && b);
  auto pbx_a = a->Stub(auth::Role::kPbx, "pbx-a");
  auto pbx_b_on_b = b->Stub(auth::Role::kPbx, "pbx-a");
  auto other_pbx = b->Stub(auth::Role::kPbx, "pbx-b");

  v1::AllocateBindingResponse created;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(pbx_a->AllocateBinding(&context, Register("alice", 40000), &created).ok());
  }
  EXPECT_TRUE(created.created());
  const std::string id = created.binding().binding_id();

  // Read and refreshed (from a new source) through the other replica: the same binding.
  v1::GetBindingResponse got;
  {
    grpc::ClientContext context;
    v1::GetBindingRequest get;
    get.set_binding_id(id);
    ASSERT_TRUE(pbx_b_on_b->GetBinding(&context, get, &got).ok());
  }
  EXPECT_EQ(got.binding().aor(), "sip:alice@example.com");
  EXPECT_EQ(got.binding().version(), 1u);
  v1::AllocateBindingResponse refreshed;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(pbx_b_on_b->AllocateBinding(&context, Register("alice", 40001), &refreshed).ok());
  }
  EXPECT_FALSE(refreshed.created());
  EXPECT_TRUE(refreshed.source_changed());
  EXPECT_EQ(refreshed.binding().binding_id(), id);
  EXPECT_EQ(refreshed.binding().version(), 2u);
  EXPECT_EQ(refreshed.binding().source_changes(), 1u);

  // Another PBX sees nothing of it on either replica.
  {
    grpc::ClientContext context;
    v1::GetBindingRequest get;
    get.set_binding_id(id);
    v1::GetBindingResponse ignored;
    EXPECT_EQ(other_pbx->GetBinding(&context, get, &ignored).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    v1::ListBindingsResponse listed;
    ASSERT_TRUE(other_pbx->ListBindings(&context, v1::ListBindingsRequest(), &listed).ok());
    EXPECT_EQ(listed.bindings_size(), 0);
  }

  // Released through B: gone on A.
  {
    grpc::ClientContext context;
    v1::ReleaseBindingRequest release;
    release.set_binding_id(id);
    v1::ReleaseBindingResponse released;
    ASSERT_TRUE(pbx_b_on_b->ReleaseBinding(&context, release, &released).ok());
  }
  {
    grpc::ClientContext context;
    v1::GetBindingRequest get;
    get.set_binding_id(id);
    v1::GetBindingResponse ignored;
    EXPECT_EQ(pbx_a->GetBinding(&context, get, &ignored).error_code(), grpc::StatusCode::NOT_FOUND);
  }
}

TEST_F(RedisReplicasTest, BindingsOutliveAControlKilledAndStartedAgain) {
  auto control = StartControl();
  ASSERT_TRUE(control);
  std::string id;
  {
    auto pbx = control->Stub(auth::Role::kPbx, "pbx-a");
    grpc::ClientContext context;
    v1::AllocateBindingResponse created;
    ASSERT_TRUE(pbx->AllocateBinding(&context, Register("bob", 41000), &created).ok());
    id = created.binding().binding_id();
  }
  control->process().Stop(SIGKILL);
  control.reset();

  auto again = StartControl();
  ASSERT_TRUE(again);
  auto pbx = again->Stub(auth::Role::kPbx, "pbx-a");
  grpc::ClientContext context;
  v1::AllocateBindingResponse refreshed;
  ASSERT_TRUE(pbx->AllocateBinding(&context, Register("bob", 41000), &refreshed).ok());
  EXPECT_FALSE(refreshed.created());
  EXPECT_EQ(refreshed.binding().binding_id(), id);
}

TEST_F(RedisReplicasTest, RedisDownAnswersUnavailableFastAndRecovers) {
  auto control = StartControl();
  ASSERT_TRUE(control);
  auto pbx = control->Stub(auth::Role::kPbx, "pbx-a");
  redis_->Pause();
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::AllocateBindingResponse response;
    const absl::Time started = absl::Now();
    grpc::Status status = pbx->AllocateBinding(&context, Register("carol", 42000), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
    EXPECT_LT(absl::Now() - started, absl::Seconds(2));
  }
  // A server that stops answering is a timeout, counted.
  EXPECT_TRUE(::latchkey::testing::WaitFor(
      [&] {
        return ::latchkey::testing::MetricValue(control->Metrics(),
                                                "latchkey_redis_connection_events_total{event=\"timeout\"}") >= 1;
      },
      absl::Seconds(3)));
  redis_->Resume();
  bool recovered = false;
  for (int i = 0; i < 100 && !recovered; ++i) {
    grpc::ClientContext context;
    v1::AllocateBindingResponse response;
    recovered = pbx->AllocateBinding(&context, Register("carol", 42000), &response).ok();
    if (!recovered) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(recovered);
}

// The failover case at control level: a primary killed under a steady AllocateBinding load.
// Writes are refused (UNAVAILABLE, never OK-then-lost) until Sentinel promotes a replica; every
// binding acknowledged before, during or after is there afterwards.
TEST(RedisFailoverTest, KillNinePrimaryUnderLoadLosesNoAcknowledgedBinding) {
  if (std::string reason = SkipReason(); !reason.empty()) GTEST_SKIP() << reason;
  ::latchkey::testing::RedisHaOptions options;
  options.replicas = 2;
  options.server_args = {"--min-replicas-to-write", "1", "--min-replicas-max-lag", "2"};
  auto ha = ::latchkey::testing::RedisHa::Start(options);
  ASSERT_TRUE(ha.ok()) << ha.status();
  auto control = LocalControl::Start(absl::StrCat("store: \"", (*ha)->Target(), "\""));
  ASSERT_TRUE(control.ok()) << control.status();
  auto pbx = (*control)->Stub(auth::Role::kPbx, "pbx-a");

  struct Acked {
    std::string aor;
    std::string binding_id;
  };
  std::vector<Acked> acked;
  size_t refused = 0;
  absl::Time first_refusal = absl::InfinitePast();
  absl::Time recovered_at = absl::InfinitePast();
  bool killed = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (int phone = 0; phone < 400 && absl::Now() < deadline; ++phone) {
    if (phone == 100) {
      (*ha)->server(0).Kill();
      killed = true;
    }
    // Each REGISTER is retried until acknowledged, as a PBX's client would.
    while (absl::Now() < deadline) {
      grpc::ClientContext context;
      v1::AllocateBindingResponse response;
      grpc::Status status = pbx->AllocateBinding(&context, Register(absl::StrCat("u", phone), 40000 + phone), &response);
      if (status.ok()) {
        if (killed && first_refusal != absl::InfinitePast() && recovered_at == absl::InfinitePast()) {
          recovered_at = absl::Now();
        }
        acked.push_back({response.binding().aor(), response.binding().binding_id()});
        break;
      }
      ASSERT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
      ++refused;
      if (first_refusal == absl::InfinitePast()) first_refusal = absl::Now();
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  ASSERT_EQ(acked.size(), 400u) << "gave up after " << refused << " refusals\n" << (*ha)->Logs();
  ASSERT_NE(first_refusal, absl::InfinitePast()) << "the kill was never noticed";
  ASSERT_NE(recovered_at, absl::InfinitePast());
  std::printf("failover: writes refused for %.2f s (%zu refusals)\n",
              absl::ToDoubleSeconds(recovered_at - first_refusal), refused);
  EXPECT_LT(recovered_at - first_refusal, absl::Seconds(15));

  size_t missing = 0;
  for (const Acked& a : acked) {
    grpc::ClientContext context;
    v1::GetBindingRequest get;
    get.set_binding_id(a.binding_id);
    v1::GetBindingResponse got;
    grpc::Status status = pbx->GetBinding(&context, get, &got);
    if (!status.ok() || got.binding().aor() != a.aor) ++missing;
  }
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged bindings";
  // The failover is counted: the connection to the killed primary was lost, then one to another.
  const std::string metrics = (*control)->Metrics();
  EXPECT_GE(::latchkey::testing::MetricValue(metrics, "latchkey_redis_connection_events_total{event=\"failover\"}"), 1)
      << metrics;
  EXPECT_GE(::latchkey::testing::MetricValue(metrics, "latchkey_redis_connection_events_total{event=\"dropped\"}"), 1);
  EXPECT_GE(::latchkey::testing::MetricValue(metrics, "latchkey_redis_connection_events_total{event=\"connected\"}"), 2);
}

}  // namespace
}  // namespace latchkey::control::contract
