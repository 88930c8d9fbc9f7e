#include "media-relay/engine/kernel_flows.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <utility>

#include "common/log/log.h"
#include "media-relay/fastpath/relay_program.h"

namespace latchkey::relay {
namespace {

// The socket path's default clock (StreamStats::kDefaultClockRate): both paths report jitter alike.
constexpr uint32_t kClockRate = 8000;
constexpr size_t kMaxFailedRemovals = 4096;

void Add(std::atomic<uint64_t>& counter, uint64_t n = 1) { EngineCounters::Add(counter, n); }

FlowLeg ViewOf(const RelayLeg& leg) {
  return {leg.latch.latched_source(), leg.latch.latched_ssrc(), leg.bind_ip, leg.rtp_port, leg.relay_chain};
}

// The egress the entry was planned with.
FlowEgress EgressOf(const FlowEntry& entry) {
  const lk_flow_value& had = entry.value;
  FlowEgress egress;
  egress.ifindex = static_cast<int>(had.out_ifindex);
  egress.loopback = (had.flags & LK_FLOW_KEEP_L2) != 0;
  std::copy(std::begin(had.src_mac), std::end(had.src_mac), egress.src_mac.begin());
  if (std::any_of(std::begin(had.dst_mac), std::end(had.dst_mac), [](uint8_t b) { return b != 0; })) {
    egress.next_hop_mac.emplace();
    std::copy(std::begin(had.dst_mac), std::end(had.dst_mac), egress.next_hop_mac->begin());
  }
  return egress;
}

bool SameKey(const lk_flow_key& a, const lk_flow_key& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }

// The kernel's clock is CLOCK_MONOTONIC: its newest packet, in the engine's time (never ahead).
absl::Time Arrival(uint64_t last_ns, absl::Time now) {
  return std::min(now, now - (MonotonicNow() - absl::Nanoseconds(static_cast<int64_t>(last_ns))));
}

}  // namespace

void KernelFlows::Sync(RelayStream& stream, absl::Time now) {
  if (!on()) return;
  SyncDirection(stream.tags[0], now, /*fresh_egress=*/false);  // caller's RTP -> callee
  SyncDirection(stream.tags[2], now, /*fresh_egress=*/false);  // callee's RTP -> caller
}

void KernelFlows::Remove(RelayStream& stream, absl::Time now) {
  if (!on()) return;
  RemoveDirection(stream.tags[0], now);
  RemoveDirection(stream.tags[2], now);
}

void KernelFlows::SyncDirection(SocketTag& tag, absl::Time now, bool fresh_egress) {
  RelayLeg& in = *tag.in;
  RelayLeg& out = *tag.out;
  const FlowLeg from = ViewOf(in), to = ViewOf(out);
  if (!from.lock || !to.lock) {
    RemoveDirection(tag, now);
    return;
  }
  // An entry whose inputs have not changed keeps its egress: no next-hop lookup.
  if (in.kernel_flow && !fresh_egress) {
    const auto again = PlanFlow(from, to, EgressOf(*in.kernel_flow), in.kernel_stream, kClockRate);
    if (again && *again == *in.kernel_flow) return;
  }
  std::optional<FlowEntry> wanted =
      PlanFlow(from, to, fast_path_->EgressFor(out.bind_ip, to.lock->ip), in.kernel_stream, kClockRate);
  // Another SSRC is another stream: its counters start afresh (sequence numbers and timestamps of
  // one say nothing about the other's loss and jitter).
  if (!wanted || (in.kernel_flow && in.kernel_flow->value.ssrc != wanted->value.ssrc)) RemoveDirection(tag, now);
  if (!wanted) return;
  in.kernel_planned = now;
  if (in.kernel_flow && *in.kernel_flow == *wanted) return;
  const bool added = !in.kernel_flow;
  if (added) {
    auto slot = fast_path_->AcquireStream();
    if (!slot) {
      Add(counters_.kernel_flow_errors);
      return;  // every counter slot in use: this direction stays on the socket path
    }
    in.kernel_stream = *slot;
    in.kernel_folded = {};
    wanted->value.stream = *slot;
  }
  // A relatch changes the key: the new entry goes in before the old one goes.
  if (absl::Status s = fast_path_->Upsert(*wanted); !s.ok()) {
    Add(counters_.kernel_flow_errors);
    log::LogWarning("fast path entry refused").Kv("session_id", tag.stream->session_id).Kv("error", s.ToString());
    if (added) {
      fast_path_->ReleaseStream(in.kernel_stream);
    } else {
      RemoveDirection(tag, now);
    }
    return;
  }
  if (!added && !SameKey(in.kernel_flow->key, wanted->key) && !fast_path_->Remove(in.kernel_flow->key).ok() &&
      failed_removals_.size() < kMaxFailedRemovals) {
    failed_removals_.push_back(in.kernel_flow->key);
  }
  if (added) {
    Add(counters_.kernel_flows_added);
    in.kernel_active.store(true, std::memory_order_relaxed);
    // What the kernel carries, it counts: the socket path's sequence space ends here.
    in.stats.NewSequenceSpace();
  }
  in.kernel_flow = *wanted;
}

void KernelFlows::RemoveDirection(SocketTag& tag, absl::Time now) {
  RelayLeg& in = *tag.in;
  if (!in.kernel_flow) return;
  if (!fast_path_->Remove(in.kernel_flow->key).ok()) {
    Add(counters_.kernel_flow_errors);
    // Still in the kernel: removed later, before its slot can mislead anyone for long.
    if (failed_removals_.size() < kMaxFailedRemovals) failed_removals_.push_back(in.kernel_flow->key);
  }
  Fold(tag, now);  // the last packets, and the latch hears of them before the change applies
  in.kernel_lost_prior += in.kernel_folded.lost();
  in.kernel_lost.store(in.kernel_lost_prior, std::memory_order_relaxed);
  in.kernel_flow.reset();
  in.kernel_folded = {};
  in.kernel_active.store(false, std::memory_order_relaxed);
  fast_path_->ReleaseStream(in.kernel_stream);
  Add(counters_.kernel_flows_removed);
}

void KernelFlows::Fold(SocketTag& tag, absl::Time now) {
  RelayLeg& in = *tag.in;
  RelayLeg& out = *tag.out;
  const std::optional<KernelStreamFigures> read = fast_path_->Read(in.kernel_stream);
  if (!read) return;
  const KernelStreamFigures& figures = *read;
  in.kernel_lost.store(in.kernel_lost_prior + figures.lost(), std::memory_order_relaxed);
  if (figures.packets > 0) in.kernel_jitter16.store(figures.jitter16, std::memory_order_relaxed);
  const KernelStreamFigures before = std::exchange(in.kernel_folded, figures);
  if (figures.packets > before.packets) {
    const uint64_t packets = figures.packets - before.packets;
    const uint64_t bytes = figures.bytes - std::min(figures.bytes, before.bytes);
    Add(in.kernel_packets_in, packets);
    Add(in.kernel_bytes_in, bytes);
    Add(out.kernel_packets_out, packets);
    Add(out.kernel_bytes_out, bytes);
    Add(counters_.kernel_packets, packets);
    Add(counters_.kernel_bytes, bytes);
    const absl::Time last = Arrival(figures.last_ns, now);
    tag.stream->activity->last_packet = std::max(tag.stream->activity->last_packet, last);
    if (in.kernel_flow) {
      const LatchDecision told = in.latch.OnLockActivity(ntohl(in.kernel_flow->value.ssrc), figures.last_seq, last);
      if (told.event == LatchEvent::kContested && on_contest_) on_contest_(tag, now);
    }
  }
}

void KernelFlows::Refresh(SocketTag& tag, absl::Time now) {
  RelayLeg& in = *tag.in;
  if (!on() || !in.kernel_flow || now - in.kernel_refreshed < kRefreshInterval) return;
  in.kernel_refreshed = now;
  Fold(tag, now);
}

void KernelFlows::Poll(RelayStream& stream, absl::Time now) {
  if (!on()) return;
  for (SocketTag* tag : {&stream.tags[0], &stream.tags[2]}) {
    RelayLeg& in = *tag->in;
    if (!in.kernel_flow) continue;
    Fold(*tag, now);
    // XDP's next hop: resolved late (the kernel had not learnt it yet) or possibly changed.
    if (fast_path_->mode() == FastPathMode::kXdp &&
        (!EgressOf(*in.kernel_flow).next_hop_mac || now - in.kernel_planned >= kReplanInterval)) {
      SyncDirection(*tag, now, /*fresh_egress=*/true);
    }
  }
}

void KernelFlows::RetryRemovals() {
  if (!on() || failed_removals_.empty()) return;
  std::vector<lk_flow_key> still;
  for (const lk_flow_key& key : failed_removals_) {
    if (!fast_path_->Remove(key).ok()) still.push_back(key);
  }
  failed_removals_.swap(still);
}

}  // namespace latchkey::relay
