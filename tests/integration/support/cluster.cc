#include "tests/integration/support/cluster.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/grpc/channel.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace latchkey::testing {

absl::Status WaitForServing(const std::string& address, absl::Duration timeout, const v1::TlsConfig& tls,
                            const grpcutil::ExpectedPeer& peer) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last = "no answer";
  while (absl::Now() < deadline) {
    // A fresh channel per attempt connects at once instead of waiting out reconnect backoff.
    auto stub = grpc::health::v1::Health::NewStub(grpcutil::CreateChannel(address, tls, peer));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(500)));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status status = stub->Check(&context, request, &response);
    if (status.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING) return absl::OkStatus();
    last = status.ok() ? "NOT_SERVING" : status.error_message();
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat(address, " not serving: ", last));
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return condition();
}

std::string ScratchDir(const std::string& name) {
  static std::atomic<int> counter{0};
  std::string dir = absl::StrCat("/tmp/latchkey-test-", ::getpid(), "-", counter++, "-", name);
  ::mkdir(dir.c_str(), 0755);
  return dir;
}

ControlPorts ControlPorts::Free() { return ControlPorts{FreeTcpPort(), FreeTcpPort(), FreeTcpPort()}; }

absl::StatusOr<std::unique_ptr<LocalControl>> LocalControl::Start(const std::string& config_text, ControlPorts ports) {
  std::unique_ptr<LocalControl> control(new LocalControl());
  control->ports_ = ports;
  if (!control->ports_.grpc) control->ports_.grpc = FreeTcpPort();
  if (!control->ports_.worker) control->ports_.worker = FreeTcpPort();
  if (!control->ports_.metrics) control->ports_.metrics = FreeTcpPort();
  auto tls = TestTls(auth::Role::kControl, "control");
  if (!tls.ok()) return tls.status();
  control->dir_ = ScratchDir("control");
  const std::string config_path = control->dir_ + "/control.textproto";
  std::ofstream(config_path) << config_text << "\n";
  std::vector<std::string> argv = {LATCHKEY_CONTROL_BIN, "--config=" + config_path,
                                   absl::StrCat("--listen=127.0.0.1:", control->ports_.grpc),
                                   absl::StrCat("--worker_listen=127.0.0.1:", control->ports_.worker),
                                   absl::StrCat("--metrics_listen=127.0.0.1:", control->ports_.metrics)};
  for (const std::string& flag : TlsFlags(*tls)) argv.push_back(flag);
  auto process = ChildProcess::Start(argv, control->dir_ + "/control.log");
  if (!process.ok()) return process.status();
  control->process_ = *std::move(process);
  auto operator_tls = TestTls(auth::Role::kOperator, "test");
  if (!operator_tls.ok()) return operator_tls.status();
  if (absl::Status s = WaitForServing(control->address(), absl::Seconds(15), *operator_tls, {auth::Role::kControl, ""});
      !s.ok()) {
    return absl::UnavailableError(absl::StrCat(s.message(), "\n", control->process_.ReadLog()));
  }
  return control;
}

LocalControl::~LocalControl() { process_.Stop(SIGTERM); }

std::shared_ptr<grpc::Channel> LocalControl::Channel(const std::string& address, auth::Role role,
                                                     const std::string& name) const {
  auto tls = TestTls(role, name);
  // An unusable channel fails every call; the test then says which.
  return grpcutil::CreateChannel(address, tls.ok() ? *tls : v1::TlsConfig(), {auth::Role::kControl, ""});
}

std::unique_ptr<v1::NatControlService::Stub> LocalControl::Stub(auth::Role role, const std::string& name) const {
  return v1::NatControlService::NewStub(Channel(address(), role, name));
}

std::unique_ptr<v1::NatControlService::Stub> LocalControl::Stub() const { return Stub(auth::Role::kOperator, "test"); }

std::string LocalControl::Metrics() const {
  CommandResult result = RunCommand({"/usr/bin/curl", "-sf", absl::StrCat("http://127.0.0.1:", ports_.metrics, "/metrics")},
                                    absl::Seconds(10));
  return result.exit_code == 0 ? result.output : "";
}

