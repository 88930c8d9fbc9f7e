#include "services/control/ng/commands.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/time/proto_time.h"
#include "services/control/ng/call_routing.h"
#include "services/control/ng/translate.h"
#include "services/control/sdp/session_description.h"

namespace latchkey::control::ng {
namespace {

constexpr char kUnknownCall[] = "Unknown call-id";
constexpr char kNotFoundWarning[] = "Call-ID not found or tags didn't match";

Value Ok() {
  Value reply = Value::Dictionary();
  reply.Set("result", Value::String("ok"));
  return reply;
}

Value SdpReply(std::string sdp) {
  Value reply = Ok();
  reply.Set("sdp", Value::String(std::move(sdp)));
  return reply;
}

// The SDP names only relay ports of this call's sessions: it is this front door's own output coming
// back (a second rtpengine_manage pass), to be returned as it is.
bool IsOwnOutput(const std::string& sdp_text, const std::vector<v1::Session>& call) {
  auto sdp = sdp::SessionDescription::Parse(sdp_text);
  if (!sdp.ok() || sdp->media().empty()) return false;
  size_t matched = 0;
  for (size_t i = 0; i < sdp->media().size(); ++i) {
    if (sdp->media()[i].port == 0) continue;
    auto rtp = sdp->RtpAddress(i);
    if (!rtp) return false;
    bool ours = false;
    for (const v1::Session& s : call) {
      for (const v1::Leg* leg : {&s.caller(), &s.callee()}) {
        for (const v1::RelayEndpoint& relay : leg->relay()) {
          if (relay.rtp().ip() == rtp->ip && relay.rtp().port() == rtp->port) ours = true;
        }
      }
    }
    if (!ours) return false;
    ++matched;
  }
  return matched > 0;
}

int64_t UnixSeconds(const google::protobuf::Timestamp& t) { return t.seconds(); }

Value Figures(uint64_t packets, uint64_t bytes, uint64_t errors) {
  Value v = Value::Dictionary();
  v.Set("packets", Value::Integer(static_cast<int64_t>(packets)));
  v.Set("bytes", Value::Integer(static_cast<int64_t>(bytes)));
  v.Set("errors", Value::Integer(static_cast<int64_t>(errors)));
  return v;
}

Value Endpoint(const v1::SocketAddress& address) {
  Value v = Value::Dictionary();
  v.Set("family", Value::String(address.ip().find(':') == std::string::npos ? "IPv4" : "IPv6"));
  v.Set("address", Value::String(address.ip()));
  v.Set("port", Value::Integer(address.port()));
  return v;
}

// One tag's entry of a query reply: its streams with the relay port it sends to and its figures.
Value TagEntry(const v1::Session& session, const v1::Leg& leg) {
  Value tag = Value::Dictionary();
  tag.Set("tag", Value::String(leg.tag()));
  if (!session.branch().empty()) tag.Set("via-branch", Value::String(session.branch()));
  tag.Set("created", Value::Integer(UnixSeconds(session.created_at())));
  Value medias = Value::List();
  for (const v1::RemoteMedia& remote : leg.remote()) {
    Value media = Value::Dictionary();
    media.Set("index", Value::Integer(remote.media_index() + 1));
    media.Set("type", Value::String(remote.media_type()));
    Value stream = Value::Dictionary();
    for (const v1::RelayEndpoint& relay : leg.relay()) {
      if (relay.media_index() != remote.media_index()) continue;
      stream.Set("local address", Value::String(relay.rtp().ip()));
      stream.Set("local port", Value::Integer(relay.rtp().port()));
    }
    if (leg.stats().has_latched_source()) stream.Set("endpoint", Endpoint(leg.stats().latched_source()));
    stream.Set("advertised endpoint", Endpoint(remote.sdp_rtp()));
    stream.Set("stats", Figures(leg.stats().packets_in(), leg.stats().bytes_in(), leg.stats().packets_dropped()));
    Value streams = Value::List();
    streams.Add(std::move(stream));
    media.Set("streams", std::move(streams));
    medias.Add(std::move(media));
    break;  // per-leg figures: one stream entry carries them (the relay does not split them per stream)
  }
  tag.Set("medias", std::move(medias));
  return tag;
}

}  // namespace

Value ErrorReply(const absl::Status& status, bool supports_load_limit) {
  Value reply = Value::Dictionary();
  const bool capacity = status.code() == absl::StatusCode::kResourceExhausted ||
                        status.code() == absl::StatusCode::kUnavailable;
  if (capacity && supports_load_limit) {
    reply.Set("result", Value::String("load limit"));
    reply.Set("message", Value::String(std::string(status.message())));
    return reply;
  }
  reply.Set("result", Value::String("error"));
  std::string reason(status.message());
  if (capacity) {
    // The exact reasons Kamailio answers by trying its next node.
    reason = absl::StrContains(status.message(), "max_sessions") ? "Parallel session limit reached" : "Ran out of ports";
  }
  reply.Set("error-reason", Value::String(std::move(reason)));
  return reply;
}

absl::StatusOr<std::vector<v1::Session>> CommandHandler::Call(const Command& command) {
  return store_->ListLiveCall(options_.caller.owner(), command.call_id, options_.max_sessions_per_call + 1);
}

Value CommandHandler::Handle(const Value& body, const std::string& client_ip, Outcome* outcome) {
  auto command = ReadCommand(body);
  absl::StatusOr<Value> reply = absl::UnknownError("not handled");
  std::vector<std::string> warnings;
  if (!command.ok()) {
    reply = command.status();
  } else {
    outcome->ignored = command->ignored.size();
    absl::Status keys = RequireKeys(*command);
    const std::string& name = command->command;
    if (!keys.ok()) {
      reply = keys;
    } else if (name == "ping") {
      Value pong = Value::Dictionary();
      pong.Set("result", Value::String("pong"));
      reply = std::move(pong);
    } else if (name == "offer") {
      reply = Offer(*command, client_ip, warnings);
    } else if (name == "answer") {
      reply = Answer(*command, client_ip, warnings);
    } else if (name == "delete") {
      reply = Delete(*command, warnings);
    } else if (name == "query") {
      reply = Query(*command);
    } else {
      reply = absl::UnimplementedError(absl::StrCat(
          "Unrecognized command \"", name.substr(0, 32),
          "\": Latchkey relays media unchanged (no recording, playback, DTMF or media blocking)"));
    }
  }
  if (!reply.ok()) {
    Value error = ErrorReply(reply.status(), command.ok() && command->supports_load_limit);
    outcome->result = error.Find("result")->string();
    outcome->detail = std::string(reply.status().message());
    return error;
  }
  outcome->result = reply->Find("result")->string();
  if (!warnings.empty()) {
    outcome->detail = absl::StrJoin(warnings, "; ");
    reply->Set("warning", Value::String(outcome->detail));
  }
  return *std::move(reply);
}

absl::StatusOr<CommandHandler::SdpRequest> CommandHandler::ReadSdpRequest(const Command& command,
                                                                          const std::string& client_ip,
                                                                          std::vector<std::string>& warnings) {
  SdpRequest out;
  ASSIGN_OR_RETURN(out.translation, Translate(command, client_ip));
  warnings = out.translation.warnings;
  ASSIGN_OR_RETURN(out.call, Call(command));
  if (IsOwnOutput(*command.sdp, out.call)) {
    warnings.push_back("the SDP is already rewritten by this relay; returned unchanged");
    out.done = SdpReply(*command.sdp);
  }
  return out;
}

absl::StatusOr<Value> CommandHandler::Offer(const Command& command, const std::string& client_ip,
                                            std::vector<std::string>& warnings) {
  ASSIGN_OR_RETURN(SdpRequest in, ReadSdpRequest(command, client_ip, warnings));
  if (in.done) return *std::move(in.done);
  const Translation& translation = in.translation;
  const std::vector<v1::Session>& call = in.call;
  const Route route = RouteOffer(command, call);
  switch (route.action) {
    case Action::kAllocate: {
      if (route.session == nullptr && call.size() >= options_.max_sessions_per_call) {
        return absl::InvalidArgumentError(absl::StrCat("via-branch: call \"", command.call_id.substr(0, 64),
                                                       "\" already has ", call.size(), " live forks"));
      }
      v1::AllocateSessionRequest request;
      request.set_call_id(command.call_id);
      request.set_from_tag(command.from_tag);
      request.set_branch(command.via_branch);
      request.set_sdp(*command.sdp);
      *request.mutable_signaling_source() = translation.signaling_source;
      *request.mutable_options() = translation.options;
      ASSIGN_OR_RETURN(v1::AllocateSessionResponse response, sessions_->Allocate(request, options_.caller));
      return SdpReply(std::move(*response.mutable_sdp()));
    }
    case Action::kUpdateCaller:
    case Action::kUpdateCallee:
      return Update(route, command, translation);
    default:
      return absl::FailedPreconditionError(route.reason);
  }
}

absl::StatusOr<Value> CommandHandler::Answer(const Command& command, const std::string& client_ip,
                                             std::vector<std::string>& warnings) {
  ASSIGN_OR_RETURN(SdpRequest in, ReadSdpRequest(command, client_ip, warnings));
  if (in.done) return *std::move(in.done);
  const Translation& translation = in.translation;
  const Route route = RouteAnswer(command, in.call);
  switch (route.action) {
    case Action::kAnswer: {
      v1::AnswerSessionRequest request;
      request.set_session_id(route.session->session_id());
      request.set_to_tag(command.to_tag);
      request.set_sdp(*command.sdp);
      request.set_replace_to_tag(route.retag);
      *request.mutable_signaling_source() = translation.signaling_source;
      if (route.retag) {
        warnings.push_back(absl::StrCat("to-tag \"", command.to_tag.substr(0, 64),
                                        "\" answers a call another tag answered: it is the callee's tag now"));
      }
      ASSIGN_OR_RETURN(v1::AnswerSessionResponse response, sessions_->Answer(request, options_.caller));
      return SdpReply(std::move(*response.mutable_sdp()));
    }
    case Action::kUpdateCaller:
    case Action::kUpdateCallee:
      return Update(route, command, translation);
    case Action::kUnknown:
      return absl::NotFoundError(kUnknownCall);
    default:
      return absl::FailedPreconditionError(route.reason);
  }
}

absl::StatusOr<Value> CommandHandler::Update(const Route& route, const Command& command,
                                             const Translation& translation) {
  v1::UpdateSessionRequest request;
  request.set_session_id(route.session->session_id());
  request.set_side(route.action == Action::kUpdateCaller ? v1::SIDE_CALLER : v1::SIDE_CALLEE);
  request.set_sdp(*command.sdp);
  *request.mutable_signaling_source() = translation.signaling_source;
  ASSIGN_OR_RETURN(v1::UpdateSessionResponse response, sessions_->Update(request, options_.caller));
  return SdpReply(std::move(*response.mutable_sdp()));
}

absl::StatusOr<Value> CommandHandler::Delete(const Command& command, std::vector<std::string>& warnings) {
  ASSIGN_OR_RETURN(std::vector<v1::Session> call, Call(command));
  const std::vector<const v1::Session*> selected = SelectSessions(command, call);
  if (selected.empty()) {
    if (command.has_flag("fatal")) return absl::NotFoundError(kNotFoundWarning);
    warnings.push_back(kNotFoundWarning);
    return Ok();
  }
  const absl::Duration delay = command.delete_delay.value_or(options_.delete_delay);
  Value reply = Ok();
  int64_t created = INT64_MAX;
  for (const v1::Session* session : selected) {
    created = std::min(created, UnixSeconds(session->created_at()));
    auto released = sessions_->Release(session->session_id(), options_.caller, delay);
    // Ended meanwhile (a racing delete, the sweeper): what was asked for has happened.
    if (!released.ok() && released.status().code() != absl::StatusCode::kFailedPrecondition &&
        released.status().code() != absl::StatusCode::kNotFound) {
      return released.status();
    }
  }
  if (!command.has_flag("fast")) reply.Set("created", Value::Integer(created));
  return reply;
}

absl::StatusOr<Value> CommandHandler::Query(const Command& command) {
  ASSIGN_OR_RETURN(std::vector<v1::Session> call, Call(command));
  const std::vector<const v1::Session*> selected = SelectSessions(command, call);
  if (selected.empty()) return absl::NotFoundError(kUnknownCall);
  uint64_t packets = 0, bytes = 0, errors = 0;
  int64_t created = INT64_MAX, last_signal = 0;
  Value tags = Value::Dictionary();
  // The relay's live figures for the first few sessions only: each costs a call to a relay, and a
  // query must not hold a handler thread for a whole call's forks.
  constexpr size_t kLiveFigures = 4;
  size_t asked = 0;
  for (const v1::Session* listed : selected) {
    absl::StatusOr<v1::Session> session = *listed;
    if (asked++ < kLiveFigures) session = sessions_->Get(listed->session_id(), options_.caller);
    if (!session.ok()) continue;
    created = std::min(created, UnixSeconds(session->created_at()));
    last_signal = std::max(last_signal, UnixSeconds(session->updated_at()));
    for (const v1::Leg* leg : {&session->caller(), &session->callee()}) {
      packets += leg->stats().packets_in();
      bytes += leg->stats().bytes_in();
      errors += leg->stats().packets_dropped();
      if (!leg->tag().empty()) tags.Set(leg->tag(), TagEntry(*session, *leg));
    }
  }
  if (created == INT64_MAX) return absl::NotFoundError(kUnknownCall);
  Value reply = Ok();
  reply.Set("created", Value::Integer(created));
  reply.Set("last signal", Value::Integer(last_signal));
  reply.Set("tags", std::move(tags));
  Value totals = Value::Dictionary();
  totals.Set("RTP", Figures(packets, bytes, errors));
  totals.Set("RTCP", Figures(0, 0, 0));
  reply.Set("totals", std::move(totals));
  return reply;
}

}  // namespace latchkey::control::ng
