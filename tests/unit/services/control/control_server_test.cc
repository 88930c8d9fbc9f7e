#include "services/control/control_server.h"

#include "common/time/proto_time.h"
#include "gtest/gtest.h"

namespace latchkey::control {
namespace {

TEST(ControlDefaultsTest, TheNgFrontDoorIsOffAndItsDefaultsLiveInOnePlace) {
  v1::ControlConfig config;
  ApplyDefaults(&config);
  EXPECT_TRUE(config.ng().listen().empty());
  EXPECT_EQ(config.ng().identity(), "ng");
  EXPECT_EQ(FromProto(config.ng().delete_delay()), absl::Seconds(30));
  EXPECT_EQ(config.ng().threads(), 4u);
  EXPECT_EQ(config.ng().max_sessions_per_call(), 32u);
}

TEST(ControlDefaultsTest, AZeroDeleteDelayIsASettingNotUnset) {
  v1::ControlConfig config;
  config.mutable_ng()->mutable_delete_delay()->set_seconds(0);
  ApplyDefaults(&config);
  EXPECT_EQ(FromProto(config.ng().delete_delay()), absl::ZeroDuration());
}

}  // namespace
}  // namespace latchkey::control
