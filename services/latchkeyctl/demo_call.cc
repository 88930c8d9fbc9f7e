// demo-call: one complete call through control with built-in SDPs, to show an operator what the
// relay does to the phones' media addresses. A caller behind NAT (private 192.168.1.20 in its SDP)
// calls a callee; the SDP each side would receive must carry only relay addresses. When both phones
// are on loopback, they then send RTP through the relay from local sockets (the caller from a port
// its SDP never named, as behind NAT), and the session shows what latched and what was counted.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <vector>

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

// The callee answers from its signalling address, media on the same IP.
std::string CalleeAnswer(const net::IpAddress& ip, int media_port) {
  const std::string family = ip.is_v4() ? "IP4" : "IP6";
  const std::string address = ip.ToString();
  return absl::StrCat(
      "v=0\r\n"
      "o=bob 2808844564 2808844564 IN ", family, " ", address, "\r\n",
      "s=-\r\n"
      "c=IN ", family, " ", address, "\r\n",
      "t=0 0\r\n"
      "m=audio ", media_port, " RTP/AVP 0 101\r\n",
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

// Empty if `sdp` sends its side's media to `relay` and no longer contains `phone` (the phone's address
// or media line); else what is wrong.
std::string CheckRewritten(const std::string& sdp, const v1::Leg& receiving_leg, const std::string& phone) {
  if (absl::StrContains(sdp, phone)) return absl::StrCat("still carries the phone's \"", phone, "\"");
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

// A demo phone's media socket on a loopback address.
class Phone {
 public:
  explicit Phone(const net::IpAddress& ip) {
    fd_ = ::socket(ip.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t length = 0;
    sockaddr_storage addr = ip.ToSockaddr(0, &length);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), length) != 0) return;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length);
    if (auto bound = net::SocketAddress::FromSockaddr(addr); bound.ok()) address_ = *bound;
  }
  ~Phone() {
    if (fd_ >= 0) ::close(fd_);
  }
  Phone(const Phone&) = delete;
  Phone& operator=(const Phone&) = delete;

  const std::optional<net::SocketAddress>& address() const { return address_; }

  // One 172-byte G.711 RTP packet.
  void SendRtp(const v1::SocketAddress& to, uint32_t ssrc, uint16_t seq) {
    uint8_t packet[172];
    std::fill(std::begin(packet), std::end(packet), 0xFF);
    packet[0] = 0x80;
    packet[1] = 0;
    packet[2] = static_cast<uint8_t>(seq >> 8);
    packet[3] = static_cast<uint8_t>(seq);
    const uint32_t timestamp = 160u * seq;
    for (int i = 0; i < 4; ++i) {
      packet[4 + i] = static_cast<uint8_t>(timestamp >> (24 - 8 * i));
      packet[8 + i] = static_cast<uint8_t>(ssrc >> (24 - 8 * i));
    }
    auto ip = net::IpAddress::Parse(to.ip());
    if (!ip.ok()) return;
    socklen_t length = 0;
    sockaddr_storage addr = ip->ToSockaddr(static_cast<uint16_t>(to.port()), &length);
    ::sendto(fd_, packet, sizeof(packet), 0, reinterpret_cast<sockaddr*>(&addr), length);
  }

  // Counts what arrives within `wait`.
  int Receive(absl::Duration wait) {
    int count = 0;
    uint8_t buffer[2048];
    pollfd p{fd_, POLLIN, 0};
    while (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(wait))) > 0) {
      if (::recv(fd_, buffer, sizeof(buffer), MSG_DONTWAIT) > 0) ++count;
    }
    return count;
  }

 private:
  int fd_ = -1;
  std::optional<net::SocketAddress> address_;
};

std::string LegMedia(const v1::Leg& leg) {
  const v1::LegStats& s = leg.stats();
  return absl::StrCat("latched ", s.has_latched_source() ? FormatAddress(s.latched_source()) : "-", ", in ",
                      s.packets_in(), ", out ", s.packets_out(), ", dropped ", s.packets_dropped());
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
  // Media only between loopback phones: the demo never sends to anything but this host.
  const uint32_t packets = absl::GetFlag(FLAGS_packets);
  const bool media = packets > 0 && caller_source->ip.IsLoopback() && callee_source->ip.IsLoopback();
  Phone caller_phone(caller_source->ip), callee_phone(callee_source->ip);
  const int callee_media_port =
      media && callee_phone.address() ? callee_phone.address()->port : kCalleeMediaPort;
  answer.set_sdp(CalleeAnswer(callee_source->ip, callee_media_port));
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

  // --- Media: 20 ms apart, both ways at once. The caller's first packets prove its real source
  // (probation) before the relay latches onto it; the callee is reachable at its SDP address at once.
  int caller_heard = 0, callee_heard = 0;
  if (media && caller_phone.address() && callee_phone.address() && answered.session().caller().relay_size() > 0) {
    const v1::SocketAddress caller_relay = answered.session().caller().relay(0).rtp();
    const v1::SocketAddress callee_relay = answered.session().callee().relay(0).rtp();
    for (uint32_t i = 0; i < packets; ++i) {
      caller_phone.SendRtp(caller_relay, 0x0A11CE00, static_cast<uint16_t>(1000 + i));
      callee_phone.SendRtp(callee_relay, 0x00B0B000, static_cast<uint16_t>(2000 + i));
      caller_heard += caller_phone.Receive(absl::ZeroDuration());
      callee_heard += callee_phone.Receive(absl::Milliseconds(20));
    }
    caller_heard += caller_phone.Receive(absl::Milliseconds(200));
    callee_heard += callee_phone.Receive(absl::Milliseconds(50));
    if (!ctx.json()) {
      ctx.Print(absl::StrCat("Media: each phone sent ", packets, " RTP packets through the relay; the caller (really at ",
                             caller_phone.address()->ToString(), ", not the private address in its SDP) heard ",
                             caller_heard, ", the callee heard ", callee_heard, "\n\n"));
    }
  } else if (!ctx.json()) {
    ctx.Print("Media: skipped (--packets=0, or a phone is not on loopback)\n\n");
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
    if (media) {
      block.Add("caller media", LegMedia(session.caller()));
      block.Add("callee media", LegMedia(session.callee()));
    }
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
  // The callee may share the relay's IP on loopback: its media port is what must be gone.
  const std::string answer_problem =
      CheckRewritten(answered.sdp(), session.caller(), absl::StrCat("m=audio ", callee_media_port, " "));
  if (!offer_problem.empty()) return ctx.Failure(absl::StrCat("the SDP for the callee ", offer_problem));
  if (!answer_problem.empty()) return ctx.Failure(absl::StrCat("the SDP for the caller ", answer_problem));
  if (media && (caller_heard == 0 || callee_heard == 0)) {
    return ctx.Failure(absl::StrCat("media did not flow both ways (caller heard ", caller_heard, ", callee heard ",
                                    callee_heard, ")"));
  }
  return kExitOk;
}

}  // namespace latchkey::ctl
