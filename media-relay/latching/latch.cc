#include "media-relay/latching/latch.h"

#include <algorithm>
#include <limits>
#include <tuple>

namespace latchkey::relay {
namespace {

// Times are int64 Unix microseconds and durations uint32 microseconds: half the size of
// absl::Time / absl::Duration, which keeps the whole Latch small.
int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }

uint32_t ClampMicros(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return 0;
  return static_cast<uint32_t>(
      std::min<int64_t>(absl::ToInt64Microseconds(d), std::numeric_limits<uint32_t>::max()));
}

// Saturating, so an absurd `now` cannot wrap a deadline into the past.
int64_t AddMicros(int64_t t, int64_t d) {
  return t > std::numeric_limits<int64_t>::max() - d ? std::numeric_limits<int64_t>::max() : t + d;
}

// Elapsed time from `since` to `now`, 0 if the clock went backwards (never negative, never wraps).
int64_t Elapsed(int64_t now, int64_t since) {
  if (now <= since) return 0;
  const uint64_t diff = static_cast<uint64_t>(now) - static_cast<uint64_t>(since);
  return diff > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                           : static_cast<int64_t>(diff);
}

// A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d while SDP says a.b.c.d.
bool SameIp(const net::IpAddress& a, const net::IpAddress& b) {
  if (a == b) return true;
  return (a.IsV4Mapped() || b.IsV4Mapped()) && a.Unmapped() == b.Unmapped();
}

bool SameAddress(const net::SocketAddress& a, const net::SocketAddress& b) {
  return a.port == b.port && SameIp(a.ip, b.ip);
}

LatchDecision Forward(LatchEvent event = LatchEvent::kNone) { return {true, DropReason::kNone, event}; }
LatchDecision Drop(DropReason reason) { return {false, reason, LatchEvent::kNone}; }

}  // namespace

// Per leg, two per stream: two legs of 320 bytes are 15 % of a session's 4 KiB memory budget
// (docs/PERFORMANCE.md).
static_assert(sizeof(Latch) <= 320, "Latch is per leg and per packet-thread cache: keep it small");

absl::string_view DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kNone: return "none";
    case DropReason::kWrongSource: return "wrong_source";
    case DropReason::kProbation: return "probation";
    case DropReason::kTooFast: return "too_fast";
    case DropReason::kNotSignalingIp: return "not_signaling_ip";
    case DropReason::kStrict: return "strict";
    case DropReason::kPortNotAnnounced: return "port_not_announced";
    case DropReason::kWrongSsrc: return "wrong_ssrc";
    case DropReason::kMalformed: return "malformed";
    case DropReason::kNoDestination: return "no_destination";
    case DropReason::kNoConsent: return "no_consent";
    case DropReason::kUnlatchedRate: return "unlatched_rate";
    case DropReason::kSendError: return "send_error";
    case DropReason::kStun: return "stun";
    case DropReason::kRtcpRefused: return "rtcp_refused";
    case DropReason::kLoop: return "loop";
    case DropReason::kCount: break;
  }
  return "unknown";
}

