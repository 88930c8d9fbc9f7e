// The ng commands on the real session core (SessionManager, memory store) with a fake relay.
#include "services/control/ng/commands.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/control/sessions/session_sweeper.h"
#include "tests/unit/services/control/sessions/session_test_util.h"

namespace latchkey::control::ng {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using session_test::kT0;

constexpr char kOfferSdp[] =
    "v=0\r\no=- 1 1 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
constexpr char kAnswerSdp[] =
    "v=0\r\no=- 2 1 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";

Value Request(const std::string& command, const std::string& from, const std::string& to = "",
              const char* sdp = nullptr) {
  Value body = Value::Dictionary();
  if (sdp != nullptr) body.Set("sdp", Value::String(sdp));
  body.Set("call-id", Value::String("call@ng"));
  Value received = Value::List();
  received.Add(Value::String("IP4"));
  received.Add(Value::String("203.0.113.5"));
  body.Set("received-from", received);
  body.Set("from-tag", Value::String(from));
  if (!to.empty()) body.Set("to-tag", Value::String(to));
  body.Set("command", Value::String(command));
  return body;
}

std::string Str(const Value& v, const std::string& key) {
  const Value* found = v.Find(key);
  return found != nullptr && found->is_string() ? found->string() : "";
}

class NgCommandsTest : public session_test::SessionCoreFixture {
 protected:
  NgCommandsTest()
      : manager_(SessionManagerOptions{}, &store_, &writer_, &relay_, &metrics_, &detector_, nullptr),
        handler_(Options(), &manager_, &store_, [this] { return now_; }) {}

  static CommandOptions Options() {
    CommandOptions options;
    options.caller = grpcutil::Caller::Of(auth::Role::kPbx, "ng");
    options.delete_delay = absl::Seconds(30);
    options.max_sessions_per_call = 3;
    return options;
  }

  Value Handle(const Value& body) {
    Outcome outcome;
    Value reply = handler_.Handle(body, "10.0.0.1", &outcome);
    last_ = outcome;
    return reply;
  }

  std::vector<v1::Session> Live() { return store_.ListLiveCall("pbx/ng", "call@ng", 100).value(); }

