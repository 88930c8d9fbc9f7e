#include "common/auth/method_policy.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "latchkey/v1/config.pb.h"
#include "latchkey/v1/nat_control.pb.h"
#include "latchkey/v1/types.pb.h"
#include "latchkey/v1/worker.pb.h"

namespace latchkey::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr Role kAllRoles[] = {Role::kPbx, Role::kOperator, Role::kWorker, Role::kControl};

// Who may call a method, written out independently of method_policy.cc: if the two disagree, one of
// them is wrong and a person has to decide which.
struct Expected {
  std::set<Role> roles;
  bool anonymous = false;  // also without any identity
};

const Expected kPbxOrOperator{{Role::kPbx, Role::kOperator}};
const Expected kOperatorOnly{{Role::kOperator}};
const Expected kWorkerOnly{{Role::kWorker}};
const Expected kControlOnly{{Role::kControl}};
const Expected kAnyIdentity{{Role::kPbx, Role::kOperator, Role::kWorker, Role::kControl}};
const Expected kAnyone{{Role::kPbx, Role::kOperator, Role::kWorker, Role::kControl}, true};

const std::map<std::string, Expected>& PolicyTable() {
  static const auto* table = new std::map<std::string, Expected>{
      // NatControlService: bindings and sessions for PBXs (their own records) and operators.
      {"/latchkey.v1.NatControlService/AllocateBinding", kPbxOrOperator},
      {"/latchkey.v1.NatControlService/GetBinding", kPbxOrOperator},
      {"/latchkey.v1.NatControlService/ListBindings", kPbxOrOperator},
      {"/latchkey.v1.NatControlService/ReleaseBinding", kPbxOrOperator},
      {"/latchkey.v1.NatControlService/WatchBindings", kPbxOrOperator},
      {"/latchkey.v1.NatControlService/AllocateSession", kPbxOrOperator},
      {"/latchkey.v1.NatControlService/AnswerSession", kPbxOrOperator},
      {"/latchkey.v1.NatControlService/UpdateSession", kPbxOrOperator},
      {"/latchkey.v1.NatControlService/GetSession", kPbxOrOperator},
      {"/latchkey.v1.NatControlService/ListSessions", kPbxOrOperator},
      {"/latchkey.v1.NatControlService/ReleaseSession", kPbxOrOperator},
      {"/latchkey.v1.NatControlService/WatchSessions", kPbxOrOperator},
      // NatControlService: the worker fleet is the operator's.
      {"/latchkey.v1.NatControlService/ListWorkers", kOperatorOnly},
      {"/latchkey.v1.NatControlService/DrainWorker", kOperatorOnly},
      {"/latchkey.v1.NatControlService/UndrainWorker", kOperatorOnly},
      // WorkerRegistryService: workers only.
      {"/latchkey.v1.WorkerRegistryService/RegisterWorker", kWorkerOnly},
      {"/latchkey.v1.WorkerRegistryService/Heartbeat", kWorkerOnly},
      {"/latchkey.v1.WorkerRegistryService/ReportEvents", kWorkerOnly},
      // RelayService: control only.
      {"/latchkey.v1.RelayService/CreateRelaySession", kControlOnly},
      {"/latchkey.v1.RelayService/UpdateRelaySession", kControlOnly},
      {"/latchkey.v1.RelayService/SetKeepalives", kControlOnly},
      {"/latchkey.v1.RelayService/DeleteRelaySession", kControlOnly},
      {"/latchkey.v1.RelayService/GetRelaySession", kControlOnly},
      {"/latchkey.v1.RelayService/DrainRelay", kControlOnly},
      // Health: probes and load balancers have no certificate.
      {"/grpc.health.v1.Health/Check", kAnyone},
      {"/grpc.health.v1.Health/Watch", kAnyone},
      // Reflection: any authenticated caller.
      {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", kAnyIdentity},
  };
  return *table;
}

// Every proto file of the Latchkey API; a service in any of them must have all its methods above.
// Touching a message of each file links its descriptor into the generated pool.
std::vector<const google::protobuf::FileDescriptor*> LatchkeyProtoFiles() {
  return {v1::AllocateBindingRequest::descriptor()->file(), v1::RegisterWorkerRequest::descriptor()->file(),
          v1::SocketAddress::descriptor()->file(), v1::TlsConfig::descriptor()->file()};
}

PeerIdentity As(Role role) { return PeerIdentity{role, "caller-1"}; }

TEST(MethodPolicyTest, TheLatchkeyProtoFilesAreTheOnesExpected) {
  std::set<std::string> names;
  for (const auto* file : LatchkeyProtoFiles()) names.insert(file->name());
  EXPECT_EQ(names, (std::set<std::string>{"latchkey/v1/config.proto", "latchkey/v1/nat_control.proto",
                                          "latchkey/v1/types.proto", "latchkey/v1/worker.proto"}));
  // The three services are where the table expects them.
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* service :
       {"latchkey.v1.NatControlService", "latchkey.v1.WorkerRegistryService", "latchkey.v1.RelayService"}) {
    EXPECT_NE(pool->FindServiceByName(service), nullptr) << service;
  }
}

