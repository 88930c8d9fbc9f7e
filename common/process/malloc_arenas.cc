#include "common/process/malloc_arenas.h"

#include <malloc.h>

namespace latchkey::process {

void LimitMallocArenas() { ::mallopt(M_ARENA_MAX, 2); }

}  // namespace latchkey::process
