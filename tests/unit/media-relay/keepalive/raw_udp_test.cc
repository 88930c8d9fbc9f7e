#include "media-relay/keepalive/raw_udp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/net/socket_address.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::relay {
namespace {

using Bytes = std::vector<uint8_t>;

net::SocketAddress Addr(const std::string& text) { return net::SocketAddress::Parse(text).value(); }

constexpr absl::string_view kResponse =
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKlk000000010000000200000003;rport=5060\r\n"
    "From: <sip:latchkey@198.51.100.1>;tag=00000002\r\n"
    "To: <sip:alice@192.168.1.20:5060>;tag=as5f2\r\n"
    "Call-ID: lk000000010000000200000003@198.51.100.1\r\n"
    "CSeq: 3 OPTIONS\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

Bytes Packet(const net::SocketAddress& source, const net::SocketAddress& destination, absl::string_view payload) {
  Bytes packet(kIpv4UdpHeaders + payload.size());
  WriteIpv4UdpHeaders(source, destination, payload, packet.data());
  std::memcpy(packet.data() + kIpv4UdpHeaders, payload.data(), payload.size());
  return packet;
}

uint16_t Get16(const Bytes& b, size_t at) { return static_cast<uint16_t>(b[at] << 8 | b[at + 1]); }
void Put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

// RFC 768 / RFC 1071, written independently of raw_udp.cc: the folded one's-complement sum of the
// pseudo-header, the UDP header (checksum included) and the payload; 0xffff when the checksum is right.
uint16_t UdpVerifySum(const Bytes& packet) {
  const size_t ihl = (packet[0] & 0x0f) * 4u;
  const size_t udp_length = Get16(packet, ihl + 4);
  uint64_t sum = 0;
  for (size_t i = 12; i < 20; i += 2) sum += Get16(packet, i);  // source, destination
  sum += packet[9];                                              // zero, protocol
  sum += udp_length;
  for (size_t i = 0; i < udp_length; ++i) {
    const uint8_t byte = packet[ihl + i];
    sum += (i % 2 == 0) ? static_cast<uint64_t>(byte) << 8 : byte;  // an odd last byte is padded with zero
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

std::optional<RawUdpDatagram> Parse(const Bytes& packet) { return ParseIpv4Udp(packet.data(), packet.size()); }

// ---- WriteIpv4UdpHeaders ----

TEST(WriteIpv4UdpHeadersTest, HeaderFieldsAndRoundTripThroughTheParser) {
  const net::SocketAddress source = Addr("198.51.100.1:5060"), destination = Addr("203.0.113.7:41234");
  const Bytes packet = Packet(source, destination, kResponse);
  EXPECT_EQ(packet[0], 0x45);
  EXPECT_EQ(Get16(packet, 2), packet.size()) << "total length";
  EXPECT_EQ(Get16(packet, 6), 0x4000) << "DF, no fragment offset";
  EXPECT_EQ(packet[8], 64) << "TTL";
  EXPECT_EQ(packet[9], IPPROTO_UDP);
  EXPECT_EQ(Bytes(packet.begin() + 12, packet.begin() + 16), Bytes({198, 51, 100, 1}));
  EXPECT_EQ(Bytes(packet.begin() + 16, packet.begin() + 20), Bytes({203, 0, 113, 7}));
  EXPECT_EQ(Get16(packet, 20), 5060);
  EXPECT_EQ(Get16(packet, 22), 41234);
  EXPECT_EQ(Get16(packet, 24), 8 + kResponse.size());
  EXPECT_NE(Get16(packet, 26), 0) << "UDP checksum present";

  std::optional<RawUdpDatagram> parsed = Parse(packet);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->source, source);
  EXPECT_EQ(parsed->destination, destination);
  EXPECT_EQ(parsed->payload, kResponse);
  EXPECT_EQ(reinterpret_cast<const uint8_t*>(parsed->payload.data()), packet.data() + kIpv4UdpHeaders)
      << "a view into the packet";
}

TEST(WriteIpv4UdpHeadersTest, UdpChecksumVerifiesForEveryPayloadLength) {
  std::mt19937 rng(99);
  const struct {
    std::string source, destination;
  } ends[] = {{"198.51.100.1:5060", "203.0.113.7:41234"},
              {"127.0.0.1:5070", "127.0.0.1:45060"},
              {"255.255.255.255:65535", "255.255.255.255:65535"},  // every carry
              {"10.0.0.1:1", "10.0.0.2:2"}};
  for (const auto& e : ends) {
    for (size_t length : {0u, 1u, 2u, 3u, 7u, 8u, 255u, 1001u, 1471u, 1472u}) {
      for (int fill = 0; fill < 3; ++fill) {
        std::string payload(length, '\0');
        for (char& c : payload) c = static_cast<char>(fill == 0 ? 0xff : fill == 1 ? 0x00 : rng());
        const Bytes packet = Packet(Addr(e.source), Addr(e.destination), payload);
        EXPECT_EQ(UdpVerifySum(packet), 0xffff)
            << e.source << " -> " << e.destination << ", " << length << " bytes, fill " << fill;
        EXPECT_NE(Get16(packet, 26), 0) << "0 would mean no checksum";
      }
    }
  }
}

TEST(WriteIpv4UdpHeadersTest, ComputedZeroChecksumIsSentAsAllOnes) {
  const net::SocketAddress source = Addr("198.51.100.1:5060"), destination = Addr("203.0.113.7:41234");
  // With a two-byte payload equal to the checksum of the zero payload, the sum is all ones and the
  // computed checksum 0, which UDP over IPv4 must send as 0xffff (RFC 768).
  const Bytes zero = Packet(source, destination, std::string(2, '\0'));
  const uint16_t c = Get16(zero, 26);
  const std::string payload = {static_cast<char>(c >> 8), static_cast<char>(c & 0xff)};
  const Bytes packet = Packet(source, destination, payload);
  EXPECT_EQ(Get16(packet, 26), 0xffff);
  EXPECT_EQ(UdpVerifySum(packet), 0xffff);
}

// ---- ParseIpv4Udp ----

struct BadPacket {
  std::string name;
  std::function<void(Bytes&)> mutate;
};

TEST(ParseIpv4UdpTest, RejectsWhatIsNotOneWholeIpv4UdpDatagram) {
  const Bytes good = Packet(Addr("198.51.100.1:5060"), Addr("203.0.113.7:41234"), kResponse);
  ASSERT_TRUE(Parse(good).has_value());
  const std::vector<BadPacket> cases = {
      {"IPv6 version", [](Bytes& p) { p[0] = 0x65; }},
      {"version 0", [](Bytes& p) { p[0] = 0x05; }},
      {"TCP", [](Bytes& p) { p[9] = IPPROTO_TCP; }},
      {"ICMP", [](Bytes& p) { p[9] = IPPROTO_ICMP; }},
      {"IHL 4", [](Bytes& p) { p[0] = 0x44; }},
      {"IHL 0", [](Bytes& p) { p[0] = 0x40; }},
      {"more fragments", [](Bytes& p) { Put16(p, 6, 0x2000); }},
      {"fragment offset", [](Bytes& p) { Put16(p, 6, 0x0001); }},
      {"last fragment with DF", [](Bytes& p) { Put16(p, 6, 0x40b9); }},
      {"total length past the buffer", [](Bytes& p) { Put16(p, 2, static_cast<uint16_t>(p.size() + 1)); }},
      {"total length 0xffff", [](Bytes& p) { Put16(p, 2, 0xffff); }},
      {"total length shorter than the headers", [](Bytes& p) { Put16(p, 2, 27); }},
      {"total length 0", [](Bytes& p) { Put16(p, 2, 0); }},
      {"UDP length below 8", [](Bytes& p) { Put16(p, 24, 7); }},
      {"UDP length 0", [](Bytes& p) { Put16(p, 24, 0); }},
      {"UDP length past the IP datagram", [](Bytes& p) { Put16(p, 24, static_cast<uint16_t>(p.size() - 20 + 1)); }},
      {"UDP length past the IP total length", [](Bytes& p) { Put16(p, 2, 100); }},
      {"IHL 15 with a short packet", [](Bytes& p) {
         p[0] = 0x4f;
         p.resize(64);
         Put16(p, 2, 64);
       }},
      {"empty", [](Bytes& p) { p.clear(); }},
      {"IP header only", [](Bytes& p) {
         p.resize(20);
         Put16(p, 2, 20);
       }},
      {"UDP header cut", [](Bytes& p) {
         p.resize(27);
         Put16(p, 2, 27);
       }},
  };
  for (const BadPacket& c : cases) {
    Bytes packet = good;
    c.mutate(packet);
    EXPECT_FALSE(Parse(packet).has_value()) << c.name;
  }
  // Every truncation of a good packet (the total length then exceeds the buffer).
  for (size_t n = 0; n < good.size(); ++n) EXPECT_FALSE(ParseIpv4Udp(good.data(), n).has_value()) << n << " bytes";
  // DF alone, and the reserved flag bit clear, are not fragments.
  Bytes no_df = good;
  Put16(no_df, 6, 0);
  EXPECT_TRUE(Parse(no_df).has_value());
}

TEST(ParseIpv4UdpTest, HeaderOptionsAndTrailingBytesAreHandled) {
  const Bytes plain = Packet(Addr("127.0.0.1:45060"), Addr("127.0.0.1:5070"), kResponse);
  for (int words = 6; words <= 15; ++words) {
    SCOPED_TRACE(absl::StrCat("IHL ", words));
    const size_t options = (words - 5) * 4u;
    // The same datagram with IP options (NOPs, then a router alert at the start when it fits).
    Bytes packet(plain.begin(), plain.begin() + 20);
    packet.insert(packet.end(), options, 0x01);
    if (options >= 4) {
      packet[20] = 0x94;
      packet[21] = 0x04;
      packet[22] = 0;
      packet[23] = 0;
    }
    packet.insert(packet.end(), plain.begin() + 20, plain.end());
    packet[0] = static_cast<uint8_t>(0x40 | words);
    Put16(packet, 2, static_cast<uint16_t>(packet.size()));
    std::optional<RawUdpDatagram> parsed = Parse(packet);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->source, Addr("127.0.0.1:45060"));
    EXPECT_EQ(parsed->destination, Addr("127.0.0.1:5070"));
    EXPECT_EQ(parsed->payload, kResponse);
    EXPECT_EQ(reinterpret_cast<const uint8_t*>(parsed->payload.data()), packet.data() + 20 + options + 8);
  }
  // Bytes after the IP datagram (Ethernet padding) and after the UDP datagram are not payload.
  Bytes padded = plain;
  padded.insert(padded.end(), 6, 0xEE);
  std::optional<RawUdpDatagram> parsed = Parse(padded);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->payload, kResponse);
  Bytes short_udp = plain;
  Put16(short_udp, 24, 8 + 16);
  parsed = Parse(short_udp);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->payload, kResponse.substr(0, 16));
  Bytes empty_udp = Packet(Addr("127.0.0.1:1"), Addr("127.0.0.1:2"), "");
  parsed = Parse(empty_udp);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_TRUE(parsed->payload.empty());
}

