#pragma once
// Reading the stores' change logs (Redis streams the binding and session functions append to):
// one FCALL that also tells a reader whether its position is still covered, which a plain XRANGE
// cannot (an id older than the trimmed part reads as if nothing had happened).
namespace latchkey::control::redis {

inline constexpr char kLogLibrary[] = "latchkey_logs_v1";

const char* LogFunctionsSource();

}  // namespace latchkey::control::redis
