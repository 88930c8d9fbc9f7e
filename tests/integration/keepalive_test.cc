// NAT keepalives through the real latchkey-control and latchkey-relay binaries over loopback: control
// assigns each NATed UDP binding to a relay worker, which sends it SIP OPTIONS every interval; the
// "phones" here are UDP sockets of the test that answer (or not) like a SIP UA would.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/time/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/support/cluster.h"
#include "tests/integration/support/phones.h"
#include "tests/support/sip_phone.h"

namespace latchkey {
namespace {

using ::testing::HasSubstr;
using ::latchkey::testing::NatedPhone;
using ::latchkey::testing::Phones;
using ::latchkey::testing::Received;

constexpr absl::Duration kInterval = absl::Seconds(1);
constexpr int kThreshold = 3;
constexpr char kConfig[] =
    "worker_heartbeat_interval { nanos: 200000000 } worker_lost_after_missed: 3 "
    "nat_policies { name: \"test\" keepalive_interval { seconds: 1 } keepalive_failure_threshold: 3 }";

// ---- Watching bindings ----

class BindingWatch {
 public:
  BindingWatch(v1::NatControlService::Stub& stub, const std::string& aor) {
    v1::WatchBindingsRequest request;
    request.set_aor(aor);
    reader_ = stub.WatchBindings(&context_, request);
    reader_->WaitForInitialMetadata();  // subscribed
    thread_ = std::thread([this] {
      v1::WatchBindingsResponse event;
      while (reader_->Read(&event)) {
        absl::MutexLock lock(&mu_);
        events_.push_back({absl::Now(), event});
      }
    });
  }
  ~BindingWatch() {
    context_.TryCancel();
    thread_.join();
    reader_->Finish().ok();
  }
  // The first event of `type` after `since`, waiting up to `timeout`.
  std::optional<std::pair<absl::Time, v1::WatchBindingsResponse>> WaitFor(v1::BindingEventType type, absl::Time since,
                                                                          absl::Duration timeout) {
    std::optional<std::pair<absl::Time, v1::WatchBindingsResponse>> found;
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& e : events_) {
        if (e.first >= since && e.second.type() == type) {
          found = e;
          return true;
        }
      }
      return false;
    };
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    return found;
  }
  int Count(v1::BindingEventType type) {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& e : events_) n += e.second.type() == type;
    return n;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::WatchBindingsResponse>> reader_;
  absl::Mutex mu_;
  std::vector<std::pair<absl::Time, v1::WatchBindingsResponse>> events_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// ---- Helpers ----

std::string HeaderValue(absl::string_view message, absl::string_view name) {
  for (absl::string_view line : absl::StrSplit(message, "\r\n")) {
    if (absl::StartsWith(line, absl::StrCat(name, ": "))) return std::string(line.substr(name.size() + 2));
  }
  return "";
}

class KeepaliveTest : public ::testing::Test {
 protected:
  void StartControl(const std::string& config = kConfig) {
    auto control = testing::LocalControl::Start(config);
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = *std::move(control);
    stub_ = control_->Stub();
  }

  // A relay in own-socket mode; its keepalive socket's address is returned in `*keepalive_address`.
  std::unique_ptr<testing::LocalRelay> StartOwnSocketRelay(const std::string& id, std::string* keepalive_address) {
    const int port = testing::FreeUdpRange(1);
    EXPECT_NE(port, 0);
    *keepalive_address = absl::StrCat("127.0.0.1:", port);
    auto relay = testing::LocalRelay::Start(
        *control_, id,
        {"--keepalive_mode=own_socket", "--keepalive_listen=" + *keepalive_address, "--stun_listen=off"}, 20);
    EXPECT_TRUE(relay.ok()) << relay.status();
    if (!relay.ok()) return nullptr;
    EXPECT_TRUE(testing::WaitForWorker(*stub_, id, absl::Seconds(10))) << (*relay)->process().ReadLog();
    return *std::move(relay);
  }

