#pragma once
// Debian's Abseil is built without NDEBUG, so absl::Mutex runs its debug-mode deadlock detector in
// our release binaries: every Lock walks a process-wide lock-order graph under a global lock, and
// every mutex ever locked keeps a node in it (about 1 KB, from a private mmap arena: the relay's
// per-leg latch-snapshot mutexes alone came to ~1 MB per 1,000 sessions). The servers turn it off;
// tests keep it on, so a lock-order inversion still fails there.
namespace latchkey::process {

void DisableMutexDeadlockDetection();

}  // namespace latchkey::process
