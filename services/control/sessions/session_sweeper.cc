#include "services/control/sessions/session_sweeper.h"

#include "services/control/sessions/session_timeouts.h"

namespace latchkey::control {
namespace {

constexpr size_t kBatch = 1024;
// Bounds one sweep when writes keep failing (the store is down): the next sweep tries again.
constexpr int kMaxBatches = 64;

}  // namespace

size_t SessionSweeper::SweepExpired() {
  const absl::Time now = writer_->Now();
  size_t ended = 0;
  for (int batch = 0; batch < kMaxBatches; ++batch) {
    // Listed, not taken: a session must stay readable while its worker is told to delete it.
    auto expired = store_->ListExpired(now, kBatch);
    if (!expired.ok() || expired->empty()) break;
    // Sessions this batch moved on (ended, removed, re-dated): a batch that moves none would be
    // listed again as it is, so the sweep stops there and the next one tries again.
    size_t progressed = 0;
    for (v1::Session& session : *expired) {
      if (ExpiryOf(session, writer_->timeouts()) > now) {
        // Stored with an earlier deadline than its record implies (written under other timeouts):
        // store the right one, or it would stay at the head of the index and stall later sweeps.
        if (writer_->Write(session).ok()) ++progressed;
        continue;
      }
      if (session.state() == v1::SESSION_STATE_ENDED) {
        // Kept for its retention only.
        if (store_->Remove(session.session_id(), session.version()).ok()) ++progressed;
        continue;
      }
      const v1::SessionEventType reason = now >= ReleaseDeadlineOf(session) ? v1::SESSION_EVENT_TYPE_RELEASED
                                          : now >= FinalDeadlineOf(session, writer_->timeouts())
                                              ? v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT
                                              : v1::SESSION_EVENT_TYPE_EXPIRED;
      bool ended_here = false;
      if (writer_->End(std::move(session), reason, /*tell_worker=*/true, &ended_here).ok()) ++progressed;
      if (ended_here) ++ended;
    }
    if (expired->size() < kBatch || progressed == 0) break;
  }
  return ended;
}

}  // namespace latchkey::control
