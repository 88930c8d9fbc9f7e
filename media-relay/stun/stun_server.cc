#include "media-relay/stun/stun_server.h"

#include <poll.h>
#include <sys/socket.h>

#include <array>

#include "media-relay/stun/stun_responder.h"

namespace latchkey::relay {
namespace {

constexpr int kBatch = 32;
constexpr size_t kMaxRequest = 548;   // RFC 8489: requests fit an unfragmented IPv4 datagram
constexpr size_t kMaxAnswer = 128;    // a success or 420 answer is well below this
constexpr int kPollMs = 200;          // how soon Stop is noticed

}  // namespace

absl::StatusOr<std::unique_ptr<StunServer>> StunServer::Start(const net::SocketAddress& listen,
                                                              prometheus::Registry& registry) {
  auto socket = UdpSocket::Bind(listen.ip, listen.port);
  if (!socket.ok()) return socket.status();
  return std::unique_ptr<StunServer>(new StunServer(*std::move(socket), registry));
}

StunServer::StunServer(UdpSocket socket, prometheus::Registry& registry) : socket_(std::move(socket)) {
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  ::getsockname(socket_.fd(), reinterpret_cast<sockaddr*>(&bound), &length);
  if (auto address = net::SocketAddress::FromSockaddr(bound); address.ok()) port_ = address->port;
  auto& requests = prometheus::BuildCounter()
                       .Name("latchkey_stun_requests_total")
                       .Help("STUN datagrams on the responder port, by result")
                       .Register(registry);
  answered_ = &requests.Add({{"result", "answered"}});
  refused_ = &requests.Add({{"result", "refused"}});
  send_errors_ = &requests.Add({{"result", "send_error"}});
  thread_ = std::thread([this] { Run(); });
}

StunServer::~StunServer() {
  running_ = false;
  if (thread_.joinable()) thread_.join();
}

void StunServer::Run() {
  std::array<std::array<uint8_t, kMaxRequest>, kBatch> requests;
  std::array<std::array<uint8_t, kMaxAnswer>, kBatch> answers;
  std::array<sockaddr_storage, kBatch> peers;
  std::array<iovec, kBatch> in_iov, out_iov;
  std::array<mmsghdr, kBatch> in{}, out{};
  for (int i = 0; i < kBatch; ++i) {
    in_iov[i] = {requests[i].data(), requests[i].size()};
    in[i].msg_hdr.msg_iov = &in_iov[i];
    in[i].msg_hdr.msg_iovlen = 1;
    in[i].msg_hdr.msg_name = &peers[i];
  }
  while (running_.load(std::memory_order_relaxed)) {
    pollfd fd{socket_.fd(), POLLIN, 0};
    if (::poll(&fd, 1, kPollMs) <= 0) continue;
    for (int i = 0; i < kBatch; ++i) in[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    const int received = ::recvmmsg(socket_.fd(), in.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (received <= 0) continue;
    int answers_ready = 0;
    for (int i = 0; i < received; ++i) {
      auto source = net::SocketAddress::FromSockaddr(peers[i]);
      if (!source.ok() || (in[i].msg_hdr.msg_flags & MSG_TRUNC)) {
        refused_->Increment();
        continue;
      }
      auto length = stun::AnswerBindingRequest(absl::MakeConstSpan(requests[i].data(), in[i].msg_len), *source,
                                               absl::MakeSpan(answers[answers_ready]));
      if (!length.ok()) {
        refused_->Increment();  // not a Binding request: never answered, so never an amplifier
        continue;
      }
      mmsghdr& message = out[answers_ready];
      out_iov[answers_ready] = {answers[answers_ready].data(), *length};
      message.msg_hdr = {};
      message.msg_hdr.msg_iov = &out_iov[answers_ready];
      message.msg_hdr.msg_iovlen = 1;
      message.msg_hdr.msg_name = &peers[i];
      message.msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
      ++answers_ready;
    }
    int done = 0;
    while (done < answers_ready) {
      const int sent = ::sendmmsg(socket_.fd(), out.data() + done, answers_ready - done, MSG_DONTWAIT);
      if (sent <= 0) {
        send_errors_->Increment();
        ++done;
        continue;
      }
      answered_->Increment(sent);
      done += sent;
    }
  }
}

}  // namespace latchkey::relay
