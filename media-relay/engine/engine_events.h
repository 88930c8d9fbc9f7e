#pragma once
// Latch, re-latch and media-timeout events leave the packet threads through this interface (rare:
// a few per call), to be reported to control.
#include <string>

#include "absl/time/time.h"
#include "common/net/socket_address.h"
#include "latchkey/v1/nat_control.pb.h"

namespace latchkey::relay {

struct EngineEvent {
  std::string session_id;
  v1::Side side = v1::SIDE_UNSPECIFIED;
  v1::SessionEventType type = v1::SESSION_EVENT_TYPE_UNSPECIFIED;
  net::SocketAddress source;
  absl::Time time;
};

class EngineEventSink {
 public:
  virtual ~EngineEventSink() = default;
  virtual void OnEngineEvent(EngineEvent event) = 0;
};

}  // namespace latchkey::relay
