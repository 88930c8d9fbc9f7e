// minimal_forwarder: the simplest correct single-threaded userspace RTP relay, as a yardstick for
// latchkey-relay in relay_bench. Call i owns two ports on --ip: base+2i (the caller sends there) and
// base+2i+1 (the callee sends there). Each port learns its endpoint from the first packet it receives
// (naive latching: no probation, no security) and a packet arriving on one port of a call leaves
// through the other port towards that port's endpoint, once known. One epoll loop, recvmmsg in, one
// sendto per packet out. Counters go to stderr when SIGINT/SIGTERM stops it.
//   minimal_forwarder --calls=1000 --base_port=20000
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"

ABSL_FLAG(int, calls, 1000, "Calls to serve (2 ports each)");
ABSL_FLAG(int, base_port, 20000, "Port of call 0's caller side; call i uses base+2i and base+2i+1");
ABSL_FLAG(std::string, ip, "127.0.0.1", "IPv4 address to bind");

namespace {

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

constexpr int kBatch = 32;
constexpr int kMaxRounds = 4;  // per readable socket per wake-up, so one busy port cannot starve others
constexpr size_t kMaxPacket = 2048;

struct Port {
  int fd = -1;
  bool learned = false;
  sockaddr_in peer{};  // the endpoint that sends to this port (and receives from it)
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int calls = absl::GetFlag(FLAGS_calls);
  const int base = absl::GetFlag(FLAGS_base_port);
  if (calls < 1 || base < 1 || base + 2 * calls - 1 > 65535) {
    std::fprintf(stderr, "minimal_forwarder: ports %d..%d out of range\n", base, base + 2 * calls - 1);
    return 2;
  }
  in_addr ip{};
  if (::inet_pton(AF_INET, absl::GetFlag(FLAGS_ip).c_str(), &ip) != 1) {
    std::fprintf(stderr, "minimal_forwarder: bad --ip\n");
    return 2;
  }
  struct sigaction action{};
  action.sa_handler = OnSignal;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);

  const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<Port> ports(2 * static_cast<size_t>(calls));
  for (size_t i = 0; i < ports.size(); ++i) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr = ip;
    address.sin_port = htons(static_cast<uint16_t>(base + i));
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      std::fprintf(stderr, "minimal_forwarder: bind port %zu: %s\n", base + i, std::strerror(errno));
      return 1;
    }
    ports[i].fd = fd;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = i;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
      std::fprintf(stderr, "minimal_forwarder: epoll_ctl: %s\n", std::strerror(errno));
      return 1;
    }
  }
  std::fprintf(stderr, "minimal_forwarder ready calls=%d ports=%d-%zu\n", calls, base, base + ports.size() - 1);

  static uint8_t buffers[kBatch][kMaxPacket];
  mmsghdr messages[kBatch]{};
  iovec iov[kBatch];
  sockaddr_in from[kBatch];
  uint64_t received = 0, forwarded = 0, no_destination = 0, send_errors = 0, truncated = 0;
  std::vector<epoll_event> events(256);
  while (!g_stop) {
    const int n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), 500);
    for (int e = 0; e < n; ++e) {
      const size_t index = events[e].data.u64;
      Port& in = ports[index];
      Port& out = ports[index ^ 1];
      for (int round = 0; round < kMaxRounds; ++round) {
        for (int i = 0; i < kBatch; ++i) {
          iov[i] = {buffers[i], kMaxPacket};
          messages[i].msg_hdr = {};
          messages[i].msg_hdr.msg_iov = &iov[i];
          messages[i].msg_hdr.msg_iovlen = 1;
          messages[i].msg_hdr.msg_name = &from[i];
          messages[i].msg_hdr.msg_namelen = sizeof(from[i]);
        }
        const int got = ::recvmmsg(in.fd, messages, kBatch, MSG_DONTWAIT, nullptr);
        if (got <= 0) break;
        received += static_cast<uint64_t>(got);
        for (int i = 0; i < got; ++i) {
          if (messages[i].msg_hdr.msg_flags & MSG_TRUNC) {
            ++truncated;
            continue;
          }
          if (!in.learned && from[i].sin_family == AF_INET) {
            in.peer = from[i];
            in.learned = true;
          }
          if (!out.learned) {
            ++no_destination;
            continue;
          }
          const ssize_t sent = ::sendto(out.fd, buffers[i], messages[i].msg_len, MSG_DONTWAIT,
                                        reinterpret_cast<const sockaddr*>(&out.peer), sizeof(out.peer));
          if (sent < 0) {
            ++send_errors;
          } else {
            ++forwarded;
          }
        }
        if (got < kBatch) break;
      }
    }
  }
  std::fprintf(stderr,
               "minimal_forwarder stopped received=%llu forwarded=%llu no_destination=%llu send_errors=%llu "
               "truncated=%llu\n",
               static_cast<unsigned long long>(received), static_cast<unsigned long long>(forwarded),
               static_cast<unsigned long long>(no_destination), static_cast<unsigned long long>(send_errors),
               static_cast<unsigned long long>(truncated));
  return 0;
}
