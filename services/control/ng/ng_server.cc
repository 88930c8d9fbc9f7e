#include "services/control/ng/ng_server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "services/control/ng/message.h"

namespace latchkey::control::ng {
namespace {

// Largest ng datagram (rtpengine reads 65535 bytes too).
constexpr size_t kMaxDatagram = 65535;
// How often a blocked receive looks at the stop flag.
constexpr int kReceivePollMs = 100;
// Kamailio's and OpenSIPS's cookies are "<id>_<pid>_<seq>", about 20 bytes; a longer one is no
// client's, and would only inflate the reply cache.
constexpr size_t kMaxCookie = 128;
// A client gives up waiting for an answer after rtpengine_tout_ms (1 s by default) and sends the
// request again: one that waited longer in the socket is not worth running (its retransmission,
// if any, is behind it), and dropping it lets a backlog drain.
constexpr absl::Duration kMaxQueueDelay = absl::Seconds(1);

absl::StatusOr<net::SocketAddress> ParseListen(absl::string_view text) {
  const size_t colon = text.rfind(':');
  uint32_t port = 0;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(text.substr(colon + 1), &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("ng.listen: \"", text, "\" is not HOST:PORT"));
  }
  absl::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto ip = net::IpAddress::Parse(host);
  if (!ip.ok()) return absl::InvalidArgumentError(absl::StrCat("ng.listen: ", ip.status().message()));
  return net::SocketAddress{*ip, static_cast<uint16_t>(port)};
}

// Puts `info` (its interface cleared: route as usual, from its address) as the only control message
// of `out`.
template <typename PacketInfo>
void SetPacketInfo(msghdr& out, char* control, size_t control_size, int level, int type, PacketInfo info) {
  out.msg_control = control;
  out.msg_controllen = CMSG_SPACE(sizeof(info));
  std::memset(control, 0, control_size);
  cmsghdr* o = CMSG_FIRSTHDR(&out);
  o->cmsg_level = level;
  o->cmsg_type = type;
  o->cmsg_len = CMSG_LEN(sizeof(info));
  std::memcpy(CMSG_DATA(o), &info, sizeof(info));
}

// The local address a datagram reached, from its IP_PKTINFO / IPV6_PKTINFO, as the source of `out`.
void CopyPacketInfo(msghdr& in, msghdr& out, char* control, size_t control_size) {
  out.msg_control = nullptr;
  out.msg_controllen = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&in); c != nullptr; c = CMSG_NXTHDR(&in, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo info;
      std::memcpy(&info, CMSG_DATA(c), sizeof(info));
      info.ipi_ifindex = 0;
      return SetPacketInfo(out, control, control_size, IPPROTO_IP, IP_PKTINFO, info);
    }
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo info;
      std::memcpy(&info, CMSG_DATA(c), sizeof(info));
      info.ipi6_ifindex = 0;
      return SetPacketInfo(out, control, control_size, IPPROTO_IPV6, IPV6_PKTINFO, info);
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<NgServer>> NgServer::Start(NgServerOptions options, CommandHandler* handler,
                                                          NgMetrics* metrics) {
  auto listen = ParseListen(options.listen);
  if (!listen.ok()) return listen.status();
  std::unique_ptr<NgServer> server(new NgServer());
  server->options_ = std::move(options);
  server->handler_ = handler;
  server->metrics_ = metrics;
  const bool v6 = listen->ip.is_v6();
  server->fd_ = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (server->fd_ < 0) return absl::InternalError(absl::StrCat("ng: socket: ", std::strerror(errno)));
  const int one = 1;
  server->wildcard_ = listen->ip.IsUnspecified();
  if (server->wildcard_) {
    setsockopt(server->fd_, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_RECVPKTINFO : IP_PKTINFO, &one, sizeof(one));
  }
  // Each datagram's arrival time: latency is measured from there, and stale requests dropped.
  setsockopt(server->fd_, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
  timeval poll{0, kReceivePollMs * 1000};
  setsockopt(server->fd_, SOL_SOCKET, SO_RCVTIMEO, &poll, sizeof(poll));
  // Bursts of requests from every Kamailio worker at once wait here rather than being dropped.
  const int buffer = 4 << 20;
  setsockopt(server->fd_, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
  socklen_t length = 0;
  sockaddr_storage address = listen->ToSockaddr(&length);
  if (bind(server->fd_, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    return absl::UnavailableError(absl::StrCat("ng.listen: cannot bind ", server->options_.listen, ": ",
                                               std::strerror(errno)));
  }
  length = sizeof(address);
  getsockname(server->fd_, reinterpret_cast<sockaddr*>(&address), &length);
  auto bound = net::SocketAddress::FromSockaddr(address);
  server->port_ = bound.ok() ? bound->port : 0;
  const int threads = std::max(1, server->options_.threads);
  for (int i = 0; i < threads; ++i) server->threads_.emplace_back([s = server.get()] { s->Serve(); });
  return server;
}

NgServer::~NgServer() { Shutdown(); }

void NgServer::Shutdown() {
  stopping_ = true;
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

bool NgServer::Allowed(const net::IpAddress& ip) const {
  return options_.allow.empty() ? ip.IsLoopback() : options_.allow.Contains(ip);
}

void NgServer::Serve() {
  std::string datagram(kMaxDatagram + 1, '\0');
  alignas(cmsghdr) char control_in[256];
  alignas(cmsghdr) char control_out[256];
  while (!stopping_) {
    sockaddr_storage peer{};
    iovec in_iov{datagram.data(), datagram.size()};
    msghdr in{};
    in.msg_name = &peer;
    in.msg_namelen = sizeof(peer);
    in.msg_iov = &in_iov;
    in.msg_iovlen = 1;
    in.msg_control = control_in;
    in.msg_controllen = sizeof(control_in);
    const ssize_t n = recvmsg(fd_, &in, 0);
    if (n < 0) continue;  // the poll timeout, or an interrupted call
    absl::Time arrived = absl::Now();
    for (cmsghdr* c = CMSG_FIRSTHDR(&in); c != nullptr; c = CMSG_NXTHDR(&in, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec stamp;
        std::memcpy(&stamp, CMSG_DATA(c), sizeof(stamp));
        arrived = std::min(arrived, absl::TimeFromTimespec(stamp));
      }
    }
    auto source = net::SocketAddress::FromSockaddr(peer);
    if (!source.ok()) {
      metrics_->Drop("bad_source");
      continue;
    }
    if (!Allowed(source->ip)) {
      metrics_->Drop("not_allowed");
      continue;
    }
    if ((in.msg_flags & MSG_TRUNC) != 0 || static_cast<size_t>(n) > kMaxDatagram) {
      metrics_->Drop("truncated");
      continue;
    }
    const absl::string_view bytes(datagram.data(), static_cast<size_t>(n));
    auto request = ParseRequest(bytes);
    std::string reply;
    std::string command = "other";
    Outcome outcome;
    if (absl::IsNotFound(request.status())) {
      metrics_->Drop("no_cookie");
      continue;
    }
    const std::string cookie(request.ok() ? absl::string_view(request->cookie) : CookieOf(bytes));
    if (cookie.size() > kMaxCookie) {
      metrics_->Drop("long_cookie");
      continue;
    }
    if (absl::Now() - arrived > kMaxQueueDelay) {
      metrics_->Drop("expired");
      continue;
    }
    const std::string source_text = source->ToString();
    ReplyCache::Lookup lookup;
    {
      absl::MutexLock lock(&mu_);
      lookup = cache_.Begin(source_text, cookie, arrived, &reply);
    }
    if (lookup == ReplyCache::Lookup::kBusy) {
      metrics_->Drop("in_progress");
      continue;
    }
    if (lookup == ReplyCache::Lookup::kDone) {
      metrics_->retransmissions->Increment();
    } else {
      if (!request.ok()) {
        reply = FormatError(cookie, request.status().message());
        outcome.result = "error";
        outcome.detail = std::string(request.status().message());
      } else {
        command = request->command;
        reply = FormatReply(cookie, handler_->Handle(request->body, source->ip.ToString(), &outcome));
      }
      bool kept;
      {
        absl::MutexLock lock(&mu_);
        kept = cache_.Finish(source_text, cookie, reply, absl::Now());
      }
      if (!kept) metrics_->uncached->Increment();
      const double seconds = absl::ToDoubleSeconds(absl::Now() - arrived);
      metrics_->Count(command, outcome.result, seconds);
      if (outcome.ignored > 0) metrics_->ignored->Increment(static_cast<double>(outcome.ignored));
      const bool failed = outcome.result != "ok" && outcome.result != "pong";
      uint64_t suppressed = 0;
      bool write = !failed;
      if (failed) {
        absl::MutexLock lock(&mu_);
        write = failure_log_.Allow(absl::Now(), &suppressed);
      }
      if (write) {
        auto line = failed ? log::LogWarning("ng request failed") : log::LogDebug("ng request");
        line.Kv("command", command.substr(0, 32)).Kv("result", outcome.result).Kv("source", source_text)
            .Kv("cookie", cookie.substr(0, 64)).Kv("ms", seconds * 1000);
        if (!outcome.detail.empty()) line.Kv("detail", outcome.detail);
        if (suppressed > 0) line.Kv("suppressed_before", suppressed);
      }
    }
    iovec out_iov{reply.data(), reply.size()};
    msghdr out{};
    out.msg_name = &peer;
    out.msg_namelen = in.msg_namelen;
    out.msg_iov = &out_iov;
    out.msg_iovlen = 1;
    if (wildcard_) CopyPacketInfo(in, out, control_out, sizeof(control_out));
    if (sendmsg(fd_, &out, 0) < 0) metrics_->Drop("send_failed");
  }
}

}  // namespace latchkey::control::ng
