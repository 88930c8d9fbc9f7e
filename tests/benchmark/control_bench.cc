// Load generator for latchkey-control over loopback gRPC. For each workload it runs N client threads
// for a fixed time and prints one JSON object per line:
//   {"workload":"allocate_binding","clients":8,"calls":123456,"errors":0,"rps":41152.0,"p50_ms":0.18,"p99_ms":0.61}
// Workloads: "empty_rpc" (grpc.health.v1 Check on the same server: the transport's ceiling),
// "allocate_binding" (REGISTER refreshes over a population of phones), "session_call"
// (AllocateSession + AnswerSession + ReleaseSession, one call = 3 RPCs, latency per RPC), and
// "binding_memory" (creates --memory_bindings new bindings and reports the server's RSS growth).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/grpc/channel.h"
#include "common/grpc/tls.h"
#include "common/grpc/tls_flags.h"
#include "common/time/proto_time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "latchkey/v1/nat_control.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:7400", "latchkey-control address (a gRPC target: ipv4:A,B,C for replicas)");
ABSL_FLAG(std::string, workloads, "empty_rpc,allocate_binding,session_call", "Comma-separated workloads");
ABSL_FLAG(std::string, clients, "1,4,16", "Comma-separated client thread counts to run each workload with");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "Measured time per run");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "Unmeasured time before each run");
ABSL_FLAG(int, phones, 10000, "Distinct phones allocate_binding cycles through");
ABSL_FLAG(int, channels, 4, "gRPC channels shared round-robin by client threads");
ABSL_FLAG(int, memory_bindings, 100000, "Bindings created by binding_memory");
ABSL_FLAG(int, server_pid, 0, "latchkey-control's pid, for binding_memory");
// With --tls_cert/--tls_key/--tls_ca (common flags) every channel is mutual TLS; "transport" in the
// output says which.

namespace latchkey {
namespace {

constexpr char kOffer[] =
    "v=0\r\no=- 1001 1 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n";
constexpr char kAnswer[] =
    "v=0\r\no=- 2002 1 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\n"
    "m=audio 16500 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

struct Channels {
  std::vector<std::shared_ptr<grpc::Channel>> list;
  v1::TlsConfig tls;
  std::shared_ptr<grpc::Channel> For(int client) const { return list[client % list.size()]; }
  // A channel of its own (distinct args: gRPC shares a connection between equal channels).
  std::shared_ptr<grpc::Channel> Fresh(const std::string& tag) const {
    grpc::ChannelArguments args;
    args.SetString("latchkey.bench.channel", tag);
    // Several replicas ("ipv4:A,B,C"): every call to the next one, as a PBX behind a Service would.
    args.SetLoadBalancingPolicyName("round_robin");
    return grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server),
                                     grpcutil::ChannelCredentials(tls, {auth::Role::kControl, ""}), args);
  }
};

const char* Transport(const Channels& channels) { return grpcutil::TlsEnabled(channels.tls) ? "mtls" : "plaintext"; }

v1::AllocateBindingRequest Registration(int phone) {
  v1::AllocateBindingRequest r;
  r.set_aor(absl::StrCat("sip:", 100000 + phone, "@bench.example.com"));
  r.set_contact(absl::StrCat("<sip:", 100000 + phone, "@192.168.", phone / 250 % 250, ".", phone % 250 + 1,
                             ":5060;transport=udp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-", 100000000000 + phone,
                             ">\""));
  r.set_transport(v1::TRANSPORT_UDP);
  r.mutable_source()->set_ip(absl::StrCat("203.0.", phone / 250 % 250, ".", phone % 250 + 1));
  r.mutable_source()->set_port(20000 + phone % 40000);
  r.mutable_registrar()->set_ip("127.0.0.1");
  r.mutable_registrar()->set_port(5060);
  r.set_via(absl::StrCat("SIP/2.0/UDP 192.168.", phone / 250 % 250, ".", phone % 250 + 1, ":5060;branch=z9hG4bK", phone, ";rport"));
  *r.mutable_expires() = ToProto(absl::Seconds(3600));
  r.set_user_agent("Yealink SIP-T46S 66.86.0.15");
  return r;
}

struct Result {
  int64_t calls = 0;
  int64_t errors = 0;
  std::vector<double> latencies_ms;
};

// One unit of work: returns the latencies of the RPCs it made (ms) and whether all succeeded.
using Work = std::function<bool(int client, int64_t iteration, std::vector<double>* latencies)>;

