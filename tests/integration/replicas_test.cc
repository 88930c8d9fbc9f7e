// Several latchkey-control replicas on one Redis, with real relays: what any replica writes, every
// replica serves and every watcher sees; workers are shared; one replica (the lease holder) tells
// relays which phones to ping, and a phone is pinged by one relay at a time even when a relay dies.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc/channel.h"
#include "common/time/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "latchkey/v1/nat_control.grpc.pb.h"
#include "tests/integration/support/cluster.h"
#include "tests/integration/support/phones.h"
#include "tests/integration/support/pki.h"
#include "tests/integration/support/process.h"
#include "tests/integration/support/redis_servers.h"
#include "tests/integration/support/udp_peer.h"
#include "tests/support/linearizability.h"

namespace latchkey {
namespace {

using ::latchkey::testing::LocalControl;
using ::latchkey::testing::LocalRelay;
using ::latchkey::testing::NatedPhone;
using ::latchkey::testing::Phones;
using ::latchkey::testing::Received;
using ::latchkey::testing::RedisServer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kConfig[] =
    "worker_heartbeat_interval { nanos: 200000000 } worker_lost_after_missed: 3 event_log_length: 20 "
    "nat_policies { name: \"test\" keepalive_interval { seconds: 1 } keepalive_failure_threshold: 3 }";

v1::AllocateBindingRequest Registration(const std::string& user, int source_port) {
  return NatedPhone(user, "127.0.0.1", static_cast<uint16_t>(source_port));
}

// Reads a WatchBindings stream on its own thread.
class Watcher {
 public:
  Watcher(v1::NatControlService::Stub& stub, const std::string& resume_token) {
    v1::WatchBindingsRequest request;
    request.set_resume_token(resume_token);
    reader_ = stub.WatchBindings(&context_, request);
    reader_->WaitForInitialMetadata();
    thread_ = std::thread([this] {
      v1::WatchBindingsResponse event;
      while (reader_->Read(&event)) {
        absl::MutexLock lock(&mu_);
        if (event.type() != v1::BINDING_EVENT_TYPE_UNSPECIFIED) events_.push_back(event);
      }
      grpc::Status status = reader_->Finish();
      absl::MutexLock lock(&mu_);
      status_ = status;
      done_ = true;
    });
  }
  ~Watcher() {
    context_.TryCancel();
    thread_.join();
  }
  // Waits up to 10 s for `n` events.
  std::vector<v1::WatchBindingsResponse> WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return events_.size() >= n || done_; };
    mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(10));
    return events_;
  }
  // The stream's status once it ended on its own (within 10 s).
  std::optional<grpc::Status> Ended() {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&done_), absl::Seconds(10));
    if (!done_) return std::nullopt;
    return status_;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::WatchBindingsResponse>> reader_;
  absl::Mutex mu_;
  std::vector<v1::WatchBindingsResponse> events_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string missing = testing::RedisMissingReason(); !missing.empty()) GTEST_SKIP() << "redis: " << missing;
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    redis_ = *std::move(server);
  }
  std::unique_ptr<LocalControl> StartControl() {
    auto control =
        LocalControl::Start(absl::StrCat(kConfig, " store: \"redis://127.0.0.1:", redis_->port(), "\""));
    EXPECT_TRUE(control.ok()) << control.status();
    return control.ok() ? *std::move(control) : nullptr;
  }
  static v1::AllocateBindingResponse Allocate(v1::NatControlService::Stub& stub,
                                              const v1::AllocateBindingRequest& request) {
    grpc::ClientContext context;
    v1::AllocateBindingResponse response;
    grpc::Status status = stub.AllocateBinding(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  std::unique_ptr<RedisServer> redis_;
};

std::vector<std::string> Summaries(const std::vector<v1::WatchBindingsResponse>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    out.push_back(absl::StrCat(absl::StripPrefix(v1::BindingEventType_Name(e.type()), "BINDING_EVENT_TYPE_"), " ",
                               e.binding().aor(), " v", e.binding().version()));
  }
  return out;
}

