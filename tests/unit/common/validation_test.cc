#include "common/validation.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "latchkey/v1/types.pb.h"

namespace latchkey {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

google::protobuf::Duration ProtoDuration(int64_t seconds, int32_t nanos = 0) {
  google::protobuf::Duration d;
  d.set_seconds(seconds);
  d.set_nanos(nanos);
  return d;
}

TEST(CheckTokenTest, AcceptsPrintableTokenUpToMaxLength) {
  EXPECT_TRUE(CheckToken("aor", "sip:alice@example.com", 64).ok());
  EXPECT_TRUE(CheckToken("aor", std::string(10, 'x'), 10).ok());
  // Bytes above 0x7f (UTF-8) are printable.
  EXPECT_TRUE(CheckToken("name", "J\xC3\xBCrgen", 64).ok());
}

TEST(CheckTokenTest, EmptyIsRequired) {
  absl::Status status = CheckToken("aor", "", 64);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "aor: required");
}

TEST(CheckTokenTest, TooLongIsRejectedNamingFieldAndLimit) {
  absl::Status status = CheckToken("call_id", std::string(11, 'x'), 10);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), StartsWith("call_id: "));
  EXPECT_THAT(std::string(status.message()), HasSubstr("at most 10"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("xxxxxxxxxxx"));
}

TEST(CheckTokenTest, ControlCharactersAreRejected) {
  for (const std::string& bad : {std::string("a\nb"), std::string("a\rb"), std::string("a\tb"), std::string("a\x7f"),
                                 std::string("a\0b", 3)}) {
    absl::Status status = CheckToken("aor", bad, 64, /*allow_spaces=*/true);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(bad);
    EXPECT_THAT(std::string(status.message()), StartsWith("aor: "));
  }
}

TEST(CheckTokenTest, SpacesOnlyWhenAllowed) {
  absl::Status status = CheckToken("binding_id", "b 1", 64);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("without spaces"));
  EXPECT_TRUE(CheckToken("contact", "\"Alice\" <sip:alice@10.0.0.1>", 64, /*allow_spaces=*/true).ok());
}

TEST(CheckTokenTest, ErrorQuotesTheValueEscaped) {
  absl::Status status = CheckToken("via", "bad\nvalue", 64);
  EXPECT_THAT(std::string(status.message()), HasSubstr("bad\\nvalue"));
  EXPECT_EQ(std::string(status.message()).find('\n'), std::string::npos);
}

TEST(CheckOptionalTextTest, EmptyIsFineOtherwiseLikeToken) {
  EXPECT_TRUE(CheckOptionalText("user_agent", "", 10).ok());
  EXPECT_TRUE(CheckOptionalText("user_agent", "Phone 1.0", 10).ok());  // spaces allowed
  EXPECT_EQ(CheckOptionalText("user_agent", "01234567890", 10).code(), absl::StatusCode::kInvalidArgument);
  absl::Status status = CheckOptionalText("user_agent", "a\x01", 10);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), StartsWith("user_agent: "));
}

TEST(CheckDurationTest, MissingIsRequired) {
  auto d = CheckDuration("expires", false, ProtoDuration(60), absl::ZeroDuration(), absl::Hours(1));
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.status().message(), "expires: required");
}

TEST(CheckDurationTest, InRangeIncludingBoundsReturnsValue) {
  EXPECT_EQ(CheckDuration("expires", true, ProtoDuration(60), absl::ZeroDuration(), absl::Hours(1)).value(),
            absl::Seconds(60));
  EXPECT_EQ(CheckDuration("expires", true, ProtoDuration(0), absl::ZeroDuration(), absl::Hours(1)).value(),
            absl::ZeroDuration());
  EXPECT_EQ(CheckDuration("expires", true, ProtoDuration(3600), absl::ZeroDuration(), absl::Hours(1)).value(),
            absl::Hours(1));
  EXPECT_EQ(CheckDuration("expires", true, ProtoDuration(1, 500'000'000), absl::ZeroDuration(), absl::Hours(1)).value(),
            absl::Milliseconds(1500));
}

TEST(CheckDurationTest, OutOfRangeIsRejectedNamingField) {
  auto above = CheckDuration("expires", true, ProtoDuration(3601), absl::ZeroDuration(), absl::Hours(1));
  EXPECT_EQ(above.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(above.status().message()), StartsWith("expires: "));
  EXPECT_THAT(std::string(above.status().message()), HasSubstr("outside"));

  auto below = CheckDuration("expires", true, ProtoDuration(-1), absl::ZeroDuration(), absl::Hours(1));
  EXPECT_EQ(below.status().code(), absl::StatusCode::kInvalidArgument);

  auto just_above = CheckDuration("expires", true, ProtoDuration(3600, 1), absl::ZeroDuration(), absl::Hours(1));
  EXPECT_EQ(just_above.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CheckDurationTest, MalformedNanosAreRejected) {
  EXPECT_EQ(CheckDuration("t", true, ProtoDuration(1, 1'000'000'000), absl::ZeroDuration(), absl::Hours(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckDuration("t", true, ProtoDuration(5, -1), absl::ZeroDuration(), absl::Hours(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CheckEnumTest, ValidValuePasses) {
  EXPECT_TRUE(CheckEnum("transport", v1::TRANSPORT_UDP, v1::Transport_IsValid, false).ok());
  EXPECT_TRUE(CheckEnum("transport", v1::TRANSPORT_WS, v1::Transport_IsValid, false).ok());
}

TEST(CheckEnumTest, UnknownValueIsRejected) {
  absl::Status status = CheckEnum("transport", 99, v1::Transport_IsValid, true);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "transport: unknown value 99");
  EXPECT_EQ(CheckEnum("transport", -1, v1::Transport_IsValid, true).code(), absl::StatusCode::kInvalidArgument);
}

TEST(CheckEnumTest, UnspecifiedOnlyWhenAllowed) {
  absl::Status status = CheckEnum("transport", 0, v1::Transport_IsValid, false);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "transport: required");
  EXPECT_TRUE(CheckEnum("nat_state", 0, v1::NatState_IsValid, true).ok());
}

TEST(ExcerptTest, ShortValuesAreEscapedWhole) {
  EXPECT_EQ(Excerpt("abc"), "abc");
  EXPECT_EQ(Excerpt("a\nb\"c"), "a\\nb\\\"c");
  EXPECT_EQ(Excerpt(std::string(80, 'x')), std::string(80, 'x'));
}

TEST(ExcerptTest, LongValuesAreCutAndReportTheirSize) {
  const std::string long_value = std::string(100, 'y') + "TAIL";
  const std::string excerpt = Excerpt(long_value);
  EXPECT_EQ(excerpt, std::string(80, 'y') + "... (104 bytes)");
  EXPECT_EQ(Excerpt("abcdef", 3), "abc... (6 bytes)");
}

}  // namespace
}  // namespace latchkey
