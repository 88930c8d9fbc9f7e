#include "services/control/store/memory_worker_store.h"

#include "tests/unit/services/control/store/worker_store_contract.h"

namespace latchkey::control::worker_contract {
namespace {

INSTANTIATE_TEST_SUITE_P(Memory, WorkerStoreContract,
                         ::testing::Values(WorkerStoreFactory{
                             "memory", [] { return std::unique_ptr<WorkerStore>(new MemoryWorkerStore()); },
                             [] { return std::unique_ptr<Lease>(new MemoryLease()); }}),
                         [](const ::testing::TestParamInfo<WorkerStoreFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace latchkey::control::worker_contract