  SessionManager manager_;
  CommandHandler handler_;
  Outcome last_;
};

TEST_F(NgCommandsTest, OfferAnswerAndDeleteWithItsDelay) {
  const Value offer = Handle(Request("offer", "A", "", kOfferSdp));
  ASSERT_EQ(Str(offer, "result"), "ok") << Str(offer, "error-reason");
  EXPECT_THAT(Str(offer, "sdp"), HasSubstr("m=audio 20002 "));  // the fake relay's callee-side port
  ASSERT_EQ(Live().size(), 1u);
  EXPECT_EQ(Live()[0].owner(), "pbx/ng");
  EXPECT_EQ(Live()[0].caller().signaling_source().ip(), "203.0.113.5");
  EXPECT_EQ(Live()[0].caller().signaling_source().port(), 0u);
  EXPECT_EQ(Live()[0].options().latching_mode(), v1::LATCHING_MODE_HEURISTIC);

  const Value answer = Handle(Request("answer", "A", "B", kAnswerSdp));
  ASSERT_EQ(Str(answer, "result"), "ok") << Str(answer, "error-reason");
  EXPECT_THAT(Str(answer, "sdp"), HasSubstr("m=audio 20000 "));
  EXPECT_EQ(Live()[0].state(), v1::SESSION_STATE_ANSWERED);

  // delete: ok at once, the session lives on for the delete delay.
  EXPECT_EQ(Str(Handle(Request("delete", "A")), "result"), "ok");
  ASSERT_EQ(Live().size(), 1u);
  EXPECT_EQ(FromProto(Live()[0].release_at()), kT0 + absl::Seconds(30));
  SessionSweeper sweeper(&store_, &writer_);
  now_ = kT0 + absl::Seconds(31);
  EXPECT_EQ(sweeper.SweepExpired(), 1u);
  EXPECT_THAT(Live(), IsEmpty());
  // A delete of what is gone: ok with a warning.
  const Value again = Handle(Request("delete", "A"));
  EXPECT_EQ(Str(again, "result"), "ok");
  EXPECT_THAT(Str(again, "warning"), HasSubstr("not found"));
}

TEST_F(NgCommandsTest, ASignallingRaceRevivesACallDuringItsDeleteDelay) {
  Handle(Request("offer", "A", "", kOfferSdp));
  Handle(Request("answer", "A", "B", kAnswerSdp));
  Value fast_delete = Request("delete", "B");  // the callee's BYE: from-tag is the callee's
  fast_delete.Set("delete delay", Value::Integer(10));
  EXPECT_EQ(Str(Handle(fast_delete), "result"), "ok");
  EXPECT_EQ(FromProto(Live()[0].release_at()), kT0 + absl::Seconds(10));
  // The callee's 200 retransmitted (same SDP): the call stays released.
  EXPECT_EQ(Str(Handle(Request("answer", "A", "B", kAnswerSdp)), "result"), "ok");
  EXPECT_TRUE(Live()[0].has_release_at());
  // A re-INVITE with new media racing the BYE revives it.
  constexpr char kMoved[] =
      "v=0\r\no=- 1 2 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\n";
  EXPECT_EQ(Str(Handle(Request("offer", "A", "B", kMoved)), "result"), "ok");
  EXPECT_FALSE(Live()[0].has_release_at());
}

TEST_F(NgCommandsTest, InDialogRequestsFollowTheDialogueWhateverTheirViaBranch) {
  // A forked offer answered on branch b1 (the cfg's via-branch=auto-next on initial requests only).
  Value offer = Request("offer", "A", "", kOfferSdp);
  offer.Set("via-branch", Value::String("b1"));
  const std::string to_callee = Str(Handle(offer), "sdp");
  Value answer = Request("answer", "A", "B", kAnswerSdp);
  answer.Set("via-branch", Value::String("b1"));
  const std::string to_caller = Str(Handle(answer), "sdp");
  // The caller's re-INVITE carries no via-branch: the same session, the same ports.
  const Value reoffer = Handle(Request("offer", "A", "B", kOfferSdp));
  EXPECT_EQ(Str(reoffer, "sdp"), to_callee);
  EXPECT_EQ(Str(Handle(Request("answer", "A", "B", kAnswerSdp)), "sdp"), to_caller);
  EXPECT_EQ(Live().size(), 1u);
}

TEST_F(NgCommandsTest, AnAnswerFromANewTagTakesOverTheCalleeForLaterRequests) {
  Handle(Request("offer", "A", "", kOfferSdp));
  Handle(Request("answer", "A", "X", kAnswerSdp));  // 183 from X
  const Value from_y = Handle(Request("answer", "A", "Y", kAnswerSdp));  // 200 from Y
  EXPECT_EQ(Str(from_y, "result"), "ok");
  EXPECT_THAT(Str(from_y, "warning"), HasSubstr("callee's tag"));
  ASSERT_EQ(Live().size(), 1u);
  EXPECT_EQ(Live()[0].callee().tag(), "Y");
  // Y's re-INVITE updates that session; Y's BYE ends it.
  EXPECT_EQ(Str(Handle(Request("offer", "Y", "A", kAnswerSdp)), "result"), "ok");
  EXPECT_EQ(Live().size(), 1u);
  Value bye = Request("delete", "Y");
  bye.Set("delete delay", Value::Integer(0));
  Handle(bye);
  EXPECT_THAT(Live(), IsEmpty());
}

TEST_F(NgCommandsTest, QueryGivesTheTotalsRtpstatReads) {
  Handle(Request("offer", "A", "", kOfferSdp));
  Handle(Request("answer", "A", "B", kAnswerSdp));
  v1::GetRelaySessionResponse figures;
  figures.mutable_caller()->set_packets_in(10);
  figures.mutable_caller()->set_bytes_in(1720);
  figures.mutable_callee()->set_packets_in(5);
  figures.mutable_callee()->set_bytes_in(860);
  figures.mutable_callee()->set_packets_dropped(2);
  relay_.SetStats(true, figures);
  const Value query = Handle(Request("query", "A", "B"));
  ASSERT_EQ(Str(query, "result"), "ok");
  const Value* rtp = query.Find("totals")->Find("RTP");
  EXPECT_EQ(rtp->Find("packets")->integer(), 15);
  EXPECT_EQ(rtp->Find("bytes")->integer(), 2580);
  EXPECT_EQ(rtp->Find("errors")->integer(), 2);
  EXPECT_EQ(query.Find("totals")->Find("RTCP")->Find("packets")->integer(), 0);
  EXPECT_NE(query.Find("tags")->Find("A"), nullptr);
  EXPECT_NE(query.Find("tags")->Find("B"), nullptr);
  // Small enough for one datagram on any path (rtpengine's own run to 2 KB and fragment).
  EXPECT_LT(Encode(query).size(), 1200u);
}

TEST_F(NgCommandsTest, CapacityFailuresTellKamailioToTryItsNextNode) {
  relay_.FailCreate(absl::ResourceExhaustedError("no relay worker has free ports"));
  Value offer = Request("offer", "A", "", kOfferSdp);
  Value with_support = offer;
  Value supports = Value::List();
  supports.Add(Value::String("load limit"));
  with_support.Set("supports", supports);
  EXPECT_EQ(Str(Handle(with_support), "result"), "load limit");
  const Value error = Handle(offer);
  EXPECT_EQ(Str(error, "result"), "error");
  EXPECT_EQ(Str(error, "error-reason"), "Ran out of ports");
  EXPECT_EQ(Str(ErrorReply(absl::ResourceExhaustedError("max_sessions_per_pbx: 5 live sessions"), false),
                "error-reason"),
            "Parallel session limit reached");
  EXPECT_THAT(Live(), IsEmpty());
}

TEST_F(NgCommandsTest, ForksAreBoundedPerCall) {
  for (int i = 0; i < 3; ++i) {
    Value branch = Request("offer", "A", "", kOfferSdp);
    branch.Set("via-branch", Value::String("b" + std::to_string(i)));
    ASSERT_EQ(Str(Handle(branch), "result"), "ok");
  }
  Value fourth = Request("offer", "A", "", kOfferSdp);
  fourth.Set("via-branch", Value::String("b3"));
  const Value refused = Handle(fourth);
  EXPECT_EQ(Str(refused, "result"), "error");
  EXPECT_THAT(Str(refused, "error-reason"), HasSubstr("via-branch"));
  // A known branch is still a re-offer.
  Value known = Request("offer", "A", "", kOfferSdp);
  known.Set("via-branch", Value::String("b1"));
  EXPECT_EQ(Str(Handle(known), "result"), "ok");
  EXPECT_EQ(Live().size(), 3u);
}

TEST_F(NgCommandsTest, UnknownKeysAreCountedAndUnsupportedCommandsAnswered) {
  Value offer = Request("offer", "A", "", kOfferSdp);
  offer.Set("metadata", Value::String("x"));
  Value flags = Value::List();
  flags.Add(Value::String("no-such-flag"));
  offer.Set("flags", flags);
  EXPECT_EQ(Str(Handle(offer), "result"), "ok");
  EXPECT_EQ(last_.ignored, 2u);
  const Value play = Handle(Request("play media", "A"));
  EXPECT_EQ(Str(play, "result"), "error");
  EXPECT_THAT(Str(play, "error-reason"), HasSubstr("Unrecognized command"));
}

}  // namespace
}  // namespace latchkey::control::ng