TEST(MethodPolicyTest, EveryLatchkeyRpcHasAnExpectationInThisTable) {
  // A new RPC must be placed deliberately, here and in method_policy.cc.
  int methods = 0;
  for (const auto* file : LatchkeyProtoFiles()) {
    for (int s = 0; s < file->service_count(); ++s) {
      const auto* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        const std::string path = absl::StrCat("/", service->full_name(), "/", service->method(m)->name());
        EXPECT_TRUE(PolicyTable().contains(path)) << path << " has no expectation in method_policy_test.cc";
        ++methods;
      }
    }
  }
  // The enumeration really saw the services: 15 NatControlService + 3 WorkerRegistryService + 6 RelayService.
  EXPECT_EQ(methods, 24);
}

TEST(MethodPolicyTest, EveryTableMethodExistsInTheProtos) {
  // A stale entry (a renamed RPC) would hide that the new name is unguarded.
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const auto& [path, expected] : PolicyTable()) {
    if (!absl::StartsWith(path, "/latchkey.")) continue;
    const size_t slash = path.rfind('/');
    const auto* service = pool->FindServiceByName(path.substr(1, slash - 1));
    ASSERT_NE(service, nullptr) << path;
    EXPECT_NE(service->FindMethodByName(path.substr(slash + 1)), nullptr) << path;
  }
}

TEST(MethodPolicyTest, EachRoleGetsExactlyTheMethodsOfTheTable) {
  for (const auto& [path, expected] : PolicyTable()) {
    for (Role role : kAllRoles) {
      const PeerIdentity identity = As(role);
      const Decision decision = Authorize(path, &identity);
      if (expected.roles.contains(role)) {
        EXPECT_TRUE(decision.ok()) << path << " as " << RoleName(role) << ": " << decision.status;
        EXPECT_TRUE(decision.status.ok()) << path;
      } else {
        EXPECT_EQ(decision.reason, DenyReason::kWrongRole) << path << " as " << RoleName(role);
        EXPECT_EQ(decision.status.code(), absl::StatusCode::kPermissionDenied) << path << " as " << RoleName(role);
      }
    }
  }
}

TEST(MethodPolicyTest, WithoutIdentityOnlyHealthIsAllowed) {
  for (const auto& [path, expected] : PolicyTable()) {
    const Decision decision = Authorize(path, nullptr);
    if (expected.anonymous) {
      EXPECT_TRUE(decision.ok()) << path << ": " << decision.status;
    } else {
      EXPECT_EQ(decision.reason, DenyReason::kNoIdentity) << path;
      EXPECT_EQ(decision.status.code(), absl::StatusCode::kUnauthenticated) << path;
    }
  }
}

TEST(MethodPolicyTest, HealthIsAllowedWithoutIdentityEvenWithABadCertificate) {
  // A load balancer presenting some unrelated certificate must still be able to probe.
  EXPECT_TRUE(Authorize("/grpc.health.v1.Health/Check", nullptr, "trust domain is not \"example.org\"").ok());
  EXPECT_TRUE(Authorize("/grpc.health.v1.Health/Watch", nullptr, "trust domain is not \"example.org\"").ok());
}

