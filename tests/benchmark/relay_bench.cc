// relay_bench: drives N concurrent calls through an RTP relay on loopback and measures what comes out.
//
// Each call is two UDP sockets on 127.0.0.1 (--phone_ip: another local address, e.g. a veth's in a
// network namespace of the benchmark's own), the caller's and the callee's phone, each sending 172-byte
// RTP (12-byte header + 160-byte payload, G.711 at 20 ms) at 50 packets/s to its relay port. Phones
// send from ports other than the ones written in their SDP, so the relay must latch. The 2N streams
// are paced evenly by one timerfd: call i starts at i/N of the 20 ms period, its callee half a period
// later. The payload carries a magic, the stream number, a per-stream sequence, the send time
// (CLOCK_MONOTONIC ns) and the send time on CLOCK_REALTIME: the receiving phone's kernel receive
// timestamp (SO_TIMESTAMPNS, CLOCK_REALTIME) minus the latter is the latency added between the
// generator's send and the relay's forward, excluding the generator's own receive delays.
//
// The generator must cost less per packet than the relays it measures, on a core of its own:
// - Sends (--send_mode): "socket" is one sendto() per packet from the phone's socket; "raw" (the
//   default when CAP_NET_RAW allows) writes the very same datagrams (127.0.0.1:<phone port> to the
//   relay port; IPv4 header completed by the kernel, UDP checksum 0) through one IPPROTO_RAW socket,
//   16 per sendmmsg. The relay cannot tell the difference; the generator's ceiling goes from ~150k
//   to ~200k packets/s on the benchmark machine. The 16-packet bursts add up to ~0.1 ms of queueing
//   at the relay to the measured latency at high rates.
// - Receives (--rx_sweep_ms): phone sockets are not watched with epoll but read in a sweep, each
//   every 50 ms (latency comes from the kernel receive stamps, so reading late changes nothing).
//
// A run: bind the phones, set the calls up through the target's control protocol, send for --warmup
// (latching, probation, rtpengine's 3 s delayed learning), measure packets sent during --duration, keep
// sending for --grace so late packets of the window can still arrive (later ones count as lost), then
// tear the calls down and print ONE JSON object on stdout:
//   {"target":"latchkey","calls":500,"offered_pps":50000,"forwarded_pps":...,"loss_pct":...,"reordered":...,
//    "duplicates":...,"p50_us":...,"p99_us":...,"max_us":...,"silenced_streams":...,...}
// "loss_pct" counts the window's packets that were not forwarded within --max_delay (200 ms: a jitter
// buffer has given up on them), "dropped_pct" only those that never arrived, "late" the others; an
// overloaded relay queues first (each socket buffer holds seconds of a 50 packets/s stream) and drops
// later. "silenced_streams" counts streams that received < 50% of the packets they were sent in the
// window (late or not); "min_stream_delivery_pct" is the worst stream's share.
// "gen_late_p99_us" / "gen_cpu_pct" show whether the generator itself kept up; "target_*" figures
// (CPU, RSS) come from /proc/<--target_pid>.
//
// CPU per relayed packet (scripts/bench-relay.sh --topology=veth): a relay's kernel work (receive,
// and for a kernel fast path all of its forwarding) runs outside its process, in the NAPI poll of its
// interface. With threaded NAPI that poll is a kthread: --relay_tids names those threads, whose CPU
// (schedstat, exact) in the window is added to the relay process's: "relay_kthread_cpu_pct" and
// "relay_cpu_ns_per_pkt" = (process + kthreads) CPU / forwarded packets; "relay_kthread_pkts_per_run"
// is how many packets a kthread wake-up carried (each has a fixed cost). --relay_core / --gen_core
// add each core's busy share from /proc/stat ("*_core_busy_pct": tick-sampled, and including other
// work on that core), --gen_tids the generator side's kthreads (its receive path), which count
// towards "gen_saturated" (see GenSaturated), --netdev the phones' interface's drops in the window
// ("netdev_{rx,tx}_drops"). --metrics_url reads latchkey-relay's /metrics at the window's start and
// end: "kernel_in_pps" / "socket_in_pps" (latchkey_relay_packets_total{direction="in",path=...}; the
// kernel's share is folded in once a second, so it is exact to +-1 s of traffic),
// "fast_path_mode" and "fast_path_flows" at the window's end.
//
// Targets:
//   latchkey  AllocateSession + AnswerSession on latchkey-control (--control), ReleaseSession at the end.
//   rtpengine offer / answer / delete over the ng protocol (bencode over UDP, --ng).
//   minimal   minimal_forwarder: call i's ports are --minimal_base_port + 2i (caller) and + 2i + 1 (callee).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/marshalling.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "latchkey/v1/nat_control.grpc.pb.h"

ABSL_FLAG(std::string, target, "latchkey", "latchkey, rtpengine or minimal");
ABSL_FLAG(int, calls, 100, "Concurrent calls (2 RTP streams each, 50 packets/s per stream)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "Measured time");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(4),
          "Media before measuring: latching/probation, and rtpengine's delayed endpoint learning (3 s)");
ABSL_FLAG(absl::Duration, grace, absl::Milliseconds(500),
          "Sending goes on this long after the window; packets of the window arriving later count as lost");
ABSL_FLAG(absl::Duration, max_delay, absl::Milliseconds(200),
          "A packet forwarded later than this after it was sent is late: a jitter buffer has given up on it, so "
          "loss_pct counts it (an overloaded relay first queues, and only drops once its socket buffers are full)");
ABSL_FLAG(std::string, control, "127.0.0.1:7400", "latchkey: latchkey-control gRPC address");
ABSL_FLAG(std::string, latching_mode, "heuristic",
          "latchkey: heuristic, default (control decides), first_packet, signaling_source or strict");
ABSL_FLAG(int, setup_threads, 8, "latchkey: concurrent gRPC clients for setup and release");
ABSL_FLAG(std::string, ng, "127.0.0.1:2223", "rtpengine: ng control address (UDP)");
ABSL_FLAG(int, ng_window, 64, "rtpengine: ng requests in flight");
ABSL_FLAG(int, minimal_base_port, 20000, "minimal: minimal_forwarder's --base_port");
ABSL_FLAG(int, phone_base_port, 10000,
          "Call i's phones bind base+4i (caller) and base+4i+1 (callee) and announce base+4i+2 / base+4i+3 in SDP");
ABSL_FLAG(int, tick_us, 200, "Pacing timer period; every packet due by a tick is sent on it");
ABSL_FLAG(bool, kernel_timestamps, true, "Latency from SO_TIMESTAMPNS receive stamps (else user-space receive time)");
ABSL_FLAG(std::string, send_mode, "auto",
          "socket: each phone sends with sendto() from its own socket; raw: the phones' datagrams (same "
          "addresses and ports, UDP checksum 0) go out through one IPPROTO_RAW socket in sendmmsg batches of "
          "16, which lifts the generator's ceiling (needs CAP_NET_RAW); auto: raw if it can be opened");
ABSL_FLAG(bool, connect, true,
          "connect() each phone to its relay port (cheaper sends; the relays under test are symmetric, so "
          "replies come from that very port)");
ABSL_FLAG(int, rx_sweep_ms, 50,
          "Read every phone socket once per this period instead of waking up per packet (0: epoll per socket). "
          "Latency comes from kernel receive stamps either way; sweeping batches the reads, which keeps the "
          "generator's cost per packet below the relay's and spares the relay the wake-ups");
ABSL_FLAG(int, target_pid, 0, "Relay process to sample CPU and RSS from (0: none)");
ABSL_FLAG(std::string, phone_ip, "127.0.0.1",
          "Local IPv4 address the phones bind, write into their SDP (and signalling source) and send from");
ABSL_FLAG(std::string, minimal_ip, "127.0.0.1", "minimal: minimal_forwarder's --ip");
ABSL_FLAG(bool, udp_checksum, false,
          "raw sends: compute the UDP checksum in software (else 0, \"none\"), so that the phones' kernels "
          "verify what a relay that rewrites headers (a kernel fast path) sends them");
ABSL_FLAG(std::vector<std::string>, relay_tids, {},
          "Threads whose CPU in the window counts as the relay's besides --target_pid's (e.g. the threaded NAPI "
          "kthreads of the relay's interface)");
ABSL_FLAG(std::vector<std::string>, gen_tids, {},
          "Threads whose CPU in the window counts as the generator's besides its own (e.g. the threaded NAPI "
          "kthreads of the phones' interface)");
ABSL_FLAG(int, relay_core, -1, "Core of the relay under test: its busy share from /proc/stat (-1: not reported)");
ABSL_FLAG(int, gen_core, -1, "Core of the generator: its busy share from /proc/stat (-1: not reported)");
ABSL_FLAG(std::string, netdev, "",
          "The phones' network interface (in relay_bench's namespace): its rx/tx drops in the window, e.g. a veth "
          "whose peer's receive ring overflowed");
