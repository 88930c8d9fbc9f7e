// Keepalive scale benchmark (scripts/bench-keepalive.sh): gives one running latchkey-relay N
// bindings over SetKeepalives, answers every OPTIONS it sends with 200 OK from loopback responder
// sockets, and reports what the relay's own metrics say over a measuring window: keepalives/s,
// answers matched, misses, scheduling lag (p50/p99 from the histogram) and RSS per binding.
// Prints one JSON object.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/grpc/channel.h"
#include "common/net/socket_address.h"
#include "common/time/proto_time.h"
#include "latchkey/v1/worker.grpc.pb.h"

ABSL_FLAG(std::string, relay, "127.0.0.1:7610", "latchkey-relay gRPC address (RelayService)");
ABSL_FLAG(std::string, metrics, "127.0.0.1:9610", "latchkey-relay metrics address");
ABSL_FLAG(int, relay_pid, 0, "latchkey-relay pid, for RSS");
ABSL_FLAG(int, bindings, 1000000, "bindings to keep alive");
ABSL_FLAG(absl::Duration, interval, absl::Seconds(30), "keepalive interval");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(35), "after loading, before measuring (first keepalives spread over one interval)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(60), "measuring window");
ABSL_FLAG(int, responders, 8, "responder sockets (the bindings' destinations, round robin)");
ABSL_FLAG(std::string, registrar, "127.0.0.1:5060", "registrar address in the targets (registrar_source mode)");

namespace latchkey {
namespace {

std::atomic<bool> stop{false};
std::atomic<uint64_t> answered{0};

// Answers OPTIONS with 200 OK, echoing Via, From, To, Call-ID and CSeq (what a phone does).
void Respond(const std::vector<int>& fds) {
  constexpr int kBatch = 64;
  std::vector<pollfd> polls;
  for (int fd : fds) polls.push_back({fd, POLLIN, 0});
  std::array<std::array<char, 1500>, kBatch> in;
  std::array<std::array<char, 1500>, kBatch> out;
  std::array<sockaddr_storage, kBatch> from;
  std::array<iovec, kBatch> in_iov, out_iov;
  std::array<mmsghdr, kBatch> in_msg{}, out_msg{};
  while (!stop.load()) {
    if (::poll(polls.data(), polls.size(), 100) <= 0) continue;
    for (const pollfd& p : polls) {
      if (!(p.revents & POLLIN)) continue;
      for (int i = 0; i < kBatch; ++i) {
        in_iov[i] = {in[i].data(), in[i].size()};
        in_msg[i].msg_hdr = {};
        in_msg[i].msg_hdr.msg_iov = &in_iov[i];
        in_msg[i].msg_hdr.msg_iovlen = 1;
        in_msg[i].msg_hdr.msg_name = &from[i];
        in_msg[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      }
      const int n = ::recvmmsg(p.fd, in_msg.data(), kBatch, MSG_DONTWAIT, nullptr);
      int ready = 0;
      for (int i = 0; i < n; ++i) {
        absl::string_view request(in[i].data(), in_msg[i].msg_len);
        if (!absl::StartsWith(request, "OPTIONS ")) continue;
        std::string response = "SIP/2.0 200 OK\r\n";
        for (absl::string_view line : absl::StrSplit(request, "\r\n")) {
          if (absl::StartsWith(line, "Via:") || absl::StartsWith(line, "From:") || absl::StartsWith(line, "To:") ||
              absl::StartsWith(line, "Call-ID:") || absl::StartsWith(line, "CSeq:")) {
            absl::StrAppend(&response, line, "\r\n");
          }
        }
        absl::StrAppend(&response, "Content-Length: 0\r\n\r\n");
        const size_t length = std::min(response.size(), out[ready].size());
        std::copy(response.begin(), response.begin() + length, out[ready].begin());
        out_iov[ready] = {out[ready].data(), length};
        out_msg[ready].msg_hdr = {};
        out_msg[ready].msg_hdr.msg_iov = &out_iov[ready];
        out_msg[ready].msg_hdr.msg_iovlen = 1;
        out_msg[ready].msg_hdr.msg_name = &from[i];
        out_msg[ready].msg_hdr.msg_namelen = in_msg[i].msg_hdr.msg_namelen;
        ++ready;
      }
      if (ready > 0) {
        const int sent = ::sendmmsg(p.fd, out_msg.data(), ready, 0);
        if (sent > 0) answered += sent;
      }
    }
  }
}

long RssKib(int pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      long kib = 0;
      std::sscanf(line.c_str(), "VmRSS: %ld", &kib);
      return kib;
    }
  }
  return 0;
}

// name{labels} -> value, from the relay's /metrics.
std::map<std::string, double> Scrape(const std::string& address) {
  std::map<std::string, double> out;
  FILE* pipe = ::popen(absl::StrCat("curl -sf http://", address, "/metrics").c_str(), "r");
  if (pipe == nullptr) return out;
  std::string text;
  char chunk[4096];
  while (size_t n = std::fread(chunk, 1, sizeof(chunk), pipe)) text.append(chunk, n);
  ::pclose(pipe);
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double value;
    if (space != absl::string_view::npos && absl::SimpleAtod(line.substr(space + 1), &value)) {
      out[std::string(line.substr(0, space))] = value;
    }
  }
  return out;
}

