#pragma once
// The commands. Each reads its flags (already parsed into the Abseil flags of flags.h) and its
// positional arguments (the dispatcher checked their number), talks to latchkey-control through
// `ctx`, prints human text or JSON, and returns the exit code.
#include <string>
#include <vector>

#include "services/latchkeyctl/context.h"

namespace latchkey::ctl {

using Args = std::vector<std::string>;
using CommandFn = int (*)(Context& ctx, const Args& args);

// commands.cc
int Health(Context& ctx, const Args& args);
int BindingsList(Context& ctx, const Args& args);
int BindingsGet(Context& ctx, const Args& args);
int BindingsRelease(Context& ctx, const Args& args);
int Register(Context& ctx, const Args& args);
int SessionsList(Context& ctx, const Args& args);
int SessionsGet(Context& ctx, const Args& args);
int SessionsRelease(Context& ctx, const Args& args);
int SessionsOffer(Context& ctx, const Args& args);
int SessionsAnswer(Context& ctx, const Args& args);
int WorkersList(Context& ctx, const Args& args);
int WorkersDrain(Context& ctx, const Args& args);
int WorkersUndrain(Context& ctx, const Args& args);

// watch.cc
int WatchBindings(Context& ctx, const Args& args);
int WatchSessions(Context& ctx, const Args& args);

// demo_call.cc
int DemoCall(Context& ctx, const Args& args);

}  // namespace latchkey::ctl
