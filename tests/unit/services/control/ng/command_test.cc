#include "services/control/ng/command.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::control::ng {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

Value Strings(std::initializer_list<const char*> items) {
  Value list = Value::List();
  for (const char* item : items) list.Add(Value::String(item));
  return list;
}

// As Kamailio 5.6 sends an offer (captured on the wire), command last.
Value KamailioOffer() {
  Value body = Value::Dictionary();
  body.Set("supports", Strings({"load limit"}));
  body.Set("sdp", Value::String("v=0\r\n"));
  body.Set("ICE", Value::String("remove"));
  body.Set("flags", Strings({"trust-address", "SIP-source-address", "foo-bar"}));
  body.Set("replace", Strings({"origin"}));
  body.Set("call-id", Value::String("1-17613@127.0.0.1"));
  body.Set("via-branch", Value::String("z9hG4bK-1"));
  body.Set("received-from", Strings({"IP4", "192.0.2.7"}));
  body.Set("from-tag", Value::String("17613SIPpTag09"));
  body.Set("command", Value::String("offer"));
  return body;
}

TEST(NgCommandTest, ReadsWhatKamailioSends) {
  auto command = ReadCommand(KamailioOffer());
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(command->command, "offer");
  EXPECT_EQ(command->call_id, "1-17613@127.0.0.1");
  EXPECT_EQ(command->from_tag, "17613SIPpTag09");
  EXPECT_EQ(command->via_branch, "z9hG4bK-1");
  EXPECT_EQ(*command->sdp, "v=0\r\n");
  EXPECT_EQ(command->ice, "remove");
  EXPECT_EQ(command->received_from_family, "IP4");
  EXPECT_EQ(command->received_from_ip, "192.0.2.7");
  EXPECT_TRUE(command->supports_load_limit);
  // Flags are normalised: case and hyphens do not matter.
  EXPECT_TRUE(command->has_flag("trust address"));
  EXPECT_TRUE(command->has_flag("sip source address"));
  EXPECT_THAT(command->replace, ElementsAre("origin"));
  // Unknown flags are kept for counting, not refused.
  EXPECT_THAT(command->ignored, ElementsAre("foo-bar"));
  EXPECT_TRUE(RequireKeys(*command).ok());
}

TEST(NgCommandTest, KeysMayUseSpacesAndNumbersMayBeStrings) {
  Value body = Value::Dictionary();
  body.Set("call id", Value::String("c"));
  body.Set("from tag", Value::String("f"));
  body.Set("delete delay", Value::String("5"));
  body.Set("Transport Protocol", Value::String("rtp/avp"));
  body.Set("some-new-key", Value::Integer(1));
  body.Set("command", Value::String("delete"));
  auto command = ReadCommand(body);
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(command->call_id, "c");
  EXPECT_EQ(*command->delete_delay, absl::Seconds(5));
  EXPECT_EQ(command->transport_protocol, "RTP/AVP");
  EXPECT_THAT(command->ignored, ElementsAre("some-new-key"));
  body.Set("delete delay", Value::Integer(7));
  EXPECT_EQ(*ReadCommand(body)->delete_delay, absl::Seconds(7));
}

TEST(NgCommandTest, WrongTypesAreRefusedNamingTheKey) {
  struct Case {
    const char* key;
    Value value;
  };
  for (const Case& c : {Case{"from-tag", Strings({"a"})}, Case{"sdp", Value::Integer(3)},
                        Case{"received-from", Strings({"IP4"})}, Case{"flags", Value::Integer(1)},
                        Case{"delete delay", Value::String("soon")}, Case{"delete delay", Value::Integer(-1)},
                        Case{"call-id", Value::String(std::string(300, 'c'))}}) {
    Value body = KamailioOffer();
    body.Set(c.key, c.value);
    auto command = ReadCommand(body);
    EXPECT_EQ(command.status().code(), absl::StatusCode::kInvalidArgument) << c.key;
    EXPECT_THAT(command.status().message(), HasSubstr(c.key));
  }
  EXPECT_FALSE(ReadCommand(Value::List()).ok());
}

TEST(NgCommandTest, MediaFeaturesAreNamed) {
  Value body = KamailioOffer();
  body.Set("SDES", Strings({"off"}));
  Value codec = Value::Dictionary();
  codec.Set("transcode", Strings({"PCMA"}));
  body.Set("codec", codec);
  body.Set("flags", Strings({"record-call"}));
  auto command = ReadCommand(body);
  ASSERT_TRUE(command.ok());
  EXPECT_THAT(command->media_features, UnorderedElementsAre("SDES", "codec", "record-call"));
}

TEST(NgCommandTest, RequiredKeysDependOnTheCommand) {
  auto check = [](Value body) { return RequireKeys(*ReadCommand(body)); };
  Value ping = Value::Dictionary();
  ping.Set("command", Value::String("ping"));
  EXPECT_TRUE(check(ping).ok());

  Value offer = KamailioOffer();
  Value no_call = Value::Dictionary();
  for (const auto& [key, value] : offer.entries()) {
    if (key != "call-id") no_call.Set(key, value);
  }
  EXPECT_THAT(check(no_call).message(), HasSubstr("call-id"));
  Value no_sdp = Value::Dictionary();
  for (const auto& [key, value] : offer.entries()) {
    if (key != "sdp") no_sdp.Set(key, value);
  }
  EXPECT_THAT(check(no_sdp).message(), HasSubstr("sdp"));
  Value answer = offer;
  answer.Set("command", Value::String("answer"));
  EXPECT_THAT(check(answer).message(), HasSubstr("to-tag"));
  answer.Set("to-tag", Value::String("bad tag with spaces"));
  EXPECT_THAT(check(answer).message(), HasSubstr("to-tag"));
  answer.Set("to-tag", Value::String("t"));
  EXPECT_TRUE(check(answer).ok());
}

}  // namespace
}  // namespace latchkey::control::ng