void Latch::Configure(const LatchPolicy& policy, const LatchTarget& target, absl::Time now) {
  const int64_t now_us = ToMicros(now);
  const Mode previous_mode = mode_;
  switch (policy.mode) {
    case v1::LATCHING_MODE_FIRST_PACKET: mode_ = Mode::kFirstPacket; break;
    case v1::LATCHING_MODE_SIGNALING_SOURCE: mode_ = Mode::kSignalingSource; break;
    case v1::LATCHING_MODE_STRICT: mode_ = Mode::kStrict; break;
    default: mode_ = Mode::kHeuristic; break;  // UNSPECIFIED: control should have decided
  }
  probation_ = static_cast<uint8_t>(std::clamp<uint32_t>(policy.probation_packets, 1, 255));
  takeover_probation_ = static_cast<uint8_t>(std::clamp<uint32_t>(policy.takeover_packets, probation_, 255));
  min_interarrival_us_ = ClampMicros(policy.min_interarrival);
  max_gap_us_ = std::max(ClampMicros(policy.max_gap), min_interarrival_us_);
  relatch_silence_us_ = ClampMicros(policy.relatch_silence);
  relatch_min_interval_us_ = ClampMicros(policy.relatch_min_interval);
  abandoned_after_us_ = std::max(ClampMicros(policy.abandoned_after), relatch_silence_us_);
  consent_timeout_us_ = ClampMicros(policy.consent_timeout);
  unlatched_interval_us_ = 1'000'000 / std::clamp<uint32_t>(policy.unlatched_rate, 1, 1'000'000);

  // 0.0.0.0 (hold in old SDP) and port 0 (rejected stream) name no address.
  const bool has_sdp = target.sdp.has_value() && !target.sdp->ip.IsUnspecified() && target.sdp->port != 0;
  const bool has_sig = target.signaling_ip.has_value() && !target.signaling_ip->IsUnspecified();
  const bool sdp_changed = has_sdp != has_sdp_ || (has_sdp && !SameAddress(*target.sdp, sdp_));
  const bool changed = sdp_changed || has_sig != has_signaling_ip_ ||
                       (has_sig && !SameIp(*target.signaling_ip, signaling_ip_)) || mode_ != previous_mode ||
                       target.expected_ssrc != expected_ssrc_;
  has_sdp_ = has_sdp;
  sdp_ = has_sdp ? *target.sdp : net::SocketAddress{};
  has_signaling_ip_ = has_sig;
  signaling_ip_ = has_sig ? *target.signaling_ip : net::IpAddress();
  sdp_sendable_ = has_sdp && target.sdp_sendable;
  open_ = target.open;
  sending_ = target.sending;
  expected_ssrc_ = target.expected_ssrc;
  // Every signalling exchange renews consent (rule 8).
  consent_until_us_ = AddMicros(now_us, consent_timeout_us_);

  if (mode_ == Mode::kStrict) {
    for (Candidate& slot : slots_) slot = Candidate{};
    latched_ = -1;
    home_ = -1;
    challenged_ = false;
    return;
  }
  if (!changed) return;
  // Rule 5: a new sendable address is where the endpoint says it is now; otherwise the lock keeps
  // media flowing, and stays home only with a standing under the new target.
  if (latched_ >= 0 && sdp_changed && sdp_sendable_ && !IsExactSdp(slots_[latched_].source)) latched_ = -1;
  for (int i = 0; i < kSlots; ++i) {
    if (i != latched_) slots_[i] = Candidate{};
  }
  home_ = latched_ >= 0 && (mode_ == Mode::kFirstPacket || StandingOf(slots_[latched_].source) >= kKnownIp)
              ? latched_
              : -1;
  challenged_ = false;
}

LatchDecision Latch::OnRtp(const net::SocketAddress& source, const RtpHeader& rtp, absl::Time now) {
  const int64_t now_us = ToMicros(now);
  if (latched_ >= 0 && slots_[latched_].source == source) {
    // The hot path: the endpoint itself. Only what a takeover compares against is kept.
    Candidate& lock = slots_[latched_];
    lock.ssrc = rtp.ssrc;
    lock.seq = rtp.sequence;
    return OnLockedPacket(now_us);
  }
  if (!open_) return Drop(DropReason::kPortNotAnnounced);
  if (mode_ == Mode::kStrict) {
    if (!IsSignalled(source)) return Drop(DropReason::kStrict);
    Heard(source.ip, now_us);
    last_forward_us_ = now_us;
    return Forward();
  }

  const bool exact = IsSignalled(source);
  int idx = Find(source);
  // Rule 4a (and 3 for the signalled address): trusted sources latch on their first packet.
  if (exact || (idx >= 0 && idx == home_)) {
    if (idx < 0) idx = Allocate(source);
    Remember(idx, rtp, now_us);
    return LatchTo(idx, now_us);
  }
  if (const DropReason refusal = Eligibility(source, exact); refusal != DropReason::kNone) return Drop(refusal);
  if (expected_ssrc_ != 0 && rtp.ssrc != expected_ssrc_) return Drop(DropReason::kWrongSsrc);
  if (!latched()) Heard(source.ip, now_us);  // only a source that may latch renews consent
  if (idx < 0) idx = Allocate(source);
  if (!Track(idx, rtp, now_us)) return Drop(DropReason::kTooFast);
  if (latched_ >= 0) return OnChallenger(idx, now_us);

  // Rule 3: first latch.
  const uint8_t count = slots_[idx].count;
  if (mode_ == Mode::kHeuristic && StandingOf(source) == kAnyone) {
    if (KnownIpTracked(idx)) return Drop(DropReason::kWrongSource);
    return count >= takeover_probation_ ? LatchTo(idx, now_us) : Drop(DropReason::kProbation);
  }
  return count >= probation_ ? LatchTo(idx, now_us) : Drop(DropReason::kProbation);
}

