#include "common/log/log.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::log {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override { SetMinLevel(Level::kInfo); }
  void TearDown() override { SetMinLevel(Level::kInfo); }
};

// Everything after "ts=... " up to the newline.
std::string AfterTimestamp(const std::string& line) {
  const size_t space = line.find(' ');
  return space == std::string::npos ? line : line.substr(space + 1);
}

TEST_F(LogTest, WritesOneLogfmtLine) {
  testing::internal::CaptureStderr();
  LogInfo("started").Kv("port", "7400").Kv("workers", 3).Kv("tls", false);
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, MatchesRegex("ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                                "level=info msg=started port=7400 workers=3 tls=false\n"));
}

TEST_F(LogTest, LineIsWrittenWhenTheTemporaryDies) {
  testing::internal::CaptureStderr();
  {
    Line line = LogInfo("pending");
    line.Kv("a", "1");
    EXPECT_THAT(testing::internal::GetCapturedStderr(), IsEmpty());
    testing::internal::CaptureStderr();
  }
  EXPECT_EQ(AfterTimestamp(testing::internal::GetCapturedStderr()), "level=info msg=pending a=1\n");
}

TEST_F(LogTest, QuotesSpaces) {
  testing::internal::CaptureStderr();
  LogInfo("binding created").Kv("ua", "Yealink SIP-T46S");
  EXPECT_EQ(AfterTimestamp(testing::internal::GetCapturedStderr()),
            "level=info msg=\"binding created\" ua=\"Yealink SIP-T46S\"\n");
}

TEST_F(LogTest, EscapesQuotesAndBackslashes) {
  testing::internal::CaptureStderr();
  LogInfo("m").Kv("contact", "\"Alice\" <sip:a@b>").Kv("path", "C:\\x");
  EXPECT_EQ(AfterTimestamp(testing::internal::GetCapturedStderr()),
            "level=info msg=m contact=\"\\\"Alice\\\" <sip:a@b>\" path=\"C:\\\\x\"\n");
}

TEST_F(LogTest, EscapesNewlinesSoTheEntryStaysOnOneLine) {
  testing::internal::CaptureStderr();
  LogWarning("bad\nmsg").Kv("sdp", "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n").Kv("tab", "a\tb").Kv("bell", "\x07");
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.find('\n'), out.size() - 1) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;
  EXPECT_EQ(AfterTimestamp(out),
            "level=warning msg=\"bad\\nmsg\" sdp=\"v=0\\r\\no=- 1 1 IN IP4 1.2.3.4\\r\\n\" tab=\"a\\tb\" bell=\"\\x07\"\n");
}

TEST_F(LogTest, QuotesEmptyAndEqualsSign) {
  testing::internal::CaptureStderr();
  LogInfo("m").Kv("empty", "").Kv("eq", "a=b");
  EXPECT_EQ(AfterTimestamp(testing::internal::GetCapturedStderr()), "level=info msg=m empty=\"\" eq=\"a=b\"\n");
}

TEST_F(LogTest, NumbersAreWrittenPlain) {
  testing::internal::CaptureStderr();
  LogError("m").Kv("n", -5).Kv("u", 42u).Kv("d", 1.5).Kv("yes", true);
  EXPECT_EQ(AfterTimestamp(testing::internal::GetCapturedStderr()), "level=error msg=m n=-5 u=42 d=1.5 yes=true\n");
}

TEST_F(LogTest, LevelsBelowMinimumAreDropped) {
  EXPECT_FALSE(Enabled(Level::kDebug));
  EXPECT_TRUE(Enabled(Level::kInfo));
  testing::internal::CaptureStderr();
  LogDebug("hidden").Kv("k", "v");
  EXPECT_THAT(testing::internal::GetCapturedStderr(), IsEmpty());

  SetMinLevel(Level::kWarning);
  EXPECT_FALSE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kWarning));
  EXPECT_TRUE(Enabled(Level::kError));
  testing::internal::CaptureStderr();
  LogInfo("hidden too");
  LogWarning("shown");
  LogError("shown too");
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, Not(HasSubstr("hidden")));
  EXPECT_THAT(out, HasSubstr("level=warning msg=shown\n"));
  EXPECT_THAT(out, EndsWith("level=error msg=\"shown too\"\n"));

  SetMinLevel(Level::kDebug);
  testing::internal::CaptureStderr();
  LogDebug("now visible");
  EXPECT_THAT(testing::internal::GetCapturedStderr(), HasSubstr("level=debug msg=\"now visible\"\n"));
}

TEST_F(LogTest, ParseLevel) {
  Level level = Level::kInfo;
  EXPECT_TRUE(ParseLevel("debug", &level));
  EXPECT_EQ(level, Level::kDebug);
  EXPECT_TRUE(ParseLevel("warning", &level));
  EXPECT_EQ(level, Level::kWarning);
  EXPECT_TRUE(ParseLevel("error", &level));
  EXPECT_EQ(level, Level::kError);
  EXPECT_TRUE(ParseLevel("info", &level));
  EXPECT_EQ(level, Level::kInfo);
  EXPECT_FALSE(ParseLevel("verbose", &level));
  EXPECT_FALSE(ParseLevel("", &level));
  EXPECT_EQ(level, Level::kInfo);  // untouched on failure
}

}  // namespace
}  // namespace latchkey::log
