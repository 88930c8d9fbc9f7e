#pragma once
// Per-leg latching: which source address on a relay port is "the endpoint", and where media to it
// goes. One Latch per leg; the owning packet thread calls it for every packet (no allocation, no
// locks, no syscalls; the whole state is a fixed-size value, see sizeof check in latch.cc).
// docs/SECURITY.md holds the threat model these rules answer; each rule names the attack it stops.
//
// Standing of a source (compared with v4-mapped IPv6 folded to IPv4):
// - signalled: exactly the SDP ip:port, when that address is sendable (a private SDP address is
//   only a known IP: a spoofed private source must not latch at once and aim media inside).
// - known IP: SIGNALING_SOURCE: the signalling IP (any port); HEURISTIC: the signalling IP or the
//   SDP IP (any port); FIRST_PACKET ranks nobody here.
// - anyone else.
// The home source is the first one latched since the last signalled change (or the signalled one).
//
// Rules
// 1. Closed leg. Until control opens the leg (`open`: both legs open with the answer, before which
//    no endpoint sends), RTP is dropped untracked (kPortNotAnnounced): a sprayer cannot win or
//    prepare a leg while the call rings.
// 2. Probation. A candidate is tracked per source ip:port in kSlots slots and passes probation with
//    N consecutive packets (N = probation_packets to latch first or upgrade, takeover_packets to
//    take over a lock): same SSRC, sequence +1 each, RTP timestamp never going back, each gap between
//    min_interarrival and max_gap. Faster: kTooFast (not counted, so a flood never passes); slower
//    or out of order: the count restarts. With `expected_ssrc` (a=ssrc in the SDP) only that SSRC
//    is tracked at all (else kWrongSsrc). At most kSlotsPerIp slots per source IP: a newcomer from
//    an IP that holds them recycles its own, so one host spraying from many ports never evicts
//    another host's candidate; otherwise the slot given up is the lowest-standing one not on the
//    lock's IP, least advanced, most recent, and neither the lock nor home (a spray churns its own
//    latest slot; a NAT rebinding in progress is kept).
// 3. First latch (no lock). The signalled address latches on its first packet (it was signalled).
//    FIRST_PACKET: the first candidate to pass probation. SIGNALING_SOURCE: only known-IP candidates
//    are tracked at all (others kNotSignalingIp). HEURISTIC: known-IP candidates after probation;
//    anyone else only when signalling names nobody better (no sendable SDP address, no signalling
//    IP), after the longer takeover probation and while no known-IP candidate is tracked.
// 4. Locked. The lock's packets are forwarded without checks (the endpoint may burst) and keep it
//    alive, and so does its RTCP. Another source takes the lock only by:
//    (a) being the signalled address or home: at once (the endpoint reclaims what a takeover took;
//        someone spoofing that address can only send media to the endpoint it names);
//    (b) upgrade: a standing better than the lock's (a known-IP endpoint over an anyone lock, or the
//        new signalled sources after a change), after probation, at any time;
//    (c) takeover (a NAT rebinding): a source of the lock's IP or of a known IP (FIRST_PACKET:
//        any IP) whose run carries the lock's SSRC, starts 1..kMaxRebindAhead after the lock's last
//        sequence, passes takeover probation, while the lock has been silent (no RTP, no RTCP) for
//        relatch_silence and the endpoint is sending (not recvonly/inactive: on hold silence is
//        expected), at most once per relatch_min_interval. Only packets after the lock's last one
//        count: while the lock speaks a challenger restarts from zero (a contest). Another SSRC
//        only from the lock's IP or a known IP once the lock is abandoned (silent for
//        abandoned_after), and the newcomer is then home: the abandoned lock (a racer that won
//        the first latch and went quiet) cannot reclaim it. A run with the lock's SSRC that starts
//        outside the window is refused and blocks takeovers for relatch_min_interval (the window
//        cannot be swept).
//    Nothing else forwards a packet of another source after a lock (kWrongSource). A challenger
//    that completes a probation and is refused (contest, hold, SSRC, IP), or keeps streaming amid
//    probation_packets of the lock's, is reported once as kContested: an attack is visible as it
//    happens.
// 5. Signalled change (Configure with another SDP address, signalling IP or mode). A new sendable
//    SDP address releases the lock: media goes where the endpoint says it now is (rule 8), and the
//    address latches on its first packet. Otherwise (hold with 0.0.0.0, a new private address, a
//    new signalling IP) the lock is kept: media keeps flowing to the endpoint that had it. It stays
//    home only if it still has the known-IP or signalled standing; the new signalled sources upgrade
//    over it by rule 4b. Other candidates are forgotten. STRICT releases any lock.
// 6. STRICT never latches: only the sendable signalled address is forwarded (kStrict) and is the
//    destination. An SDP address that is not sendable (the relay's own ports, node-local and
//    private addresses) gives no destination, so an offer cannot make the relay a proxy or a loop.
// 7. RTCP never latches. Locked: accepted from the lock itself (rtcp-mux) or its port + 1 (both keep
//    the lock alive), or from the first other port of the lock's IP seen since the latch (pinned
//    until the next latch; forwarded, not liveness). Unlocked: from the SDP IP, and only when the
//    SDP address is sendable (STRICT: the same). RTCP is sent only to the IP media goes to.
// 8. Media before a lock goes to the SDP address only while it is sendable and plausible: nothing
//    more than consent_timeout since the Configure or the last packet from the SDP IP that may latch
//    (kNoConsent, in the spirit of RFC 7675), and never faster than unlatched_rate (kUnlatchedRate):
//    ringback cannot be aimed at a victim, and a spoofer renewing consent gets no more than the rate.
// 9. Every latch returns its event exactly once: kLatched when nothing was latched, kRelatched when
//    an existing lock moves (counted in relatch_count()). The caller counts events and drop reasons.
// 10. Media the kernel forwarded for the lock (OnLockActivity) counts as the lock's packets.
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
  uint32_t takeover_packets = 8;                           // clamped to probation_packets..255
  // Durations are kept in 32-bit microseconds (about 71 minutes at most) to keep the Latch small.
  absl::Duration min_interarrival = absl::Milliseconds(2);
  absl::Duration max_gap = absl::Milliseconds(250);  // ptime up to 120 ms, with jitter
  absl::Duration relatch_silence = absl::Milliseconds(250);
  absl::Duration relatch_min_interval = absl::Seconds(1);
  // A lock silent this long (no RTP, no RTCP, though its SDP lets it send) is gone: a known-IP
  // source with another SSRC may then take over (rule 4c). Longer than RTCP's 7.5 s at most.
  absl::Duration abandoned_after = absl::Seconds(10);
  absl::Duration consent_timeout = absl::Seconds(5);
  uint32_t unlatched_rate = 100;  // packets/s to an SDP address nobody has been heard from
};

