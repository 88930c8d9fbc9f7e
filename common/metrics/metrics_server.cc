#include "common/metrics/metrics_server.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace latchkey::metrics {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen, std::shared_ptr<prometheus::Registry> registry,
    std::vector<std::shared_ptr<prometheus::Collectable>> extra) {
  // prometheus-cpp reports bind failures by throwing; keep exceptions from crossing this boundary.
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(listen, /*num_threads=*/1);
    exposer->RegisterCollectable(registry);
    for (const auto& collectable : extra) exposer->RegisterCollectable(collectable);
    auto ports = exposer->GetListeningPorts();
    const int port = ports.empty() ? 0 : ports.front();
    return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(exposer), port, std::move(extra)));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("metrics_listen ", listen, ": ", e.what()));
  }
}

}  // namespace latchkey::metrics
