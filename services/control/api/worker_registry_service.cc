#include "services/control/api/worker_registry_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc/status.h"
#include "common/log/log.h"
#include "common/net/socket_address.h"
#include "common/time/proto_time.h"
#include "common/validation.h"

namespace latchkey::control {

using grpcutil::ToGrpc;

namespace {

// Rewrites each address of `ips` in canonical text (unmapped); INVALID_ARGUMENT naming `field`[i].
absl::Status CanonicalIps(absl::string_view field, google::protobuf::RepeatedPtrField<std::string>* ips) {
  for (int i = 0; i < ips->size(); ++i) {
    auto ip = net::IpAddress::Parse(ips->Get(i));
    if (!ip.ok()) return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "]: ", ip.status().message()));
    *ips->Mutable(i) = ip->Unmapped().ToString();
  }
  return absl::OkStatus();
}

}  // namespace

WorkerRegistryServiceImpl::WorkerRegistryServiceImpl(WorkerRegistry* workers, WorkerSessions* sessions,
                                                     BindingManager* bindings, std::function<absl::Time()> clock,
                                                     grpcutil::Gate* gate)
    : workers_(workers), sessions_(sessions), bindings_(bindings), clock_(std::move(clock)), gate_(gate) {}

grpcutil::Admission WorkerRegistryServiceImpl::AdmitWorker(grpc::ServerContext* context, absl::string_view method,
                                                           const std::string& worker_id) {
  grpcutil::Admission in = gate_->Admit(*context, method);
  if (!in.ok() || in.caller.is_worker(worker_id)) return in;
  const auth::PeerIdentity identity = in.caller.identity.value_or(auth::PeerIdentity{auth::Role::kWorker, "anonymous"});
  const auth::Decision decision = auth::AuthorizeWorkerId(method, identity, worker_id);
  in.status = gate_->Deny(method, decision.reason, decision.status, in.caller.ToString());
  return in;
}

grpc::Status WorkerRegistryServiceImpl::RegisterWorker(grpc::ServerContext* context,
                                                       const v1::RegisterWorkerRequest* request,
                                                       v1::RegisterWorkerResponse* response) {
  const grpcutil::Admission in =
      AdmitWorker(context, "/latchkey.v1.WorkerRegistryService/RegisterWorker", request->worker_id());
  if (!in.ok()) return in.status;
  if (absl::Status s = CheckToken("worker_id", request->worker_id(), 128); !s.ok()) return ToGrpc(s);
  // With an identity, a worker states its media range: without one it would skip the checks that
  // keep it off other workers' addresses and calls.
  if (in.caller.identity && (request->port_min() == 0 || request->port_max() == 0)) {
    return ToGrpc(absl::InvalidArgumentError("port_min, port_max: required"));
  }
  if (auto address = net::SocketAddress::Parse(request->grpc_address()); !address.ok()) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("grpc_address: \"", Excerpt(request->grpc_address()), "\": ", address.status().message())));
  }
  if (request->advertised_ips().empty()) return ToGrpc(absl::InvalidArgumentError("advertised_ips: at least one is required"));
  // Canonical text, so an address compares equal however the worker spelled it (claims, registrars).
  v1::RegisterWorkerRequest canonical = *request;
  if (absl::Status s = CanonicalIps("advertised_ips", canonical.mutable_advertised_ips()); !s.ok()) return ToGrpc(s);
  if (!v1::KeepaliveSourceMode_IsValid(request->keepalive_mode())) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat("keepalive_mode: unknown value ", request->keepalive_mode())));
  }
  // 0/0: a worker that does not say (older); otherwise a real range (other relays refuse media from it).
  if ((request->port_min() != 0 || request->port_max() != 0) &&
      (request->port_min() < 1 || request->port_min() > request->port_max() || request->port_max() > 65535)) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("port_min, port_max: need 1 <= port_min <= port_max <= 65535, got ", request->port_min(), "-",
                     request->port_max())));
  }
  if (absl::Status s = CanonicalIps("keepalive_source_ips", canonical.mutable_keepalive_source_ips()); !s.ok()) {
    return ToGrpc(s);
  }
  absl::Status claims = workers_->CheckClaims(canonical);
  if (!claims.ok()) {
    return gate_->Deny("/latchkey.v1.WorkerRegistryService/RegisterWorker", auth::DenyReason::kWrongName, claims,
                       in.caller.ToString());
  }
  if (absl::Status s = sessions_->CheckAnnounced(request->worker_id(), request->port_min(), request->port_max(),
                                                 request->sessions());
      !s.ok()) {
    return gate_->Deny("/latchkey.v1.WorkerRegistryService/RegisterWorker", auth::DenyReason::kWrongName, s,
                       in.caller.ToString());
  }
  const absl::Time now = clock_();
  auto registration_id = workers_->Register(canonical, now);
  if (!registration_id.ok()) return ToGrpc(registration_id.status());
  sessions_->AdoptFromWorker(request->worker_id(), request->sessions(), now);
  log::LogInfo("worker registered")
      .Kv("worker_id", request->worker_id())
      .Kv("grpc_address", request->grpc_address())
      .Kv("sessions", request->sessions_size())
      .Kv("draining", request->draining());
  *response->mutable_heartbeat_interval() = ToProto(workers_->heartbeat_interval());
  response->set_lost_after_missed(workers_->lost_after_missed());
  response->set_registration_id(*registration_id);
  workers_->MediaRanges(response->mutable_relays());
  return grpc::Status::OK;
}

grpc::Status WorkerRegistryServiceImpl::Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                                                  v1::HeartbeatResponse* response) {
  const grpcutil::Admission in = AdmitWorker(context, "/latchkey.v1.WorkerRegistryService/Heartbeat", request->worker_id());
  if (!in.ok()) return in.status;
  auto result = workers_->Heartbeat(*request, clock_());
  if (!result.ok()) return ToGrpc(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

grpc::Status WorkerRegistryServiceImpl::ReportEvents(grpc::ServerContext* context,
                                                     const v1::ReportEventsRequest* request,
                                                     v1::ReportEventsResponse*) {
  const grpcutil::Admission in = AdmitWorker(context, "/latchkey.v1.WorkerRegistryService/ReportEvents", request->worker_id());
  if (!in.ok()) return in.status;
  if (!workers_->Get(request->worker_id()).ok()) {
    return ToGrpc(absl::NotFoundError(absl::StrCat("worker_id: ", Excerpt(request->worker_id()), " is not registered")));
  }
  for (const v1::WorkerEvent& event : request->events()) sessions_->HandleWorkerEvent(request->worker_id(), event);
  for (const v1::KeepaliveEvent& event : request->keepalive_events()) {
    bindings_->OnKeepaliveEvent(request->worker_id(), event);
  }
  return grpc::Status::OK;
}

}  // namespace latchkey::control