absl::StatusOr<std::unique_ptr<LocalRelay>> LocalRelay::Start(const LocalControl& control,
                                                              const std::string& worker_id,
                                                              const std::vector<std::string>& extra_flags,
                                                              int port_count) {
  std::unique_ptr<LocalRelay> relay(new LocalRelay());
  relay->worker_id_ = worker_id;
  relay->grpc_port_ = FreeTcpPort();
  relay->metrics_port_ = FreeTcpPort();
  relay->port_min_ = FreeUdpRange(port_count);
  relay->port_max_ = relay->port_min_ + port_count - 1;
  if (relay->port_min_ == 0) return absl::UnavailableError("no free UDP port range");
  auto tls = TestTls(auth::Role::kWorker, worker_id);
  if (!tls.ok()) return tls.status();
  std::vector<std::string> argv = {LATCHKEY_RELAY_BIN,
                                   "--control=" + control.worker_address(),
                                   "--keepalive_allow_loopback",
                                   "--min_keepalive_interval=1s",
                                   "--worker_id=" + worker_id,
                                   absl::StrCat("--listen=127.0.0.1:", relay->grpc_port_),
                                   absl::StrCat("--metrics_listen=127.0.0.1:", relay->metrics_port_),
                                   absl::StrCat("--port_min=", relay->port_min_),
                                   absl::StrCat("--port_max=", relay->port_max_)};
  for (const std::string& flag : TlsFlags(*tls)) argv.push_back(flag);
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  const std::string dir = ScratchDir("relay-" + worker_id);
  auto process = ChildProcess::Start(argv, dir + "/relay.log");
  if (!process.ok()) return process.status();
  relay->process_ = *std::move(process);
  if (absl::Status s = relay->WaitForServing(absl::Seconds(15)); !s.ok()) {
    return absl::UnavailableError(absl::StrCat(s.message(), "\n", relay->process_.ReadLog()));
  }
  return relay;
}

LocalRelay::~LocalRelay() { process_.Stop(SIGKILL); }

absl::Status LocalRelay::WaitForServing(absl::Duration timeout) const {
  auto control_tls = TestTls(auth::Role::kControl, "control");
  if (!control_tls.ok()) return control_tls.status();
  return testing::WaitForServing(address(), timeout, *control_tls, {auth::Role::kWorker, worker_id_});
}

std::string LocalRelay::Metrics() const {
  CommandResult result = RunCommand({"/usr/bin/curl", "-sf", absl::StrCat("http://127.0.0.1:", metrics_port_, "/metrics")},
                                    absl::Seconds(10));
  return result.exit_code == 0 ? result.output : "";
}

bool WaitForWorker(v1::NatControlService::Stub& stub, const std::string& worker_id, absl::Duration timeout) {
  return WaitFor(
      [&] {
        grpc::ClientContext context;
        v1::ListWorkersResponse response;
        if (!stub.ListWorkers(&context, v1::ListWorkersRequest(), &response).ok()) return false;
        for (const v1::Worker& w : response.workers()) {
          if (w.worker_id() == worker_id && w.state() == v1::WORKER_STATE_READY) return true;
        }
        return false;
      },
      timeout);
}

double MetricValue(const std::string& metrics, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      double value = -1;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &value)) return value;
    }
  }
  return -1;
}

std::string AudioSdp(const std::string& ip, int port, const std::string& extra) {
  return absl::StrCat("v=0\r\no=- 1 1 IN IP4 ", ip, "\r\ns=-\r\nc=IN IP4 ", ip, "\r\nt=0 0\r\nm=audio ", port,
                      " RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n", extra);
}

SdpMedia FirstMedia(const std::string& sdp) {
  SdpMedia out;
  for (absl::string_view line : absl::StrSplit(sdp, "\r\n")) {
    if (absl::StartsWith(line, "c=IN IP4 ") && out.address.empty()) out.address = std::string(line.substr(9));
    if (absl::StartsWith(line, "m=audio ") && out.port == 0) {
      std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
      if (parts.size() > 1) (void)absl::SimpleAtoi(parts[1], &out.port);
    }
  }
  return out;
}

}  // namespace latchkey::testing
