// Arbitrary bytes through the STUN codec (what a relay's STUN client, and later its responder, read
// from the network). Properties: no out-of-bounds read (ASan in the fuzz preset); whatever parses
// is internally consistent; a parsed success response's reflexive address re-encodes (XOR-MAPPED-
// and MAPPED-ADDRESS, with FINGERPRINT) and re-parses to the same value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/net/socket_address.h"
#include "media-relay/stun/stun_message.h"

namespace stun = latchkey::relay::stun;
namespace net = latchkey::net;

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

bool Within(const uint8_t* data, size_t size, const char* p, size_t n) {
  const auto* q = reinterpret_cast<const uint8_t*>(p);
  return n == 0 || (q >= data && q + n <= data + size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stun::ParseError error = stun::ParseError::kNone;
  const auto message = stun::Parse(data, size, &error);
  if (!message) {
    Check(error != stun::ParseError::kNone);
    return 0;
  }
  Check(error == stun::ParseError::kNone);
  Check(size >= stun::kHeaderSize && size % 4 == 0);
  Check(stun::MessageType(message->method, message->message_class) == message->type);
  if (message->has_fingerprint) Check(size >= stun::kHeaderSize + 8);
  if (message->software) Check(Within(data, size, message->software->data(), message->software->size()));
  if (message->error_code) {
    Check(message->error_code->code >= 300 && message->error_code->code <= 699);
    Check(Within(data, size, message->error_code->reason.data(), message->error_code->reason.size()));
  }

  if (message->message_class == stun::MessageClass::kSuccessResponse) {
    if (const auto reflexive = message->reflexive_address()) {
      const std::vector<uint8_t> success = stun::BindingSuccess(message->transaction_id, *reflexive);
      const auto again = stun::Parse(success.data(), success.size());
      Check(again.has_value() && again->has_fingerprint);
      Check(again->transaction_id == message->transaction_id);
      Check(again->xor_mapped_address == reflexive);

      const std::vector<uint8_t> legacy =
          stun::MessageBuilder(stun::kBindingSuccess, message->transaction_id).AddMappedAddress(*reflexive).Finish();
      const auto legacy_again = stun::Parse(legacy.data(), legacy.size());
      Check(legacy_again.has_value() && legacy_again->mapped_address == reflexive);
      Check(legacy_again->reflexive_address() == reflexive);
    }
  }
  return 0;
}
