#include "media-relay/fastpath/next_hop.h"

#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace latchkey::relay {
namespace {

constexpr size_t kBuffer = 8192;

struct Request {
  nlmsghdr header;
  union {
    rtmsg route;
    ndmsg neighbour;
  };
  alignas(NLMSG_ALIGNTO) char attributes[64];
};

void AddAttribute(Request& request, uint16_t type, const void* data, uint16_t size) {
  auto* attribute = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&request) + NLMSG_ALIGN(request.header.nlmsg_len));
  attribute->rta_type = type;
  attribute->rta_len = static_cast<uint16_t>(RTA_LENGTH(size));
  std::memcpy(RTA_DATA(attribute), data, size);
  request.header.nlmsg_len = NLMSG_ALIGN(request.header.nlmsg_len) + RTA_ALIGN(attribute->rta_len);
}

// One request, one answer; the answer's payload (after the netlink header) in `answer`.
absl::StatusOr<size_t> Exchange(Request& request, char (&answer)[kBuffer]) {
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("netlink socket: ", std::strerror(errno)));
  timeval timeout{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  request.header.nlmsg_flags = NLM_F_REQUEST;
  request.header.nlmsg_seq = 1;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t n = ::sendto(fd, &request, request.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel));
  if (n >= 0) n = ::recv(fd, answer, sizeof(answer), 0);
  const int error = errno;
  ::close(fd);
  if (n < 0) return absl::UnavailableError(absl::StrCat("netlink: ", std::strerror(error)));
  const auto* header = reinterpret_cast<const nlmsghdr*>(answer);
  if (!NLMSG_OK(header, static_cast<unsigned>(n))) return absl::UnavailableError("netlink: short answer");
  if (header->nlmsg_type == NLMSG_ERROR) {
    const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
    if (err->error == -ENOENT || err->error == -ENETUNREACH || err->error == -EHOSTUNREACH) {
      return absl::NotFoundError(absl::StrCat("netlink: ", std::strerror(-err->error)));
    }
    return absl::UnavailableError(absl::StrCat("netlink: ", std::strerror(-err->error)));
  }
  return static_cast<size_t>(n);
}

}  // namespace

absl::StatusOr<NextHop> ResolveNextHop(uint32_t destination, uint32_t source) {
  char answer[kBuffer];
  NextHop hop;
  hop.via = destination;
  {
    Request request{};
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
    request.header.nlmsg_type = RTM_GETROUTE;
    request.route.rtm_family = AF_INET;
    request.route.rtm_dst_len = 32;
    AddAttribute(request, RTA_DST, &destination, sizeof(destination));
    if (source != 0) {
      request.route.rtm_src_len = 32;
      AddAttribute(request, RTA_SRC, &source, sizeof(source));
    }
    auto n = Exchange(request, answer);
    if (!n.ok()) return n.status();
    const auto* header = reinterpret_cast<const nlmsghdr*>(answer);
    const auto* route = static_cast<const rtmsg*>(NLMSG_DATA(header));
    int length = static_cast<int>(RTM_PAYLOAD(header));
    for (auto* a = RTM_RTA(route); RTA_OK(a, length); a = RTA_NEXT(a, length)) {
      if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= sizeof(int)) std::memcpy(&hop.ifindex, RTA_DATA(a), sizeof(int));
      if (a->rta_type == RTA_GATEWAY && RTA_PAYLOAD(a) >= sizeof(uint32_t)) std::memcpy(&hop.via, RTA_DATA(a), 4);
    }
    if (hop.ifindex <= 0) return absl::NotFoundError("no route");
  }
  Request request{};
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof(ndmsg));
  request.header.nlmsg_type = RTM_GETNEIGH;
  request.neighbour.ndm_family = AF_INET;
  request.neighbour.ndm_ifindex = hop.ifindex;
  AddAttribute(request, NDA_DST, &hop.via, sizeof(hop.via));
  auto n = Exchange(request, answer);
  if (!n.ok()) return n.status();
  const auto* header = reinterpret_cast<const nlmsghdr*>(answer);
  const auto* neighbour = static_cast<const ndmsg*>(NLMSG_DATA(header));
  constexpr uint16_t kUsable = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;
  if (!(neighbour->ndm_state & kUsable)) return absl::NotFoundError("neighbour not resolved yet");
  int length = static_cast<int>(header->nlmsg_len - NLMSG_LENGTH(sizeof(ndmsg)));
  for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(neighbour) + NLMSG_ALIGN(sizeof(ndmsg)));
       RTA_OK(a, length); a = RTA_NEXT(a, length)) {
    if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == hop.mac.size()) {
      std::memcpy(hop.mac.data(), RTA_DATA(a), hop.mac.size());
      return hop;
    }
  }
  return absl::NotFoundError("neighbour has no link-layer address");
}

}  // namespace latchkey::relay
