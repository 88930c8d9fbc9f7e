#include "services/control/store/redis/redis_reply.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::control::redis {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// --- ParseRedisTarget ---

TEST(ParseRedisTargetTest, SingleServer) {
  absl::StatusOr<RedisTarget> target = ParseRedisTarget("redis://127.0.0.1:6379");
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ(target->kind, RedisTarget::Kind::kSingle);
  ASSERT_EQ(target->addresses.size(), 1u);
  EXPECT_EQ(target->addresses[0].host, "127.0.0.1");
  EXPECT_EQ(target->addresses[0].port, 6379);
  EXPECT_TRUE(target->master_name.empty());
  EXPECT_EQ(target->ToString(), "redis://127.0.0.1:6379");
}

TEST(ParseRedisTargetTest, HostNameAndIpv6) {
  absl::StatusOr<RedisTarget> named = ParseRedisTarget("redis://redis-0.redis.svc:7000");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->addresses[0].host, "redis-0.redis.svc");
  EXPECT_EQ(named->addresses[0].port, 7000);

  absl::StatusOr<RedisTarget> v6 = ParseRedisTarget("redis://[::1]:6380");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->addresses[0].host, "::1");
  EXPECT_EQ(v6->addresses[0].port, 6380);
  EXPECT_EQ(v6->addresses[0].ToString(), "[::1]:6380");
}

TEST(ParseRedisTargetTest, Sentinels) {
  absl::StatusOr<RedisTarget> target =
      ParseRedisTarget("redis+sentinel://10.0.0.1:26379,[fd00::2]:26379,sentinel-3:26380/latchkey");
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ(target->kind, RedisTarget::Kind::kSentinel);
  ASSERT_EQ(target->addresses.size(), 3u);
  EXPECT_EQ(target->addresses[0].ToString(), "10.0.0.1:26379");
  EXPECT_EQ(target->addresses[1].host, "fd00::2");
  EXPECT_EQ(target->addresses[2].ToString(), "sentinel-3:26380");
  EXPECT_EQ(target->master_name, "latchkey");
  EXPECT_EQ(target->ToString(), "redis+sentinel://10.0.0.1:26379,[fd00::2]:26379,sentinel-3:26380/latchkey");

  absl::StatusOr<RedisTarget> one = ParseRedisTarget("redis+sentinel://127.0.0.1:26379/mymaster");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->addresses.size(), 1u);
}

struct Refusal {
  std::string input;
  std::string names;  // the part the message must quote
};

TEST(ParseRedisTargetTest, RefusesNamingTheBadPart) {
  const std::vector<Refusal> refusals = {
      {"", "\"\""},
      {"127.0.0.1:6379", "127.0.0.1:6379"},
      {"http://127.0.0.1:6379", "http://"},
      {"rediss://127.0.0.1:6379", "rediss://"},
      {"redis://", "\"\""},
      {"redis://127.0.0.1", "\"127.0.0.1\""},
      {"redis://127.0.0.1:", "\"127.0.0.1:\""},
      {"redis://127.0.0.1:0", "127.0.0.1:0"},
      {"redis://127.0.0.1:65536", "127.0.0.1:65536"},
      {"redis://127.0.0.1:63x9", "127.0.0.1:63x9"},
      {"redis://127.0.0.1:+6379", "127.0.0.1:+6379"},
      {"redis://:6379", "\":6379\""},
      {"redis://::1:6379", "::1:6379"},
      {"redis://[::1:6379", "[::1:6379"},
      {"redis://[::1]6379", "[::1]6379"},
      {"redis://[]:6379", "[]:6379"},
      {"redis://[zz::1]:6379", "[zz::1]:6379"},
      {"redis://bad host:6379", "bad host:6379"},
      {"redis://127.0.0.1:6379/0", "127.0.0.1:6379/0"},
      {"redis://a:1,b:2", "a:1,b:2"},
      {"redis+sentinel://127.0.0.1:26379", "127.0.0.1:26379"},
      {"redis+sentinel://127.0.0.1:26379/", "redis+sentinel://127.0.0.1:26379/"},
      {"redis+sentinel:///mymaster", "redis+sentinel:///mymaster"},
      {"redis+sentinel://127.0.0.1:26379,,127.0.0.1:26380/m", "\"\""},
      {"redis+sentinel://127.0.0.1:26379,127.0.0.1/m", "\"127.0.0.1\""},
      {"redis+sentinel://127.0.0.1:26379/my master", "my master"},
      {"redis+sentinel://127.0.0.1:26379/a/b", "a/b"},
  };
  for (const Refusal& r : refusals) {
    absl::StatusOr<RedisTarget> target = ParseRedisTarget(r.input);
    ASSERT_FALSE(target.ok()) << "accepted \"" << r.input << "\"";
    EXPECT_EQ(target.status().code(), absl::StatusCode::kInvalidArgument) << r.input;
    EXPECT_THAT(std::string(target.status().message()), HasSubstr("store: ")) << r.input;
    EXPECT_THAT(std::string(target.status().message()), HasSubstr(r.names)) << r.input;
  }
}