// A quantile of the lag histogram's increase over the window, as the bucket's upper bound.
double LagQuantile(const std::map<std::string, double>& before, const std::map<std::string, double>& after, double q) {
  const std::string prefix = "latchkey_keepalive_schedule_lag_seconds_bucket{le=\"";
  std::vector<std::pair<double, double>> buckets;  // (le, count)
  for (const auto& [name, value] : after) {
    if (!absl::StartsWith(name, prefix)) continue;
    const std::string le = name.substr(prefix.size(), name.size() - prefix.size() - 2);
    const double bound = le == "+Inf" ? 1e9 : std::stod(le);
    auto it = before.find(name);
    buckets.emplace_back(bound, value - (it == before.end() ? 0 : it->second));
  }
  std::sort(buckets.begin(), buckets.end());
  if (buckets.empty() || buckets.back().second <= 0) return -1;
  const double total = buckets.back().second;
  for (const auto& [bound, count] : buckets) {
    if (count >= q * total) return bound;
  }
  return -1;
}

double Delta(const std::map<std::string, double>& before, const std::map<std::string, double>& after,
             const std::string& name) {
  auto a = after.find(name);
  auto b = before.find(name);
  return (a == after.end() ? 0 : a->second) - (b == before.end() ? 0 : b->second);
}

int Main() {
  const int count = absl::GetFlag(FLAGS_bindings);
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  for (int i = 0; i < absl::GetFlag(FLAGS_responders); ++i) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int buffer = 8 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    socklen_t length = sizeof(address);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    fds.push_back(fd);
    ports.push_back(ntohs(address.sin_port));
  }
  std::thread responder([&] { Respond(fds); });

  auto stub = v1::RelayService::NewStub(grpcutil::CreateChannel(absl::GetFlag(FLAGS_relay), v1::TlsConfig(), {}));
  const int pid = absl::GetFlag(FLAGS_relay_pid);
  const long rss_before = pid ? RssKib(pid) : 0;
  auto registrar = net::SocketAddress::Parse(absl::GetFlag(FLAGS_registrar));
  const absl::Time load_start = absl::Now();
  constexpr int kChunk = 10000;
  bool ok = true;
  for (int start = 0; start < count && ok; start += kChunk) {
    v1::SetKeepalivesRequest request;
    request.set_replace_all(start == 0);
    request.set_complete(start + kChunk >= count);
    for (int i = start; i < std::min(count, start + kChunk); ++i) {
      v1::KeepaliveTarget* target = request.add_upsert();
      target->set_binding_id(absl::StrFormat("b%014x", i));
      target->set_contact_uri(absl::StrCat("sip:phone", i, "@192.168.1.", i % 250 + 2, ":5060;transport=udp"));
      target->mutable_destination()->set_ip("127.0.0.1");
      target->mutable_destination()->set_port(ports[i % ports.size()]);
      if (registrar.ok()) *target->mutable_registrar() = net::ToProto(*registrar);
      target->set_method(v1::KEEPALIVE_METHOD_OPTIONS);
      *target->mutable_interval() = ToProto(absl::GetFlag(FLAGS_interval));
      target->set_failure_threshold(3);
    }
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    v1::SetKeepalivesResponse response;
    grpc::Status status = stub->SetKeepalives(&context, request, &response);
    if (!status.ok()) {
      std::fprintf(stderr, "SetKeepalives: %s\n", status.error_message().c_str());
      ok = false;
    }
  }
  const double load_s = absl::ToDoubleSeconds(absl::Now() - load_start);
  absl::SleepFor(absl::Seconds(2));
  const long rss_loaded = pid ? RssKib(pid) : 0;
  absl::SleepFor(absl::GetFlag(FLAGS_warmup));
  const auto before = Scrape(absl::GetFlag(FLAGS_metrics));
  const uint64_t answered_before = answered.load();
  const absl::Time window_start = absl::Now();
  absl::SleepFor(absl::GetFlag(FLAGS_duration));
  const auto after = Scrape(absl::GetFlag(FLAGS_metrics));
  const double window = absl::ToDoubleSeconds(absl::Now() - window_start);
  const uint64_t answered_window = answered.load() - answered_before;
  const long rss_after = pid ? RssKib(pid) : 0;
  stop = true;
  responder.join();

  const double sent = Delta(before, after, "latchkey_keepalives_sent_total");
  const double matched = Delta(before, after, "latchkey_keepalive_responses_total{class=\"2xx\"}");
  std::printf(
      "{\"bench\":\"keepalive\",\"ok\":%s,\"bindings\":%d,\"interval_s\":%.0f,\"load_s\":%.2f,"
      "\"window_s\":%.1f,\"offered_per_s\":%.0f,\"sent_per_s\":%.0f,\"answered_per_s\":%.0f,\"matched_per_s\":%.0f,"
      "\"misses\":%.0f,\"unmatched\":%.0f,\"send_errors\":%.0f,\"lag_p50_le_s\":%g,\"lag_p99_le_s\":%g,"
      "\"lag_p999_le_s\":%g,\"rss_before_kib\":%ld,\"rss_loaded_kib\":%ld,\"rss_after_kib\":%ld,"
      "\"bytes_per_binding_loaded\":%.0f,\"bytes_per_binding_running\":%.0f}\n",
      ok ? "true" : "false", count, absl::ToDoubleSeconds(absl::GetFlag(FLAGS_interval)), load_s, window,
      count / absl::ToDoubleSeconds(absl::GetFlag(FLAGS_interval)), sent / window, answered_window / window,
      matched / window, Delta(before, after, "latchkey_keepalive_misses_total"),
      Delta(before, after, "latchkey_keepalive_unmatched_responses_total"),
      Delta(before, after, "latchkey_keepalive_send_errors_total"), LagQuantile(before, after, 0.5),
      LagQuantile(before, after, 0.99), LagQuantile(before, after, 0.999), rss_before, rss_loaded, rss_after,
      count ? (rss_loaded - rss_before) * 1024.0 / count : 0, count ? (rss_after - rss_before) * 1024.0 / count : 0);
  for (int fd : fds) ::close(fd);
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace latchkey

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return latchkey::Main();
}
