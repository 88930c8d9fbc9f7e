// Arbitrary bytes through the STUN codec and the Binding responder (what a relay's STUN client and
// responder read from the network). Properties: no out-of-bounds read (ASan in the fuzz preset);
// whatever parses is internally consistent; a parsed success response's reflexive address re-encodes
// (XOR-MAPPED- and MAPPED-ADDRESS, with FINGERPRINT) and re-parses to the same value; the responder
// answers exactly the Binding requests, its answer parses with the request's transaction id and
// either carries the source back or is the 420 for an unknown comprehension-required attribute.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

#include "common/net/socket_address.h"
#include "media-relay/stun/stun_message.h"
#include "media-relay/stun/stun_responder.h"

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

void CheckResponder(const uint8_t* data, size_t size, const std::optional<stun::Message>& request) {
  // Both families, and a v4-mapped source, which must come back as IPv4.
  static const net::SocketAddress kSources[] = {
      {net::IpAddress::V4(198, 51, 100, 7), 40000},
      {*net::IpAddress::Parse("2001:db8::7"), 51234},
      {*net::IpAddress::Parse("::ffff:192.0.2.9"), 1},
  };
  const bool is_binding_request = request && request->method == stun::kMethodBinding &&
                                  request->message_class == stun::MessageClass::kRequest;
  for (const net::SocketAddress& source : kSources) {
    uint8_t out[128];
    const auto answered = stun::AnswerBindingRequest(absl::MakeConstSpan(data, size), source, absl::MakeSpan(out));
    Check(answered.ok() == is_binding_request);
    if (!answered.ok()) {
      Check(answered.status().code() == absl::StatusCode::kInvalidArgument);
      continue;
    }
    Check(*answered <= sizeof(out));
    const auto response = stun::Parse(out, *answered);
    Check(response.has_value() && response->has_fingerprint);
    Check(response->transaction_id == request->transaction_id);
    if (request->unknown_required_attribute) {
      Check(response->type == stun::kBindingError && response->error_code && response->error_code->code == 420);
    } else {
      Check(response->type == stun::kBindingSuccess);
      Check(response->xor_mapped_address == net::SocketAddress{source.ip.Unmapped(), source.port});
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  stun::ParseError error = stun::ParseError::kNone;
  const auto message = stun::Parse(data, size, &error);
  CheckResponder(data, size, message);
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
