#pragma once
// Every flag latchkeyctl understands. All are Abseil flags (typed values, help text); args.h decides
// which of them a given command accepts.
#include <cstdint>
#include <string>

#include "absl/flags/declare.h"
#include "absl/time/time.h"

// Global flags, accepted by every command.
ABSL_DECLARE_FLAG(std::string, server);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(absl::Duration, timeout);

// Command flags.
ABSL_DECLARE_FLAG(std::string, aor);
ABSL_DECLARE_FLAG(std::string, nat);
ABSL_DECLARE_FLAG(uint32_t, limit);
ABSL_DECLARE_FLAG(std::string, worker);
ABSL_DECLARE_FLAG(std::string, contact);
ABSL_DECLARE_FLAG(std::string, source);
ABSL_DECLARE_FLAG(std::string, registrar);
ABSL_DECLARE_FLAG(std::string, via);
ABSL_DECLARE_FLAG(std::string, transport);
ABSL_DECLARE_FLAG(absl::Duration, expires);
ABSL_DECLARE_FLAG(std::string, user_agent);
ABSL_DECLARE_FLAG(std::string, call_id);
ABSL_DECLARE_FLAG(uint32_t, count);
ABSL_DECLARE_FLAG(std::string, resume_token);
ABSL_DECLARE_FLAG(absl::Duration, duration);
ABSL_DECLARE_FLAG(std::string, caller_source);
ABSL_DECLARE_FLAG(std::string, callee_source);
ABSL_DECLARE_FLAG(uint32_t, packets);
ABSL_DECLARE_FLAG(std::string, from_tag);
ABSL_DECLARE_FLAG(std::string, to_tag);
ABSL_DECLARE_FLAG(std::string, sdp);
ABSL_DECLARE_FLAG(std::string, signaling_source);
ABSL_DECLARE_FLAG(std::string, latching_mode);
ABSL_DECLARE_FLAG(absl::Duration, media_timeout);
ABSL_DECLARE_FLAG(absl::Duration, delay);
