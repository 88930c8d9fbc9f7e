// The ng front door of the real latchkey-control, with a real relay, spoken to over UDP as Kamailio's
// rtpengine module speaks it: a connect()ed socket per client, a cookie per command, the same bytes
// again on retransmission.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/control/ng/bencode.h"
#include "services/control/ng/message.h"
#include "tests/integration/support/cluster.h"
#include "tests/integration/support/udp_peer.h"

namespace latchkey {
namespace {

using control::ng::Value;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::FirstMedia;

// An ng client as Kamailio has one per worker: a socket connect()ed to the front door, so that only
// replies from the address it sent to reach it.
class NgClient {
 public:
  explicit NgClient(int port, const char* server_ip = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, server_ip, &a.sin_addr);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  }
  ~NgClient() { ::close(fd_); }

  void SendRaw(const std::string& datagram) { ASSERT_EQ(::send(fd_, datagram.data(), datagram.size(), 0), static_cast<ssize_t>(datagram.size())); }
  std::optional<std::string> ReceiveRaw(absl::Duration timeout) {
    timeval tv{static_cast<time_t>(absl::ToInt64Seconds(timeout)),
               static_cast<suseconds_t>(absl::ToInt64Microseconds(timeout) % 1000000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::string buffer(70000, '\0');
    const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), 0);
    if (n < 0) return std::nullopt;
    buffer.resize(static_cast<size_t>(n));
    return buffer;
  }
  // One command; the reply's dictionary (a failure when none comes within Kamailio's 1 s).
  Value Call(Value body) {
    const std::string cookie = absl::StrCat("1_", getpid(), "_", ++sequence_);
    SendRaw(absl::StrCat(cookie, " ", control::ng::Encode(body)));
    auto reply = ReceiveRaw(absl::Seconds(1));
    if (!reply) {
      ADD_FAILURE() << "no reply to " << cookie;
      return Value::Dictionary();
    }
    EXPECT_TRUE(absl::StartsWith(*reply, cookie + " ")) << *reply;
    auto parsed = control::ng::Decode(absl::string_view(*reply).substr(cookie.size() + 1));
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    return parsed.ok() ? *parsed : Value::Dictionary();
  }

 private:
  int fd_ = -1;
  int sequence_ = 0;
};

std::string Str(const Value& reply, const std::string& key) {
  const Value* v = reply.Find(key);
  return v != nullptr && v->is_string() ? v->string() : "";
}

Value Strings(std::initializer_list<const char*> items) {
  Value list = Value::List();
  for (const char* item : items) list.Add(Value::String(item));
  return list;
}

// A request as Kamailio builds it: supports, call-id, received-from, the keys, command last.
Value Request(const std::string& command, const std::string& call_id, const std::string& from_tag,
              const std::string& to_tag = "", const std::string& sdp = "") {
  Value body = Value::Dictionary();
  body.Set("supports", Strings({"load limit"}));
  if (!sdp.empty()) body.Set("sdp", Value::String(sdp));
  body.Set("call-id", Value::String(call_id));
  body.Set("received-from", Strings({"IP4", "127.0.0.1"}));
  body.Set("flags", Strings({"trust-address"}));
  body.Set("replace", Strings({"origin"}));
  body.Set("ICE", Value::String("remove"));
  if (!from_tag.empty()) body.Set("from-tag", Value::String(from_tag));
  if (!to_tag.empty()) body.Set("to-tag", Value::String(to_tag));
  body.Set("command", Value::String(command));
  return body;
}

int64_t Int(const Value* v) { return v != nullptr && v->is_integer() ? v->integer() : -1; }

class NgTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start(const std::string& ng_extra = "", bool with_relay = true) {
    ng_port_ = testing::FreeUdpRange(2);
    auto control = testing::LocalControl::Start(absl::StrCat(
        "worker_heartbeat_interval { nanos: 200000000 } ng { listen: \"127.0.0.1:", ng_port_,
        "\" delete_delay { seconds: 1 } ", ng_extra, " }"));
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = *std::move(control);
    stub_ = control_->Stub();
    if (!with_relay) return;
    auto relay = testing::LocalRelay::Start(*control_, "w-ng");
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = *std::move(relay);
    ASSERT_TRUE(testing::WaitForWorker(*stub_, "w-ng", absl::Seconds(10)));
  }