  v1::Binding Allocate(const v1::AllocateBindingRequest& request) {
    v1::AllocateBindingResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub_->AllocateBinding(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.binding();
  }

  v1::Binding Get(const std::string& binding_id) {
    v1::GetBindingRequest request;
    request.set_binding_id(binding_id);
    v1::GetBindingResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub_->GetBinding(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.binding();
  }

  void Release(const std::string& binding_id) {
    v1::ReleaseBindingRequest request;
    request.set_binding_id(binding_id);
    v1::ReleaseBindingResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub_->ReleaseBinding(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  std::unique_ptr<testing::LocalControl> control_;
  std::unique_ptr<v1::NatControlService::Stub> stub_;
};

// (a) Own-socket mode: OPTIONS every interval, answered; then unanswered until unreachable, then
// answered again.
TEST_F(KeepaliveTest, OwnSocketPingsEveryIntervalAndReportsReachability) {
  ASSERT_NO_FATAL_FAILURE(StartControl());
  std::string keepalive_address;
  auto relay = StartOwnSocketRelay("relay-own", &keepalive_address);
  ASSERT_NE(relay, nullptr);
  Phones phone(1);
  BindingWatch watch(*stub_, "sip:alice@example.com");

  const v1::Binding binding = Allocate(NatedPhone("alice", "127.0.0.1", phone.port(0)));
  ASSERT_EQ(binding.verdict().state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_EQ(binding.keepalive().method(), v1::KEEPALIVE_METHOD_OPTIONS);
  EXPECT_EQ(FromProto(binding.keepalive().interval()), kInterval);
  EXPECT_EQ(binding.keepalive().failure_threshold(), static_cast<uint32_t>(kThreshold));
  EXPECT_EQ(binding.keepalive().worker_id(), "relay-own");

  // Three keepalives, one per interval, from the relay's own socket.
  ASSERT_TRUE(testing::WaitFor([&] { return phone.Options(0).size() >= 3; }, absl::Seconds(5)))
      << "OPTIONS received: " << phone.Options(0).size() << "\n" << relay->process().ReadLog();
  const std::vector<Received> options = phone.Options(0);
  for (size_t i = 0; i < options.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("keepalive ", i, ":\n", options[i].text));
    EXPECT_EQ(options[i].from, keepalive_address);
    const std::string& text = options[i].text;
    EXPECT_TRUE(absl::StartsWith(text, "OPTIONS sip:alice@192.168.1.5:5060 SIP/2.0\r\n"));
    EXPECT_TRUE(absl::EndsWith(text, "\r\n\r\n"));
    const std::string via = HeaderValue(text, "Via");
    EXPECT_TRUE(absl::StartsWith(via, absl::StrCat("SIP/2.0/UDP ", keepalive_address, ";branch=z9hG4bK"))) << via;
    EXPECT_TRUE(absl::EndsWith(via, ";rport")) << via;
    EXPECT_EQ(HeaderValue(text, "Max-Forwards"), "70");
    EXPECT_THAT(HeaderValue(text, "From"), ::testing::MatchesRegex("<sip:[^>]+@127\\.0\\.0\\.1>;tag=[0-9a-zA-Z]+"));
    EXPECT_EQ(HeaderValue(text, "To"), "<sip:alice@192.168.1.5:5060>");
    EXPECT_FALSE(HeaderValue(text, "Call-ID").empty());
    EXPECT_FALSE(HeaderValue(text, "User-Agent").empty());
    EXPECT_EQ(HeaderValue(text, "Content-Length"), "0");
    EXPECT_THAT(HeaderValue(text, "CSeq"), ::testing::MatchesRegex("[0-9]+ OPTIONS"));
    if (i > 0) {
      uint32_t previous = 0, current = 0;
      ASSERT_TRUE(absl::SimpleAtoi(absl::StripSuffix(HeaderValue(options[i - 1].text, "CSeq"), " OPTIONS"), &previous));
      ASSERT_TRUE(absl::SimpleAtoi(absl::StripSuffix(HeaderValue(text, "CSeq"), " OPTIONS"), &current));
      EXPECT_EQ(current, previous + 1);
      EXPECT_NE(HeaderValue(text, "Call-ID"), HeaderValue(options[i - 1].text, "Call-ID"));
      const absl::Duration gap = options[i].at - options[i - 1].at;
      EXPECT_GT(gap, absl::Milliseconds(700));
      EXPECT_LT(gap, absl::Milliseconds(1300));
    }
  }
  // The answers are matched to their keepalives, and nothing is unreachable.
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::MetricValue(relay->Metrics(), "latchkey_keepalive_responses_total{class=\"2xx\"}") >= 2; },
      absl::Seconds(3)))
      << relay->Metrics();
  {
    const std::string metrics = relay->Metrics();
    EXPECT_GE(testing::MetricValue(metrics, "latchkey_keepalives_sent_total"), 3);
    EXPECT_EQ(testing::MetricValue(metrics, "latchkey_keepalive_targets"), 1);
    EXPECT_EQ(testing::MetricValue(metrics, "latchkey_keepalive_unmatched_responses_total"), 0);
    EXPECT_EQ(testing::MetricValue(metrics, "latchkey_keepalive_reachability_changes_total{to=\"unreachable\"}"), 0);
    EXPECT_GE(testing::MetricValue(metrics, "latchkey_keepalive_rtt_seconds_count"), 2);
  }
  EXPECT_EQ(testing::MetricValue(control_->Metrics(), "latchkey_bindings_unreachable"), 0);
  EXPECT_NE(Get(binding.binding_id()).reachability(), v1::REACHABILITY_UNREACHABLE);
  EXPECT_EQ(watch.Count(v1::BINDING_EVENT_TYPE_UNREACHABLE), 0);

  // The phone stops answering: unreachable after `threshold` misses, within threshold + 2 intervals.
  const absl::Time stopped = absl::Now();
  phone.SetAnswering(false);
  auto unreachable =
      watch.WaitFor(v1::BINDING_EVENT_TYPE_UNREACHABLE, stopped, (kThreshold + 2) * kInterval);
  ASSERT_TRUE(unreachable.has_value()) << "no UNREACHABLE within " << (kThreshold + 2) * kInterval << "\n"
                                       << relay->process().ReadLog();
  EXPECT_GT(unreachable->first - stopped, (kThreshold - 1) * kInterval) << "before the threshold of misses";
  EXPECT_EQ(unreachable->second.binding().binding_id(), binding.binding_id());
  EXPECT_EQ(unreachable->second.binding().reachability(), v1::REACHABILITY_UNREACHABLE);
  EXPECT_EQ(Get(binding.binding_id()).reachability(), v1::REACHABILITY_UNREACHABLE);
  EXPECT_TRUE(testing::WaitFor(
      [&] { return testing::MetricValue(control_->Metrics(), "latchkey_bindings_unreachable") == 1; }, absl::Seconds(2)));
  EXPECT_GE(testing::MetricValue(relay->Metrics(), "latchkey_keepalive_misses_total"), kThreshold);
  // Still pinged while unreachable.
  const size_t pings_at_unreachable = phone.Options(0).size();

  // Answering again: REACHABLE at the next keepalive.
  const absl::Time resumed = absl::Now();
  phone.SetAnswering(true);
  auto reachable = watch.WaitFor(v1::BINDING_EVENT_TYPE_REACHABLE, resumed, kInterval + absl::Milliseconds(1500));
  ASSERT_TRUE(reachable.has_value()) << relay->process().ReadLog();
  EXPECT_EQ(reachable->second.binding().reachability(), v1::REACHABILITY_REACHABLE);
  EXPECT_GT(phone.Options(0).size(), pings_at_unreachable);
  EXPECT_EQ(Get(binding.binding_id()).reachability(), v1::REACHABILITY_REACHABLE);
  EXPECT_TRUE(testing::WaitFor(
      [&] { return testing::MetricValue(control_->Metrics(), "latchkey_bindings_unreachable") == 0; }, absl::Seconds(2)));
  EXPECT_EQ(watch.Count(v1::BINDING_EVENT_TYPE_UNREACHABLE), 1);
  EXPECT_EQ(watch.Count(v1::BINDING_EVENT_TYPE_REACHABLE), 1);
  const std::string control_metrics = control_->Metrics();
  EXPECT_EQ(testing::MetricValue(control_metrics, "latchkey_binding_reachability_changes_total{to=\"unreachable\"}"), 1);
  EXPECT_EQ(testing::MetricValue(control_metrics, "latchkey_binding_reachability_changes_total{to=\"reachable\"}"), 1);
}

// (b) Registrar-source mode: the keepalive comes from the registrar's address (which nobody in this
// test has bound), and the answer sent back there is seen and matched.
TEST_F(KeepaliveTest, RegistrarSourceSendsFromTheRegistrarAddress) {
  if (::geteuid() != 0) GTEST_SKIP() << "registrar-source keepalives need raw sockets (CAP_NET_RAW): run as root";
  ASSERT_NO_FATAL_FAILURE(StartControl());
  auto relay = testing::LocalRelay::Start(*control_, "relay-raw",
                                          {"--keepalive_mode=registrar_source", "--keepalive_source_ips=127.0.0.1",
                                           "--stun_listen=off"},
                                          20);
  ASSERT_TRUE(relay.ok()) << relay.status();
  ASSERT_TRUE(testing::WaitForWorker(*stub_, "relay-raw", absl::Seconds(10))) << (*relay)->process().ReadLog();
  const int registrar_port = testing::FreeUdpRange(1);
  ASSERT_NE(registrar_port, 0);
  const std::string registrar = absl::StrCat("127.0.0.1:", registrar_port);
  Phones phone(1);

  const v1::Binding binding = Allocate(NatedPhone("bob", "127.0.0.1", phone.port(0), registrar_port));
  EXPECT_EQ(binding.keepalive().worker_id(), "relay-raw");
  EXPECT_THAT(binding.keepalive().note(), HasSubstr("registrar address"));
  ASSERT_TRUE(testing::WaitFor([&] { return phone.Options(0).size() >= 3; }, absl::Seconds(5)))
      << (*relay)->process().ReadLog();
  for (const Received& r : phone.Options(0)) {
    EXPECT_EQ(r.from, registrar) << "a keepalive from elsewhere";
    EXPECT_TRUE(absl::StartsWith(HeaderValue(r.text, "Via"), absl::StrCat("SIP/2.0/UDP ", registrar, ";branch=z9hG4bK")))
        << r.text;
  }
  // The phone answered to the registrar address; the relay saw those answers and matched them.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return testing::MetricValue((*relay)->Metrics(), "latchkey_keepalive_responses_total{class=\"2xx\"}") >= 2;
      },
      absl::Seconds(3)))
      << (*relay)->Metrics();
  EXPECT_GE(phone.answers_sent(), 2u);
  const std::string metrics = (*relay)->Metrics();
  EXPECT_EQ(testing::MetricValue(metrics, "latchkey_keepalive_unmatched_responses_total"), 0);
  EXPECT_EQ(testing::MetricValue(metrics, "latchkey_keepalive_misses_total"), 0);
  EXPECT_EQ(testing::MetricValue(metrics, "latchkey_keepalive_send_errors_total"), 0);
}

