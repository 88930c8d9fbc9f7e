#include "media-relay/keepalive/keepalive_sender.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/sip/options.h"
#include "media-relay/keepalive/raw_udp.h"

namespace latchkey::relay {
namespace {

constexpr size_t kMaxDatagram = 1500;
constexpr size_t kMaxAnswer = 9000 + 64;  // IP and UDP headers in raw mode
constexpr int kReceiveBatch = 64;

absl::Status Errno(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Answers arrive in bursts (every phone answers within milliseconds of its keepalive): a deep
// receive queue keeps them from being dropped while the thread is sending. FORCE passes rmem_max
// when the worker may (CAP_NET_ADMIN); otherwise the kernel caps the plain request.
void DeepenReceiveBuffer(int fd) {
  const int bytes = 8 << 20;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
  }
}

}  // namespace

// The sender thread's batch buffers, sized once (the options fix the batch).
struct KeepaliveSender::Buffers {
  explicit Buffers(size_t batch)
      : datagrams(batch), headers(batch), iovs(2 * batch), messages(batch), destinations(batch), lags(batch),
        answers(kReceiveBatch) {}
  std::vector<std::array<char, kMaxDatagram>> datagrams;
  std::vector<std::array<uint8_t, kIpv4UdpHeaders>> headers;
  std::vector<iovec> iovs;
  std::vector<mmsghdr> messages;
  std::vector<sockaddr_storage> destinations;
  std::vector<absl::Duration> lags;
  std::vector<std::array<uint8_t, kMaxAnswer>> answers;  // received
};

KeepaliveSender::KeepaliveSender(KeepaliveSenderOptions options, prometheus::Registry& registry,
                                 KeepaliveEventSink* sink)
    : options_(std::move(options)), sink_(sink), buffers_(std::make_unique<Buffers>(options_.batch)),
      table_(absl::Now()) {
  auto counter = [&](const std::string& name, const std::string& help) -> prometheus::Counter* {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
  };
  sent_ = counter("latchkey_keepalives_sent_total", "Keepalives sent (OPTIONS and CRLF)");
  send_errors_ = counter("latchkey_keepalive_send_errors_total", "Keepalives the kernel refused to send");
  unsendable_ = counter("latchkey_keepalive_unsendable_total",
                        "Keepalives not sent: no route from their source (loopback registrar, other family)");
  misses_ = counter("latchkey_keepalive_misses_total", "OPTIONS keepalives unanswered by the time the next was due");
  unmatched_ = counter("latchkey_keepalive_unmatched_responses_total",
                       "Responses with a Latchkey branch but no open keepalive (removed binding, duplicate)");
  malformed_ = counter("latchkey_keepalive_malformed_responses_total", "SIP responses that did not parse");
  auto& changes = prometheus::BuildCounter()
                      .Name("latchkey_keepalive_reachability_changes_total")
                      .Help("Bindings that became unreachable or reachable again")
                      .Register(registry);
  to_unreachable_ = &changes.Add({{"to", "unreachable"}});
  to_reachable_ = &changes.Add({{"to", "reachable"}});
  auto& responses = prometheus::BuildCounter()
                        .Name("latchkey_keepalive_responses_total")
                        .Help("Answers to keepalives, by status class")
                        .Register(registry);
  for (int i = 0; i < 6; ++i) responses_[i] = &responses.Add({{"class", absl::StrCat(i + 1, "xx")}});
  rtt_ = &prometheus::BuildHistogram()
              .Name("latchkey_keepalive_rtt_seconds")
              .Help("Round-trip time of answered OPTIONS keepalives")
              .Register(registry)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5});
  lag_ = &prometheus::BuildHistogram()
              .Name("latchkey_keepalive_schedule_lag_seconds")
              .Help("How late keepalives left after their due time")
              .Register(registry)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5});
  targets_ = &prometheus::BuildGauge()
                  .Name("latchkey_keepalive_targets")
                  .Help("Bindings this worker keeps alive")
                  .Register(registry)
                  .Add({});
  refused_ = &prometheus::BuildCounter()
                  .Name("latchkey_keepalive_targets_refused_total")
                  .Help("Keepalive targets from control this relay refused, by reason (foreign source, special "
                        "destination, limit, invalid)")
                  .Register(registry);
  fenced_ = counter("latchkey_keepalive_assignments_fenced_total",
                    "SetKeepalives refused whole: its fencing token was older than one already taken (a control "
                    "replica that lost the keepalive lease)");
  intervals_raised_ = counter("latchkey_keepalive_intervals_raised_total",
                              "Keepalive targets whose interval was raised to min_keepalive_interval");
}

