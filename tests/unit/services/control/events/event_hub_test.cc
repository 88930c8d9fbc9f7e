#include "services/control/events/event_hub.h"

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::control {
namespace {

using ::testing::Optional;

using Hub = EventHub<int>;

TEST(EventHubTest, PublishReachesEverySubscriber) {
  Hub hub;
  auto a = hub.Subscribe(nullptr);
  auto b = hub.Subscribe(nullptr);
  hub.Publish(7);
  EXPECT_THAT(a->Next(absl::Seconds(1)), Optional(7));
  EXPECT_THAT(b->Next(absl::Seconds(1)), Optional(7));
}

TEST(EventHubTest, FilterSelectsEventsPerSubscriber) {
  Hub hub;
  auto even = hub.Subscribe([](const int& e) { return e % 2 == 0; });
  auto all = hub.Subscribe(nullptr);
  for (int i = 1; i <= 4; ++i) hub.Publish(i);
  EXPECT_THAT(even->Next(absl::ZeroDuration()), Optional(2));
  EXPECT_THAT(even->Next(absl::ZeroDuration()), Optional(4));
  EXPECT_EQ(even->Next(absl::ZeroDuration()), std::nullopt);
  for (int i = 1; i <= 4; ++i) EXPECT_THAT(all->Next(absl::ZeroDuration()), Optional(i));
  EXPECT_EQ(all->Next(absl::ZeroDuration()), std::nullopt);
}

TEST(EventHubTest, NextTimesOutWithNullopt) {
  Hub hub;
  auto sub = hub.Subscribe(nullptr);
  const absl::Time start = absl::Now();
  EXPECT_EQ(sub->Next(absl::Milliseconds(30)), std::nullopt);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(25));
  EXPECT_FALSE(sub->closed());
}

TEST(EventHubTest, NextWakesWhenAnEventArrives) {
  Hub hub;
  auto sub = hub.Subscribe(nullptr);
  std::thread publisher([&hub] {
    absl::SleepFor(absl::Milliseconds(20));
    hub.Publish(42);
  });
  const absl::Time start = absl::Now();
  EXPECT_THAT(sub->Next(absl::Seconds(10)), Optional(42));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  publisher.join();
}

TEST(EventHubTest, ASubscriberThatFallsBehindIsCutOffAndItsLossCounted) {
  int drops = 0;
  Hub hub([&drops] { ++drops; }, /*capacity=*/3);
  auto sub = hub.Subscribe(nullptr);
  for (int i = 1; i <= 3; ++i) hub.Publish(i);
  EXPECT_FALSE(sub->overflowed());
  EXPECT_EQ(drops, 0);
  hub.Publish(4);
  hub.Publish(5);
  EXPECT_EQ(drops, 2);
  EXPECT_TRUE(sub->overflowed());
  EXPECT_TRUE(sub->closed());
  // Nothing half-delivered: a watcher must not act on a stream with holes.
  EXPECT_EQ(sub->Next(absl::ZeroDuration()), std::nullopt);
}

TEST(EventHubTest, DropsAreCountedPerSlowSubscriberOnly) {
  int drops = 0;
  Hub hub([&drops] { ++drops; }, /*capacity=*/2);
  auto slow = hub.Subscribe(nullptr);
  auto fast = hub.Subscribe(nullptr);
  auto filtered = hub.Subscribe([](const int& e) { return e == 100; });  // never matches: never drops
  for (int i = 1; i <= 4; ++i) {
    hub.Publish(i);
    EXPECT_THAT(fast->Next(absl::ZeroDuration()), Optional(i));
  }
  EXPECT_EQ(drops, 2);
  EXPECT_EQ(filtered->Next(absl::ZeroDuration()), std::nullopt);
  EXPECT_FALSE(filtered->overflowed());
  EXPECT_FALSE(fast->overflowed());
  EXPECT_TRUE(slow->overflowed());
}

TEST(EventHubTest, CloseWakesAWaitingNext) {
  Hub hub;
  auto sub = hub.Subscribe(nullptr);
  absl::Notification started;
  std::optional<int> result = 0;
  absl::Duration waited;
  std::thread watcher([&] {
    started.Notify();
    const absl::Time start = absl::Now();
    result = sub->Next(absl::Seconds(30));
    waited = absl::Now() - start;
  });
  started.WaitForNotification();
  absl::SleepFor(absl::Milliseconds(20));
  hub.Close();
  watcher.join();
  EXPECT_EQ(result, std::nullopt);
  EXPECT_LT(waited, absl::Seconds(5));
  EXPECT_TRUE(sub->closed());
}

TEST(EventHubTest, SubscribingAfterCloseIsClosed) {
  Hub hub;
  hub.Close();
  auto sub = hub.Subscribe(nullptr);
  EXPECT_TRUE(sub->closed());
  const absl::Time start = absl::Now();
  EXPECT_EQ(sub->Next(absl::Seconds(30)), std::nullopt);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(EventHubTest, UnsubscribeStopsDelivery) {
  int drops = 0;
  Hub hub([&drops] { ++drops; }, /*capacity=*/1);
  auto kept = hub.Subscribe(nullptr);
  auto gone = hub.Subscribe(nullptr);
  hub.Publish(1);
  EXPECT_THAT(gone->Next(absl::ZeroDuration()), Optional(1));
  EXPECT_THAT(kept->Next(absl::ZeroDuration()), Optional(1));
  hub.Unsubscribe(gone);
  hub.Publish(2);
  hub.Publish(3);
  EXPECT_EQ(gone->Next(absl::ZeroDuration()), std::nullopt);
  // Only `kept` overflowed (and was cut off); the unsubscribed queue no longer counts.
  EXPECT_EQ(drops, 1);
  EXPECT_TRUE(kept->overflowed());
  EXPECT_FALSE(gone->overflowed());
  // Closing the hub no longer reaches the unsubscribed one.
  hub.Close();
  EXPECT_FALSE(gone->closed());
}

TEST(EventHubTest, WorksWithMessageLikeEvents) {
  EventHub<std::string> hub;
  auto sub = hub.Subscribe([](const std::string& e) { return e.rfind("binding:", 0) == 0; });
  hub.Publish("session:1");
  hub.Publish("binding:2");
  EXPECT_THAT(sub->Next(absl::ZeroDuration()), Optional(std::string("binding:2")));
  EXPECT_EQ(sub->Next(absl::ZeroDuration()), std::nullopt);
}

TEST(EventHubTest, ConcurrentPublishersDeliverEverything) {
  Hub hub(nullptr, /*capacity=*/100000);
  auto sub = hub.Subscribe(nullptr);
  constexpr int kThreads = 4, kPerThread = 1000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&hub] {
      for (int i = 0; i < kPerThread; ++i) hub.Publish(1);
    });
  }
  for (auto& t : threads) t.join();
  int received = 0;
  while (sub->Next(absl::ZeroDuration()).has_value()) ++received;
  EXPECT_EQ(received, kThreads * kPerThread);
}

}  // namespace
}  // namespace latchkey::control
