#include "common/grpc/rpc_metrics.h"

#include "common/auth/method_policy.h"

#include <array>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"

namespace latchkey::grpcutil {
namespace {

constexpr int kCodeCount = 17;  // grpc::StatusCode OK .. UNAUTHENTICATED

const char* CodeName(int code) {
  static constexpr std::array<const char*, kCodeCount> kNames = {
      "OK",        "CANCELLED",         "UNKNOWN",           "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS",    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",      "UNIMPLEMENTED",    "INTERNAL",
      "UNAVAILABLE", "DATA_LOSS",       "UNAUTHENTICATED"};
  return kNames[code];
}

// Children of the metric families for one method, created on its first call and kept for the
// process's life (methods are a small fixed set), so the per-call cost is a shared-lock lookup.
struct MethodMetrics {
  std::array<prometheus::Counter*, kCodeCount> by_code{};
  prometheus::Histogram* duration = nullptr;
};

class RpcMetrics {
 public:
  explicit RpcMetrics(prometheus::Registry& registry)
      : requests_(prometheus::BuildCounter()
                      .Name("latchkey_rpc_requests_total")
                      .Help("gRPC requests answered, by method and status code")
                      .Register(registry)),
        durations_(prometheus::BuildHistogram()
                       .Name("latchkey_rpc_duration_seconds")
                       .Help("Time from receiving a gRPC request to sending its status")
                       .Register(registry)) {}

  // Children are created on first use of a method or code, so /metrics lists only what happened.
  void Record(const std::string& full_method, int code, double seconds) {
    {
      absl::ReaderMutexLock lock(&mu_);
      auto it = methods_.find(full_method);
      if (it != methods_.end() && it->second.by_code[code] != nullptr) {
        it->second.by_code[code]->Increment();
        it->second.duration->Observe(seconds);
        return;
      }
    }
    absl::MutexLock lock(&mu_);
    // "/latchkey.v1.NatControlService/AllocateBinding": service and method become two labels.
    const size_t slash = full_method.rfind('/');
    const std::string method = slash == std::string::npos ? full_method : full_method.substr(slash + 1);
    const std::string service = slash == std::string::npos || slash == 0 ? "" : full_method.substr(1, slash - 1);
    MethodMetrics& m = methods_[full_method];
    if (m.duration == nullptr) {
      m.duration = &durations_.Add(
          {{"service", service}, {"method", method}},
          prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                   0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
    }
    if (m.by_code[code] == nullptr) {
      m.by_code[code] = &requests_.Add({{"service", service}, {"method", method}, {"code", CodeName(code)}});
    }
    m.by_code[code]->Increment();
    m.duration->Observe(seconds);
  }

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, MethodMetrics> methods_ ABSL_GUARDED_BY(mu_);
};

class RpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  // A path that is none of ours (a scanner's, answered UNIMPLEMENTED) is recorded as "/unknown/unknown":
  // a client must not be able to create label values.
  RpcMetricsInterceptor(RpcMetrics* metrics, const char* method)
      : metrics_(metrics),
        method_(method && auth::MethodLabel(method) != "unknown" ? method : "/unknown/unknown"),
        start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      int code = static_cast<int>(methods->GetSendStatus().error_code());
      if (code < 0 || code >= kCodeCount) code = static_cast<int>(grpc::StatusCode::UNKNOWN);
      metrics_->Record(method_, code, absl::ToDoubleSeconds(absl::Now() - start_));
    }
    methods->Proceed();
  }

 private:
  RpcMetrics* metrics_;
  std::string method_;
  absl::Time start_;
};

class RpcMetricsFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsFactory(prometheus::Registry& registry) : metrics_(registry) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(&metrics_, info->method());
  }

 private:
  RpcMetrics metrics_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcMetricsInterceptorFactory(
    prometheus::Registry& registry) {
  return std::make_unique<RpcMetricsFactory>(registry);
}

}  // namespace latchkey::grpcutil