TEST(MethodPolicyTest, BadIdentityIsUnauthenticatedAndSaysWhy) {
  const Decision decision =
      Authorize("/latchkey.v1.NatControlService/AllocateBinding", nullptr, "trust domain is not \"example.org\"");
  EXPECT_EQ(decision.reason, DenyReason::kBadIdentity);
  EXPECT_EQ(decision.status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(decision.status.message(), HasSubstr("trust domain is not \"example.org\""));
}

TEST(MethodPolicyTest, NoIdentityIsUnauthenticated) {
  const Decision decision = Authorize("/latchkey.v1.RelayService/SetKeepalives", nullptr);
  EXPECT_EQ(decision.reason, DenyReason::kNoIdentity);
  EXPECT_EQ(decision.status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_FALSE(decision.ok());
}

TEST(MethodPolicyTest, AnonymousCallersLearnNothingAboutWhichMethodsExist) {
  // Unknown and known methods look the same without an identity.
  const Decision unknown = Authorize("/latchkey.v1.NatControlService/NoSuchMethod", nullptr);
  const Decision known = Authorize("/latchkey.v1.NatControlService/ListWorkers", nullptr);
  EXPECT_EQ(unknown.reason, DenyReason::kNoIdentity);
  EXPECT_EQ(unknown.status, known.status);
}

TEST(MethodPolicyTest, WrongRoleNamesTheMethodAndTheRoleItNeeds) {
  const PeerIdentity pbx{Role::kPbx, "pbx-1"};
  Decision decision = Authorize("/latchkey.v1.NatControlService/DrainWorker", &pbx);
  EXPECT_EQ(decision.reason, DenyReason::kWrongRole);
  EXPECT_EQ(decision.status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(decision.status.message(), HasSubstr("DrainWorker"));
  EXPECT_THAT(decision.status.message(), HasSubstr("operator"));
  EXPECT_THAT(decision.status.message(), HasSubstr("pbx/pbx-1"));

  const PeerIdentity worker{Role::kWorker, "relay-a"};
  decision = Authorize("/latchkey.v1.NatControlService/AllocateSession", &worker);
  EXPECT_THAT(decision.status.message(), HasSubstr("AllocateSession"));
  EXPECT_THAT(decision.status.message(), HasSubstr("pbx or operator"));

  decision = Authorize("/latchkey.v1.RelayService/CreateRelaySession", &worker);
  EXPECT_THAT(decision.status.message(), HasSubstr("CreateRelaySession"));
  EXPECT_THAT(decision.status.message(), HasSubstr("needs role control"));

  const PeerIdentity control{Role::kControl, "control-0"};
  decision = Authorize("/latchkey.v1.WorkerRegistryService/Heartbeat", &control);
  EXPECT_THAT(decision.status.message(), HasSubstr("Heartbeat"));
  EXPECT_THAT(decision.status.message(), HasSubstr("needs role worker"));
}

TEST(MethodPolicyTest, UnknownMethodsAndServicesAreDeniedToEveryRole) {
  for (const char* path : {
           "/latchkey.v1.NatControlService/NoSuchMethod",
           "/latchkey.v1.NatControlService/",
           "/latchkey.v1.NatControlService/allocatebinding",   // case matters
           "/latchkey.v1.NatControlService/AllocateBinding/",  // no trailing junk
           "/latchkey.v1.NatControlService/AllocateBindingX",  // no prefix match
           "/latchkey.v1.NatControlService/ListWorkers/../AllocateBinding",
           "/latchkey.v1.WorkerRegistryService/DrainWorker",  // right name, wrong service
           "/latchkey.v1.RelayService/Heartbeat",
           "/latchkey.v2.NatControlService/AllocateBinding",  // another version
           "/latchkey.v1.AdminService/Shutdown",              // another service
           "/grpc.health.v1.Health/Set",
           "latchkey.v1.NatControlService/AllocateBinding",  // not an HTTP/2 path
           "//latchkey.v1.NatControlService/AllocateBinding",
           "/",
           "",
       }) {
    for (Role role : kAllRoles) {
      const PeerIdentity identity = As(role);
      const Decision decision = Authorize(path, &identity);
      EXPECT_EQ(decision.reason, DenyReason::kUnknownMethod) << "\"" << path << "\" as " << RoleName(role);
      EXPECT_EQ(decision.status.code(), absl::StatusCode::kPermissionDenied) << path;
      EXPECT_EQ(DenyReasonLabel(decision.reason), "unknown_method");
    }
  }
}

TEST(MethodPolicyTest, MethodLabelIsTheShortNameForOurMethods) {
  for (const auto& [path, expected] : PolicyTable()) {
    EXPECT_EQ(MethodLabel(path), path.substr(path.rfind('/') + 1)) << path;
  }
  EXPECT_EQ(MethodLabel("/latchkey.v1.NatControlService/AllocateBinding"), "AllocateBinding");
  EXPECT_EQ(MethodLabel("/grpc.health.v1.Health/Check"), "Check");
}

TEST(MethodPolicyTest, MethodLabelIsUnknownForForeignPaths) {
  // A scanner's made-up paths must not create label values.
  for (const char* path :
       {"/latchkey.v1.NatControlService/NoSuchMethod", "/evil.Service/AllocateBinding", "/x/y/z/AllocateBinding",
        "/latchkey.v1.RelayService/Heartbeat", "AllocateBinding", "/", ""}) {
    EXPECT_EQ(MethodLabel(path), "unknown") << path;
  }
}

TEST(MethodPolicyTest, DenyReasonLabels) {
  EXPECT_EQ(DenyReasonLabel(DenyReason::kNone), "none");
  EXPECT_EQ(DenyReasonLabel(DenyReason::kNoIdentity), "no_identity");
  EXPECT_EQ(DenyReasonLabel(DenyReason::kBadIdentity), "bad_identity");
  EXPECT_EQ(DenyReasonLabel(DenyReason::kWrongRole), "wrong_role");
  EXPECT_EQ(DenyReasonLabel(DenyReason::kWrongName), "wrong_name");
  EXPECT_EQ(DenyReasonLabel(DenyReason::kUnknownMethod), "unknown_method");
}

TEST(AuthorizeWorkerIdTest, AWorkerMayActOnlyForItsOwnId) {
  constexpr absl::string_view kHeartbeat = "/latchkey.v1.WorkerRegistryService/Heartbeat";
  const PeerIdentity worker{Role::kWorker, "relay-a"};
  EXPECT_TRUE(AuthorizeWorkerId(kHeartbeat, worker, "relay-a").ok());

  const Decision other = AuthorizeWorkerId(kHeartbeat, worker, "relay-b");
  EXPECT_EQ(other.reason, DenyReason::kWrongName);
  EXPECT_EQ(other.status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other.status.message(), HasSubstr("Heartbeat"));
  EXPECT_THAT(other.status.message(), HasSubstr("relay-b"));
  EXPECT_THAT(other.status.message(), HasSubstr("worker/relay-a"));

  // Prefixes and case variants are other ids.
  EXPECT_FALSE(AuthorizeWorkerId(kHeartbeat, worker, "relay-a2").ok());
  EXPECT_FALSE(AuthorizeWorkerId(kHeartbeat, worker, "relay").ok());
  EXPECT_FALSE(AuthorizeWorkerId(kHeartbeat, worker, "Relay-A").ok());
  EXPECT_FALSE(AuthorizeWorkerId(kHeartbeat, worker, "").ok());
}

TEST(AuthorizeWorkerIdTest, OtherRolesWithTheSameNameAreNotTheWorker) {
  constexpr absl::string_view kRegister = "/latchkey.v1.WorkerRegistryService/RegisterWorker";
  for (Role role : {Role::kPbx, Role::kOperator, Role::kControl}) {
    const Decision decision = AuthorizeWorkerId(kRegister, PeerIdentity{role, "relay-a"}, "relay-a");
    EXPECT_EQ(decision.reason, DenyReason::kWrongName) << RoleName(role);
    EXPECT_EQ(decision.status.code(), absl::StatusCode::kPermissionDenied);
  }
}

TEST(AuthorizeWorkerIdTest, MessageQuotesAtMost128CharactersOfTheClaimedId) {
  const std::string huge(10'000, 'x');
  const Decision decision =
      AuthorizeWorkerId("/latchkey.v1.WorkerRegistryService/Heartbeat", PeerIdentity{Role::kWorker, "a"}, huge);
  EXPECT_FALSE(decision.ok());
  EXPECT_THAT(decision.status.message(), HasSubstr(std::string(128, 'x')));
  EXPECT_THAT(decision.status.message(), Not(HasSubstr(std::string(129, 'x'))));
}

}  // namespace
}  // namespace latchkey::auth
