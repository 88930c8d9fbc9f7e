#pragma once
// Exposes the packet threads' counters as Prometheus series, summed at scrape time, so the hot path
// never touches a metrics library.
#include <memory>

#include "media-relay/engine/packet_engine.h"
#include "prometheus/collectable.h"

namespace latchkey::relay {

std::shared_ptr<prometheus::Collectable> MakeEngineCollector(const PacketEngine* engine);

}  // namespace latchkey::relay
