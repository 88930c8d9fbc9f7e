#include "common/auth/method_policy.h"

#include <array>
#include <initializer_list>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace latchkey::auth {
namespace {

// Bit per Role; kAnyone also admits a peer without identity.
using RoleMask = uint8_t;
constexpr RoleMask Bit(Role role) { return static_cast<RoleMask>(1u << static_cast<unsigned>(role)); }
constexpr RoleMask kPbxOrOperator = Bit(Role::kPbx) | Bit(Role::kOperator);
constexpr RoleMask kAnyRole = 0x0f;
constexpr RoleMask kAnyone = 0x80;

struct Rule {
  absl::string_view method;
  RoleMask roles;
};

constexpr absl::string_view kNat = "/latchkey.v1.NatControlService/";
constexpr absl::string_view kWorkers = "/latchkey.v1.WorkerRegistryService/";
constexpr absl::string_view kRelay = "/latchkey.v1.RelayService/";

struct ServiceRules {
  absl::string_view prefix;
  std::initializer_list<Rule> rules;
};

// Methods of each service; a method missing here is refused (new RPCs must be placed deliberately).
const std::array<ServiceRules, 5>& Table() {
  static const std::array<ServiceRules, 5> kTable = {{
      {kNat,
       {{"AllocateBinding", kPbxOrOperator},
        {"GetBinding", kPbxOrOperator},
        {"ListBindings", kPbxOrOperator},
        {"ReleaseBinding", kPbxOrOperator},
        {"WatchBindings", kPbxOrOperator},
        {"AllocateSession", kPbxOrOperator},
        {"AnswerSession", kPbxOrOperator},
        {"UpdateSession", kPbxOrOperator},
        {"GetSession", kPbxOrOperator},
        {"ListSessions", kPbxOrOperator},
        {"ReleaseSession", kPbxOrOperator},
        {"WatchSessions", kPbxOrOperator},
        {"ListWorkers", Bit(Role::kOperator)},
        {"DrainWorker", Bit(Role::kOperator)},
        {"UndrainWorker", Bit(Role::kOperator)}}},
      {kWorkers, {{"RegisterWorker", Bit(Role::kWorker)}, {"Heartbeat", Bit(Role::kWorker)}, {"ReportEvents", Bit(Role::kWorker)}}},
      {kRelay,
       {{"CreateRelaySession", Bit(Role::kControl)},
        {"UpdateRelaySession", Bit(Role::kControl)},
        {"SetKeepalives", Bit(Role::kControl)},
        {"DeleteRelaySession", Bit(Role::kControl)},
        {"GetRelaySession", Bit(Role::kControl)},
        {"DrainRelay", Bit(Role::kControl)}}},
      {"/grpc.health.v1.Health/", {{"Check", kAnyone}, {"Watch", kAnyone}}},
      {"/grpc.reflection.v1alpha.ServerReflection/", {{"ServerReflectionInfo", kAnyRole}}},
  }};
  return kTable;
}

const Rule* Find(absl::string_view method) {
  for (const ServiceRules& service : Table()) {
    if (method.substr(0, service.prefix.size()) != service.prefix) continue;
    const absl::string_view name = method.substr(service.prefix.size());
    for (const Rule& rule : service.rules) {
      if (rule.method == name) return &rule;
    }
  }
  return nullptr;
}

std::string RolesText(RoleMask roles) {
  std::vector<absl::string_view> names;
  for (Role role : {Role::kPbx, Role::kOperator, Role::kWorker, Role::kControl}) {
    if (roles & Bit(role)) names.push_back(RoleName(role));
  }
  return absl::StrJoin(names, " or ");
}

}  // namespace

absl::string_view DenyReasonLabel(DenyReason reason) {
  switch (reason) {
    case DenyReason::kNone: return "none";
    case DenyReason::kNoIdentity: return "no_identity";
    case DenyReason::kBadIdentity: return "bad_identity";
    case DenyReason::kWrongRole: return "wrong_role";
    case DenyReason::kWrongName: return "wrong_name";
    case DenyReason::kUnknownMethod: return "unknown_method";
  }
  return "unknown";
}

absl::string_view MethodLabel(absl::string_view method) {
  if (Find(method) == nullptr) return "unknown";
  return method.substr(method.rfind('/') + 1);
}

Decision Authorize(absl::string_view method, const PeerIdentity* identity, absl::string_view identity_error) {
  const Rule* rule = Find(method);
  if (rule != nullptr && (rule->roles & kAnyone)) return {};
  if (identity == nullptr) {
    // Before the method check: an anonymous scanner learns nothing about which methods exist.
    if (!identity_error.empty()) {
      return {DenyReason::kBadIdentity,
              absl::UnauthenticatedError(absl::StrCat("client certificate identity refused: ", identity_error))};
    }
    return {DenyReason::kNoIdentity,
            absl::UnauthenticatedError("a client certificate with a spiffe://…/latchkey/ROLE/NAME identity is required")};
  }
  if (rule == nullptr) {
    return {DenyReason::kUnknownMethod,
            absl::PermissionDeniedError(absl::StrCat(method, ": no role may call this method"))};
  }
  if (!(rule->roles & Bit(identity->role))) {
    return {DenyReason::kWrongRole,
            absl::PermissionDeniedError(absl::StrCat(rule->method, " needs role ", RolesText(rule->roles), "; ",
                                                     ToString(*identity), " has role ", RoleName(identity->role)))};
  }
  return {};
}

Decision AuthorizeWorkerId(absl::string_view method, const PeerIdentity& identity, absl::string_view worker_id) {
  if (identity.role == Role::kWorker && identity.name == worker_id) return {};
  return {DenyReason::kWrongName,
          absl::PermissionDeniedError(absl::StrCat(MethodLabel(method), ": worker_id \"", worker_id.substr(0, 128),
                                                   "\" is not the caller's (", ToString(identity), ")"))};
}

}  // namespace latchkey::auth
