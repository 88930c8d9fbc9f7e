#pragma once
// Per-leg latching: which source address on a relay port is "the endpoint", and where media to it
// goes. One Latch per leg; the owning packet thread calls it for every packet (no allocation, no
// locks, no syscalls; the whole state is a fixed-size value, see sizeof check in latch.cc).
//
// Rules
// - Candidates are tracked per source ip:port in kSlots fixed slots: SSRC, last sequence, count of
//   consecutive in-sequence packets, last arrival. A packet with another SSRC, or a sequence other
//   than last+1, resets the count to 1. A packet arriving less than min_interarrival after the
//   previous one from the same candidate is dropped (kTooFast) and does not advance the sequence, so
//   a flood from one source can never pass probation. A candidate passes probation at
//   probation_packets consecutive counted packets.
// - When all slots are taken, the slot given up is the worst-ranked, then least advanced, then
//   oldest non-pinned one (the latched slot and a stale slot in its grace are pinned): an attacker
//   spraying from many ports evicts its own slots, not a better-ranked or progressing candidate.
// - Before a lock, a candidate's packets are dropped (kProbation) until it passes probation: never
//   forwarded. Exception: in FIRST_PACKET, SIGNALING_SOURCE and HEURISTIC the exact SDP ip:port is
//   trusted (it was signalled) and latches on its first valid RTP packet.
// - FIRST_PACKET: the first candidate to pass probation latches.
//   SIGNALING_SOURCE: only sources whose IP is the signalling IP (any port) or the exact SDP address
//   are considered at all; others are dropped untracked (kNotSignalingIp), so they cannot take slots.
//   HEURISTIC (also UNSPECIFIED): rank exact SDP < same IP as SDP < same port as SDP < anything.
//   Within the learning window a candidate that passes probation latches only if no better-ranked
//   candidate is tracked (else kWrongSource: someone better is preferred); once latched, a
//   better-ranked candidate passing probation within the window takes over (kRelatched, exempt from
//   the rate limit: rank only improves, so this cannot flap). After the window, first to pass wins.
//   STRICT: never latches; only packets from exactly the SDP address are forwarded (else kStrict);
//   Destination() is the SDP address.
// - After a lock, the latched source's packets are forwarded (no flood or sequence checks: the
//   endpoint is trusted and may burst). Another source:
//   (a) same SSRC as the lock and a sequence 1..kMaxRebindAhead ahead of its last -> NAT rebinding,
//       relatch at once (subject to relatch_min_interval);
//   (b) the latched source silent >= relatch_silence and the new source passes probation (counted
//       only while the latched source is silent: a source streaming during the call cannot bank
//       probation and take over the moment the endpoint pauses) -> relatch, rate limited;
//   (c) otherwise kWrongSource. Nothing but (a)/(b) forwards a non-latched source after a lock.
// - RTCP never latches. It is forwarded from the latched IP (any port: NATs map RTCP separately);
//   before a lock only from the SDP IP, and only when the SDP address is sendable; in STRICT from
//   the SDP IP.
// - Configure() opens a new learning window. A changed SDP address or signalling IP is a signalled
//   change: candidates are forgotten and the lock is released, unless the latched source is the new
//   SDP address itself; the released source's packets are dropped as kStale for stale_grace (late
//   packets of the old path, not an attack). A mode that forbids the current lock releases it too.
// - Every latch returns its event exactly once: kLatched when nothing was latched, kRelatched when
//   an existing lock moves (counted in relatch_count()). The caller counts events and drop reasons.
// - Addresses are compared with v4-mapped IPv6 folded to IPv4, so a dual-stack socket's
//   ::ffff:a.b.c.d source matches an SDP a.b.c.d.
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/net/ip_address.h"
#include "common/net/socket_address.h"
#include "latchkey/v1/types.pb.h"
#include "media-relay/packet/rtp_header.h"

namespace latchkey::relay {

struct LatchPolicy {
  v1::LatchingMode mode = v1::LATCHING_MODE_HEURISTIC;  // UNSPECIFIED behaves as HEURISTIC
  uint32_t probation_packets = 4;                          // clamped to 1..255
  // Durations are kept in 32-bit microseconds (about 71 minutes at most) to keep the Latch small.
  absl::Duration learning_window = absl::Seconds(3);
  absl::Duration min_interarrival = absl::Milliseconds(2);
  absl::Duration relatch_silence = absl::Seconds(2);
  absl::Duration relatch_min_interval = absl::Seconds(1);
  absl::Duration stale_grace = absl::Milliseconds(500);
};

struct LatchTarget {
  // RTP address the endpoint announced; nullopt (or 0.0.0.0 / port 0, treated alike) if none.
  std::optional<net::SocketAddress> sdp;
  // Where its SIP came from.
  std::optional<net::IpAddress> signaling_ip;
  // The relay may send to `sdp` before latching (see SdpSendable).
  bool sdp_sendable = false;
};

enum class DropReason : uint8_t {
  kNone,
  kWrongSource,     // locked to someone else, or a better-ranked candidate is preferred
  kProbation,       // candidate still proving itself
  kTooFast,         // flood: below min_interarrival from one source
  kNotSignalingIp,  // SIGNALING_SOURCE and not the signalling IP
  kStrict,          // STRICT and not the SDP address
  kStale,           // old source within stale_grace after a signalled change
  // Refused by the packet engine before or after the latch:
  kMalformed,       // not RTP/RTCP/STUN, truncated, or RTP on an RTCP port
  kNoDestination,   // the other leg has no address to send to yet
  kSendError,       // the kernel refused the send (buffer full, unreachable)
  kStun,            // STUN on a media port (no ICE here)
  kRtcpRefused,     // RTCP not from the latched source
  kLoop,            // from a Latchkey relay's media port that the leg's SDP does not name
  kCount,
};
// "wrong_source", "probation", ... for metric labels (latchkey_relay_drops_total{reason}).
absl::string_view DropReasonName(DropReason reason);

enum class LatchEvent : uint8_t { kNone, kLatched, kRelatched };

struct LatchDecision {
  bool forward = false;
  DropReason reason = DropReason::kNone;
  LatchEvent event = LatchEvent::kNone;
};

class Latch {
 public:
  static constexpr int kSlots = 4;
  // How far ahead of the lock's last sequence a same-SSRC packet from a new port may be and still
  // count as the same stream after a NAT rebinding (2 s at 50 pps).
  static constexpr uint16_t kMaxRebindAhead = 100;