absl::StatusOr<std::unique_ptr<KeepaliveSender>> KeepaliveSender::Create(KeepaliveSenderOptions options,
                                                                         prometheus::Registry& registry,
                                                                         KeepaliveEventSink* sink) {
  options.policy.mode = options.mode;
  std::unique_ptr<KeepaliveSender> sender(new KeepaliveSender(std::move(options), registry, sink));
  sender->wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (sender->wake_fd_ < 0) return Errno("eventfd");
  if (sender->options_.mode == v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET) {
    const net::SocketAddress& bind = sender->options_.own_socket;
    const int fd = ::socket(bind.ip.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Errno("keepalive socket");
    sender->send_fd_ = sender->recv_fd_ = fd;
    DeepenReceiveBuffer(fd);
    socklen_t length = 0;
    const sockaddr_storage address = bind.ToSockaddr(&length);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0) {
      return Errno(absl::StrCat("keepalive socket: bind ", bind.ToString()));
    }
    sockaddr_storage bound{};
    socklen_t bound_length = sizeof(bound);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
    auto own = net::SocketAddress::FromSockaddr(bound);
    if (own.ok()) sender->own_address_ = *own;
    return sender;
  }
  sender->send_fd_ = ::socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  if (sender->send_fd_ < 0) {
    return absl::PermissionDeniedError(absl::StrCat("keepalive raw socket (needs CAP_NET_RAW; or use "
                                                    "--keepalive_mode=own_socket): ", std::strerror(errno)));
  }
  const int one = 1;
  ::setsockopt(sender->send_fd_, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one));
  // The receive socket is checked now (the worker announces what it can do) but opened for good
  // only with the first keepalive: while it exists the kernel runs its filter for every UDP packet
  // the host receives, media included.
  const int probe = ::socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (probe < 0) return Errno("keepalive raw receive socket");
  ::close(probe);
  return sender;
}

