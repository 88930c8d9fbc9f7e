// health, bindings, register, sessions (offer and answer included) and workers: one or a few unary
// RPCs each.
#include "services/latchkeyctl/commands.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <system_error>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/net/socket_address.h"
#include "common/time/proto_time.h"
#include "services/latchkeyctl/flags.h"
#include "services/latchkeyctl/render.h"

namespace latchkey::ctl {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// The servers' largest page.
constexpr uint32_t kMaxPageSize = 1000;

// Calls `fetch(page_size, page_token, &page)` page after page until `limit` items or the last page,
// appending the items (`items(response)` is the repeated field) to `*all`.
template <typename Response, typename Fetch, typename Items>
grpc::Status Paginate(uint32_t limit, Fetch fetch, Items items, Response* all) {
  std::string token;
  for (;;) {
    const auto have = static_cast<uint32_t>(items(*all)->size());
    Response page;
    grpc::Status status = fetch(std::min(limit - have, kMaxPageSize), token, &page);
    if (!status.ok()) return status;
    for (auto& item : *items(page)) {
      if (static_cast<uint32_t>(items(*all)->size()) >= limit) break;
      *items(*all)->Add() = std::move(item);
    }
    // Stop on the last page, at the limit, and on a page that makes no progress.
    if (page.next_page_token().empty() || static_cast<uint32_t>(items(*all)->size()) >= limit ||
        items(page)->empty() || page.next_page_token() == token) {
      return grpc::Status::OK;
    }
    token = page.next_page_token();
  }
}

bool ParseTransport(const std::string& text, v1::Transport* transport) {
  if (text == "udp") *transport = v1::TRANSPORT_UDP;
  else if (text == "tcp") *transport = v1::TRANSPORT_TCP;
  else if (text == "tls") *transport = v1::TRANSPORT_TLS;
  else if (text == "ws" || text == "wss") *transport = v1::TRANSPORT_WS;
  else return false;
  return true;
}

bool ParseLatchingMode(const std::string& text, v1::LatchingMode* mode) {
  if (text.empty() || text == "auto") *mode = v1::LATCHING_MODE_UNSPECIFIED;
  else if (text == "first_packet") *mode = v1::LATCHING_MODE_FIRST_PACKET;
  else if (text == "signaling_source") *mode = v1::LATCHING_MODE_SIGNALING_SOURCE;
  else if (text == "heuristic") *mode = v1::LATCHING_MODE_HEURISTIC;
  else if (text == "strict") *mode = v1::LATCHING_MODE_STRICT;
  else return false;
  return true;
}

// The SDP of --sdp=FILE ("-": stdin), sent as is (CRLF or LF line ends, control keeps them).
absl::StatusOr<std::string> ReadSdp(const std::string& path) {
  // Far above any real SDP; a wrong path to a large file should not be read whole into a request.
  constexpr std::streamsize kMaxSdpBytes = 64 * 1024;
  std::string text;
  auto read = [&](std::istream& in) -> bool {
    text.resize(static_cast<size_t>(kMaxSdpBytes) + 1);
    in.read(text.data(), kMaxSdpBytes + 1);
    text.resize(static_cast<size_t>(in.gcount()));
    return !in.bad();
  };
  if (path == "-") {
    if (!read(std::cin)) return absl::InvalidArgumentError("--sdp=-: cannot read stdin");
  } else {
    std::error_code error;
    if (std::filesystem::is_directory(path, error)) {
      return absl::InvalidArgumentError(absl::StrCat("--sdp=", path, ": is a directory, not an SDP file"));
    }
    std::ifstream file(path, std::ios::binary);
    if (!file.is_open()) {
      return absl::InvalidArgumentError(absl::StrCat("--sdp=", path, ": cannot open: ", std::strerror(errno)));
    }
    if (!read(file)) {
      return absl::InvalidArgumentError(absl::StrCat("--sdp=", path, ": cannot read: ", std::strerror(errno)));
    }
  }
  if (text.size() > static_cast<size_t>(kMaxSdpBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--sdp=", path, ": larger than ", kMaxSdpBytes, " bytes, not an SDP"));
  }
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat("--sdp=", path, ": empty"));
  return text;
}

// The flags sessions offer and answer share: the SDP and where the signalling came from.
struct LegInput {
  std::string sdp;
  v1::SocketAddress signaling_source;
};

// Reads --sdp and --signaling_source; on a problem returns the exit code (usage error for a missing
// or malformed flag, failure for an unreadable file) in `*exit_code`.
std::optional<LegInput> ReadLegInput(Context& ctx, int* exit_code) {
  const std::string sdp_path = absl::GetFlag(FLAGS_sdp);
  const std::string source_text = absl::GetFlag(FLAGS_signaling_source);
  if (sdp_path.empty()) {
    *exit_code = ctx.UsageError("--sdp is required (a file with the SDP, - for stdin)");
    return std::nullopt;
  }
  if (source_text.empty()) {
    *exit_code = ctx.UsageError("--signaling_source is required");
    return std::nullopt;
  }
  auto source = net::SocketAddress::Parse(source_text);
  if (!source.ok()) {
    *exit_code = ctx.UsageError(absl::StrCat("--signaling_source: ", source.status().message()));
    return std::nullopt;
  }
  auto sdp = ReadSdp(sdp_path);
  if (!sdp.ok()) {
    *exit_code = ctx.Failure(sdp.status().message());
    return std::nullopt;
  }
  return LegInput{*std::move(sdp), net::ToProto(*source)};
}

}  // namespace

