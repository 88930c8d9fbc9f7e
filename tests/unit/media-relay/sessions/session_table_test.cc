#include "media-relay/sessions/session_table.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/time/proto_time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace latchkey::relay {
namespace {

using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
constexpr char kAdvertisedV4[] = "203.0.113.10";
constexpr char kAdvertisedV6[] = "2001:db8::10";

net::IpAddress Ip(const std::string& text) { return net::IpAddress::Parse(text).value(); }

// 0 if `ip`:`port` could be bound right now (the socket is closed again), else the errno of bind().
int BindErrno(const std::string& ip, uint16_t port) {
  const net::IpAddress address = Ip(ip);
  const int fd = ::socket(address.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  if (address.is_v6()) {
    int only = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof(only));
  }
  socklen_t length = 0;
  sockaddr_storage storage = address.ToSockaddr(port, &length);
  const int result = ::bind(fd, reinterpret_cast<sockaddr*>(&storage), length);
  const int error = result == 0 ? 0 : errno;
  ::close(fd);
  return error;
}

// An even base port in 20000-29998 with `ports` consecutive ports free on every address in `ips`.
uint32_t FindFreeRange(uint32_t ports, const std::vector<std::string>& ips) {
  absl::BitGen rng;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const uint32_t base = 2 * absl::Uniform<uint32_t>(rng, 10000, (29998 - ports) / 2);
    bool free = true;
    for (uint32_t port = base; port < base + ports && free; ++port) {
      for (const std::string& ip : ips) free = free && BindErrno(ip, static_cast<uint16_t>(port)) == 0;
    }
    if (free) return base;
  }
  return 0;
}

v1::CreateRelaySessionRequest CreateRequest(const std::string& id, uint32_t streams, uint32_t callee_family = 4,
                                            const std::string& caller_ip = "192.0.2.10") {
  v1::CreateRelaySessionRequest request;
  v1::Session* session = request.mutable_session();
  session->set_session_id(id);
  session->set_call_id(absl::StrCat("call-", id));
  session->set_worker_id("relay-1");
  session->mutable_caller()->set_tag("from-tag");
  for (uint32_t i = 0; i < streams; ++i) {
    v1::RemoteMedia* media = session->mutable_caller()->add_remote();
    media->set_media_index(i);
    media->set_media_type(i == 0 ? "audio" : "video");
    media->mutable_sdp_rtp()->set_ip(caller_ip);
    media->mutable_sdp_rtp()->set_port(4000 + 2 * i);
  }
  request.set_stream_count(streams);
  request.set_callee_family(callee_family);
  return request;
}

v1::UpdateRelaySessionRequest UpdateFrom(const v1::CreateRelaySessionRequest& create, uint32_t streams) {
  v1::UpdateRelaySessionRequest request;
  *request.mutable_session() = create.session();
  request.set_stream_count(streams);
  return request;
}

std::vector<uint16_t> RtpPorts(const google::protobuf::RepeatedPtrField<v1::RelayEndpoint>& endpoints) {
  std::vector<uint16_t> ports;
  for (const v1::RelayEndpoint& e : endpoints) ports.push_back(static_cast<uint16_t>(e.rtp().port()));
  return ports;
}

class SessionTableTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kPairs = 16;

  // A table on a free range of 127.0.0.1 (and ::1 when `with_v6`).
  void Make(uint32_t max_sessions = 100, absl::Duration quarantine = absl::Seconds(10), uint32_t pairs = kPairs,
            bool with_v6 = false) {
    std::vector<std::string> ips = {"127.0.0.1"};
    if (with_v6) ips.push_back("::1");
    base_ = FindFreeRange(2 * pairs, ips);
    ASSERT_NE(base_, 0u) << "no free port range found";
    auto pool = PortPool::Create(base_, base_ + 2 * pairs - 1, quarantine);
    ASSERT_TRUE(pool.ok()) << pool.status();
    SessionTableOptions options;
    options.addresses.push_back({Ip("127.0.0.1"), Ip(kAdvertisedV4)});
    if (with_v6) options.addresses.push_back({Ip("::1"), Ip(kAdvertisedV6)});
    options.max_sessions = max_sessions;
    table_ = std::make_unique<SessionTable>(options, *std::move(pool));
    total_ports_ = 2 * pairs;
  }

  bool V6Available() { return BindErrno("::1", 0) == 0; }

  void ExpectInRange(uint32_t port) {
    EXPECT_GE(port, base_);
    EXPECT_LT(port, base_ + total_ports_);
    EXPECT_EQ(port % 2, 0u) << port;
  }

  uint32_t base_ = 0;
  uint32_t total_ports_ = 0;
  std::unique_ptr<SessionTable> table_;
};