TEST_F(ReplicasTest, AWatcherOnAnyReplicaSeesEveryReplicasChangesAndResumesOnAnotherWithoutGapOrRepeat) {
  auto a = StartControl();
  auto b = StartControl();
  auto c = StartControl();
  ASSERT_TRUE(a && b && c);
  auto on_a = a->Stub();
  auto on_b = b->Stub();
  auto on_c = c->Stub();

  // A listing through A tells where its snapshot stands; a watch on B from there sees what follows.
  v1::ListBindingsResponse listed;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(on_a->ListBindings(&context, v1::ListBindingsRequest(), &listed).ok());
  }
  ASSERT_FALSE(listed.resume_token().empty());
  std::vector<v1::WatchBindingsResponse> first;
  {
    Watcher watch_b(*on_b, listed.resume_token());
    Allocate(*on_a, Registration("alice", 40000));
    Allocate(*on_c, Registration("bob", 40001));
    Allocate(*on_a, Registration("alice", 40000));  // a refresh
    Allocate(*on_b, Registration("carol", 40002));
    first = watch_b.WaitFor(4);
  }  // the watcher goes away (a client losing its replica)
  EXPECT_THAT(Summaries(first), ElementsAre("CREATED sip:alice@example.com v1", "CREATED sip:bob@example.com v1",
                                            "REFRESHED sip:alice@example.com v2", "CREATED sip:carol@example.com v1"));
  ASSERT_EQ(first.size(), 4u);
  for (const auto& e : first) EXPECT_FALSE(e.resume_token().empty());

  // Changes while nobody watches, then the client resumes on C from the second event's token.
  Allocate(*on_b, Registration("bob", 40005));  // a new source
  Allocate(*on_a, Registration("dave", 40003));
  Watcher watch_c(*on_c, first[1].resume_token());
  const std::vector<v1::WatchBindingsResponse> resumed = watch_c.WaitFor(4);
  EXPECT_THAT(Summaries(resumed),
              ElementsAre("REFRESHED sip:alice@example.com v2", "CREATED sip:carol@example.com v1",
                          "SOURCE_CHANGED sip:bob@example.com v2", "CREATED sip:dave@example.com v1"));
  // Each event is decorated by the replica that serves it, the same on every replica.
  ASSERT_GE(resumed.size(), 1u);
  EXPECT_EQ(resumed[0].binding().effective_contact(), first[2].binding().effective_contact());
  EXPECT_EQ(resumed[0].resume_token(), first[2].resume_token()) << "a token names one change everywhere";
}

TEST_F(ReplicasTest, AResumeTokenOlderThanTheLogKeepsIsOutOfRangeAndCounted) {
  auto a = StartControl();
  auto b = StartControl();
  ASSERT_TRUE(a && b);
  auto on_a = a->Stub();
  auto on_b = b->Stub();
  Allocate(*on_a, Registration("erin", 40010));
  std::string token;
  {
    Watcher watch(*on_b, "");
    Allocate(*on_a, Registration("erin", 40010));
    auto events = watch.WaitFor(1);
    ASSERT_EQ(events.size(), 1u);
    token = events[0].resume_token();
  }
  // event_log_length is 20; Redis trims whole stream nodes (100 entries): well past the token.
  for (int i = 0; i < 250; ++i) Allocate(*on_a, Registration("erin", 40011 + i % 2));
  // A replica started now holds nothing from before in memory (B may still: it tailed every entry,
  // and would rightly serve them), so it asks the store, which no longer has the token.
  auto c = StartControl();
  ASSERT_TRUE(c);
  auto on_c = c->Stub();
  Watcher late(*on_c, token);
  auto status = late.Ended();
  ASSERT_TRUE(status.has_value()) << "the stream did not end";
  EXPECT_EQ(status->error_code(), grpc::StatusCode::OUT_OF_RANGE) << status->error_message();
  EXPECT_THAT(status->error_message(), HasSubstr("list again"));
  EXPECT_TRUE(testing::WaitFor(
      [&] { return testing::MetricValue(c->Metrics(), "latchkey_watch_streams_ended_total{reason=\"gone\"}") == 1; },
      absl::Seconds(2)));
}

