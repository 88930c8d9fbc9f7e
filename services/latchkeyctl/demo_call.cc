// demo-call: one complete call through control with built-in SDPs, to show an operator what the
// relay does to the phones' media addresses. A caller behind NAT (private 192.168.1.20 in its SDP)
// calls a callee on a public address; the SDP each side would receive must carry only relay
// addresses. No media is sent.
#include <cstdint>
#include <optional>

#include "absl/flags/flag.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/net/socket_address.h"
#include "services/latchkeyctl/commands.h"
#include "services/latchkeyctl/flags.h"
#include "services/latchkeyctl/format.h"
#include "services/latchkeyctl/render.h"

namespace latchkey::ctl {
namespace {

// The caller's phone: behind NAT, so its SDP names its private LAN address.
constexpr char kCallerMediaIp[] = "192.168.1.20";
constexpr int kCallerMediaPort = 4000;
constexpr int kCalleeMediaPort = 5004;

std::string CallerOffer() {
  return absl::StrCat(
      "v=0\r\n"
      "o=alice 2890844526 2890844526 IN IP4 ", kCallerMediaIp, "\r\n",
      "s=-\r\n"
      "c=IN IP4 ", kCallerMediaIp, "\r\n",
      "t=0 0\r\n"
      "m=audio ", kCallerMediaPort, " RTP/AVP 0 8 101\r\n",
      "a=rtpmap:0 PCMU/8000\r\n"
      "a=rtpmap:8 PCMA/8000\r\n"
      "a=rtpmap:101 telephone-event/8000\r\n"
      "a=fmtp:101 0-16\r\n"
      "a=ptime:20\r\n"
      "a=sendrecv\r\n");
}

// The callee answers from its public signalling address, media on the same IP.
std::string CalleeAnswer(const net::IpAddress& ip) {
  const std::string family = ip.is_v4() ? "IP4" : "IP6";
  const std::string address = ip.ToString();
  return absl::StrCat(
      "v=0\r\n"
      "o=bob 2808844564 2808844564 IN ", family, " ", address, "\r\n",
      "s=-\r\n"
      "c=IN ", family, " ", address, "\r\n",
      "t=0 0\r\n"
      "m=audio ", kCalleeMediaPort, " RTP/AVP 0 101\r\n",
      "a=rtpmap:0 PCMU/8000\r\n"
      "a=rtpmap:101 telephone-event/8000\r\n"
      "a=fmtp:101 0-16\r\n"
      "a=ptime:20\r\n"
      "a=sendrecv\r\n");
}

// The SDP indented for the terminal, CRLF shown as plain line ends.
std::string Indent(const std::string& sdp) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(absl::StrReplaceAll(sdp, {{"\r\n", "\n"}}), '\n', absl::SkipEmpty())) {
    absl::StrAppend(&out, "    ", line, "\n");
  }
  return out;
}

// Empty if `sdp` sends its side's media to `relay` and no longer names `phone_ip`; else what is wrong.
std::string CheckRewritten(const std::string& sdp, const v1::Leg& receiving_leg, const std::string& phone_ip) {
  if (absl::StrContains(sdp, phone_ip)) return absl::StrCat("still carries the phone's address ", phone_ip);
  if (receiving_leg.relay().empty()) return "no relay endpoint in the session";
  const v1::SocketAddress& relay = receiving_leg.relay(0).rtp();
  if (!absl::StrContains(sdp, absl::StrCat(" ", relay.ip(), "\r\n"))) {
    return absl::StrCat("does not carry the relay address ", relay.ip());
  }
  if (!absl::StrContains(sdp, absl::StrCat("m=audio ", relay.port(), " "))) {
    return absl::StrCat("does not carry the relay port ", relay.port());
  }
  return "";
}

std::string RandomHex(int digits) {
  static absl::BitGen rng;
  return absl::StrFormat("%0*x", digits, absl::Uniform<uint64_t>(rng) >> (64 - 4 * digits));
}

// One leg in a line: "behind_nat (sdp_private), latching signaling_source, sends to 127.0.0.1:30000 (rtcp 30001)".
std::string LegSummary(const v1::Leg& leg) {
  std::string text = absl::StrCat(VerdictText(leg.verdict()), ", latching ", EnumName(leg.latching_mode()));
  for (const v1::RelayEndpoint& endpoint : leg.relay()) {
    absl::StrAppend(&text, ", sends to relay ", FormatAddress(endpoint.rtp()));
    if (endpoint.has_rtcp()) absl::StrAppend(&text, " (rtcp ", endpoint.rtcp().port(), ")");
  }
  return text;
}

}  // namespace

