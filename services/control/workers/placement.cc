#include "services/control/workers/placement.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace latchkey::control {

double LoadScore(const PlacementCandidate& c) {
  const v1::WorkerLoad& load = c.load;
  double sessions = load.max_sessions() == 0
                        ? 1.0
                        : static_cast<double>(load.sessions() + c.pending_sessions) / load.max_sessions();
  double ports = 1.0;
  if (load.total_ports() > 0) {
    const double free_ports = load.free_ports() > c.pending_ports ? load.free_ports() - c.pending_ports : 0;
    ports = 1.0 - free_ports / load.total_ports();
  }
  return std::max({sessions, ports, std::clamp(load.cpu(), 0.0, 1.0)});
}

absl::StatusOr<size_t> ChooseWorker(const std::vector<PlacementCandidate>& candidates, uint32_t ports_needed) {
  size_t alive = 0, draining = 0, full = 0;
  size_t best = candidates.size();
  double best_score = 2.0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const PlacementCandidate& c = candidates[i];
    if (c.state == v1::WORKER_STATE_DRAINING) {
      ++alive;
      ++draining;
      continue;
    }
    if (c.state != v1::WORKER_STATE_READY) continue;
    ++alive;
    const uint32_t sessions = c.load.sessions() + c.pending_sessions;
    const uint32_t free_ports = c.load.free_ports() > c.pending_ports ? c.load.free_ports() - c.pending_ports : 0;
    if (sessions >= c.load.max_sessions() || free_ports < ports_needed) {
      ++full;
      continue;
    }
    const double score = LoadScore(c);
    if (score < best_score) {
      best_score = score;
      best = i;
    }
  }
  if (alive == 0) return absl::UnavailableError("no relay worker is registered");
  if (best == candidates.size()) {
    return absl::ResourceExhaustedError(absl::StrCat("no relay worker can take the call: ", full, " full, ",
                                                     draining, " draining (", ports_needed, " ports needed)"));
  }
  return best;
}

}  // namespace latchkey::control
