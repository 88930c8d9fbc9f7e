#include "common/process/mutex_mode.h"

#include "absl/synchronization/mutex.h"

namespace latchkey::process {

void DisableMutexDeadlockDetection() { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); }

}  // namespace latchkey::process
