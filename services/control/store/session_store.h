#pragma once
// Where sessions live. A session's state depends on relay calls made between reading and writing it,
// so writes are compare-and-set on the record's `version`: Write succeeds only if the stored version
// is still the one the caller read, and bumps it. A replica that lost a race gets ABORTED and applies
// its change again to the newer record; a released session is never revived by a late write, and two
// sweepers never end one session twice.
//
// Rules every implementation keeps (MemorySessionStore; a Redis one runs them as one server-side
// function per operation), all in the same atomic step as the write:
// - A live session (state not ENDED) holds its call key (owner, call_id, CallTag(caller tag,
//   branch)): no other live session may hold it (ALREADY_EXISTS). Ending a session frees the key.
// - The worker index lists the live sessions of each worker, the call index those of each (owner,
//   call_id); the owner index every stored session.
// - Each owner's live sessions are counted ("pbx/..." owners only); creating a live session past
//   `max_live_per_owner` is RESOURCE_EXHAUSTED naming max_sessions_per_pbx. Adoption (a relay
//   announcing calls it carries) is never refused for the count: the calls exist already.
// - `expires_at` is when the sweeper should look at the session again (offer, idle or final timeout;
//   retention once ended).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "latchkey/v1/nat_control.pb.h"
#include "services/control/store/change_log.h"

namespace latchkey::control {

// The caller-tag part of a call key: the from-tag, refined by the fork's branch when there is one.
// Tags and branches are printable (CheckToken), so the separator never occurs in either.
inline std::string CallTag(const std::string& from_tag, const std::string& branch) {
  return branch.empty() ? from_tag : from_tag + '\x1f' + branch;
}
inline std::string CallTagOf(const v1::Session& session) { return CallTag(session.caller().tag(), session.branch()); }

struct SessionWrite {
  // 0: create (ALREADY_EXISTS if the id exists); otherwise the version the caller read (ABORTED if
  // the stored one differs, NOT_FOUND if the session is gone).
  uint64_t expected_version = 0;
  absl::Time expires_at = absl::InfiniteFuture();
  // Checked only when the write makes a session live that was not (a creation or adoption).
  uint64_t max_live_per_owner = UINT64_MAX;
  // The written version is at least this (and at least 1 on creation, previous + 1 otherwise): an
  // adopted or revived session is stored at the version its relay holds, so that the relay takes the
  // next update (it refuses versions older than its own).
  uint64_t min_version = 0;
  // The watchers' event for this change (type, time, type-specific fields; its session is filled in
  // with the session as stored): appended to the change log in the same step as the write, and only
  // if the write succeeds.
  std::optional<v1::WatchSessionsResponse> event;
};

struct SessionFilter {
  std::optional<std::string> owner;  // only this owner's sessions (ended ones included)
  std::string worker_id;             // only this worker's live sessions
};

struct SessionPage {
  std::vector<v1::Session> sessions;
  std::string next_cursor;  // empty when this was the last page
};

class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // Stores `session` under the rules above; returns it as stored (with its new version).
  virtual absl::StatusOr<v1::Session> Write(const v1::Session& session, const SessionWrite& write) = 0;
  // Deletes the session if its version is still `expected_version` (ABORTED otherwise, NOT_FOUND if
  // absent), with every index entry.
  virtual absl::Status Remove(const std::string& session_id, uint64_t expected_version) = 0;
  // NOT_FOUND if absent.
  virtual absl::StatusOr<v1::Session> Get(const std::string& session_id) = 0;
  // The live session holding a call key; NOT_FOUND if none.
  virtual absl::StatusOr<v1::Session> FindLive(const std::string& owner, const std::string& call_id,
                                               const std::string& from_tag, const std::string& branch = "") = 0;
  // Up to `limit` live sessions of one Call-ID (every branch, whoever offered), in no set order.
  virtual absl::StatusOr<std::vector<v1::Session>> ListLiveCall(const std::string& owner, const std::string& call_id,
                                                                size_t limit) = 0;
  // Sessions in id order after `cursor` (a next_cursor, or "").
  virtual absl::StatusOr<SessionPage> List(const SessionFilter& filter, const std::string& cursor, size_t limit) = 0;
  // Up to `limit` sessions whose expires_at is at or before `now`, earliest first, left in place
  // (the caller ends or removes each with a versioned write). Costs O(expired), never a scan.
  virtual absl::StatusOr<std::vector<v1::Session>> ListExpired(absl::Time now, size_t limit) = 0;
  // Live sessions `owner` holds, as counted against max_live_per_owner.
  virtual absl::StatusOr<uint64_t> LiveCount(const std::string& owner) = 0;

  // The change log (change_log.h) of watchers' events: those of writes (SessionWrite.event) and
  // those that change no record (AppendEvent: a latch contest, say). LogTail is the newest position.
  virtual absl::Status AppendEvent(const v1::WatchSessionsResponse& event) = 0;
  virtual absl::StatusOr<std::string> LogTail() = 0;
  virtual absl::StatusOr<LogPage<v1::WatchSessionsResponse>> ReadLog(const std::string& after, size_t limit) = 0;
};

}  // namespace latchkey::control
