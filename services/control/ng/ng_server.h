#pragma once
// The ng front door's UDP socket: datagrams in, replies out from the very address each request
// reached (Kamailio connect()s its socket, so a reply from another address is never seen; on a
// wildcard bind the local address comes from IP_PKTINFO). A few threads each take whole requests;
// a retransmission (same source, same cookie) is answered from the reply cache, or dropped while
// the first is still running, since that one's reply goes to the same address. Sources outside
// `allow` get nothing (an unauthenticated UDP protocol must not answer strangers, nor reflect).
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/log/log_limiter.h"
#include "common/net/cidr.h"
#include "services/control/ng/commands.h"
#include "services/control/ng/ng_metrics.h"
#include "services/control/ng/reply_cache.h"

namespace latchkey::control::ng {

struct NgServerOptions {
  std::string listen;  // HOST:PORT; port 0 picks one
  net::CidrSet allow;  // sources served; empty: loopback only
  int threads = 4;
};

class NgServer {
 public:
  static absl::StatusOr<std::unique_ptr<NgServer>> Start(NgServerOptions options, CommandHandler* handler,
                                                         NgMetrics* metrics);
  ~NgServer();
  int port() const { return port_; }
  void Shutdown();

 private:
  NgServer() = default;
  void Serve();
  bool Allowed(const net::IpAddress& ip) const;

  NgServerOptions options_;
  CommandHandler* handler_ = nullptr;
  NgMetrics* metrics_ = nullptr;
  int fd_ = -1;
  int port_ = 0;
  bool wildcard_ = false;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;  // the reply cache and the failure-log limiter
  ReplyCache cache_ ABSL_GUARDED_BY(mu_);
  // A client that makes every request fail cannot flood the log: 20 failure lines a second.
  log::LogLimiter failure_log_ ABSL_GUARDED_BY(mu_){20, absl::Seconds(1)};
  std::vector<std::thread> threads_;
};

}  // namespace latchkey::control::ng