ABSL_FLAG(std::string, metrics_url, "",
          "latchkey-relay's http://IPv4:PORT/metrics, read at the window's start and end (kernel vs socket path)");
ABSL_FLAG(std::string, note, "", "Free text copied into the JSON (e.g. the relay's thread count)");

namespace latchkey::bench {
namespace {

constexpr int kPacketSize = 172;
constexpr int kHeaderSize = 12;
constexpr uint32_t kMagic = 0x4C4B424E;  // "LKBN"
constexpr int64_t kPeriodNs = 20'000'000;
constexpr int kPacketsPerSecond = 50;
constexpr int kMaxBurst = 512;

int64_t ClockNs(clockid_t clock) {
  timespec ts;
  ::clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
int64_t MonoNs() { return ClockNs(CLOCK_MONOTONIC); }
int64_t RealNs() { return ClockNs(CLOCK_REALTIME); }

// Log-linear histogram of microsecond values: exact below 2048, then 1024 sub-buckets per power of two
// (< 0.1 % error).
class Histogram {
 public:
  Histogram() : buckets_(2048 + 53 * 1024, 0) {}
  void Add(uint64_t v) {
    ++buckets_[Index(v)];
    ++count_;
    max_ = std::max(max_, v);
  }
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  uint64_t Percentile(double p) const {
    if (count_ == 0) return 0;
    const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(p * static_cast<double>(count_))));
    uint64_t seen = 0;
    for (size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= rank) return std::min(Value(i), max_);
    }
    return max_;
  }

 private:
  static size_t Index(uint64_t v) {
    if (v < 2048) return static_cast<size_t>(v);
    const int msb = 63 - __builtin_clzll(v);
    const int shift = msb - 10;
    return 2048 + static_cast<size_t>(msb - 11) * 1024 + static_cast<size_t>((v >> shift) - 1024);
  }
  static uint64_t Value(size_t index) {
    if (index < 2048) return index;
    const size_t k = index - 2048;
    const int shift = static_cast<int>(k / 1024) + 1;
    const uint64_t mantissa = k % 1024 + 1024;
    return (mantissa << shift) + ((uint64_t{1} << shift) >> 1);
  }
  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

struct Call {
  int fd[2] = {-1, -1};        // 0 caller phone, 1 callee phone
  uint16_t port[2] = {0, 0};   // where they really send from
  uint16_t sdp_port[2] = {0, 0};  // what their SDP says
  sockaddr_in relay[2]{};      // where each phone sends (its relay port)
  bool ok = false;
  std::string session_id;  // latchkey
};

// --phone_ip (127.0.0.1 unless told), parsed once by Main.
in_addr g_phone_ip{htonl(INADDR_LOOPBACK)};
std::string g_phone_ip_text = "127.0.0.1";

sockaddr_in Address(in_addr ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr = ip;
  a.sin_port = htons(port);
  return a;
}
sockaddr_in PhoneAddress(uint16_t port) { return Address(g_phone_ip, port); }

std::string PhoneSdp(uint16_t port, int call) {
  return absl::StrCat("v=0\r\no=- ", 1000 + call, " 1 IN IP4 ", g_phone_ip_text,
                      "\r\ns=-\r\nc=IN IP4 ", g_phone_ip_text, "\r\nt=0 0\r\nm=audio ", port,
                      " RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
                      "a=ptime:20\r\na=sendrecv\r\n");
}

// The first audio stream's address: its c= line, else the session's; port from its m= line.
std::optional<sockaddr_in> SdpAudioAddress(absl::string_view sdp) {
  std::string session_ip, media_ip;
  int port = -1;
  bool in_media = false, in_first_audio = false;
  for (absl::string_view line : absl::StrSplit(sdp, '\n')) {
    line = absl::StripTrailingAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "m=")) {
      in_media = true;
      in_first_audio = false;
      if (port < 0 && absl::ConsumePrefix(&line, "audio ")) {
        std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(' ', 1));
        absl::string_view number = parts[0].substr(0, parts[0].find('/'));
        if (!absl::SimpleAtoi(number, &port)) return std::nullopt;
        in_first_audio = true;
      }
    } else if (absl::ConsumePrefix(&line, "c=IN IP4 ")) {
      std::string ip(line.substr(0, line.find('/')));
      if (!in_media) session_ip = ip;
      if (in_first_audio && media_ip.empty()) media_ip = ip;
    }
  }
  const std::string& ip = media_ip.empty() ? session_ip : media_ip;
  if (port <= 0 || port > 65535 || ip.empty()) return std::nullopt;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) return std::nullopt;
  return a;
}

// ---------------------------------------------------------------------------------------------------
// Process figures from /proc.

// Resident memory from smaps_rollup, which walks the page tables: VmRSS in /proc/PID/status comes
// from per-CPU counters that can lag by megabytes right after a burst of page faults (as a call setup
// is), which made memory seem to appear only later, once media flowed.
int64_t RssBytes(int pid) {
  if (pid <= 0) return -1;
  for (const char* file : {"smaps_rollup", "status"}) {
    const std::string key = std::string(file) == "status" ? "VmRSS:" : "Rss:";
    std::ifstream in(absl::StrCat("/proc/", pid, "/", file));
    std::string line;
    while (std::getline(in, line)) {
      int64_t kib;
      if (line.rfind(key, 0) == 0 &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::StripSuffix(absl::string_view(line).substr(key.size()), "kB")),
                           &kib)) {
        return kib * 1024;
      }
    }
  }
  return -1;
}

// utime + stime of all threads, in seconds; -1 if unknown.
double CpuSeconds(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
  // After "pid (comm) ": state is field 3, utime 14, stime 15.
  if (fields.size() < 13) return -1;
  int64_t utime, stime;
  if (!absl::SimpleAtoi(fields[11], &utime) || !absl::SimpleAtoi(fields[12], &stime)) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Threads' time on the CPU (seconds) and the number of times they were switched in, summed over
// the threads, from /proc/<tid>/schedstat (any task id, kthreads included; nanoseconds, exact);
// seconds = -1 if a thread is unknown (gone: a NAPI instance was recreated).
struct ThreadRuns {
  double seconds = -1;
  int64_t runs = 0;
};
ThreadRuns ThreadsCpu(const std::vector<std::string>& tids) {
  ThreadRuns sum{0, 0};
  for (const std::string& tid : tids) {
    std::ifstream in(absl::StrCat("/proc/", tid, "/schedstat"));
    int64_t ns = -1, wait_ns = 0, runs = 0;
    if (!(in >> ns >> wait_ns >> runs) || ns < 0) return {};
    sum.seconds += static_cast<double>(ns) / 1e9;
    sum.runs += runs;
  }
  return sum;
}

// A core's busy and total time (jiffies) from /proc/stat: busy = user + nice + system + irq + softirq
// (+ steal in the total only); {-1, -1} if unknown.
std::pair<int64_t, int64_t> CoreTimes(int core) {
  if (core < 0) return {-1, -1};
  std::ifstream in("/proc/stat");
  const std::string key = absl::StrCat("cpu", core);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() < 9 || fields[0] != key) continue;
    int64_t v[8];
    for (int i = 0; i < 8; ++i) {
      if (!absl::SimpleAtoi(fields[1 + i], &v[i])) return {-1, -1};
    }
    // user nice system idle iowait irq softirq steal
    return {v[0] + v[1] + v[2] + v[5] + v[6], v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]};
  }
  return {-1, -1};
}

// {rx_dropped, tx_dropped} of a network interface (this namespace's /sys), {-1, -1} if unknown.
std::pair<int64_t, int64_t> NetdevDrops(const std::string& dev) {
  std::pair<int64_t, int64_t> drops{-1, -1};
  if (dev.empty()) return drops;
  for (int i = 0; i < 2; ++i) {
    std::ifstream in(absl::StrCat("/sys/class/net/", dev, "/statistics/", i == 0 ? "rx_dropped" : "tx_dropped"));
    int64_t v;
    if (!(in >> v)) return {-1, -1};
    (i == 0 ? drops.first : drops.second) = v;
  }
  return drops;
}

// latchkey-relay's Prometheus figures that show which path carried the packets.
struct RelayMetrics {
  bool ok = false;
  std::string error;
  double kernel_in = -1, socket_in = -1, flows = -1;
  std::string mode;
};

