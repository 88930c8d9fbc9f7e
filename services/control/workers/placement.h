#pragma once
// Which relay worker takes a new call. Pure function of the candidates' state so it is unit-tested
// without servers.
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "latchkey/v1/nat_control.pb.h"

namespace latchkey::control {

struct PlacementCandidate {
  std::string worker_id;
  v1::WorkerState state = v1::WORKER_STATE_UNSPECIFIED;
  v1::WorkerLoad load;  // last heartbeat
  // Placed by control since that heartbeat, not yet in `load`.
  uint32_t pending_sessions = 0;
  uint32_t pending_ports = 0;
};

// Picks the least-loaded READY worker that has room for one more session needing `ports_needed`
// ports. Load = the highest of session use, port use and CPU, so no one resource runs out first.
// UNAVAILABLE if no worker is READY or DRAINING (none registered and alive); RESOURCE_EXHAUSTED if
// all are full or draining. Returns the index into `candidates`.
absl::StatusOr<size_t> ChooseWorker(const std::vector<PlacementCandidate>& candidates, uint32_t ports_needed);

// The load score used above, 0 (idle) .. 1 (full); exposed for tests.
double LoadScore(const PlacementCandidate& candidate);

}  // namespace latchkey::control