// ---- UdpDestinationPortFilter ----

// A classic BPF interpreter for the instructions the filter may use; anything else fails the test.
// Returns the accepted length (0: dropped).
uint32_t RunFilter(const std::vector<sock_filter>& program, const Bytes& packet) {
  uint32_t a = 0, x = 0;
  auto load = [&](size_t at, size_t size, bool* ok) -> uint32_t {
    if (at + size > packet.size()) {
      *ok = false;
      return 0;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < size; ++i) v = v << 8 | packet[at + i];
    return v;
  };
  for (size_t pc = 0; pc < program.size(); ++pc) {
    const sock_filter& f = program[pc];
    bool ok = true;
    switch (f.code) {
      case BPF_LD | BPF_H | BPF_ABS: a = load(f.k, 2, &ok); break;
      case BPF_LD | BPF_H | BPF_IND: a = load(x + f.k, 2, &ok); break;
      case BPF_LD | BPF_B | BPF_ABS: a = load(f.k, 1, &ok); break;
      case BPF_LDX | BPF_B | BPF_MSH: x = (load(f.k, 1, &ok) & 0xf) * 4; break;
      case BPF_JMP | BPF_JSET | BPF_K: pc += (a & f.k) ? f.jt : f.jf; break;
      case BPF_JMP | BPF_JEQ | BPF_K: pc += (a == f.k) ? f.jt : f.jf; break;
      case BPF_RET | BPF_K: return f.k;
      default: ADD_FAILURE() << "unexpected BPF opcode " << f.code << " at " << pc; return 0;
    }
    if (!ok) return 0;  // the kernel drops on an out-of-bounds load
  }
  ADD_FAILURE() << "fell off the end of the program";
  return 0;
}