TEST(ParseRedisTargetTest, LongInputIsShortenedInTheMessage) {
  std::string host(5000, 'a');
  absl::StatusOr<RedisTarget> target = ParseRedisTarget("redis://" + host);
  ASSERT_FALSE(target.ok());
  EXPECT_LT(target.status().message().size(), 400u);
}

// --- replies ---

TEST(ParseRespTest, BinarySafeStringsAndAllTypes) {
  const std::string wire = std::string("+OK\r\n:-42\r\n$5\r\nhe\0lo\r\n$-1\r\n-ERR wrong type\r\n$0\r\n\r\n", 50) +
                           "*-1\r\n:9223372036854775807\r\n";
  absl::StatusOr<std::vector<RedisReply>> replies = ParseResp(wire);
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), 8u);
  EXPECT_EQ((*replies)[0], RedisReply::Status("OK"));
  EXPECT_EQ((*replies)[1], RedisReply::Integer(-42));
  EXPECT_EQ((*replies)[2], RedisReply::String(std::string("he\0lo", 5)));
  EXPECT_EQ((*replies)[2].str.size(), 5u);
  EXPECT_TRUE((*replies)[3].is_nil());
  EXPECT_EQ((*replies)[4], RedisReply::Error("ERR wrong type"));
  EXPECT_TRUE((*replies)[4].is_error());
  EXPECT_EQ((*replies)[5], RedisReply::String(""));
  EXPECT_NE((*replies)[5], RedisReply::Nil());
  EXPECT_TRUE((*replies)[6].is_nil());  // a nil array is nil
  EXPECT_EQ((*replies)[7], RedisReply::Integer(9223372036854775807LL));
}

TEST(ParseRespTest, NestedArrays) {
  // ROLE on a primary: ["master", offset, [[ip, port, offset], ...]]
  absl::StatusOr<std::vector<RedisReply>> replies =
      ParseResp("*3\r\n$6\r\nmaster\r\n:3129659\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n$4\r\n9001\r\n$7\r\n3129242\r\n");
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), 1u);
  const RedisReply& role = (*replies)[0];
  ASSERT_EQ(role.type, RedisReply::Type::kArray);
  EXPECT_THAT(role.elements,
              ElementsAre(RedisReply::String("master"), RedisReply::Integer(3129659),
                          RedisReply::Array({RedisReply::Array({RedisReply::String("127.0.0.1"),
                                                                RedisReply::String("9001"),
                                                                RedisReply::String("3129242")})})));
  EXPECT_EQ(role.DebugString(), "[\"master\", 3129659, [[\"127.0.0.1\", \"9001\", \"3129242\"]]]");
  absl::StatusOr<std::vector<RedisReply>> empty = ParseResp("*0\r\n");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ((*empty)[0], RedisReply::Array({}));
  EXPECT_NE((*empty)[0], RedisReply::Nil());
}

TEST(ParseRespTest, RefusesBrokenInput) {
  EXPECT_EQ(ParseResp("$5\r\nab").status().code(), absl::StatusCode::kInvalidArgument);  // incomplete
  EXPECT_EQ(ParseResp("?what\r\n").status().code(), absl::StatusCode::kInvalidArgument);  // protocol error
  absl::StatusOr<std::vector<RedisReply>> none = ParseResp("");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(ClassifyErrorTest, MapsErrorCodes) {
  EXPECT_EQ(ClassifyError(RedisReply::Status("OK")), RedisErrorClass::kNotAnError);
  EXPECT_EQ(ClassifyError(RedisReply::String("READONLY")), RedisErrorClass::kNotAnError);
  EXPECT_EQ(ClassifyError(RedisReply::Error("READONLY You can't write against a read only replica.")),
            RedisErrorClass::kRediscover);
  EXPECT_EQ(ClassifyError(RedisReply::Error("NOREPLICAS Not enough good replicas to write.")),
            RedisErrorClass::kRediscover);
  EXPECT_EQ(ClassifyError(RedisReply::Error("MASTERDOWN Link with MASTER is down")), RedisErrorClass::kRediscover);
  EXPECT_EQ(ClassifyError(RedisReply::Error("LOADING Redis is loading the dataset in memory")),
            RedisErrorClass::kUnavailable);
  EXPECT_EQ(ClassifyError(RedisReply::Error("BUSY Redis is busy running a script.")), RedisErrorClass::kUnavailable);
  EXPECT_EQ(ClassifyError(RedisReply::Error("NOSCRIPT No matching script.")), RedisErrorClass::kReply);
  EXPECT_EQ(ClassifyError(RedisReply::Error("ERR unknown command 'FOO'")), RedisErrorClass::kReply);
  EXPECT_EQ(ClassifyError(RedisReply::Error("READONLYX")), RedisErrorClass::kReply);
}

}  // namespace
}  // namespace latchkey::control::redis