LatchDecision Latch::OnLockActivity(uint32_t ssrc, uint16_t sequence, absl::Time last) {
  if (latched_ < 0) return {};
  const int64_t last_us = ToMicros(last);
  if (last_us <= lock_alive_us_) return {};
  slots_[latched_].ssrc = ssrc;
  slots_[latched_].seq = sequence;
  LatchDecision decision = OnLockedPacket(last_us);
  decision.forward = false;
  return decision;
}

LatchDecision Latch::OnLockedPacket(int64_t now_us) {
  lock_alive_us_ = now_us;
  last_forward_us_ = now_us;
  if (!challenged_) return Forward();
  // Rule 4c: the endpoint spoke, so challengers of its standing or lower start again. One that had
  // completed a probation meanwhile was competing with a live endpoint: report it.
  challenged_ = false;
  const int lock_standing = mode_ == Mode::kFirstPacket ? kAnyone : StandingOf(slots_[latched_].source);
  int contender = -1;
  for (int i = 0; i < kSlots; ++i) {
    Candidate& c = slots_[i];
    if (i == latched_ || !c.used || c.count == 0) continue;
    if (mode_ != Mode::kFirstPacket && StandingOf(c.source) > lock_standing) continue;  // may upgrade
    if (c.interleaved < 255) ++c.interleaved;
    if ((c.count >= probation_ || c.interleaved >= probation_) && !c.reported && contender < 0) contender = i;
    c.count = 0;
  }
  return contender >= 0 ? Contest(contender, /*forward=*/true) : Forward();
}

LatchDecision Latch::OnChallenger(int idx, int64_t now_us) {
  const Candidate& c = slots_[idx];
  const int standing = StandingOf(c.source);
  if (c.count > 0) challenged_ = true;
  // Rule 4b: a better standing than the lock's (never in FIRST_PACKET, which ranks nobody).
  if (mode_ != Mode::kFirstPacket && standing > StandingOf(slots_[latched_].source)) {
    return c.count >= probation_ ? LatchTo(idx, now_us) : Drop(DropReason::kWrongSource);
  }
  // Rule 4c: a takeover. One that replaces an abandoned lock makes the newcomer home: whoever held
  // it (a racer that won the first latch, say) cannot reclaim it.
  if (c.count < takeover_probation_) return Drop(DropReason::kWrongSource);
  switch (MayTakeOver(idx, now_us)) {
    case Takeover::kNotYet: return Drop(DropReason::kWrongSource);
    case Takeover::kSwept:
      // The lock's SSRC with a sequence outside the window: someone guessing. Each guess costs a
      // relatch_min_interval, so the 65,536 starts cannot be swept during a pause.
      last_latch_us_ = now_us;
      return Contest(idx, /*forward=*/false);
    case Takeover::kNever: return Contest(idx, /*forward=*/false);
    case Takeover::kNow: break;
  }
  // The abandoned lock (a racer that won the first latch and went quiet) is home no more.
  if (Abandoned(now_us)) home_ = -1;
  return LatchTo(idx, now_us);
}