TEST(UdpDestinationPortFilterTest, AcceptsExactlyTheListedPortsOfUnfragmentedDatagrams) {
  std::vector<uint16_t> sixty_four;
  for (int i = 0; i < 64; ++i) sixty_four.push_back(static_cast<uint16_t>(5060 + 2 * i));
  const std::vector<std::vector<uint16_t>> lists = {{5060}, {5060, 5080}, {0}, {65535, 1, 5070}, sixty_four};
  for (const auto& ports : lists) {
    SCOPED_TRACE(absl::StrCat(ports.size(), " ports, first ", ports[0]));
    const std::vector<sock_filter> program = UdpDestinationPortFilter(ports);
    ASSERT_LE(program.size(), 4 + ports.size() + 2);
    for (uint32_t port = 0; port <= 65535; port += (port < 5300 ? 1 : 997)) {
      const bool listed = std::find(ports.begin(), ports.end(), port) != ports.end();
      const Bytes packet = Packet(Addr("203.0.113.7:41234"), {net::IpAddress::V4(127, 0, 0, 1), 1}, kResponse);
      Bytes to_port = packet;
      Put16(to_port, 22, static_cast<uint16_t>(port));
      EXPECT_EQ(RunFilter(program, to_port) != 0, listed) << "port " << port;
    }
    for (uint16_t port : ports) {
      Bytes packet = Packet(Addr("203.0.113.7:41234"), {net::IpAddress::V4(127, 0, 0, 1), port == 0 ? uint16_t{1} : port},
                            kResponse);
      Put16(packet, 22, port);
      EXPECT_GE(RunFilter(program, packet), packet.size()) << "accepted whole, port " << port;
      // A fragment is dropped even to a listed port (its "UDP header" may be payload).
      Bytes fragment = packet;
      Put16(fragment, 6, 0x2000);
      EXPECT_EQ(RunFilter(program, fragment), 0u) << "first fragment, port " << port;
      Put16(fragment, 6, 0x0010);
      EXPECT_EQ(RunFilter(program, fragment), 0u) << "later fragment, port " << port;
      // IP options move the UDP header: the port is read after them.
      Bytes with_options(packet.begin(), packet.begin() + 20);
      with_options.insert(with_options.end(), 8, 0x01);  // NOPs
      with_options.insert(with_options.end(), packet.begin() + 20, packet.end());
      with_options[0] = 0x47;
      EXPECT_NE(RunFilter(program, with_options), 0u) << "options, port " << port;
      // The listed port where the UDP destination port would be without options, another one after them.
      Put16(with_options, 22, port);
      Put16(with_options, 30, 4);  // listed nowhere
      EXPECT_EQ(RunFilter(program, with_options), 0u) << "options, port " << port;
    }
  }
}

