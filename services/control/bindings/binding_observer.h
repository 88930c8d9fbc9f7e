#pragma once
// Binding changes, as the binding manager reports them to whoever follows bindings (keepalive
// assignment), without the manager knowing who that is.
#include "latchkey/v1/nat_control.pb.h"

namespace latchkey::control {

class BindingObserver {
 public:
  virtual ~BindingObserver() = default;
  // Stored (created or refreshed); `previous` is the record it replaced, if any.
  virtual void OnBindingStored(const v1::Binding* previous, const v1::Binding& binding) = 0;
  virtual void OnBindingRemoved(const v1::Binding& binding) = 0;
};

}  // namespace latchkey::control
