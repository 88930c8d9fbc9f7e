#include "services/control/bindings/binding_manager.h"

#include "absl/hash/hash.h"
#include "absl/random/random.h"
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
#include "services/control/store/load_record.h"
#include "services/control/store/page_token.h"

namespace latchkey::control {
namespace {

constexpr size_t kMaxUriLength = 1024;
constexpr absl::Duration kMaxExpires = absl::Hours(24 * 7);
constexpr size_t kMaxPageSize = 1000;
constexpr size_t kDefaultPageSize = 100;

// 15 characters: fits std::string's inline buffer, so the id costs no allocation in the three
// places the store keeps it. 56 random bits; Allocate retries on the rare collision.
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

// What the store keeps: the record without the fields derived from it (see Decorate), which would
// otherwise double the bytes per binding.
std::string StoredForm(v1::Binding binding) {
  binding.clear_effective_contact();
  binding.clear_instance_id();
  binding.mutable_keepalive()->clear_note();
  binding.mutable_keepalive()->clear_worker_id();  // follows the worker set: see KeepaliveAssigner
  return binding.SerializeAsString();
}

// The identity a refresh must match: its owner (one PBX cannot refresh, and so move, another's
// binding), then +sip.instance when present (RFC 5626: survives a new contact address), else the
// contact URI as sent. Owner first, so a PBX lists its own bindings by prefix.
std::string IdentityKey(absl::string_view owner, absl::string_view aor, const sip::Contact& contact) {
  const std::string instance = contact.InstanceId();
  const std::string sep(1, kKeySeparator);
  return instance.empty() ? absl::StrCat(owner, sep, aor, sep, "c:", contact.uri().text())
                          : absl::StrCat(owner, sep, aor, sep, "i:", instance);
}

absl::Status NoSuchBinding(absl::string_view binding_id) {
  return absl::NotFoundError(absl::StrCat("binding_id: no binding \"", Excerpt(binding_id), "\""));
}

}  // namespace

BindingManager::BindingManager(BindingManagerOptions options, Store* store, const NatDetector* detector,
                               const WorkerRegistry* workers, ControlMetrics* metrics,
                               EventHub<BindingEvent>* events, Clock clock)
    : options_(options),
      store_(store),
      detector_(detector),
      workers_(workers),
      metrics_(metrics),
      events_(events),
      clock_(std::move(clock)),
      quota_("bindings", "max_bindings_per_pbx", options.max_bindings_per_pbx) {}

absl::Mutex& BindingManager::StripeFor(absl::string_view identity_key) {
  return stripes_[absl::HashOf(identity_key) % stripes_.size()];
}

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

absl::StatusOr<v1::Binding> BindingManager::Load(const std::string& binding_id) {
  return LoadRecord<v1::Binding>(*store_, Table::kBindings, binding_id, "binding");
}

absl::StatusOr<v1::Binding> BindingManager::Decorated(v1::Binding binding) {
  auto contact = sip::Contact::Parse(binding.contact());
  if (!contact.ok()) return absl::DataLossError(absl::StrCat("binding ", binding.binding_id(), " has a corrupt contact"));
  Decorate(*contact, &binding);
  return binding;
}

void BindingManager::Publish(v1::BindingEventType type, const v1::Binding& binding, absl::Time now) {
  if (!events_->has_subscribers()) return;  // the usual case: skip the copy
  BindingEvent event;
  event.set_type(type);
  *event.mutable_binding() = binding;
  *event.mutable_time() = ToProto(now);
  events_->Publish(event);
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

absl::StatusOr<v1::AllocateBindingResponse> BindingManager::Allocate(const v1::AllocateBindingRequest& request,
                                                                     const grpcutil::Caller& caller) {
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
  const std::string identity = IdentityKey(owner, request.aor(), *contact);
  const v1::NatPolicy& policy = detector_->PolicyFor(source.ip);
  NatInput input;
  input.source = source;
  input.contact = &contact->uri();
  input.via = via ? &*via : nullptr;
  v1::NatVerdict verdict = detector_->Evaluate(input);
  const bool behind_nat = verdict.state() == v1::NAT_STATE_BEHIND_NAT;

  absl::Duration granted = requested_expires;
  const absl::Duration nat_expiry = FromProto(policy.nat_registration_expiry());
  if (behind_nat && nat_expiry > absl::ZeroDuration() && granted > nat_expiry) granted = nat_expiry;

  absl::MutexLock lock(&StripeFor(identity));
  std::optional<v1::Binding> existing;
  if (auto id = store_->Get(Table::kBindingIdentity, identity); id.ok()) {
    if (auto loaded = Load(*id); loaded.ok()) existing = *std::move(loaded);
  }

  v1::AllocateBindingResponse response;
  *response.mutable_suggested_expires() = ToProto(granted);

  if (requested_expires == absl::ZeroDuration()) {  // un-REGISTER
    if (!existing) return absl::NotFoundError(absl::StrCat("contact: no binding of ", Excerpt(request.contact()),
                                                           " for aor ", Excerpt(request.aor())));
    RETURN_IF_ERROR(store_->Delete(Table::kBindings, existing->binding_id()));
    RETURN_IF_ERROR(store_->Delete(Table::kBindingIdentity, identity));
    quota_.Release(owner);
    CountVerdict(*existing, -1);
    metrics_->binding_unregistered->Increment();
    if (observer_) observer_->OnBindingRemoved(*existing);
    *existing->mutable_expires() = ToProto(absl::ZeroDuration());
    Decorate(*contact, &*existing);
    Publish(v1::BINDING_EVENT_TYPE_RELEASED, *existing, now);
    *response.mutable_binding() = *std::move(existing);
    return response;
  }

  if (!existing && store_->Count(Table::kBindings) >= options_.max_bindings) {
    return absl::ResourceExhaustedError(
        absl::StrCat("max_bindings: the limit of ", options_.max_bindings, " bindings is reached"));
  }
  if (!existing) RETURN_IF_ERROR(quota_.Acquire(owner));

  v1::Binding binding = existing ? *existing : v1::Binding();
  if (!existing) {
    do {
      binding.set_binding_id(NewBindingId());
    } while (store_->Get(Table::kBindings, binding.binding_id()).ok());
    *binding.mutable_created_at() = ToProto(now);
    binding.set_owner(owner);
  }
  const bool source_changed = existing && (existing->source().ip() != source.ip.ToString() ||
                                           existing->source().port() != source.port);
  binding.set_aor(request.aor());
  binding.set_contact(request.contact());
  binding.set_transport(request.transport());
  *binding.mutable_source() = net::ToProto(source);
  *binding.mutable_registrar() = net::ToProto(registrar);
  *binding.mutable_verdict() = std::move(verdict);
  *binding.mutable_keepalive() = PlanKeepalive(binding, policy);
  *binding.mutable_expires() = ToProto(granted);
  *binding.mutable_refreshed_at() = ToProto(now);
  const absl::Time expires_at = now + granted + options_.grace;
  *binding.mutable_expires_at() = ToProto(expires_at);
  binding.set_user_agent(request.user_agent());
  if (source_changed) binding.set_source_changes(binding.source_changes() + 1);

  absl::Status stored = store_->Put(Table::kBindings, binding.binding_id(), StoredForm(binding), expires_at);
  if (stored.ok() && !existing) {
    stored = store_->Put(Table::kBindingIdentity, identity, binding.binding_id(), absl::InfiniteFuture());
  }
  if (!stored.ok()) {
    if (!existing) quota_.Release(owner);
    return stored;
  }

  if (existing) CountVerdict(*existing, -1);
  CountVerdict(binding, +1);
  if (observer_) observer_->OnBindingStored(existing ? &*existing : nullptr, binding);
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
  Decorate(*contact, &binding);
  if (source_changed) {
    metrics_->binding_source_changes->Increment();
    log::LogInfo("binding source changed")
        .Kv("binding_id", binding.binding_id())
        .Kv("old_source", absl::StrCat(existing->source().ip(), ":", existing->source().port()))
        .Kv("new_source", source.ToString());
  }
  Publish(!existing ? v1::BINDING_EVENT_TYPE_CREATED
                    : (source_changed ? v1::BINDING_EVENT_TYPE_SOURCE_CHANGED : v1::BINDING_EVENT_TYPE_REFRESHED),
          binding, now);

  response.set_created(!existing);
  response.set_source_changed(source_changed);
  *response.mutable_binding() = std::move(binding);
  return response;
}

absl::StatusOr<v1::Binding> BindingManager::Get(const std::string& binding_id, const grpcutil::Caller& caller) {
  RETURN_IF_ERROR(CheckToken("binding_id", binding_id, 64));
  ASSIGN_OR_RETURN(v1::Binding binding, Load(binding_id));
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
  // Keys are OWNER \x1f AOR \x1f ...: a PBX (or the plaintext caller, whose records have no owner)
  // walks its own prefix; an operator walks everything and filters by AOR.
  const std::string sep(1, kKeySeparator);
  const bool scan_all = caller.sees_all() && !caller.local;
  const std::string owner_prefix = scan_all ? "" : absl::StrCat(caller.owner(), sep);
  const std::string prefix = request.aor().empty() || scan_all ? owner_prefix : absl::StrCat(owner_prefix, request.aor(), sep);

  v1::ListBindingsResponse response;
  // Walk the identity index in AOR order; a NAT-state filter may skip records, so read in batches.
  bool exhausted = false;
  while (static_cast<size_t>(response.bindings_size()) < page_size && !exhausted) {
    ASSIGN_OR_RETURN(auto batch, store_->List(Table::kBindingIdentity, prefix, cursor, page_size));
    exhausted = batch.size() < page_size;
    for (const StoredRecord& index : batch) {
      cursor = index.key;
      auto loaded = Load(index.value);
      if (!loaded.ok()) continue;  // expired between the two reads
      if (request.nat_state() != v1::NAT_STATE_UNSPECIFIED && loaded->verdict().state() != request.nat_state()) continue;
      if (!request.aor().empty() && loaded->aor() != request.aor()) continue;
      auto binding = Decorated(*std::move(loaded));
      if (!binding.ok()) continue;
      *response.add_bindings() = *std::move(binding);
      if (static_cast<size_t>(response.bindings_size()) == page_size) break;
    }
  }
  if (static_cast<size_t>(response.bindings_size()) == page_size) {
    // Only promise another page if one exists.
    ASSIGN_OR_RETURN(auto next, store_->List(Table::kBindingIdentity, prefix, cursor, 1));
    if (!next.empty()) response.set_next_page_token(EncodePageToken(cursor));
  }
  return response;
}

absl::StatusOr<v1::Binding> BindingManager::Release(const std::string& binding_id, const grpcutil::Caller& caller) {
  ASSIGN_OR_RETURN(v1::Binding binding, Get(binding_id, caller));
  auto contact = sip::Contact::Parse(binding.contact());
  if (!contact.ok()) return absl::DataLossError(absl::StrCat("binding ", binding_id, " has a corrupt contact"));
  const std::string identity = IdentityKey(binding.owner(), binding.aor(), *contact);
  absl::MutexLock lock(&StripeFor(identity));
  auto still = store_->Get(Table::kBindings, binding_id);
  if (!still.ok()) return NoSuchBinding(binding_id);
  RETURN_IF_ERROR(store_->Delete(Table::kBindings, binding_id));
  RETURN_IF_ERROR(store_->Delete(Table::kBindingIdentity, identity));
  quota_.Release(binding.owner());
  CountVerdict(binding, -1);
  metrics_->binding_released->Increment();
  if (observer_) observer_->OnBindingRemoved(binding);
  Publish(v1::BINDING_EVENT_TYPE_RELEASED, binding, clock_());
  return binding;
}

size_t BindingManager::SweepExpired() {
  const absl::Time now = clock_();
  size_t removed = 0;
  constexpr size_t kBatch = 4096;
  for (;;) {
    auto expired = store_->TakeExpired(Table::kBindings, now, kBatch);
    if (!expired.ok() || expired->empty()) break;
    for (const StoredRecord& record : *expired) {
      v1::Binding binding;
      if (!binding.ParseFromString(record.value)) continue;
      auto contact = sip::Contact::Parse(binding.contact());
      if (!contact.ok()) continue;  // stored only after parsing: cannot happen
      const std::string identity = IdentityKey(binding.owner(), binding.aor(), *contact);
      absl::MutexLock lock(&StripeFor(identity));
      // A refresh that read the binding just before it expired has written it back: it lives on.
      if (store_->Get(Table::kBindings, binding.binding_id()).ok()) continue;
      // A refresh after the expiry created a new binding under a new id: that one stays indexed.
      if (auto id = store_->Get(Table::kBindingIdentity, identity); id.ok() && *id == binding.binding_id()) {
        store_->Delete(Table::kBindingIdentity, identity).IgnoreError();
      }
      ++removed;
      quota_.Release(binding.owner());
      CountVerdict(binding, -1);
      metrics_->binding_expired->Increment();
      if (observer_) observer_->OnBindingRemoved(binding);
      Decorate(*contact, &binding);
      Publish(v1::BINDING_EVENT_TYPE_EXPIRED, binding, now);
    }
    if (expired->size() < kBatch) break;
  }
  return removed;
}

void BindingManager::OnKeepaliveEvent(const std::string& worker_id, const v1::KeepaliveEvent& event) {
  if (event.reachability() != v1::REACHABILITY_REACHABLE && event.reachability() != v1::REACHABILITY_UNREACHABLE) return;
  auto loaded = Load(event.binding_id());
  if (!loaded.ok()) return;  // released or expired meanwhile
  auto contact = sip::Contact::Parse(loaded->contact());
  if (!contact.ok()) return;
  absl::MutexLock lock(&StripeFor(IdentityKey(loaded->owner(), loaded->aor(), *contact)));
  auto binding = Load(event.binding_id());
  if (!binding.ok() || binding->reachability() == event.reachability()) return;
  // A worker the binding has moved away from may still report on it: only the current one counts.
  if (workers_->KeepaliveWorkerFor(binding->registrar().ip(), binding->binding_id()) != worker_id) return;
  CountVerdict(*binding, -1);
  binding->set_reachability(event.reachability());
  CountVerdict(*binding, +1);
  if (!store_->Put(Table::kBindings, binding->binding_id(), StoredForm(*binding), FromProto(binding->expires_at())).ok()) {
    return;
  }
  const bool unreachable = event.reachability() == v1::REACHABILITY_UNREACHABLE;
  (unreachable ? metrics_->binding_became_unreachable : metrics_->binding_became_reachable)->Increment();
  log::LogInfo(unreachable ? "binding unreachable" : "binding reachable again")
      .Kv("binding_id", binding->binding_id())
      .Kv("aor", binding->aor())
      .Kv("worker_id", worker_id);
  Decorate(*contact, &*binding);
  Publish(unreachable ? v1::BINDING_EVENT_TYPE_UNREACHABLE : v1::BINDING_EVENT_TYPE_REACHABLE, *binding, clock_());
}

}  // namespace latchkey::control
