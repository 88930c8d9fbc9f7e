#pragma once
// Phones behind NAT for keepalive tests: UDP sockets on loopback that record what reaches them and
// answer OPTIONS like a SIP UA. The NAT is the identity here: a binding's source is the socket's
// address.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/time/proto_time.h"
#include "gtest/gtest.h"
#include "latchkey/v1/nat_control.pb.h"
#include "tests/integration/support/cluster.h"
#include "tests/support/sip_phone.h"

namespace latchkey::testing {

struct Received {
  absl::Time at;
  std::string from;  // ip:port
  std::string text;
};

// UDP sockets playing phones behind NAT (the NAT is the identity here: the binding's source is the
// socket's address). One thread receives on all of them and, while answering, replies 200 OK to
// every OPTIONS at its source address, copying Via, From, To (adding a tag), Call-ID and CSeq.
class Phones {
 public:
  explicit Phones(int count, const std::string& ip = "127.0.0.1") : ip_(ip) {
    for (int i = 0; i < count; ++i) {
      const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
      if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        ADD_FAILURE() << "cannot bind a phone on " << ip << ": " << std::strerror(errno);
      }
      socklen_t length = sizeof(a);
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &length);
      fds_.push_back(fd);
      ports_.push_back(ntohs(a.sin_port));
    }
    received_.resize(fds_.size());
    thread_ = std::thread([this] { Run(); });
  }
  ~Phones() {
    stop_ = true;
    thread_.join();
    for (int fd : fds_) ::close(fd);
  }

  int size() const { return static_cast<int>(fds_.size()); }
  uint16_t port(int i) const { return ports_[i]; }
  const std::string& ip() const { return ip_; }
  void SetAnswering(bool on) { answering_ = on; }

  std::vector<Received> received(int i) const {
    absl::MutexLock lock(&mu_);
    return received_[i];
  }
  // OPTIONS requests phone `i` got at or after `since`.
  std::vector<Received> Options(int i, absl::Time since = absl::InfinitePast()) const {
    std::vector<Received> out;
    for (Received& r : received(i)) {
      if (r.at >= since && absl::StartsWith(r.text, "OPTIONS ")) out.push_back(std::move(r));
    }
    return out;
  }
  size_t answers_sent() const { return answers_sent_.load(); }

 private:
  void Run() {
    std::vector<pollfd> polls;
    for (int fd : fds_) polls.push_back({fd, POLLIN, 0});
    while (!stop_) {
      if (::poll(polls.data(), polls.size(), 20) <= 0) continue;
      for (size_t i = 0; i < polls.size(); ++i) {
        if (!(polls[i].revents & POLLIN)) continue;
        char buffer[4096];
        sockaddr_in from{};
        socklen_t from_length = sizeof(from);
        const ssize_t n =
            ::recvfrom(fds_[i], buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr*>(&from), &from_length);
        if (n < 0) continue;
        char ip[INET_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET, &from.sin_addr, ip, sizeof(ip));
        Received r{absl::Now(), absl::StrCat(ip, ":", ntohs(from.sin_port)), std::string(buffer, n)};
        if (answering_ && absl::StartsWith(r.text, "OPTIONS ")) {
          const std::string answer = AnswerLikeAPhone(r.text, "SIP/2.0 200 OK",
                                                                "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n");
          if (::sendto(fds_[i], answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from), from_length) > 0) {
            ++answers_sent_;
          }
        }
        absl::MutexLock lock(&mu_);
        received_[i].push_back(std::move(r));
      }
    }
  }

  const std::string ip_;
  std::vector<int> fds_;
  std::vector<uint16_t> ports_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> answering_{true};
  std::atomic<size_t> answers_sent_{0};
  mutable absl::Mutex mu_;
  std::vector<std::vector<Received>> received_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// A REGISTER of `user` from a phone behind NAT at `source_ip`:`source_port`, to a registrar on
// loopback.
inline v1::AllocateBindingRequest NatedPhone(const std::string& user, const std::string& source_ip, uint16_t source_port,
                                      uint16_t registrar_port = 5060) {
  v1::AllocateBindingRequest request;
  request.set_aor(absl::StrCat("sip:", user, "@example.com"));
  request.set_contact(absl::StrCat("<sip:", user, "@192.168.1.5:5060>"));
  request.set_transport(v1::TRANSPORT_UDP);
  *request.mutable_source() = Address(source_ip, source_port);
  *request.mutable_registrar() = Address("127.0.0.1", registrar_port);
  request.set_via("SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bK-reg-1;rport");
  *request.mutable_expires() = ToProto(absl::Seconds(3600));
  request.set_user_agent("Yealink SIP-T46S 66.86.0.15");
  return request;
}

}  // namespace latchkey::testing
