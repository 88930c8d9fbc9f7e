#pragma once
// Prometheus /metrics over HTTP for a registry (prometheus-cpp's civetweb-based Exposer).
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"

namespace latchkey::metrics {

class MetricsServer {
 public:
  // Binds `listen` (HOST:PORT; port 0 picks a free one). UNAVAILABLE if the address cannot be bound.
  // `extra` collectables (counters summed at scrape time) are served beside the registry.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen, std::shared_ptr<prometheus::Registry> registry,
      std::vector<std::shared_ptr<prometheus::Collectable>> extra = {});
  // The port actually bound.
  int port() const { return port_; }

 private:
  MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, int port,
                std::vector<std::shared_ptr<prometheus::Collectable>> collectables)
      : exposer_(std::move(exposer)), port_(port), collectables_(std::move(collectables)) {}
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;  // the exposer holds weak refs
};

}  // namespace latchkey::metrics
