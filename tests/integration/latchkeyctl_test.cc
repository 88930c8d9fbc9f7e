// latchkeyctl against real latchkey-control and latchkey-relay processes over loopback: exit codes,
// human output and --json, as an operator would see them.
#include <sys/wait.h>

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
    auto relay = LocalRelay::Start(control_->address(), "relay-a");
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = *std::move(relay);
    stub_ = control_->Stub();
    ASSERT_TRUE(WaitForWorker(*stub_, "relay-a", absl::Seconds(10)));
  }

  std::vector<std::string> Argv(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {LATCHKEYCTL_BIN, "--server=" + control_->address(), "--timeout=5s"};
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
}

}  // namespace
}  // namespace latchkey::testing
