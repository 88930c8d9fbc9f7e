#include "services/control/store/worker_store.h"

namespace latchkey::control {

void SetDerivedState(WorkerRecord* record) {
  record->worker.set_state(record->lost                                               ? v1::WORKER_STATE_LOST
                           : record->drain_requested || record->worker_draining ? v1::WORKER_STATE_DRAINING
                                                                                 : v1::WORKER_STATE_READY);
}

}  // namespace latchkey::control
