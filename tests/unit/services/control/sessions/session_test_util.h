#pragma once
// What the session core tests share: request builders, and a fixture with the real parts (memory
// store, NAT detector, event hub, metrics, worker registry) around a FakeRelaySessions and a fake
// clock.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/time/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "services/control/metrics/control_metrics.h"
#include "services/control/nat/nat_detector.h"
#include "services/control/sessions/session_writer.h"
#include "services/control/store/memory_session_store.h"
#include "services/control/workers/worker_registry.h"
#include "tests/unit/services/control/sdp/sample_sdps.h"
#include "tests/unit/services/control/sessions/fake_relay_sessions.h"

namespace latchkey::control::session_test {

inline const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

inline v1::SocketAddress Address(const std::string& ip, uint32_t port) {
  v1::SocketAddress address;
  address.set_ip(ip);
  address.set_port(port);
  return address;
}

// The Yealink behind NAT (SDP 192.168.1.101, INVITE from 203.0.113.5).
inline v1::AllocateSessionRequest AllocateRequest(const std::string& call_id = "call-1",
                                                  const std::string& from_tag = "ft-1",
                                                  const std::string& sdp = sdp::samples::kYealinkOffer) {
  v1::AllocateSessionRequest request;
  request.set_call_id(call_id);
  request.set_from_tag(from_tag);
  request.set_sdp(sdp);
  *request.mutable_signaling_source() = Address("203.0.113.5", 5060);
  return request;
}

// FreeSWITCH answering from its public address: one audio stream.
inline v1::AnswerSessionRequest AnswerRequest(const std::string& session_id, const std::string& to_tag = "tt-1",
                                              const std::string& sdp = sdp::samples::kFreeswitchAnswer) {
  v1::AnswerSessionRequest request;
  request.set_session_id(session_id);
  request.set_to_tag(to_tag);
  request.set_sdp(sdp);
  *request.mutable_signaling_source() = Address("198.51.100.7", 5060);
  return request;
}

inline v1::UpdateSessionRequest UpdateRequest(const std::string& session_id, v1::Side side, const std::string& sdp) {
  v1::UpdateSessionRequest request;
  request.set_session_id(session_id);
  request.set_side(side);
  request.set_sdp(sdp);
  *request.mutable_signaling_source() =
      side == v1::SIDE_CALLER ? Address("203.0.113.5", 5060) : Address("198.51.100.7", 5060);
  return request;
}

// A live session as a worker or an earlier write left it, for tests that start from the store.
inline v1::Session LiveSession(const std::string& id, const std::string& worker_id = "w1",
                               const std::string& owner = "pbx/a", absl::Time created = kT0) {
  v1::Session session;
  session.set_session_id(id);
  session.set_owner(owner);
  session.set_call_id("call-" + id);
  session.set_state(v1::SESSION_STATE_OFFERED);
  session.set_worker_id(worker_id);
  session.mutable_caller()->set_tag("ft-" + id);
  v1::RelayEndpoint* caller = session.mutable_caller()->add_relay();
  caller->set_media_index(0);
  *caller->mutable_rtp() = Address("192.0.2.10", 20000);
  *caller->mutable_rtcp() = Address("192.0.2.10", 20001);
  v1::RelayEndpoint* callee = session.mutable_callee()->add_relay();
  callee->set_media_index(0);
  *callee->mutable_rtp() = Address("192.0.2.10", 20002);
  *callee->mutable_rtcp() = Address("192.0.2.10", 20003);
  *session.mutable_created_at() = ToProto(created);
  *session.mutable_updated_at() = ToProto(created);
  return session;
}

inline std::vector<v1::SessionEventType> Types(const std::vector<SessionEvent>& events) {
  std::vector<v1::SessionEventType> out;
  for (const SessionEvent& event : events) out.push_back(event.type());
  return out;
}

class SessionCoreFixture : public ::testing::Test {
 protected:
  SessionCoreFixture()
      : detector_(NatDetector::Create({}).value()),
        metrics_(registry_),
        workers_(WorkerRegistryOptions{}, &metrics_),
        writer_(&store_, &relay_, &metrics_, SessionTimeouts{}, [this] { return now_; }),
        log_position_(store_.LogTail().value()) {}

  v1::Session Stored(const std::string& id) {
    auto session = store_.Get(id);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? *session : v1::Session();
  }

  // Writes `session` as a new record (version 1) with the writer's expiry.
  v1::Session Put(const v1::Session& session) {
    v1::Session fresh = session;
    fresh.set_version(0);
    auto written = writer_.Write(fresh);
    EXPECT_TRUE(written.ok()) << written.status();
    return written.ok() ? *written : v1::Session();
  }

  // The watchers' events logged since the last call (or the fixture's start).
  std::vector<SessionEvent> Events() {
    std::vector<SessionEvent> out;
    auto page = store_.ReadLog(log_position_, 10'000);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) return out;
    for (auto& entry : page->entries) out.push_back(std::move(entry.value));
    log_position_ = page->next;
    return out;
  }

  absl::Time now_ = kT0;
  MemorySessionStore store_;
  FakeRelaySessions relay_;
  NatDetector detector_;
  prometheus::Registry registry_;
  ControlMetrics metrics_;
  WorkerRegistry workers_;
  SessionWriter writer_;
  std::string log_position_;
};

}  // namespace latchkey::control::session_test