// A registrar on loopback cannot reach a phone elsewhere, and a raw socket would put the packet on
// the wire all the same (the kernel does not refuse a loopback source there): the relay refuses it.
TEST_F(KeepaliveTest, LoopbackRegistrarNeverSendsOffTheMachine) {
  if (::geteuid() != 0) GTEST_SKIP() << "registrar-source keepalives need raw sockets (CAP_NET_RAW): run as root";
  ASSERT_NO_FATAL_FAILURE(StartControl());
  auto relay = testing::LocalRelay::Start(*control_, "relay-raw-guard",
                                          {"--keepalive_mode=registrar_source", "--keepalive_source_ips=127.0.0.1",
                                           "--stun_listen=off"},
                                          20);
  ASSERT_TRUE(relay.ok()) << relay.status();
  ASSERT_TRUE(testing::WaitForWorker(*stub_, "relay-raw-guard", absl::Seconds(10)));
  // TEST-NET-3: never a host of ours; nothing may be sent there.
  const v1::Binding binding = Allocate(NatedPhone("carol", "203.0.113.7", 41234, 5060));
  ASSERT_EQ(binding.keepalive().worker_id(), "relay-raw-guard");
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::MetricValue((*relay)->Metrics(), "latchkey_keepalive_unsendable_total") >= 2; }, absl::Seconds(5)))
      << (*relay)->Metrics();
  EXPECT_EQ(testing::MetricValue((*relay)->Metrics(), "latchkey_keepalives_sent_total"), 0);
  // Never sent, so never missed: the binding is not declared unreachable for the relay's own refusal.
  EXPECT_EQ(testing::MetricValue((*relay)->Metrics(), "latchkey_keepalive_misses_total"), 0);
}