  std::vector<v1::Session> LiveSessions() {
    grpc::ClientContext context;
    v1::ListSessionsRequest request;
    v1::ListSessionsResponse response;
    EXPECT_TRUE(stub_->ListSessions(&context, request, &response).ok());
    std::vector<v1::Session> out;
    for (const v1::Session& s : response.sessions()) {
      if (s.state() != v1::SESSION_STATE_ENDED) out.push_back(s);
    }
    return out;
  }

  // RTP from `from` to relay port `to` arrives at `at`.
  static bool Flows(testing::UdpPeer& from, int to, testing::UdpPeer& at, uint32_t ssrc) {
    for (int i = 0; i < 50; ++i) {
      from.SendTo(static_cast<uint16_t>(to), testing::RtpPacket(ssrc, static_cast<uint16_t>(i), i * 160u));
      if (at.Receive(absl::Milliseconds(20))) return true;
    }
    return false;
  }

  int ng_port_ = 0;
  std::unique_ptr<testing::LocalControl> control_;
  std::unique_ptr<v1::NatControlService::Stub> stub_;
  std::unique_ptr<testing::LocalRelay> relay_;
};

TEST_F(NgTest, PingIsAnsweredPongAndOtherCommandsGetAClearError) {
  NgClient client(ng_port_);
  Value ping = Value::Dictionary();
  ping.Set("command", Value::String("ping"));
  EXPECT_EQ(Str(client.Call(ping), "result"), "pong");

  Value record = Request("start recording", "rec-1", "ft");
  const Value reply = client.Call(record);
  EXPECT_EQ(Str(reply, "result"), "error");
  EXPECT_THAT(Str(reply, "error-reason"), HasSubstr("Unrecognized command"));
}

TEST_F(NgTest, ACallThroughTheFrontDoorCarriesMediaBothWaysAndEndsAfterTheDeleteDelay) {
  NgClient client(ng_port_);
  testing::UdpPeer caller, callee;
  const Value offer = client.Call(Request("offer", "call-1@ng", "caller-tag", "",
                                          testing::AudioSdp("127.0.0.1", caller.port())));
  ASSERT_EQ(Str(offer, "result"), "ok") << Str(offer, "error-reason");
  const testing::SdpMedia to_callee = FirstMedia(Str(offer, "sdp"));
  EXPECT_EQ(to_callee.address, "127.0.0.1");
  EXPECT_GE(to_callee.port, relay_->port_min());
  EXPECT_LE(to_callee.port, relay_->port_max());

  const Value answer = client.Call(Request("answer", "call-1@ng", "caller-tag", "callee-tag",
                                           testing::AudioSdp("127.0.0.1", callee.port())));
  ASSERT_EQ(Str(answer, "result"), "ok") << Str(answer, "error-reason");
  const testing::SdpMedia to_caller = FirstMedia(Str(answer, "sdp"));
  EXPECT_GE(to_caller.port, relay_->port_min());
  EXPECT_NE(to_caller.port, to_callee.port);

  EXPECT_TRUE(Flows(caller, to_caller.port, callee, 0x1111));
  EXPECT_TRUE(Flows(callee, to_callee.port, caller, 0x2222));

  // $rtpstat: totals.RTP and totals.RTCP, with the packets the relay saw.
  ASSERT_TRUE(testing::WaitFor([&] {
    const Value query = client.Call(Request("query", "call-1@ng", "caller-tag"));
    const Value* totals = query.Find("totals");
    return totals != nullptr && totals->Find("RTCP") != nullptr && totals->Find("RTP") != nullptr &&
           Int(totals->Find("RTP")->Find("packets")) > 0;
  }, absl::Seconds(5)));

  ASSERT_EQ(LiveSessions().size(), 1u);
  const Value deleted = client.Call(Request("delete", "call-1@ng", "caller-tag"));
  EXPECT_EQ(Str(deleted, "result"), "ok");
  EXPECT_EQ(deleted.Find("warning"), nullptr);
  // Media keeps flowing through the delete delay (1 s here), then the session ends.
  EXPECT_TRUE(Flows(caller, to_caller.port, callee, 0x1111));
  EXPECT_TRUE(testing::WaitFor([&] { return LiveSessions().empty(); }, absl::Seconds(5)));
  // A BYE seen twice: still ok, with rtpengine's warning.
  const Value again = client.Call(Request("delete", "call-1@ng", "caller-tag"));
  EXPECT_EQ(Str(again, "result"), "ok");
  EXPECT_THAT(Str(again, "warning"), HasSubstr("not found"));
  // The Call-ID can be used again.
  EXPECT_EQ(Str(client.Call(Request("offer", "call-1@ng", "caller-tag", "",
                                    testing::AudioSdp("127.0.0.1", caller.port()))), "result"), "ok");
}

