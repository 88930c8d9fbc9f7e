#include "media-relay/stun/stun_responder.h"

#include <cstring>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "media-relay/stun/stun_message.h"

namespace latchkey::relay::stun {
namespace {

const char* ClassName(MessageClass message_class) {
  switch (message_class) {
    case MessageClass::kRequest: return "request";
    case MessageClass::kIndication: return "indication";
    case MessageClass::kSuccessResponse: return "success response";
    case MessageClass::kErrorResponse: return "error response";
  }
  return "unknown class";
}

// The RFC 3489 header: type Binding request, a length that fits the datagram, but bytes 4-7 are
// part of a 16-byte transaction id instead of the magic cookie.
bool LooksLikeClassicBindingRequest(absl::Span<const uint8_t> datagram) {
  if (datagram.size() < kHeaderSize) return false;
  const uint16_t type = static_cast<uint16_t>((datagram[0] << 8) | datagram[1]);
  const size_t length = static_cast<size_t>((datagram[2] << 8) | datagram[3]);
  return type == kBindingRequest && length == datagram.size() - kHeaderSize;
}

absl::StatusOr<size_t> CopyOut(const std::vector<uint8_t>& response, absl::Span<uint8_t> out) {
  if (response.size() > out.size()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("STUN response needs ", response.size(), " bytes, output buffer has ", out.size()));
  }
  std::memcpy(out.data(), response.data(), response.size());
  return response.size();
}

}  // namespace

absl::StatusOr<size_t> AnswerBindingRequest(absl::Span<const uint8_t> datagram, const net::SocketAddress& source,
                                            absl::Span<uint8_t> out) {
  ParseError error = ParseError::kNone;
  const std::optional<Message> request = Parse(datagram.data(), datagram.size(), &error);
  if (!request) {
    if (error == ParseError::kNotStun && LooksLikeClassicBindingRequest(datagram)) {
      return absl::InvalidArgumentError("classic RFC 3489 Binding request (no magic cookie): not answered");
    }
    return absl::InvalidArgumentError(absl::StrCat("not a valid STUN message: ", ParseErrorName(error)));
  }
  if (request->method != kMethodBinding) {
    return absl::InvalidArgumentError(absl::StrFormat("not a Binding request: method 0x%03x", request->method));
  }
  if (request->message_class != MessageClass::kRequest) {
    // RFC 8489: indications and responses are never answered.
    return absl::InvalidArgumentError(
        absl::StrCat("not a Binding request: a Binding ", ClassName(request->message_class)));
  }

  if (request->unknown_required_attribute) {
    // RFC 8489 section 6.3.1.1: 420 listing the attribute the request needs understood.
    const uint16_t unknown = *request->unknown_required_attribute;
    const uint8_t value[2] = {static_cast<uint8_t>(unknown >> 8), static_cast<uint8_t>(unknown)};
    return CopyOut(MessageBuilder(kBindingError, request->transaction_id)
                       .AddErrorCode(420, "Unknown Attribute")
                       .AddAttribute(attr::kUnknownAttributes, value, sizeof(value))
                       .AddSoftware(kResponderSoftware)
                       .Finish(),
                   out);
  }

  // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; the client knows itself as a.b.c.d.
  const net::SocketAddress mapped{source.ip.Unmapped(), source.port};
  // BindingSuccess writes XOR-MAPPED-ADDRESS, SOFTWARE "latchkey" (kResponderSoftware) and FINGERPRINT.
  return CopyOut(BindingSuccess(request->transaction_id, mapped), out);
}

}  // namespace latchkey::relay::stun