TEST_F(ReplicasTest, WorkersAreSharedSoAnyReplicaPlacesAndDrainsThem) {
  auto a = StartControl();
  auto b = StartControl();
  ASSERT_TRUE(a && b);
  auto relay = LocalRelay::Start(*a, "relay-on-a");
  ASSERT_TRUE(relay.ok()) << relay.status();
  auto on_a = a->Stub();
  auto on_b = b->Stub();
  ASSERT_TRUE(testing::WaitForWorker(*on_b, "relay-on-a", absl::Seconds(10))) << "B does not list A's relay";

  // A call through B lands on the relay that registered with A, and A answers and releases it.
  v1::AllocateSessionRequest offer;
  offer.set_call_id("call-1@pbx");
  offer.set_from_tag("ft1");
  offer.set_sdp(testing::AudioSdp("203.0.113.20", 4000));
  *offer.mutable_signaling_source() = testing::Address("203.0.113.20", 5060);
  v1::AllocateSessionResponse allocated;
  {
    grpc::ClientContext context;
    grpc::Status status = on_b->AllocateSession(&context, offer, &allocated);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(allocated.session().worker_id(), "relay-on-a");
  {
    v1::AnswerSessionRequest answer;
    answer.set_session_id(allocated.session().session_id());
    answer.set_to_tag("tt1");
    answer.set_sdp(testing::AudioSdp("198.51.100.30", 5000));
    *answer.mutable_signaling_source() = testing::Address("198.51.100.30", 5060);
    grpc::ClientContext context;
    v1::AnswerSessionResponse answered;
    grpc::Status status = on_a->AnswerSession(&context, answer, &answered);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(answered.session().state(), v1::SESSION_STATE_ANSWERED);
  }

  // Drained through B, seen draining through A.
  {
    v1::DrainWorkerRequest drain;
    drain.set_worker_id("relay-on-a");
    grpc::ClientContext context;
    v1::DrainWorkerResponse drained;
    ASSERT_TRUE(on_b->DrainWorker(&context, drain, &drained).ok());
  }
  grpc::ClientContext context;
  v1::ListWorkersResponse workers;
  ASSERT_TRUE(on_a->ListWorkers(&context, v1::ListWorkersRequest(), &workers).ok());
  ASSERT_EQ(workers.workers_size(), 1);
  EXPECT_EQ(workers.workers(0).state(), v1::WORKER_STATE_DRAINING);
}

// The keepalive relay of each phone, by the address its OPTIONS come from, in [since, until).
std::set<std::string> PingSources(const Phones& phones, int i, absl::Time since, absl::Time until) {
  std::set<std::string> out;
  for (const Received& r : phones.Options(i, since)) {
    if (r.at < until) out.insert(r.from);
  }
  return out;
}

TEST_F(ReplicasTest, ALostRelaysPhonesArePingedByAnotherWithinThreeHeartbeatsAndNeverByTwo) {
  auto a = StartControl();
  auto b = StartControl();
  ASSERT_TRUE(a && b);
  auto on_a = a->Stub();
  auto on_b = b->Stub();
  // Two relays, each registered with a different replica (the other is its fallback, as behind a
  // Kubernetes Service), own-socket keepalives.
  std::map<std::string, std::string> address_of;
  std::vector<std::unique_ptr<LocalRelay>> relays;
  for (auto [first, second, id] : {std::tuple{a.get(), b.get(), "relay-1"}, std::tuple{b.get(), a.get(), "relay-2"}}) {
    const int port = testing::FreeUdpRange(1);
    ASSERT_NE(port, 0);
    address_of[id] = absl::StrCat("127.0.0.1:", port);
    auto relay = LocalRelay::Start(
        *first, id,
        {"--keepalive_mode=own_socket", "--keepalive_listen=" + address_of[id], "--stun_listen=off",
         absl::StrCat("--control=ipv4:", first->worker_address(), ",", second->worker_address())},
        20);
    ASSERT_TRUE(relay.ok()) << relay.status();
    relays.push_back(*std::move(relay));
  }
  ASSERT_TRUE(testing::WaitForWorker(*on_a, "relay-2", absl::Seconds(10)));
  ASSERT_TRUE(testing::WaitForWorker(*on_b, "relay-1", absl::Seconds(10)));

  constexpr int kPhones = 20;
  Phones phones(kPhones);
  for (int i = 0; i < kPhones; ++i) Allocate(i % 2 ? *on_a : *on_b, Registration(absl::StrCat("u", i), phones.port(i)));
  auto all_pinged = [&](absl::Time since, int times) {
    for (int i = 0; i < kPhones; ++i) {
      if (static_cast<int>(phones.Options(i, since).size()) < times) return false;
    }
    return true;
  };
  ASSERT_TRUE(testing::WaitFor([&] { return all_pinged(absl::InfinitePast(), 2); }, absl::Seconds(10)))
      << "not every phone is pinged (bindings written through both replicas)";
  const absl::Time steady = absl::Now();
  std::set<int> on_relay_1;
  for (int i = 0; i < kPhones; ++i) {
    const std::set<std::string> sources = PingSources(phones, i, absl::InfinitePast(), steady);
    EXPECT_EQ(sources.size(), 1u) << "phone " << i << " pinged by " << sources.size() << " relays";
    if (sources.count(address_of["relay-1"])) on_relay_1.insert(i);
  }
  ASSERT_FALSE(on_relay_1.empty());
  ASSERT_LT(on_relay_1.size(), static_cast<size_t>(kPhones));

  // relay-1 dies: its phones are pinged by relay-2, and never again by relay-1.
  relays[0]->process().Stop(SIGKILL);
  const absl::Time killed = absl::Now();
  absl::Time moved = absl::InfiniteFuture();
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        for (int i : on_relay_1) {
          if (!PingSources(phones, i, killed, absl::InfiniteFuture()).count(address_of["relay-2"])) return false;
        }
        moved = absl::Now();
        return true;
      },
      absl::Seconds(10)))
      << "relay-1's phones were not taken over";
  // Loss after 3 heartbeats (600 ms), then one assignment pass and the first ping: the budget is
  // the loss time plus a sweep, a pass and slack for a loaded machine.
  EXPECT_LT(moved - killed, absl::Seconds(3)) << "took " << absl::FormatDuration(moved - killed);
  RecordProperty("takeover_ms", static_cast<int>(absl::ToInt64Milliseconds(moved - killed)));
  std::printf("relay-1's phones pinged by relay-2 %lld ms after the kill\n",
              static_cast<long long>(absl::ToInt64Milliseconds(moved - killed)));
  absl::SleepFor(absl::Milliseconds(1500));
  for (int i = 0; i < kPhones; ++i) {
    EXPECT_THAT(PingSources(phones, i, killed + absl::Milliseconds(10), absl::InfiniteFuture()),
                ElementsAre(address_of["relay-2"]))
        << "phone " << i;
    // Once a second from one relay: never a double schedule.
    EXPECT_LE(phones.Options(i, moved).size(), 4u) << "phone " << i;
  }

  // The leading replica dies: the other takes the lease; a phone registered after that is pinged.
  const bool a_leads = testing::MetricValue(a->Metrics(), "latchkey_control_leader") == 1;
  EXPECT_NE(a_leads, testing::MetricValue(b->Metrics(), "latchkey_control_leader") == 1) << "exactly one leads";
  LocalControl& survivor = a_leads ? *b : *a;
  (a_leads ? a : b)->process().Stop(SIGKILL);
  Phones late(1);
  auto survivor_stub = survivor.Stub();
  Allocate(*survivor_stub, Registration("late", late.port(0)));
  EXPECT_TRUE(testing::WaitFor([&] { return late.Options(0).size() >= 1; }, absl::Seconds(6)))
      << "no keepalive after the leader died\n" << survivor.process().ReadLog();
  EXPECT_EQ(testing::MetricValue(survivor.Metrics(), "latchkey_control_leader"), 1);
}

