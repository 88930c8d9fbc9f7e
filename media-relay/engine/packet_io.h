#pragma once
// How a packet thread waits for datagrams and moves them. Two ways, chosen at start:
// - epoll: recvmmsg / sendmmsg per socket. Below saturation each socket holds one packet per
//   wake-up (a socket carries one 50 packets/s stream), so every packet costs a receive and a send.
// - io_uring: a multishot receive on every socket fills a ring of provided buffers, and the packets
//   accepted leave as send requests from those buffers; a whole round's sends and the wait for the
//   next round are one system call, whatever the load.
// Either hands each datagram to the thread's router (EngineThread::Route) and sends what it accepts.
#include <memory>

#include "absl/time/time.h"
#include "media-relay/engine/relay_stream.h"

namespace latchkey::relay {

enum class PacketIoMode { kAuto, kEpoll, kIoUring };

class PacketIo {
 public:
  virtual ~PacketIo() = default;

  // Starts receiving on the stream's four sockets (its tags are set).
  virtual void Watch(RelayStream& stream) = 0;
  // Stops receiving; keeps the stream alive for as long as the kernel may still refer to it.
  virtual void Unwatch(std::shared_ptr<RelayStream> stream) = 0;
  // Waits up to `timeout` for datagrams or a wake-up, routes and sends what arrived. Returns whether
  // the thread's wake-up descriptor fired.
  virtual bool RunOnce(absl::Duration timeout) = 0;
  virtual const char* name() const = 0;
};

}  // namespace latchkey::relay