// A real raw UDP socket with the filter attached, and real datagrams over loopback.
class RawSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    raw_ = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP);
    if (raw_ < 0 && (errno == EPERM || errno == EACCES)) {
      GTEST_SKIP() << "raw sockets need CAP_NET_RAW (run as root to test the BPF filter in the kernel): "
                   << std::strerror(errno);
    }
    ASSERT_GE(raw_, 0) << std::strerror(errno);
  }
  void TearDown() override {
    if (raw_ >= 0) ::close(raw_);
    for (int fd : udp_) ::close(fd);
  }

  // A UDP socket bound to 127.0.0.1:0; returns its port.
  uint16_t BoundUdp(int* fd_out = nullptr) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd, 0);
    udp_.push_back(fd);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t length = sizeof(a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &length);
    if (fd_out) *fd_out = fd;
    return ntohs(a.sin_port);
  }

  void Attach(const std::vector<uint16_t>& ports) {
    std::vector<sock_filter> program = UdpDestinationPortFilter(ports);
    sock_fprog fprog{static_cast<unsigned short>(program.size()), program.data()};
    ASSERT_EQ(::setsockopt(raw_, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)), 0) << std::strerror(errno);
  }

  static void SendTo(int fd, uint16_t port, const std::string& payload) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port);
    ASSERT_EQ(::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)),
              static_cast<ssize_t>(payload.size()))
        << std::strerror(errno);
  }

  // Every datagram the raw socket delivers until `quiet` passes without one (bounded by 3 s).
  std::vector<RawUdpDatagram> Drain(std::vector<Bytes>* storage, absl::Duration quiet = absl::Milliseconds(500)) {
    std::vector<RawUdpDatagram> out;
    storage->reserve(256);
    const absl::Time deadline = absl::Now() + absl::Seconds(3);
    while (absl::Now() < deadline && storage->size() < 256) {
      pollfd p{raw_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(quiet))) <= 0) break;
      Bytes buffer(65536);
      const ssize_t n = ::recv(raw_, buffer.data(), buffer.size(), MSG_DONTWAIT);
      if (n <= 0) continue;
      buffer.resize(static_cast<size_t>(n));
      storage->push_back(std::move(buffer));
      std::optional<RawUdpDatagram> d = ParseIpv4Udp(storage->back().data(), storage->back().size());
      EXPECT_TRUE(d.has_value()) << "the kernel delivered something ParseIpv4Udp refuses (" << n << " bytes)";
      if (d) out.push_back(*d);
    }
    return out;
  }

  int raw_ = -1;
  std::vector<int> udp_;
};

