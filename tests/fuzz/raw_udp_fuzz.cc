// Arbitrary bytes as a packet read from a raw IPPROTO_UDP socket (what a registrar-source keepalive
// sender sees: any host's UDP traffic that passes its BPF filter, IP header included). Properties: no
// out-of-bounds read (ASan in the fuzz preset); ParseIpv4Udp accepts exactly what an independent
// reading of RFC 791/768 accepts (one whole, unfragmented IPv4 datagram carrying UDP, lengths
// consistent with the buffer); the payload view lies inside the input, right after the UDP header,
// and its length is the UDP length minus 8; addresses and ports are the header's; bytes after the
// IP total length change nothing; and the same datagram written by WriteIpv4UdpHeaders parses back
// to itself with a UDP checksum that verifies.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/net/socket_address.h"
#include "common/sip/options.h"
#include "media-relay/keepalive/raw_udp.h"

namespace relay = latchkey::relay;
namespace net = latchkey::net;

namespace {

void Check(bool condition, const char* what, const uint8_t* data, size_t size) {
  if (condition) return;
  std::fprintf(stderr, "property violated: %s\ninput (%zu bytes):", what, size);
  for (size_t i = 0; i < size && i < 128; ++i) std::fprintf(stderr, " %02x", data[i]);
  std::fprintf(stderr, "\n");
  std::abort();
}

uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// What should be accepted, written from the RFCs rather than from raw_udp.cc.
bool ShouldAccept(const uint8_t* data, size_t size) {
  if (size < 20) return false;
  const unsigned version = data[0] >> 4, ihl = data[0] & 0x0f;
  if (version != 4 || ihl < 5) return false;
  const size_t header = ihl * 4u;
  if (size < header + 8) return false;
  if (data[9] != 17) return false;
  const size_t total = Get16(data + 2);
  if (total < header + 8 || total > size) return false;
  const unsigned flags_offset = Get16(data + 6);
  if ((flags_offset & 0x2000) != 0 || (flags_offset & 0x1fff) != 0) return false;  // MF or an offset
  const size_t udp_length = Get16(data + header + 4);
  return udp_length >= 8 && header + udp_length <= total;
}

uint16_t VerifySum(const std::vector<uint8_t>& packet) {
  uint64_t sum = 0;
  for (size_t i = 12; i < 20; i += 2) sum += Get16(packet.data() + i);
  sum += 17;
  const size_t udp_length = Get16(packet.data() + 24);
  sum += udp_length;
  for (size_t i = 0; i < udp_length; ++i) sum += (i % 2 == 0) ? uint64_t{packet[20 + i]} << 8 : packet[20 + i];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::optional<relay::RawUdpDatagram> parsed = relay::ParseIpv4Udp(data, size);
  Check(parsed.has_value() == ShouldAccept(data, size),
        parsed ? "accepted a packet that is not one whole unfragmented IPv4/UDP datagram"
               : "refused a well-formed IPv4/UDP datagram",
        data, size);
  if (!parsed) return 0;

  const size_t header = (data[0] & 0x0f) * 4u;
  const size_t total = Get16(data + 2);
  const size_t udp_length = Get16(data + header + 4);
  const auto* payload = reinterpret_cast<const uint8_t*>(parsed->payload.data());
  Check(payload == data + header + 8, "payload does not start right after the UDP header", data, size);
  Check(parsed->payload.size() == udp_length - 8, "payload length is not the UDP length minus 8", data, size);
  Check(payload + parsed->payload.size() <= data + total && data + total <= data + size,
        "payload runs past the IP datagram or the input", data, size);
  Check(parsed->source.ip.is_v4() && parsed->destination.ip.is_v4(), "addresses not IPv4", data, size);
  Check(std::memcmp(parsed->source.ip.bytes().data(), data + 12, 4) == 0 &&
            std::memcmp(parsed->destination.ip.bytes().data(), data + 16, 4) == 0,
        "addresses are not the header's", data, size);
  Check(parsed->source.port == Get16(data + header) && parsed->destination.port == Get16(data + header + 2),
        "ports are not the UDP header's", data, size);

  // Only the first `total` bytes count: the same packet cut to its total length parses the same.
  const std::optional<relay::RawUdpDatagram> cut = relay::ParseIpv4Udp(data, total);
  Check(cut.has_value() && cut->source == parsed->source && cut->destination == parsed->destination &&
            cut->payload == parsed->payload,
        "bytes after the IP total length changed the result", data, size);

  // Written again by the sender's header writer, it parses back to the same datagram.
  if (parsed->payload.size() <= 65535 - relay::kIpv4UdpHeaders) {
    std::vector<uint8_t> packet(relay::kIpv4UdpHeaders + parsed->payload.size());
    relay::WriteIpv4UdpHeaders(parsed->source, parsed->destination, parsed->payload, packet.data());
    std::memcpy(packet.data() + relay::kIpv4UdpHeaders, parsed->payload.data(), parsed->payload.size());
    const std::optional<relay::RawUdpDatagram> again = relay::ParseIpv4Udp(packet.data(), packet.size());
    Check(again.has_value() && again->source == parsed->source && again->destination == parsed->destination &&
              again->payload == parsed->payload,
          "a written datagram does not parse back to itself", data, size);
    Check(VerifySum(packet) == 0xffff && Get16(packet.data() + 26) != 0, "written UDP checksum does not verify",
          data, size);
  }

  // What the sender does next with the payload: no crash, a response or an INVALID_ARGUMENT.
  const auto response = latchkey::sip::ParseResponse(parsed->payload);
  Check(response.ok() || response.status().code() == absl::StatusCode::kInvalidArgument,
        "ParseResponse failed with something but INVALID_ARGUMENT", data, size);
  return 0;
}
