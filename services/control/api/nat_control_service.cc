#include "services/control/api/nat_control_service.h"

#include <atomic>
#include <functional>
#include <optional>

#include "common/grpc/status.h"
#include "common/grpc/unary.h"
#include "absl/time/clock.h"
#include "common/validation.h"

namespace latchkey::control {
namespace {

using grpcutil::Finish;
using grpcutil::Reply;
using grpcutil::ToGrpc;

// A watcher that got no event for this long is sent a bookmark (its resume token moved on).
constexpr absl::Duration kBookmarkInterval = absl::Seconds(10);

// Streams the feed's events that `convert` keeps (nullopt: filtered out), from `resume_token` ("":
// from now on), until the client goes away or the server shuts down, each with its resume token.
// The wait bounds how late a cancelled stream notices. Within the open-stream limits only; a watcher
// that falls too far behind is cut off with RESOURCE_EXHAUSTED, one whose token the log no longer
// covers gets OUT_OF_RANGE.
template <typename Entry, typename Event, typename Writer>
grpc::Status Stream(grpc::ServerContext* context, const grpcutil::Caller& caller, EventFeed<Entry>* feed,
                    const std::string& resume_token,
                    const std::function<std::optional<Event>(const Logged<Entry>&)>& convert, Writer* writer,
                    WatchLimits* limits, ControlMetrics* metrics) {
  if (!resume_token.empty()) {
    if (absl::Status s = CheckToken("resume_token", resume_token, 64); !s.ok()) return ToGrpc(s);
  }
  auto slot = limits->Acquire(caller.ToString());
  if (!slot.ok()) {
    metrics->watch_streams_limited->Increment();
    return ToGrpc(slot.status());
  }
  auto reader = feed->Open(resume_token);
  // A client that stops reading blocks Write (flow control) while the feed moves on: cancelling the
  // call is the only way to free this thread. A write in flight is the sign; a watcher that is
  // merely slow is between writes and gets RESOURCE_EXHAUSTED below.
  std::atomic<bool> writing{false};
  reader->SetOnCutOff([context, metrics, &writing] {
    metrics->watch_streams_slow->Increment();
    if (writing.load()) context->TryCancel();
  });
  // Tell the client the stream is live before the first event, so it can act without racing it.
  writer->SendInitialMetadata();
  grpc::Status result = grpc::Status::OK;
  absl::Time last_write = absl::Now();
  std::string last_token = resume_token;
  auto write = [&](const Event& event) {
    writing.store(true);
    const bool written = writer->Write(event);
    writing.store(false);
    last_write = absl::Now();
    last_token = event.resume_token();
    return written;
  };
  bool open = true;
  while (open && !context->IsCancelled()) {
    auto entries = reader->Next(256, absl::Milliseconds(250));
    if (!entries.ok()) {
      if (absl::IsUnavailable(entries.status()) && !feed->shutting_down()) {
        absl::SleepFor(absl::Milliseconds(250));  // catching up from a store that is failing over
        continue;
      }
      if (context->IsCancelled()) break;  // the client left first: nothing to tell it, nothing to count
      if (absl::IsOutOfRange(entries.status())) metrics->watch_streams_gone->Increment();
      result = ToGrpc(entries.status());
      break;
    }
    for (const Logged<Entry>& entry : *entries) {
      if (reader->ended()) break;  // cut off meanwhile: stop writing; the next Next says why
      std::optional<Event> event = convert(entry);
      if (!event) continue;
      event->set_resume_token(entry.position);
      if (!write(*event)) {
        open = false;
        break;
      }
    }
    if (open && absl::Now() - last_write >= kBookmarkInterval) {
      Event bookmark;
      bookmark.set_resume_token(reader->position());
      if (bookmark.resume_token().empty() || bookmark.resume_token() == last_token) {
        last_write = absl::Now();
      } else if (!write(bookmark)) {
        open = false;
      }
    }
  }
  // After this the feed no longer calls the cut-off callback (Close waits for one in flight), so
  // the callback's references to `writing` and `context` never outlive this frame.
  feed->Close(reader);
  return result;
}

}  // namespace

NatControlServiceImpl::NatControlServiceImpl(BindingManager* bindings, SessionManager* sessions,
                                             WorkerRegistry* workers, EventFeed<BindingLogEntry>* binding_events,
                                             EventFeed<SessionEvent>* session_events, WatchLimits* watch_limits,
                                             ControlMetrics* metrics, grpcutil::Gate* gate)
    : bindings_(bindings),
      sessions_(sessions),
      workers_(workers),
      binding_events_(binding_events),
      session_events_(session_events),
      watch_limits_(watch_limits),
      metrics_(metrics),
      gate_(gate) {}

grpc::ServerUnaryReactor* NatControlServiceImpl::AllocateBinding(grpc::CallbackServerContext* context,
                                                                 const v1::AllocateBindingRequest* request,
                                                                 v1::AllocateBindingResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/AllocateBinding");
  if (!in.ok()) return Finish(context, in.status);
  // Finished from wherever the store answers (a Redis store: its loop thread), so no gRPC thread
  // waits on the store's write, the hot path of every REGISTER. (An un-REGISTER, and the other
  // binding and session RPCs, still wait on their store calls.)
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  bindings_->AllocateAsync(*request, in.caller, [reactor, response](absl::StatusOr<v1::AllocateBindingResponse> result) {
    reactor->Finish(Reply(std::move(result), response));
  });
  return reactor;
}

grpc::ServerUnaryReactor* NatControlServiceImpl::GetBinding(grpc::CallbackServerContext* context,
                                                            const v1::GetBindingRequest* request,
                                                            v1::GetBindingResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/GetBinding");
  if (!in.ok()) return Finish(context, in.status);
  return Finish(context, Reply(bindings_->Get(request->binding_id(), in.caller), response->mutable_binding()));
}

grpc::ServerUnaryReactor* NatControlServiceImpl::ListBindings(grpc::CallbackServerContext* context,
                                                              const v1::ListBindingsRequest* request,
                                                              v1::ListBindingsResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/ListBindings");
  if (!in.ok()) return Finish(context, in.status);
  return Finish(context, Reply(bindings_->List(*request, in.caller), response));
}

grpc::ServerUnaryReactor* NatControlServiceImpl::ReleaseBinding(grpc::CallbackServerContext* context,
                                                                const v1::ReleaseBindingRequest* request,
                                                                v1::ReleaseBindingResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/ReleaseBinding");
  if (!in.ok()) return Finish(context, in.status);
  return Finish(context, Reply(bindings_->Release(request->binding_id(), in.caller), response->mutable_binding()));
}

grpc::Status NatControlServiceImpl::WatchBindings(grpc::ServerContext* context, const v1::WatchBindingsRequest* request,
                                                  grpc::ServerWriter<v1::WatchBindingsResponse>* writer) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/WatchBindings");
  if (!in.ok()) return in.status;
  if (!request->aor().empty()) {
    if (absl::Status s = CheckToken("aor", request->aor(), 1024); !s.ok()) return ToGrpc(s);
  }
  const std::string aor = request->aor();
  const grpcutil::Caller caller = in.caller;
  BindingManager* bindings = bindings_;
  return Stream<BindingLogEntry, BindingEvent>(
      context, caller, binding_events_, request->resume_token(),
      [aor, caller, bindings](const Logged<BindingLogEntry>& e) -> std::optional<BindingEvent> {
        const v1::Binding& b = e.value.binding;
        if (!caller.owns(b.owner()) || (!aor.empty() && b.aor() != aor)) return std::nullopt;
        auto event = bindings->EventOf(e.value);
        if (!event.ok()) return std::nullopt;
        return *std::move(event);
      },
      writer, watch_limits_, metrics_);
}