TEST_F(NgTest, ARetransmissionGetsTheSameBytesAndRunsOnce) {
  NgClient client(ng_port_);
  const std::string datagram =
      absl::StrCat("7_1234_1 ", control::ng::Encode(Request("offer", "retx@ng", "ft", "",
                                                            testing::AudioSdp("127.0.0.1", 40000))));
  client.SendRaw(datagram);
  client.SendRaw(datagram);  // very likely while the first is still running
  auto first = client.ReceiveRaw(absl::Seconds(1));
  ASSERT_TRUE(first.has_value());
  client.SendRaw(datagram);  // after it finished
  auto third = client.ReceiveRaw(absl::Seconds(1));
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(*first, *third);
  EXPECT_THAT(*first, HasSubstr("6:result2:ok"));
  const std::vector<v1::Session> live = LiveSessions();
  ASSERT_EQ(live.size(), 1u);
  // Ran once: a second run would have been a re-offer, a second write of the record.
  EXPECT_EQ(live[0].version(), 1u);
  EXPECT_GE(testing::MetricValue(control_->Metrics(), "latchkey_ng_retransmissions_total"), 1.0);
}

TEST_F(NgTest, ACalleeReinviteKeepsEveryRelayPortAndMediaFlowsOn) {
  NgClient client(ng_port_);
  testing::UdpPeer caller, callee, callee_moved;
  const Value offer = client.Call(Request("offer", "reinv@ng", "A", "", testing::AudioSdp("127.0.0.1", caller.port())));
  const Value answer =
      client.Call(Request("answer", "reinv@ng", "A", "B", testing::AudioSdp("127.0.0.1", callee.port())));
  const int to_callee = FirstMedia(Str(offer, "sdp")).port;
  const int to_caller = FirstMedia(Str(answer, "sdp")).port;

  // The callee's re-INVITE: an offer whose from-tag is the callee's, with a new media port.
  const Value reoffer = client.Call(Request("offer", "reinv@ng", "B", "A",
                                            testing::AudioSdp("127.0.0.1", callee_moved.port())));
  ASSERT_EQ(Str(reoffer, "result"), "ok") << Str(reoffer, "error-reason");
  // The caller is told the same relay port it already sends to.
  EXPECT_EQ(FirstMedia(Str(reoffer, "sdp")).port, to_caller);
  // The caller's 200: an answer with the callee's tag as from-tag.
  const Value reanswer = client.Call(Request("answer", "reinv@ng", "B", "A",
                                             testing::AudioSdp("127.0.0.1", caller.port())));
  ASSERT_EQ(Str(reanswer, "result"), "ok") << Str(reanswer, "error-reason");
  EXPECT_EQ(FirstMedia(Str(reanswer, "sdp")).port, to_callee);
  ASSERT_EQ(LiveSessions().size(), 1u);

  EXPECT_TRUE(Flows(callee_moved, to_callee, caller, 0x3333));
  EXPECT_TRUE(Flows(caller, to_caller, callee_moved, 0x4444));
}

TEST_F(NgTest, RepeatedOffersAndAnswersReturnTheSameSdp) {
  NgClient client(ng_port_);
  const std::string offer_sdp = testing::AudioSdp("127.0.0.1", 41000);
  const Value first = client.Call(Request("offer", "rep@ng", "A", "", offer_sdp));
  const Value second = client.Call(Request("offer", "rep@ng", "A", "", offer_sdp));
  EXPECT_EQ(Str(first, "sdp"), Str(second, "sdp"));
  const std::string answer_sdp = testing::AudioSdp("127.0.0.1", 42000);
  const Value a1 = client.Call(Request("answer", "rep@ng", "A", "B", answer_sdp));
  const Value a2 = client.Call(Request("answer", "rep@ng", "A", "B", answer_sdp));
  EXPECT_EQ(Str(a1, "sdp"), Str(a2, "sdp"));
  EXPECT_EQ(LiveSessions().size(), 1u);
  // Our own output coming back (a second rtpengine_manage pass) is returned unchanged.
  const Value looped = client.Call(Request("offer", "rep@ng", "A", "", Str(first, "sdp")));
  EXPECT_EQ(Str(looped, "sdp"), Str(first, "sdp"));
  EXPECT_THAT(Str(looped, "warning"), HasSubstr("already rewritten"));
}

