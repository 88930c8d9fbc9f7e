#include "services/control/store/redis/redis_worker_store.h"

#include "absl/strings/str_cat.h"
#include "common/time/proto_time.h"
#include "common/validation.h"
#include "services/control/store/memory_worker_store.h"
#include "services/control/store/redis/fcall.h"
#include "services/control/store/store_errors.h"

namespace latchkey::control::redis {
namespace {

constexpr size_t kRecordElements = 8;  // {id, rec, reg, load, hb, dreq, wdrain, lost}

absl::StatusOr<WorkerRecord> Decode(const std::vector<RedisReply>& e, size_t at) {
  if (e.size() < at + kRecordElements) return absl::InternalError("redis: short worker record");
  WorkerRecord record;
  if (!record.worker.ParseFromString(e[at + 1].str) || !record.worker.mutable_load()->ParseFromString(e[at + 3].str)) {
    return absl::DataLossError(absl::StrCat("worker ", Excerpt(e[at].str), " is corrupt"));
  }
  record.registration_id = e[at + 2].str;
  *record.worker.mutable_last_heartbeat() = ToProto(absl::FromUnixMillis(ReplyInt(e[at + 4])));
  record.drain_requested = e[at + 5].str == "1";
  record.worker_draining = e[at + 6].str == "1";
  record.lost = e[at + 7].str == "1";
  SetDerivedState(&record);
  return record;
}

absl::StatusOr<WorkerRecord> DecodeOne(absl::StatusOr<RedisReply> reply, absl::Status missing) {
  if (!reply.ok()) return reply.status();
  if (reply->elements.empty()) return missing;
  return Decode(reply->elements, 0);
}

std::string Flag(bool value) { return value ? "1" : "0"; }

}  // namespace

absl::StatusOr<WorkerRecord> RedisWorkerStore::Register(const v1::RegisterWorkerRequest& request,
                                                        const std::string& registration_id, absl::Time now) {
  WorkerRecord record = NewWorkerRecord(request, registration_id, now);
  // The dynamic fields travel apart, so a heartbeat rewrites only them.
  v1::Worker registered = record.worker;
  registered.clear_load();
  registered.clear_last_heartbeat();
  registered.clear_state();
  return DecodeOne(CallFunction(*client_, prefix_, "lk_w1_register",
                                {request.worker_id(), registered.SerializeAsString(), registration_id,
                                 request.load().SerializeAsString(), absl::StrCat(absl::ToUnixMillis(now)),
                                 Flag(request.draining())}),
                   absl::InternalError("redis: lk_w1_register returned nothing"));
}

absl::StatusOr<WorkerRecord> RedisWorkerStore::Heartbeat(const v1::HeartbeatRequest& request, absl::Time now) {
  return DecodeOne(CallFunction(*client_, prefix_, "lk_w1_heartbeat",
                                {request.worker_id(), request.registration_id(), request.load().SerializeAsString(),
                                 absl::StrCat(absl::ToUnixMillis(now)), Flag(request.draining())}),
                   WorkerNotRegistered(request.worker_id()));
}

absl::StatusOr<WorkerRecord> RedisWorkerStore::SetDrainRequested(const std::string& worker_id, bool drain) {
  return DecodeOne(CallFunction(*client_, prefix_, "lk_w1_drain", {worker_id, Flag(drain)}),
                   NoSuchWorker(worker_id));
}

absl::StatusOr<bool> RedisWorkerStore::MarkLost(const std::string& worker_id, absl::Time now,
                                                absl::Duration silent_for) {
  return IfSilent("lk_w1_mark_lost", worker_id, now, silent_for);
}

absl::StatusOr<bool> RedisWorkerStore::Forget(const std::string& worker_id, absl::Time now,
                                              absl::Duration silent_for) {
  return IfSilent("lk_w1_forget", worker_id, now, silent_for);
}

absl::StatusOr<bool> RedisWorkerStore::IfSilent(const char* function, const std::string& worker_id, absl::Time now,
                                                absl::Duration silent_for) {
  auto reply = CallFunction(*client_, prefix_, function,
                            {worker_id, absl::StrCat(absl::ToUnixMillis(now)),
                             absl::StrCat(absl::ToInt64Milliseconds(silent_for))});
  if (!reply.ok()) return reply.status();
  return ReplyInt(*reply) == 1;
}

absl::StatusOr<std::vector<WorkerRecord>> RedisWorkerStore::List() {
  auto reply = CallFunction(*client_, prefix_, "lk_w1_list", {});
  if (!reply.ok()) return reply.status();
  std::vector<WorkerRecord> out;
  for (size_t at = 0; at + kRecordElements <= reply->elements.size(); at += kRecordElements) {
    auto record = Decode(reply->elements, at);
    if (!record.ok()) return record.status();
    out.push_back(*std::move(record));
  }
  return out;
}

absl::StatusOr<uint64_t> RedisLease::Acquire(const std::string& holder, absl::Time, absl::Duration ttl) {
  auto reply = CallFunction(*client_, prefix_, "lk_w1_lease",
                            {name_, holder, absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(ttl)))});
  if (!reply.ok()) return reply.status();
  return static_cast<uint64_t>(ReplyInt(*reply));
}

absl::Status RedisLease::Release(const std::string& holder) {
  return CallFunction(*client_, prefix_, "lk_w1_release", {name_, holder}).status();
}

}  // namespace latchkey::control::redis
