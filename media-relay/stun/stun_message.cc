#include "media-relay/stun/stun_message.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "absl/types/span.h"

namespace latchkey::relay::stun {
namespace {

// RFC 8489 section 14.10: fewer than 128 characters, at most 763 bytes as UTF-8.
constexpr size_t kMaxSoftwareBytes = 763;

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void AppendBe16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void AppendBe32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

constexpr size_t Padded(size_t length) { return (length + 3) & ~size_t{3}; }

// The 16 bytes (cookie, transaction id) an XOR-MAPPED-ADDRESS is XORed with.
std::array<uint8_t, 16> XorKey(const TransactionId& transaction_id) {
  std::array<uint8_t, 16> key{};
  key[0] = static_cast<uint8_t>(kMagicCookie >> 24);
  key[1] = static_cast<uint8_t>(kMagicCookie >> 16);
  key[2] = static_cast<uint8_t>(kMagicCookie >> 8);
  key[3] = static_cast<uint8_t>(kMagicCookie);
  std::copy(transaction_id.begin(), transaction_id.end(), key.begin() + 4);
  return key;
}

// MAPPED-ADDRESS / XOR-MAPPED-ADDRESS value: reserved byte, family (1 IPv4, 2 IPv6), port, address.
bool DecodeAddress(const uint8_t* value, size_t length, bool xored, const TransactionId& transaction_id,
                   net::SocketAddress* out) {
  if (length < 4) return false;
  const uint8_t family = value[1];
  const size_t address_length = family == 0x01 ? 4 : family == 0x02 ? 16 : 0;
  if (address_length == 0 || length != 4 + address_length) return false;
  const std::array<uint8_t, 16> key = XorKey(transaction_id);
  uint16_t port = Be16(value + 2);
  uint8_t bytes[16];
  for (size_t i = 0; i < address_length; ++i) bytes[i] = xored ? value[4 + i] ^ key[i] : value[4 + i];
  if (xored) port = static_cast<uint16_t>(port ^ (kMagicCookie >> 16));
  if (address_length == 4) {
    out->ip = net::IpAddress::V4(bytes[0], bytes[1], bytes[2], bytes[3]);
  } else {
    in6_addr v6;
    std::memcpy(&v6, bytes, sizeof(v6));
    out->ip = net::IpAddress::FromV6(v6);
  }
  out->port = port;
  return true;
}

// Attributes whose meaning this codec knows (or may safely ignore as a Binding client/responder).
bool IsKnownRequired(uint16_t type) {
  switch (type) {
    case attr::kMappedAddress:
    case attr::kUsername:
    case attr::kMessageIntegrity:
    case attr::kErrorCode:
    case attr::kUnknownAttributes:
    case attr::kRealm:
    case attr::kNonce:
    case attr::kMessageIntegritySha256:
    case attr::kPasswordAlgorithm:
    case attr::kUserhash:
    case attr::kXorMappedAddress:
    case attr::kPriority:
    case attr::kUseCandidate:
      return true;
    default:
      return false;
  }
}

std::optional<Message> Fail(ParseError reason, ParseError* error) {
  if (error) *error = reason;
  return std::nullopt;
}

}  // namespace

uint16_t MessageType(uint16_t method, MessageClass message_class) {
  const uint16_t m = method & 0x0FFF;
  const uint16_t c = static_cast<uint16_t>(message_class);
  return static_cast<uint16_t>((m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) |
                               ((c & 2) << 7));
}

const char* ParseErrorName(ParseError error) {
  switch (error) {
    case ParseError::kNone: return "none";
    case ParseError::kTooShort: return "shorter than a STUN header";
    case ParseError::kNotStun: return "not STUN (no magic cookie)";
    case ParseError::kBadLength: return "length field does not match the datagram";
    case ParseError::kTruncatedAttribute: return "attribute runs past the end of the message";
    case ParseError::kBadAddress: return "malformed (XOR-)MAPPED-ADDRESS";
    case ParseError::kBadErrorCode: return "malformed ERROR-CODE";
    case ParseError::kBadFingerprint: return "FINGERPRINT malformed, misplaced or wrong";
  }
  return "unknown";
}

uint32_t Crc32(const uint8_t* data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = kCrcTable[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

std::optional<Message> Parse(const uint8_t* data, size_t size, ParseError* error) {
  if (error) *error = ParseError::kNone;
  if (data == nullptr || size < kHeaderSize) return Fail(ParseError::kTooShort, error);
  if ((data[0] & 0xC0) != 0 || Be32(data + 4) != kMagicCookie) return Fail(ParseError::kNotStun, error);
  const size_t length = Be16(data + 2);
  if (length % 4 != 0 || length != size - kHeaderSize) return Fail(ParseError::kBadLength, error);

  Message m;
  m.type = Be16(data);
  m.method = static_cast<uint16_t>((m.type & 0x000F) | ((m.type >> 1) & 0x0070) | ((m.type >> 2) & 0x0F80));
  m.message_class = static_cast<MessageClass>(((m.type >> 4) & 1) | ((m.type >> 7) & 2));
  std::memcpy(m.transaction_id.data(), data + 8, m.transaction_id.size());

  bool after_integrity = false;
  size_t offset = kHeaderSize;
  while (offset < size) {
    if (size - offset < 4) return Fail(ParseError::kTruncatedAttribute, error);
    const uint16_t type = Be16(data + offset);
    const size_t value_length = Be16(data + offset + 2);
    if (Padded(value_length) > size - offset - 4) return Fail(ParseError::kTruncatedAttribute, error);
    const uint8_t* value = data + offset + 4;

    if (type == attr::kFingerprint) {
      // Must be the last attribute; the CRC covers everything before it, header length included.
      if (value_length != 4 || offset + 8 != size) return Fail(ParseError::kBadFingerprint, error);
      if ((Crc32(data, offset) ^ kFingerprintXor) != Be32(value)) return Fail(ParseError::kBadFingerprint, error);
      m.has_fingerprint = true;
    } else if (after_integrity) {
      // RFC 8489 section 14.5: everything but FINGERPRINT after MESSAGE-INTEGRITY is ignored.
    } else {
      switch (type) {
        case attr::kMessageIntegrity:
        case attr::kMessageIntegritySha256:
          m.has_message_integrity = true;
          after_integrity = true;
          break;
        case attr::kMappedAddress:
        case attr::kXorMappedAddress: {
          const bool xored = type == attr::kXorMappedAddress;
          std::optional<net::SocketAddress>& slot = xored ? m.xor_mapped_address : m.mapped_address;
          if (slot) break;
          net::SocketAddress address;
          if (!DecodeAddress(value, value_length, xored, m.transaction_id, &address)) {
            return Fail(ParseError::kBadAddress, error);
          }
          slot = address;
          break;
        }
        case attr::kSoftware:
          if (!m.software) m.software = absl::string_view(reinterpret_cast<const char*>(value), value_length);
          break;
        case attr::kErrorCode: {
          if (m.error_code) break;
          if (value_length < 4) return Fail(ParseError::kBadErrorCode, error);
          const int error_class = value[2] & 0x07;
          const int number = value[3];
          if (error_class < 3 || error_class > 6 || number > 99) return Fail(ParseError::kBadErrorCode, error);
          m.error_code = ErrorCode{error_class * 100 + number,
                                   absl::string_view(reinterpret_cast<const char*>(value + 4), value_length - 4)};
          break;
        }
        default:
          if (type < 0x8000 && !IsKnownRequired(type) && !m.unknown_required_attribute) {
            m.unknown_required_attribute = type;
          }
      }
    }
    offset += 4 + Padded(value_length);
  }
  return m;
}

MessageBuilder::MessageBuilder(uint16_t type, const TransactionId& transaction_id) {
  bytes_.reserve(96);
  AppendBe16(bytes_, type & 0x3FFF);
  AppendBe16(bytes_, 0);
  AppendBe32(bytes_, kMagicCookie);
  bytes_.insert(bytes_.end(), transaction_id.begin(), transaction_id.end());
}

MessageBuilder& MessageBuilder::AddAttribute(uint16_t type, const uint8_t* value, size_t size) {
  size = std::min<size_t>(size, 0xFFFC);  // the 16-bit length field; callers stay far below
  AppendBe16(bytes_, type);
  AppendBe16(bytes_, static_cast<uint16_t>(size));
  if (size > 0) bytes_.insert(bytes_.end(), value, value + size);
  bytes_.resize(bytes_.size() + (Padded(size) - size), 0);
  return *this;
}

void MessageBuilder::AddAddress(uint16_t type, const net::SocketAddress& address, bool xored) {
  TransactionId transaction_id;
  std::memcpy(transaction_id.data(), bytes_.data() + 8, transaction_id.size());
  const std::array<uint8_t, 16> key = XorKey(transaction_id);
  const absl::Span<const uint8_t> ip = address.ip.bytes();
  uint8_t value[20] = {0, static_cast<uint8_t>(address.ip.is_v4() ? 0x01 : 0x02)};
  PutBe16(value + 2, xored ? static_cast<uint16_t>(address.port ^ (kMagicCookie >> 16)) : address.port);
  for (size_t i = 0; i < ip.size(); ++i) value[4 + i] = xored ? ip[i] ^ key[i] : ip[i];
  AddAttribute(type, value, 4 + ip.size());
}

MessageBuilder& MessageBuilder::AddMappedAddress(const net::SocketAddress& address) {
  AddAddress(attr::kMappedAddress, address, false);
  return *this;
}

MessageBuilder& MessageBuilder::AddXorMappedAddress(const net::SocketAddress& address) {
  AddAddress(attr::kXorMappedAddress, address, true);
  return *this;
}

MessageBuilder& MessageBuilder::AddSoftware(absl::string_view software) {
  software = software.substr(0, kMaxSoftwareBytes);
  return AddAttribute(attr::kSoftware, reinterpret_cast<const uint8_t*>(software.data()), software.size());
}

MessageBuilder& MessageBuilder::AddErrorCode(int code, absl::string_view reason) {
  reason = reason.substr(0, kMaxSoftwareBytes);
  std::vector<uint8_t> value = {0, 0, static_cast<uint8_t>((code / 100) & 0x07), static_cast<uint8_t>(code % 100)};
  value.insert(value.end(), reason.begin(), reason.end());
  return AddAttribute(attr::kErrorCode, value.data(), value.size());
}

void MessageBuilder::SetLength() { PutBe16(bytes_.data() + 2, static_cast<uint16_t>(bytes_.size() - kHeaderSize)); }

std::vector<uint8_t> MessageBuilder::Finish(bool fingerprint) {
  if (bytes_.size() < kHeaderSize) return {};  // already finished
  if (fingerprint) {
    // The length field must already count the FINGERPRINT attribute when the CRC is computed.
    PutBe16(bytes_.data() + 2, static_cast<uint16_t>(bytes_.size() + 8 - kHeaderSize));
    const uint32_t crc = Crc32(bytes_.data(), bytes_.size()) ^ kFingerprintXor;
    AppendBe16(bytes_, attr::kFingerprint);
    AppendBe16(bytes_, 4);
    AppendBe32(bytes_, crc);
  }
  SetLength();
  return std::move(bytes_);
}

std::vector<uint8_t> BindingRequest(const TransactionId& transaction_id) {
  return MessageBuilder(kBindingRequest, transaction_id).Finish();
}

std::vector<uint8_t> BindingSuccess(const TransactionId& transaction_id, const net::SocketAddress& mapped) {
  return MessageBuilder(kBindingSuccess, transaction_id).AddXorMappedAddress(mapped).AddSoftware("latchkey").Finish();
}

}  // namespace latchkey::relay::stun
