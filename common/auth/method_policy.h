#pragma once
// Which roles may call which gRPC method: one table for every Latchkey server, checked by the Gate
// (common/grpc/auth.h) as each handler's first step. What the table cannot see, the handler checks
// next: a worker's own id, a PBX's own records.
//
//   NatControlService binding/session RPCs   pbx, operator (a pbx sees only its own records)
//   NatControlService worker RPCs            operator
//   WorkerRegistryService                    worker (for its own worker id)
//   RelayService                             control
//   grpc.health.v1.Health                    anyone, also without a certificate (probes, load balancers)
//   server reflection                        any identity (registered only by plaintext servers)
//   anything else                            nobody
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/auth/identity.h"

namespace latchkey::auth {

// Why a call was refused; the label of latchkey_rpc_denied_total.
enum class DenyReason : uint8_t {
  kNone,
  kNoIdentity,     // no certificate, or none with a usable identity: UNAUTHENTICATED
  kBadIdentity,    // a certificate whose URI SAN is not ours (trust domain, path): UNAUTHENTICATED
  kWrongRole,      // PERMISSION_DENIED
  kWrongName,      // a worker acting for another worker id: PERMISSION_DENIED
  kUnknownMethod,  // PERMISSION_DENIED
};
absl::string_view DenyReasonLabel(DenyReason reason);

struct Decision {
  DenyReason reason = DenyReason::kNone;
  absl::Status status;  // OK, UNAUTHENTICATED or PERMISSION_DENIED naming the method and the role it needs
  bool ok() const { return reason == DenyReason::kNone; }
};

// `method` is the HTTP/2 path, "/latchkey.v1.NatControlService/AllocateBinding". `identity` is null for
// a peer without one; `identity_error` says why, when its certificate had an unusable URI SAN.
Decision Authorize(absl::string_view method, const PeerIdentity* identity, absl::string_view identity_error = "");

// A worker-registry call for `worker_id` by `identity`: only the worker its certificate names.
Decision AuthorizeWorkerId(absl::string_view method, const PeerIdentity& identity, absl::string_view worker_id);

// The short method name for labels and messages ("AllocateBinding"); "unknown" for a path that is
// not one of ours, so a scanner cannot create label values.
absl::string_view MethodLabel(absl::string_view method);

}  // namespace latchkey::auth