grpc::Status NatControlServiceImpl::AllocateSession(grpc::ServerContext* context, const v1::AllocateSessionRequest* request,
                                                    v1::AllocateSessionResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/AllocateSession");
  if (!in.ok()) return in.status;
  return Reply(sessions_->Allocate(*request, in.caller), response);
}

grpc::Status NatControlServiceImpl::AnswerSession(grpc::ServerContext* context, const v1::AnswerSessionRequest* request,
                                                  v1::AnswerSessionResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/AnswerSession");
  if (!in.ok()) return in.status;
  return Reply(sessions_->Answer(*request, in.caller), response);
}

grpc::Status NatControlServiceImpl::UpdateSession(grpc::ServerContext* context, const v1::UpdateSessionRequest* request,
                                                  v1::UpdateSessionResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/UpdateSession");
  if (!in.ok()) return in.status;
  return Reply(sessions_->Update(*request, in.caller), response);
}

grpc::Status NatControlServiceImpl::GetSession(grpc::ServerContext* context, const v1::GetSessionRequest* request,
                                               v1::GetSessionResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/GetSession");
  if (!in.ok()) return in.status;
  return Reply(sessions_->Get(request->session_id(), in.caller), response->mutable_session());
}

grpc::Status NatControlServiceImpl::ListSessions(grpc::ServerContext* context, const v1::ListSessionsRequest* request,
                                                 v1::ListSessionsResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/ListSessions");
  if (!in.ok()) return in.status;
  return Reply(sessions_->List(*request, in.caller), response);
}