template <typename Fn>
double TimeMs(Fn&& fn, bool* ok) {
  const absl::Time start = absl::Now();
  *ok = fn();
  return absl::ToDoubleMilliseconds(absl::Now() - start);
}

// One grpc.health.v1 Check: the empty RPC.
bool CheckHealth(grpc::health::v1::Health::Stub& stub) {
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  return stub.Check(&context, request, &response).ok();
}

Work MakeWork(const std::string& workload, const Channels& channels) {
  if (workload == "empty_rpc") {
    return [&channels](int client, int64_t, std::vector<double>* lat) {
      static thread_local auto stub = grpc::health::v1::Health::NewStub(channels.For(client));
      bool ok;
      lat->push_back(TimeMs([&] { return CheckHealth(*stub); }, &ok));
      return ok;
    };
  }
  if (workload == "new_channel") {
    // What a client pays to connect: TCP (and TLS) handshake plus one empty RPC, on a new channel.
    return [&channels](int client, int64_t i, std::vector<double>* lat) {
      bool ok;
      lat->push_back(TimeMs([&] {
        auto stub = grpc::health::v1::Health::NewStub(channels.Fresh(absl::StrCat(client, "-", i)));
        return CheckHealth(*stub);
      }, &ok));
      return ok;
    };
  }
  if (workload == "allocate_binding") {
    const int phones = absl::GetFlag(FLAGS_phones);
    return [&channels, phones](int client, int64_t i, std::vector<double>* lat) {
      static thread_local auto stub = v1::NatControlService::NewStub(channels.For(client));
      static thread_local std::vector<v1::AllocateBindingRequest> requests;
      if (requests.empty()) {
        for (int p = client; p < phones; p += 64) requests.push_back(Registration(p));
      }
      const v1::AllocateBindingRequest& request = requests[i % requests.size()];
      bool ok;
      lat->push_back(TimeMs([&] {
        grpc::ClientContext context;
        v1::AllocateBindingResponse response;
        return stub->AllocateBinding(&context, request, &response).ok();
      }, &ok));
      return ok;
    };
  }
  if (workload == "session_call") {
    return [&channels](int client, int64_t i, std::vector<double>* lat) {
      static thread_local auto stub = v1::NatControlService::NewStub(channels.For(client));
      v1::AllocateSessionRequest offer;
      offer.set_call_id(absl::StrCat("bench-", client, "-", i, "@pbx"));
      offer.set_from_tag("f1");
      offer.set_sdp(kOffer);
      offer.mutable_signaling_source()->set_ip("203.0.113.7");
      offer.mutable_signaling_source()->set_port(5060);
      v1::AllocateSessionResponse offered;
      bool ok;
      lat->push_back(TimeMs([&] {
        grpc::ClientContext context;
        return stub->AllocateSession(&context, offer, &offered).ok();
      }, &ok));
      if (!ok) return false;
      v1::AnswerSessionRequest answer;
      answer.set_session_id(offered.session().session_id());
      answer.set_to_tag("t1");
      answer.set_sdp(kAnswer);
      answer.mutable_signaling_source()->set_ip("198.51.100.9");
      answer.mutable_signaling_source()->set_port(5060);
      v1::AnswerSessionResponse answered;
      lat->push_back(TimeMs([&] {
        grpc::ClientContext context;
        return stub->AnswerSession(&context, answer, &answered).ok();
      }, &ok));
      v1::ReleaseSessionRequest release;
      release.set_session_id(offered.session().session_id());
      v1::ReleaseSessionResponse released;
      bool released_ok;
      lat->push_back(TimeMs([&] {
        grpc::ClientContext context;
        return stub->ReleaseSession(&context, release, &released).ok();
      }, &released_ok));
      return ok && released_ok;
    };
  }
  return nullptr;
}

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[index];
}