TEST_F(SessionTableTest, CreateAllocatesTwoBoundLegsPerStream) {
  ASSERT_NO_FATAL_FAILURE(Make());
  auto response = table_->Create(CreateRequest("s1", 2), kT0);
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->caller_size(), 2);
  ASSERT_EQ(response->callee_size(), 2);

  std::set<uint32_t> ports;
  for (const auto* endpoints : {&response->caller(), &response->callee()}) {
    for (int i = 0; i < endpoints->size(); ++i) {
      const v1::RelayEndpoint& e = (*endpoints)[i];
      EXPECT_EQ(e.media_index(), static_cast<uint32_t>(i));
      EXPECT_EQ(e.rtp().ip(), kAdvertisedV4);
      EXPECT_EQ(e.rtcp().ip(), kAdvertisedV4);
      ExpectInRange(e.rtp().port());
      EXPECT_EQ(e.rtcp().port(), e.rtp().port() + 1);  // no rtcp-mux offered
      EXPECT_TRUE(ports.insert(e.rtp().port()).second) << "port used twice: " << e.rtp().port();
      // The worker holds both sockets: nobody else can bind them.
      EXPECT_EQ(BindErrno("127.0.0.1", static_cast<uint16_t>(e.rtp().port())), EADDRINUSE) << e.rtp().port();
      EXPECT_EQ(BindErrno("127.0.0.1", static_cast<uint16_t>(e.rtp().port() + 1)), EADDRINUSE) << e.rtp().port() + 1;
    }
  }
  EXPECT_EQ(ports.size(), 4u);
  EXPECT_EQ(table_->size(), 1u);

  const v1::WorkerLoad load = table_->Load(kT0);
  EXPECT_EQ(load.sessions(), 1u);
  EXPECT_EQ(load.max_sessions(), 100u);
  EXPECT_EQ(load.total_ports(), total_ports_);
  EXPECT_EQ(load.free_ports(), total_ports_ - 8);
}

TEST_F(SessionTableTest, ChangedAdvertisedAddressReachesNewSessionsAndLaterAnswers) {
  ASSERT_NO_FATAL_FAILURE(Make());
  auto before = table_->Create(CreateRequest("s1", 1), kT0);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->caller(0).rtp().ip(), kAdvertisedV4);
  table_->SetAdvertised(0, Ip("198.51.100.99"));  // e.g. stun: found a new public address
  auto after = table_->Create(CreateRequest("s2", 1), kT0);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->caller(0).rtp().ip(), "198.51.100.99");
  EXPECT_EQ(after->callee(0).rtcp().ip(), "198.51.100.99");
  // An existing session's next answer or re-INVITE advertises the new address too (same ports).
  v1::UpdateRelaySessionRequest update;
  *update.mutable_session() = CreateRequest("s1", 1).session();
  update.set_stream_count(1);
  auto updated = table_->Update(update, kT0);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->caller(0).rtp().ip(), "198.51.100.99");
  EXPECT_EQ(updated->caller(0).rtp().port(), before->caller(0).rtp().port());
  table_->SetAdvertised(7, Ip("198.51.100.1"));  // out of range: ignored
}