  // On create and on every offer/answer/UpdateSession.
  void Configure(const LatchPolicy& policy, const LatchTarget& target, absl::Time now);

  LatchDecision OnRtp(const net::SocketAddress& source, const RtpHeader& rtp, absl::Time now);
  LatchDecision OnRtcp(const net::SocketAddress& source, absl::Time now);

  // Where media to the endpoint goes: the latched source; else the SDP address if sendable (STRICT:
  // the SDP address, always); else nullopt (wait for packets).
  std::optional<net::SocketAddress> Destination() const;

  bool latched() const { return latched_ >= 0; }
  // The source this leg is latched to (compared as OnRtp does), and the SDP address exactly.
  bool IsLatchedSource(const net::SocketAddress& source) const {
    return latched_ >= 0 && slots_[latched_].source == source;
  }
  bool IsExactSdp(const net::SocketAddress& source) const;
  std::optional<net::SocketAddress> latched_source() const;
  uint32_t latched_ssrc() const { return latched_ >= 0 ? slots_[latched_].ssrc : 0; }
  uint32_t relatch_count() const { return relatch_count_; }
  // Last forwarded RTP or RTCP packet from the endpoint; InfinitePast() if none.
  absl::Time last_packet() const;

 private:
  enum class Mode : uint8_t { kFirstPacket, kSignalingSource, kHeuristic, kStrict };
  static constexpr int64_t kNever = INT64_MIN;
  struct Candidate {
    net::SocketAddress source;
    uint32_t ssrc = 0;
    uint16_t seq = 0;
    uint8_t count = 0;  // consecutive counted in-sequence packets
    bool used = false;
  };

  int Rank(const net::SocketAddress& source) const;
  int Find(const net::SocketAddress& source) const;
  int Allocate(const net::SocketAddress& source);
  // Updates (or creates) the candidate for `source`; false if the packet came too fast.
  bool Track(int idx, const RtpHeader& rtp, int64_t now_us, bool hold);
  bool BetterRankedTracked(int rank, int self) const;
  bool RateOk(int64_t now_us) const;
  bool InWindow(int64_t now_us) const { return now_us < window_end_us_; }
  LatchDecision LatchTo(int idx, int64_t now_us);
  void Release(int64_t now_us);

  // Ordered for packing: 8-byte fields first, then 4, then the byte-aligned addresses and flags.
  int64_t last_us_[kSlots] = {};  // per slot: last arrival (kept apart from Candidate: no padding)
  int64_t window_end_us_ = 0;
  int64_t last_latch_us_ = 0;     // meaningful while latched_ >= 0
  int64_t stale_until_us_ = 0;    // meaningful while stale_ >= 0
  int64_t last_forward_us_ = kNever;
  Candidate slots_[kSlots];
  // LatchPolicy's defaults, so that a Latch used before Configure() is not permissive.
  uint32_t learning_window_us_ = 3'000'000;
  uint32_t min_interarrival_us_ = 2'000;
  uint32_t relatch_silence_us_ = 2'000'000;
  uint32_t relatch_min_interval_us_ = 1'000'000;
  uint32_t stale_grace_us_ = 500'000;
  uint32_t relatch_count_ = 0;
  net::SocketAddress sdp_;
  net::IpAddress signaling_ip_;
  bool has_sdp_ = false;
  bool has_signaling_ip_ = false;
  bool sdp_sendable_ = false;
  Mode mode_ = Mode::kHeuristic;
  uint8_t probation_ = 4;
  int8_t latched_ = -1;  // slot index
  int8_t stale_ = -1;    // slot index of the source released by a signalled change
};

// Whether the relay may send to an SDP address before latching: port != 0; not unspecified,
// private/special or multicast/broadcast (an amplification target); loopback only with
// `allow_loopback`; and not the relay's own address within its port range (`own_ips`, port_min..
// port_max; an unspecified own IP means "bound to all", so loopback counts as own) - loop protection.
bool SdpSendable(const net::SocketAddress& sdp, const std::vector<net::IpAddress>& own_ips, uint16_t port_min,
                 uint16_t port_max, bool allow_loopback);

}  // namespace latchkey::relay