TEST_F(NgTest, LateOfferAndForksByViaBranch) {
  NgClient client(ng_port_);
  // Late offer: the offer is in the callee's 200 (tags swapped), the answer in the ACK.
  Value offer = Request("offer", "late@ng", "callee", "caller", testing::AudioSdp("127.0.0.1", 43000));
  ASSERT_EQ(Str(client.Call(offer), "result"), "ok");
  Value answer = Request("answer", "late@ng", "callee", "caller", testing::AudioSdp("127.0.0.1", 43002));
  ASSERT_EQ(Str(client.Call(answer), "result"), "ok");

  // A parallel fork: one offer per branch, each its own ports; a delete of one branch leaves the other.
  Value b1 = Request("offer", "fork@ng", "A", "", testing::AudioSdp("127.0.0.1", 44000));
  b1.Set("via-branch", Value::String("z9hG4bK-1"));
  Value b2 = b1;
  b2.Set("via-branch", Value::String("z9hG4bK-2"));
  const int port1 = FirstMedia(Str(client.Call(b1), "sdp")).port;
  const int port2 = FirstMedia(Str(client.Call(b2), "sdp")).port;
  EXPECT_NE(port1, port2);
  EXPECT_EQ(LiveSessions().size(), 3u);
  Value delete1 = Request("delete", "fork@ng", "A");
  delete1.Set("via-branch", Value::String("z9hG4bK-1"));
  delete1.Set("delete delay", Value::Integer(0));
  EXPECT_EQ(Str(client.Call(delete1), "result"), "ok");
  EXPECT_TRUE(testing::WaitFor([&] { return LiveSessions().size() == 2u; }, absl::Seconds(5)));
  Value query2 = Request("query", "fork@ng", "A");
  query2.Set("via-branch", Value::String("z9hG4bK-2"));
  EXPECT_EQ(Str(client.Call(query2), "result"), "ok");
}

TEST_F(NgTest, UnknownCallsAndBadRequestsAreAnsweredNeverSilentAndLeakNothing) {
  NgClient client(ng_port_);
  const Value unknown_answer = client.Call(Request("answer", "nope@ng", "A", "B", testing::AudioSdp("127.0.0.1", 45000)));
  EXPECT_EQ(Str(unknown_answer, "result"), "error");
  EXPECT_EQ(Str(unknown_answer, "error-reason"), "Unknown call-id");
  EXPECT_EQ(Str(client.Call(Request("query", "nope@ng", "A")), "error-reason"), "Unknown call-id");
  Value fatal = Request("delete", "nope@ng", "A");
  fatal.Set("flags", Strings({"fatal"}));
  EXPECT_EQ(Str(client.Call(fatal), "result"), "error");

  // Structural errors name the key.
  Value no_sdp = Request("offer", "bad@ng", "A");
  EXPECT_THAT(Str(client.Call(no_sdp), "error-reason"), HasSubstr("sdp"));
  Value wrong_type = Request("offer", "bad@ng", "A", "", testing::AudioSdp("127.0.0.1", 45000));
  wrong_type.Set("from-tag", Strings({"a", "b"}));
  EXPECT_THAT(Str(client.Call(wrong_type), "error-reason"), HasSubstr("from-tag"));
  Value srtp = Request("offer", "bad@ng", "A", "", testing::AudioSdp("127.0.0.1", 45000));
  srtp.Set("transport-protocol", Value::String("RTP/SAVP"));
  EXPECT_THAT(Str(client.Call(srtp), "error-reason"), HasSubstr("transport-protocol"));

  // Malformed datagrams: an error reply when there is a cookie, nothing without one.
  int cookie = 0;
  for (const std::string& body : {std::string("d7:command4:ping"), std::string("d7:command"),
                                  std::string("li1ee"), std::string("d3:sdp99999999999:xe"),
                                  absl::StrCat("d7:command5:offer3:sdp", 60000, ":", std::string(60000, 'x'), "e"),
                                  std::string(64000, '\xff')}) {
    const std::string this_cookie = absl::StrCat("9_9_", ++cookie);
    client.SendRaw(absl::StrCat(this_cookie, " ", body));
    auto reply = client.ReceiveRaw(absl::Seconds(1));
    ASSERT_TRUE(reply.has_value()) << body.substr(0, 40);
    EXPECT_TRUE(absl::StartsWith(*reply, this_cookie + " d6:result5:error")) << reply->substr(0, 200);
  }
  client.SendRaw("no-cookie-at-all");
  EXPECT_FALSE(client.ReceiveRaw(absl::Milliseconds(300)).has_value());
  // A cookie no client uses (Kamailio's are ~20 bytes) would only fill the reply cache: dropped.
  client.SendRaw(std::string(60000, 'c') + " d7:command4:pinge");
  EXPECT_FALSE(client.ReceiveRaw(absl::Milliseconds(300)).has_value());
  EXPECT_TRUE(LiveSessions().empty());
  const std::string metrics = control_->Metrics();
  EXPECT_EQ(testing::MetricValue(metrics, "latchkey_ng_datagrams_dropped_total{reason=\"no_cookie\"}"), 1.0);
  EXPECT_EQ(testing::MetricValue(metrics, "latchkey_ng_datagrams_dropped_total{reason=\"long_cookie\"}"), 1.0);
  EXPECT_GE(testing::MetricValue(metrics, "latchkey_ng_requests_total{command=\"offer\",result=\"error\"}"), 2.0);
}