// latchkeyctl (and any client with the documented service config) rides out a store outage of a
// second: control answers UNAVAILABLE meanwhile, the client retries by itself.
TEST_F(ReplicasTest, LatchkeyctlRetriesUnavailableThroughAStorePause) {
  auto a = StartControl();
  ASSERT_TRUE(a);
  std::vector<std::string> argv = {LATCHKEYCTL_BIN, "--server=" + a->address(), "--timeout=8s"};
  auto tls = testing::TestTls(auth::Role::kOperator, "test");
  ASSERT_TRUE(tls.ok()) << tls.status();
  for (const std::string& flag : testing::TlsFlags(*tls)) argv.push_back(flag);
  for (const char* arg : {"register", "--aor=sip:retry@example.com", "--contact=<sip:retry@192.168.1.20:5060>",
                          "--source=203.0.113.7:41234", "--registrar=127.0.0.1:5060"}) {
    argv.push_back(arg);
  }
  redis_->Pause();
  std::thread resume([&] {
    absl::SleepFor(absl::Milliseconds(1200));
    redis_->Resume();
  });
  const absl::Time started = absl::Now();
  testing::CommandResult result = testing::RunCommand(argv, absl::Seconds(20));
  resume.join();
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_GE(absl::Now() - started, absl::Milliseconds(1000)) << "it did not wait for the store";
  EXPECT_THAT(result.output, HasSubstr("sip:retry@example.com"));
  // The refusals it rode out were counted by control as what they were.
  EXPECT_THAT(a->Metrics(), HasSubstr("code=\"UNAVAILABLE\""));
}