// GET http://IPv4:PORT/PATH (HTTP/1.0, the server closes), 2 s timeouts; the body or an error.
absl::StatusOr<std::string> HttpGet(const std::string& url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://")) return absl::InvalidArgumentError("metrics_url: http:// only");
  const size_t slash = rest.find('/');
  const absl::string_view host_port = rest.substr(0, slash);
  const std::string path = slash == absl::string_view::npos ? "/" : std::string(rest.substr(slash));
  const size_t colon = host_port.rfind(':');
  int port = 0;
  sockaddr_in server{};
  server.sin_family = AF_INET;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(host_port.substr(colon + 1), &port) || port <= 0 ||
      port > 65535 || ::inet_pton(AF_INET, std::string(host_port.substr(0, colon)).c_str(), &server.sin_addr) != 1) {
    return absl::InvalidArgumentError("metrics_url: expected http://IPv4:PORT/PATH");
  }
  server.sin_port = htons(static_cast<uint16_t>(port));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  timeval timeout{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string response;
  absl::Status status;
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", host_port, "\r\n\r\n");
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&server), sizeof(server)) != 0) {
    status = absl::UnavailableError(absl::StrCat("connect ", host_port, ": ", std::strerror(errno)));
  } else if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    status = absl::UnavailableError(absl::StrCat("send: ", std::strerror(errno)));
  } else {
    char buffer[65536];
    while (response.size() < (16u << 20)) {
      const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
      if (n < 0) status = absl::UnavailableError(absl::StrCat("recv: ", std::strerror(errno)));
      if (n <= 0) break;
      response.append(buffer, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || body == std::string::npos) {
    return absl::DataLossError("not an HTTP response");
  }
  if (response.compare(9, 3, "200") != 0) return absl::UnavailableError(response.substr(0, response.find('\r')));
  return response.substr(body + 4);
}

RelayMetrics ReadRelayMetrics(const std::string& url) {
  RelayMetrics m;
  absl::StatusOr<std::string> body = HttpGet(url);
  if (!body.ok()) {
    m.error = body.status().ToString();
    return m;
  }
  for (absl::string_view line : absl::StrSplit(*body, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    const absl::string_view series = line.substr(0, space);
    double value;
    if (!absl::SimpleAtod(line.substr(space + 1), &value)) continue;
    if (series == "latchkey_relay_packets_total{direction=\"in\",path=\"kernel\"}") m.kernel_in = value;
    if (series == "latchkey_relay_packets_total{direction=\"in\",path=\"socket\"}") m.socket_in = value;
    if (series == "latchkey_relay_fast_path_flows") m.flows = value;
    absl::string_view mode = series;
    if (value == 1 && absl::ConsumePrefix(&mode, "latchkey_relay_fast_path{mode=\"") &&
        absl::ConsumeSuffix(&mode, "\"}")) {
      m.mode = std::string(mode);
    }
  }
  m.ok = m.socket_in >= 0;
  if (!m.ok) m.error = "no latchkey_relay_packets_total in /metrics";
  return m;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one;
  in >> one;
  return one.empty() ? "null" : one;
}

double SelfCpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// ---------------------------------------------------------------------------------------------------
// Targets: set calls up (fill Call::relay, set Call::ok) and tear them down.

class Target {
 public:
  virtual ~Target() = default;
  // Waits until the relay can take calls.
  virtual absl::Status Prepare() { return absl::OkStatus(); }
  virtual absl::Status Setup(std::vector<Call>& calls) = 0;
  // Returns the number of failed teardowns.
  virtual int Teardown(std::vector<Call>& calls) = 0;
};

class MinimalTarget : public Target {
 public:
  MinimalTarget(int base, const std::string& ip) : base_(base) {
    valid_ip_ = ::inet_pton(AF_INET, ip.c_str(), &ip_) == 1;
  }
  absl::Status Setup(std::vector<Call>& calls) override {
    if (!valid_ip_) return absl::InvalidArgumentError("minimal_ip: not an IPv4 address");
    if (base_ < 1 || base_ + 2 * static_cast<int64_t>(calls.size()) > 65536) {
      return absl::InvalidArgumentError("minimal_base_port: ports out of range");
    }
    for (size_t i = 0; i < calls.size(); ++i) {
      calls[i].relay[0] = Address(ip_, static_cast<uint16_t>(base_ + 2 * i));
      calls[i].relay[1] = Address(ip_, static_cast<uint16_t>(base_ + 2 * i + 1));
      calls[i].ok = true;
    }
    return absl::OkStatus();
  }
  int Teardown(std::vector<Call>&) override { return 0; }

 private:
  int base_;
  in_addr ip_{};
  bool valid_ip_ = false;
};

class LatchkeyTarget : public Target {
 public:
  LatchkeyTarget(const std::string& address, v1::LatchingMode mode, int threads) : mode_(mode), threads_(threads) {
    for (int i = 0; i < 2; ++i) {
      grpc::ChannelArguments args;
      args.SetInt("latchkey.relay_bench.channel", i);  // distinct connections
      channels_.push_back(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    }
  }

  absl::Status Prepare() override {
    auto stub = v1::NatControlService::NewStub(channels_[0]);
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
      v1::ListWorkersResponse response;
      if (stub->ListWorkers(&context, v1::ListWorkersRequest(), &response).ok()) {
        for (const v1::Worker& w : response.workers()) {
          if (w.state() == v1::WORKER_STATE_READY) {
            // A few calls first, so the RSS baseline already holds the RPC paths' one-time allocations.
            std::vector<Call> warm(8);
            for (size_t i = 0; i < warm.size(); ++i) warm[i].sdp_port[0] = warm[i].sdp_port[1] = 9;
            absl::Status status = Run(warm, "relay-bench-warm");
            Teardown(warm);
            return status;
          }
        }
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
    return absl::UnavailableError("no READY relay worker registered with latchkey-control within 30 s");
  }

  absl::Status Setup(std::vector<Call>& calls) override { return Run(calls, "relay-bench"); }

  int Teardown(std::vector<Call>& calls) override {
    std::atomic<int> errors{0};
    ForEach(calls.size(), [&](v1::NatControlService::Stub& stub, size_t i) {
      Call& call = calls[i];
      if (call.session_id.empty()) return;
      v1::ReleaseSessionRequest request;
      request.set_session_id(call.session_id);
      v1::ReleaseSessionResponse response;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      if (!stub.ReleaseSession(&context, request, &response).ok()) errors++;
      call.session_id.clear();
    });
    return errors.load();
  }

 private:
  template <typename Fn>
  void ForEach(size_t count, Fn fn) {
    std::atomic<size_t> next{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < std::max(1, threads_); ++t) {
      threads.emplace_back([&, t] {
        auto stub = v1::NatControlService::NewStub(channels_[t % channels_.size()]);
        for (size_t i = next++; i < count; i = next++) fn(*stub, i);
      });
    }
    for (auto& thread : threads) thread.join();
  }

  absl::Status Run(std::vector<Call>& calls, const std::string& prefix) {
    std::mutex mu;
    std::string first_error;
    int failed = 0;
    const int pid = static_cast<int>(::getpid());
    ForEach(calls.size(), [&](v1::NatControlService::Stub& stub, size_t i) {
      Call& call = calls[i];
      auto fail = [&](const std::string& what, const grpc::Status& status) {
        std::lock_guard<std::mutex> lock(mu);
        ++failed;
        if (first_error.empty()) first_error = absl::StrCat(what, ": ", status.error_message());
      };
      v1::AllocateSessionRequest offer;
      offer.set_call_id(absl::StrCat(prefix, "-", pid, "-", i, "@bench"));
      offer.set_from_tag(absl::StrCat("a", i));
      offer.set_sdp(PhoneSdp(call.sdp_port[0], static_cast<int>(i)));
      offer.mutable_signaling_source()->set_ip(g_phone_ip_text);
      offer.mutable_signaling_source()->set_port(5060);
      offer.mutable_options()->set_latching_mode(mode_);
      v1::AllocateSessionResponse offered;
      {
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        if (grpc::Status s = stub.AllocateSession(&context, offer, &offered); !s.ok()) return fail("AllocateSession", s);
      }
      call.session_id = offered.session().session_id();
      v1::AnswerSessionRequest answer;
      answer.set_session_id(call.session_id);
      answer.set_to_tag(absl::StrCat("b", i));
      answer.set_sdp(PhoneSdp(call.sdp_port[1], static_cast<int>(i)));
      answer.mutable_signaling_source()->set_ip(g_phone_ip_text);
      answer.mutable_signaling_source()->set_port(5062);
      v1::AnswerSessionResponse answered;
      {
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        if (grpc::Status s = stub.AnswerSession(&context, answer, &answered); !s.ok()) return fail("AnswerSession", s);
      }
      // The offer as rewritten goes to the callee: it names the port the callee sends to; the answer
      // as rewritten goes to the caller.
      auto callee_dst = SdpAudioAddress(offered.sdp());
      auto caller_dst = SdpAudioAddress(answered.sdp());
      if (!callee_dst || !caller_dst) return fail("SDP", grpc::Status(grpc::StatusCode::INTERNAL, "no audio address"));
      call.relay[0] = *caller_dst;
      call.relay[1] = *callee_dst;
      call.ok = true;
    });
    if (failed == static_cast<int>(calls.size())) return absl::UnavailableError(first_error);
    if (failed > 0) std::fprintf(stderr, "relay_bench: %d of %zu calls failed: %s\n", failed, calls.size(), first_error.c_str());
    return absl::OkStatus();
  }

  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  v1::LatchingMode mode_;
  int threads_;
};

// A bencode value, as much as the ng protocol needs.
struct BValue {
  enum Kind { kString, kInt, kList, kDict } kind = kString;
  std::string str;
  int64_t number = 0;
  std::vector<BValue> list;
  std::vector<std::pair<std::string, BValue>> dict;

  const BValue* Get(absl::string_view key) const {
    for (const auto& [k, v] : dict) {
      if (k == key) return &v;
    }
    return nullptr;
  }
  std::string GetString(absl::string_view key) const {
    const BValue* v = Get(key);
    return v && v->kind == kString ? v->str : "";
  }
};

std::optional<BValue> BDecode(absl::string_view& in, int depth = 0) {
  if (in.empty() || depth > 32) return std::nullopt;
  BValue v;
  const char c = in.front();
  if (c == 'i') {
    const size_t end = in.find('e');
    if (end == absl::string_view::npos || !absl::SimpleAtoi(in.substr(1, end - 1), &v.number)) return std::nullopt;
    v.kind = BValue::kInt;
    in.remove_prefix(end + 1);
    return v;
  }
  if (c == 'l' || c == 'd') {
    in.remove_prefix(1);
    v.kind = c == 'l' ? BValue::kList : BValue::kDict;
    while (!in.empty() && in.front() != 'e') {
      if (v.kind == BValue::kDict) {
        auto key = BDecode(in, depth + 1);
        if (!key || key->kind != BValue::kString) return std::nullopt;
        auto value = BDecode(in, depth + 1);
        if (!value) return std::nullopt;
        v.dict.emplace_back(std::move(key->str), *std::move(value));
      } else {
        auto item = BDecode(in, depth + 1);
        if (!item) return std::nullopt;
        v.list.push_back(*std::move(item));
      }
    }
    if (in.empty()) return std::nullopt;
    in.remove_prefix(1);
    return v;
  }
  const size_t colon = in.find(':');
  size_t length = 0;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(in.substr(0, colon), &length) ||
      in.size() - colon - 1 < length) {
    return std::nullopt;
  }
  v.str = std::string(in.substr(colon + 1, length));
  in.remove_prefix(colon + 1 + length);
  return v;
}

std::string BString(absl::string_view s) { return absl::StrCat(s.size(), ":", s); }

class RtpengineTarget : public Target {
 public:
  RtpengineTarget(const std::string& address, int window) : window_(std::max(1, window)) {
    std::vector<std::string> parts = absl::StrSplit(address, absl::MaxSplits(':', 1));
    int port = 0;
    if (parts.size() == 2 && absl::SimpleAtoi(parts[1], &port) && port > 0 && port < 65536) {
      server_.sin_family = AF_INET;
      server_.sin_port = htons(static_cast<uint16_t>(port));
      valid_ = ::inet_pton(AF_INET, parts[0].c_str(), &server_.sin_addr) == 1;
    }
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int buffer = 4 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
  }
  ~RtpengineTarget() override {
    if (fd_ >= 0) ::close(fd_);
  }

  absl::Status Prepare() override {
    if (!valid_) return absl::InvalidArgumentError("ng: expected IPv4:PORT");
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&server_), sizeof(server_)) != 0) {
      return absl::UnavailableError(absl::StrCat("ng connect: ", std::strerror(errno)));
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      auto replies = Exchange({"d7:command4:pinge"}, "ping", absl::Seconds(1), 1);
      if (replies[0] && replies[0]->GetString("result") == "pong") return absl::OkStatus();
      absl::SleepFor(absl::Milliseconds(200));
    }
    return absl::UnavailableError("rtpengine does not answer ng ping");
  }

  absl::Status Setup(std::vector<Call>& calls) override {
    const int pid = static_cast<int>(::getpid());
    call_ids_.clear();
    std::vector<std::string> offers, answers;
    for (size_t i = 0; i < calls.size(); ++i) {
      call_ids_.push_back(absl::StrCat("relay-bench-", pid, "-", i, "@bench"));
      offers.push_back(absl::StrCat("d7:command5:offer7:call-id", BString(call_ids_[i]), "8:from-tag",
                                    BString(absl::StrCat("a", i)), "3:sdp",
                                    BString(PhoneSdp(calls[i].sdp_port[0], static_cast<int>(i))), "e"));
    }
    auto offered = Exchange(offers, absl::StrCat(pid, "o"), absl::Seconds(1), 5);
    std::string first_error;
    for (size_t i = 0; i < calls.size(); ++i) {
      answers.push_back(absl::StrCat("d7:command6:answer7:call-id", BString(call_ids_[i]), "8:from-tag",
                                     BString(absl::StrCat("a", i)), "6:to-tag", BString(absl::StrCat("b", i)),
                                     "3:sdp", BString(PhoneSdp(calls[i].sdp_port[1], static_cast<int>(i))), "e"));
    }
    auto answered = Exchange(answers, absl::StrCat(pid, "a"), absl::Seconds(1), 5);
    int failed = 0;
    for (size_t i = 0; i < calls.size(); ++i) {
      std::optional<sockaddr_in> callee_dst, caller_dst;
      if (offered[i] && offered[i]->GetString("result") == "ok") callee_dst = SdpAudioAddress(offered[i]->GetString("sdp"));
      if (answered[i] && answered[i]->GetString("result") == "ok") caller_dst = SdpAudioAddress(answered[i]->GetString("sdp"));
      if (!callee_dst || !caller_dst) {
        ++failed;
        if (first_error.empty()) {
          const auto& r = !callee_dst ? offered[i] : answered[i];
          first_error = r ? absl::StrCat(r->GetString("result"), " ", r->GetString("error-reason"))
                          : std::string("no reply");
        }
        continue;
      }
      calls[i].relay[0] = *caller_dst;
      calls[i].relay[1] = *callee_dst;
      calls[i].ok = true;
    }
    if (failed == static_cast<int>(calls.size())) return absl::UnavailableError(absl::StrCat("ng: ", first_error));
    if (failed > 0) std::fprintf(stderr, "relay_bench: %d of %zu calls failed: %s\n", failed, calls.size(), first_error.c_str());
    return absl::OkStatus();
  }

  int Teardown(std::vector<Call>& calls) override {
    std::vector<std::string> deletes;
    for (size_t i = 0; i < call_ids_.size(); ++i) {
      deletes.push_back(absl::StrCat("d7:command6:delete7:call-id", BString(call_ids_[i]), "8:from-tag",
                                     BString(absl::StrCat("a", i)), "e"));
    }
    auto replies = Exchange(deletes, absl::StrCat(::getpid(), "d"), absl::Seconds(1), 3);
    int errors = 0;
    for (size_t i = 0; i < replies.size(); ++i) {
      if (calls[i].ok && (!replies[i] || replies[i]->GetString("result") != "ok")) ++errors;
    }
    return errors;
  }

 private:
  // Sends every body (cookie = prefix + index) with up to window_ in flight, retransmitting after
  // `timeout` up to `tries` times (rtpengine answers a repeated cookie from its cache).
  std::vector<std::optional<BValue>> Exchange(const std::vector<std::string>& bodies, const std::string& prefix,
                                               absl::Duration timeout, int tries) {
    std::vector<std::optional<BValue>> replies(bodies.size());
    struct Pending {
      absl::Time sent;
      int tries;
    };
    std::map<size_t, Pending> pending;
    size_t next = 0;
    auto send = [&](size_t i) {
      const std::string message = absl::StrCat(prefix, i, " ", bodies[i]);
      (void)!::send(fd_, message.data(), message.size(), 0);
    };
    std::vector<char> buffer(65536);
    while (next < bodies.size() || !pending.empty()) {
      while (next < bodies.size() && static_cast<int>(pending.size()) < window_) {
        send(next);
        pending[next] = {absl::Now(), 1};
        ++next;
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) > 0) {
        while (true) {
          const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
          if (n <= 0) break;
          absl::string_view reply(buffer.data(), static_cast<size_t>(n));
          const size_t space = reply.find(' ');
          if (space == absl::string_view::npos) continue;
          absl::string_view cookie = reply.substr(0, space);
          size_t index;
          if (!absl::ConsumePrefix(&cookie, prefix) || !absl::SimpleAtoi(cookie, &index)) continue;
          auto it = pending.find(index);
          if (it == pending.end()) continue;
          absl::string_view body = reply.substr(space + 1);
          replies[index] = BDecode(body);
          pending.erase(it);
        }
      }
      const absl::Time now = absl::Now();
      for (auto it = pending.begin(); it != pending.end();) {
        if (now - it->second.sent < timeout) {
          ++it;
        } else if (it->second.tries >= tries) {
          it = pending.erase(it);
        } else {
          send(it->first);
          it->second = {now, it->second.tries + 1};
          ++it;
        }
      }
    }
    return replies;
  }

  sockaddr_in server_{};
  bool valid_ = false;
  int fd_ = -1;
  int window_;
  std::vector<std::string> call_ids_;
};

