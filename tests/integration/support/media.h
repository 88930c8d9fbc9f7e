#pragma once
// Calls with media for integration tests: a call placed through control's API, RTP streams sent at
// a phone's pace, and what to read off a received datagram.
#include <cstdint>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "latchkey/v1/nat_control.grpc.pb.h"
#include "tests/integration/support/cluster.h"
#include "tests/integration/support/udp_peer.h"

namespace latchkey::testing {

inline uint32_t SsrcOf(const Datagram& d) {
  return d.data.size() >= 12 ? (uint32_t{d.data[8]} << 24 | uint32_t{d.data[9]} << 16 | uint32_t{d.data[10]} << 8 | d.data[11])
                             : 0;
}
inline uint16_t SeqOf(const Datagram& d) { return d.data.size() >= 4 ? static_cast<uint16_t>(d.data[2] << 8 | d.data[3]) : 0; }

// Sends `count` RTP packets paced at 20 ms, like a G.711 phone.
inline void SendStream(UdpPeer& from, uint16_t to_port, uint32_t ssrc, uint16_t first_seq, int count) {
  for (int i = 0; i < count; ++i) {
    from.SendTo(to_port, RtpPacket(ssrc, static_cast<uint16_t>(first_seq + i), 160u * (first_seq + i)));
    absl::SleepFor(absl::Milliseconds(20));
  }
}

// The session as control reports it now (an empty one, with a test failure, if the call fails).
inline v1::Session GetSession(v1::NatControlService::Stub& stub, const std::string& id) {
  v1::GetSessionRequest request;
  request.set_session_id(id);
  v1::GetSessionResponse response;
  grpc::ClientContext context;
  const grpc::Status status = stub.GetSession(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.session();
}

struct Call {
  std::string id;
  uint16_t caller_relay = 0;
  uint16_t callee_relay = 0;
};

// Offered with `caller_sdp` (a NATed phone's private address by default) from signalling source
// 127.0.0.1:5060, answered by a callee whose SDP names 127.0.0.1:`callee_sdp_port`.
inline Call PlaceCall(v1::NatControlService::Stub& stub, const std::string& call_id, uint16_t callee_sdp_port,
                      absl::Duration media_timeout = absl::ZeroDuration(),
                      const std::string& caller_sdp = AudioSdp("192.168.1.20", 4000)) {
  Call call;
  v1::AllocateSessionRequest offer;
  offer.set_call_id(call_id);
  offer.set_from_tag("a");
  offer.set_sdp(caller_sdp);
  *offer.mutable_signaling_source() = Address("127.0.0.1", 5060);
  if (media_timeout > absl::ZeroDuration()) {
    offer.mutable_options()->mutable_media_timeout()->set_seconds(absl::ToInt64Seconds(media_timeout));
  }
  v1::AllocateSessionResponse offered;
  {
    grpc::ClientContext context;
    grpc::Status status = stub.AllocateSession(&context, offer, &offered);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  call.id = offered.session().session_id();
  v1::AnswerSessionRequest answer;
  answer.set_session_id(call.id);
  answer.set_to_tag("b");
  answer.set_sdp(AudioSdp("127.0.0.1", callee_sdp_port));
  *answer.mutable_signaling_source() = Address("127.0.0.1", 5062);
  v1::AnswerSessionResponse answered;
  grpc::ClientContext context;
  EXPECT_TRUE(stub.AnswerSession(&context, answer, &answered).ok());
  if (answered.session().caller().relay_size() > 0) {
    call.caller_relay = static_cast<uint16_t>(answered.session().caller().relay(0).rtp().port());
    call.callee_relay = static_cast<uint16_t>(answered.session().callee().relay(0).rtp().port());
  }
  return call;
}

}  // namespace latchkey::testing