void Run(const std::string& workload, int clients, const Channels& channels) {
  Work work = MakeWork(workload, channels);
  std::atomic<bool> measuring{false}, stop{false};
  std::vector<Result> results(clients);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::vector<double> latencies;
      Result& r = results[c];
      for (int64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        latencies.clear();
        const bool ok = work(c, i, &latencies);
        if (!measuring.load(std::memory_order_relaxed)) continue;
        r.calls += static_cast<int64_t>(latencies.size());
        if (!ok) r.errors++;
        r.latencies_ms.insert(r.latencies_ms.end(), latencies.begin(), latencies.end());
      }
    });
  }
  absl::SleepFor(absl::GetFlag(FLAGS_warmup));
  measuring = true;
  const absl::Time start = absl::Now();
  absl::SleepFor(absl::GetFlag(FLAGS_duration));
  measuring = false;
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  stop = true;
  for (auto& t : threads) t.join();
  Result total;
  for (Result& r : results) {
    total.calls += r.calls;
    total.errors += r.errors;
    total.latencies_ms.insert(total.latencies_ms.end(), r.latencies_ms.begin(), r.latencies_ms.end());
  }
  std::sort(total.latencies_ms.begin(), total.latencies_ms.end());
  std::printf("{\"workload\":\"%s\",\"transport\":\"%s\",\"clients\":%d,\"seconds\":%.2f,\"calls\":%lld,"
              "\"errors\":%lld,\"rps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n",
              workload.c_str(), Transport(channels), clients, seconds, static_cast<long long>(total.calls),
              static_cast<long long>(total.errors), total.calls / seconds, Percentile(total.latencies_ms, 0.50),
              Percentile(total.latencies_ms, 0.99));
  std::fflush(stdout);
}

int64_t RssBytes(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    int64_t kib;
    if (line.rfind("VmRSS:", 0) == 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)), &kib)) {
      return kib * 1024;
    }
  }
  return -1;
}

void MeasureBindingMemory(const Channels& channels) {
  const int pid = absl::GetFlag(FLAGS_server_pid);
  const int count = absl::GetFlag(FLAGS_memory_bindings);
  if (pid <= 0) {
    std::fprintf(stderr, "binding_memory needs --server_pid\n");
    return;
  }
  // Warm the server's allocator and gRPC buffers first, then measure only the growth from new bindings.
  auto stub = v1::NatControlService::NewStub(channels.For(0));
  auto create = [&](int from, int to) {
    std::vector<std::thread> threads;
    std::atomic<int> errors{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        auto s = v1::NatControlService::NewStub(channels.For(t));
        for (int p = from + t; p < to; p += 4) {
          v1::AllocateBindingRequest r = Registration(1000000 + p);
          v1::AllocateBindingResponse response;
          grpc::ClientContext context;
          if (!s->AllocateBinding(&context, r, &response).ok()) errors++;
        }
      });
    }
    for (auto& t : threads) t.join();
    return errors.load();
  };
  create(0, 5000);
  absl::SleepFor(absl::Milliseconds(500));
  const int64_t before = RssBytes(pid);
  const int errors = create(5000, 5000 + count);
  absl::SleepFor(absl::Milliseconds(500));
  const int64_t after = RssBytes(pid);
  std::printf("{\"workload\":\"binding_memory\",\"bindings\":%d,\"errors\":%d,\"rss_before_bytes\":%lld,"
              "\"rss_after_bytes\":%lld,\"bytes_per_binding\":%.1f}\n",
              count, errors, static_cast<long long>(before), static_cast<long long>(after),
              static_cast<double>(after - before) / count);
  std::fflush(stdout);
}

}  // namespace
}  // namespace latchkey

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  latchkey::Channels channels;
  latchkey::grpcutil::ApplyTlsFlags(&channels.tls);
  latchkey::grpcutil::ApplyTlsDefaults(&channels.tls);
  if (absl::Status s = latchkey::grpcutil::ValidateTls(channels.tls); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
  for (int i = 0; i < std::max(1, absl::GetFlag(FLAGS_channels)); ++i) {
    channels.list.push_back(channels.Fresh(absl::StrCat("shared-", i)));
  }
  for (absl::string_view workload : absl::StrSplit(absl::GetFlag(FLAGS_workloads), ',', absl::SkipEmpty())) {
    if (workload == "binding_memory") {
      latchkey::MeasureBindingMemory(channels);
      continue;
    }
    if (!latchkey::MakeWork(std::string(workload), channels)) {
      std::fprintf(stderr, "unknown workload %s\n", std::string(workload).c_str());
      return 2;
    }
    for (absl::string_view c : absl::StrSplit(absl::GetFlag(FLAGS_clients), ',', absl::SkipEmpty())) {
      int clients = 1;
      if (!absl::SimpleAtoi(c, &clients) || clients < 1) return 2;
      latchkey::Run(std::string(workload), clients, channels);
    }
  }
  return 0;
}
