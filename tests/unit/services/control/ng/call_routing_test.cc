#include "services/control/ng/call_routing.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::control::ng {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

v1::Session Session(const std::string& id, const std::string& caller, const std::string& callee = "",
                    const std::string& branch = "") {
  v1::Session s;
  s.set_session_id(id);
  s.set_call_id("call");
  s.set_branch(branch);
  s.mutable_caller()->set_tag(caller);
  s.mutable_callee()->set_tag(callee);
  s.set_state(callee.empty() ? v1::SESSION_STATE_OFFERED : v1::SESSION_STATE_ANSWERED);
  return s;
}

Command Cmd(const std::string& name, const std::string& from, const std::string& to = "",
            const std::string& branch = "") {
  Command c;
  c.command = name;
  c.call_id = "call";
  c.from_tag = from;
  c.to_tag = to;
  c.via_branch = branch;
  return c;
}

std::vector<std::string> Ids(const std::vector<const v1::Session*>& sessions) {
  std::vector<std::string> out;
  for (const v1::Session* s : sessions) out.push_back(s->session_id());
  return out;
}

TEST(NgCallRoutingTest, OffersCreateReofferOrUpdateTheCalleeByTagRole) {
  EXPECT_EQ(RouteOffer(Cmd("offer", "A"), {}).action, Action::kAllocate);
  const std::vector<v1::Session> call = {Session("s1", "A", "B")};
  // A retransmitted INVITE (no to-tag yet): a re-offer of s1.
  Route reoffer = RouteOffer(Cmd("offer", "A"), call);
  EXPECT_EQ(reoffer.action, Action::kAllocate);
  EXPECT_EQ(reoffer.session, &call[0]);
  // The caller's re-INVITE: an update of the caller's leg.
  Route caller = RouteOffer(Cmd("offer", "A", "B"), call);
  EXPECT_EQ(caller.action, Action::kUpdateCaller);
  EXPECT_EQ(caller.session, &call[0]);
  // The callee's re-INVITE: tags reversed.
  Route callee = RouteOffer(Cmd("offer", "B", "A"), call);
  EXPECT_EQ(callee.action, Action::kUpdateCallee);
  EXPECT_EQ(callee.session, &call[0]);
  // Another party: a new session (a late offer's offerer is the SIP callee).
  EXPECT_EQ(RouteOffer(Cmd("offer", "C", "D"), call).action, Action::kAllocate);
  EXPECT_EQ(RouteOffer(Cmd("offer", "C", "D"), call).session, nullptr);
}

TEST(NgCallRoutingTest, TheCalleeCannotOfferBeforeItAnswered) {
  const std::vector<v1::Session> call = {Session("s1", "A")};
  EXPECT_EQ(RouteOffer(Cmd("offer", "B", "A"), call).action, Action::kRefuse);
}

TEST(NgCallRoutingTest, AnswersFindTheOffererAndTheCalleesReinviteIsAnsweredByTheCaller) {
  const std::vector<v1::Session> offered = {Session("s1", "A")};
  EXPECT_EQ(RouteAnswer(Cmd("answer", "A", "B"), offered).action, Action::kAnswer);
  const std::vector<v1::Session> answered = {Session("s1", "A", "B")};
  // A repeated 200: the same answer again.
  EXPECT_EQ(RouteAnswer(Cmd("answer", "A", "B"), answered).action, Action::kAnswer);
  // 183 from B, then 200 from B2: B2 becomes the callee.
  EXPECT_EQ(RouteAnswer(Cmd("answer", "A", "B2"), answered).action, Action::kAnswer);
  EXPECT_TRUE(RouteAnswer(Cmd("answer", "A", "B2"), answered).retag);
  EXPECT_FALSE(RouteAnswer(Cmd("answer", "A", "B"), answered).retag);
  // The caller's 200 to the callee's re-INVITE.
  EXPECT_EQ(RouteAnswer(Cmd("answer", "B", "A"), answered).action, Action::kUpdateCaller);
  EXPECT_EQ(RouteAnswer(Cmd("answer", "X", "Y"), answered).action, Action::kUnknown);
  EXPECT_EQ(RouteAnswer(Cmd("answer", "A", "B"), {}).action, Action::kUnknown);
}