Latch::Takeover Latch::MayTakeOver(int idx, int64_t now_us) const {
  const Candidate& c = slots_[idx];
  const Candidate& lock = slots_[latched_];
  if (!sending_) return Takeover::kNever;  // on hold: the endpoint's silence is expected
  // Eligibility() admitted only the lock's IP and known IPs, but FIRST_PACKET admits anyone.
  const bool near = SameIp(c.source.ip, lock.source.ip) || StandingOf(c.source) >= kKnownIp;
  if (c.ssrc == lock.ssrc) {
    const uint16_t ahead = static_cast<uint16_t>(c.run_start - lock.seq);
    if (ahead < 1 || ahead > kMaxRebindAhead) return Takeover::kSwept;
  } else if (!near) {
    return Takeover::kNever;  // another stream from afar never replaces even an abandoned lock
  } else if (!Abandoned(now_us)) {
    // Another stream only once the lock is gone: until then, a neighbour's stream is refused. Not
    // reported as a contest before the lock is even silent (the lock's own packets report it).
    return Elapsed(now_us, lock_alive_us_) < relatch_silence_us_ ? Takeover::kNotYet : Takeover::kNever;
  }
  // A NAT rebinding in progress: the old mapping falls silent, the new one waits for that.
  if (Elapsed(now_us, lock_alive_us_) < relatch_silence_us_) return Takeover::kNotYet;
  if (Elapsed(now_us, last_latch_us_) < relatch_min_interval_us_) return Takeover::kNotYet;
  return Takeover::kNow;
}

bool Latch::Abandoned(int64_t now_us) const { return Elapsed(now_us, lock_alive_us_) >= abandoned_after_us_; }

LatchDecision Latch::Contest(int idx, bool forward) {
  Candidate& c = slots_[idx];
  if (c.reported) return forward ? Forward() : Drop(DropReason::kWrongSource);
  c.reported = true;
  contender_ = static_cast<int8_t>(idx);
  return {forward, forward ? DropReason::kNone : DropReason::kWrongSource, LatchEvent::kContested};
}

LatchDecision Latch::OnRtcp(const net::SocketAddress& source, absl::Time now) {
  const int64_t now_us = ToMicros(now);
  if (!open_ && latched_ < 0) return Drop(DropReason::kPortNotAnnounced);
  if (mode_ == Mode::kStrict) {
    if (!sdp_sendable_ || !SameIp(source.ip, sdp_.ip)) return Drop(DropReason::kStrict);
    Heard(source.ip, now_us);
  } else if (latched_ >= 0) {
    const net::SocketAddress& lock = slots_[latched_].source;
    if (!SameIp(source.ip, lock.ip)) return Drop(DropReason::kRtcpRefused);
    if (source.port == lock.port || source.port == static_cast<uint16_t>(lock.port + 1)) {
      lock_alive_us_ = now_us;  // RTCP is liveness too: a muted endpoint still reports
    } else {
      // A NAT that maps RTCP elsewhere: forwarded, but not proof of life (anyone on that IP could
      // send it, and liveness blocks a rebinding).
      if (rtcp_port_ == 0) rtcp_port_ = source.port;
      if (source.port != rtcp_port_) return Drop(DropReason::kRtcpRefused);
    }
  } else {
    if (!sdp_sendable_ || !SameIp(source.ip, sdp_.ip)) return Drop(DropReason::kRtcpRefused);
    Heard(source.ip, now_us);
  }
  last_forward_us_ = now_us;
  return Forward();
}

std::optional<net::SocketAddress> Latch::Destination() const {
  if (latched_ >= 0) return slots_[latched_].source;
  if (sdp_sendable_) return sdp_;
  return std::nullopt;
}

DropReason Latch::AdmitUnlatched(absl::Time now) {
  if (!sdp_sendable_) return DropReason::kNoDestination;
  const int64_t now_us = ToMicros(now);
  if (now_us > consent_until_us_) return DropReason::kNoConsent;
  // GCRA: a burst of kUnlatchedBurst, then one send per unlatched_interval.
  const int64_t tolerance = int64_t{unlatched_interval_us_} * (kUnlatchedBurst - 1);
  if (unlatched_next_us_ != kNever && now_us < unlatched_next_us_ - tolerance) return DropReason::kUnlatchedRate;
  unlatched_next_us_ = AddMicros(std::max(unlatched_next_us_, now_us), unlatched_interval_us_);
  return DropReason::kNone;
}

DropReason Latch::AdmitRtcpSend(const net::SocketAddress& to, absl::Time now) {
  if (latched_ >= 0) return SameIp(to.ip, slots_[latched_].source.ip) ? DropReason::kNone : DropReason::kNoDestination;
  if (!sdp_sendable_ || !SameIp(to.ip, sdp_.ip)) return DropReason::kNoDestination;
  return AdmitSend(now);
}

