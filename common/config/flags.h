#pragma once
// Config precedence: defaults < --config file < flags set on the command line (or from the
// environment with --tryfromenv). This Abseil keeps "was it given" private, so a flag counts as set
// when it differs from its default: passing the default value explicitly leaves the file's value.
#include "absl/flags/flag.h"

namespace latchkey::config {

template <typename T>
bool FlagGiven(const absl::Flag<T>& flag) {
  const absl::CommandLineFlag& handle = absl::GetFlagReflectionHandle(flag);
  return handle.CurrentValue() != handle.DefaultValue();
}

}  // namespace latchkey::config
