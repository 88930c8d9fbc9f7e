#include "services/control/bindings/binding_manager.h"

#include "absl/random/random.h"
#include "absl/synchronization/notification.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log/log.h"
#include "common/net/socket_address.h"
#include "common/sip/contact.h"
#include "common/sip/uri.h"
#include "common/sip/via.h"
#include "common/status_macros.h"
#include "common/time/proto_time.h"
#include "common/validation.h"
#include "services/control/store/binding_record.h"
#include "services/control/store/page_token.h"
#include "services/control/store/store_errors.h"

namespace latchkey::control {
namespace {

constexpr size_t kMaxUriLength = 1024;
constexpr absl::Duration kMaxExpires = absl::Hours(24 * 7);
constexpr size_t kMaxPageSize = 1000;
constexpr size_t kDefaultPageSize = 100;
// Store pages one List call reads at most (a NAT-state filter may skip many records).
constexpr int kMaxListReads = 16;
// Fresh ids drawn when one is taken already (56 random bits: practically never).
constexpr int kMaxIdDraws = 4;

// 15 characters: fits std::string's inline buffer, so the id costs no allocation where the store
// keeps it. 56 random bits; Allocate draws again on the rare collision.
std::string NewBindingId() {
  static thread_local absl::BitGen rng;
  return absl::StrFormat("b%014x", absl::Uniform<uint64_t>(rng) >> 8);
}

std::string KeepaliveNote(const v1::Binding& binding) {
  if (binding.transport() != v1::TRANSPORT_UDP) {
    return "connection-oriented transport: the client keeps its flow alive (RFC 5626 CRLF); nothing is pinged";
  }
  if (binding.keepalive().method() == v1::KEEPALIVE_METHOD_NONE) return "not behind NAT: no keepalive needed";
  if (binding.keepalive().worker_id().empty()) {
    return absl::StrCat("no relay worker can send from the registrar address ", binding.registrar().ip(), " yet");
  }
  return absl::StrCat("pinged from the registrar address by worker ", binding.keepalive().worker_id());
}

// The identity a refresh must match: its owner (one PBX cannot refresh, and so move, another's
// binding), then +sip.instance when present (RFC 5626: survives a new contact address), else the
// contact URI as sent.
BindingIdentity IdentityOf(absl::string_view owner, absl::string_view aor, const sip::Contact& contact) {
  const std::string instance = contact.InstanceId();
  BindingIdentity identity;
  identity.owner = std::string(owner);
  identity.aor = std::string(aor);
  identity.contact = instance.empty() ? absl::StrCat("c:", contact.uri().text()) : absl::StrCat("i:", instance);
  return identity;
}

}  // namespace

BindingManager::BindingManager(BindingManagerOptions options, BindingStore* store, const NatDetector* detector,
                               const WorkerRegistry* workers, ControlMetrics* metrics,
                               std::function<void()> logged, Clock clock)
    : options_(options),
      store_(store),
      detector_(detector),
      workers_(workers),
      metrics_(metrics),
      logged_(std::move(logged)),
      clock_(std::move(clock)) {}

void BindingManager::CountVerdict(const v1::Binding& binding, int delta) {
  prometheus::Gauge* gauge = binding.verdict().state() == v1::NAT_STATE_BEHIND_NAT ? metrics_->bindings_behind_nat
                                                                                  : metrics_->bindings_not_behind_nat;
  gauge->Increment(delta);
  if (binding.reachability() == v1::REACHABILITY_UNREACHABLE) metrics_->bindings_unreachable->Increment(delta);
}

// Fills the fields derived from the stored record: instance id, effective Contact, keepalive worker
// and note.
void BindingManager::Decorate(const sip::Contact& contact, v1::Binding* binding) const {
  if (binding->keepalive().method() == v1::KEEPALIVE_METHOD_OPTIONS ||
      binding->keepalive().method() == v1::KEEPALIVE_METHOD_CRLF) {
    binding->mutable_keepalive()->set_worker_id(
        workers_->KeepaliveWorkerFor(binding->registrar().ip(), binding->binding_id()));
  }
  binding->set_instance_id(contact.InstanceId());
  std::string effective = contact.Unprefixed();
  if (binding->verdict().state() == v1::NAT_STATE_BEHIND_NAT) {
    if (auto source = net::FromProto(binding->source(), "source"); source.ok()) effective = contact.WithHostPort(*source);
  }
  binding->set_effective_contact(std::move(effective));
  binding->mutable_keepalive()->set_note(KeepaliveNote(*binding));
}

absl::StatusOr<v1::Binding> BindingManager::Decorated(v1::Binding binding) const {
  auto contact = sip::Contact::Parse(binding.contact());
  if (!contact.ok()) return absl::DataLossError(absl::StrCat("binding ", binding.binding_id(), " has a corrupt contact"));
  Decorate(*contact, &binding);
  return binding;
}

void BindingManager::Logged() const {
  if (logged_) logged_();
}

absl::StatusOr<BindingEvent> BindingManager::EventOf(const BindingLogEntry& entry) const {
  ASSIGN_OR_RETURN(v1::Binding binding, Decorated(entry.binding));
  BindingEvent event;
  event.set_type(entry.type);
  *event.mutable_binding() = std::move(binding);
  *event.mutable_time() = ToProto(entry.time);
  return event;
}

v1::KeepalivePlan BindingManager::PlanKeepalive(const v1::Binding& binding, const v1::NatPolicy& policy) const {
  v1::KeepalivePlan plan;
  plan.set_method(v1::KEEPALIVE_METHOD_NONE);
  if (binding.transport() != v1::TRANSPORT_UDP) {
    return plan;
  }
  const bool behind_nat = binding.verdict().state() == v1::NAT_STATE_BEHIND_NAT;
  if (!behind_nat && !policy.keepalive_non_nat()) {
    return plan;
  }
  plan.set_method(policy.keepalive_method());
  *plan.mutable_interval() = policy.keepalive_interval();
  plan.set_failure_threshold(policy.keepalive_failure_threshold());
  return plan;
}

absl::StatusOr<BindingManager::Registration> BindingManager::Prepare(const v1::AllocateBindingRequest& request,
                                                                      const grpcutil::Caller& caller) const {
  // --- Validate every field before touching state.
  RETURN_IF_ERROR(CheckToken("aor", request.aor(), kMaxUriLength));
  auto aor = sip::SipUri::Parse(request.aor());
  if (!aor.ok()) return absl::InvalidArgumentError(absl::StrCat("aor: ", aor.status().message()));
  RETURN_IF_ERROR(CheckToken("contact", request.contact(), 4 * kMaxUriLength, /*allow_spaces=*/true));
  auto contact = sip::Contact::Parse(request.contact());
  if (!contact.ok()) return absl::InvalidArgumentError(absl::StrCat("contact: ", contact.status().message()));
  RETURN_IF_ERROR(CheckEnum("transport", request.transport(), v1::Transport_IsValid, false));
  ASSIGN_OR_RETURN(net::SocketAddress source, net::FromProto(request.source(), "source"));
  ASSIGN_OR_RETURN(net::SocketAddress registrar, net::FromProto(request.registrar(), "registrar"));
  std::optional<sip::Via> via;
  if (!request.via().empty()) {
    RETURN_IF_ERROR(CheckOptionalText("via", request.via(), kMaxUriLength));
    auto parsed = sip::Via::Parse(request.via());
    if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat("via: ", parsed.status().message()));
    via = *std::move(parsed);
  }
  ASSIGN_OR_RETURN(absl::Duration requested_expires,
                   CheckDuration("expires", request.has_expires(), request.expires(), absl::ZeroDuration(), kMaxExpires));
  RETURN_IF_ERROR(CheckOptionalText("user_agent", request.user_agent(), 256));

