#pragma once
// One relayed media stream (one m= line) of a session: two legs, each with the relay socket pair its
// endpoint sends to. Media from the caller arrives on caller.rtp and leaves through callee.rtp towards
// the callee, and the other way round: symmetric, so each endpoint's NAT sees replies from the very
// address:port it sends to.
//
// Threading: a stream belongs to one packet thread. Latch, RTCP destination and stats are touched
// only there. Counters are single-writer atomics; the latch snapshot (for queries) changes only on
// latch events, under a mutex no packet takes.
#include <array>
#include <memory>
#include <atomic>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/net/socket_address.h"
#include "latchkey/v1/nat_control.pb.h"
#include "media-relay/fastpath/flow_plan.h"
#include "media-relay/fastpath/kernel_stream_figures.h"
#include "media-relay/latching/latch.h"
#include "media-relay/latching/stream_stats.h"
#include "media-relay/ports/udp_socket.h"

namespace latchkey::relay {

// Signalling's view of one leg, turned into latching input (computed on the control path).
struct LegTarget {
  LatchPolicy policy;
  LatchTarget target;
  std::optional<net::SocketAddress> sdp_rtcp;  // only when sendable
  bool rtcp_mux = false;
  bool relay_chain = false;  // control chained this leg to another relay (v1::Leg.relay_chain)
};

struct LegSnapshot {
  std::optional<net::SocketAddress> latched_source;
  absl::Time latched_at = absl::InfinitePast();
  uint32_t relatch_count = 0;
  uint32_t ssrc = 0;
};

struct RelayLeg {
  UdpSocket rtp, rtcp;
  uint16_t rtp_port = 0;
  net::IpAddress bind_ip;  // the address the sockets are bound to

  // Packet thread only.
  Latch latch;
  bool rtcp_mux = false;
  bool relay_chain = false;
  std::optional<net::SocketAddress> rtcp_source;  // where this endpoint's RTCP comes from
  std::optional<net::SocketAddress> sdp_rtcp;
  StreamStats stats;

  // Single-writer counters (packet thread), readable anywhere.
  std::atomic<uint64_t> packets_in{0}, bytes_in{0}, packets_out{0}, bytes_out{0}, dropped{0};

  // Kernel fast path (engine/kernel_flows.h). Packet thread only: the entry the kernel holds for
  // media arriving on this leg, its counter slot, and what of those counters is folded in already.
  std::optional<FlowEntry> kernel_flow;
  uint32_t kernel_stream = 0;
  KernelStreamFigures kernel_folded;
  int64_t kernel_lost_prior = 0;  // loss of this leg's earlier entries
  absl::Time kernel_refreshed = absl::InfinitePast();
  absl::Time kernel_ssrc_synced = absl::InfinitePast();
  absl::Time kernel_planned = absl::InfinitePast();
  // Readable anywhere: what the kernel forwarded arriving on this leg (in) and leaving through it
  // (out), the loss and jitter of what arrived (RFC 3550, 1/16 timestamp units).
  std::atomic<uint64_t> kernel_packets_in{0}, kernel_bytes_in{0}, kernel_packets_out{0}, kernel_bytes_out{0};
  std::atomic<int64_t> kernel_lost{0};
  std::atomic<uint32_t> kernel_jitter16{0};
  std::atomic<bool> kernel_active{false};  // an entry is in the kernel now

  mutable absl::Mutex snapshot_mu;
  LegSnapshot snapshot ABSL_GUARDED_BY(snapshot_mu);

  LegSnapshot Snapshot() const {
    absl::MutexLock lock(&snapshot_mu);
    return snapshot;
  }
};

struct RelayStream;

// What epoll hands back for a readable socket: which stream, which leg it arrived on, which leg it
// goes out of, and whether it is the RTCP socket.
struct SocketTag {
  RelayStream* stream = nullptr;
  RelayLeg* in = nullptr;
  RelayLeg* out = nullptr;
  v1::Side side = v1::SIDE_UNSPECIFIED;  // the side of `in`
  bool rtcp = false;
  bool armed = false;  // io_uring: a multishot receive is pending on this socket

  int fd() const { return rtcp ? in->rtcp.fd() : in->rtp.fd(); }
};

// Shared by the streams of one session (all on the same packet thread): media on any of them keeps
// the session alive.
struct SessionTimeouts {
  absl::Duration media = absl::Seconds(60);
  absl::Time final_deadline = absl::InfiniteFuture();
};

struct SessionActivity {
  absl::Time last_packet = absl::InfinitePast();
  SessionTimeouts timeouts;
  bool timeout_reported = false;        // media timeout
  bool final_timeout_reported = false;
};

struct RelayStream {
  std::string session_id;
  uint32_t media_index = 0;
  RelayLeg caller, callee;
  std::array<SocketTag, 4> tags;
  std::shared_ptr<SessionActivity> activity;  // packet thread only

  // Packet I/O bookkeeping (packet thread only): a detached stream lives on until the kernel holds
  // no request that points at it.
  uint32_t inflight_sends = 0;
  bool retiring = false;
};

}  // namespace latchkey::relay
