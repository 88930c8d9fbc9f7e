// Parses arbitrary bytes as RESP, what a Redis server (or something impersonating one on the store's
// address) sends control, and classifies every error reply. Nothing may crash, and every reply must
// come out as one of the value types with arrays no deeper than the reader allows.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "services/control/store/redis/redis_reply.h"

namespace redis = latchkey::control::redis;

namespace {

int Depth(const redis::RedisReply& reply) {
  int deepest = 0;
  for (const redis::RedisReply& element : reply.elements) {
    const int d = Depth(element);
    if (d > deepest) deepest = d;
  }
  return deepest + 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  auto replies = redis::ParseResp(input);
  if (!replies.ok()) return 0;
  for (const redis::RedisReply& reply : *replies) {
    if (Depth(reply) > 16) {  // hiredis's reader nests at most 7 levels
      std::fprintf(stderr, "reply nested %d deep\n", Depth(reply));
      std::abort();
    }
    if (reply.is_error()) (void)redis::ClassifyError(reply);
    (void)reply.DebugString();
  }
  return 0;
}