TEST(NgCallRoutingTest, ForksAreTheirOwnSessionsByViaBranch) {
  const std::vector<v1::Session> call = {Session("b1", "A", "", "z1"), Session("b2", "A", "", "z2"),
                                         Session("plain", "A")};
  // A third branch is new; a known branch is a re-offer of its session only.
  EXPECT_EQ(RouteOffer(Cmd("offer", "A", "", "z3"), call).session, nullptr);
  EXPECT_EQ(RouteOffer(Cmd("offer", "A", "", "z2"), call).session, &call[1]);
  EXPECT_EQ(RouteOffer(Cmd("offer", "A"), call).session, &call[2]);
  // The answer of branch z1 answers that fork.
  EXPECT_EQ(RouteAnswer(Cmd("answer", "A", "B", "z1"), call).session, &call[0]);
  // A via-branch no fork has (the cfg adds one to in-dialog requests): the unforked session.
  EXPECT_EQ(RouteAnswer(Cmd("answer", "A", "B", "other"), call).session, &call[2]);
  // In-dialog requests (both tags) follow the dialogue whatever their via-branch.
  std::vector<v1::Session> answered = call;
  answered[0].mutable_callee()->set_tag("B");
  answered[0].set_state(v1::SESSION_STATE_ANSWERED);
  EXPECT_EQ(RouteOffer(Cmd("offer", "A", "B"), answered).session, &answered[0]);
  EXPECT_EQ(RouteOffer(Cmd("offer", "A", "B"), answered).action, Action::kUpdateCaller);
  EXPECT_EQ(RouteOffer(Cmd("offer", "B", "A", "other"), answered).action, Action::kUpdateCallee);
  EXPECT_EQ(RouteAnswer(Cmd("answer", "A", "B", "other"), answered).session, &answered[0]);
  // Delete of one branch leaves the others.
  EXPECT_THAT(Ids(SelectSessions(Cmd("delete", "A", "", "z2"), call)), ElementsAre("b2"));
  EXPECT_THAT(Ids(SelectSessions(Cmd("delete", "A"), call)), ElementsAre("b1", "b2", "plain"));
}

TEST(NgCallRoutingTest, DeleteAndQueryFindEitherTagAndPreferBoth) {
  const std::vector<v1::Session> call = {Session("s1", "A", "B"), Session("s2", "A", "C")};
  // A BYE from the callee: from-tag is the callee's, no to-tag (Kamailio's default).
  EXPECT_THAT(Ids(SelectSessions(Cmd("delete", "B"), call)), ElementsAre("s1"));
  EXPECT_THAT(Ids(SelectSessions(Cmd("delete", "A"), call)), ElementsAre("s1", "s2"));
  EXPECT_THAT(Ids(SelectSessions(Cmd("delete", "A", "C"), call)), ElementsAre("s2"));
  // Both tags naming no dialogue: nothing (rtpengine answers ok with a warning), never the whole call.
  EXPECT_THAT(SelectSessions(Cmd("delete", "A", "Y"), call), IsEmpty());
  // A CANCEL's 487 for a call never answered names the caller and the 487's to-tag.
  const std::vector<v1::Session> unanswered = {Session("s3", "A")};
  EXPECT_THAT(Ids(SelectSessions(Cmd("delete", "A", "Z"), unanswered)), ElementsAre("s3"));
  EXPECT_THAT(Ids(SelectSessions(Cmd("delete", ""), call)), ElementsAre("s1", "s2"));
  EXPECT_THAT(SelectSessions(Cmd("delete", "Z"), call), IsEmpty());
}

}  // namespace
}  // namespace latchkey::control::ng
