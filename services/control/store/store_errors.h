#pragma once
// The statuses every store (and the managers above them) answer, in one wording whichever store is
// in use: clients and tests see the same message from memory and from Redis.
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/validation.h"

namespace latchkey::control {

// Also what another owner's binding looks like: no oracle.
inline absl::Status NoSuchBinding(absl::string_view binding_id) {
  return absl::NotFoundError(absl::StrCat("binding_id: no binding \"", Excerpt(binding_id), "\""));
}

inline absl::Status NoSuchWorker(absl::string_view worker_id) {
  return absl::NotFoundError(absl::StrCat("worker_id: no worker \"", Excerpt(worker_id), "\""));
}

// A heartbeat from a worker whose registration is unknown, replaced or lost: it must register again.
inline absl::Status WorkerNotRegistered(absl::string_view worker_id) {
  return absl::NotFoundError(absl::StrCat("worker_id: ", Excerpt(worker_id), " is not registered"));
}

inline absl::Status NoSuchSession(absl::string_view session_id) {
  return absl::NotFoundError(absl::StrCat("session_id: no session \"", Excerpt(session_id), "\""));
}

inline absl::Status SessionExists(absl::string_view session_id) {
  return absl::AlreadyExistsError(absl::StrCat("session_id: session \"", Excerpt(session_id), "\" exists already"));
}

// A versioned write or removal that lost to another writer.
inline absl::Status StaleSessionVersion(absl::string_view session_id, const absl::AlphaNum& stored, uint64_t expected) {
  return absl::AbortedError(absl::StrCat("version: session \"", Excerpt(session_id), "\" is at version ", stored,
                                         ", not ", expected, " (it changed since it was read)"));
}

// A live session holds the call key another one wanted.
inline absl::Status CallHeld(absl::string_view holder, absl::string_view call_id, absl::string_view from_tag) {
  return absl::AlreadyExistsError(absl::StrCat("call_id: session \"", Excerpt(holder), "\" holds call \"",
                                               Excerpt(call_id), "\" from tag \"", Excerpt(from_tag), "\""));
}

inline absl::Status NoLiveCall(absl::string_view call_id, absl::string_view from_tag) {
  return absl::NotFoundError(absl::StrCat("call_id: no live session holds call \"", Excerpt(call_id), "\" from tag \"",
                                          Excerpt(from_tag), "\""));
}

}  // namespace latchkey::control