// A PBX's client with the documented retry policy, on every replica (pick_first: it talks to the
// first that answers, and moves on when that one goes away, as behind a Kubernetes Service).
std::unique_ptr<v1::NatControlService::Stub> ClusterClient(const std::vector<const LocalControl*>& replicas,
                                                          const std::string& pbx) {
  std::string target = "ipv4:";
  for (size_t i = 0; i < replicas.size(); ++i) {
    absl::StrAppend(&target, i ? "," : "", "127.0.0.1:", replicas[i]->grpc_port());
  }
  auto tls = testing::TestTls(auth::Role::kPbx, pbx);
  EXPECT_TRUE(tls.ok()) << tls.status();
  return v1::NatControlService::NewStub(grpcutil::CreateControlApiChannel(target, tls.value_or(v1::TlsConfig())));
}

TEST_F(ReplicasTest, KillingTheReplicaAClientUsesUnderLoadFailsNothingAndLosesNoAcknowledgedWrite) {
  auto a = StartControl();
  auto b = StartControl();
  auto c = StartControl();
  ASSERT_TRUE(a && b && c);
  auto client = ClusterClient({a.get(), b.get(), c.get()}, "pbx-load");

  struct Acked {
    std::string binding_id;
    uint64_t version = 0;
  };
  constexpr int kThreads = 4;
  constexpr int kPhonesPerThread = 25;
  absl::Mutex mu;
  std::map<std::string, Acked> acked;  // aor -> its newest acknowledged write
  std::atomic<int> ok{0}, failed{0};
  std::string first_failure;
  std::atomic<bool> stop{false};
  auto load = [&](int thread) {
    for (int i = 0; !stop.load(); ++i) {
      const std::string user = absl::StrCat("load", thread, "-", i % kPhonesPerThread);
      v1::AllocateBindingRequest request = Registration(user, 20000 + (i % 7));
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      v1::AllocateBindingResponse response;
      grpc::Status status = client->AllocateBinding(&context, request, &response);
      absl::MutexLock lock(&mu);
      if (!status.ok()) {
        ++failed;
        if (first_failure.empty()) first_failure = status.error_message();
        continue;
      }
      ++ok;
      Acked& newest = acked[request.aor()];
      if (response.binding().version() > newest.version) newest = {response.binding().binding_id(), response.binding().version()};
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(load, t);
  absl::SleepFor(absl::Seconds(2));
  const int before_kill = ok.load();
  a->process().Stop(SIGKILL);  // the first address: the one the client was using
  absl::SleepFor(absl::Seconds(3));
  stop = true;
  for (auto& t : threads) t.join();
  const int after_kill = ok.load() - before_kill;
  std::printf("load: %d writes acknowledged (%d after the kill), %d failed\n", ok.load(), after_kill, failed.load());

  EXPECT_EQ(failed.load(), 0) << "first failure: " << first_failure;
  EXPECT_GT(before_kill, 50);
  EXPECT_GT(after_kill, 50) << "the load did not carry on on another replica";
  // Every acknowledged write is there, at least as new as acknowledged.
  auto reader = c->Stub(auth::Role::kPbx, "pbx-load");
  ASSERT_EQ(acked.size(), static_cast<size_t>(kThreads * kPhonesPerThread));
  for (const auto& [aor, newest] : acked) {
    grpc::ClientContext context;
    v1::GetBindingRequest get;
    get.set_binding_id(newest.binding_id);
    v1::GetBindingResponse got;
    grpc::Status status = reader->GetBinding(&context, get, &got);
    ASSERT_TRUE(status.ok()) << aor << ": " << status.error_message();
    EXPECT_GE(got.binding().version(), newest.version) << aor;
  }
}

TEST_F(ReplicasTest, RestartingEveryReplicaAtOnceLosesNothingAndLeavesMediaAndKeepalivesRunning) {
  const testing::ControlPorts ports_a = testing::ControlPorts::Free();
  const testing::ControlPorts ports_b = testing::ControlPorts::Free();
  const std::string config = absl::StrCat(kConfig, " store: \"redis://127.0.0.1:", redis_->port(), "\"");
  auto a = LocalControl::Start(config, ports_a);
  auto b = LocalControl::Start(config, ports_b);
  ASSERT_TRUE(a.ok() && b.ok());
  const int keepalive_port = testing::FreeUdpRange(1);
  ASSERT_NE(keepalive_port, 0);
  auto relay = LocalRelay::Start(
      **a, "relay-r",
      {"--keepalive_mode=own_socket", absl::StrCat("--keepalive_listen=127.0.0.1:", keepalive_port),
       "--stun_listen=off",
       absl::StrCat("--control=ipv4:127.0.0.1:", ports_a.worker, ",127.0.0.1:", ports_b.worker)},
      20);
  ASSERT_TRUE(relay.ok()) << relay.status();
  ASSERT_TRUE(testing::WaitForWorker(*(*b)->Stub(), "relay-r", absl::Seconds(10)));
  auto client = ClusterClient({a->get(), b->get()}, "pbx-r");

  // Phones with keepalives, and one call with media both ways.
  constexpr int kPhones = 6;
  Phones phones(kPhones);
  std::vector<std::string> ids;
  for (int i = 0; i < kPhones; ++i) {
    ids.push_back(Allocate(*client, Registration(absl::StrCat("r", i), phones.port(i))).binding().binding_id());
  }
  testing::UdpPeer caller, callee;
  v1::AllocateSessionRequest offer;
  offer.set_call_id("restart@pbx");
  offer.set_from_tag("a");
  offer.set_sdp(testing::AudioSdp("127.0.0.1", caller.port()));
  *offer.mutable_signaling_source() = testing::Address("127.0.0.1", 5060);
  v1::AllocateSessionResponse offered;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(client->AllocateSession(&context, offer, &offered).ok());
  }
  v1::AnswerSessionRequest answer;
  answer.set_session_id(offered.session().session_id());
  answer.set_to_tag("b");
  answer.set_sdp(testing::AudioSdp("127.0.0.1", callee.port()));
  *answer.mutable_signaling_source() = testing::Address("127.0.0.1", 5062);
  v1::AnswerSessionResponse answered;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(client->AnswerSession(&context, answer, &answered).ok());
  }
  const uint16_t caller_relay = static_cast<uint16_t>(answered.session().caller().relay(0).rtp().port());
  const uint16_t callee_relay = static_cast<uint16_t>(answered.session().callee().relay(0).rtp().port());
  // Both ways, 10 packets each: what arrives on the other side.
  auto exchange = [&](uint16_t first_seq) {
    int to_callee = 0, to_caller = 0;
    for (int i = 0; i < 10; ++i) {
      caller.SendTo(caller_relay, testing::RtpPacket(0x1111, static_cast<uint16_t>(first_seq + i), 160u * i));
      callee.SendTo(callee_relay, testing::RtpPacket(0x2222, static_cast<uint16_t>(first_seq + i), 160u * i));
      absl::SleepFor(absl::Milliseconds(20));
    }
    to_callee = static_cast<int>(callee.Drain(absl::Milliseconds(200)).size());
    to_caller = static_cast<int>(caller.Drain(absl::Milliseconds(200)).size());
    return std::pair{to_callee, to_caller};
  };
  exchange(1);  // latches both legs
  ASSERT_TRUE(testing::WaitFor([&] { return phones.Options(kPhones - 1).size() >= 1; }, absl::Seconds(5)));

  // Every replica dies at once.
  (*a)->process().Stop(SIGKILL);
  (*b)->process().Stop(SIGKILL);
  const absl::Time down = absl::Now();
  const auto during = exchange(100);
  EXPECT_EQ(during, (std::pair{10, 10})) << "media stopped while control was down";
  // The relay keeps pinging what it was told.
  absl::SleepFor(absl::Milliseconds(1200));
  for (int i = 0; i < kPhones; ++i) EXPECT_FALSE(phones.Options(i, down).empty()) << "phone " << i;

  a = LocalControl::Start(config, ports_a);
  b = LocalControl::Start(config, ports_b);
  ASSERT_TRUE(a.ok() && b.ok());
  const absl::Time up = absl::Now();
  // Nothing lost: bindings and the call, through either replica.
  auto stub = (*b)->Stub(auth::Role::kPbx, "pbx-r");
  for (const std::string& id : ids) {
    grpc::ClientContext context;
    v1::GetBindingRequest get;
    get.set_binding_id(id);
    v1::GetBindingResponse got;
    EXPECT_TRUE(stub->GetBinding(&context, get, &got).ok()) << id;
  }
  {
    grpc::ClientContext context;
    v1::GetSessionRequest get;
    get.set_session_id(offered.session().session_id());
    v1::GetSessionResponse got;
    ASSERT_TRUE(stub->GetSession(&context, get, &got).ok());
    EXPECT_EQ(got.session().state(), v1::SESSION_STATE_ANSWERED);
    EXPECT_EQ(got.session().worker_id(), "relay-r");
  }
  EXPECT_EQ(exchange(200), (std::pair{10, 10})) << "media stopped after the restart";
  // The relay carries on with its keepalives and the new leader's set: a new phone is pinged too.
  Phones late(1);
  Allocate(*stub, Registration("r-late", late.port(0)));
  EXPECT_TRUE(testing::WaitFor([&] { return late.Options(0).size() >= 1; }, absl::Seconds(5)))
      << "keepalives did not resume after the restart";
  std::printf("keepalives resumed %lld ms after the replicas were back\n",
              static_cast<long long>(absl::ToInt64Milliseconds(absl::Now() - up)));
  // Every phone pinged since the restart (each on its own phase of the 1 s interval).
  for (int i = 0; i < kPhones; ++i) {
    EXPECT_TRUE(testing::WaitFor([&] { return !phones.Options(i, up).empty(); }, absl::Seconds(3))) << "phone " << i;
  }
  EXPECT_TRUE(testing::WaitForWorker(*(*a)->Stub(), "relay-r", absl::Seconds(2))) << "the relay is not registered";
}