int Health(Context& ctx, const Args&) {
  HealthCheckRequest request;
  request.set_service("");
  HealthCheckResponse response;
  grpc::Status status = ctx.Call([&](grpc::ClientContext* c) { return ctx.health().Check(c, request, &response); });
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    ctx.Print(absl::StrCat(HealthCheckResponse::ServingStatus_Name(response.status()), "\n"));
  }
  return response.status() == HealthCheckResponse::SERVING ? kExitOk : kExitFailure;
}

int BindingsList(Context& ctx, const Args&) {
  v1::ListBindingsRequest request;
  request.set_aor(absl::GetFlag(FLAGS_aor));
  const std::string nat = absl::GetFlag(FLAGS_nat);
  if (nat == "behind" || nat == "behind_nat") {
    request.set_nat_state(v1::NAT_STATE_BEHIND_NAT);
  } else if (nat == "not" || nat == "not_behind_nat") {
    request.set_nat_state(v1::NAT_STATE_NOT_BEHIND_NAT);
  } else if (!nat.empty()) {
    return ctx.UsageError(absl::StrCat("--nat must be behind or not, got \"", nat, "\""));
  }
  const uint32_t limit = absl::GetFlag(FLAGS_limit);
  if (limit == 0) return ctx.UsageError("--limit must be at least 1");

  v1::ListBindingsResponse all;
  grpc::Status status = Paginate(
      limit,
      [&](uint32_t page_size, const std::string& token, v1::ListBindingsResponse* page) {
        request.set_page_size(page_size);
        request.set_page_token(token);
        return ctx.Call([&](grpc::ClientContext* c) { return ctx.control().ListBindings(c, request, page); });
      },
      [](v1::ListBindingsResponse& r) { return r.mutable_bindings(); }, &all);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.PrintJson(all);
  } else {
    ctx.Print(RenderBindings(all.bindings()));
  }
  return kExitOk;
}

int BindingsGet(Context& ctx, const Args& args) {
  v1::GetBindingRequest request;
  request.set_binding_id(args[0]);
  v1::GetBindingResponse response;
  grpc::Status status =
      ctx.Call([&](grpc::ClientContext* c) { return ctx.control().GetBinding(c, request, &response); });
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    ctx.Print(RenderBinding(response.binding()));
  }
  return kExitOk;
}

int BindingsRelease(Context& ctx, const Args& args) {
  v1::ReleaseBindingRequest request;
  request.set_binding_id(args[0]);
  v1::ReleaseBindingResponse response;
  grpc::Status status =
      ctx.Call([&](grpc::ClientContext* c) { return ctx.control().ReleaseBinding(c, request, &response); });
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    ctx.Print(absl::StrCat("released binding ", response.binding().binding_id(), "\n",
                           RenderBinding(response.binding())));
  }
  return kExitOk;
}

