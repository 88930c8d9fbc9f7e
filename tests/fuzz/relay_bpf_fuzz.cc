// Arbitrary frames through the relay's eBPF fast path (media-relay/fastpath/relay.bpf.c), run by the
// kernel itself (BPF_PROG_TEST_RUN) in both programs, XDP and tc. So that the forwarding branch is
// reached too, each input also installs a flow entry for whatever addresses, ports and SSRC sit
// where an IPv4/UDP/RTP frame has them (half of the inputs; the other half meet an empty table).
// Properties: a frame is either handed back byte for byte, or forwarded as the entry says with a
// valid IPv4 header checksum, the entry's addresses and ports, and everything after the UDP header
// unchanged. Needs bpf() (root): without it every input is skipped (said once on stderr).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "media-relay/fastpath/relay_program.h"

namespace relay = latchkey::relay;

namespace {

constexpr size_t kIp = 14, kUdp = 34, kRtp = 42;

void Check(bool condition) {
  if (!condition) std::abort();
}

relay::RelayProgram* Program() {
  static std::unique_ptr<relay::RelayProgram> program = [] {
    auto loaded = relay::RelayProgram::Load();
    if (!loaded.ok()) {
      std::fprintf(stderr, "relay_bpf_fuzz: SKIPPED every input: %s\n", loaded.status().ToString().c_str());
      return std::unique_ptr<relay::RelayProgram>();
    }
    (*loaded)->KeepAliveUntil(relay::MonotonicNow() + absl::Hours(24)).IgnoreError();
    return *std::move(loaded);
  }();
  return program.get();
}

uint16_t IpChecksum(const uint8_t* header) {
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += static_cast<uint32_t>(header[i] << 8 | header[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  relay::RelayProgram* program = Program();
  // The kernel's harness needs an Ethernet header; frames are at most a jumbo's size.
  if (program == nullptr || size < 14 || size > 9000) return 0;
  const std::vector<uint8_t> in(data, data + size);

  lk_flow_key key{};
  lk_flow_value value{};
  const bool install = size >= kRtp + 12 && (data[size - 1] & 1);
  if (install) {
    std::memcpy(&key.src_ip, &in[kIp + 12], 4);
    std::memcpy(&key.dst_ip, &in[kIp + 16], 4);
    std::memcpy(&key.src_port, &in[kUdp], 2);
    std::memcpy(&key.dst_port, &in[kUdp + 2], 2);
    value.new_src_ip = htonl(0xc0000201);  // 192.0.2.1
    value.new_dst_ip = htonl(0xcb007109);  // 203.0.113.9
    value.new_src_port = htons(40002);
    value.new_dst_port = htons(6000);
    value.dst_mac[0] = 0x02;
    value.dst_mac[5] = 0xbb;
    std::memcpy(&value.ssrc, &in[kRtp + 8], 4);
    value.clock_rate = 8000;
    Check(program->UpsertFlow(key, value).ok());
  }
  for (const int fd : {program->xdp_fd(), program->tc_fd()}) {
    std::vector<uint8_t> out(size + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(), .data_out = out.data(),
                .data_size_in = static_cast<__u32>(size), .data_size_out = static_cast<__u32>(out.size()), .repeat = 1);
    if (bpf_prog_test_run_opts(fd, &opts) != 0) continue;  // the harness refused the frame (tc: no whole IPv4 header)
    out.resize(opts.data_size_out);
    const bool forwarded = opts.retval == XDP_TX || opts.retval == XDP_REDIRECT || opts.retval == TC_ACT_REDIRECT;
    if (!forwarded) {
      Check(opts.retval == XDP_PASS || opts.retval == static_cast<__u32>(TC_ACT_UNSPEC));
      Check(out == in);
      continue;
    }
    Check(install);  // nothing is forwarded without an entry
    Check(out.size() == in.size());
    Check(IpChecksum(&out[kIp]) == 0);
    Check(std::memcmp(&out[kIp + 12], &value.new_src_ip, 4) == 0);
    Check(std::memcmp(&out[kIp + 16], &value.new_dst_ip, 4) == 0);
    Check(std::memcmp(&out[kUdp], &value.new_src_port, 2) == 0);
    Check(std::memcmp(&out[kUdp + 2], &value.new_dst_port, 2) == 0);
    Check(std::memcmp(&out[kRtp], &in[kRtp], size - kRtp) == 0);
  }
  if (install) Check(program->RemoveFlow(key).ok());
  return 0;
}