TEST_F(SessionTableTest, RtcpEqualsRtpWhenTheLegMuxes) {
  ASSERT_NO_FATAL_FAILURE(Make());
  v1::CreateRelaySessionRequest request = CreateRequest("s1", 2);
  request.mutable_session()->mutable_caller()->mutable_remote(0)->set_rtcp_mux(true);
  auto created = table_->Create(request, kT0);
  ASSERT_TRUE(created.ok()) << created.status();
  // Stream 0: the caller muxes; before the answer the callee is offered the same.
  EXPECT_EQ(created->caller(0).rtcp().port(), created->caller(0).rtp().port());
  EXPECT_EQ(created->callee(0).rtcp().port(), created->callee(0).rtp().port());
  // Stream 1: no mux.
  EXPECT_EQ(created->caller(1).rtcp().port(), created->caller(1).rtp().port() + 1);
  EXPECT_EQ(created->callee(1).rtcp().port(), created->callee(1).rtp().port() + 1);

  // The callee answers without rtcp-mux on stream 0 and with it on stream 1.
  v1::UpdateRelaySessionRequest update = UpdateFrom(request, 2);
  v1::Leg* callee = update.mutable_session()->mutable_callee();
  for (uint32_t i = 0; i < 2; ++i) {
    v1::RemoteMedia* media = callee->add_remote();
    media->set_media_index(i);
    media->mutable_sdp_rtp()->set_ip("198.51.100.20");
    media->mutable_sdp_rtp()->set_port(6000 + 2 * i);
    media->set_rtcp_mux(i == 1);
  }
  auto updated = table_->Update(update, kT0 + absl::Seconds(1));
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->caller(0).rtcp().port(), updated->caller(0).rtp().port());
  EXPECT_EQ(updated->callee(0).rtcp().port(), updated->callee(0).rtp().port() + 1);
  EXPECT_EQ(updated->caller(1).rtcp().port(), updated->caller(1).rtp().port() + 1);
  EXPECT_EQ(updated->callee(1).rtcp().port(), updated->callee(1).rtp().port());
}

TEST_F(SessionTableTest, RetriedCreateReturnsSamePorts) {
  ASSERT_NO_FATAL_FAILURE(Make());
  auto first = table_->Create(CreateRequest("s1", 2), kT0);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = table_->Create(CreateRequest("s1", 2), kT0 + absl::Seconds(1));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*first, *second))
      << first->DebugString() << "\nvs\n" << second->DebugString();
  EXPECT_EQ(table_->size(), 1u);
  EXPECT_EQ(table_->Load(kT0 + absl::Seconds(1)).free_ports(), total_ports_ - 8);
}

TEST_F(SessionTableTest, MaxSessionsIsResourceExhausted) {
  ASSERT_NO_FATAL_FAILURE(Make(/*max_sessions=*/1));
  ASSERT_TRUE(table_->Create(CreateRequest("s1", 1), kT0).ok());
  auto second = table_->Create(CreateRequest("s2", 1), kT0);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted) << second.status();
  EXPECT_EQ(table_->size(), 1u);
  EXPECT_EQ(table_->Load(kT0).free_ports(), total_ports_ - 4);
  // A retry of the existing session is not a new session.
  EXPECT_TRUE(table_->Create(CreateRequest("s1", 1), kT0).ok());
}

TEST_F(SessionTableTest, DrainingRefusesNewSessions) {
  ASSERT_NO_FATAL_FAILURE(Make());
  EXPECT_FALSE(table_->draining());
  table_->SetDraining(true);
  EXPECT_TRUE(table_->draining());
  auto refused = table_->Create(CreateRequest("s1", 1), kT0);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_EQ(table_->size(), 0u);
  EXPECT_EQ(table_->Load(kT0).free_ports(), total_ports_);
  table_->SetDraining(false);
  EXPECT_TRUE(table_->Create(CreateRequest("s1", 1), kT0).ok());
}