TEST(NgFrontDoorTest, WithoutARelayKamailioIsToldToTryItsNextNode) {
  const int ng_port = testing::FreeUdpRange(2);
  auto control = testing::LocalControl::Start(absl::StrCat("ng { listen: \"127.0.0.1:", ng_port, "\" }"));
  ASSERT_TRUE(control.ok()) << control.status();
  NgClient client(ng_port);
  const Value limited = client.Call(Request("offer", "nw@ng", "A", "", testing::AudioSdp("127.0.0.1", 46000)));
  EXPECT_EQ(Str(limited, "result"), "load limit");
  Value old_client = Request("offer", "nw@ng", "A", "", testing::AudioSdp("127.0.0.1", 46000));
  old_client.Set("supports", Value::List());
  const Value out_of_ports = client.Call(old_client);
  EXPECT_EQ(Str(out_of_ports, "result"), "error");
  EXPECT_EQ(Str(out_of_ports, "error-reason"), "Ran out of ports");
}

TEST(NgFrontDoorTest, AWildcardListenerRepliesFromTheAddressEachRequestReached) {
  const int ng_port = testing::FreeUdpRange(2);
  auto control = testing::LocalControl::Start(absl::StrCat("ng { listen: \"0.0.0.0:", ng_port, "\" }"));
  ASSERT_TRUE(control.ok()) << control.status();
  Value ping = Value::Dictionary();
  ping.Set("command", Value::String("ping"));
  // Connected sockets see only replies from the address they sent to (as Kamailio's do).
  for (const char* ip : {"127.0.0.1", "127.0.0.7"}) {
    NgClient client(ng_port, ip);
    EXPECT_EQ(Str(client.Call(ping), "result"), "pong") << ip;
  }
}

TEST(NgFrontDoorTest, SourcesOutsideNgAllowGetNoAnswer) {
  const int ng_port = testing::FreeUdpRange(2);
  auto control = testing::LocalControl::Start(
      absl::StrCat("ng { listen: \"127.0.0.1:", ng_port, "\" allow: \"192.0.2.0/24\" }"));
  ASSERT_TRUE(control.ok()) << control.status();
  NgClient client(ng_port);
  client.SendRaw("1_1_1 d7:command4:pinge");
  EXPECT_FALSE(client.ReceiveRaw(absl::Milliseconds(500)).has_value());
  EXPECT_EQ(testing::MetricValue((*control)->Metrics(), "latchkey_ng_datagrams_dropped_total{reason=\"not_allowed\"}"),
            1.0);
}

}  // namespace
}  // namespace latchkey
