// watch bindings / watch sessions: print each event of a server stream as it arrives, until
// --count events, --duration, or Ctrl-C. The stream itself has no deadline other than --duration.
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/latchkeyctl/commands.h"
#include "services/latchkeyctl/flags.h"
#include "services/latchkeyctl/render.h"

namespace latchkey::ctl {
namespace {

// `open(grpc::ClientContext*)` starts the stream; `render(event)` is the human line of one event.
template <typename Event, typename Open, typename Render>
int RunWatch(Context& ctx, const std::string& what, Open open, Render render) {
  const uint32_t count = absl::GetFlag(FLAGS_count);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  if (duration < absl::ZeroDuration()) return ctx.UsageError("--duration must not be negative");
  const bool timed = duration > absl::ZeroDuration() && duration != absl::InfiniteDuration();

  grpc::ClientContext context;
  if (timed) context.set_deadline(absl::ToChronoTime(absl::Now() + duration));
  auto reader = open(&context);
  // The server sends its initial metadata once it is subscribed: from here no event is missed.
  reader->WaitForInitialMetadata();
  if (ctx.Connected()) {
    ctx.Note(absl::StrCat("watching ", what, count > 0 ? absl::StrCat(" for ", count, " events") : "",
                          timed ? absl::StrCat(" for ", absl::FormatDuration(duration)) : "", "; Ctrl-C stops"));
  }

  Event event;
  uint32_t seen = 0;
  while (reader->Read(&event)) {
    const bool printed = ctx.json() ? ctx.PrintJson(event) : ctx.Print(render(event));
    if (!printed) {  // stdout closed: nobody is listening any more
      context.TryCancel();
      reader->Finish();
      return kExitFailure;
    }
    if (count > 0 && ++seen >= count) {
      context.TryCancel();
      break;
    }
  }
  const grpc::Status status = reader->Finish();
  if (count > 0 && seen >= count) return kExitOk;
  if (timed && status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) return kExitOk;
  if (!status.ok()) return ctx.RpcError(status);
  return ctx.Failure("the server ended the stream");
}

}  // namespace

int WatchBindings(Context& ctx, const Args&) {
  v1::WatchBindingsRequest request;
  request.set_aor(absl::GetFlag(FLAGS_aor));
  return RunWatch<v1::WatchBindingsResponse>(
      ctx, "bindings", [&](grpc::ClientContext* c) { return ctx.control().WatchBindings(c, request); },
      [](const v1::WatchBindingsResponse& e) { return RenderBindingEvent(e); });
}

int WatchSessions(Context& ctx, const Args&) {
  v1::WatchSessionsRequest request;
  request.set_call_id(absl::GetFlag(FLAGS_call_id));
  return RunWatch<v1::WatchSessionsResponse>(
      ctx, "sessions", [&](grpc::ClientContext* c) { return ctx.control().WatchSessions(c, request); },
      [](const v1::WatchSessionsResponse& e) { return RenderSessionEvent(e); });
}

}  // namespace latchkey::ctl