// ---------------------------------------------------------------------------------------------------
// The load.

struct TxStream {
  int fd = -1;
  uint16_t port = 0;  // the phone's own port (network order), for raw sends
  sockaddr_in to{};
  uint32_t ssrc = 0;
  uint32_t seq = 0;
  uint64_t sent_window = 0;
};

struct RxStream {
  int64_t highest = -1;
  uint64_t received_window = 0;
  std::vector<uint64_t> seen;  // bitmap by sequence
};

struct Results {
  uint64_t sent_window = 0, received_window = 0, reordered = 0, duplicates = 0, misrouted = 0, junk = 0;
  uint64_t send_errors = 0, silenced = 0, streams = 0, late = 0;
  double min_stream_delivery = 1.0;
  Histogram latency_us, late_us;
  double seconds = 0, gen_cpu = 0, target_cpu = -1;
  // -1: not asked for (no --relay_tids / --gen_tids / --relay_core / --gen_core) or unknown.
  double relay_kthread_cpu = -1, gen_kthread_cpu = -1, relay_core_busy = -1, gen_core_busy = -1;
  double relay_kthread_runs = -1;  // per second: how often the relay's NAPI kthreads were switched in
  int64_t netdev_rx_drops = -1, netdev_tx_drops = -1;  // --netdev's, in the window
  RelayMetrics metrics_start, metrics_end;
  int64_t rss_at_start = -1, rss_at_end = -1;
  bool kernel_timestamps = false;
  bool raw_sends = false;
};