// (c, d) A TCP binding and a binding not behind NAT get no keepalives, while a NATed one on the same
// worker does (and a non-NATed one does when its policy asks for it).
TEST_F(KeepaliveTest, TcpAndNonNatBindingsAreNotPinged) {
  ASSERT_NO_FATAL_FAILURE(StartControl(absl::StrCat(
      "worker_heartbeat_interval { nanos: 200000000 } ",
      "nat_policies { name: \"lan\" match_source_cidrs: \"127.0.0.2/32\" trusted_cidrs: \"127.0.0.2/32\" ",
      "keepalive_interval { seconds: 1 } } ",
      "nat_policies { name: \"lan-pinged\" match_source_cidrs: \"127.0.0.3/32\" trusted_cidrs: \"127.0.0.3/32\" ",
      "keepalive_interval { seconds: 1 } keepalive_non_nat: true } ",
      "nat_policies { name: \"test\" keepalive_interval { seconds: 1 } keepalive_failure_threshold: 3 }")));
  std::string keepalive_address;
  auto relay = StartOwnSocketRelay("relay-own", &keepalive_address);
  ASSERT_NE(relay, nullptr);
  Phones nated(1), tcp(1), lan(1, "127.0.0.2"), lan_pinged(1, "127.0.0.3");

  v1::AllocateBindingRequest tcp_request = NatedPhone("carol", "127.0.0.1", tcp.port(0));
  tcp_request.set_transport(v1::TRANSPORT_TCP);
  tcp_request.set_contact("<sip:carol@192.168.1.5:5060;transport=tcp>");
  tcp_request.set_via("SIP/2.0/TCP 192.168.1.5:5060;branch=z9hG4bK-tcp;rport");
  const v1::Binding tcp_binding = Allocate(tcp_request);
  EXPECT_EQ(tcp_binding.verdict().state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_EQ(tcp_binding.keepalive().method(), v1::KEEPALIVE_METHOD_NONE);
  EXPECT_THAT(tcp_binding.keepalive().note(), HasSubstr("RFC 5626"));
  EXPECT_EQ(tcp_binding.keepalive().worker_id(), "");

  auto not_nated = [](const std::string& user, const Phones& phone) {
    v1::AllocateBindingRequest request = NatedPhone(user, phone.ip(), phone.port(0));
    request.set_contact(absl::StrCat("<sip:", user, "@", phone.ip(), ":", phone.port(0), ">"));
    request.set_via(absl::StrCat("SIP/2.0/UDP ", phone.ip(), ":", phone.port(0), ";branch=z9hG4bK-lan"));
    return request;
  };
  const v1::Binding lan_binding = Allocate(not_nated("dave", lan));
  EXPECT_EQ(lan_binding.verdict().state(), v1::NAT_STATE_NOT_BEHIND_NAT);
  EXPECT_EQ(lan_binding.keepalive().method(), v1::KEEPALIVE_METHOD_NONE);
  EXPECT_THAT(lan_binding.keepalive().note(), HasSubstr("not behind NAT"));
  const v1::Binding lan_pinged_binding = Allocate(not_nated("erin", lan_pinged));
  EXPECT_EQ(lan_pinged_binding.verdict().state(), v1::NAT_STATE_NOT_BEHIND_NAT);
  EXPECT_EQ(lan_pinged_binding.keepalive().method(), v1::KEEPALIVE_METHOD_OPTIONS);

  const v1::Binding nated_binding = Allocate(NatedPhone("frank", "127.0.0.1", nated.port(0)));
  EXPECT_EQ(nated_binding.keepalive().method(), v1::KEEPALIVE_METHOD_OPTIONS);

  // Over two intervals after the others were pinged twice, the TCP and LAN phones get nothing.
  ASSERT_TRUE(testing::WaitFor(
      [&] { return nated.Options(0).size() >= 2 && lan_pinged.Options(0).size() >= 2; }, absl::Seconds(5)))
      << relay->process().ReadLog();
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_THAT(tcp.received(0), ::testing::IsEmpty()) << "a TCP binding was pinged over UDP";
  EXPECT_THAT(lan.received(0), ::testing::IsEmpty()) << "a binding not behind NAT was pinged";
  EXPECT_EQ(testing::MetricValue(relay->Metrics(), "latchkey_keepalive_targets"), 2);
}

// (e) Two relays share the bindings, each binding pinged by exactly one; when one relay dies, the
// other takes all of them; a released binding is not pinged any more.
TEST_F(KeepaliveTest, AssignmentMovesWhenARelayIsLostAndReleaseStopsPings) {
  ASSERT_NO_FATAL_FAILURE(StartControl());
  std::string address_a, address_b;
  auto relay_a = StartOwnSocketRelay("relay-a", &address_a);
  auto relay_b = StartOwnSocketRelay("relay-b", &address_b);
  ASSERT_NE(relay_a, nullptr);
  ASSERT_NE(relay_b, nullptr);
  const std::map<std::string, std::string> address_of = {{"relay-a", address_a}, {"relay-b", address_b}};

  constexpr int kBindings = 20;
  Phones phones(kBindings);
  std::vector<std::string> ids;
  std::map<std::string, int> per_worker;
  for (int i = 0; i < kBindings; ++i) {
    const v1::Binding b = Allocate(NatedPhone(absl::StrCat("user", i), "127.0.0.1", phones.port(i)));
    ids.push_back(b.binding_id());
    ++per_worker[b.keepalive().worker_id()];
  }
  EXPECT_GT(per_worker["relay-a"], 0) << "rendezvous hashing put everything on one worker";
  EXPECT_GT(per_worker["relay-b"], 0) << "rendezvous hashing put everything on one worker";
  EXPECT_EQ(per_worker["relay-a"] + per_worker["relay-b"], kBindings);

  // Every phone is pinged by exactly the worker its binding names, twice.
  auto all_pinged = [&](absl::Time since, int times) {
    for (int i = 0; i < kBindings; ++i) {
      if (static_cast<int>(phones.Options(i, since).size()) < times) return false;
    }
    return true;
  };
  ASSERT_TRUE(testing::WaitFor([&] { return all_pinged(absl::InfinitePast(), 2); }, absl::Seconds(5)));
  absl::SleepFor(absl::Milliseconds(300));  // a double ping would show up by now
  std::set<int> on_a;
  for (int i = 0; i < kBindings; ++i) {
    const std::string worker = Get(ids[i]).keepalive().worker_id();
    std::set<std::string> sources;
    for (const Received& r : phones.Options(i)) sources.insert(r.from);
    EXPECT_THAT(sources, ::testing::ElementsAre(address_of.at(worker))) << "binding " << i << " on " << worker;
    if (worker == "relay-a") on_a.insert(i);
    EXPECT_LE(phones.Options(i).size(), 5u) << "binding " << i << " pinged too often";
  }
  ASSERT_FALSE(on_a.empty());
  EXPECT_EQ(testing::MetricValue(relay_a->Metrics(), "latchkey_keepalive_targets"), static_cast<double>(on_a.size()));
  EXPECT_EQ(testing::MetricValue(relay_b->Metrics(), "latchkey_keepalive_targets"), static_cast<double>(kBindings - on_a.size()));

  // Relay A dies. After the loss detection (3 heartbeats of 200 ms) B pings every binding.
  relay_a->process().Stop(SIGKILL);
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        for (int i : on_a) {
          bool from_b = false;
          for (const Received& r : phones.Options(i, killed)) from_b |= r.from == address_b;
          if (!from_b) return false;
        }
        return true;
      },
      absl::Seconds(6)))
      << "relay-a's bindings did not move to relay-b\n" << relay_b->process().ReadLog();
  const absl::Time moved = absl::Now();
  ASSERT_TRUE(testing::WaitFor([&] { return all_pinged(moved, 2); }, absl::Seconds(4)));
  for (int i = 0; i < kBindings; ++i) {
    for (const Received& r : phones.Options(i, killed)) EXPECT_EQ(r.from, address_b) << "binding " << i;
    EXPECT_EQ(Get(ids[i]).keepalive().worker_id(), "relay-b");
  }
  EXPECT_EQ(testing::MetricValue(relay_b->Metrics(), "latchkey_keepalive_targets"), kBindings);

  // Releasing five bindings stops their keepalives within one interval; the others go on.
  for (int i = 0; i < 5; ++i) Release(ids[i]);
  const absl::Time released = absl::Now();
  absl::SleepFor(kInterval + absl::Milliseconds(1300));
  for (int i = 0; i < kBindings; ++i) {
    const std::vector<Received> late = phones.Options(i, released + kInterval);
    if (i < 5) {
      EXPECT_THAT(late, ::testing::IsEmpty()) << "released binding " << i << " still pinged";
    } else {
      EXPECT_FALSE(late.empty()) << "binding " << i << " no longer pinged";
    }
  }
  EXPECT_EQ(testing::MetricValue(relay_b->Metrics(), "latchkey_keepalive_targets"), kBindings - 5);
}

}  // namespace
}  // namespace latchkey

