#include "media-relay/fastpath/fast_path.h"

#include <ifaddrs.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "media-relay/fastpath/next_hop.h"

namespace latchkey::relay {
namespace {

// Entries stay live this long after the last KeepAlive (called every 0.5 s by the relay).
constexpr absl::Duration kAliveFor = absl::Seconds(3);

// The interface's driver name ("veth", "virtio_net", ...), as `ethtool -i` reports it; "" if unknown.
std::string DriverOf(const std::string& name) {
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  ifreq request{};
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  request.ifr_data = reinterpret_cast<char*>(&info);
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  const bool ok = ::ioctl(fd, SIOCETHTOOL, &request) == 0;
  ::close(fd);
  return ok ? std::string(info.driver) : "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<FastPath>> FastPath::Start(const FastPathOptions& options) {
  std::unique_ptr<FastPath> fast_path(new FastPath());
  const v1::FastPath requested = options.requested;
  if (requested == v1::FAST_PATH_OFF || requested == v1::FAST_PATH_UNSPECIFIED) return fast_path;
  const bool automatic = requested == v1::FAST_PATH_AUTO;
  auto without = [&](absl::Status why) -> absl::StatusOr<std::unique_ptr<FastPath>> {
    if (!automatic) return absl::Status(why.code(), absl::StrCat("fast_path: ", why.message()));
    fast_path->fallback_reason_ = std::string(why.message());
    fast_path->attachments_.clear();
    fast_path->program_.reset();
    log::LogWarning("fast path off").Kv("reason", fast_path->fallback_reason_);
    return std::move(fast_path);
  };

  // The interfaces carrying the media addresses, and every interface's MAC.
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return without(absl::UnavailableError("cannot list interfaces"));
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_PACKET) continue;
    const auto* link = reinterpret_cast<const sockaddr_ll*>(i->ifa_addr);
    std::array<uint8_t, 6> mac{};
    if (link->sll_halen == mac.size()) std::memcpy(mac.data(), link->sll_addr, mac.size());
    fast_path->macs_[link->sll_ifindex] = mac;
  }
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    const net::IpAddress ip = net::IpAddress::FromV4(reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr);
    for (const net::IpAddress& media : options.media_ips) {
      if (media.Unmapped() != ip) continue;
      Interface& interface = fast_path->interfaces_[media];
      interface.name = i->ifa_name;
      interface.ifindex = static_cast<int>(::if_nametoindex(i->ifa_name));
      interface.loopback = (i->ifa_flags & IFF_LOOPBACK) != 0;
      if (auto it = fast_path->macs_.find(interface.ifindex); it != fast_path->macs_.end()) interface.mac = it->second;
    }
  }
  ::freeifaddrs(list);
  for (const net::IpAddress& media : options.media_ips) {
    if (media.IsUnspecified()) {
      return without(absl::FailedPreconditionError(
          absl::StrCat("media address ", media.ToString(), " is a wildcard: bind the relay to its addresses")));
    }
    if (!fast_path->interfaces_.contains(media)) {
      return without(absl::FailedPreconditionError(absl::StrCat("no IPv4 interface carries ", media.ToString())));
    }
  }

  auto program = RelayProgram::Load();
  if (!program.ok()) return without(program.status());
  fast_path->program_ = *std::move(program);
  fast_path->KeepAlive();
  absl::Status attached;
  std::string veth;
  for (const auto& [ip, interface] : fast_path->interfaces_) {
    if (DriverOf(interface.name) == "veth") veth = interface.name;
  }
  if (automatic && !veth.empty()) {
    attached = absl::FailedPreconditionError(
        absl::StrCat(veth, " is a veth: XDP_TX there needs an XDP program on its peer too (ask for xdp to have it)"));
    log::LogInfo("fast path: no native XDP, trying tc").Kv("reason", attached.message());
  } else if (requested != v1::FAST_PATH_TC) {
    attached = fast_path->AttachAll(FastPathMode::kXdp, options.tc_priority);
    if (attached.ok()) return fast_path;
    if (!automatic) return without(attached);
    log::LogInfo("fast path: no native XDP, trying tc").Kv("reason", attached.message());
  }
  const absl::Status tc = fast_path->AttachAll(FastPathMode::kTc, options.tc_priority);
  if (!tc.ok()) return without(attached.ok() ? tc : absl::Status(tc.code(), absl::StrCat(attached.message(), "; ", tc.message())));
  return fast_path;
}

