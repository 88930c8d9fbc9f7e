// minimal_ng_server: the floor under any ng media server, as a yardstick for latchkey-control's front
// door in bench-ng.sh (target "minimal"). One thread, one blocking UDP socket. Each request is
// decoded and its reply encoded with the project's bencode codec; an offer opens and binds
// --sockets_per_call UDP sockets on the next free ports of the range (what any relay must do before
// its SDP can name a port: rtpengine binds RTP and RTCP for both legs) and answers with the request's
// own SDP; an answer answers with its SDP; a delete closes the call's sockets. No SDP rewrite, no
// latching, no state beyond the sockets, no media: what it costs per call is protocol, kernel and
// socket work that a real server cannot avoid. Counters go to stderr on SIGINT/SIGTERM.
//   minimal_ng_server --listen_port=2228 --port_min=20000 --port_max=31999
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/string_view.h"
#include "services/control/ng/bencode.h"

ABSL_FLAG(int, listen_port, 2228, "UDP port on 127.0.0.1 for ng requests");
ABSL_FLAG(int, port_min, 20000, "First media port to bind");
ABSL_FLAG(int, port_max, 31999, "Last media port to bind");
ABSL_FLAG(int, sockets_per_call, 4, "UDP sockets an offer opens and binds (0: protocol only)");

namespace {

namespace ng = latchkey::control::ng;

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

struct Counters {
  uint64_t requests = 0, bad = 0, bind_failures = 0;
};

class Ports {
 public:
  Ports(int min, int max) : min_(min), max_(max), next_(min) {}

  // Binds a fresh socket to the next port that is free; -1 when a whole lap found none.
  int Bind() {
    for (int tries = 0; tries <= max_ - min_; ++tries) {
      const int port = next_;
      next_ = next_ == max_ ? min_ : next_ + 1;
      const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) return -1;
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(static_cast<uint16_t>(port));
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) return fd;
      ::close(fd);
    }
    return -1;
  }

 private:
  int min_, max_, next_;
};

std::string Text(const ng::Value& request, absl::string_view key) {
  const ng::Value* value = request.Find(key);
  return value != nullptr && value->is_string() ? value->string() : std::string();
}

// The reply's bencode for one decoded request; `calls` holds each offered call's sockets.
ng::Value Handle(const ng::Value& request, Ports& ports, absl::flat_hash_map<std::string, std::vector<int>>& calls,
                 Counters& counters) {
  ng::Value reply = ng::Value::Dictionary();
  const std::string command = Text(request, "command");
  const std::string call = Text(request, "call-id") + '\n' + Text(request, "from-tag");
  if (command == "offer" || command == "answer") {
    if (command == "offer" && !calls.contains(call)) {
      std::vector<int>& fds = calls[call];
      for (int i = 0; i < absl::GetFlag(FLAGS_sockets_per_call); ++i) {
        const int fd = ports.Bind();
        if (fd < 0) {
          ++counters.bind_failures;
          reply.Set("result", ng::Value::String("error"));
          reply.Set("error-reason", ng::Value::String("Ran out of ports"));
          return reply;
        }
        fds.push_back(fd);
      }
    }
    reply.Set("sdp", ng::Value::String(Text(request, "sdp")));
  } else if (command == "delete") {
    if (auto it = calls.find(call); it != calls.end()) {
      for (int fd : it->second) ::close(fd);
      calls.erase(it);
    }
  }
  reply.Set("result", ng::Value::String(command == "ping" ? "pong" : "ok"));
  return reply;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(absl::GetFlag(FLAGS_listen_port)));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    std::perror("minimal_ng_server: bind");
    return 1;
  }
  timeval tick{0, 200000};  // wake up to notice a signal
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof(tick));

  Ports ports(absl::GetFlag(FLAGS_port_min), absl::GetFlag(FLAGS_port_max));
  absl::flat_hash_map<std::string, std::vector<int>> calls;
  Counters counters;
  std::vector<char> buffer(65536);
  while (!g_stop) {
    sockaddr_in peer{};
    socklen_t peer_size = sizeof(peer);
    const ssize_t n = ::recvfrom(fd, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&peer), &peer_size);
    if (n <= 0) continue;
    ++counters.requests;
    const absl::string_view datagram(buffer.data(), static_cast<size_t>(n));
    const size_t space = datagram.find(' ');
    if (space == absl::string_view::npos) {
      ++counters.bad;
      continue;
    }
    auto request = ng::Decode(datagram.substr(space + 1));
    std::string out(datagram.substr(0, space + 1));
    if (!request.ok() || !request->is_dictionary()) {
      ++counters.bad;
      ng::Value error = ng::Value::Dictionary();
      error.Set("result", ng::Value::String("error"));
      error.Set("error-reason", ng::Value::String("bad request"));
      out += ng::Encode(error);
    } else {
      out += ng::Encode(Handle(*request, ports, calls, counters));
    }
    ::sendto(fd, out.data(), out.size(), 0, reinterpret_cast<const sockaddr*>(&peer), peer_size);
  }
  std::fprintf(stderr, "minimal_ng_server: requests=%llu bad=%llu bind_failures=%llu calls_open=%zu\n",
               static_cast<unsigned long long>(counters.requests), static_cast<unsigned long long>(counters.bad),
               static_cast<unsigned long long>(counters.bind_failures), calls.size());
  return 0;
}