TEST_F(SessionTableTest, UpdateGrowsStreamsKeepingExistingPorts) {
  ASSERT_NO_FATAL_FAILURE(Make());
  const v1::CreateRelaySessionRequest create = CreateRequest("s1", 1);
  auto created = table_->Create(create, kT0);
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_EQ(created->caller_size(), 1);

  v1::UpdateRelaySessionRequest update = UpdateFrom(CreateRequest("s1", 2), 2);
  auto updated = table_->Update(update, kT0 + absl::Seconds(1));
  ASSERT_TRUE(updated.ok()) << updated.status();
  ASSERT_EQ(updated->caller_size(), 2);
  ASSERT_EQ(updated->callee_size(), 2);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(updated->caller(0), created->caller(0)));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(updated->callee(0), created->callee(0)));
  EXPECT_EQ(updated->caller(1).media_index(), 1u);
  std::set<uint16_t> ports;
  for (uint16_t p : RtpPorts(updated->caller())) ports.insert(p);
  for (uint16_t p : RtpPorts(updated->callee())) ports.insert(p);
  EXPECT_EQ(ports.size(), 4u);
  for (uint16_t p : ports) {
    ExpectInRange(p);
    EXPECT_EQ(BindErrno("127.0.0.1", p), EADDRINUSE) << p;
  }
  EXPECT_EQ(table_->Load(kT0 + absl::Seconds(1)).free_ports(), total_ports_ - 8);

  // Fewer streams than allocated never shrinks the session.
  auto same = table_->Update(UpdateFrom(create, 1), kT0 + absl::Seconds(2));
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->caller_size(), 2);
}

TEST_F(SessionTableTest, UpdateUnknownSessionIsNotFound) {
  ASSERT_NO_FATAL_FAILURE(Make());
  EXPECT_EQ(table_->Update(UpdateFrom(CreateRequest("nope", 1), 1), kT0).status().code(),
            absl::StatusCode::kNotFound);
}

// Two control replicas racing on one session: the worker keeps the newest store version's state
// and refuses an update made from an older one (it would bring back stale media).
TEST_F(SessionTableTest, UpdateOlderThanTheHeldVersionIsRefusedAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(Make());
  v1::CreateRelaySessionRequest create = CreateRequest("s1", 1);
  create.mutable_session()->set_version(1);
  ASSERT_TRUE(table_->Create(create, kT0).ok());

  v1::UpdateRelaySessionRequest newer = UpdateFrom(CreateRequest("s1", 2), 2);
  newer.mutable_session()->set_version(3);
  ASSERT_TRUE(table_->Update(newer, kT0).ok());

  v1::UpdateRelaySessionRequest older = UpdateFrom(CreateRequest("s1", 3), 3);
  older.mutable_session()->set_version(2);
  auto refused = table_->Update(older, kT0);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("session.version"));
  EXPECT_EQ(table_->Load(kT0).free_ports(), total_ports_ - 8);  // the third stream was never added

  // The same version again (a retry) and a control that sends none are taken.
  EXPECT_TRUE(table_->Update(newer, kT0).ok());
  v1::UpdateRelaySessionRequest unversioned = UpdateFrom(CreateRequest("s1", 2), 2);
  EXPECT_TRUE(table_->Update(unversioned, kT0).ok());
  ASSERT_EQ(table_->Snapshot().size(), 1u);
  EXPECT_EQ(table_->Snapshot()[0].version(), 0u);  // the record as last sent
}