  // --- Decide.
  const absl::Time now = clock_();
  const std::string owner = caller.owner();
  Registration r(*std::move(contact));
  r.now = now;
  r.identity = IdentityOf(owner, request.aor(), r.contact);
  const v1::NatPolicy& policy = detector_->PolicyFor(source.ip);
  NatInput input;
  input.source = source;
  input.contact = &r.contact.uri();
  input.via = via ? &*via : nullptr;
  v1::NatVerdict verdict = detector_->Evaluate(input);
  const bool behind_nat = verdict.state() == v1::NAT_STATE_BEHIND_NAT;

  absl::Duration granted = requested_expires;
  const absl::Duration nat_expiry = FromProto(policy.nat_registration_expiry());
  if (behind_nat && nat_expiry > absl::ZeroDuration() && granted > nat_expiry) granted = nat_expiry;

  r.granted = granted;
  r.unregister = requested_expires == absl::ZeroDuration();
  r.source = source.ToString();
  if (r.unregister) return r;

  // What this REGISTER says; the store keeps a refreshed binding's id, owner, creation time and
  // reachability (MergeRefresh).
  v1::Binding& candidate = r.candidate;
  candidate.set_binding_id(NewBindingId());
  *candidate.mutable_created_at() = ToProto(now);
  candidate.set_owner(owner);
  candidate.set_aor(request.aor());
  candidate.set_contact(request.contact());
  candidate.set_transport(request.transport());
  *candidate.mutable_source() = net::ToProto(source);
  *candidate.mutable_registrar() = net::ToProto(registrar);
  *candidate.mutable_verdict() = std::move(verdict);
  *candidate.mutable_keepalive() = PlanKeepalive(candidate, policy);
  *candidate.mutable_expires() = ToProto(granted);
  *candidate.mutable_refreshed_at() = ToProto(now);
  *candidate.mutable_expires_at() = ToProto(now + granted + options_.grace);
  candidate.set_user_agent(request.user_agent());
  r.limits.max_total = options_.max_bindings;
  r.limits.max_per_owner = options_.max_bindings_per_pbx;
  return r;
}