int Register(Context& ctx, const Args&) {
  v1::AllocateBindingRequest request;
  request.set_aor(absl::GetFlag(FLAGS_aor));
  request.set_contact(absl::GetFlag(FLAGS_contact));
  if (request.aor().empty()) return ctx.UsageError("--aor is required");
  if (request.contact().empty()) return ctx.UsageError("--contact is required");
  const std::string source_text = absl::GetFlag(FLAGS_source);
  const std::string registrar_text = absl::GetFlag(FLAGS_registrar);
  if (source_text.empty()) return ctx.UsageError("--source is required");
  if (registrar_text.empty()) return ctx.UsageError("--registrar is required");
  auto source = net::SocketAddress::Parse(source_text);
  if (!source.ok()) return ctx.UsageError(absl::StrCat("--source: ", source.status().message()));
  auto registrar = net::SocketAddress::Parse(registrar_text);
  if (!registrar.ok()) return ctx.UsageError(absl::StrCat("--registrar: ", registrar.status().message()));
  v1::Transport transport;
  if (!ParseTransport(absl::GetFlag(FLAGS_transport), &transport)) {
    return ctx.UsageError(absl::StrCat("--transport must be udp, tcp, tls or ws, got \"",
                                       absl::GetFlag(FLAGS_transport), "\""));
  }
  const absl::Duration expires = absl::GetFlag(FLAGS_expires);
  if (expires < absl::ZeroDuration() || expires == absl::InfiniteDuration()) {
    return ctx.UsageError("--expires must be a finite duration, 0s or more");
  }
  request.set_transport(transport);
  *request.mutable_source() = net::ToProto(*source);
  *request.mutable_registrar() = net::ToProto(*registrar);
  request.set_via(absl::GetFlag(FLAGS_via));
  *request.mutable_expires() = ToProto(expires);
  request.set_user_agent(absl::GetFlag(FLAGS_user_agent));

  v1::AllocateBindingResponse response;
  grpc::Status status =
      ctx.Call([&](grpc::ClientContext* c) { return ctx.control().AllocateBinding(c, request, &response); });
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    ctx.Print(RenderAllocateBinding(response));
  }
  return kExitOk;
}

int SessionsList(Context& ctx, const Args&) {
  v1::ListSessionsRequest request;
  request.set_worker_id(absl::GetFlag(FLAGS_worker));
  const uint32_t limit = absl::GetFlag(FLAGS_limit);
  if (limit == 0) return ctx.UsageError("--limit must be at least 1");

  v1::ListSessionsResponse all;
  grpc::Status status = Paginate(
      limit,
      [&](uint32_t page_size, const std::string& token, v1::ListSessionsResponse* page) {
        request.set_page_size(page_size);
        request.set_page_token(token);
        return ctx.Call([&](grpc::ClientContext* c) { return ctx.control().ListSessions(c, request, page); });
      },
      [](v1::ListSessionsResponse& r) { return r.mutable_sessions(); }, &all);
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.PrintJson(all);
  } else {
    ctx.Print(RenderSessions(all.sessions()));
  }
  return kExitOk;
}

int SessionsGet(Context& ctx, const Args& args) {
  v1::GetSessionRequest request;
  request.set_session_id(args[0]);
  v1::GetSessionResponse response;
  grpc::Status status =
      ctx.Call([&](grpc::ClientContext* c) { return ctx.control().GetSession(c, request, &response); });
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    ctx.Print(RenderSession(response.session()));
  }
  return kExitOk;
}

int SessionsRelease(Context& ctx, const Args& args) {
  v1::ReleaseSessionRequest request;
  request.set_session_id(args[0]);
  if (const absl::Duration delay = absl::GetFlag(FLAGS_delay); delay > absl::ZeroDuration()) {
    *request.mutable_delay() = ToProto(delay);
  }
  v1::ReleaseSessionResponse response;
  grpc::Status status =
      ctx.Call([&](grpc::ClientContext* c) { return ctx.control().ReleaseSession(c, request, &response); });
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    ctx.Print(absl::StrCat(response.session().has_release_at() ? "release scheduled for session " : "released session ",
                           response.session().session_id(), "\n",
                           RenderSession(response.session())));
  }
  return kExitOk;
}

