#include "media-relay/engine/kernel_flows.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "common/log/log.h"
#include "media-relay/fastpath/relay_program.h"

namespace latchkey::relay {
namespace {

// The socket path's default clock (StreamStats::kDefaultClockRate): both paths report jitter alike.
constexpr uint32_t kClockRate = 8000;

void Add(std::atomic<uint64_t>& counter, uint64_t n = 1) { EngineCounters::Add(counter, n); }

FlowLeg ViewOf(const RelayLeg& leg) {
  return {leg.latch.latched_source(), leg.latch.latched_ssrc(), leg.bind_ip, leg.rtp_port, leg.relay_chain};
}

bool Resolved(const FlowEntry& entry) {
  if (entry.value.flags & LK_FLOW_KEEP_L2) return true;
  for (uint8_t b : entry.value.dst_mac) {
    if (b != 0) return true;
  }
  return false;
}

}  // namespace

void KernelFlows::Sync(RelayStream& stream, absl::Time now) {
  if (!on()) return;
  SyncDirection(stream.caller, stream.callee, stream, now);
  SyncDirection(stream.callee, stream.caller, stream, now);
}

void KernelFlows::Remove(RelayStream& stream, absl::Time now) {
  if (!on()) return;
  RemoveDirection(stream.caller, stream.callee, stream, now);
  RemoveDirection(stream.callee, stream.caller, stream, now);
}

void KernelFlows::SyncDirection(RelayLeg& in, RelayLeg& out, RelayStream& stream, absl::Time now) {
  const FlowLeg from = ViewOf(in), to = ViewOf(out);
  if (!from.lock || !to.lock) {
    RemoveDirection(in, out, stream, now);
    return;
  }
  // Nothing changed for an entry that is complete: no netlink round trip.
  if (in.kernel_flow && Resolved(*in.kernel_flow)) {
    const lk_flow_value& had = in.kernel_flow->value;
    FlowEgress same;
    same.ifindex = static_cast<int>(had.out_ifindex);
    same.loopback = (had.flags & LK_FLOW_KEEP_L2) != 0;
    std::copy(std::begin(had.src_mac), std::end(had.src_mac), same.src_mac.begin());
    same.next_hop_mac.emplace();
    std::copy(std::begin(had.dst_mac), std::end(had.dst_mac), same.next_hop_mac->begin());
    const auto again = PlanFlow(from, to, same, in.kernel_stream, kClockRate);
    if (again && *again == *in.kernel_flow) return;
  }
  const FlowEgress egress = fast_path_->EgressFor(out.bind_ip, to.lock->ip);
  const uint32_t slot = in.kernel_flow ? in.kernel_stream : 0;
  std::optional<FlowEntry> wanted = PlanFlow(from, to, egress, slot, kClockRate);
  if (!wanted) {
    RemoveDirection(in, out, stream, now);
    return;
  }
  if (in.kernel_flow && *in.kernel_flow == *wanted) return;
  if (!in.kernel_flow) {
    auto acquired = fast_path_->AcquireStream();
    if (!acquired) {
      Add(counters_.kernel_flow_errors);
      return;  // every slot in use: this leg stays on the socket path
    }
    in.kernel_stream = *acquired;
    in.kernel_folded = {};
    wanted->value.stream = *acquired;
  }
  // A relatch changes the key: the new entry goes in before the old one goes, so no packet of the
  // endpoint falls between them into the socket path needlessly.
  if (absl::Status s = fast_path_->Upsert(*wanted); !s.ok()) {
    Add(counters_.kernel_flow_errors);
    log::LogWarning("fast path entry refused").Kv("session_id", stream.session_id).Kv("error", s.ToString());
    RemoveDirection(in, out, stream, now);
    return;
  }
  if (in.kernel_flow && std::memcmp(&in.kernel_flow->key, &wanted->key, sizeof(wanted->key)) != 0) {
    fast_path_->Remove(in.kernel_flow->key).IgnoreError();
  }
  if (!in.kernel_flow) Add(counters_.kernel_flows_added);
  in.kernel_flow = *wanted;
}

void KernelFlows::RemoveDirection(RelayLeg& in, RelayLeg& out, RelayStream& stream, absl::Time now) {
  if (!in.kernel_flow) return;
  if (!fast_path_->Remove(in.kernel_flow->key).ok()) Add(counters_.kernel_flow_errors);
  const KernelStreamFigures last = Fold(in, out, stream, now);
  in.kernel_lost_prior += last.lost();
  in.kernel_flow.reset();
  in.kernel_folded = {};
  fast_path_->ReleaseStream(in.kernel_stream);
  Add(counters_.kernel_flows_removed);
}

KernelStreamFigures KernelFlows::Fold(RelayLeg& in, RelayLeg& out, RelayStream& stream, absl::Time now) {
  const KernelStreamFigures figures = fast_path_->Read(in.kernel_stream);
  if (figures.packets > in.kernel_folded.packets) {
    const uint64_t packets = figures.packets - in.kernel_folded.packets;
    const uint64_t bytes = figures.bytes - std::min(figures.bytes, in.kernel_folded.bytes);
    Add(in.kernel_packets_in, packets);
    Add(in.kernel_bytes_in, bytes);
    Add(out.kernel_packets_out, packets);
    Add(out.kernel_bytes_out, bytes);
    Add(counters_.kernel_packets, packets);
    Add(counters_.kernel_bytes, bytes);
    // The kernel's clock is CLOCK_MONOTONIC: its newest packet, in the engine's time.
    const absl::Time last = now - (MonotonicNow() - absl::Nanoseconds(figures.last_ns));
    stream.activity->last_packet = std::max(stream.activity->last_packet, std::min(last, now));
  }
  in.kernel_lost.store(in.kernel_lost_prior + figures.lost(), std::memory_order_relaxed);
  if (figures.packets > 0) in.kernel_jitter16.store(figures.jitter16, std::memory_order_relaxed);
  in.kernel_folded = figures;
  return figures;
}

LatchDecision KernelFlows::Refresh(RelayLeg& in, RelayLeg& out, RelayStream& stream, absl::Time now) {
  if (!on() || !in.kernel_flow || now - in.kernel_refreshed < kRefreshInterval) return {};
  in.kernel_refreshed = now;
  const uint64_t before = in.kernel_folded.packets;
  const KernelStreamFigures figures = Fold(in, out, stream, now);
  if (figures.packets <= before) return {};
  const absl::Time last = now - (MonotonicNow() - absl::Nanoseconds(figures.last_ns));
  return in.latch.OnLockActivity(figures.last_seq, std::min(last, now));
}

void KernelFlows::Poll(RelayStream& stream, absl::Time now) {
  if (!on()) return;
  for (auto [in, out] : {std::pair{&stream.caller, &stream.callee}, std::pair{&stream.callee, &stream.caller}}) {
    if (!in->kernel_flow) continue;
    const uint64_t before = in->kernel_folded.packets;
    const KernelStreamFigures figures = Fold(*in, *out, stream, now);
    if (figures.packets > before) {
      const absl::Time last = now - (MonotonicNow() - absl::Nanoseconds(figures.last_ns));
      in->latch.OnLockActivity(figures.last_seq, std::min(last, now));
    }
    if (!Resolved(*in->kernel_flow)) SyncDirection(*in, *out, stream, now);
  }
}

}  // namespace latchkey::relay
