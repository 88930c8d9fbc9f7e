#include "media-relay/ports/port_pool.h"

#include "absl/strings/str_cat.h"

namespace latchkey::relay {

absl::StatusOr<PortPool> PortPool::Create(uint32_t port_min, uint32_t port_max, absl::Duration quarantine) {
  if (port_min < 1024 || port_min % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("port_min must be even and >= 1024, got ", port_min));
  }
  if (port_max > 65535 || port_max <= port_min) {
    return absl::InvalidArgumentError(
        absl::StrCat("port_max must be > port_min and <= 65535, got ", port_max));
  }
  if (quarantine < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("port_quarantine must not be negative");
  }
  return PortPool(static_cast<uint16_t>(port_min), (port_max - port_min + 1) / 2, quarantine);
}

PortPool::PortPool(uint16_t first, uint32_t pairs, absl::Duration quarantine)
    : first_port_(first), total_pairs_(pairs), quarantine_(quarantine) {
  free_.reserve(pairs);
  for (uint32_t i = 0; i < pairs; ++i) free_.push_back(static_cast<uint16_t>(first + 2 * i));
}

void PortPool::Unquarantine(absl::Time now) {
  while (!quarantined_.empty() && quarantined_.front().first <= now) {
    free_.push_back(quarantined_.front().second);
    quarantined_.pop_front();
  }
}

absl::StatusOr<uint16_t> PortPool::Allocate(absl::Time now) {
  Unquarantine(now);
  if (free_.empty()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no free relay port pair (", total_pairs_, " pairs, ", quarantined_.size(), " quarantined)"));
  }
  size_t pick = absl::Uniform<size_t>(rng_, 0, free_.size());
  uint16_t port = free_[pick];
  free_[pick] = free_.back();
  free_.pop_back();
  return port;
}

void PortPool::Release(uint16_t rtp_port, absl::Time now) {
  quarantined_.emplace_back(now + quarantine_, rtp_port);
}

uint32_t PortPool::FreePairs(absl::Time now) {
  Unquarantine(now);
  return static_cast<uint32_t>(free_.size());
}

}  // namespace latchkey::relay