struct LatchTarget {
  // RTP address the endpoint announced; nullopt (or 0.0.0.0 / port 0, treated alike) if none.
  std::optional<net::SocketAddress> sdp;
  // Where its SIP came from.
  std::optional<net::IpAddress> signaling_ip;
  // The relay may send to `sdp` before latching (see SdpSendable).
  bool sdp_sendable = false;
  // The endpoint has been told this leg's relay port (rule 1).
  bool open = true;
  // Its SDP lets it send (not recvonly or inactive): silence is then unexpected (rule 4c).
  bool sending = true;
  // a=ssrc of the stream, 0 if the SDP names none.
  uint32_t expected_ssrc = 0;
};

enum class DropReason : uint8_t {
  kNone,
  kWrongSource,       // locked to someone else, or a better-standing candidate is preferred
  kProbation,         // candidate still proving itself
  kTooFast,           // flood: below min_interarrival from one source
  kNotSignalingIp,    // SIGNALING_SOURCE and not the signalling IP
  kStrict,            // STRICT and not the (sendable) SDP address
  kPortNotAnnounced,  // the endpoint has not been told this port yet
  kWrongSsrc,         // the SDP's a=ssrc names another SSRC
  // Refused by the packet engine before or after the latch:
  kMalformed,       // not RTP/RTCP/STUN, truncated, or RTP on an RTCP port
  kNoDestination,   // the other leg has no address to send to yet
  kNoConsent,       // unlatched destination silent for consent_timeout
  kUnlatchedRate,   // unlatched destination, above unlatched_rate
  kSendError,       // the kernel refused the send (buffer full, unreachable)
  kStun,            // STUN on a media port (no ICE here)
  kRtcpRefused,     // RTCP not from the latched source's RTCP address
  kLoop,            // from a relay's media port (our own always; another's unless chained)
  kCount,
};
// "wrong_source", "probation", ... for metric labels (latchkey_relay_drops_total{reason}).
absl::string_view DropReasonName(DropReason reason);

