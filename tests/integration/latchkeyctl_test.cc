// latchkeyctl against real latchkey-control and latchkey-relay processes over loopback: exit codes,
// human output and --json, as an operator would see them.
#include <sys/wait.h>

#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "latchkey/v1/nat_control.pb.h"
#include "tests/integration/support/cluster.h"
#include "tests/integration/support/process.h"
#include "tests/integration/support/udp_peer.h"

namespace latchkey::testing {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kCommandTimeout = absl::Seconds(20);

// Registers the NATed phone of the examples: private Contact, public source.
std::vector<std::string> RegisterAlice(const std::string& aor = "sip:alice@example.com") {
  return {"register",
          "--aor=" + aor,
          "--contact=<sip:alice@192.168.1.20:5060>",
          "--source=203.0.113.7:41234",
          "--registrar=127.0.0.1:5060",
          "--via=SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK776asdhds;rport",
          "--user_agent=Yealink SIP-T46S"};
}

class LatchkeyctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto control = LocalControl::Start();
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = *std::move(control);
    auto relay = LocalRelay::Start(*control_, "relay-a");
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = *std::move(relay);
    stub_ = control_->Stub();
    ASSERT_TRUE(WaitForWorker(*stub_, "relay-a", absl::Seconds(10)));
  }

  std::vector<std::string> Argv(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {LATCHKEYCTL_BIN, "--server=" + control_->address(), "--timeout=5s"};
    auto tls = testing::TestTls(auth::Role::kOperator, "test");
    if (tls.ok()) {
      for (const std::string& flag : testing::TlsFlags(*tls)) argv.push_back(flag);
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  CommandResult Ctl(const std::vector<std::string>& args) const { return RunCommand(Argv(args), kCommandTimeout); }

  std::unique_ptr<LocalControl> control_;
  std::unique_ptr<LocalRelay> relay_;
  std::unique_ptr<v1::NatControlService::Stub> stub_;
};

TEST_F(LatchkeyctlTest, HealthPrintsServing) {
  CommandResult result = Ctl({"health"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("SERVING"));
  EXPECT_THAT(result.output, Not(HasSubstr("NOT_SERVING")));
}

TEST(LatchkeyctlStandaloneTest, HealthOfUnreachableServerFails) {
  CommandResult result = RunCommand(
      {LATCHKEYCTL_BIN, absl::StrCat("--server=127.0.0.1:", FreeTcpPort()), "--timeout=2s", "health"}, kCommandTimeout);
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("latchkeyctl: health: UNAVAILABLE: "));
}

TEST_F(LatchkeyctlTest, RegisterOfNatedPhoneShowsVerdictAndRewrittenContact) {
  CommandResult result = Ctl(RegisterAlice());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, ContainsRegex("verdict: +behind_nat"));
  EXPECT_THAT(result.output, HasSubstr("contact_private"));
  EXPECT_THAT(result.output, ContainsRegex("effective_contact: +<sip:alice@203.0.113.7:41234>"));
  EXPECT_THAT(result.output, ContainsRegex("result: +created"));
  EXPECT_THAT(result.output, ContainsRegex("suggested_expires: +[0-9]+s"));

  // A refresh from the same phone is the same binding.
  result = Ctl(RegisterAlice());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, ContainsRegex("result: +refreshed"));
}

