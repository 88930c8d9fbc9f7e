#include "services/control/store/redis/redis_binding_store.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/time/proto_time.h"
#include "common/validation.h"
#include "services/control/quota/owner_limit.h"
#include "services/control/store/binding_record.h"
#include "services/control/store/redis/fcall.h"
#include "services/control/store/redis/log_reader.h"
#include "services/control/store/store_errors.h"

namespace latchkey::control::redis {
namespace {

constexpr size_t kRecordElements = 7;  // {id, rec, own, crt, rch, sc, ver}

// What the functions keep as `rec`: the record without the fields they maintain themselves.
std::string RequestPart(v1::Binding binding) {
  binding.clear_binding_id();
  binding.clear_owner();
  binding.clear_created_at();
  binding.clear_reachability();
  binding.clear_source_changes();
  binding.clear_version();
  return binding.SerializeAsString();
}

std::string SourceOf(const v1::Binding& binding) {
  return absl::StrCat(binding.source().ip(), " ", binding.source().port());
}

// One record from the functions' reply, starting at `at`.
absl::StatusOr<v1::Binding> Decode(const std::vector<RedisReply>& elements, size_t at) {
  if (elements.size() < at + kRecordElements) return absl::InternalError("redis: short binding record");
  const std::string& id = elements[at].str;
  v1::Binding binding;
  if (!binding.ParseFromString(elements[at + 1].str)) {
    return absl::DataLossError(absl::StrCat("binding ", id, " is corrupt"));
  }
  binding.set_binding_id(id);
  binding.set_owner(elements[at + 2].str);
  *binding.mutable_created_at() = ToProto(absl::FromUnixMicros(ReplyInt(elements[at + 3])));
  binding.set_reachability(static_cast<v1::Reachability>(ReplyInt(elements[at + 4])));
  binding.set_source_changes(static_cast<uint32_t>(ReplyInt(elements[at + 5])));
  binding.set_version(static_cast<uint64_t>(ReplyInt(elements[at + 6])));
  return binding;
}

absl::StatusOr<std::vector<v1::Binding>> DecodeAll(const std::vector<RedisReply>& elements, size_t from) {
  std::vector<v1::Binding> out;
  for (size_t at = from; at + kRecordElements <= elements.size(); at += kRecordElements) {
    auto binding = Decode(elements, at);
    if (!binding.ok()) return binding.status();
    out.push_back(*std::move(binding));
  }
  return out;
}

// The ZRANGE BYLEX bounds of a listing: inside `prefix`, after `cursor`.
std::pair<std::string, std::string> LexRange(const std::string& prefix, const std::string& cursor) {
  std::string min = cursor.empty() ? (prefix.empty() ? "-" : absl::StrCat("[", prefix)) : absl::StrCat("(", cursor);
  std::string max = prefix.empty() ? "+" : absl::StrCat("[", prefix, "\xff");
  return {std::move(min), std::move(max)};
}

}  // namespace

absl::StatusOr<RedisReply> RedisBindingStore::Fcall(const char* function, std::vector<std::string> args) {
  return CallFunction(*client_, prefix_, function, std::move(args));
}

std::vector<std::string> RedisBindingStore::UpsertArgs(const BindingIdentity& identity, const v1::Binding& candidate,
                                                       const BindingLimits& limits) const {
  return {IdentityKey(identity), candidate.binding_id(), RequestPart(candidate), identity.owner,
          absl::StrCat(absl::ToUnixMicros(FromProto(candidate.created_at()))), SourceOf(candidate),
          absl::StrCat(CeilUnixMillis(FromProto(candidate.expires_at()))), absl::StrCat(limits.max_total),
          absl::StrCat(limits.max_per_owner), CountedOwner(identity.owner) ? "1" : "0", log_length_};
}

absl::StatusOr<BindingChange> RedisBindingStore::UpsertResult(const BindingIdentity& identity,
                                                              const v1::Binding& candidate, const BindingLimits& limits,
                                                              absl::StatusOr<RedisReply> reply) {
  if (!reply.ok()) return reply.status();
  const std::vector<RedisReply>& e = reply->elements;
  if (e.empty()) return absl::InternalError("redis: lk_b3_upsert: empty reply");
  const std::string& outcome = e[0].str;
  if (outcome == "created") {
    BindingChange change;
    change.current = NewBinding(identity, candidate);
    return change;
  }
  if (outcome == "refreshed") {
    auto previous = Decode(e, 1);
    if (!previous.ok()) return previous.status();
    BindingChange change;
    change.current = MergeRefresh(*previous, candidate);
    change.previous = *std::move(previous);
    return change;
  }
  if (outcome == "error" && e.size() >= 3) {
    if (e[1].str == "max_total") {
      return absl::ResourceExhaustedError(
          absl::StrCat("max_bindings: the limit of ", limits.max_total, " bindings is reached"));
    }
    if (e[1].str == "max_per_owner") {
      return OwnerLimitReached("max_bindings_per_pbx", identity.owner, static_cast<uint64_t>(ReplyInt(e[2])), "bindings");
    }
    if (e[1].str == "id_taken") {
      return absl::AlreadyExistsError(absl::StrCat("binding_id: \"", candidate.binding_id(), "\" is taken"));
    }
  }
  return absl::InternalError(absl::StrCat("redis: lk_b3_upsert: unexpected reply ", reply->DebugString()));
}

absl::StatusOr<BindingChange> RedisBindingStore::Upsert(const BindingIdentity& identity, const v1::Binding& candidate,
                                                        const BindingLimits& limits) {
  if (candidate.binding_id().empty()) return absl::InvalidArgumentError("binding_id: required for a new binding");
  return UpsertResult(identity, candidate, limits, Fcall("lk_b3_upsert", UpsertArgs(identity, candidate, limits)));
}

void RedisBindingStore::UpsertAsync(const BindingIdentity& identity, const v1::Binding& candidate,
                                    const BindingLimits& limits, UpsertDone done) {
  if (candidate.binding_id().empty()) {
    done(absl::InvalidArgumentError("binding_id: required for a new binding"));
    return;
  }
  CallFunctionAsync(*client_, prefix_, "lk_b3_upsert", UpsertArgs(identity, candidate, limits),
                    [identity, candidate, limits, done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                      done(UpsertResult(identity, candidate, limits, std::move(reply)));
                    });
}

absl::StatusOr<v1::Binding> RedisBindingStore::RemoveIdentity(const BindingIdentity& identity) {
  auto reply = Fcall("lk_b3_remove_identity", {IdentityKey(identity), log_length_});
  if (!reply.ok()) return reply.status();
  if (reply->elements.empty()) return absl::NotFoundError("no binding of this contact for this aor");
  return Decode(reply->elements, 0);
}

absl::StatusOr<v1::Binding> RedisBindingStore::Remove(const std::string& binding_id,
                                                      const std::optional<std::string>& owner) {
  auto reply = Fcall("lk_b3_remove", {binding_id, owner.value_or(""), owner ? "1" : "0", log_length_});
  if (!reply.ok()) return reply.status();
  if (reply->elements.empty()) return NoSuchBinding(binding_id);
  return Decode(reply->elements, 0);
}

absl::StatusOr<v1::Binding> RedisBindingStore::Get(const std::string& binding_id) {
  auto reply = Fcall("lk_b3_get", {binding_id});
  if (!reply.ok()) return reply.status();
  if (reply->elements.empty()) return NoSuchBinding(binding_id);
  return Decode(reply->elements, 0);
}

absl::StatusOr<std::optional<v1::Binding>> RedisBindingStore::SetReachability(const std::string& binding_id,
                                                                              v1::Reachability reachability) {
  auto reply = Fcall("lk_b3_set_reachability", {binding_id, absl::StrCat(static_cast<int>(reachability)), log_length_});
  if (!reply.ok()) return reply.status();
  if (reply->elements.empty()) return std::optional<v1::Binding>();
  auto binding = Decode(reply->elements, 0);
  if (!binding.ok()) return binding.status();
  return std::optional<v1::Binding>(*std::move(binding));
}

absl::StatusOr<BindingPage> RedisBindingStore::List(const BindingFilter& filter, const std::string& cursor,
                                                    size_t limit) {
  const std::string prefix = IdentityPrefix(filter);
  if (absl::Status s = CheckCursorInRange(cursor, prefix); !s.ok()) return s;
  auto [min, max] = LexRange(prefix, cursor);
  const std::string aor_filter = !filter.owner ? filter.aor : "";
  auto reply = Fcall("lk_b3_list", {std::move(min), std::move(max), absl::StrCat(limit), aor_filter});
  if (!reply.ok()) return reply.status();
  if (reply->elements.empty()) return absl::InternalError("redis: lk_b3_list: empty reply");
  BindingPage page;
  page.next_cursor = reply->elements[0].str;
  auto bindings = DecodeAll(reply->elements, 1);
  if (!bindings.ok()) return bindings.status();
  page.bindings = *std::move(bindings);
  return page;
}

absl::StatusOr<std::vector<v1::Binding>> RedisBindingStore::TakeExpired(absl::Time now, size_t limit) {
  auto reply = Fcall("lk_b3_take_expired", {absl::StrCat(absl::ToUnixMillis(now)), absl::StrCat(limit), log_length_});
  if (!reply.ok()) return reply.status();
  return DecodeAll(reply->elements, 0);
}

absl::StatusOr<std::string> RedisBindingStore::LogTail() { return ReadLogTail(*client_, prefix_, "blog"); }

absl::StatusOr<LogPage<BindingLogEntry>> RedisBindingStore::ReadLog(const std::string& after, size_t limit) {
  auto raw = ReadLogEntries(*client_, prefix_, "blog", "resume_token", after, limit);
  if (!raw.ok()) return raw.status();
  LogPage<BindingLogEntry> page;
  page.next = raw->next;
  for (Logged<StreamEntry>& entry : raw->entries) {
    auto& f = entry.value.fields;
    // The record as the functions' replies hold it.
    std::vector<RedisReply> record;
    for (const char* name : {"id", "rec", "own", "crt", "rch", "sc", "ver"}) record.push_back(RedisReply::String(f[name]));
    auto binding = Decode(record, 0);
    if (!binding.ok()) {
      // One bad entry must not stop every reader behind it: skipped, and said.
      log::LogError("binding change log entry unreadable; skipped").Kv("position", entry.position);
      continue;
    }
    int type = 0;
    (void)absl::SimpleAtoi(f["t"], &type);
    Logged<BindingLogEntry> out;
    out.position = std::move(entry.position);
    out.value.type = v1::BindingEventType_IsValid(type) ? static_cast<v1::BindingEventType>(type)
                                                        : v1::BINDING_EVENT_TYPE_UNSPECIFIED;
    out.value.binding = *std::move(binding);
    out.value.time = entry.value.time;
    page.entries.push_back(std::move(out));
  }
  return page;
}

absl::StatusOr<uint64_t> RedisBindingStore::Count() {
  auto reply = Fcall("lk_b3_count", {});
  if (!reply.ok()) return reply.status();
  return static_cast<uint64_t>(ReplyInt(*reply));
}

}  // namespace latchkey::control::redis
