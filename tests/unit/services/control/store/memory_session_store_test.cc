#include "services/control/store/memory_session_store.h"

#include "tests/unit/services/control/store/session_store_contract.h"

namespace latchkey::control::session_contract {
namespace {

INSTANTIATE_TEST_SUITE_P(Memory, SessionStoreContract,
                         ::testing::Values(SessionStoreFactory{
                             "memory",
                             [](uint64_t log_length) { return std::unique_ptr<SessionStore>(new MemorySessionStore(log_length)); }}),
                         [](const ::testing::TestParamInfo<SessionStoreFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace latchkey::control::session_contract