TEST_F(SessionTableTest, DeleteFreesSocketsAndQuarantinesPorts) {
  ASSERT_NO_FATAL_FAILURE(Make(100, absl::Seconds(10)));
  auto created = table_->Create(CreateRequest("s1", 1), kT0);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(table_->Load(kT0).free_ports(), total_ports_ - 4);

  auto deleted = table_->Delete("s1", kT0 + absl::Seconds(1));
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(table_->size(), 0u);
  // Sockets are closed...
  for (const v1::RelayEndpoint& e : {created->caller(0), created->callee(0)}) {
    EXPECT_EQ(BindErrno("127.0.0.1", static_cast<uint16_t>(e.rtp().port())), 0) << e.rtp().port();
    EXPECT_EQ(BindErrno("127.0.0.1", static_cast<uint16_t>(e.rtp().port() + 1)), 0) << e.rtp().port() + 1;
  }
  // ...but the ports stay out of the pool until the quarantine passes.
  EXPECT_EQ(table_->Load(kT0 + absl::Seconds(1)).free_ports(), total_ports_ - 4);
  EXPECT_EQ(table_->Load(kT0 + absl::Seconds(10)).free_ports(), total_ports_ - 4);
  EXPECT_EQ(table_->Load(kT0 + absl::Seconds(11)).free_ports(), total_ports_);

  EXPECT_EQ(table_->Delete("s1", kT0 + absl::Seconds(12)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(table_->Get("s1").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SessionTableTest, GetReturnsCreationTime) {
  ASSERT_NO_FATAL_FAILURE(Make());
  ASSERT_TRUE(table_->Create(CreateRequest("s1", 1), kT0).ok());
  auto got = table_->Get("s1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(FromProto(got->created_at()), kT0);
}

TEST_F(SessionTableTest, SnapshotReturnsTheLatestRecords) {
  ASSERT_NO_FATAL_FAILURE(Make());
  const v1::CreateRelaySessionRequest a = CreateRequest("a", 1);
  const v1::CreateRelaySessionRequest b = CreateRequest("b", 2);
  ASSERT_TRUE(table_->Create(a, kT0).ok());
  ASSERT_TRUE(table_->Create(b, kT0).ok());
  v1::UpdateRelaySessionRequest update = UpdateFrom(b, 2);
  update.mutable_session()->mutable_callee()->set_tag("to-tag");
  ASSERT_TRUE(table_->Update(update, kT0).ok());

  std::vector<v1::Session> snapshot = table_->Snapshot();
  ASSERT_EQ(snapshot.size(), 2u);
  std::sort(snapshot.begin(), snapshot.end(),
            [](const v1::Session& x, const v1::Session& y) { return x.session_id() < y.session_id(); });
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(snapshot[0], a.session()));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(snapshot[1], update.session()));

  ASSERT_TRUE(table_->Delete("a", kT0).ok());
  snapshot = table_->Snapshot();
  ASSERT_EQ(snapshot.size(), 1u);
  EXPECT_EQ(snapshot[0].session_id(), "b");
}

TEST_F(SessionTableTest, InvalidRequestsAreInvalidArgumentAndLeakNothing) {
  ASSERT_NO_FATAL_FAILURE(Make(100, absl::Seconds(10), /*pairs=*/32));
  for (uint32_t family : {0u, 5u, 46u}) {
    auto status = table_->Create(CreateRequest("s1", 1, family), kT0).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << family;
    EXPECT_THAT(std::string(status.message()), HasSubstr("callee_family"));
  }
  for (uint32_t streams : {0u, 17u}) {
    auto status = table_->Create(CreateRequest("s1", streams), kT0).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << streams;
    EXPECT_THAT(std::string(status.message()), HasSubstr("stream_count"));
  }
  auto no_id = table_->Create(CreateRequest("", 1), kT0).status();
  EXPECT_EQ(no_id.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_id.message()), HasSubstr("session_id"));

  EXPECT_EQ(table_->size(), 0u);
  EXPECT_EQ(table_->Load(kT0).free_ports(), total_ports_);
  // 16 streams is the maximum and is fine (32 pairs: the whole pool).
  auto max = table_->Create(CreateRequest("s1", 16), kT0);
  ASSERT_TRUE(max.ok()) << max.status();
  EXPECT_EQ(max->caller_size(), 16);
  EXPECT_EQ(table_->Load(kT0).free_ports(), 0u);
}

TEST_F(SessionTableTest, RunningOutOfPortsFailsCleanly) {
  // 3 pairs: one stream needs 2, two streams need 4.
  ASSERT_NO_FATAL_FAILURE(Make(100, absl::ZeroDuration(), /*pairs=*/3));
  auto failed = table_->Create(CreateRequest("big", 2), kT0);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kResourceExhausted) << failed.status();
  EXPECT_EQ(table_->size(), 0u);
  EXPECT_EQ(table_->Load(kT0).free_ports(), 6u);
  // Nothing stays bound.
  for (uint32_t port = base_; port < base_ + 6; ++port) {
    EXPECT_EQ(BindErrno("127.0.0.1", static_cast<uint16_t>(port)), 0) << port;
  }
  EXPECT_TRUE(table_->Create(CreateRequest("small", 1), kT0).ok());
}