enum class LatchEvent : uint8_t { kNone, kLatched, kRelatched, kContested };

struct LatchDecision {
  bool forward = false;
  DropReason reason = DropReason::kNone;
  LatchEvent event = LatchEvent::kNone;
};

class Latch {
 public:
  static constexpr int kSlots = 4;
  static constexpr int kSlotsPerIp = 2;
  // How far ahead of the lock's last sequence a same-SSRC run from a new port may start and still
  // count as the same stream after a NAT rebinding (2 s at 50 pps).
  static constexpr uint16_t kMaxRebindAhead = 100;
  static constexpr uint32_t kUnlatchedBurst = 10;

  // On create and on every offer/answer/UpdateSession.
  void Configure(const LatchPolicy& policy, const LatchTarget& target, absl::Time now);

  LatchDecision OnRtp(const net::SocketAddress& source, const RtpHeader& rtp, absl::Time now);
  LatchDecision OnRtcp(const net::SocketAddress& source, absl::Time now);
  // Rule 10 (the kernel fast path): the lock's RTP that the kernel forwarded without this latch
  // seeing it, as of the newest such packet (`ssrc` and `sequence` as it carried them, `last`: its
  // arrival). It counts as that packet having arrived here: liveness for rule 4c, the lock's SSRC
  // and sequence, challengers restart, a contest is reported; so the rules hold whichever path
  // carried the lock's media. Nothing newer than what the latch saw, or no lock: no effect. The
  // decision never forwards (the kernel did).
  LatchDecision OnLockActivity(uint32_t ssrc, uint16_t sequence, absl::Time last);

  // Where media to the endpoint goes: the latched source; else the SDP address if sendable; else
  // nullopt (wait for packets).
  std::optional<net::SocketAddress> Destination() const;
  // Before each send to Destination() (or to the SDP's RTCP address): kNone when it may go now,
  // else why not (rule 8). Charges the unlatched budget.
  DropReason AdmitSend(absl::Time now) { return latched_ >= 0 ? DropReason::kNone : AdmitUnlatched(now); }
  // The same for RTCP to `to` (learned or from the SDP's a=rtcp): only to the IP media goes to, so
  // an a=rtcp line cannot aim the other side's reports at a third party.
  DropReason AdmitRtcpSend(const net::SocketAddress& to, absl::Time now);

  bool latched() const { return latched_ >= 0; }
  // The source this leg is latched to (compared as OnRtp does), and the SDP address exactly.
  bool IsLatchedSource(const net::SocketAddress& source) const {
    return latched_ >= 0 && slots_[latched_].source == source;
  }
  bool IsExactSdp(const net::SocketAddress& source) const;
  // The exact SDP address, and it is sendable: the signalled standing (only such an address is
  // trusted at once; a private one could be spoofed into the relay's own network).
  bool IsSignalled(const net::SocketAddress& source) const;
  std::optional<net::SocketAddress> latched_source() const;
  uint32_t latched_ssrc() const { return latched_ >= 0 ? slots_[latched_].ssrc : 0; }
  uint32_t relatch_count() const { return relatch_count_; }
  // The challenger of the kContested event just returned (read it before the next packet).
  const net::SocketAddress& contender() const { return slots_[contender_].source; }
  // Last forwarded RTP or RTCP packet from the endpoint; InfinitePast() if none.
  absl::Time last_packet() const;

 private:
  enum class Mode : uint8_t { kFirstPacket, kSignalingSource, kHeuristic, kStrict };
  enum Standing : int { kAnyone = 0, kKnownIp = 1, kSignalled = 2 };
  static constexpr int64_t kNever = INT64_MIN;
  struct Candidate {
    net::SocketAddress source;
    uint32_t ssrc = 0;
    uint32_t timestamp = 0;
    uint16_t seq = 0;
    uint16_t run_start = 0;  // sequence number of the current run's first packet
    uint8_t count = 0;  // consecutive counted in-sequence packets
    uint8_t interleaved = 0;  // lock packets that arrived amid this candidate's runs
    bool used = false;
    bool reported = false;  // a refused probation of this run was reported (kContested)
  };

