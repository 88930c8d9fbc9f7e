#include "common/auth/identity.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::auth {
namespace {

using ::testing::HasSubstr;

constexpr absl::string_view kDomain = "example.org";

// Every role with the name its SPIFFE path uses, written out here rather than taken from the code.
struct RoleCase {
  Role role;
  const char* name;
};
constexpr RoleCase kRoles[] = {
    {Role::kPbx, "pbx"}, {Role::kOperator, "operator"}, {Role::kWorker, "worker"}, {Role::kControl, "control"}};

void ExpectRefused(absl::string_view uri, absl::string_view why_fragment = "") {
  auto parsed = ParseSpiffeId(uri, kDomain);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << uri;
  if (!why_fragment.empty()) {
    EXPECT_THAT(parsed.status().message(), HasSubstr(std::string(why_fragment))) << uri;
  }
}

TEST(RoleNameTest, NamesEveryRoleAndParsesItBack) {
  for (const RoleCase& c : kRoles) {
    EXPECT_EQ(RoleName(c.role), c.name);
    EXPECT_EQ(ParseRole(c.name), c.role) << c.name;
  }
}

TEST(RoleNameTest, UnknownOrMisspelledRolesDoNotParse) {
  for (const char* text : {"", "PBX", "Pbx", "admin", "root", "pbx ", " pbx", "workers", "ctrl"}) {
    EXPECT_EQ(ParseRole(text), std::nullopt) << text;
  }
  // An embedded NUL must not truncate the comparison.
  EXPECT_EQ(ParseRole(absl::string_view("pbx\0x", 5)), std::nullopt);
}

TEST(ParseSpiffeIdTest, AcceptsEveryRole) {
  for (const RoleCase& c : kRoles) {
    const std::string uri = absl::StrCat("spiffe://example.org/latchkey/", c.name, "/relay-a.1_B");
    auto parsed = ParseSpiffeId(uri, kDomain);
    ASSERT_TRUE(parsed.ok()) << uri << ": " << parsed.status();
    EXPECT_EQ(parsed->role, c.role);
    EXPECT_EQ(parsed->name, "relay-a.1_B");
  }
}

TEST(ParseSpiffeIdTest, RefusesOtherSchemes) {
  ExpectRefused("https://example.org/latchkey/pbx/a", "not a spiffe");
  ExpectRefused("spiffe:/example.org/latchkey/pbx/a", "not a spiffe");
  ExpectRefused("spiffe:example.org/latchkey/pbx/a", "not a spiffe");
  ExpectRefused("example.org/latchkey/pbx/a", "not a spiffe");
  ExpectRefused("", "not a spiffe");
  ExpectRefused(" spiffe://example.org/latchkey/pbx/a", "not a spiffe");
}

TEST(ParseSpiffeIdTest, RefusesUpperCaseSchemeTricks) {
  // Scheme and trust domain are lowercase in SPIFFE: no case folding that could alias another domain.
  ExpectRefused("SPIFFE://example.org/latchkey/pbx/a");
  ExpectRefused("Spiffe://example.org/latchkey/pbx/a");
  ExpectRefused("spiffe://EXAMPLE.org/latchkey/pbx/a", "trust domain");
  ExpectRefused("spiffe://Example.Org/latchkey/pbx/a", "trust domain");
}

TEST(ParseSpiffeIdTest, RefusesOtherTrustDomains) {
  ExpectRefused("spiffe://evil.org/latchkey/pbx/a", "trust domain");
  ExpectRefused("spiffe://example.org.evil.org/latchkey/pbx/a", "trust domain");
  ExpectRefused("spiffe://sub.example.org/latchkey/pbx/a", "trust domain");
  ExpectRefused("spiffe://example.or/latchkey/pbx/a", "trust domain");
  ExpectRefused("spiffe://example.org:443/latchkey/pbx/a", "trust domain");
  ExpectRefused("spiffe://user@example.org/latchkey/pbx/a", "trust domain");
  ExpectRefused("spiffe:///latchkey/pbx/a", "trust domain");
}

TEST(ParseSpiffeIdTest, RefusesAnIdWithoutPath) {
  ExpectRefused("spiffe://example.org", "no path");
  ExpectRefused("spiffe://", "no path");
}

TEST(ParseSpiffeIdTest, RefusesMissingOrExtraPathSegments) {
  ExpectRefused("spiffe://example.org/", "/latchkey/ROLE/NAME");
  ExpectRefused("spiffe://example.org/latchkey", "/latchkey/ROLE/NAME");
  ExpectRefused("spiffe://example.org/latchkey/pbx", "/latchkey/ROLE/NAME");
  ExpectRefused("spiffe://example.org/pbx/a", "/latchkey/ROLE/NAME");
  ExpectRefused("spiffe://example.org/latchkey/pbx/a/b", "/latchkey/ROLE/NAME");
  ExpectRefused("spiffe://example.org/other/pbx/a", "/latchkey/ROLE/NAME");
  ExpectRefused("spiffe://example.org/Latchkey/pbx/a", "/latchkey/ROLE/NAME");
  ExpectRefused("spiffe://example.org//latchkey/pbx/a", "/latchkey/ROLE/NAME");
  ExpectRefused("spiffe://example.org/latchkey//pbx/a", "/latchkey/ROLE/NAME");
  ExpectRefused("spiffe://example.org/ns/x/latchkey/pbx/a", "/latchkey/ROLE/NAME");
}

TEST(ParseSpiffeIdTest, RefusesTrailingSlash) {
  ExpectRefused("spiffe://example.org/latchkey/pbx/a/", "/latchkey/ROLE/NAME");
}

TEST(ParseSpiffeIdTest, RefusesUnknownRoles) {
  for (const char* role : {"admin", "PBX", "Operator", "workers", "", "pbx%20"}) {
    ExpectRefused(absl::StrCat("spiffe://example.org/latchkey/", role, "/a"), "role");
  }
}

TEST(ParseSpiffeIdTest, RefusesEmptyOrOverLongNames) {
  ExpectRefused("spiffe://example.org/latchkey/pbx/", "name");
  const std::string longest(128, 'n');
  EXPECT_TRUE(ParseSpiffeId(absl::StrCat("spiffe://example.org/latchkey/pbx/", longest), kDomain).ok());
  ExpectRefused(absl::StrCat("spiffe://example.org/latchkey/pbx/", longest, "n"), "name");
}

TEST(ParseSpiffeIdTest, RefusesNamesWithBadCharacters) {
  for (const std::string& name :
       std::vector<std::string>{"a b", "a+b", "a@b", "a:b", "a;b", "a,b", "a\\b", "a*b", "a~b", "a\tb", "a\nb",
                                "\xc3\xa9t\xc3\xa9", std::string("a\0b", 3)}) {
    ExpectRefused(absl::StrCat("spiffe://example.org/latchkey/pbx/", name), "name");
  }
}

TEST(ParseSpiffeIdTest, RefusesPercentEncodingAndDotSegments) {
  // Anything that a later decoder or path normaliser could turn into another identity.
  ExpectRefused("spiffe://example.org/latchkey/pbx/a%2Fb", "name");
  ExpectRefused("spiffe://example.org/latchkey/pbx/%61", "name");
  ExpectRefused("spiffe://example.org/latchkey/%70bx/a", "role");
  ExpectRefused("spiffe://example.org/latchkey/pbx/..", "name");
  ExpectRefused("spiffe://example.org/latchkey/pbx/.", "name");
  ExpectRefused("spiffe://example.org/latchkey/pbx/../operator/a");
  ExpectRefused("spiffe://example.org/latchkey/operator/../pbx/a");
  ExpectRefused("spiffe://example.org/latchkey/./pbx/a");
}

TEST(ParseSpiffeIdTest, RefusesQueryAndFragment) {
  ExpectRefused("spiffe://example.org/latchkey/pbx/a?x=1", "name");
  ExpectRefused("spiffe://example.org/latchkey/pbx/a#frag", "name");
  ExpectRefused("spiffe://example.org/latchkey/pbx/a?", "name");
  ExpectRefused("spiffe://example.org?x/latchkey/pbx/a", "trust domain");
  ExpectRefused("spiffe://example.org#x/latchkey/pbx/a", "trust domain");
}

TEST(ParseSpiffeIdTest, NamesMayUseTheWholeAllowedAlphabet) {
  const std::string name = "AZaz09._-";
  auto parsed = ParseSpiffeId(absl::StrCat("spiffe://example.org/latchkey/worker/", name), kDomain);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->name, name);
  // Dots are fine inside a name (only "." and ".." alone are path tricks).
  EXPECT_TRUE(ParseSpiffeId("spiffe://example.org/latchkey/worker/...", kDomain).ok());
  EXPECT_TRUE(ParseSpiffeId("spiffe://example.org/latchkey/worker/.a", kDomain).ok());
}

