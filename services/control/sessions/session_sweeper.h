#pragma once
// Ends sessions past their offer, idle or final timeout and forgets ended ones after their
// retention. Safe to run on every replica at once: each end or removal is a versioned write, so a
// session that signalling refreshed meanwhile, or that another sweeper took, is left alone.
#include <cstddef>

#include "services/control/sessions/session_writer.h"
#include "services/control/store/session_store.h"

namespace latchkey::control {

class SessionSweeper {
 public:
  SessionSweeper(SessionStore* store, SessionWriter* writer) : store_(store), writer_(writer) {}

  // Returns how many sessions it ended. Cost is proportional to what is due.
  size_t SweepExpired();

 private:
  SessionStore* store_;
  SessionWriter* writer_;
};

}  // namespace latchkey::control