std::optional<net::SocketAddress> Latch::latched_source() const {
  if (latched_ < 0) return std::nullopt;
  return slots_[latched_].source;
}

absl::Time Latch::last_packet() const {
  return last_forward_us_ == kNever ? absl::InfinitePast() : absl::FromUnixMicros(last_forward_us_);
}

bool Latch::IsExactSdp(const net::SocketAddress& source) const { return has_sdp_ && SameAddress(source, sdp_); }

bool Latch::IsSignalled(const net::SocketAddress& source) const { return sdp_sendable_ && IsExactSdp(source); }

bool Latch::SameIpAsSdp(const net::IpAddress& ip) const { return has_sdp_ && SameIp(ip, sdp_.ip); }

bool Latch::IsSignalingIp(const net::IpAddress& ip) const { return has_signaling_ip_ && SameIp(ip, signaling_ip_); }

int Latch::StandingOf(const net::SocketAddress& source) const {
  if (IsSignalled(source)) return kSignalled;
  switch (mode_) {
    case Mode::kSignalingSource: return IsSignalingIp(source.ip) ? kKnownIp : kAnyone;
    case Mode::kHeuristic: return IsSignalingIp(source.ip) || SameIpAsSdp(source.ip) ? kKnownIp : kAnyone;
    default: return kAnyone;
  }
}

DropReason Latch::Eligibility(const net::SocketAddress& source, bool exact) const {
  if (exact || mode_ == Mode::kFirstPacket) return DropReason::kNone;
  if (StandingOf(source) >= kKnownIp) return DropReason::kNone;
  if (latched_ >= 0 && SameIp(source.ip, slots_[latched_].source.ip)) return DropReason::kNone;  // rebinding
  if (mode_ == Mode::kSignalingSource) return DropReason::kNotSignalingIp;
  // HEURISTIC: anyone only while signalling names nobody better (rule 3).
  return latched_ < 0 && !sdp_sendable_ && !has_signaling_ip_ ? DropReason::kNone : DropReason::kWrongSource;
}

int Latch::Find(const net::SocketAddress& source) const {
  for (int i = 0; i < kSlots; ++i) {
    if (slots_[i].used && slots_[i].source == source) return i;
  }
  return -1;
}

// The newcomer always gets a slot; the per-IP bound, standing and progress decide only whom it
// displaces. The slot is returned unused (Track or Remember fills it in) but bound to `source`.
int Latch::Allocate(const net::SocketAddress& source) {
  int same_ip = 0;
  for (int i = 0; i < kSlots; ++i) {
    if (!slots_[i].used) {
      slots_[i] = Candidate{};
      slots_[i].source = source;
      return i;
    }
    if (i != latched_ && i != home_ && SameIp(slots_[i].source.ip, source.ip)) ++same_ip;
  }
  const bool own_only = same_ip >= kSlotsPerIp;
  // Lowest standing first, then not on the lock's IP (a NAT rebinding in progress is kept), then
  // least progress, then the most recent: a spray of fresh sources churns its own latest slot
  // instead of the one an endpoint has been progressing in.
  auto key = [this](int i) {
    const bool near_lock = latched_ >= 0 && SameIp(slots_[i].source.ip, slots_[latched_].source.ip);
    return std::tuple(StandingOf(slots_[i].source), near_lock, slots_[i].count, -last_us_[i]);
  };
  int victim = -1;
  for (int i = 0; i < kSlots; ++i) {
    if (i == latched_ || i == home_) continue;
    if (own_only && !SameIp(slots_[i].source.ip, source.ip)) continue;
    if (victim < 0 || key(i) < key(victim)) victim = i;
  }
  // At most two slots are pinned (lock, home), so with kSlots = 4 a victim always exists.
  slots_[victim] = Candidate{};
  slots_[victim].source = source;
  return victim;
}

void Latch::Remember(int idx, const RtpHeader& rtp, int64_t now_us) {
  Candidate& c = slots_[idx];
  c.used = true;
  c.ssrc = rtp.ssrc;
  c.seq = rtp.sequence;
  c.timestamp = rtp.timestamp;
  if (c.count == 0) {
    c.count = 1;
    c.run_start = rtp.sequence;
  }
  last_us_[idx] = now_us;
}