TEST_F(RawSocketTest, FilteredSocketSeesDatagramsToListedPortsOnly) {
  int sender = -1;
  const uint16_t sender_port = BoundUdp(&sender);
  const uint16_t listed = BoundUdp(), unlisted = BoundUdp(), also_listed = BoundUdp();
  Attach({listed, also_listed});
  // Anything queued before the filter was attached is of no interest.
  std::vector<Bytes> ignored;
  Drain(&ignored, absl::Milliseconds(50));

  const std::string nonce = absl::StrCat(::getpid(), "-", absl::ToUnixNanos(absl::Now()));
  SendTo(sender, unlisted, "to-unlisted-" + nonce);
  SendTo(sender, listed, "to-listed-" + nonce);
  SendTo(sender, unlisted, "to-unlisted-again-" + nonce);
  SendTo(sender, also_listed, "to-also-listed-" + nonce);

  std::vector<Bytes> storage;
  std::vector<std::string> seen;
  for (const RawUdpDatagram& d : Drain(&storage)) {
    EXPECT_TRUE(d.destination.port == listed || d.destination.port == also_listed)
        << "the kernel passed a datagram to port " << d.destination.port;
    if (d.payload.find(nonce) != absl::string_view::npos) {
      seen.emplace_back(d.payload);
      EXPECT_EQ(d.source, (net::SocketAddress{net::IpAddress::V4(127, 0, 0, 1), sender_port}));
    }
  }
  EXPECT_THAT(seen, ::testing::UnorderedElementsAre("to-listed-" + nonce, "to-also-listed-" + nonce));
}

TEST_F(RawSocketTest, SixtyFourPortFilterIsAcceptedByTheKernelAndMatchesTheLastPort) {
  int sender = -1;
  BoundUdp(&sender);
  const uint16_t last = BoundUdp(), unlisted = BoundUdp();
  std::vector<uint16_t> ports;
  for (int i = 0; i < 63; ++i) ports.push_back(static_cast<uint16_t>(1 + i));  // privileged: nothing of ours
  ports.push_back(last);
  Attach(ports);
  std::vector<Bytes> ignored;
  Drain(&ignored, absl::Milliseconds(50));
  const std::string nonce = absl::StrCat("sixty-four-", absl::ToUnixNanos(absl::Now()));
  SendTo(sender, unlisted, nonce + "-unlisted");
  SendTo(sender, last, nonce + "-last");
  std::vector<Bytes> storage;
  std::vector<std::string> seen;
  for (const RawUdpDatagram& d : Drain(&storage)) {
    if (d.payload.find(nonce) != absl::string_view::npos) seen.emplace_back(d.payload);
  }
  EXPECT_THAT(seen, ::testing::ElementsAre(nonce + "-last"));
}

TEST_F(RawSocketTest, HeaderIncludedDatagramReachesAnOrdinaryUdpSocketFromTheForgedSource) {
  // What a registrar-source keepalive does: an IP_HDRINCL packet with another socket's address as
  // its source. The receiving UDP socket checks the UDP checksum, so a wrong one would be dropped.
  const int send_fd = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  ASSERT_GE(send_fd, 0) << std::strerror(errno);
  const int one = 1;
  ASSERT_EQ(::setsockopt(send_fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one)), 0);
  int phone = -1;
  const uint16_t phone_port = BoundUdp(&phone);
  const uint16_t registrar_port = BoundUdp();  // a port of ours, so the source is not someone else's
  for (size_t length : {0u, 1u, 101u, 1000u}) {
    std::string payload(length, 'x');
    if (length >= 8) payload.replace(0, 8, "OPTIONS ");
    const net::SocketAddress source{net::IpAddress::V4(127, 0, 0, 1), registrar_port};
    const net::SocketAddress destination{net::IpAddress::V4(127, 0, 0, 1), phone_port};
    const Bytes packet = Packet(source, destination, payload);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::sendto(send_fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)),
              static_cast<ssize_t>(packet.size()))
        << std::strerror(errno);
    pollfd p{phone, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 500), 1) << "the phone's socket got nothing (" << length << " bytes): bad checksum?";
    char buffer[2048];
    sockaddr_in from{};
    socklen_t from_length = sizeof(from);
    const ssize_t n = ::recvfrom(phone, buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr*>(&from), &from_length);
    EXPECT_EQ(std::string(buffer, static_cast<size_t>(std::max<ssize_t>(n, 0))), payload);
    EXPECT_EQ(ntohs(from.sin_port), registrar_port);
    EXPECT_EQ(ntohl(from.sin_addr.s_addr), INADDR_LOOPBACK);
  }
  ::close(send_fd);
}

}  // namespace
}  // namespace latchkey::relay