TEST(ValidTrustDomainTest, AcceptsLowercaseLettersDigitsDotDashUnderscore) {
  EXPECT_TRUE(ValidTrustDomain("example.org"));
  EXPECT_TRUE(ValidTrustDomain("a"));
  EXPECT_TRUE(ValidTrustDomain("prod-1_eu.example.org"));
  EXPECT_TRUE(ValidTrustDomain("0123456789"));
  EXPECT_TRUE(ValidTrustDomain(std::string(255, 'a')));
}

TEST(ValidTrustDomainTest, RefusesEmptyLongUpperCaseAndSeparators) {
  EXPECT_FALSE(ValidTrustDomain(""));
  EXPECT_FALSE(ValidTrustDomain(std::string(256, 'a')));
  for (const std::string& domain : std::vector<std::string>{
           "Example.org", "EXAMPLE.ORG", "example.org:443", "user@example.org", "example.org/x", "exa mple.org",
           "example.org?", "example.org#", "ex%61mple.org", "\xc3\xa9xample.org", std::string("example\0org", 11)}) {
    EXPECT_FALSE(ValidTrustDomain(domain)) << domain;
  }
}

TEST(IdentityTextTest, ToStringIsRoleSlashName) {
  EXPECT_EQ(ToString(PeerIdentity{Role::kWorker, "relay-a"}), "worker/relay-a");
  EXPECT_EQ(ToString(PeerIdentity{Role::kPbx, "pbx-1"}), "pbx/pbx-1");
  EXPECT_EQ(ToString(PeerIdentity{Role::kOperator, "alice"}), "operator/alice");
  EXPECT_EQ(ToString(PeerIdentity{Role::kControl, "control-0"}), "control/control-0");
}

TEST(IdentityTextTest, SpiffeIdHasTheDocumentedForm) {
  EXPECT_EQ(SpiffeId("example.org", PeerIdentity{Role::kWorker, "relay-a"}),
            "spiffe://example.org/latchkey/worker/relay-a");
}

TEST(IdentityTextTest, SpiffeIdParsesBackToTheSameIdentity) {
  for (const RoleCase& c : kRoles) {
    const PeerIdentity identity{c.role, "name-1.x_Y"};
    auto parsed = ParseSpiffeId(SpiffeId(kDomain, identity), kDomain);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, identity);
    // And is refused in any other trust domain.
    EXPECT_FALSE(ParseSpiffeId(SpiffeId(kDomain, identity), "other.org").ok());
  }
}

}  // namespace
}  // namespace latchkey::auth
