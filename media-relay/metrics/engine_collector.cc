#include "media-relay/metrics/engine_collector.h"

#include <functional>
#include <string>

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
    // path="kernel": forwarded by the fast path (every one is received and sent), folded in once a
    // second; path="socket": through the relay's sockets.
    auto packets = counter("latchkey_relay_packets_total",
                           "RTP/RTCP packets, received from endpoints (in) and sent to them (out), by path");
    const double kernel_packets = by(&EngineCounters::kernel_packets);
    add(packets, by(&EngineCounters::packets_in), {{"direction", "in"}, {"path", "socket"}});
    add(packets, by(&EngineCounters::packets_out), {{"direction", "out"}, {"path", "socket"}});
    add(packets, kernel_packets, {{"direction", "in"}, {"path", "kernel"}});
    add(packets, kernel_packets, {{"direction", "out"}, {"path", "kernel"}});
    out.push_back(std::move(packets));
    auto bytes = counter("latchkey_relay_bytes_total", "UDP payload bytes, in and out, by path");
    const double kernel_bytes = by(&EngineCounters::kernel_bytes);
    add(bytes, by(&EngineCounters::bytes_in), {{"direction", "in"}, {"path", "socket"}});
    add(bytes, by(&EngineCounters::bytes_out), {{"direction", "out"}, {"path", "socket"}});
    add(bytes, kernel_bytes, {{"direction", "in"}, {"path", "kernel"}});
    add(bytes, kernel_bytes, {{"direction", "out"}, {"path", "kernel"}});
    out.push_back(std::move(bytes));
    auto flows = counter("latchkey_relay_fast_path_flow_changes_total",
                         "Kernel fast path entries written (added), removed, and writes the kernel refused (failed)");
    add(flows, by(&EngineCounters::kernel_flows_added), {{"change", "added"}});
    add(flows, by(&EngineCounters::kernel_flows_removed), {{"change", "removed"}});
    add(flows, by(&EngineCounters::kernel_flow_errors), {{"change", "failed"}});
    out.push_back(std::move(flows));
    prometheus::MetricFamily mode;
    mode.name = "latchkey_relay_fast_path";
    mode.help = "The kernel fast path in force (1 for the mode: xdp, tc or off) and its entries";
    mode.type = prometheus::MetricType::Gauge;
    for (const char* name : {"xdp", "tc", "off"}) {
      prometheus::ClientMetric metric;
      metric.label = {{"mode", name}};
      metric.gauge.value = std::string(name) == engine_->fast_path_mode() ? 1 : 0;
      mode.metric.push_back(std::move(metric));
    }
    out.push_back(std::move(mode));
    prometheus::MetricFamily entries;
    entries.name = "latchkey_relay_fast_path_flows";
    entries.help = "Flow entries (latched leg directions) the kernel forwards";
    entries.type = prometheus::MetricType::Gauge;
    entries.metric.emplace_back();
    entries.metric.back().gauge.value = static_cast<double>(engine_->kernel_flows());
    out.push_back(std::move(entries));
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