absl::StatusOr<v1::AllocateBindingResponse> BindingManager::Unregister(Registration& r,
                                                                       const v1::AllocateBindingRequest& request) {
  auto removed = store_->RemoveIdentity(r.identity);
  if (absl::IsNotFound(removed.status())) {
    return absl::NotFoundError(absl::StrCat("contact: no binding of ", Excerpt(request.contact()), " for aor ",
                                            Excerpt(request.aor())));
  }
  if (!removed.ok()) return removed.status();
  CountVerdict(*removed, -1);
  metrics_->binding_unregistered->Increment();
  *removed->mutable_expires() = ToProto(absl::ZeroDuration());
  Decorate(r.contact, &*removed);
  Logged();
  v1::AllocateBindingResponse response;
  *response.mutable_suggested_expires() = ToProto(r.granted);
  *response.mutable_binding() = *std::move(removed);
  return response;
}

absl::StatusOr<v1::AllocateBindingResponse> BindingManager::Complete(Registration& r,
                                                                     absl::StatusOr<BindingChange> change) {
  if (!change.ok()) return change.status();
  const std::optional<v1::Binding>& existing = change->previous;
  v1::Binding binding = std::move(change->current);
  const bool source_changed = existing && SourceChanged(*existing, binding);

  if (existing) CountVerdict(*existing, -1);
  CountVerdict(binding, +1);
  for (int reason : binding.verdict().reasons()) {
    if (reason > 0 && reason < static_cast<int>(metrics_->nat_reasons.size()) && metrics_->nat_reasons[reason]) {
      metrics_->nat_reasons[reason]->Increment();
    }
  }
  if (existing) {
    metrics_->binding_refreshed->Increment();
  } else {
    metrics_->binding_created->Increment();
  }
  Decorate(r.contact, &binding);
  if (source_changed) {
    metrics_->binding_source_changes->Increment();
    log::LogInfo("binding source changed")
        .Kv("binding_id", binding.binding_id())
        .Kv("old_source", absl::StrCat(existing->source().ip(), ":", existing->source().port()))
        .Kv("new_source", r.source);
  }
  Logged();

  v1::AllocateBindingResponse response;
  *response.mutable_suggested_expires() = ToProto(r.granted);
  response.set_created(!existing);
  response.set_source_changed(source_changed);
  *response.mutable_binding() = std::move(binding);
  return response;
}