int DemoCall(Context& ctx, const Args&) {
  auto caller_source = net::SocketAddress::Parse(absl::GetFlag(FLAGS_caller_source));
  if (!caller_source.ok()) return ctx.UsageError(absl::StrCat("--caller_source: ", caller_source.status().message()));
  auto callee_source = net::SocketAddress::Parse(absl::GetFlag(FLAGS_callee_source));
  if (!callee_source.ok()) return ctx.UsageError(absl::StrCat("--callee_source: ", callee_source.status().message()));

  // --- The INVITE with the caller's offer.
  v1::AllocateSessionRequest offer;
  offer.set_call_id(absl::StrCat("demo-", RandomHex(16), "@latchkeyctl"));
  offer.set_from_tag(absl::StrCat("caller-", RandomHex(8)));
  offer.set_sdp(CallerOffer());
  *offer.mutable_signaling_source() = net::ToProto(*caller_source);
  // The demo shows every trace of the phones' addresses replaced, the o= line included.
  offer.mutable_options()->set_rewrite_origin(true);
  v1::AllocateSessionResponse allocated;
  grpc::Status status =
      ctx.Call([&](grpc::ClientContext* c) { return ctx.control().AllocateSession(c, offer, &allocated); });
  if (!status.ok()) return ctx.RpcError(status);
  const std::string session_id = allocated.session().session_id();
  if (ctx.json()) {
    ctx.PrintJson(allocated);
  } else {
    ctx.Print(absl::StrCat("AllocateSession: session ", session_id, " on worker ", allocated.session().worker_id(),
                           ", call-id ", offer.call_id(), "\n",                                    //
                           "  caller: ", LegSummary(allocated.session().caller()), "\n",          //
                           "SDP the callee receives (the caller's media address replaced by the relay's):\n",
                           Indent(allocated.sdp()), "\n"));
  }

  // From here on the session is released whatever happens.
  auto release = [&]() -> std::optional<v1::ReleaseSessionResponse> {
    v1::ReleaseSessionRequest request;
    request.set_session_id(session_id);
    v1::ReleaseSessionResponse response;
    grpc::Status s = ctx.Call([&](grpc::ClientContext* c) { return ctx.control().ReleaseSession(c, request, &response); });
    if (!s.ok()) {
      ctx.RpcError(s);
      return std::nullopt;
    }
    return response;
  };

  // --- The 200 OK with the callee's answer.
  v1::AnswerSessionRequest answer;
  answer.set_session_id(session_id);
  answer.set_to_tag(absl::StrCat("callee-", RandomHex(8)));
  answer.set_sdp(CalleeAnswer(callee_source->ip));
  *answer.mutable_signaling_source() = net::ToProto(*callee_source);
  v1::AnswerSessionResponse answered;
  status = ctx.Call([&](grpc::ClientContext* c) { return ctx.control().AnswerSession(c, answer, &answered); });
  if (!status.ok()) {
    const int code = ctx.RpcError(status);
    release();
    return code;
  }
  if (ctx.json()) {
    ctx.PrintJson(answered);
  } else {
    ctx.Print(absl::StrCat("AnswerSession: session ", EnumName(answered.session().state()), "\n",  //
                           "  callee: ", LegSummary(answered.session().callee()), "\n",           //
                           "SDP the caller receives (the callee's media address replaced by the relay's):\n",
                           Indent(answered.sdp()), "\n"));
  }

  // --- What control now knows about the call.
  v1::GetSessionRequest get;
  get.set_session_id(session_id);
  v1::GetSessionResponse got;
  status = ctx.Call([&](grpc::ClientContext* c) { return ctx.control().GetSession(c, get, &got); });
  if (!status.ok()) {
    const int code = ctx.RpcError(status);
    release();
    return code;
  }
  const v1::Session& session = got.session();
  if (ctx.json()) {
    ctx.PrintJson(got);
  } else {
    Block block;
    block.Add("state", EnumName(session.state()));
    block.Add("worker", session.worker_id());
    block.Add("caller", LegSummary(session.caller()));
    block.Add("callee", LegSummary(session.callee()));
    ctx.Print(absl::StrCat("GetSession: session ", session_id, "\n", Indent(block.Render()), "\n"));
  }

  // --- Hang up.
  std::optional<v1::ReleaseSessionResponse> released = release();
  if (!released) return kExitFailure;
  if (ctx.json()) {
    ctx.PrintJson(*released);
  } else {
    ctx.Print(absl::StrCat("ReleaseSession: session ", session_id, " ", EnumName(released->session().state()), " (",
                           EnumName(released->session().end_reason()), ")\n"));
  }

  // The callee sends to the callee leg's relay ports (written into the offer it received), the caller
  // to the caller leg's (written into the answer).
  const std::string offer_problem = CheckRewritten(allocated.sdp(), session.callee(), kCallerMediaIp);
  const std::string answer_problem = CheckRewritten(answered.sdp(), session.caller(), callee_source->ip.ToString());
  if (!offer_problem.empty()) return ctx.Failure(absl::StrCat("the SDP for the callee ", offer_problem));
  if (!answer_problem.empty()) return ctx.Failure(absl::StrCat("the SDP for the caller ", answer_problem));
  return kExitOk;
}

}  // namespace latchkey::ctl