class Load {
 public:
  Load(std::vector<Call>& calls, int target_pid) : calls_(calls), target_pid_(target_pid) {}
  ~Load() {
    if (raw_fd_ >= 0) ::close(raw_fd_);
  }

  absl::Status Run(Results* results) {
    const size_t streams = 2 * calls_.size();
    tx_.resize(streams);
    rx_.resize(streams);
    const int64_t warmup = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_warmup));
    const int64_t duration = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_duration));
    const int64_t grace = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_grace));
    const size_t max_packets = static_cast<size_t>((warmup + duration + grace) / kPeriodNs + 16);
    std::vector<std::pair<int64_t, uint32_t>> order;  // (phase, stream)
    const int64_t n = static_cast<int64_t>(calls_.size());
    for (size_t c = 0; c < calls_.size(); ++c) {
      if (!calls_[c].ok) continue;
      const int64_t phase = static_cast<int64_t>(c) * kPeriodNs / n;
      for (int side = 0; side < 2; ++side) {
        const uint32_t s = static_cast<uint32_t>(2 * c + side);
        tx_[s].fd = calls_[c].fd[side];
        tx_[s].port = htons(calls_[c].port[side]);
        tx_[s].to = calls_[c].relay[side];
        tx_[s].ssrc = 0x10000000u + s;
        rx_[s].seen.assign((max_packets + 63) / 64, 0);
        order.emplace_back((phase + side * kPeriodNs / 2) % kPeriodNs, s);
      }
    }
    std::sort(order.begin(), order.end());
    if (order.empty()) return absl::FailedPreconditionError("no call was set up");
    results->streams = order.size();
    const std::string send_mode = absl::GetFlag(FLAGS_send_mode);
    if (send_mode == "raw" || send_mode == "auto") {
      raw_fd_ = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);  // send-only: receives nothing
      if (raw_fd_ < 0 && send_mode == "raw") {
        return absl::PermissionDeniedError(absl::StrCat("raw socket: ", std::strerror(errno)));
      }
      if (raw_fd_ >= 0) {
        int buffer = 4 << 20;
        ::setsockopt(raw_fd_, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
        for (int i = 0; i < kRawBatch; ++i) {
          raw_iov_[i] = {raw_packets_[i], sizeof(raw_packets_[i])};
          raw_messages_[i].msg_hdr = {};
          raw_messages_[i].msg_hdr.msg_iov = &raw_iov_[i];
          raw_messages_[i].msg_hdr.msg_iovlen = 1;
          raw_messages_[i].msg_hdr.msg_name = &raw_to_[i];
          raw_messages_[i].msg_hdr.msg_namelen = sizeof(raw_to_[i]);
        }
      }
    } else if (send_mode != "socket") {
      return absl::InvalidArgumentError("send_mode: socket, raw or auto");
    }
    results->raw_sends = raw_fd_ >= 0;
    if (raw_fd_ < 0 && absl::GetFlag(FLAGS_connect)) {
      for (const auto& [phase, s] : order) {
        if (::connect(tx_[s].fd, reinterpret_cast<const sockaddr*>(&tx_[s].to), sizeof(tx_[s].to)) != 0) {
          return absl::InternalError(absl::StrCat("connect: ", std::strerror(errno)));
        }
      }
      connected_ = true;
    }

    const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    const int timer_fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (epoll_fd < 0 || timer_fd < 0) return absl::InternalError(absl::StrCat("epoll/timerfd: ", std::strerror(errno)));
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = UINT64_MAX;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, timer_fd, &event);
    const int sweep_ms = absl::GetFlag(FLAGS_kernel_timestamps) ? absl::GetFlag(FLAGS_rx_sweep_ms) : 0;
    std::vector<size_t> sockets;  // the socket that receives stream s is s ^ 1
    for (const auto& [phase, s] : order) sockets.push_back(s ^ 1u);
    for (size_t socket_index : sockets) {
      if (sweep_ms > 0) break;
      event.data.u64 = socket_index;
      ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, calls_[socket_index / 2].fd[socket_index % 2], &event);
    }

    const int64_t start = MonoNs() + 20'000'000;
    t0_ = start + warmup;
    t1_ = t0_ + duration;
    const int64_t send_end = t1_ + grace;
    const int64_t recv_end = send_end + 100'000'000;
    const int64_t tick = std::max(20, absl::GetFlag(FLAGS_tick_us)) * int64_t{1000};
    // Sockets read per loop pass (one pass per tick at least) so that each is read every sweep_ms.
    const size_t sweep_slice =
        sweep_ms > 0 ? static_cast<size_t>(std::ceil(static_cast<double>(sockets.size()) * static_cast<double>(tick) /
                                                     (sweep_ms * 1e6)))
                     : 0;
    size_t sweep_cursor = 0;
    itimerspec spec{};
    spec.it_value = {static_cast<time_t>(start / 1'000'000'000), static_cast<long>(start % 1'000'000'000)};
    spec.it_interval = {static_cast<time_t>(tick / 1'000'000'000), static_cast<long>(tick % 1'000'000'000)};
    ::timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &spec, nullptr);

    uint8_t packet[kPacketSize];
    std::memset(packet, 0xFF, sizeof(packet));  // mu-law silence
    packet[0] = 0x80;  // V=2
    packet[1] = 0;     // PT 0 (PCMU)

    // latchkey-relay's /metrics at the window's start and end, read by a thread of their own: an HTTP
    // round trip must not stall the sends.
    const std::string metrics_url = absl::GetFlag(FLAGS_metrics_url);
    struct Joiner {
      std::thread thread;
      ~Joiner() {
        if (thread.joinable()) thread.join();
      }
    } probe;
    if (!metrics_url.empty()) {
      probe.thread = std::thread([this, metrics_url, results] {
        for (int64_t at : {t0_, t1_}) {
          const timespec when{static_cast<time_t>(at / 1'000'000'000), static_cast<long>(at % 1'000'000'000)};
          while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &when, nullptr) == EINTR) {
          }
          (at == t0_ ? results->metrics_start : results->metrics_end) = ReadRelayMetrics(metrics_url);
        }
      });
    }
    const std::vector<std::string> relay_tids = absl::GetFlag(FLAGS_relay_tids);
    const std::vector<std::string> gen_tids = absl::GetFlag(FLAGS_gen_tids);
    const int relay_core = absl::GetFlag(FLAGS_relay_core), gen_core = absl::GetFlag(FLAGS_gen_core);

    size_t cursor = 0;
    int64_t cycle = 0;
    bool sending = true, measuring = false, measured = false;
    double cpu0 = 0, target_cpu0 = -1;
    ThreadRuns relay_kthreads0, gen_kthreads0;
    std::pair<int64_t, int64_t> relay_core0{-1, -1}, gen_core0{-1, -1}, netdev0{-1, -1};
    const std::string netdev = absl::GetFlag(FLAGS_netdev);
    // Busy share of a core between two /proc/stat readings; -1 if unknown.
    auto busy = [](std::pair<int64_t, int64_t> a, std::pair<int64_t, int64_t> b) {
      return a.first < 0 || b.first < 0 || b.second <= a.second
                 ? -1.0
                 : static_cast<double>(b.first - a.first) / static_cast<double>(b.second - a.second);
    };
    std::vector<epoll_event> events(128);
    while (true) {
      const int ready = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), 50);
      if (ready < 0 && errno != EINTR) return absl::InternalError(absl::StrCat("epoll_wait: ", std::strerror(errno)));
      int64_t now = MonoNs();
      if (!measuring && !measured && now >= t0_) {
        measuring = true;
        cpu0 = SelfCpuSeconds();
        target_cpu0 = CpuSeconds(target_pid_);
        if (!relay_tids.empty()) relay_kthreads0 = ThreadsCpu(relay_tids);
        if (!gen_tids.empty()) gen_kthreads0 = ThreadsCpu(gen_tids);
        relay_core0 = CoreTimes(relay_core);
        gen_core0 = CoreTimes(gen_core);
        netdev0 = NetdevDrops(netdev);
        results->rss_at_start = RssBytes(target_pid_);
      }
      if (measuring && now >= t1_) {
        measuring = false;
        measured = true;
        results->seconds = static_cast<double>(duration) / 1e9;
        results->gen_cpu = (SelfCpuSeconds() - cpu0) / results->seconds;
        const double target_cpu1 = CpuSeconds(target_pid_);
        if (target_cpu0 >= 0 && target_cpu1 >= 0) results->target_cpu = (target_cpu1 - target_cpu0) / results->seconds;
        if (relay_kthreads0.seconds >= 0) {
          const ThreadRuns now_cpu = ThreadsCpu(relay_tids);
          if (now_cpu.seconds >= 0) {
            results->relay_kthread_cpu = (now_cpu.seconds - relay_kthreads0.seconds) / results->seconds;
            results->relay_kthread_runs = static_cast<double>(now_cpu.runs - relay_kthreads0.runs) / results->seconds;
          }
        }
        if (gen_kthreads0.seconds >= 0) {
          const ThreadRuns now_cpu = ThreadsCpu(gen_tids);
          if (now_cpu.seconds >= 0) results->gen_kthread_cpu = (now_cpu.seconds - gen_kthreads0.seconds) / results->seconds;
        }
        if (const auto netdev1 = NetdevDrops(netdev); netdev0.first >= 0 && netdev1.first >= 0) {
          results->netdev_rx_drops = netdev1.first - netdev0.first;
          results->netdev_tx_drops = netdev1.second - netdev0.second;
        }
        results->relay_core_busy = busy(relay_core0, CoreTimes(relay_core));
        results->gen_core_busy = busy(gen_core0, CoreTimes(gen_core));
        results->rss_at_end = RssBytes(target_pid_);
      }
      if (now >= recv_end) {
        for (size_t socket_index : sockets) Receive(socket_index, results);  // what is still queued
        break;
      }
      // Sending comes first and again every few receives: a generator that lets its receive work
      // delay its sends turns late into bursty, and bursts inflate the latency it measures.
      SendDue(now, order, start, send_end, &cursor, &cycle, &sending, packet, results);
      for (size_t i = 0; i < sweep_slice; ++i) {
        Receive(sockets[sweep_cursor], results);
        if (++sweep_cursor == sockets.size()) sweep_cursor = 0;
        if (i % 32 == 31) SendDue(MonoNs(), order, start, send_end, &cursor, &cycle, &sending, packet, results);
      }
      for (int e = 0; e < ready; ++e) {
        if (events[e].data.u64 == UINT64_MAX) {
          uint64_t expirations;
          (void)!::read(timer_fd, &expirations, sizeof(expirations));
        } else {
          Receive(static_cast<size_t>(events[e].data.u64), results);
          if (e % 16 == 15) SendDue(MonoNs(), order, start, send_end, &cursor, &cycle, &sending, packet, results);
        }
      }
    }
    ::close(timer_fd);
    ::close(epoll_fd);

    for (const auto& [phase, s] : order) {
      const TxStream& tx = tx_[s];
      const RxStream& rx = rx_[s];
      results->sent_window += tx.sent_window;
      results->received_window += rx.received_window;
      if (tx.sent_window == 0) continue;
      const double delivered = static_cast<double>(rx.received_window) / static_cast<double>(tx.sent_window);
      results->min_stream_delivery = std::min(results->min_stream_delivery, delivered);
      if (delivered < 0.5) results->silenced++;
    }
    return absl::OkStatus();
  }

 private:
  // Sends every packet due by `now`, in phase order; at most kMaxBurst, so that a generator that fell
  // behind still gets to receive (else its own receive queues would overflow).
  void SendDue(int64_t now, const std::vector<std::pair<int64_t, uint32_t>>& order, int64_t start, int64_t send_end,
               size_t* cursor, int64_t* cycle, bool* sending, uint8_t* packet, Results* results) {
    for (int burst = 0; *sending && burst < kMaxBurst; ++burst) {
      const auto& [phase, s] = order[*cursor];
      const int64_t due = start + *cycle * kPeriodNs + phase;
      if (due > now) break;
      if (due >= send_end) {
        *sending = false;
        break;
      }
      Send(s, due, now, packet, results);
      if (++*cursor == order.size()) {
        *cursor = 0;
        ++*cycle;
      }
      now = MonoNs();
    }
    FlushRaw(results);
  }

  void FlushRaw(Results* results) {
    int done = 0;
    while (done < raw_pending_) {
      const int sent = ::sendmmsg(raw_fd_, raw_messages_ + done, static_cast<unsigned>(raw_pending_ - done), 0);
      if (sent <= 0) {  // the one at `done` failed: count it, go on with the rest
        results->send_errors++;
        ++done;
        continue;
      }
      done += sent;
    }
    raw_pending_ = 0;
  }

  void Send(uint32_t s, int64_t due, int64_t now, uint8_t* packet, Results* results) {
    TxStream& tx = tx_[s];
    if (raw_fd_ >= 0) {
      // The phone's datagram with the headers the kernel would have written: IPv4 (id, checksum and
      // total length are filled in by the kernel) and UDP without checksum (allowed on IPv4), or with
      // one computed below (--udp_checksum).
      uint8_t* raw = raw_packets_[raw_pending_];
      iphdr ip{};
      ip.version = 4;
      ip.ihl = 5;
      ip.ttl = 64;
      ip.protocol = IPPROTO_UDP;
      ip.tot_len = htons(kRawSize);
      ip.saddr = g_phone_ip.s_addr;
      ip.daddr = tx.to.sin_addr.s_addr;
      udphdr udp{};
      udp.source = tx.port;
      udp.dest = tx.to.sin_port;
      udp.len = htons(sizeof(udphdr) + kPacketSize);
      std::memcpy(raw, &ip, sizeof(ip));
      std::memcpy(raw + sizeof(ip), &udp, sizeof(udp));
      std::memcpy(raw + sizeof(ip) + sizeof(udp), packet, kPacketSize);
      packet = raw + sizeof(ip) + sizeof(udp);
      raw_to_[raw_pending_] = tx.to;
      raw_to_[raw_pending_].sin_port = 0;
    }
    const uint32_t seq = tx.seq++;
    const uint16_t rtp_seq = static_cast<uint16_t>(seq);
    const uint32_t timestamp = seq * 160;
    packet[2] = static_cast<uint8_t>(rtp_seq >> 8);
    packet[3] = static_cast<uint8_t>(rtp_seq);
    const uint32_t header[2] = {htonl(timestamp), htonl(tx.ssrc)};
    std::memcpy(packet + 4, header, sizeof(header));
    const int64_t mono = MonoNs();
    const int64_t real = RealNs();
    std::memcpy(packet + kHeaderSize, &kMagic, 4);
    std::memcpy(packet + kHeaderSize + 4, &s, 4);
    std::memcpy(packet + kHeaderSize + 8, &seq, 4);
    std::memcpy(packet + kHeaderSize + 12, &mono, 8);
    std::memcpy(packet + kHeaderSize + 20, &real, 8);
    const bool in_window = mono >= t0_ && mono < t1_;
    if (raw_fd_ >= 0) {
      if (udp_checksum_) SetUdpChecksum(raw_packets_[raw_pending_]);
      if (++raw_pending_ == kRawBatch) FlushRaw(results);
    } else {
      const ssize_t sent = connected_ ? ::send(tx.fd, packet, kPacketSize, MSG_DONTWAIT)
                                      : ::sendto(tx.fd, packet, kPacketSize, MSG_DONTWAIT,
                                                 reinterpret_cast<const sockaddr*>(&tx.to), sizeof(tx.to));
      if (sent != kPacketSize) results->send_errors++;
    }
    if (in_window) {
      tx.sent_window++;
      results->late_us.Add(static_cast<uint64_t>(std::max<int64_t>(0, now - due) / 1000));
    }
  }

  void Receive(size_t socket_index, Results* results) {
    constexpr int kBatch = 16;
    constexpr size_t kControl = CMSG_SPACE(sizeof(timespec)) + 64;
    alignas(cmsghdr) static char control[kBatch][kControl];
    static uint8_t buffers[kBatch][2048];
    mmsghdr messages[kBatch];
    iovec iov[kBatch];
    const int fd = calls_[socket_index / 2].fd[socket_index % 2];
    for (int round = 0; round < 4; ++round) {
      for (int i = 0; i < kBatch; ++i) {
        iov[i] = {buffers[i], sizeof(buffers[i])};
        messages[i].msg_hdr = {};
        messages[i].msg_hdr.msg_iov = &iov[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_control = control[i];
        messages[i].msg_hdr.msg_controllen = kControl;
      }
      const int got = ::recvmmsg(fd, messages, kBatch, MSG_DONTWAIT, nullptr);
      if (got <= 0) return;
      const int64_t now_mono = MonoNs();
      for (int i = 0; i < got; ++i) {
        const uint8_t* p = buffers[i];
        uint32_t magic, s, seq;
        int64_t mono, real;
        if (messages[i].msg_len != kPacketSize) {
          results->junk++;
          continue;
        }
        std::memcpy(&magic, p + kHeaderSize, 4);
        std::memcpy(&s, p + kHeaderSize + 4, 4);
        std::memcpy(&seq, p + kHeaderSize + 8, 4);
        std::memcpy(&mono, p + kHeaderSize + 12, 8);
        std::memcpy(&real, p + kHeaderSize + 20, 8);
        if (magic != kMagic || s >= rx_.size() || rx_[s].seen.empty()) {
          results->junk++;
          continue;
        }
        if ((s ^ 1u) != socket_index) {
          results->misrouted++;
          continue;
        }
        RxStream& rx = rx_[s];
        const bool in_window = mono >= t0_ && mono < t1_;
        if (seq / 64 < rx.seen.size()) {
          uint64_t& word = rx.seen[seq / 64];
          const uint64_t bit = uint64_t{1} << (seq % 64);
          if (word & bit) {
            if (in_window) results->duplicates++;
            continue;
          }
          word |= bit;
        }
        if (static_cast<int64_t>(seq) < rx.highest) {
          if (in_window) results->reordered++;
        } else {
          rx.highest = seq;
        }
        if (!in_window) continue;
        rx.received_window++;
        int64_t latency_ns = -1;
        for (cmsghdr* c = CMSG_FIRSTHDR(&messages[i].msg_hdr); c; c = CMSG_NXTHDR(&messages[i].msg_hdr, c)) {
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts;
            std::memcpy(&ts, CMSG_DATA(c), sizeof(ts));
            latency_ns = (int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec) - real;
            results->kernel_timestamps = true;
          }
        }
        if (latency_ns < 0 && !results->kernel_timestamps) latency_ns = now_mono - mono;
        results->latency_us.Add(static_cast<uint64_t>(std::max<int64_t>(0, latency_ns) / 1000));
        if (latency_ns > max_delay_ns_) results->late++;
      }
      if (got < kBatch) return;
    }
  }

  // RFC 768: the one's complement sum over the pseudo-header (addresses, protocol, UDP length) and
  // the UDP header and payload, with the checksum field zero; a result of 0 is sent as 0xffff.
  static void SetUdpChecksum(uint8_t* datagram) {
    const iphdr* ip = reinterpret_cast<const iphdr*>(datagram);
    uint8_t* udp = datagram + sizeof(iphdr);
    constexpr size_t kUdpBytes = sizeof(udphdr) + kPacketSize;
    static_assert(kUdpBytes % 2 == 0, "odd UDP length");
    udp[6] = udp[7] = 0;
    uint64_t sum = 0;
    uint16_t word;
    for (uint32_t address : {ip->saddr, ip->daddr}) {
      sum += address & 0xffff;
      sum += address >> 16;
    }
    sum += htons(IPPROTO_UDP);
    sum += htons(static_cast<uint16_t>(kUdpBytes));
    for (size_t i = 0; i < kUdpBytes; i += 2) {
      std::memcpy(&word, udp + i, 2);
      sum += word;
    }
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    word = static_cast<uint16_t>(~sum);
    if (word == 0) word = 0xffff;
    std::memcpy(udp + 6, &word, 2);
  }

  // Raw sends: at most kRawBatch per sendmmsg, so a packet's send stamp precedes its real send by at
  // most 15 others' kernel work (a few tens of µs).
  static constexpr int kRawBatch = 16;
  static constexpr int kRawSize = sizeof(iphdr) + sizeof(udphdr) + kPacketSize;
  int raw_fd_ = -1;
  const bool udp_checksum_ = absl::GetFlag(FLAGS_udp_checksum);
  int raw_pending_ = 0;
  uint8_t raw_packets_[kRawBatch][kRawSize];
  mmsghdr raw_messages_[kRawBatch];
  iovec raw_iov_[kRawBatch];
  sockaddr_in raw_to_[kRawBatch];

  std::vector<Call>& calls_;
  int target_pid_;
  const int64_t max_delay_ns_ = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_max_delay));
  bool connected_ = false;
  int64_t t0_ = 0, t1_ = 0;
  std::vector<TxStream> tx_;
  std::vector<RxStream> rx_;
};