absl::StatusOr<v1::AllocateBindingResponse> BindingManager::Allocate(const v1::AllocateBindingRequest& request,
                                                                     const grpcutil::Caller& caller) {
  // The asynchronous path, waited for: one path to test and to keep right.
  absl::StatusOr<v1::AllocateBindingResponse> result;
  absl::Notification done;
  AllocateAsync(request, caller, [&](absl::StatusOr<v1::AllocateBindingResponse> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

void BindingManager::AllocateAsync(const v1::AllocateBindingRequest& request, const grpcutil::Caller& caller,
                                   AllocateDone done) {
  auto prepared = Prepare(request, caller);
  if (!prepared.ok()) return done(prepared.status());
  if (prepared->unregister) return done(Unregister(*prepared, request));
  Store(std::make_shared<Registration>(*std::move(prepared)), 1, std::move(done));
}

void BindingManager::Store(std::shared_ptr<Registration> r, int draw, AllocateDone done) {
  store_->UpsertAsync(r->identity, r->candidate, r->limits,
                      [this, r, draw, done = std::move(done)](absl::StatusOr<BindingChange> change) mutable {
                        if (absl::IsAlreadyExists(change.status()) && draw < kMaxIdDraws) {
                          r->candidate.set_binding_id(NewBindingId());  // taken: draw another
                          return Store(std::move(r), draw + 1, std::move(done));
                        }
                        done(Complete(*r, std::move(change)));
                      });
}

absl::StatusOr<v1::Binding> BindingManager::Get(const std::string& binding_id, const grpcutil::Caller& caller) {
  RETURN_IF_ERROR(CheckToken("binding_id", binding_id, 64));
  ASSIGN_OR_RETURN(v1::Binding binding, store_->Get(binding_id));
  if (!caller.owns(binding.owner())) return NoSuchBinding(binding_id);
  return Decorated(std::move(binding));
}

absl::StatusOr<v1::ListBindingsResponse> BindingManager::List(const v1::ListBindingsRequest& request,
                                                              const grpcutil::Caller& caller) {
  if (!request.aor().empty()) RETURN_IF_ERROR(CheckToken("aor", request.aor(), kMaxUriLength));
  RETURN_IF_ERROR(CheckEnum("nat_state", request.nat_state(), v1::NatState_IsValid, true));
  if (request.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: ", request.page_size(), " is above ", kMaxPageSize));
  }
  const size_t page_size = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  ASSIGN_OR_RETURN(std::string cursor, DecodePageToken(request.page_token()));
  // A PBX (or the plaintext caller, whose records have no owner) reads its own range; an operator
  // reads everything, filtered by AOR.
  BindingFilter filter;
  if (!caller.sees_all() || caller.local) filter.owner = caller.owner();
  filter.aor = request.aor();

  v1::ListBindingsResponse response;
  // Read before the listing: a watch from here misses nothing the listing does not show.
  if (request.page_token().empty()) {
    ASSIGN_OR_RETURN(*response.mutable_resume_token(), store_->LogTail());
  }
  // A NAT-state filter may skip records: read on until the page is full, within a bound.
  for (int read = 0; read < kMaxListReads; ++read) {
    const size_t wanted = page_size - response.bindings_size();
    ASSIGN_OR_RETURN(BindingPage page, store_->List(filter, cursor, wanted));
    for (v1::Binding& stored : page.bindings) {
      if (request.nat_state() != v1::NAT_STATE_UNSPECIFIED && stored.verdict().state() != request.nat_state()) continue;
      auto binding = Decorated(std::move(stored));
      if (binding.ok()) *response.add_bindings() = *std::move(binding);
    }
    cursor = page.next_cursor;
    if (cursor.empty() || static_cast<size_t>(response.bindings_size()) == page_size) break;
  }
  if (!cursor.empty()) response.set_next_page_token(EncodePageToken(cursor));
  return response;
}

absl::StatusOr<v1::Binding> BindingManager::Release(const std::string& binding_id, const grpcutil::Caller& caller) {
  RETURN_IF_ERROR(CheckToken("binding_id", binding_id, 64));
  const std::optional<std::string> owner = caller.sees_all() ? std::nullopt : std::optional<std::string>(caller.owner());
  ASSIGN_OR_RETURN(v1::Binding removed, store_->Remove(binding_id, owner));
  CountVerdict(removed, -1);
  metrics_->binding_released->Increment();
  ASSIGN_OR_RETURN(v1::Binding binding, Decorated(std::move(removed)));
  Logged();
  return binding;
}

size_t BindingManager::SweepExpired() {
  const absl::Time now = clock_();
  size_t removed = 0;
  constexpr size_t kBatch = 4096;
  for (;;) {
    // Taken atomically: a refresh either came first (and moved the expiry) or creates a new binding.
    auto expired = store_->TakeExpired(now, kBatch);
    if (!expired.ok() || expired->empty()) break;
    for (const v1::Binding& binding : *expired) {
      ++removed;
      CountVerdict(binding, -1);
      metrics_->binding_expired->Increment();
    }
    if (expired->size() < kBatch) break;
  }
  if (removed > 0) Logged();
  return removed;
}

void BindingManager::OnKeepaliveEvent(const std::string& worker_id, const v1::KeepaliveEvent& event) {
  if (event.reachability() != v1::REACHABILITY_REACHABLE && event.reachability() != v1::REACHABILITY_UNREACHABLE) return;
  auto stored = store_->Get(event.binding_id());
  if (!stored.ok()) return;  // released or expired meanwhile
  // A worker the binding has moved away from may still report on it: only the current one counts.
  if (workers_->KeepaliveWorkerFor(stored->registrar().ip(), stored->binding_id()) != worker_id) return;
  auto updated = store_->SetReachability(event.binding_id(), event.reachability());
  if (!updated.ok() || !*updated) return;  // gone, or already so
  v1::Binding before = **updated;
  before.set_reachability(event.reachability() == v1::REACHABILITY_UNREACHABLE ? v1::REACHABILITY_REACHABLE
                                                                              : v1::REACHABILITY_UNREACHABLE);
  CountVerdict(before, -1);
  CountVerdict(**updated, +1);
  const bool unreachable = event.reachability() == v1::REACHABILITY_UNREACHABLE;
  (unreachable ? metrics_->binding_became_unreachable : metrics_->binding_became_reachable)->Increment();
  log::LogInfo(unreachable ? "binding unreachable" : "binding reachable again")
      .Kv("binding_id", event.binding_id())
      .Kv("aor", (*updated)->aor())
      .Kv("worker_id", worker_id);
  Logged();
}

}  // namespace latchkey::control