KeepaliveSender::~KeepaliveSender() {
  Stop();
  if (recv_fd_ >= 0 && recv_fd_ != send_fd_) ::close(recv_fd_);
  if (send_fd_ >= 0) ::close(send_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void KeepaliveSender::Start() {
  if (running_.exchange(true)) return;
  thread_ = std::thread([this] { Run(); });
}

void KeepaliveSender::Stop() {
  if (!running_.exchange(false)) return;
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

absl::Status KeepaliveSender::Apply(const v1::SetKeepalivesRequest& request, v1::SetKeepalivesResponse* response) {
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    // 0 is a control without a lease: accepted only until a leader's token has been seen.
    if (request.fencing_token() < fencing_token_) {
      fenced_->Increment();
      log::LogWarning("keepalive assignment from a former leader refused")
          .Kv("fencing_token", request.fencing_token())
          .Kv("newest", fencing_token_);
      return absl::FailedPreconditionError(absl::StrCat("fencing_token: ", request.fencing_token(),
                                                        " is older than ", fencing_token_,
                                                        " (another control replica holds the keepalive lease)"));
    }
    if (request.fencing_token() > fencing_token_) {
      fencing_token_ = request.fencing_token();
      // A new leader: whatever set the old one was replacing is abandoned; the new one sends its own.
      replacing_ = false;
    }
    if (request.replace_all()) {
      table_.BeginReplace();
      replacing_ = true;
    }
    for (int i = 0; i < request.upsert_size(); ++i) {
      v1::KeepaliveTarget target = request.upsert(i);
      const TargetVerdict verdict =
          CheckKeepaliveTarget(options_.policy, &target, table_.size(), !table_.Contains(target.binding_id()));
      if (verdict.interval_raised) intervals_raised_->Increment();
      absl::Status status = verdict.ok() ? table_.Upsert(target, now) : verdict.status;
      if (!status.ok()) {
        // Dropped, not fatal: control would resend the whole set for one target it cannot fix.
        table_.Remove(target.binding_id());
        response->add_refused(absl::StrCat(target.binding_id(), ": ", status.message()));
        refused_->Add({{"reason", verdict.ok() ? "invalid" : std::string(TargetRefusalLabel(verdict.refusal))}})
            .Increment();
      }
    }
    for (const std::string& id : request.remove()) table_.Remove(id);
    if (request.complete() && replacing_) {
      table_.EndReplace();
      replacing_ = false;
    }
    targets_->Set(static_cast<double>(table_.size()));
    response->set_targets(static_cast<uint32_t>(table_.size()));
  }
  if (response->refused_size() > 0) {
    log::LogWarning("keepalive targets refused").Kv("count", response->refused_size()).Kv("first", response->refused(0));
  }
  // New targets may be due now.
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
  return absl::OkStatus();
}

size_t KeepaliveSender::size() const {
  absl::MutexLock lock(&mu_);
  return table_.size();
}

const std::string& KeepaliveSender::HostText(const net::IpAddress& ip) {
  for (const auto& [known, text] : host_texts_) {
    if (known == ip) return text;
  }
  if (host_texts_.size() > 1024) host_texts_.clear();  // bounded: registrars are few
  host_texts_.emplace_back(ip, ip.is_v6() ? absl::StrCat("[", ip.ToString(), "]") : ip.ToString());
  return host_texts_.back().second;
}

void KeepaliveSender::UpdateRawFilter(const std::vector<DueKeepalive>& due) {
  if (due.empty()) return;
  if (recv_fd_ < 0) {
    recv_fd_ = ::socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (recv_fd_ < 0) {
      log::LogError("keepalive raw receive socket").Kv("error", std::strerror(errno));
      return;
    }
    DeepenReceiveBuffer(recv_fd_);
    filtered_ports_.clear();
  }
  bool changed = false;
  for (const DueKeepalive& k : due) {
    if (filtered_ports_.size() < 64 && std::find(filtered_ports_.begin(), filtered_ports_.end(), k.source.port) ==
                                           filtered_ports_.end()) {
      filtered_ports_.push_back(k.source.port);
      changed = true;
    }
  }
  if (!changed && !filtered_ports_.empty()) return;
  std::vector<sock_filter> program = UdpDestinationPortFilter(filtered_ports_.empty() ? std::vector<uint16_t>{0}
                                                                                      : filtered_ports_);
  sock_fprog fprog{static_cast<unsigned short>(program.size()), program.data()};
  if (::setsockopt(recv_fd_, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)) != 0) {
    log::LogWarning("keepalive: BPF filter refused; filtering in user space").Kv("error", std::strerror(errno));
  }
}

bool KeepaliveSender::SendDue(absl::Time now) {
  std::vector<DueKeepalive> due;
  std::vector<KeepaliveEventOut> events;
  due.reserve(options_.batch);
  auto& buffers = buffers_->datagrams;
  auto& headers = buffers_->headers;
  auto& iovs = buffers_->iovs;
  auto& messages = buffers_->messages;
  auto& destinations = buffers_->destinations;
  auto& lags = buffers_->lags;
  const bool raw = options_.mode != v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET;
  size_t count = 0;
  bool behind = false;
  {
    absl::MutexLock lock(&mu_);
    const uint64_t misses_before = table_.misses_total();
    table_.CollectDue(now, options_.batch, &due, &events);
    for (const DueKeepalive& k : due) {
      const net::SocketAddress& via = raw ? k.source : own_address_;
      // Refused here, never sent (and so no miss when unanswered): registrar-source needs IPv4 on both
      // ends; a loopback source reaches only loopback, and a raw socket would still put such a packet on
      // the wire; an own socket reaches only its own family.
      const bool unsendable =
          (raw && (!k.source.ip.is_v4() || !k.destination.ip.is_v4() || k.source.port == 0)) ||
          (!raw && k.destination.ip.Unmapped().is_v4() != own_address_.ip.Unmapped().is_v4()) ||
          via.ip.Unmapped().IsLoopback() != k.destination.ip.Unmapped().IsLoopback();
      const size_t length =
          unsendable ? 0 : table_.WriteRequest(k.slot, HostText(via.ip), via.port, buffers[count].data(), kMaxDatagram);
      if (length == 0) {
        table_.Abandon(k.slot);
        unsendable_->Increment();
        continue;
      }
      lags[count] = k.lag;
      mmsghdr& message = messages[count];
      message = {};
      socklen_t to_length = 0;
      destinations[count] = raw ? net::IpAddress(k.destination.ip).ToSockaddr(0, &to_length)
                                : k.destination.ip.ToSockaddr(k.destination.port, &to_length);
      message.msg_hdr.msg_name = &destinations[count];
      message.msg_hdr.msg_namelen = to_length;
      if (raw) {
        WriteIpv4UdpHeaders(k.source, k.destination, absl::string_view(buffers[count].data(), length),
                            headers[count].data());
        iovs[2 * count] = {headers[count].data(), kIpv4UdpHeaders};
        iovs[2 * count + 1] = {buffers[count].data(), length};
        message.msg_hdr.msg_iov = &iovs[2 * count];
        message.msg_hdr.msg_iovlen = 2;
      } else {
        iovs[2 * count] = {buffers[count].data(), length};
        message.msg_hdr.msg_iov = &iovs[2 * count];
        message.msg_hdr.msg_iovlen = 1;
      }
      ++count;
    }
    behind = table_.Behind(now);
    misses_->Increment(static_cast<double>(table_.misses_total() - misses_before));
  }
  if (raw) UpdateRawFilter(due);
  for (size_t i = 0; i < count; ++i) lag_->Observe(absl::ToDoubleSeconds(lags[i]));
  size_t done = 0;
  while (done < count) {
    const int sent = ::sendmmsg(send_fd_, messages.data() + done, static_cast<unsigned>(count - done), MSG_DONTWAIT);
    if (sent <= 0) {
      send_errors_->Increment();  // unreachable network, full buffer: this one is lost, the rest go on
      ++done;
      continue;
    }
    sent_->Increment(sent);
    done += static_cast<size_t>(sent);
  }
  if (!events.empty()) {
    for (const KeepaliveEventOut& e : events) {
      (e.reachability == v1::REACHABILITY_UNREACHABLE ? to_unreachable_ : to_reachable_)->Increment();
      log::LogInfo("keepalive: binding unreachable").Kv("binding_id", e.binding_id);
    }
    if (sink_) sink_->OnKeepaliveEvents(std::move(events));
  }
  return behind;
}

void KeepaliveSender::Receive(absl::Time now) {
  // Answers may carry SDP or long Allow lists: room for any that fits an Ethernet jumbo frame.
  auto& buffers = buffers_->answers;
  std::array<iovec, kReceiveBatch> iovs;
  std::array<mmsghdr, kReceiveBatch> messages{};
  std::array<sockaddr_storage, kReceiveBatch> peers;
  for (int i = 0; i < kReceiveBatch; ++i) {
    iovs[i] = {buffers[i].data(), buffers[i].size()};
    messages[i].msg_hdr.msg_iov = &iovs[i];
    messages[i].msg_hdr.msg_iovlen = 1;
    messages[i].msg_hdr.msg_name = &peers[i];
  }
  const bool raw = options_.mode != v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET;
  for (int round = 0; round < 16; ++round) {
    for (int i = 0; i < kReceiveBatch; ++i) messages[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    const int received = ::recvmmsg(recv_fd_, messages.data(), kReceiveBatch, MSG_DONTWAIT, nullptr);
    if (received <= 0) return;
    std::vector<KeepaliveEventOut> events;
    std::vector<std::pair<int, absl::Duration>> answered;  // status, rtt
    {
      absl::MutexLock lock(&mu_);
      for (int i = 0; i < received; ++i) {
        absl::string_view payload(reinterpret_cast<const char*>(buffers[i].data()), messages[i].msg_len);
        net::SocketAddress from;
        if (raw) {
          auto datagram = ParseIpv4Udp(buffers[i].data(), messages[i].msg_len);
          if (!datagram) continue;
          payload = datagram->payload;
          from = datagram->source;
        } else {
          auto peer = net::SocketAddress::FromSockaddr(peers[i]);
          if (!peer.ok()) continue;
          from = *peer;
        }
        if (!absl::StartsWith(payload, "SIP/2.0 ")) continue;  // requests to the registrar, stray datagrams
        auto response = sip::ParseResponse(payload);
        if (!response.ok()) {
          malformed_->Increment();
          continue;
        }
        absl::Duration rtt;
        switch (table_.OnResponse(response->branch, response->status_code, from, now, &rtt, &events)) {
          case ResponseMatch::kMatched:
            answered.emplace_back(response->status_code, rtt);
            break;
          case ResponseMatch::kLate:
            answered.emplace_back(response->status_code, absl::InfiniteDuration());
            break;
          case ResponseMatch::kUnknown:
            unmatched_->Increment();
            break;
          case ResponseMatch::kForeign:
            break;  // the registrar's own transactions (raw mode sees them all)
        }
      }
    }
    for (const auto& [status, rtt] : answered) {
      const int cls = std::clamp(status / 100, 1, 6);
      responses_[cls - 1]->Increment();
      if (rtt != absl::InfiniteDuration()) rtt_->Observe(absl::ToDoubleSeconds(rtt));
    }
    if (!events.empty()) {
      for (const KeepaliveEventOut& e : events) {
        to_reachable_->Increment();
        log::LogInfo("keepalive: binding reachable again").Kv("binding_id", e.binding_id).Kv("status", e.status_code);
      }
      if (sink_) sink_->OnKeepaliveEvents(std::move(events));
    }
    if (received < kReceiveBatch) return;
  }
}

void KeepaliveSender::Run() {
  const int tick_ms = static_cast<int>(absl::ToInt64Milliseconds(KeepaliveTable::kTick));
  while (running_.load(std::memory_order_relaxed)) {
    const bool more = SendDue(absl::Now());
    pollfd fds[2] = {{recv_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    ::poll(fds, 2, more ? 0 : tick_ms);
    if (fds[1].revents & POLLIN) {
      uint64_t drained;
      (void)!::read(wake_fd_, &drained, sizeof(drained));
    }
    if (fds[0].revents & POLLIN) Receive(absl::Now());
  }
}

}  // namespace latchkey::relay