// Binds a phone socket on --phone_ip:port, or on any free port if that one is taken (never the SDP port).
absl::Status BindPhone(Call& call, int side, uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (absl::GetFlag(FLAGS_kernel_timestamps)) {
    int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
  }
  sockaddr_in address = PhoneAddress(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    address = PhoneAddress(0);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      ::close(fd);
      return absl::InternalError(absl::StrCat("bind: ", std::strerror(errno)));
    }
  }
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  call.fd[side] = fd;
  call.port[side] = ntohs(address.sin_port);
  if (call.port[side] == call.sdp_port[0] || call.port[side] == call.sdp_port[1]) {
    return absl::InternalError("a phone socket got its own SDP port");
  }
  return absl::OkStatus();
}

std::optional<v1::LatchingMode> ParseMode(const std::string& name) {
  if (name == "heuristic") return v1::LATCHING_MODE_HEURISTIC;
  if (name == "default" || name == "unspecified") return v1::LATCHING_MODE_UNSPECIFIED;
  if (name == "first_packet") return v1::LATCHING_MODE_FIRST_PACKET;
  if (name == "signaling_source") return v1::LATCHING_MODE_SIGNALING_SOURCE;
  if (name == "strict") return v1::LATCHING_MODE_STRICT;
  return std::nullopt;
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The generator could not send on time (< 99 % of the offered packets) or ran out of CPU (>= 95 %).
// With its receive path's kthreads (--gen_tids, real-time like relay_bench under bench-relay.sh
// --rt=1) also when both together use >= 90 % of the core, near where the kernel's real-time
// throttling (95 % of each second by default) pauses them for up to 50 ms, or when a send was >= 10 ms
// late (half a packet period): the burst that follows such a stall (1,000 packets at 100k/s) can
// overflow a veth's 256-frame ring, whatever the relay.
bool GenSaturated(const Results& results, double sent, int calls) {
  if (sent < 0.99 * calls * 2 * kPacketsPerSecond * results.seconds || results.gen_cpu >= 0.95) return true;
  if (absl::GetFlag(FLAGS_gen_tids).empty()) return false;
  return results.gen_cpu + std::max(0.0, results.gen_kthread_cpu) >= 0.90 || results.late_us.max() >= 10'000;
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string target_name = absl::GetFlag(FLAGS_target);
  g_phone_ip_text = absl::GetFlag(FLAGS_phone_ip);
  if (::inet_pton(AF_INET, g_phone_ip_text.c_str(), &g_phone_ip) != 1) {
    std::fprintf(stderr, "relay_bench: --phone_ip must be an IPv4 address\n");
    return 2;
  }
  const int calls_count = absl::GetFlag(FLAGS_calls);
  const int phone_base = absl::GetFlag(FLAGS_phone_base_port);
  if (calls_count < 1 || phone_base < 1 || phone_base + 4 * int64_t{calls_count} > 65536) {
    std::fprintf(stderr, "relay_bench: --calls / --phone_base_port out of range\n");
    return 2;
  }
  std::unique_ptr<Target> target;
  if (target_name == "latchkey") {
    auto mode = ParseMode(absl::GetFlag(FLAGS_latching_mode));
    if (!mode) {
      std::fprintf(stderr, "relay_bench: unknown --latching_mode\n");
      return 2;
    }
    target = std::make_unique<LatchkeyTarget>(absl::GetFlag(FLAGS_control), *mode, absl::GetFlag(FLAGS_setup_threads));
  } else if (target_name == "rtpengine") {
    target = std::make_unique<RtpengineTarget>(absl::GetFlag(FLAGS_ng), absl::GetFlag(FLAGS_ng_window));
  } else if (target_name == "minimal") {
    target = std::make_unique<MinimalTarget>(absl::GetFlag(FLAGS_minimal_base_port), absl::GetFlag(FLAGS_minimal_ip));
  } else {
    std::fprintf(stderr, "relay_bench: --target must be latchkey, rtpengine or minimal\n");
    return 2;
  }

  std::vector<Call> calls(static_cast<size_t>(calls_count));
  for (size_t i = 0; i < calls.size(); ++i) {
    const uint16_t base = static_cast<uint16_t>(phone_base + 4 * i);
    calls[i].sdp_port[0] = static_cast<uint16_t>(base + 2);
    calls[i].sdp_port[1] = static_cast<uint16_t>(base + 3);
    for (int side = 0; side < 2; ++side) {
      if (absl::Status s = BindPhone(calls[i], side, static_cast<uint16_t>(base + side)); !s.ok()) {
        std::fprintf(stderr, "relay_bench: phone %zu: %s\n", i, s.ToString().c_str());
        return 1;
      }
    }
  }

  const int target_pid = absl::GetFlag(FLAGS_target_pid);
  auto fail = [&](const absl::Status& status) {
    std::printf("{\"target\":\"%s\",\"calls\":%d,\"error\":%s}\n", target_name.c_str(), calls_count,
                JsonString(status.ToString()).c_str());
    std::fflush(stdout);
    return 1;
  };
  if (absl::Status s = target->Prepare(); !s.ok()) return fail(s);
  const int64_t rss_before = RssBytes(target_pid);
  const absl::Time setup_start = absl::Now();
  if (absl::Status s = target->Setup(calls); !s.ok()) return fail(s);
  const double setup_seconds = absl::ToDoubleSeconds(absl::Now() - setup_start);
  const int64_t rss_after_setup = RssBytes(target_pid);
  int ok_calls = 0;
  for (const Call& c : calls) ok_calls += c.ok ? 1 : 0;

  Results results;
  Load load(calls, target_pid);
  const absl::Status run = load.Run(&results);
  const int teardown_errors = target->Teardown(calls);
  if (!run.ok()) return fail(run);

  const double sent = static_cast<double>(results.sent_window);
  const double dropped = sent - static_cast<double>(results.received_window);
  const double lost = dropped + static_cast<double>(results.late);
  auto per_session = [&](int64_t after) {
    return rss_before >= 0 && after >= 0 ? absl::StrFormat("%.0f", static_cast<double>(after - rss_before) / ok_calls)
                                         : std::string("null");
  };
  std::string out = absl::StrCat(
      "{\"target\":", JsonString(target_name), ",\"calls\":", ok_calls, ",\"setup_failed\":", calls_count - ok_calls,
      ",\"setup_s\":", absl::StrFormat("%.2f", setup_seconds), ",\"duration_s\":", absl::StrFormat("%.1f", results.seconds),
      ",\"offered_pps\":", ok_calls * 2 * kPacketsPerSecond,
      ",\"sent_pps\":", absl::StrFormat("%.0f", sent / results.seconds),
      ",\"forwarded_pps\":", absl::StrFormat("%.0f", static_cast<double>(results.received_window) / results.seconds),
      ",\"loss_pct\":", absl::StrFormat("%.4f", sent > 0 ? 100.0 * lost / sent : 0.0),
      ",\"dropped_pct\":", absl::StrFormat("%.4f", sent > 0 ? 100.0 * dropped / sent : 0.0), ",\"late\":", results.late,
      ",\"reordered\":", results.reordered, ",\"duplicates\":", results.duplicates,
      ",\"misrouted\":", results.misrouted, ",\"p50_us\":", results.latency_us.Percentile(0.50),
      ",\"p99_us\":", results.latency_us.Percentile(0.99), ",\"p999_us\":", results.latency_us.Percentile(0.999),
      ",\"max_us\":", results.latency_us.max(), ",\"silenced_streams\":", results.silenced,
      ",\"streams\":", results.streams,
      ",\"min_stream_delivery_pct\":", absl::StrFormat("%.2f", 100.0 * results.min_stream_delivery),
      ",\"latency_clock\":", results.kernel_timestamps ? "\"kernel_rx\"" : "\"user_rx\"",
      ",\"send_mode\":", results.raw_sends ? "\"raw\"" : "\"socket\"",
      ",\"gen_late_p99_us\":", results.late_us.Percentile(0.99), ",\"gen_late_max_us\":", results.late_us.max(),
      ",\"gen_cpu_pct\":", absl::StrFormat("%.0f", 100 * results.gen_cpu),
      // The generator, not the relay, set the pace: it could not send on time or ran out of CPU.
      ",\"gen_saturated\":", GenSaturated(results, sent, ok_calls) ? "true" : "false",
      ",\"send_errors\":", results.send_errors, ",\"loadavg\":", LoadAverage(),
      ",\"target_cpu_pct\":", results.target_cpu >= 0 ? absl::StrFormat("%.0f", 100 * results.target_cpu) : "null",
      ",\"target_rss_before_kib\":", rss_before >= 0 ? absl::StrCat(rss_before / 1024) : "null",
      ",\"target_rss_kib\":", results.rss_at_end >= 0 ? absl::StrCat(results.rss_at_end / 1024) : "null",
      ",\"rss_per_call_setup_b\":", per_session(rss_after_setup),
      ",\"rss_per_call_b\":", per_session(results.rss_at_end), ",\"teardown_errors\":", teardown_errors);
  // CPU per relayed packet and the path taken (scripts/bench-relay.sh --topology=veth); only when asked for.
  const double forwarded_per_s = static_cast<double>(results.received_window) / results.seconds;
  auto pct = [](double v) { return v >= 0 ? absl::StrFormat("%.1f", 100 * v) : std::string("null"); };
  auto ns_per_packet = [&](double cpu) {
    return cpu >= 0 && forwarded_per_s > 0 ? absl::StrFormat("%.0f", cpu * 1e9 / forwarded_per_s) : std::string("null");
  };
  if (!absl::GetFlag(FLAGS_relay_tids).empty()) {
    const double relay_cpu = results.target_cpu >= 0 && results.relay_kthread_cpu >= 0
                                 ? results.target_cpu + results.relay_kthread_cpu
                                 : -1;
    absl::StrAppend(&out, ",\"relay_process_cpu_pct\":", pct(results.target_cpu),
                    ",\"relay_kthread_cpu_pct\":", pct(results.relay_kthread_cpu),
                    ",\"relay_cpu_ns_per_pkt\":", ns_per_packet(relay_cpu),
                    // Packets per kthread run: each run (a wake-up, a context switch) has a fixed cost
                    // that small batches do not amortise.
                    ",\"relay_kthread_pkts_per_run\":",
                    results.relay_kthread_runs > 0 ? absl::StrFormat("%.1f", forwarded_per_s / results.relay_kthread_runs)
                                                   : std::string("null"));
  }
  if (!absl::GetFlag(FLAGS_gen_tids).empty()) {
    absl::StrAppend(&out, ",\"gen_kthread_cpu_pct\":", pct(results.gen_kthread_cpu));
  }
  if (absl::GetFlag(FLAGS_relay_core) >= 0) {
    absl::StrAppend(&out, ",\"relay_core_busy_pct\":", pct(results.relay_core_busy),
                    ",\"relay_core_ns_per_pkt\":", ns_per_packet(results.relay_core_busy));
  }
  if (absl::GetFlag(FLAGS_gen_core) >= 0) {
    absl::StrAppend(&out, ",\"gen_core_busy_pct\":", pct(results.gen_core_busy));
  }
  if (!absl::GetFlag(FLAGS_netdev).empty()) {
    absl::StrAppend(&out, ",\"netdev_rx_drops\":", results.netdev_rx_drops, ",\"netdev_tx_drops\":", results.netdev_tx_drops);
  }
  if (!absl::GetFlag(FLAGS_metrics_url).empty()) {
    const RelayMetrics& m0 = results.metrics_start;
    const RelayMetrics& m1 = results.metrics_end;
    if (m0.ok && m1.ok) {
      const double kernel = m0.kernel_in >= 0 && m1.kernel_in >= 0 ? (m1.kernel_in - m0.kernel_in) / results.seconds : 0;
      const double socket = (m1.socket_in - m0.socket_in) / results.seconds;
      absl::StrAppend(&out, ",\"fast_path_mode\":", m1.mode.empty() ? "null" : JsonString(m1.mode),
                      ",\"fast_path_flows\":", m1.flows >= 0 ? absl::StrFormat("%.0f", m1.flows) : "null",
                      ",\"kernel_in_pps\":", absl::StrFormat("%.0f", kernel),
                      ",\"socket_in_pps\":", absl::StrFormat("%.0f", socket), ",\"kernel_share_pct\":",
                      kernel + socket > 0 ? absl::StrFormat("%.1f", 100 * kernel / (kernel + socket)) : "null");
    } else {
      absl::StrAppend(&out, ",\"metrics_error\":", JsonString(m0.ok ? m1.error : m0.error));
    }
  }
  if (const std::string note = absl::GetFlag(FLAGS_note); !note.empty()) absl::StrAppend(&out, ",\"note\":", JsonString(note));
  std::printf("%s}\n", out.c_str());
  std::fflush(stdout);
  for (Call& c : calls) {
    for (int fd : c.fd) {
      if (fd >= 0) ::close(fd);
    }
  }
  return 0;
}

}  // namespace
}  // namespace latchkey::bench

int main(int argc, char** argv) { return latchkey::bench::Main(argc, argv); }
