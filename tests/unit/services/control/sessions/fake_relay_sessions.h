#pragma once
// A RelaySessions for unit tests: no worker is dialled. It places every session on one worker
// (PlaceOn), hands out deterministic relay endpoints from that worker's port range, records every
// call, can be told to fail Create/Update with a given status, and can hold one chosen call (the
// n-th of its kind) after it took effect until the test releases it, so that another writer can be
// interleaved at exactly that point.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/control/sessions/relay_sessions.h"

namespace latchkey::control {

enum class RelayOp { kCreate, kUpdate, kDelete, kStats };

struct RelayCall {
  RelayOp op = RelayOp::kCreate;
  std::string worker_id;
  std::string session_id;
  uint32_t streams = 0;
  uint32_t callee_family = 0;
  v1::SessionEventType reason = v1::SESSION_EVENT_TYPE_UNSPECIFIED;
  uint32_t ports = 0;
  uint64_t version = 0;  // Update: the store version the worker is told this state is
  // Create/Update: the session as the fake returned it (endpoints set); Stats: as passed in.
  v1::Session session;
};

class FakeRelaySessions : public RelaySessions {
 public:
  struct Worker {
    std::string ipv4;
    std::string ipv6;
    uint32_t port_min = 0;
    uint32_t next_port = 0;
  };

  FakeRelaySessions() { AddWorker("w1", "192.0.2.10", "2001:db8::10", 20000); }

  ~FakeRelaySessions() override {
    // Never leave a test thread blocked in the fake.
    absl::MutexLock lock(&mu_);
    for (auto& [key, block] : blocks_) block.released = true;
  }

  // Worker `id` hands out ports from `port_min` upwards, 4 per stream (caller RTP/RTCP, callee
  // RTP/RTCP), never reused.
  void AddWorker(const std::string& id, const std::string& ipv4, const std::string& ipv6, uint32_t port_min) {
    absl::MutexLock lock(&mu_);
    Worker worker;
    worker.ipv4 = ipv4;
    worker.ipv6 = ipv6;
    worker.port_min = port_min;
    worker.next_port = port_min;
    workers_[id] = worker;
    if (place_on_.empty()) place_on_ = id;
  }
  void PlaceOn(const std::string& id) {
    absl::MutexLock lock(&mu_);
    place_on_ = id;
  }
  // Every later Create / Update fails with `status` (OkStatus() to stop).
  void FailCreate(absl::Status status) {
    absl::MutexLock lock(&mu_);
    create_error_ = std::move(status);
  }
  void FailUpdate(absl::Status status) {
    absl::MutexLock lock(&mu_);
    update_error_ = std::move(status);
  }
  void SetDeleteConfirms(bool confirms) {
    absl::MutexLock lock(&mu_);
    delete_confirms_ = confirms;
  }
  void SetFinalFigures(const v1::DeleteRelaySessionResponse& figures) {
    absl::MutexLock lock(&mu_);
    final_figures_ = figures;
  }
  void SetStats(bool answers, const v1::GetRelaySessionResponse& figures) {
    absl::MutexLock lock(&mu_);
    stats_answer_ = answers;
    stats_ = figures;
  }