TEST_F(SessionTableTest, PortsHeldBySomeoneElseAreSkipped) {
  ASSERT_NO_FATAL_FAILURE(Make(100, absl::Seconds(10), /*pairs=*/4));
  // Another process holds the RTP port of pair 0 and the RTCP port of pair 1.
  UdpSocket held_rtp = UdpSocket::Bind(Ip("127.0.0.1"), static_cast<uint16_t>(base_)).value();
  UdpSocket held_rtcp = UdpSocket::Bind(Ip("127.0.0.1"), static_cast<uint16_t>(base_ + 3)).value();
  auto created = table_->Create(CreateRequest("s1", 1), kT0);
  ASSERT_TRUE(created.ok()) << created.status();
  std::set<uint32_t> ports = {created->caller(0).rtp().port(), created->callee(0).rtp().port()};
  EXPECT_EQ(ports, (std::set<uint32_t>{base_ + 4, base_ + 6}));
  // Only unbindable pairs are left: a second session fails, and they are set aside (quarantined)
  // rather than offered again at once.
  EXPECT_EQ(table_->Create(CreateRequest("s2", 1), kT0).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(table_->size(), 1u);
  EXPECT_EQ(table_->Load(kT0).free_ports(), 0u);
  EXPECT_EQ(table_->Load(kT0 + absl::Seconds(10)).free_ports(), 4u);
}

TEST_F(SessionTableTest, CalleeFamilySelectsTheAddress) {
  if (!V6Available()) GTEST_SKIP() << "no IPv6 loopback";
  ASSERT_NO_FATAL_FAILURE(Make(100, absl::Seconds(10), kPairs, /*with_v6=*/true));
  auto created = table_->Create(CreateRequest("s1", 1, /*callee_family=*/6), kT0);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->caller(0).rtp().ip(), kAdvertisedV4);
  EXPECT_EQ(created->callee(0).rtp().ip(), kAdvertisedV6);
  EXPECT_EQ(BindErrno("::1", static_cast<uint16_t>(created->callee(0).rtp().port())), EADDRINUSE);

  // The caller's family follows its SDP.
  auto v6_caller = table_->Create(CreateRequest("s2", 1, 4, "2001:db8::20"), kT0);
  ASSERT_TRUE(v6_caller.ok()) << v6_caller.status();
  EXPECT_EQ(v6_caller->caller(0).rtp().ip(), kAdvertisedV6);
  EXPECT_EQ(v6_caller->callee(0).rtp().ip(), kAdvertisedV4);
}

// A stream added by a re-INVITE takes its address family from the new SDP.
TEST_F(SessionTableTest, UpdateAddedStreamUsesTheCallersNewFamily) {
  if (!V6Available()) GTEST_SKIP() << "no IPv6 loopback";
  ASSERT_NO_FATAL_FAILURE(Make(100, absl::Seconds(10), kPairs, /*with_v6=*/true));
  const v1::CreateRelaySessionRequest create = CreateRequest("s1", 1);
  ASSERT_TRUE(table_->Create(create, kT0).ok());
  v1::UpdateRelaySessionRequest update = UpdateFrom(create, 2);
  v1::RemoteMedia* video = update.mutable_session()->mutable_caller()->add_remote();
  video->set_media_index(1);
  video->set_media_type("video");
  video->mutable_sdp_rtp()->set_ip("2001:db8::20");
  video->mutable_sdp_rtp()->set_port(5000);
  auto updated = table_->Update(update, kT0);
  ASSERT_TRUE(updated.ok()) << updated.status();
  ASSERT_EQ(updated->caller_size(), 2);
  EXPECT_EQ(updated->caller(0).rtp().ip(), kAdvertisedV4);
  EXPECT_EQ(updated->caller(1).rtp().ip(), kAdvertisedV6);
}

}  // namespace
}  // namespace latchkey::relay
