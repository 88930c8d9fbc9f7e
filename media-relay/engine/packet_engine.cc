#include "media-relay/engine/packet_engine.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "absl/time/clock.h"

namespace latchkey::relay {

PacketEngine::PacketEngine(int threads, EngineEventSink* sink, PacketIoMode io_mode, FastPath* fast_path)
    : fast_path_(fast_path) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    threads_.push_back(std::make_unique<EngineThread>(i, sink, io_mode, fast_path));
  }
}

PacketEngine::~PacketEngine() { Stop(); }

absl::Status PacketEngine::Start() {
  for (auto& thread : threads_) {
    if (absl::Status s = thread->Start(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void PacketEngine::Stop() {
  for (auto& thread : threads_) thread->Stop();
}

EngineThread& PacketEngine::ThreadFor(const std::string& session_id) {
  return *threads_[absl::HashOf(session_id) % threads_.size()];
}

void PacketEngine::Attach(std::shared_ptr<RelayStream> stream, LegTarget caller, LegTarget callee,
                          SessionTimeouts timeouts) {
  EngineThread& thread = ThreadFor(stream->session_id);
  thread.Post([&thread, stream = std::move(stream), caller = std::move(caller), callee = std::move(callee),
               timeouts]() mutable {
    stream->activity->timeouts = timeouts;
    thread.Attach(std::move(stream), caller, callee, absl::Now());
  });
}

void PacketEngine::Configure(std::shared_ptr<RelayStream> stream, LegTarget caller, LegTarget callee,
                             SessionTimeouts timeouts) {
  EngineThread& thread = ThreadFor(stream->session_id);
  thread.Post([&thread, stream = std::move(stream), caller = std::move(caller), callee = std::move(callee),
               timeouts] {
    stream->activity->timeouts = timeouts;
    thread.Configure(*stream, caller, callee, absl::Now());
  });
}

void PacketEngine::SetRelayRanges(std::shared_ptr<const RelayRanges> ranges) {
  for (auto& thread : threads_) {
    EngineThread* t = thread.get();
    t->Post([t, ranges] { t->SetRelayRanges(ranges); });
  }
}

void PacketEngine::Detach(std::shared_ptr<RelayStream> stream) {
  EngineThread& thread = ThreadFor(stream->session_id);
  thread.Post([&thread, stream = std::move(stream)] { thread.Detach(stream.get()); });
}

}  // namespace latchkey::relay