grpc::Status NatControlServiceImpl::ReleaseSession(grpc::ServerContext* context, const v1::ReleaseSessionRequest* request,
                                                   v1::ReleaseSessionResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/ReleaseSession");
  if (!in.ok()) return in.status;
  absl::StatusOr<absl::Duration> delay = absl::ZeroDuration();
  if (request->has_delay()) delay = CheckDuration("delay", true, request->delay(), absl::ZeroDuration(), absl::Hours(1));
  if (!delay.ok()) return grpcutil::ToGrpc(delay.status());
  return Reply(sessions_->Release(request->session_id(), in.caller, *delay), response->mutable_session());
}

grpc::Status NatControlServiceImpl::WatchSessions(grpc::ServerContext* context, const v1::WatchSessionsRequest* request,
                                                  grpc::ServerWriter<v1::WatchSessionsResponse>* writer) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/WatchSessions");
  if (!in.ok()) return in.status;
  if (!request->call_id().empty()) {
    if (absl::Status s = CheckToken("call_id", request->call_id(), 256); !s.ok()) return ToGrpc(s);
  }
  const std::string call_id = request->call_id();
  const grpcutil::Caller caller = in.caller;
  return Stream<SessionEvent, SessionEvent>(
      context, caller, session_events_, request->resume_token(),
      [call_id, caller](const Logged<SessionEvent>& e) -> std::optional<SessionEvent> {
        const v1::Session& s = e.value.session();
        if (!caller.owns(s.owner()) || (!call_id.empty() && s.call_id() != call_id)) return std::nullopt;
        return e.value;
      },
      writer, watch_limits_, metrics_);
}

grpc::ServerUnaryReactor* NatControlServiceImpl::ListWorkers(grpc::CallbackServerContext* context,
                                                             const v1::ListWorkersRequest*,
                                                             v1::ListWorkersResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/ListWorkers");
  if (!in.ok()) return Finish(context, in.status);
  auto workers = workers_->ListFresh(absl::Now());
  if (!workers.ok()) return Finish(context, ToGrpc(workers.status()));
  for (v1::Worker& worker : *workers) *response->add_workers() = std::move(worker);
  return Finish(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* NatControlServiceImpl::DrainWorker(grpc::CallbackServerContext* context,
                                                             const v1::DrainWorkerRequest* request,
                                                             v1::DrainWorkerResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/DrainWorker");
  if (!in.ok()) return Finish(context, in.status);
  if (absl::Status s = CheckToken("worker_id", request->worker_id(), 128); !s.ok()) return Finish(context, ToGrpc(s));
  return Finish(context, Reply(workers_->Drain(request->worker_id()), response->mutable_worker()));
}

grpc::ServerUnaryReactor* NatControlServiceImpl::UndrainWorker(grpc::CallbackServerContext* context,
                                                               const v1::UndrainWorkerRequest* request,
                                                               v1::UndrainWorkerResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/UndrainWorker");
  if (!in.ok()) return Finish(context, in.status);
  if (absl::Status s = CheckToken("worker_id", request->worker_id(), 128); !s.ok()) return Finish(context, ToGrpc(s));
  return Finish(context, Reply(workers_->Undrain(request->worker_id()), response->mutable_worker()));
}

}  // namespace latchkey::control
