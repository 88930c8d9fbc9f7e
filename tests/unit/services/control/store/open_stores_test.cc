#include "services/control/store/open_stores.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::control {
namespace {

using ::testing::HasSubstr;

v1::ControlConfig WithStore(const std::string& store) {
  v1::ControlConfig config;
  config.set_store(store);
  config.set_store_key_prefix("lk:");
  config.mutable_store_timeout()->set_nanos(500'000'000);
  return config;
}

TEST(OpenStoresTest, MemoryIsEmbedded) {
  auto stores = OpenStores(WithStore("memory"));
  ASSERT_TRUE(stores.ok()) << stores.status();
  EXPECT_EQ(stores->redis, nullptr);
  EXPECT_NE(stores->bindings, nullptr);
  EXPECT_NE(stores->sessions, nullptr);
  EXPECT_EQ(stores->description, "memory");
}

TEST(OpenStoresTest, UnusableValuesAreRefusedNamingTheField) {
  for (const std::string bad : {"", "mysql://db:3306", "redis://", "redis://host", "redis://host:notaport",
                                "redis+sentinel://127.0.0.1:26379", "redis+sentinel://127.0.0.1:26379/"}) {
    SCOPED_TRACE(bad);
    auto stores = OpenStores(WithStore(bad));
    ASSERT_EQ(stores.status().code(), absl::StatusCode::kInvalidArgument) << stores.status();
    EXPECT_THAT(std::string(stores.status().message()), HasSubstr("store"));
  }
}

}  // namespace
}  // namespace latchkey::control
