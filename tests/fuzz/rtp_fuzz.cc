// Arbitrary bytes through the relay's per-packet path: demultiplexing, RTP / RTCP header parsing,
// latching and receiver statistics. Properties: no out-of-bounds read (ASan in the fuzz preset), a
// parsed RTP header never claims more than the datagram, the parsers agree with Classify, a 4-byte
// RTCP is never accepted (CVE-2017-14099), the latch forwards only from where it sends to and
// nothing on a port not yet announced, and never sends to an unsendable address before a latch.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/time/time.h"
#include "common/net/ip_address.h"
#include "common/net/socket_address.h"
#include "media-relay/latching/latch.h"
#include "media-relay/latching/stream_stats.h"
#include "media-relay/packet/rtp_header.h"

namespace relay = latchkey::relay;
namespace net = latchkey::net;

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const relay::PacketKind kind = relay::Classify(data, size);
  const auto rtp = relay::ParseRtp(data, size);
  const auto rtcp = relay::ParseRtcp(data, size);

  if (rtp) {
    Check(rtp->header_length >= 12 && rtp->header_length <= size);
    Check(rtp->payload_length <= size - rtp->header_length);
    Check(kind == relay::PacketKind::kRtp);
  }
  if (rtcp) {
    Check(size >= 8);
    Check(rtcp->packet_type >= 200 && rtcp->packet_type <= 207);
    Check(kind == relay::PacketKind::kRtcp);
  }
  Check(!(rtp && rtcp));
  if (kind == relay::PacketKind::kStun) Check(size >= 20);

  // A fixed fake clock and a fixed cast: the endpoint's SDP address, another port of its IP and a
  // stranger. The input picks who sends, when, and with which sequence offset.
  const absl::Time t0 = absl::FromUnixSeconds(1'700'000'000);
  const net::SocketAddress sdp{net::IpAddress::V4(203, 0, 113, 5), 30000};
  const net::SocketAddress sources[] = {sdp, {net::IpAddress::V4(203, 0, 113, 5), 31000},
                                        {net::IpAddress::V4(192, 0, 2, 66), 40000}};
  for (const auto mode : {latchkey::v1::LATCHING_MODE_FIRST_PACKET, latchkey::v1::LATCHING_MODE_SIGNALING_SOURCE,
                          latchkey::v1::LATCHING_MODE_HEURISTIC, latchkey::v1::LATCHING_MODE_STRICT}) {
    relay::LatchPolicy policy;
    policy.mode = mode;
    relay::LatchTarget target;
    target.sdp = sdp;
    target.signaling_ip = sdp.ip;
    target.sdp_sendable = size % 2 == 0;
    target.sending = size % 3 != 0;
    target.open = size % 5 != 0;
    if (rtp && size % 7 == 0) target.expected_ssrc = rtp->ssrc;
    relay::Latch latch;
    latch.Configure(policy, target, t0);
    relay::StreamStats stats;

    absl::Time now = t0;
    for (size_t i = 0; i < size && i < 64; ++i) {
      const uint8_t b = data[i];
      const net::SocketAddress& source = sources[b % 3];
      now += absl::Microseconds(250 * (b >> 2));
      relay::LatchDecision decision;
      if (rtp) {
        relay::RtpHeader header = *rtp;
        header.sequence = static_cast<uint16_t>(header.sequence + i - (b & 0x80 ? 3 : 0));
        if (b & 0x40) header.ssrc ^= 1;
        decision = latch.OnRtp(source, header, now);
        if (decision.forward) stats.OnRtp(header, now, (b & 1) ? 48000 : 8000);
      } else {
        decision = latch.OnRtcp(source, now);
      }
      if (decision.forward) {
        Check(decision.reason == relay::DropReason::kNone);
        // Media from a source is forwarded only if media to the endpoint goes back to it (RTP), or
        // (RTCP) it comes from the IP we send to.
        const auto destination = latch.Destination();
        Check(destination.has_value());
        if (rtp) {
          Check(*destination == source);
        } else {
          Check(destination->ip == source.ip);
        }
        Check(!rtp || target.open);  // nobody sends to a port before it was announced
      } else {
        // A refusal may report a contest, never a latch.
        Check(decision.reason != relay::DropReason::kNone && (decision.event == relay::LatchEvent::kNone ||
                                                              decision.event == relay::LatchEvent::kContested));
      }
      // Nothing unsendable is ever a destination before a latch.
      if (!latch.latched() && latch.Destination()) Check(target.sdp_sendable);
      if (mode == latchkey::v1::LATCHING_MODE_STRICT) Check(!latch.latched());
    }
    Check(stats.Lost() <= static_cast<int64_t>(stats.Expected()));
    (void)stats.JitterMs();
  }
  return 0;
}
