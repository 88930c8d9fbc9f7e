// Parses arbitrary bytes as an ng datagram, what anyone who reaches the ng port can send control,
// and reads it as a command up to the session core (keys, flags, what it asks of the relay; no
// I/O). Nothing may crash; what parses must encode back to bytes that parse to the same value (the
// decoder and the encoder agree), and nesting stays within the limit.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "services/control/ng/bencode.h"
#include "services/control/ng/command.h"
#include "services/control/ng/message.h"
#include "services/control/ng/translate.h"

namespace ng = latchkey::control::ng;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  auto request = ng::ParseRequest(input);
  if (!request.ok()) {
    (void)ng::CookieOf(input);
    return 0;
  }
  const std::string bytes = ng::Encode(request->body);
  auto again = ng::Decode(bytes);
  if (!again.ok() || !(*again == request->body)) {
    std::fprintf(stderr, "re-encoded value does not decode to itself\n");
    std::abort();
  }
  (void)ng::FormatError(request->cookie, "fuzz");
  auto command = ng::ReadCommand(request->body);
  if (command.ok() && ng::RequireKeys(*command).ok()) (void)ng::Translate(*command, "127.0.0.1");
  return 0;
}