namespace latchkey {
namespace {

// Draining a worker is a change of the worker set like losing it: its bindings move to the others
// and leave it ("no binding goes unpinged, or is pinged by two workers, for longer than one pass").
//
// Regression: complete sets once went to READY workers only, so a draining worker kept its old set
// and its bindings were pinged by two workers indefinitely.
TEST_F(KeepaliveTest, DrainedRelayHandsItsBindingsOver) {
  ASSERT_NO_FATAL_FAILURE(StartControl());
  std::string address_a, address_b;
  auto relay_a = StartOwnSocketRelay("relay-a", &address_a);
  auto relay_b = StartOwnSocketRelay("relay-b", &address_b);
  ASSERT_NE(relay_a, nullptr);
  ASSERT_NE(relay_b, nullptr);
  constexpr int kBindings = 12;
  Phones phones(kBindings);
  std::vector<std::string> ids;
  int on_a = 0;
  for (int i = 0; i < kBindings; ++i) {
    const v1::Binding b = Allocate(NatedPhone(absl::StrCat("drain", i), "127.0.0.1", phones.port(i)));
    ids.push_back(b.binding_id());
    on_a += b.keepalive().worker_id() == "relay-a";
  }
  ASSERT_GT(on_a, 0);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::MetricValue(relay_a->Metrics(), "latchkey_keepalive_targets") == on_a; }, absl::Seconds(3)));

  v1::DrainWorkerRequest drain;
  drain.set_worker_id("relay-a");
  v1::DrainWorkerResponse drained;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->DrainWorker(&context, drain, &drained).ok());
  const absl::Time at = absl::Now();
  // One resync pass later: relay-b holds them all, relay-a none.
  EXPECT_TRUE(testing::WaitFor(
      [&] { return testing::MetricValue(relay_b->Metrics(), "latchkey_keepalive_targets") == kBindings; }, absl::Seconds(3)));
  EXPECT_TRUE(testing::WaitFor(
      [&] { return testing::MetricValue(relay_a->Metrics(), "latchkey_keepalive_targets") == 0; }, absl::Seconds(3)))
      << "the draining relay still holds " << testing::MetricValue(relay_a->Metrics(), "latchkey_keepalive_targets");
  const absl::Time settled = std::max(absl::Now(), at + absl::Milliseconds(500));
  absl::SleepFor(absl::Milliseconds(2200) - (absl::Now() - settled));
  for (int i = 0; i < kBindings; ++i) {
    std::set<std::string> sources;
    for (const Received& r : phones.Options(i, settled)) sources.insert(r.from);
    EXPECT_THAT(sources, ::testing::ElementsAre(address_b)) << "binding " << i;
    EXPECT_EQ(Get(ids[i]).keepalive().worker_id(), "relay-b");
  }
}

}  // namespace
}  // namespace latchkey
