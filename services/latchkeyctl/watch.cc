// watch bindings / watch sessions: print each event of a server stream as it arrives, until
// --count events, --duration, or Ctrl-C, resuming a broken stream where it left off. The stream
// itself has no deadline other than --duration.
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "services/latchkeyctl/commands.h"
#include "services/latchkeyctl/flags.h"
#include "services/latchkeyctl/render.h"

namespace latchkey::ctl {
namespace {

// A stream that ends for one of these is opened again from the last resume token (another control
// replica may answer: the token is the deployment's, not the replica's).
bool Resumable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         code == grpc::StatusCode::CANCELLED || code == grpc::StatusCode::ABORTED || code == grpc::StatusCode::OK ||
         code == grpc::StatusCode::INTERNAL || code == grpc::StatusCode::UNKNOWN;
}

// `open(grpc::ClientContext*, resume_token)` starts the stream; `render(event)` is the human line of
// one event. A stream that breaks is resumed from the last event's resume token (bookmarks
// included), with a growing pause; one whose token the deployment no longer keeps is noted (events
// were missed: list again) and watched again from now.
template <typename Event, typename Open, typename Render>
int RunWatch(Context& ctx, const std::string& what, Open open, Render render) {
  const uint32_t count = absl::GetFlag(FLAGS_count);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  if (duration < absl::ZeroDuration()) return ctx.UsageError("--duration must not be negative");
  const bool timed = duration > absl::ZeroDuration() && duration != absl::InfiniteDuration();
  const absl::Time end = timed ? absl::Now() + duration : absl::InfiniteFuture();

  std::string token = absl::GetFlag(FLAGS_resume_token);
  uint32_t seen = 0;
  absl::Duration pause = absl::Milliseconds(200);
  for (bool first = true;; first = false) {
    grpc::ClientContext context;
    if (timed) context.set_deadline(absl::ToChronoTime(end));
    auto reader = open(&context, token);
    // The server sends its initial metadata once it follows the log: from here no event is missed.
    reader->WaitForInitialMetadata();
    if (first && ctx.Connected()) {
      ctx.Note(absl::StrCat("watching ", what, count > 0 ? absl::StrCat(" for ", count, " events") : "",
                            timed ? absl::StrCat(" for ", absl::FormatDuration(duration)) : "", "; Ctrl-C stops"));
    }
    Event event;
    while (reader->Read(&event)) {
      pause = absl::Milliseconds(200);  // the stream works again
      token = event.resume_token();
      if (event.type() == 0) continue;  // a bookmark: only the token moves on
      const bool printed = ctx.json() ? ctx.PrintJson(event) : ctx.Print(render(event));
      if (!printed) {  // stdout closed: nobody is listening any more
        context.TryCancel();
        reader->Finish();
        return kExitFailure;
      }
      if (count > 0 && ++seen >= count) {
        context.TryCancel();
        reader->Finish();
        return kExitOk;
      }
    }
    const grpc::Status status = reader->Finish();
    if (timed && (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED || absl::Now() >= end)) return kExitOk;
    if (status.error_code() == grpc::StatusCode::OUT_OF_RANGE) {
      ctx.Note(absl::StrCat("events were missed (", status.error_message(), "); list ", what,
                            " again to catch up; watching from now"));
      token.clear();
      continue;
    }
    if (!Resumable(status.error_code())) return ctx.RpcError(status);
    ctx.Note(absl::StrCat("stream ended (", status.ok() ? "by the server" : status.error_message(),
                          "); resuming in ", absl::FormatDuration(pause)));
    absl::SleepFor(std::min(pause, end - absl::Now()));
    pause = std::min(pause * 2, absl::Seconds(5));
  }
}

}  // namespace

int WatchBindings(Context& ctx, const Args&) {
  v1::WatchBindingsRequest request;
  request.set_aor(absl::GetFlag(FLAGS_aor));
  return RunWatch<v1::WatchBindingsResponse>(
      ctx, "bindings",
      [&](grpc::ClientContext* c, const std::string& token) {
        request.set_resume_token(token);
        return ctx.control().WatchBindings(c, request);
      },
      [](const v1::WatchBindingsResponse& e) { return RenderBindingEvent(e); });
}

int WatchSessions(Context& ctx, const Args&) {
  v1::WatchSessionsRequest request;
  request.set_call_id(absl::GetFlag(FLAGS_call_id));
  return RunWatch<v1::WatchSessionsResponse>(
      ctx, "sessions",
      [&](grpc::ClientContext* c, const std::string& token) {
        request.set_resume_token(token);
        return ctx.control().WatchSessions(c, request);
      },
      [](const v1::WatchSessionsResponse& e) { return RenderSessionEvent(e); });
}

}  // namespace latchkey::ctl
