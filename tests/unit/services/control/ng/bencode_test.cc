#include "services/control/ng/bencode.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/control/ng/message.h"

namespace latchkey::control::ng {
namespace {

using ::testing::HasSubstr;

TEST(BencodeTest, DecodesWhatKamailioSendsKeepingKeyOrder) {
  // The bytes of a Kamailio 5.6 delete (kamailio issue #855), minus the cookie.
  auto value = Decode("d3:ICE6:remove5:flagsl13:trust-addresse7:call-id4:abcd8:from-tag2:ft7:command6:deletee");
  ASSERT_TRUE(value.ok()) << value.status();
  ASSERT_TRUE(value->is_dictionary());
  ASSERT_EQ(value->entries().size(), 5u);
  EXPECT_EQ(value->entries()[0].first, "ICE");
  EXPECT_EQ(value->entries()[4].first, "command");
  EXPECT_EQ(value->Find("command")->string(), "delete");
  ASSERT_TRUE(value->Find("flags")->is_list());
  EXPECT_EQ(value->Find("flags")->items()[0].string(), "trust-address");
  EXPECT_EQ(value->Find("missing"), nullptr);
}

TEST(BencodeTest, EncodeDecodeRoundTripsEveryKind) {
  Value v = Value::Dictionary();
  v.Set("result", Value::String("ok"));
  v.Set("n", Value::Integer(-42));
  v.Set("big", Value::Integer(INT64_MAX));
  v.Set("small", Value::Integer(INT64_MIN));
  Value& list = v.Set("l", Value::List());
  list.Add(Value::String(std::string("\0bin\xff", 5)));
  list.Add(Value::Dictionary());
  list.Add(Value::List());
  const std::string bytes = Encode(v);
  auto back = Decode(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, v);
  EXPECT_EQ(Encode(Value::Integer(0)), "i0e");
  EXPECT_EQ(Encode(Value::String("")), "0:");
}

TEST(BencodeTest, RefusesMalformedInputNamingTheOffset) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "truncated"},
      {"i12", "not terminated"},
      {"ie", "without digits"},
      {"i-0e", "negative zero"},
      {"i012e", "leading zero"},
      {"i9223372036854775808e", "out of range"},
      {"i99999999999999999999999e", "out of range"},
      {"5:abc", "truncated"},
      {"05:abcde", "leading zero"},
      {"3abc", "not followed by ':'"},
      {"99999999999999999999:x", "longer than the message"},
      {"l1:a", "list not terminated"},
      {"d1:a", "truncated"},
      {"di1e1:ae", "key is not a string"},
      {"d1:ai1e1:ai2ee", "repeated"},
      {"i1ei2e", "after the value"},
      {"x", "unexpected"},
  };
  for (const auto& [input, why] : cases) {
    auto value = Decode(input);
    EXPECT_FALSE(value.ok()) << input;
    EXPECT_THAT(std::string(value.status().message()), HasSubstr(why)) << input;
    EXPECT_THAT(std::string(value.status().message()), HasSubstr("at byte")) << input;
  }
  EXPECT_EQ(Decode("i-9223372036854775808e")->integer(), INT64_MIN);
}

TEST(BencodeTest, DepthAndValueCountAreBounded) {
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "l";
  for (int i = 0; i < 100; ++i) deep += "e";
  EXPECT_THAT(std::string(Decode(deep).status().message()), HasSubstr("nested deeper than 16"));
  std::string many = "l";
  for (int i = 0; i < 5000; ++i) many += "i1e";
  many += "e";
  EXPECT_THAT(std::string(Decode(many).status().message()), HasSubstr("more than 4096 values"));
  DecodeLimits roomy;
  roomy.max_values = 10'000;
  EXPECT_TRUE(Decode(many, roomy).ok());
}

TEST(NgMessageTest, CookieBodyAndCommand) {
  auto request = ParseRequest("2_12168_1 d7:command4:pinge");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->cookie, "2_12168_1");
  EXPECT_EQ(request->command, "ping");
  Value pong = Value::Dictionary();
  pong.Set("result", Value::String("pong"));
  EXPECT_EQ(FormatReply(request->cookie, pong), "2_12168_1 d6:result4:ponge");
  EXPECT_EQ(FormatError("c1", "Unknown call-id"), "c1 d6:result5:error12:error-reason15:Unknown call-ide");
}

TEST(NgMessageTest, NoCookieIsNotAnsweredABadBodyIsAnsweredWithItsCookie) {
  EXPECT_TRUE(absl::IsNotFound(ParseRequest("d7:command4:pinge").status()));
  EXPECT_TRUE(absl::IsNotFound(ParseRequest(" d7:command4:pinge").status()));
  for (const char* bad : {"c1 ", "c1 {\"command\":\"ping\"}", "c1 d7:command4:ping", "c1 d4:callx1:ye",
                          "c1 d7:commandi1ee", "c1 l7:commande"}) {
    auto request = ParseRequest(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(request.status())) << bad << ": " << request.status();
    EXPECT_EQ(CookieOf(bad), "c1");
  }
}

}  // namespace
}  // namespace latchkey::control::ng
