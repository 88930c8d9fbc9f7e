#include "media-relay/latching/latch.h"

#include <algorithm>
#include <limits>

namespace latchkey::relay {
namespace {

// Times are int64 Unix microseconds and durations uint32 microseconds: half the size of
// absl::Time / absl::Duration, which keeps the whole Latch within 256 bytes.
int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }

uint32_t ClampMicros(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return 0;
  return static_cast<uint32_t>(
      std::min<int64_t>(absl::ToInt64Microseconds(d), std::numeric_limits<uint32_t>::max()));
}

// Saturating, so an absurd `now` cannot wrap the window end into the past.
int64_t AddMicros(int64_t t, uint32_t d) {
  return t > std::numeric_limits<int64_t>::max() - int64_t{d} ? std::numeric_limits<int64_t>::max() : t + d;
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

static_assert(sizeof(Latch) <= 256, "Latch is per leg and per packet-thread cache: keep it small");

absl::string_view DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kNone: return "none";
    case DropReason::kWrongSource: return "wrong_source";
    case DropReason::kProbation: return "probation";
    case DropReason::kTooFast: return "too_fast";
    case DropReason::kNotSignalingIp: return "not_signaling_ip";
    case DropReason::kStrict: return "strict";
    case DropReason::kStale: return "stale";
    case DropReason::kMalformed: return "malformed";
    case DropReason::kNoDestination: return "no_destination";
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
  switch (policy.mode) {
    case v1::LATCHING_MODE_FIRST_PACKET: mode_ = Mode::kFirstPacket; break;
    case v1::LATCHING_MODE_SIGNALING_SOURCE: mode_ = Mode::kSignalingSource; break;
    case v1::LATCHING_MODE_STRICT: mode_ = Mode::kStrict; break;
    default: mode_ = Mode::kHeuristic; break;  // UNSPECIFIED: control should have decided
  }
  probation_ = static_cast<uint8_t>(std::clamp<uint32_t>(policy.probation_packets, 1, 255));
  learning_window_us_ = ClampMicros(policy.learning_window);
  min_interarrival_us_ = ClampMicros(policy.min_interarrival);
  relatch_silence_us_ = ClampMicros(policy.relatch_silence);
  relatch_min_interval_us_ = ClampMicros(policy.relatch_min_interval);
  stale_grace_us_ = ClampMicros(policy.stale_grace);

  // 0.0.0.0 (hold in old SDP) and port 0 (rejected stream) name no address.
  const bool has_sdp = target.sdp.has_value() && !target.sdp->ip.IsUnspecified() && target.sdp->port != 0;
  const bool has_sig = target.signaling_ip.has_value() && !target.signaling_ip->IsUnspecified();
  const bool changed = has_sdp != has_sdp_ || (has_sdp && !SameAddress(*target.sdp, sdp_)) ||
                       has_sig != has_signaling_ip_ || (has_sig && !SameIp(*target.signaling_ip, signaling_ip_));
  has_sdp_ = has_sdp;
  sdp_ = has_sdp ? *target.sdp : net::SocketAddress{};
  has_signaling_ip_ = has_sig;
  signaling_ip_ = has_sig ? *target.signaling_ip : net::IpAddress();
  sdp_sendable_ = has_sdp && target.sdp_sendable;

  if (stale_ >= 0 && now_us >= stale_until_us_) stale_ = -1;
  if (latched_ >= 0) {
    const net::SocketAddress& source = slots_[latched_].source;
    const bool is_new_sdp = IsExactSdp(source);
    bool keep = !changed || is_new_sdp;
    if (mode_ == Mode::kStrict) keep = false;
    if (mode_ == Mode::kSignalingSource && !is_new_sdp &&
        !(has_signaling_ip_ && SameIp(source.ip, signaling_ip_))) {
      keep = false;
    }
    if (!keep) Release(now_us);
  }
  if (changed) {
    // Learning restarts: progress made against the old target says nothing about the new one.
    for (int i = 0; i < kSlots; ++i) {
      if (i != latched_ && i != stale_) slots_[i] = Candidate{};
    }
  }
  window_end_us_ = AddMicros(now_us, learning_window_us_);
}

LatchDecision Latch::OnRtp(const net::SocketAddress& source, const RtpHeader& rtp, absl::Time now) {
  const int64_t now_us = ToMicros(now);
  if (mode_ == Mode::kStrict) {
    if (!IsExactSdp(source)) return Drop(DropReason::kStrict);
    last_forward_us_ = now_us;
    return Forward();
  }

  if (latched_ >= 0 && slots_[latched_].source == source) {
    Candidate& lock = slots_[latched_];
    lock.ssrc = rtp.ssrc;
    lock.seq = rtp.sequence;
    last_us_[latched_] = now_us;
    last_forward_us_ = now_us;
    return Forward();
  }

  if (stale_ >= 0) {
    if (now_us >= stale_until_us_) {
      stale_ = -1;
    } else if (slots_[stale_].source == source) {
      return Drop(DropReason::kStale);
    }
  }

  const bool exact = IsExactSdp(source);
  // Checked before tracking so that other IPs cannot even occupy candidate slots.
  if (mode_ == Mode::kSignalingSource && !exact && !(has_signaling_ip_ && SameIp(source.ip, signaling_ip_))) {
    return Drop(DropReason::kNotSignalingIp);
  }

  const int rank = Rank(source);
  const int lock_rank = latched_ >= 0 ? Rank(slots_[latched_].source) : 0;
  const bool upgrade_possible = latched_ >= 0 && mode_ == Mode::kHeuristic && InWindow(now_us) && rank < lock_rank;
  const bool lock_silent = latched_ >= 0 && Elapsed(now_us, last_us_[latched_]) >= relatch_silence_us_;
  // While the endpoint is sending, others may not bank probation (see rule (b)).
  const bool hold = latched_ >= 0 && !lock_silent && !upgrade_possible;

  int idx = Find(source);
  if (idx < 0) idx = Allocate(source);
  if (!Track(idx, rtp, now_us, hold)) return Drop(DropReason::kTooFast);
  const bool passed = slots_[idx].count >= probation_;

  if (latched_ < 0) {
    if (exact) return LatchTo(idx, now_us);  // the signalled address is trusted
    if (!passed) return Drop(DropReason::kProbation);
    if (mode_ == Mode::kHeuristic && InWindow(now_us) && BetterRankedTracked(rank, idx)) {
      return Drop(DropReason::kWrongSource);
    }
    return LatchTo(idx, now_us);
  }

  // (a) NAT rebinding: the same stream continuing from a new port.
  const Candidate& lock = slots_[latched_];
  if (rtp.ssrc == lock.ssrc) {
    const uint16_t ahead = static_cast<uint16_t>(rtp.sequence - lock.seq);
    if (ahead >= 1 && ahead <= kMaxRebindAhead) {
      return RateOk(now_us) ? LatchTo(idx, now_us) : Drop(DropReason::kWrongSource);
    }
  }
  // HEURISTIC: a better-ranked candidate proven within the window takes over.
  if (upgrade_possible && (exact || passed) && !BetterRankedTracked(rank, idx)) return LatchTo(idx, now_us);
  // (b) the endpoint went silent and someone else proved itself since.
  if (lock_silent && passed && RateOk(now_us)) return LatchTo(idx, now_us);
  return Drop(DropReason::kWrongSource);
}

LatchDecision Latch::OnRtcp(const net::SocketAddress& source, absl::Time now) {
  const int64_t now_us = ToMicros(now);
  bool accept = false;
  if (mode_ == Mode::kStrict) {
    if (!has_sdp_ || !SameIp(source.ip, sdp_.ip)) return Drop(DropReason::kStrict);
    accept = true;
  } else if (latched_ >= 0 && SameIp(source.ip, slots_[latched_].source.ip)) {
    accept = true;
  } else if (stale_ >= 0 && now_us < stale_until_us_ && SameIp(source.ip, slots_[stale_].source.ip)) {
    return Drop(DropReason::kStale);
  } else if (latched_ >= 0) {
    return Drop(DropReason::kWrongSource);
  } else {
    accept = sdp_sendable_ && SameIp(source.ip, sdp_.ip);
  }
  if (!accept) return Drop(DropReason::kProbation);
  last_forward_us_ = now_us;
  return Forward();
}

std::optional<net::SocketAddress> Latch::Destination() const {
  if (mode_ == Mode::kStrict) return has_sdp_ ? std::optional<net::SocketAddress>(sdp_) : std::nullopt;
  if (latched_ >= 0) return slots_[latched_].source;
  if (sdp_sendable_) return sdp_;
  return std::nullopt;
}

std::optional<net::SocketAddress> Latch::latched_source() const {
  if (latched_ < 0) return std::nullopt;
  return slots_[latched_].source;
}

absl::Time Latch::last_packet() const {
  return last_forward_us_ == kNever ? absl::InfinitePast() : absl::FromUnixMicros(last_forward_us_);
}

bool Latch::IsExactSdp(const net::SocketAddress& source) const { return has_sdp_ && SameAddress(source, sdp_); }

int Latch::Rank(const net::SocketAddress& source) const {
  if (!has_sdp_) return 3;
  const bool same_ip = SameIp(source.ip, sdp_.ip);
  const bool same_port = source.port == sdp_.port;
  if (same_ip && same_port) return 0;
  if (same_ip) return 1;
  if (same_port) return 2;
  return 3;
}

int Latch::Find(const net::SocketAddress& source) const {
  for (int i = 0; i < kSlots; ++i) {
    if (slots_[i].used && slots_[i].source == source) return i;
  }
  return -1;
}

// The newcomer always gets a slot; ranking and progress decide only whom it displaces. The slot is
// returned unused (Track fills it in) but already bound to `source`.
int Latch::Allocate(const net::SocketAddress& source) {
  int victim = -1;
  int victim_rank = -1;
  for (int i = 0; i < kSlots; ++i) {
    if (!slots_[i].used) {
      slots_[i].source = source;
      return i;
    }
    if (i == latched_ || i == stale_) continue;
    const int r = Rank(slots_[i].source);
    // Worst rank first, then least progress, then oldest.
    const bool worse = victim < 0 || r > victim_rank ||
                       (r == victim_rank && (slots_[i].count < slots_[victim].count ||
                                             (slots_[i].count == slots_[victim].count && last_us_[i] < last_us_[victim])));
    if (worse) {
      victim = i;
      victim_rank = r;
    }
  }
  // At most two slots are pinned (latched, stale), so with kSlots = 4 a victim always exists.
  slots_[victim] = Candidate{};
  slots_[victim].source = source;
  return victim;
}

bool Latch::Track(int idx, const RtpHeader& rtp, int64_t now_us, bool hold) {
  Candidate& c = slots_[idx];
  if (!c.used) {
    c.used = true;
    c.ssrc = rtp.ssrc;
    c.seq = rtp.sequence;
    c.count = hold ? 0 : 1;
    last_us_[idx] = now_us;
    return true;
  }
  if (Elapsed(now_us, last_us_[idx]) < min_interarrival_us_) {
    // The arrival still counts as "the previous one", so a sustained flood stays too fast; the
    // sequence is not advanced, so the next counted packet looks like a gap and restarts the count.
    last_us_[idx] = now_us;
    return false;
  }
  const bool in_sequence = c.ssrc == rtp.ssrc && rtp.sequence == static_cast<uint16_t>(c.seq + 1);
  if (hold) {
    c.count = 0;
  } else if (in_sequence && c.count > 0) {
    c.count = static_cast<uint8_t>(std::min<int>(c.count + 1, 255));
  } else {
    c.count = 1;
  }
  c.ssrc = rtp.ssrc;
  c.seq = rtp.sequence;
  last_us_[idx] = now_us;
  return true;
}

bool Latch::BetterRankedTracked(int rank, int self) const {
  for (int i = 0; i < kSlots; ++i) {
    if (i == self || i == latched_ || i == stale_ || !slots_[i].used) continue;
    if (Rank(slots_[i].source) < rank) return true;
  }
  return false;
}

bool Latch::RateOk(int64_t now_us) const { return Elapsed(now_us, last_latch_us_) >= relatch_min_interval_us_; }

LatchDecision Latch::LatchTo(int idx, int64_t now_us) {
  const LatchEvent event = latched_ >= 0 ? LatchEvent::kRelatched : LatchEvent::kLatched;
  if (latched_ >= 0) {
    ++relatch_count_;
    // The old source starts from scratch if it ever wants the lock back.
    slots_[latched_].count = 0;
  }
  if (idx == stale_) stale_ = -1;
  latched_ = static_cast<int8_t>(idx);
  last_latch_us_ = now_us;
  last_forward_us_ = now_us;
  return Forward(event);
}

void Latch::Release(int64_t now_us) {
  stale_ = latched_;
  stale_until_us_ = AddMicros(now_us, stale_grace_us_);
  slots_[stale_].count = 0;
  latched_ = -1;
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
