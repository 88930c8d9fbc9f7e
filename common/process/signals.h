#pragma once
// Orderly shutdown: block SIGINT/SIGTERM in every thread (call first thing in main, before any
// thread starts), then wait for one synchronously where it is safe to act on it.
namespace latchkey::process {

void BlockTerminationSignals();
// Returns the signal number received.
int WaitForTerminationSignal();

}  // namespace latchkey::process