  // The `nth` (0-based, counted since the fake was made) call of `op` blocks once it took effect
  // (recorded, endpoints set) until Release(op, nth).
  void BlockCall(RelayOp op, int nth) {
    absl::MutexLock lock(&mu_);
    blocks_[{op, nth}] = Block{};
  }
  // Waits until that call is blocked; false after 10 s.
  bool WaitBlocked(RelayOp op, int nth) {
    absl::MutexLock lock(&mu_);
    const auto key = std::make_pair(op, nth);
    auto arrived = [this, key]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      auto it = blocks_.find(key);
      return it != blocks_.end() && it->second.arrived;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&arrived), absl::Seconds(10));
  }
  void Release(RelayOp op, int nth) {
    absl::MutexLock lock(&mu_);
    blocks_[{op, nth}].released = true;
  }

  std::vector<RelayCall> Calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  std::vector<RelayCall> Calls(RelayOp op) {
    absl::MutexLock lock(&mu_);
    std::vector<RelayCall> out;
    for (const RelayCall& call : calls_) {
      if (call.op == op) out.push_back(call);
    }
    return out;
  }
  size_t Count(RelayOp op) { return Calls(op).size(); }
  // Sessions created here and not deleted since.
  std::set<std::string> Live() {
    absl::MutexLock lock(&mu_);
    return live_;
  }

  absl::Status Create(v1::Session& session, uint32_t streams, uint32_t callee_family) override {
    absl::MutexLock lock(&mu_);
    RelayCall call;
    call.op = RelayOp::kCreate;
    call.streams = streams;
    call.callee_family = callee_family;
    call.session_id = session.session_id();
    if (!create_error_.ok()) {
      call.session = session;
      Record(std::move(call));
      return create_error_;
    }
    auto worker = workers_.find(place_on_);
    if (worker == workers_.end()) {
      Record(std::move(call));
      return absl::UnavailableError("no relay worker");
    }
    session.set_worker_id(worker->first);
    session.mutable_caller()->clear_relay();
    session.mutable_callee()->clear_relay();
    AddEndpoints(worker->second, session, streams, callee_family);
    live_.insert(session.session_id());
    versions_[session.session_id()] = 1;
    call.worker_id = session.worker_id();
    call.session = session;
    Record(std::move(call));
    return absl::OkStatus();
  }

  absl::Status Update(v1::Session& session, uint32_t streams, uint64_t version) override {
    absl::MutexLock lock(&mu_);
    RelayCall call;
    call.op = RelayOp::kUpdate;
    call.version = version;
    call.worker_id = session.worker_id();
    call.session_id = session.session_id();
    call.streams = streams;
    if (!update_error_.ok()) {
      call.session = session;
      Record(std::move(call));
      return update_error_;
    }
    auto worker = workers_.find(session.worker_id());
    if (worker == workers_.end()) {
      call.session = session;
      Record(std::move(call));
      return absl::UnavailableError(absl::StrCat("relay worker ", session.worker_id(), " unknown"));
    }
    // Like the relay: an update older than what the worker has is refused.
    uint64_t& held = versions_[session.session_id()];
    if (version < held) {
      call.session = session;
      Record(std::move(call));
      return absl::AbortedError(absl::StrCat("session.version: ", version, " is older than the relay's ", held));
    }
    held = version;
    // Existing streams keep their ports; added streams get new ones.
    AddEndpoints(worker->second, session, streams, session.callee().relay_size() > 0 ? FamilyOf(session.callee()) : 4);
    call.session = session;
    Record(std::move(call));
    return absl::OkStatus();
  }

  bool Delete(const std::string& worker_id, const std::string& session_id, v1::SessionEventType reason,
              uint32_t ports, v1::DeleteRelaySessionResponse* response) override {
    absl::MutexLock lock(&mu_);
    RelayCall call;
    call.op = RelayOp::kDelete;
    call.worker_id = worker_id;
    call.session_id = session_id;
    call.reason = reason;
    call.ports = ports;
    live_.erase(session_id);
    if (delete_confirms_) *response = final_figures_;
    Record(std::move(call));
    return delete_confirms_;
  }

  bool Stats(const v1::Session& session, v1::GetRelaySessionResponse* response) override {
    absl::MutexLock lock(&mu_);
    RelayCall call;
    call.op = RelayOp::kStats;
    call.worker_id = session.worker_id();
    call.session_id = session.session_id();
    call.session = session;
    if (stats_answer_) *response = stats_;
    Record(std::move(call));
    return stats_answer_;
  }

 private:
  struct Block {
    bool arrived = false;
    bool released = false;
  };

  static uint32_t FamilyOf(const v1::Leg& leg) {
    return leg.relay(0).rtp().ip().find(':') == std::string::npos ? 4 : 6;
  }

  static void SetAddress(v1::SocketAddress* address, const std::string& ip, uint32_t port) {
    address->set_ip(ip);
    address->set_port(port);
  }

  void AddEndpoints(Worker& worker, v1::Session& session, uint32_t streams, uint32_t callee_family)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    bool caller_v6 = false;
    if (session.caller().remote_size() > 0) {
      caller_v6 = session.caller().remote(0).sdp_rtp().ip().find(':') != std::string::npos;
    }
    const std::string& caller_ip = caller_v6 ? worker.ipv6 : worker.ipv4;
    const std::string& callee_ip = callee_family == 6 ? worker.ipv6 : worker.ipv4;
    for (uint32_t i = static_cast<uint32_t>(session.caller().relay_size()); i < streams; ++i) {
      const uint32_t port = worker.next_port;
      worker.next_port += kPortsPerStream;
      v1::RelayEndpoint* caller = session.mutable_caller()->add_relay();
      caller->set_media_index(i);
      SetAddress(caller->mutable_rtp(), caller_ip, port);
      SetAddress(caller->mutable_rtcp(), caller_ip, port + 1);
      v1::RelayEndpoint* callee = session.mutable_callee()->add_relay();
      callee->set_media_index(i);
      SetAddress(callee->mutable_rtp(), callee_ip, port + 2);
      SetAddress(callee->mutable_rtcp(), callee_ip, port + 3);
    }
  }

  // Records the call, then holds it if the test asked to.
  void Record(RelayCall call) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const auto key = std::make_pair(call.op, ordinals_[call.op]++);
    calls_.push_back(std::move(call));
    auto it = blocks_.find(key);
    if (it == blocks_.end()) return;
    it->second.arrived = true;
    auto released = [this, key]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return blocks_[key].released; };
    mu_.Await(absl::Condition(&released));
  }

  absl::Mutex mu_;
  std::map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);
  std::string place_on_ ABSL_GUARDED_BY(mu_);
  absl::Status create_error_ ABSL_GUARDED_BY(mu_);
  absl::Status update_error_ ABSL_GUARDED_BY(mu_);
  bool delete_confirms_ ABSL_GUARDED_BY(mu_) = true;
  v1::DeleteRelaySessionResponse final_figures_ ABSL_GUARDED_BY(mu_);
  bool stats_answer_ ABSL_GUARDED_BY(mu_) = true;
  v1::GetRelaySessionResponse stats_ ABSL_GUARDED_BY(mu_);
  std::vector<RelayCall> calls_ ABSL_GUARDED_BY(mu_);
  std::map<RelayOp, int> ordinals_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<RelayOp, int>, Block> blocks_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> live_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> versions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace latchkey::control