TEST_F(LatchkeyctlTest, BindingsListShowsRegisteredPhoneAsTableAndJson) {
  ASSERT_EQ(Ctl(RegisterAlice()).exit_code, 0);

  CommandResult table = Ctl({"bindings", "list"});
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("BINDING_ID"));
  EXPECT_THAT(table.output, ContainsRegex("sip:alice@example.com +behind_nat +udp +203.0.113.7:41234"));

  CommandResult json = Ctl({"--json", "bindings", "list"});
  ASSERT_EQ(json.exit_code, 0) << json.output;
  v1::ListBindingsResponse listed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.output, &listed).ok()) << json.output;
  ASSERT_EQ(listed.bindings_size(), 1) << json.output;
  const v1::Binding& binding = listed.bindings(0);
  EXPECT_EQ(binding.aor(), "sip:alice@example.com");
  EXPECT_EQ(binding.verdict().state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_EQ(binding.source().ip(), "203.0.113.7");
  EXPECT_EQ(binding.source().port(), 41234u);

  // Filters: by NAT state and AOR.
  CommandResult not_natted = Ctl({"bindings", "list", "--nat=not"});
  ASSERT_EQ(not_natted.exit_code, 0) << not_natted.output;
  EXPECT_THAT(not_natted.output, Not(HasSubstr("sip:alice@example.com")));
  CommandResult other_aor = Ctl({"bindings", "list", "--aor=sip:bob@example.com"});
  ASSERT_EQ(other_aor.exit_code, 0) << other_aor.output;
  EXPECT_THAT(other_aor.output, Not(HasSubstr("sip:alice@example.com")));

  // get and release by the id the list returned.
  CommandResult got = Ctl({"bindings", "get", binding.binding_id()});
  ASSERT_EQ(got.exit_code, 0) << got.output;
  EXPECT_THAT(got.output, ContainsRegex("binding_id: +" + binding.binding_id()));
  EXPECT_THAT(got.output, ContainsRegex("user_agent: +Yealink SIP-T46S"));
  CommandResult released = Ctl({"bindings", "release", binding.binding_id()});
  ASSERT_EQ(released.exit_code, 0) << released.output;
  EXPECT_THAT(Ctl({"bindings", "get", binding.binding_id()}).output, HasSubstr("NOT_FOUND"));
}

TEST_F(LatchkeyctlTest, BindingsListFollowsPagesUpToLimit) {
  // More than one server page (at most 1000), registered straight through the API to be quick.
  constexpr int kBindings = 1005;
  for (int i = 0; i < kBindings; ++i) {
    v1::AllocateBindingRequest request;
    request.set_aor(absl::StrCat("sip:user", i, "@example.com"));
    request.set_contact(absl::StrCat("<sip:user", i, "@192.168.1.20:5060>"));
    request.set_transport(v1::TRANSPORT_UDP);
    request.mutable_source()->set_ip("203.0.113.7");
    request.mutable_source()->set_port(static_cast<uint32_t>(20000 + i));
    request.mutable_registrar()->set_ip("127.0.0.1");
    request.mutable_registrar()->set_port(5060);
    request.mutable_expires()->set_seconds(3600);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    v1::AllocateBindingResponse response;
    ASSERT_TRUE(stub_->AllocateBinding(&context, request, &response).ok());
  }
  auto count = [&](const std::vector<std::string>& args) {
    CommandResult result = Ctl(args);
    EXPECT_EQ(result.exit_code, 0) << result.output.substr(0, 2000);
    v1::ListBindingsResponse listed;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(result.output, &listed).ok())
        << result.output.substr(0, 2000);
    return listed.bindings_size();
  };
  EXPECT_EQ(count({"--json", "bindings", "list"}), kBindings);
  EXPECT_EQ(count({"--json", "bindings", "list", "--limit=1002"}), 1002);
  EXPECT_EQ(count({"--json", "bindings", "list", "--limit=3"}), 3);
  EXPECT_EQ(count({"--json", "bindings", "list", "--aor=sip:user7@example.com"}), 1);
}

TEST_F(LatchkeyctlTest, UnknownIdsAreNotFound) {
  CommandResult result = Ctl({"bindings", "get", "b000000000000000"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("latchkeyctl: bindings get: NOT_FOUND: "));

  result = Ctl({"sessions", "get", "s000000000000000"});
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("latchkeyctl: sessions get: NOT_FOUND: "));
}

