#include "media-relay/metrics/engine_collector.h"

#include <functional>

#include "prometheus/metric_family.h"

namespace latchkey::relay {
namespace {

class EngineCollector : public prometheus::Collectable {
 public:
  explicit EngineCollector(const PacketEngine* engine) : engine_(engine) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using Field = const std::atomic<uint64_t> EngineCounters::*;
    auto sum = [this](const std::function<const std::atomic<uint64_t>&(const EngineCounters&)>& field) {
      double total = 0;
      for (int t = 0; t < engine_->thread_count(); ++t) total += field(engine_->counters(t)).load(std::memory_order_relaxed);
      return total;
    };
    auto counter = [](const char* name, const char* help) {
      prometheus::MetricFamily family;
      family.name = name;
      family.help = help;
      family.type = prometheus::MetricType::Counter;
      return family;
    };
    auto add = [](prometheus::MetricFamily& family, double value, std::vector<prometheus::ClientMetric::Label> labels) {
      prometheus::ClientMetric metric;
      metric.label = std::move(labels);
      metric.counter.value = value;
      family.metric.push_back(std::move(metric));
    };
    auto by = [&](Field field) { return sum([field](const EngineCounters& c) -> const std::atomic<uint64_t>& { return c.*field; }); };

    std::vector<prometheus::MetricFamily> out;
    auto packets = counter("latchkey_relay_packets_total", "RTP/RTCP packets, received from endpoints (in) and sent to them (out)");
    add(packets, by(&EngineCounters::packets_in), {{"direction", "in"}});
    add(packets, by(&EngineCounters::packets_out), {{"direction", "out"}});
    out.push_back(std::move(packets));
    auto bytes = counter("latchkey_relay_bytes_total", "UDP payload bytes, in and out");
    add(bytes, by(&EngineCounters::bytes_in), {{"direction", "in"}});
    add(bytes, by(&EngineCounters::bytes_out), {{"direction", "out"}});
    out.push_back(std::move(bytes));
    auto drops = counter("latchkey_relay_drops_total", "Packets received and not forwarded, by reason");
    for (size_t r = 1; r < static_cast<size_t>(DropReason::kCount); ++r) {  // 1: kNone is no drop
      add(drops, sum([r](const EngineCounters& c) -> const std::atomic<uint64_t>& { return c.drops[r]; }),
          {{"reason", std::string(DropReasonName(static_cast<DropReason>(r)))}});
    }
    out.push_back(std::move(drops));
    auto latches = counter("latchkey_relay_latches_total", "Legs that latched onto their endpoint's source");
    add(latches, by(&EngineCounters::latches), {});
    out.push_back(std::move(latches));
    auto relatches = counter("latchkey_relay_relatches_total", "Latched legs that moved to a new source");
    add(relatches, by(&EngineCounters::relatches), {});
    out.push_back(std::move(relatches));
    auto contests = counter("latchkey_relay_latch_contests_total",
                            "Sources that completed a probation on a latched leg and were refused the lock");
    add(contests, by(&EngineCounters::contests), {});
    out.push_back(std::move(contests));
    auto suppressed = counter("latchkey_relay_contest_reports_suppressed_total",
                              "Contests counted but not reported to control (over the per-thread report rate)");
    add(suppressed, by(&EngineCounters::contest_reports_suppressed), {});
    out.push_back(std::move(suppressed));
    auto timeouts = counter("latchkey_relay_media_timeouts_total", "Sessions silent for their media timeout");
    add(timeouts, by(&EngineCounters::media_timeouts), {});
    out.push_back(std::move(timeouts));
    auto finals = counter("latchkey_relay_final_timeouts_total", "Sessions that reached their final timeout");
    add(finals, by(&EngineCounters::final_timeouts), {});
    out.push_back(std::move(finals));
    auto batches = counter("latchkey_relay_receive_batches_total",
                           "Receive rounds that returned packets (recvmmsg calls or io_uring rounds)");
    add(batches, by(&EngineCounters::recv_batches), {});
    out.push_back(std::move(batches));
    return out;
  }

 private:
  const PacketEngine* engine_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeEngineCollector(const PacketEngine* engine) {
  return std::make_shared<EngineCollector>(engine);
}

}  // namespace latchkey::relay
