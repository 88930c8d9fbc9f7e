// The fake itself: the other tests rely on its endpoints and its blocking.
#include "tests/unit/services/control/sessions/fake_relay_sessions.h"

#include <atomic>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::control {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(FakeRelaySessionsTest, HandsOutDeterministicEndpointsPerWorker) {
  FakeRelaySessions relay;
  relay.AddWorker("w2", "192.0.2.20", "2001:db8::20", 40000);
  v1::Session a;
  a.set_session_id("a");
  ASSERT_TRUE(relay.Create(a, 2, 4).ok());
  EXPECT_EQ(a.worker_id(), "w1");
  ASSERT_EQ(a.caller().relay_size(), 2);
  EXPECT_EQ(a.caller().relay(0).rtp().ip(), "192.0.2.10");
  EXPECT_EQ(a.caller().relay(0).rtp().port(), 20000u);
  EXPECT_EQ(a.caller().relay(0).rtcp().port(), 20001u);
  EXPECT_EQ(a.callee().relay(0).rtp().port(), 20002u);
  EXPECT_EQ(a.callee().relay(1).rtp().port(), 20006u);
  EXPECT_EQ(a.callee().relay(1).media_index(), 1u);

  relay.PlaceOn("w2");
  v1::Session b;
  b.set_session_id("b");
  ASSERT_TRUE(relay.Create(b, 1, 6).ok());
  EXPECT_EQ(b.worker_id(), "w2");
  EXPECT_EQ(b.caller().relay(0).rtp().port(), 40000u);
  EXPECT_EQ(b.callee().relay(0).rtp().ip(), "2001:db8::20");

  // An update keeps the ports and adds new streams' ones.
  ASSERT_TRUE(relay.Update(a, 3, 2).ok());
  EXPECT_EQ(a.caller().relay(0).rtp().port(), 20000u);
  EXPECT_EQ(a.caller().relay(2).rtp().port(), 20008u);
  EXPECT_EQ(relay.Count(RelayOp::kCreate), 2u);
  EXPECT_EQ(relay.Count(RelayOp::kUpdate), 1u);
  // Like the relay, an update older than what it has is refused.
  EXPECT_EQ(relay.Update(a, 3, 1).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(relay.Count(RelayOp::kUpdate), 2u);
  EXPECT_THAT(relay.Live(), ElementsAre("a", "b"));
  v1::DeleteRelaySessionResponse ignored;
  EXPECT_TRUE(relay.Delete("w1", "a", v1::SESSION_EVENT_TYPE_RELEASED, 12, &ignored));
  EXPECT_THAT(relay.Live(), ElementsAre("b"));
}

TEST(FakeRelaySessionsTest, FailsWhenToldAndBlocksTheChosenCall) {
  FakeRelaySessions relay;
  relay.FailCreate(absl::ResourceExhaustedError("full"));
  v1::Session a;
  a.set_session_id("a");
  EXPECT_EQ(relay.Create(a, 1, 4).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(a.worker_id().empty());
  EXPECT_THAT(relay.Live(), IsEmpty());
  relay.FailCreate(absl::OkStatus());
  ASSERT_TRUE(relay.Create(a, 1, 4).ok());
  relay.FailUpdate(absl::UnavailableError("gone"));
  EXPECT_EQ(relay.Update(a, 1, 2).code(), absl::StatusCode::kUnavailable);
  relay.FailUpdate(absl::OkStatus());

  relay.BlockCall(RelayOp::kUpdate, 1);  // #0 was the failed one
  std::atomic<bool> done{false};
  std::thread blocked([&] {
    v1::Session copy = a;
    EXPECT_TRUE(relay.Update(copy, 1, 2).ok());
    done = true;
  });
  ASSERT_TRUE(relay.WaitBlocked(RelayOp::kUpdate, 1));
  EXPECT_FALSE(done.load());
  EXPECT_EQ(relay.Count(RelayOp::kUpdate), 2u);  // recorded before it blocks
  v1::Session other = a;
  EXPECT_TRUE(relay.Update(other, 1, 2).ok());  // other calls go through meanwhile
  relay.Release(RelayOp::kUpdate, 1);
  blocked.join();
  EXPECT_TRUE(done.load());
}

}  // namespace
}  // namespace latchkey::control