  int StandingOf(const net::SocketAddress& source) const;
  bool SameIpAsSdp(const net::IpAddress& ip) const;
  bool IsSignalingIp(const net::IpAddress& ip) const;
  // Whether `source` may be tracked at all (rules 3 and 4); else the reason to drop it untracked.
  DropReason Eligibility(const net::SocketAddress& source, bool exact) const;
  int Find(const net::SocketAddress& source) const;
  int Allocate(const net::SocketAddress& source);
  // Records a packet of a trusted source (signalled, home) without probation.
  void Remember(int idx, const RtpHeader& rtp, int64_t now_us);
  // Updates (or creates) the candidate for `source`; false if the packet came too fast.
  bool Track(int idx, const RtpHeader& rtp, int64_t now_us);
  bool KnownIpTracked(int self) const;
  LatchDecision OnLockedPacket(int64_t now_us);
  LatchDecision OnChallenger(int idx, int64_t now_us);
  enum class Takeover : uint8_t { kNow, kNotYet, kSwept, kNever };
  Takeover MayTakeOver(int idx, int64_t now_us) const;
  bool Abandoned(int64_t now_us) const;
  LatchDecision LatchTo(int idx, int64_t now_us);
  LatchDecision Contest(int idx, bool forward);
  DropReason AdmitUnlatched(absl::Time now);
  void Heard(const net::IpAddress& ip, int64_t now_us);

  // Ordered for packing, with what the endpoint's own packets touch (lock index, liveness, last
  // forward) in the first cache line together with the first slots.
  int64_t lock_alive_us_ = 0;     // last RTP or RTCP of the lock; meaningful while latched_ >= 0
  int64_t last_forward_us_ = kNever;
  int8_t latched_ = -1;  // slot index
  bool challenged_ = false;  // a challenger counts packets against the lock
  bool open_ = true;
  Mode mode_ = Mode::kHeuristic;
  Candidate slots_[kSlots];
  int64_t last_us_[kSlots] = {};  // per slot: last arrival (kept apart from Candidate: no padding)
  int64_t last_latch_us_ = kNever;  // also moved by a swept guess (rule 4c)
  int64_t consent_until_us_ = kNever;
  int64_t unlatched_next_us_ = kNever;  // GCRA: earliest time of the next unlatched send
  // LatchPolicy's defaults, so that a Latch used before Configure() is not permissive.
  uint32_t min_interarrival_us_ = 2'000;
  uint32_t max_gap_us_ = 250'000;
  uint32_t relatch_silence_us_ = 250'000;
  uint32_t relatch_min_interval_us_ = 1'000'000;
  uint32_t abandoned_after_us_ = 10'000'000;
  uint32_t consent_timeout_us_ = 5'000'000;
  uint32_t unlatched_interval_us_ = 10'000;
  uint32_t expected_ssrc_ = 0;
  uint32_t relatch_count_ = 0;
  net::SocketAddress sdp_;
  net::IpAddress signaling_ip_;
  uint16_t rtcp_port_ = 0;  // pinned RTCP port of the lock's IP, 0: none yet
  bool has_sdp_ = false;
  bool has_signaling_ip_ = false;
  bool sdp_sendable_ = false;
  bool sending_ = true;
  uint8_t probation_ = 4;
  uint8_t takeover_probation_ = 8;
  int8_t home_ = -1;     // slot index
  int8_t contender_ = 0;  // slot index
};

// Whether the relay may send to an SDP address before latching: port != 0; not unspecified,
// private/special or multicast/broadcast (an amplification target); loopback only with
// `allow_loopback`; and not the relay's own address within its port range (`own_ips`, port_min..
// port_max; an unspecified own IP means "bound to all", so loopback counts as own) - loop protection.
bool SdpSendable(const net::SocketAddress& sdp, const std::vector<net::IpAddress>& own_ips, uint16_t port_min,
                 uint16_t port_max, bool allow_loopback);

}  // namespace latchkey::relay