absl::Status FastPath::AttachAll(FastPathMode mode, uint16_t tc_priority) {
  attachments_.clear();
  absl::flat_hash_set<int> done;
  for (const auto& [ip, interface] : interfaces_) {
    if (!done.insert(interface.ifindex).second) continue;
    if (!interface.loopback) {
      uint8_t mac[6];
      std::memcpy(mac, interface.mac.data(), sizeof(mac));
      if (absl::Status s = program_->SetInterfaceMac(interface.ifindex, mac); !s.ok()) return s;
    }
    auto attachment = FastPathAttachment::Attach(*program_, mode, interface.ifindex, tc_priority);
    if (!attachment.ok()) {
      attachments_.clear();
      return attachment.status();
    }
    attachments_.push_back(*std::move(attachment));
  }
  attached_ = std::move(done);
  mode_ = mode;
  {
    absl::MutexLock lock(&mu_);
    free_streams_.clear();
    free_head_ = 0;
    for (uint32_t s = 0; s < LK_MAX_STREAMS; ++s) free_streams_.push_back(s);
  }
  log::LogInfo("fast path on").Kv("mode", FastPathModeName(mode)).Kv("interfaces", attachments_.size());
  return absl::OkStatus();
}

FastPath::~FastPath() {
  attachments_.clear();  // detach before the program and maps go
}

void FastPath::KeepAlive() {
  if (program_) program_->KeepAliveUntil(MonotonicNow() + kAliveFor).IgnoreError();
}

FlowEgress FastPath::EgressFor(const net::IpAddress& relay_ip, const net::IpAddress& destination) {
  FlowEgress egress;
  auto it = interfaces_.find(relay_ip);
  if (it == interfaces_.end()) return egress;  // ifindex 0: PlanFlow plans nothing
  egress.ifindex = it->second.ifindex;
  egress.loopback = it->second.loopback;
  egress.src_mac = it->second.mac;
  if (egress.loopback || mode_ != FastPathMode::kXdp) return egress;
  const auto to = Ipv4Of(destination), from = Ipv4Of(relay_ip);
  if (!to || !from) return egress;
  absl::StatusOr<NextHop> hop = absl::UnavailableError("unresolved");
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    auto cached = hops_.find({*from, *to});
    if (cached != hops_.end() && now < cached->second.until) hop = cached->second.hop;
  }
  if (!hop.ok() && !absl::IsNotFound(hop.status())) {
    hop = ResolveNextHop(*to, *from);
    absl::MutexLock lock(&mu_);
    if (hops_.size() > 65536) hops_.clear();  // bounded: one entry per destination in use
    // An unresolved neighbour is asked again soon; a resolved one after a few seconds.
    hops_[{*from, *to}] = {hop, now + (hop.ok() ? absl::Seconds(5) : absl::Milliseconds(500))};
  }
  if (!hop.ok() || !attached_.contains(hop->ifindex)) {
    // XDP cannot send by an interface it is not on: this direction stays on the socket path.
    if (hop.ok()) egress.ifindex = 0;
    return egress;  // else: no MAC yet, XDP hands packets back until the next resolution
  }
  egress.ifindex = hop->ifindex;
  if (auto mac = macs_.find(hop->ifindex); mac != macs_.end()) egress.src_mac = mac->second;
  egress.next_hop_mac = hop->mac;
  return egress;
}

void FastPath::Shutdown() {
  if (program_) program_->KeepAliveUntil(absl::ZeroDuration()).IgnoreError();
  attachments_.clear();
}

std::optional<uint32_t> FastPath::AcquireStream() {
  uint32_t stream;
  {
    absl::MutexLock lock(&mu_);
    if (free_head_ == free_streams_.size()) return std::nullopt;
    stream = free_streams_[free_head_++];
    if (free_head_ > 4096 && free_head_ * 2 > free_streams_.size()) {  // compact now and then
      free_streams_.erase(free_streams_.begin(), free_streams_.begin() + static_cast<long>(free_head_));
      free_head_ = 0;
    }
  }
  if (!program_->ResetStream(stream).ok()) {
    ReleaseStream(stream);
    return std::nullopt;
  }
  return stream;
}

void FastPath::ReleaseStream(uint32_t stream) {
  absl::MutexLock lock(&mu_);
  free_streams_.push_back(stream);
}

std::optional<KernelStreamFigures> FastPath::Read(uint32_t stream) const {
  std::vector<lk_stream_stats> per_cpu;
  if (!program_ || !program_->ReadStream(stream, &per_cpu).ok()) return std::nullopt;
  return MergeKernelStream(per_cpu);
}

}  // namespace latchkey::relay