// ---- Racing replicas: a history checked for linearizability ----

// One binding per AOR (the contact is the same for all): what a single copy would hold.
struct BindingState {
  bool exists = false;
  std::string id;
  uint64_t version = 0;
  std::string Key() const { return exists ? absl::StrCat(id, "@", version) : "-"; }
};
enum class BindingOp { kRegister, kUnregister, kList };
struct BindingAnswer {
  bool ok = false;          // kRegister, kUnregister (NOT_FOUND: false)
  bool created = false;     // kRegister
  int listed = 0;           // kList
  std::string id;
  uint64_t version = 0;
};

std::optional<BindingState> StepBinding(const BindingState& s, const BindingOp& op, const BindingAnswer& a) {
  switch (op) {
    case BindingOp::kRegister:
      if (!a.ok) return std::nullopt;
      if (!s.exists) {
        if (!a.created || a.version != 1) return std::nullopt;
        return BindingState{true, a.id, 1};
      }
      if (a.created || a.id != s.id || a.version != s.version + 1) return std::nullopt;
      return BindingState{true, s.id, s.version + 1};
    case BindingOp::kUnregister:
      if (!s.exists) return a.ok ? std::nullopt : std::optional<BindingState>(s);
      if (!a.ok || a.id != s.id || a.version != s.version) return std::nullopt;
      return BindingState{};
    case BindingOp::kList:
      if (a.listed != (s.exists ? 1 : 0)) return std::nullopt;
      if (s.exists && (a.id != s.id || a.version != s.version)) return std::nullopt;
      return s;
  }
  return std::nullopt;
}