bool Latch::Track(int idx, const RtpHeader& rtp, int64_t now_us) {
  Candidate& c = slots_[idx];
  if (!c.used) {
    Remember(idx, rtp, now_us);
    return true;
  }
  const int64_t gap = Elapsed(now_us, last_us_[idx]);
  if (gap < min_interarrival_us_) {
    // The arrival still counts as "the previous one", so a sustained flood stays too fast; the
    // sequence is not advanced, so the next counted packet looks like a gap and restarts the count.
    last_us_[idx] = now_us;
    return false;
  }
  const bool in_order = c.ssrc == rtp.ssrc && rtp.sequence == static_cast<uint16_t>(c.seq + 1) &&
                        static_cast<int32_t>(rtp.timestamp - c.timestamp) >= 0 && gap <= max_gap_us_;
  const bool continues = in_order && c.count > 0;
  c.count = continues ? static_cast<uint8_t>(std::min<int>(c.count + 1, 255)) : 1;
  if (!continues) c.run_start = rtp.sequence;
  c.ssrc = rtp.ssrc;
  c.seq = rtp.sequence;
  c.timestamp = rtp.timestamp;
  last_us_[idx] = now_us;
  return true;
}

bool Latch::KnownIpTracked(int self) const {
  for (int i = 0; i < kSlots; ++i) {
    if (i != self && slots_[i].used && StandingOf(slots_[i].source) >= kKnownIp) return true;
  }
  return false;
}

LatchDecision Latch::LatchTo(int idx, int64_t now_us) {
  const LatchEvent event = latched_ >= 0 ? LatchEvent::kRelatched : LatchEvent::kLatched;
  if (latched_ >= 0 && latched_ != idx) {
    ++relatch_count_;
    // The old source starts from scratch if it ever wants the lock back (unless it is home).
    slots_[latched_].count = 0;
  } else if (latched_ == idx) {
    return Forward();  // already ours (a trusted source re-sending)
  }
  // The first lock since a signalled change is home; an upgrade moves home with it (rule 4a, 4b).
  if (home_ < 0 || StandingOf(slots_[idx].source) > StandingOf(slots_[home_].source)) home_ = static_cast<int8_t>(idx);
  latched_ = static_cast<int8_t>(idx);
  slots_[idx].reported = false;
  lock_alive_us_ = now_us;
  last_latch_us_ = now_us;
  last_forward_us_ = now_us;
  rtcp_port_ = 0;
  challenged_ = false;
  return Forward(event);
}

void Latch::Heard(const net::IpAddress& ip, int64_t now_us) {
  if (!SameIpAsSdp(ip)) return;
  consent_until_us_ = AddMicros(now_us, consent_timeout_us_);
}

bool SdpSendable(const net::SocketAddress& sdp, const std::vector<net::IpAddress>& own_ips, uint16_t port_min,
                 uint16_t port_max, bool allow_loopback) {
  if (sdp.port == 0) return false;
  const net::IpAddress ip = sdp.ip.Unmapped();
  if (ip.IsUnspecified() || ip.IsPrivateOrSpecial()) return false;
  const absl::Span<const uint8_t> bytes = ip.bytes();
  if (ip.is_v4()) {
    // 0.0.0.0/8 "this network", 224/4 multicast, 240/4 reserved and broadcast.
    if (bytes[0] == 0 || bytes[0] >= 224) return false;
  } else if (bytes[0] == 0xff) {
    return false;  // multicast
  }
  const bool loopback = ip.IsLoopback();
  if (loopback && !allow_loopback) return false;
  if (sdp.port >= port_min && sdp.port <= port_max) {
    for (const net::IpAddress& own : own_ips) {
      const net::IpAddress own_ip = own.Unmapped();
      if (own_ip == ip) return false;
      // A relay bound to the wildcard address also receives on loopback.
      if (loopback && own_ip.IsUnspecified() && own_ip.family() == ip.family()) return false;
    }
  }
  return true;
}

}  // namespace latchkey::relay