int WorkersList(Context& ctx, const Args&) {
  v1::ListWorkersRequest request;
  v1::ListWorkersResponse response;
  grpc::Status status =
      ctx.Call([&](grpc::ClientContext* c) { return ctx.control().ListWorkers(c, request, &response); });
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    ctx.Print(RenderWorkers(response.workers(), absl::Now()));
  }
  return kExitOk;
}

int WorkersDrain(Context& ctx, const Args& args) {
  v1::DrainWorkerRequest request;
  request.set_worker_id(args[0]);
  v1::DrainWorkerResponse response;
  grpc::Status status =
      ctx.Call([&](grpc::ClientContext* c) { return ctx.control().DrainWorker(c, request, &response); });
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    ctx.Print(RenderWorker(response.worker(), absl::Now()));
  }
  return kExitOk;
}

int WorkersUndrain(Context& ctx, const Args& args) {
  v1::UndrainWorkerRequest request;
  request.set_worker_id(args[0]);
  v1::UndrainWorkerResponse response;
  grpc::Status status =
      ctx.Call([&](grpc::ClientContext* c) { return ctx.control().UndrainWorker(c, request, &response); });
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    ctx.Print(RenderWorker(response.worker(), absl::Now()));
  }
  return kExitOk;
}

int SessionsOffer(Context& ctx, const Args&) {
  v1::AllocateSessionRequest request;
  request.set_call_id(absl::GetFlag(FLAGS_call_id));
  request.set_from_tag(absl::GetFlag(FLAGS_from_tag));
  if (request.call_id().empty()) return ctx.UsageError("--call_id is required");
  if (request.from_tag().empty()) return ctx.UsageError("--from_tag is required");
  v1::LatchingMode mode;
  if (!ParseLatchingMode(absl::GetFlag(FLAGS_latching_mode), &mode)) {
    return ctx.UsageError(absl::StrCat("--latching_mode must be first_packet, signaling_source, heuristic or strict, ",
                                       "got \"", absl::GetFlag(FLAGS_latching_mode), "\""));
  }
  const absl::Duration media_timeout = absl::GetFlag(FLAGS_media_timeout);
  if (media_timeout < absl::ZeroDuration() || media_timeout == absl::InfiniteDuration()) {
    return ctx.UsageError("--media_timeout must be a finite duration, 0s (control's default) or more");
  }
  int exit_code = kExitOk;
  std::optional<LegInput> input = ReadLegInput(ctx, &exit_code);
  if (!input) return exit_code;
  request.set_sdp(std::move(input->sdp));
  *request.mutable_signaling_source() = std::move(input->signaling_source);
  request.mutable_options()->set_latching_mode(mode);
  if (media_timeout > absl::ZeroDuration()) {
    *request.mutable_options()->mutable_media_timeout() = ToProto(media_timeout);
  }

  v1::AllocateSessionResponse response;
  grpc::Status status =
      ctx.Call([&](grpc::ClientContext* c) { return ctx.control().AllocateSession(c, request, &response); });
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    ctx.Print(RenderSessionAndSdp(response.session(),
                                  "SDP for the callee (the caller's media address replaced by the relay's)",
                                  response.sdp()));
  }
  return kExitOk;
}

int SessionsAnswer(Context& ctx, const Args& args) {
  v1::AnswerSessionRequest request;
  request.set_session_id(args[0]);
  request.set_to_tag(absl::GetFlag(FLAGS_to_tag));
  if (request.to_tag().empty()) return ctx.UsageError("--to_tag is required");
  int exit_code = kExitOk;
  std::optional<LegInput> input = ReadLegInput(ctx, &exit_code);
  if (!input) return exit_code;
  request.set_sdp(std::move(input->sdp));
  *request.mutable_signaling_source() = std::move(input->signaling_source);

  v1::AnswerSessionResponse response;
  grpc::Status status =
      ctx.Call([&](grpc::ClientContext* c) { return ctx.control().AnswerSession(c, request, &response); });
  if (!status.ok()) return ctx.RpcError(status);
  if (ctx.json()) {
    ctx.PrintJson(response);
  } else {
    ctx.Print(RenderSessionAndSdp(response.session(),
                                  "SDP for the caller (the callee's media address replaced by the relay's)",
                                  response.sdp()));
  }
  return kExitOk;
}

}  // namespace latchkey::ctl