TEST_F(ReplicasTest, TwoReplicasRacingOnOneAorOrCallIdStayLinearizable) {
  auto a = StartControl();
  auto b = StartControl();
  ASSERT_TRUE(a && b);
  auto relay = LocalRelay::Start(*a, "relay-race");
  ASSERT_TRUE(relay.ok()) << relay.status();
  ASSERT_TRUE(testing::WaitForWorker(*b->Stub(), "relay-race", absl::Seconds(10)));
  constexpr int kAors = 3;
  constexpr int kThreads = 4;  // two per replica
  constexpr int kOpsPerThread = 60;
  using History = std::vector<testing::Operation<BindingOp, BindingAnswer>>;
  absl::Mutex mu;
  std::vector<History> histories(kAors);
  std::atomic<int> unanswered{0};
  auto client = [&](LocalControl* control, int seed) {
    // Retrying UNAVAILABLE (a slow TLS handshake on a loaded machine), as a PBX's client does.
    auto stub = ClusterClient({control}, "pbx-race");
    for (int i = 0; i < kOpsPerThread; ++i) {
      const int aor = (seed * 7 + i * 13) % kAors;
      const BindingOp op = static_cast<BindingOp>((seed + i * 5) % 3);
      v1::AllocateBindingRequest request = Registration(absl::StrCat("race", aor), 30000 + seed);
      BindingAnswer answer;
      const absl::Time invoked = absl::Now();
      grpc::Status status;
      if (op == BindingOp::kList) {
        v1::ListBindingsRequest list;
        list.set_aor(request.aor());
        v1::ListBindingsResponse listed;
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        status = stub->ListBindings(&context, list, &listed);
        answer.ok = status.ok();
        answer.listed = listed.bindings_size();
        if (answer.listed > 0) {
          answer.id = listed.bindings(0).binding_id();
          answer.version = listed.bindings(0).version();
        }
      } else {
        if (op == BindingOp::kUnregister) *request.mutable_expires() = ToProto(absl::ZeroDuration());
        v1::AllocateBindingResponse response;
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        status = stub->AllocateBinding(&context, request, &response);
        answer.ok = status.ok();
        answer.created = response.created();
        answer.id = response.binding().binding_id();
        answer.version = response.binding().version();
      }
      const absl::Time completed = absl::Now();
      // Anything else leaves the outcome unknown: the checker tries it both ways.
      const bool answered =
          status.ok() || (op == BindingOp::kUnregister && status.error_code() == grpc::StatusCode::NOT_FOUND);
      if (!answered) ++unanswered;
      absl::MutexLock lock(&mu);
      histories[aor].push_back({op, answer, invoked, answered ? completed : absl::InfiniteFuture()});
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(client, t % 2 ? a.get() : b.get(), t);

  // Meanwhile, both replicas offered the same call (same Call-ID and from-tag) at once, repeatedly:
  // one session, whichever replica each offer reached.
  std::set<std::string> session_ids;
  int offers_ok = 0;
  std::vector<std::thread> offers;
  absl::Mutex offers_mu;
  for (int t = 0; t < 6; ++t) {
    offers.emplace_back([&, t] {
      auto stub = ClusterClient({(t % 2 ? a : b).get()}, "pbx-race");  // retries UNAVAILABLE
      v1::AllocateSessionRequest offer;
      offer.set_call_id("race@pbx");
      offer.set_from_tag("ft");
      offer.set_sdp(testing::AudioSdp("203.0.113.9", 4000));
      *offer.mutable_signaling_source() = testing::Address("203.0.113.9", 5060);
      v1::AllocateSessionResponse response;
      grpc::Status status;
      // ABORTED: lost the race to the other offers four times in a row; the API says retry.
      for (int attempt = 0; attempt < 10; ++attempt) {
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        status = stub->AllocateSession(&context, offer, &response);
        if (status.error_code() != grpc::StatusCode::ABORTED) break;
      }
      absl::MutexLock lock(&offers_mu);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) return;
      ++offers_ok;
      session_ids.insert(response.session().session_id());
    });
  }
  for (auto& t : threads) t.join();
  for (auto& t : offers) t.join();
  EXPECT_EQ(offers_ok, 6);
  EXPECT_EQ(session_ids.size(), 1u) << "one Call-ID and from-tag made several sessions";

  EXPECT_LT(unanswered.load(), kThreads * kOpsPerThread / 10) << "too many calls without an answer";
  for (int aor = 0; aor < kAors; ++aor) {
    ASSERT_GT(histories[aor].size(), 20u);
    auto result = testing::CheckLinearizable(
        histories[aor], BindingState{}, StepBinding,
        [](const BindingState& s, const BindingOp& op) -> std::optional<BindingState> {
          if (op == BindingOp::kList) return s;
          if (op == BindingOp::kUnregister) return BindingState{};
          // A register without an answer: a refresh is known (same id, next version); a creation's
          // id is not, so the checker has it never take effect.
          if (s.exists) return BindingState{true, s.id, s.version + 1};
          return std::nullopt;
        });
    EXPECT_TRUE(result.ok) << "aor " << aor << ": " << result.explanation;
    EXPECT_FALSE(result.refused) << result.explanation;
  }
}

}  // namespace
}  // namespace latchkey
