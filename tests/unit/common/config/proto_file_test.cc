#include "common/config/proto_file.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "latchkey/v1/config.pb.h"

namespace latchkey::config {
namespace {

using ::testing::HasSubstr;

class ProtoFileTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& path : created_) std::remove(path.c_str());
  }

  // Writes `content` to a fresh file named `name` under the test temp dir; returns its path.
  std::string WriteFile(const std::string& name, const std::string& content) {
    const std::string path = absl::StrCat(::testing::TempDir(), "latchkey_proto_file_test_", ::getpid(), "_", name);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    EXPECT_TRUE(out.good()) << path;
    created_.push_back(path);
    return path;
  }

  std::vector<std::string> created_;
};

TEST_F(ProtoFileTest, LoadsTextProto) {
  const std::string path = WriteFile("control.textproto", R"pb(
    # comments are fine
    listen: "0.0.0.0:7400"
    max_bindings: 42
    binding_grace { seconds: 45 }
    nat_policies {
      name: "lan"
      match_source_cidrs: "10.0.0.0/8"
      rules: NAT_REASON_CONTACT_PRIVATE
    }
    nat_policies { name: "default" keepalive_method: KEEPALIVE_METHOD_CRLF }
  )pb");
  v1::ControlConfig config;
  absl::Status status = LoadProtoFile(path, &config);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(config.listen(), "0.0.0.0:7400");
  EXPECT_EQ(config.max_bindings(), 42u);
  EXPECT_EQ(config.binding_grace().seconds(), 45);
  ASSERT_EQ(config.nat_policies_size(), 2);
  EXPECT_EQ(config.nat_policies(0).name(), "lan");
  ASSERT_EQ(config.nat_policies(0).match_source_cidrs_size(), 1);
  EXPECT_EQ(config.nat_policies(0).match_source_cidrs(0), "10.0.0.0/8");
  ASSERT_EQ(config.nat_policies(0).rules_size(), 1);
  EXPECT_EQ(config.nat_policies(0).rules(0), v1::NAT_REASON_CONTACT_PRIVATE);
  EXPECT_EQ(config.nat_policies(1).keepalive_method(), v1::KEEPALIVE_METHOD_CRLF);
}

TEST_F(ProtoFileTest, LoadsJsonWhenNameEndsInJson) {
  const std::string path = WriteFile("control.json", R"json({
    "listen": "0.0.0.0:7400",
    "maxBindings": "42",
    "bindingGrace": "45s",
    "natPolicies": [
      {"name": "lan", "matchSourceCidrs": ["10.0.0.0/8"], "rules": ["NAT_REASON_CONTACT_PRIVATE"]},
      {"name": "default", "keepalive_method": "KEEPALIVE_METHOD_CRLF"}
    ]
  })json");
  v1::ControlConfig config;
  absl::Status status = LoadProtoFile(path, &config);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(config.listen(), "0.0.0.0:7400");
  EXPECT_EQ(config.max_bindings(), 42u);
  EXPECT_EQ(config.binding_grace().seconds(), 45);
  ASSERT_EQ(config.nat_policies_size(), 2);
  EXPECT_EQ(config.nat_policies(0).match_source_cidrs(0), "10.0.0.0/8");
  EXPECT_EQ(config.nat_policies(0).rules(0), v1::NAT_REASON_CONTACT_PRIVATE);
  EXPECT_EQ(config.nat_policies(1).keepalive_method(), v1::KEEPALIVE_METHOD_CRLF);
}

TEST_F(ProtoFileTest, TextSyntaxErrorNamesTheLine) {
  const std::string path = WriteFile("broken.textproto",
                                     "listen: \"0.0.0.0:7400\"\n"
                                     "max_bindings: 42\n"
                                     "no_such_field: 3\n"
                                     "binding_grace { seconds: 45 }\n");
  v1::ControlConfig config;
  absl::Status status = LoadProtoFile(path, &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("line 3"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("no_such_field"));
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
}

TEST_F(ProtoFileTest, TextTokenErrorNamesTheLine) {
  const std::string path = WriteFile("unterminated.textproto",
                                     "listen: \"0.0.0.0:7400\"\n"
                                     "\n"
                                     "nat_policies {\n"
                                     "  name: \"lan\"\n"
                                     "  match_source_cidrs \"10.0.0.0/8\"\n"
                                     "}\n");
  v1::ControlConfig config;
  absl::Status status = LoadProtoFile(path, &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("line 5"));
}

TEST_F(ProtoFileTest, JsonErrorIsInvalidArgument) {
  const std::string path = WriteFile("broken.json", R"json({"listen": "x", "maxBindings": })json");
  v1::ControlConfig config;
  absl::Status status = LoadProtoFile(path, &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
}

TEST_F(ProtoFileTest, JsonUnknownFieldIsInvalidArgument) {
  const std::string path = WriteFile("unknown.json", R"json({"listen": "x", "noSuchField": 1})json");
  v1::ControlConfig config;
  EXPECT_EQ(LoadProtoFile(path, &config).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ProtoFileTest, FormatFollowsTheFileName) {
  // Text format in a .json file is parsed as JSON, and fails.
  const std::string text_in_json = WriteFile("text.json", "listen: \"0.0.0.0:7400\"\n");
  v1::ControlConfig config;
  EXPECT_EQ(LoadProtoFile(text_in_json, &config).code(), absl::StatusCode::kInvalidArgument);
  // JSON in any other file is parsed as text format, and fails.
  const std::string json_in_text = WriteFile("json.conf", R"json({"listen": "0.0.0.0:7400"})json");
  EXPECT_EQ(LoadProtoFile(json_in_text, &config).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ProtoFileTest, EmptyTextFileIsAnEmptyConfig) {
  const std::string path = WriteFile("empty.textproto", "");
  v1::ControlConfig config;
  config.set_listen("stale");
  ASSERT_TRUE(LoadProtoFile(path, &config).ok());
  EXPECT_EQ(config.listen(), "");
}

TEST_F(ProtoFileTest, MissingFileIsNotFound) {
  v1::ControlConfig config;
  const std::string path = absl::StrCat(::testing::TempDir(), "latchkey_no_such_file_", ::getpid(), ".textproto");
  absl::Status status = LoadProtoFile(path, &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
}

// A directory or unreadable file must not load as an empty (all-defaults) config.
TEST_F(ProtoFileTest, DirectoryIsNotLoadedAsAnEmptyConfig) {
  v1::ControlConfig config;
  absl::Status status = LoadProtoFile(::testing::TempDir(), &config);
  EXPECT_FALSE(status.ok()) << "a directory was accepted as an (empty) config file";
}

}  // namespace
}  // namespace latchkey::config
