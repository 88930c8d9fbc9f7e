#pragma once
// STUN (RFC 5389 / RFC 8489) messages: the parts a Binding client and a Binding responder need.
//
// Parse() takes untrusted bytes (a datagram from anywhere): it does not allocate, every length read
// from the wire is checked against the buffer before use, and the result only holds values and
// views into the input. Authentication (MESSAGE-INTEGRITY) is not checked; it is recognised so that
// the attributes after it are ignored as the RFC requires. FINGERPRINT is verified when present.
//
// MessageBuilder encodes; its Finish() appends FINGERPRINT. BindingRequest / BindingSuccess are the
// two messages Latchkey sends.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/net/socket_address.h"

namespace latchkey::relay::stun {

inline constexpr uint32_t kMagicCookie = 0x2112A442;
inline constexpr size_t kHeaderSize = 20;
inline constexpr uint32_t kFingerprintXor = 0x5354554E;
inline constexpr uint16_t kDefaultPort = 3478;

using TransactionId = std::array<uint8_t, 12>;

enum class MessageClass : uint8_t { kRequest = 0, kIndication = 1, kSuccessResponse = 2, kErrorResponse = 3 };

inline constexpr uint16_t kMethodBinding = 0x001;

// The 16-bit message type interleaves the 12-bit method with the 2 class bits (RFC 5389 section 6).
uint16_t MessageType(uint16_t method, MessageClass message_class);
inline constexpr uint16_t kBindingRequest = 0x0001;
inline constexpr uint16_t kBindingSuccess = 0x0101;
inline constexpr uint16_t kBindingError = 0x0111;

// Attribute types used here.
namespace attr {
inline constexpr uint16_t kMappedAddress = 0x0001;
inline constexpr uint16_t kUsername = 0x0006;
inline constexpr uint16_t kMessageIntegrity = 0x0008;
inline constexpr uint16_t kErrorCode = 0x0009;
inline constexpr uint16_t kUnknownAttributes = 0x000A;
inline constexpr uint16_t kRealm = 0x0014;
inline constexpr uint16_t kNonce = 0x0015;
inline constexpr uint16_t kMessageIntegritySha256 = 0x001C;
inline constexpr uint16_t kPasswordAlgorithm = 0x001D;
inline constexpr uint16_t kUserhash = 0x001E;
inline constexpr uint16_t kXorMappedAddress = 0x0020;
inline constexpr uint16_t kPriority = 0x0024;      // ICE (RFC 8445)
inline constexpr uint16_t kUseCandidate = 0x0025;  // ICE
inline constexpr uint16_t kSoftware = 0x8022;
inline constexpr uint16_t kAlternateServer = 0x8023;
inline constexpr uint16_t kFingerprint = 0x8028;
}  // namespace attr

// Why Parse() refused a message. Static data: reporting it allocates nothing.
enum class ParseError : uint8_t {
  kNone,
  kTooShort,               // fewer than 20 bytes
  kNotStun,                // top two bits set or no magic cookie
  kBadLength,              // length field not a multiple of 4, or not the datagram size minus 20
  kTruncatedAttribute,     // an attribute header or value (with padding) runs past the message
  kBadAddress,             // (XOR-)MAPPED-ADDRESS with an unknown family or the wrong length
  kBadErrorCode,           // ERROR-CODE shorter than 4 bytes or class/number out of range
  kBadFingerprint,         // FINGERPRINT of the wrong length, not last, or with the wrong CRC
};
const char* ParseErrorName(ParseError error);

struct ErrorCode {
  int code = 0;              // 300-699
  absl::string_view reason;  // a view into the parsed buffer
};

// A parsed message. String views point into the buffer given to Parse().
struct Message {
  uint16_t type = 0;
  uint16_t method = 0;
  MessageClass message_class = MessageClass::kRequest;
  TransactionId transaction_id{};
  std::optional<net::SocketAddress> mapped_address;
  std::optional<net::SocketAddress> xor_mapped_address;  // already un-XORed
  std::optional<absl::string_view> software;
  std::optional<ErrorCode> error_code;
  bool has_message_integrity = false;  // present, not verified
  bool has_fingerprint = false;        // present and verified
  // The first comprehension-required attribute (type < 0x8000) this codec does not know, if any.
  // RFC 8489: a request with one gets a 420 answer, a response with one is discarded.
  std::optional<uint16_t> unknown_required_attribute;

  // XOR-MAPPED-ADDRESS if present, else MAPPED-ADDRESS (RFC 3489 servers send only that).
  std::optional<net::SocketAddress> reflexive_address() const {
    return xor_mapped_address ? xor_mapped_address : mapped_address;
  }
};

// One STUN message filling the whole datagram. Duplicate attributes: the first counts. Attributes
// after MESSAGE-INTEGRITY other than FINGERPRINT are ignored; anything after FINGERPRINT is an error.
// On failure `error` (if given) says why.
std::optional<Message> Parse(const uint8_t* data, size_t size, ParseError* error = nullptr);

// CRC-32 (ISO-HDLC, as zlib's crc32) of `size` bytes.
uint32_t Crc32(const uint8_t* data, size_t size);

// Encodes one message. Attributes are appended in call order, each padded to 4 bytes with zeros.
class MessageBuilder {
 public:
  MessageBuilder(uint16_t type, const TransactionId& transaction_id);

  // Addresses are encoded exactly as given: an IPv6 ::ffff:a.b.c.d stays IPv6. A responder on a
  // dual-stack socket should pass the peer's Unmapped() address.
  MessageBuilder& AddMappedAddress(const net::SocketAddress& address);
  MessageBuilder& AddXorMappedAddress(const net::SocketAddress& address);
  MessageBuilder& AddSoftware(absl::string_view software);
  // `code` 300-699; the reason phrase is written as given.
  MessageBuilder& AddErrorCode(int code, absl::string_view reason);
  // Any attribute; `value` is copied and padded.
  MessageBuilder& AddAttribute(uint16_t type, const uint8_t* value, size_t size);

  // Sets the length field and, unless `fingerprint` is false, appends FINGERPRINT.
  std::vector<uint8_t> Finish(bool fingerprint = true);  // once: the builder is empty afterwards

 private:
  void AddAddress(uint16_t type, const net::SocketAddress& address, bool xored);
  void SetLength();

  std::vector<uint8_t> bytes_;
};

// A Binding request with FINGERPRINT (28 bytes).
std::vector<uint8_t> BindingRequest(const TransactionId& transaction_id);
// A Binding success response: XOR-MAPPED-ADDRESS `mapped`, SOFTWARE "latchkey", FINGERPRINT.
std::vector<uint8_t> BindingSuccess(const TransactionId& transaction_id, const net::SocketAddress& mapped);

}  // namespace latchkey::relay::stun
