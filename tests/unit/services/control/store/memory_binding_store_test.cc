#include "services/control/store/memory_binding_store.h"

#include "tests/unit/services/control/store/binding_store_contract.h"

namespace latchkey::control::contract {
namespace {

INSTANTIATE_TEST_SUITE_P(Memory, BindingStoreContract,
                         ::testing::Values(BindingStoreFactory{
                             "memory",
                             [](uint64_t log_length) { return std::unique_ptr<BindingStore>(new MemoryBindingStore(log_length)); }}),
                         [](const ::testing::TestParamInfo<BindingStoreFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace latchkey::control::contract