TEST_F(LatchkeyctlTest, WorkersListShowsReadyRelay) {
  CommandResult result = Ctl({"workers", "list"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, ContainsRegex("relay-a +ready +" + relay_->address()));
  EXPECT_THAT(result.output, HasSubstr("ago"));
}

TEST_F(LatchkeyctlTest, WorkersDrainMarksRelayDraining) {
  CommandResult drained = Ctl({"workers", "drain", "relay-a"});
  ASSERT_EQ(drained.exit_code, 0) << drained.output;
  EXPECT_THAT(drained.output, ContainsRegex("state: +draining"));

  CommandResult listed = Ctl({"workers", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_THAT(listed.output, ContainsRegex("relay-a +draining"));

  CommandResult unknown = Ctl({"workers", "drain", "relay-zz"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_THAT(unknown.output, HasSubstr("NOT_FOUND"));
}

TEST_F(LatchkeyctlTest, WorkersUndrainPutsTheRelayBack) {
  ASSERT_EQ(Ctl({"workers", "drain", "relay-a"}).exit_code, 0);
  CommandResult undrained = Ctl({"workers", "undrain", "relay-a"});
  ASSERT_EQ(undrained.exit_code, 0) << undrained.output;
  // READY once the relay's next heartbeat says it no longer drains.
  EXPECT_TRUE(WaitForWorker(*stub_, "relay-a", absl::Seconds(5)));
  CommandResult unknown = Ctl({"workers", "undrain", "relay-zz"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_THAT(unknown.output, HasSubstr("NOT_FOUND"));
}

TEST_F(LatchkeyctlTest, TheRightCertificateIsNeeded) {
  // No certificate: the TLS port does not speak plaintext.
  CommandResult plaintext =
      RunCommand({LATCHKEYCTL_BIN, "--server=" + control_->address(), "--timeout=3s", "workers", "list"}, kCommandTimeout);
  EXPECT_EQ(plaintext.exit_code, 1) << plaintext.output;
  EXPECT_THAT(plaintext.output, HasSubstr("UNAVAILABLE"));
  // A PBX's certificate: the workers are not its business.
  auto pbx = testing::TestTls(auth::Role::kPbx, "pbx-a");
  ASSERT_TRUE(pbx.ok());
  std::vector<std::string> argv = {LATCHKEYCTL_BIN, "--server=" + control_->address(), "--timeout=3s"};
  for (const std::string& flag : testing::TlsFlags(*pbx)) argv.push_back(flag);
  argv.insert(argv.end(), {"workers", "drain", "relay-a"});
  CommandResult as_pbx = RunCommand(argv, kCommandTimeout);
  EXPECT_EQ(as_pbx.exit_code, 1) << as_pbx.output;
  EXPECT_THAT(as_pbx.output, HasSubstr("PERMISSION_DENIED: DrainWorker needs role operator"));
  // Half a TLS configuration is a usage error naming what is missing.
  CommandResult half = RunCommand({LATCHKEYCTL_BIN, "--server=" + control_->address(), "--tls_cert=" + pbx->cert_file(),
                                   "workers", "list"},
                                  kCommandTimeout);
  EXPECT_EQ(half.exit_code, 2) << half.output;
  EXPECT_THAT(half.output, HasSubstr("--tls_ca"));
}

TEST_F(LatchkeyctlTest, DemoCallReplacesPhoneAddressesWithRelay) {
  CommandResult result = Ctl({"demo-call"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("c=IN IP4 127.0.0.1"));
  EXPECT_THAT(result.output, Not(HasSubstr("192.168.1.20")));
  EXPECT_THAT(result.output, Not(HasSubstr("198.51.100.9:5004")));
  // Media went through the relay both ways and the caller leg latched onto its real source.
  EXPECT_THAT(result.output, HasSubstr("each phone sent 50 RTP packets"));
  EXPECT_THAT(result.output, ::testing::ContainsRegex("caller media: +latched 127\\.0\\.0\\.1:[0-9]+, in 50, out [1-9]"));

  // Both rewritten SDPs (for the callee, for the caller) put their m= port inside the relay's range.
  const std::regex media_line("m=audio ([0-9]+) ");
  int media_lines = 0;
  for (auto it = std::sregex_iterator(result.output.begin(), result.output.end(), media_line);
       it != std::sregex_iterator(); ++it) {
    const int port = std::stoi((*it)[1].str());
    EXPECT_GE(port, relay_->port_min());
    EXPECT_LE(port, relay_->port_max());
    ++media_lines;
  }
  EXPECT_EQ(media_lines, 2) << result.output;

  // The call was released: listed as ended.
  CommandResult sessions = Ctl({"sessions", "list"});
  ASSERT_EQ(sessions.exit_code, 0) << sessions.output;
  EXPECT_THAT(sessions.output, ContainsRegex("demo-[0-9a-f]+@latchkeyctl +ended +relay-a"));
}

TEST_F(LatchkeyctlTest, DemoCallJsonPrintsEachResponse) {
  CommandResult result = Ctl({"--json", "demo-call"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::vector<std::string> lines = absl::StrSplit(result.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << result.output;
  v1::AllocateSessionResponse allocated;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines[0], &allocated).ok()) << lines[0];
  v1::ReleaseSessionResponse released;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines[3], &released).ok()) << lines[3];
  EXPECT_EQ(released.session().session_id(), allocated.session().session_id());
  EXPECT_EQ(released.session().state(), v1::SESSION_STATE_ENDED);

  CommandResult got = Ctl({"sessions", "get", allocated.session().session_id()});
  ASSERT_EQ(got.exit_code, 0) << got.output;
  EXPECT_THAT(got.output, ContainsRegex("state: +ended"));
  EXPECT_THAT(got.output, ContainsRegex("remote\\[0\\]: +audio 192.168.1.20:4000"));
  EXPECT_THAT(got.output, ContainsRegex("relay\\[0\\]: +rtp 127.0.0.1:[0-9]+"));
}

// An SDP as a phone sends it: media on IP:PORT.
std::string PhoneSdp(const std::string& ip, int port) {
  return absl::StrCat("v=0\r\no=- 1 1 IN IP4 ", ip, "\r\ns=-\r\nc=IN IP4 ", ip, "\r\nt=0 0\r\nm=audio ", port,
                      " RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n");
}

// Writes `text` to a fresh file in `dir`; returns its path.
std::string WriteFile(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// sessions offer / answer as a script uses them: --json, ids and relay endpoints read from the JSON,
// the session left up, media through it from the relay endpoints the JSON named.
TEST_F(LatchkeyctlTest, SessionsOfferAndAnswerJsonPlaceCallThatStaysUp) {
  const std::string dir = ScratchDir("sessions-offer-answer");
  // The caller is behind NAT (private SDP address), the callee's media port is a real socket.
  UdpPeer caller;
  UdpPeer callee;
  ASSERT_NE(caller.port(), 0);
  ASSERT_NE(callee.port(), 0);
  const std::string offer_sdp = WriteFile(dir, "offer.sdp", PhoneSdp("192.168.1.20", 4000));
  const std::string answer_sdp = WriteFile(dir, "answer.sdp", PhoneSdp("127.0.0.1", callee.port()));

  CommandResult offered_out =
      Ctl({"--json", "sessions", "offer", "--call_id=cli-1@pbx", "--from_tag=caller-a", "--sdp=" + offer_sdp,
           "--signaling_source=127.0.0.1:5060", "--latching_mode=signaling_source", "--media_timeout=30s"});
  ASSERT_EQ(offered_out.exit_code, 0) << offered_out.output;
  v1::AllocateSessionResponse offered;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(offered_out.output, &offered).ok()) << offered_out.output;
  const v1::Session& session = offered.session();
  const std::string id = session.session_id();
  ASSERT_FALSE(id.empty()) << offered_out.output;
  EXPECT_EQ(session.call_id(), "cli-1@pbx");
  EXPECT_EQ(session.state(), v1::SESSION_STATE_OFFERED);
  EXPECT_EQ(session.worker_id(), "relay-a");
  EXPECT_EQ(session.caller().tag(), "caller-a");
  EXPECT_EQ(session.caller().signaling_source().ip(), "127.0.0.1");
  EXPECT_EQ(session.caller().signaling_source().port(), 5060u);
  EXPECT_EQ(session.caller().latching_mode(), v1::LATCHING_MODE_SIGNALING_SOURCE);
  EXPECT_EQ(session.options().media_timeout().seconds(), 30);
  ASSERT_EQ(session.caller().remote_size(), 1) << offered_out.output;
  EXPECT_EQ(session.caller().remote(0).sdp_rtp().ip(), "192.168.1.20");
  EXPECT_EQ(session.caller().remote(0).sdp_rtp().port(), 4000u);
  // The SDP for the callee names the callee leg's relay address and port, not the caller's private ones.
  ASSERT_EQ(session.callee().relay_size(), 1) << offered_out.output;
  const uint32_t callee_relay = session.callee().relay(0).rtp().port();
  EXPECT_GE(callee_relay, static_cast<uint32_t>(relay_->port_min()));
  EXPECT_LE(callee_relay, static_cast<uint32_t>(relay_->port_max()));
  EXPECT_THAT(offered.sdp(), HasSubstr(absl::StrCat("m=audio ", callee_relay, " ")));
  EXPECT_THAT(offered.sdp(), HasSubstr("c=IN IP4 127.0.0.1\r\n"));
  EXPECT_THAT(offered.sdp(), Not(HasSubstr("c=IN IP4 192.168.1.20")));  // (o= is kept: no rewrite_origin)

  CommandResult answered_out = Ctl({"--json", "sessions", "answer", id, "--to_tag=callee-b", "--sdp=" + answer_sdp,
                                    "--signaling_source=127.0.0.1:5062"});
  ASSERT_EQ(answered_out.exit_code, 0) << answered_out.output;
  v1::AnswerSessionResponse answered;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(answered_out.output, &answered).ok()) << answered_out.output;
  EXPECT_EQ(answered.session().session_id(), id);
  EXPECT_EQ(answered.session().state(), v1::SESSION_STATE_ANSWERED);
  EXPECT_EQ(answered.session().callee().tag(), "callee-b");
  EXPECT_EQ(answered.session().callee().signaling_source().port(), 5062u);
  ASSERT_EQ(answered.session().caller().relay_size(), 1) << answered_out.output;
  ASSERT_EQ(answered.session().callee().relay_size(), 1) << answered_out.output;
  const uint32_t caller_relay = answered.session().caller().relay(0).rtp().port();
  EXPECT_EQ(answered.session().callee().relay(0).rtp().port(), callee_relay);
  EXPECT_NE(caller_relay, callee_relay);
  EXPECT_THAT(answered.sdp(), HasSubstr(absl::StrCat("m=audio ", caller_relay, " ")));
  EXPECT_THAT(answered.sdp(), Not(HasSubstr(absl::StrCat("m=audio ", callee.port(), " "))));

  // The call is up: the caller's RTP from a port its SDP never named reaches the callee, and the
  // caller leg latches onto that real source.
  for (int i = 0; i < 10; ++i) {
    caller.SendTo(static_cast<uint16_t>(caller_relay),
                  RtpPacket(0x0A11CE00, static_cast<uint16_t>(100 + i), 160u * static_cast<uint32_t>(i)));
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_GE(callee.Drain(absl::Milliseconds(300)).size(), 5u);
  v1::GetSessionResponse got;
  ASSERT_TRUE(WaitFor(
      [&] {
        CommandResult r = Ctl({"--json", "sessions", "get", id});
        return r.exit_code == 0 && google::protobuf::util::JsonStringToMessage(r.output, &got).ok() &&
               got.session().caller().stats().has_latched_source();
      },
      absl::Seconds(5)))
      << got.DebugString();
  EXPECT_EQ(got.session().state(), v1::SESSION_STATE_ANSWERED);
  EXPECT_EQ(got.session().caller().stats().latched_source().ip(), "127.0.0.1");
  EXPECT_EQ(got.session().caller().stats().latched_source().port(), caller.port());

  EXPECT_EQ(Ctl({"sessions", "release", id}).exit_code, 0);
}

TEST_F(LatchkeyctlTest, SessionsOfferAndAnswerPrintSessionAndRewrittenSdp) {
  const std::string dir = ScratchDir("sessions-offer-answer-text");
  // LF line ends, as a shell here-document writes them: accepted.
  const std::string offer_sdp = WriteFile(
      dir, "offer.sdp",
      "v=0\no=- 1 1 IN IP4 192.168.1.20\ns=-\nc=IN IP4 192.168.1.20\nt=0 0\nm=audio 4000 RTP/AVP 0\n");
  const std::string answer_sdp = WriteFile(dir, "answer.sdp", PhoneSdp("198.51.100.9", 5004));

  CommandResult offered = Ctl({"sessions", "offer", "--call_id=cli-2@pbx", "--from_tag=a", "--sdp=" + offer_sdp,
                               "--signaling_source=203.0.113.7:5060"});
  ASSERT_EQ(offered.exit_code, 0) << offered.output;
  std::smatch id_match;
  ASSERT_TRUE(std::regex_search(offered.output, id_match, std::regex("session_id: +([^ \n]+)"))) << offered.output;
  const std::string id = id_match[1].str();
  EXPECT_THAT(offered.output, ContainsRegex("call_id: +cli-2@pbx"));
  EXPECT_THAT(offered.output, ContainsRegex("state: +offered"));
  EXPECT_THAT(offered.output, ContainsRegex("signaling_source: +203.0.113.7:5060"));
  EXPECT_THAT(offered.output, ContainsRegex("remote\\[0\\]: +audio 192.168.1.20:4000"));
  EXPECT_THAT(offered.output, HasSubstr("SDP for the callee"));
  EXPECT_THAT(offered.output, ContainsRegex("\nc=IN IP4 127.0.0.1\n"));
  EXPECT_THAT(offered.output, ContainsRegex("\nm=audio [0-9]+ RTP/AVP 0\n"));
  EXPECT_THAT(offered.output, Not(HasSubstr("\r")));

  // The answer's SDP from stdin (--sdp=-), as a script would pipe it.
  std::vector<std::string> answer_argv =
      Argv({"sessions", "answer", id, "--to_tag=b", "--sdp=-", "--signaling_source=198.51.100.9:5060"});
  std::vector<std::string> piped = {"/bin/sh", "-c", absl::StrCat("exec \"$@\" <'", answer_sdp, "'"), "sh"};
  piped.insert(piped.end(), answer_argv.begin(), answer_argv.end());
  CommandResult answered = RunCommand(piped, kCommandTimeout);
  ASSERT_EQ(answered.exit_code, 0) << answered.output;
  EXPECT_THAT(answered.output, ContainsRegex("session_id: +" + id));
  EXPECT_THAT(answered.output, ContainsRegex("state: +answered"));
  EXPECT_THAT(answered.output, ContainsRegex("remote\\[0\\]: +audio 198.51.100.9:5004"));
  EXPECT_THAT(answered.output, HasSubstr("SDP for the caller"));
  EXPECT_THAT(answered.output, Not(ContainsRegex("\nm=audio 5004 ")));

  // Same rendering as sessions get.
  CommandResult got = Ctl({"sessions", "get", id});
  ASSERT_EQ(got.exit_code, 0) << got.output;
  EXPECT_THAT(answered.output, HasSubstr(got.output.substr(0, got.output.find("updated_at"))));
}

TEST_F(LatchkeyctlTest, SessionsOfferAndAnswerErrorsExitNonZero) {
  const std::string dir = ScratchDir("sessions-offer-errors");
  const std::string offer_sdp = WriteFile(dir, "offer.sdp", PhoneSdp("192.168.1.20", 4000));
  const std::vector<std::string> offer = {"sessions", "offer", "--call_id=cli-3@pbx", "--from_tag=a"};
  auto with = [](std::vector<std::string> args, const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };

  // An SDP file that is not there: a failure naming the file and why.
  CommandResult missing = Ctl(with(offer, {"--sdp=" + dir + "/nope.sdp", "--signaling_source=203.0.113.7:5060"}));
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr("latchkeyctl: sessions offer: --sdp=" + dir +
                                        "/nope.sdp: cannot open: No such file or directory"));
  CommandResult directory = Ctl(with(offer, {"--sdp=" + dir, "--signaling_source=203.0.113.7:5060"}));
  EXPECT_EQ(directory.exit_code, 1) << directory.output;
  EXPECT_THAT(directory.output, HasSubstr("is a directory"));
  CommandResult empty =
      Ctl(with(offer, {"--sdp=" + WriteFile(dir, "empty.sdp", ""), "--signaling_source=203.0.113.7:5060"}));
  EXPECT_EQ(empty.exit_code, 1) << empty.output;
  EXPECT_THAT(empty.output, HasSubstr("empty.sdp: empty"));

  // A signalling source that is no IP:PORT: a usage error.
  for (const std::string bad : {"nowhere", "203.0.113.7", "203.0.113.7:99999", "example.com:5060"}) {
    CommandResult result = Ctl(with(offer, {"--sdp=" + offer_sdp, "--signaling_source=" + bad}));
    EXPECT_EQ(result.exit_code, 2) << bad << "\n" << result.output;
    EXPECT_THAT(result.output, HasSubstr("latchkeyctl: sessions offer: --signaling_source: ")) << bad;
    EXPECT_THAT(result.output, HasSubstr("usage: latchkeyctl [GLOBAL FLAGS] sessions offer --call_id=ID")) << bad;
  }

  // Text that is no SDP: control refuses it, the gRPC status is shown.
  CommandResult not_sdp = Ctl(
      with(offer, {"--sdp=" + WriteFile(dir, "junk.sdp", "hello\n"), "--signaling_source=203.0.113.7:5060"}));
  EXPECT_EQ(not_sdp.exit_code, 1) << not_sdp.output;
  EXPECT_THAT(not_sdp.output, HasSubstr("latchkeyctl: sessions offer: INVALID_ARGUMENT: sdp"));

  // Nothing was placed by any of those.
  CommandResult listed = Ctl({"sessions", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_THAT(listed.output, Not(HasSubstr("cli-3@pbx")));

  // answer: the same checks, and an unknown session is NOT_FOUND.
  CommandResult answer_missing = Ctl({"sessions", "answer", "s000000000000000", "--to_tag=b",
                                      "--sdp=" + dir + "/nope.sdp", "--signaling_source=198.51.100.9:5060"});
  EXPECT_EQ(answer_missing.exit_code, 1) << answer_missing.output;
  EXPECT_THAT(answer_missing.output,
              HasSubstr("latchkeyctl: sessions answer: --sdp=" + dir + "/nope.sdp: cannot open"));
  CommandResult answer_bad_source = Ctl({"sessions", "answer", "s000000000000000", "--to_tag=b",
                                         "--sdp=" + offer_sdp, "--signaling_source=198.51.100.9"});
  EXPECT_EQ(answer_bad_source.exit_code, 2) << answer_bad_source.output;
  EXPECT_THAT(answer_bad_source.output, HasSubstr("latchkeyctl: sessions answer: --signaling_source: "));
  CommandResult answer_unknown = Ctl({"sessions", "answer", "s000000000000000", "--to_tag=b", "--sdp=" + offer_sdp,
                                      "--signaling_source=198.51.100.9:5060"});
  EXPECT_EQ(answer_unknown.exit_code, 1) << answer_unknown.output;
  EXPECT_THAT(answer_unknown.output, HasSubstr("latchkeyctl: sessions answer: NOT_FOUND: "));
}

// Starts `watch ...` in the background and waits until it is subscribed (it says so on stderr).
ChildProcess StartWatch(const std::vector<std::string>& argv, const std::string& log_path) {
  auto watch = ChildProcess::Start(argv, log_path);
  EXPECT_TRUE(watch.ok()) << watch.status();
  if (!watch.ok()) return ChildProcess();
  EXPECT_TRUE(WaitFor([&] { return watch->ReadLog().find("latchkeyctl: watching") != std::string::npos; },
                      absl::Seconds(10)))
      << watch->ReadLog();
  return *std::move(watch);
}

TEST_F(LatchkeyctlTest, WatchBindingsReceivesRegistration) {
  const std::string log = ScratchDir("watch-bindings") + "/watch.log";
  ChildProcess watch =
      StartWatch(Argv({"watch", "bindings", "--aor=sip:alice@example.com", "--count=1", "--duration=15s"}), log);
  ASSERT_TRUE(watch.running());

  ASSERT_EQ(Ctl(RegisterAlice()).exit_code, 0);
  const int status = watch.Wait(absl::Seconds(10));
  ASSERT_NE(status, -1) << "watch did not stop after one event:\n" << watch.ReadLog();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << watch.ReadLog();
  EXPECT_THAT(watch.ReadLog(), ContainsRegex("created b[0-9a-f]+ sip:alice@example.com nat=behind_nat"));
}

TEST_F(LatchkeyctlTest, WatchSessionsJsonPrintsOneObjectPerEvent) {
  const std::string log = ScratchDir("watch-sessions") + "/watch.log";
  ChildProcess watch = StartWatch(Argv({"--json", "watch", "sessions", "--count=2", "--duration=15s"}), log);
  ASSERT_TRUE(watch.running());

  ASSERT_EQ(Ctl({"demo-call"}).exit_code, 0);
  const int status = watch.Wait(absl::Seconds(10));
  ASSERT_NE(status, -1) << watch.ReadLog();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << watch.ReadLog();
  std::vector<v1::WatchSessionsResponse> events;
  for (absl::string_view line : absl::StrSplit(watch.ReadLog(), '\n', absl::SkipEmpty())) {
    if (line.empty() || line[0] != '{') continue;  // the stderr note
    v1::WatchSessionsResponse event;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(line), &event).ok()) << line;
    events.push_back(event);
  }
  ASSERT_EQ(events.size(), 2u) << watch.ReadLog();
  EXPECT_EQ(events[0].type(), v1::SESSION_EVENT_TYPE_ALLOCATED);
  EXPECT_EQ(events[1].type(), v1::SESSION_EVENT_TYPE_ANSWERED);
}

TEST_F(LatchkeyctlTest, WatchStopsAfterDuration) {
  const absl::Time start = absl::Now();
  CommandResult result = Ctl({"watch", "bindings", "--duration=500ms"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(LatchkeyctlStandaloneTest, UsageErrorsExitTwo) {
  const std::string server = absl::StrCat("--server=127.0.0.1:", FreeTcpPort());
  const std::vector<std::vector<std::string>> cases = {
      {},                                              // no command
      {"frob"},                                        // unknown command
      {"bindings"},                                    // missing subcommand
      {"bindings", "get"},                             // missing ID
      {"bindings", "get", "a", "b"},                   // extra argument
      {"health", "--aor=sip:a@b"},                     // flag of another command
      {"--bogus", "health"},                           // unknown flag
      {"--timeout=soon", "health"},                    // bad value
      {"bindings", "list", "--nat=maybe"},             // bad enum
      {"register", "--aor=sip:alice@example.com"},     // missing required flags
      {"register", "--aor=sip:a@b", "--contact=<sip:a@b>", "--source=nowhere", "--registrar=127.0.0.1:5060"},
      {"sessions", "offer", "--from_tag=a", "--sdp=x.sdp", "--signaling_source=127.0.0.1:5060"},  // no --call_id
      {"sessions", "offer", "--call_id=c", "--sdp=x.sdp", "--signaling_source=127.0.0.1:5060"},  // no --from_tag
      {"sessions", "offer", "--call_id=c", "--from_tag=a", "--signaling_source=127.0.0.1:5060"},  // no --sdp
      {"sessions", "offer", "--call_id=c", "--from_tag=a", "--sdp=x.sdp"},  // no --signaling_source
      {"sessions", "offer", "--call_id=c", "--from_tag=a", "--sdp=x.sdp", "--signaling_source=127.0.0.1:5060",
       "--latching_mode=sometimes"},
      {"sessions", "offer", "--call_id=c", "--from_tag=a", "--sdp=x.sdp", "--signaling_source=127.0.0.1:5060",
       "--media_timeout=soon"},
      {"sessions", "offer", "--call_id=c", "--from_tag=a", "--sdp=x.sdp", "--signaling_source=127.0.0.1:5060",
       "--media_timeout=-1s"},
      {"sessions", "offer", "--call_id=c", "--from_tag=a", "--sdp=x.sdp", "--signaling_source=127.0.0.1:5060",
       "--to_tag=b"},                                                                     // answer's flag
      {"sessions", "answer", "--to_tag=b", "--sdp=x.sdp", "--signaling_source=127.0.0.1:5060"},  // no ID
      {"sessions", "answer", "s1", "--sdp=x.sdp", "--signaling_source=127.0.0.1:5060"},  // no --to_tag
      {"sessions", "answer", "s1", "--to_tag=b", "--sdp=x.sdp", "--signaling_source=127.0.0.1:5060",
       "--latching_mode=strict"},                                                         // offer's flag
  };
  for (const auto& args : cases) {
    std::vector<std::string> argv = {LATCHKEYCTL_BIN, server};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult result = RunCommand(argv, kCommandTimeout);
    EXPECT_EQ(result.exit_code, 2) << absl::StrJoin(args, " ") << "\n" << result.output;
    EXPECT_THAT(result.output, HasSubstr("usage: latchkeyctl")) << absl::StrJoin(args, " ");
  }
  CommandResult help = RunCommand({LATCHKEYCTL_BIN, "--help"}, kCommandTimeout);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.output, HasSubstr("demo-call"));
  EXPECT_THAT(help.output,
              HasSubstr("sessions offer --call_id=ID --from_tag=TAG --sdp=FILE --signaling_source=IP:PORT"));
  EXPECT_THAT(help.output, HasSubstr("sessions answer ID --to_tag=TAG --sdp=FILE --signaling_source=IP:PORT"));

  CommandResult no_id = RunCommand({LATCHKEYCTL_BIN, server, "sessions", "answer", "--to_tag=b"}, kCommandTimeout);
  EXPECT_THAT(no_id.output, HasSubstr("latchkeyctl: sessions answer: missing ID\n"));
}

}  // namespace
}  // namespace latchkey::testing
