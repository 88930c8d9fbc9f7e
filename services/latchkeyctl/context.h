#pragma once
// What every command gets: the connection to latchkey-control, the output mode, the RPC deadline,
// and one way to report failures (exit codes: 0 success, 1 failure, 2 usage error).
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "latchkey/v1/config.pb.h"
#include "latchkey/v1/nat_control.grpc.pb.h"

namespace latchkey::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct GlobalOptions {
  std::string server;
  bool json = false;
  absl::Duration timeout = absl::Seconds(5);
  v1::TlsConfig tls;  // mutual TLS to control when its files are set
};

// "latchkeyctl: COMMAND: message" and the synopses of that command (or its group) on stderr;
// returns kExitUsage.
int PrintUsageError(absl::string_view command, const std::vector<std::string>& synopses, absl::string_view message);

class Context {
 public:
  // `command` names the command in messages ("bindings get"); `usage` is its synopsis.
  Context(GlobalOptions options, std::string command, std::string usage);

  const GlobalOptions& options() const { return options_; }
  bool json() const { return options_.json; }
  const std::string& command() const { return command_; }

  v1::NatControlService::Stub& control();
  grpc::health::v1::Health::Stub& health();
  // Sets the --timeout deadline on `context`.
  void SetDeadline(grpc::ClientContext* context) const;
  // Runs one unary RPC, `rpc(grpc::ClientContext*)`, under the --timeout deadline.
  template <typename Rpc>
  grpc::Status Call(Rpc&& rpc) const {
    grpc::ClientContext context;
    SetDeadline(&context);
    return rpc(&context);
  }

  // True once the channel to the server is connected.
  bool Connected();

  // `text` to stdout as is. False if stdout is gone (a closed pipe: SIGPIPE is ignored).
  bool Print(absl::string_view text) const;
  // `message` as one line of protobuf JSON on stdout. False if stdout is gone.
  bool PrintJson(const google::protobuf::Message& message) const;

  // "latchkeyctl: COMMAND: CODE_NAME: message" on stderr; returns kExitFailure.
  int RpcError(const grpc::Status& status) const;
  // "latchkeyctl: COMMAND: message" on stderr; returns kExitFailure.
  int Failure(absl::string_view message) const;
  // The message and the command's usage on stderr; returns kExitUsage.
  int UsageError(absl::string_view message) const;
  // A note for the operator on stderr (never mixed into the JSON on stdout).
  void Note(absl::string_view message) const;

 private:
  std::shared_ptr<grpc::Channel> Channel();

  GlobalOptions options_;
  std::string command_;
  std::string usage_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::NatControlService::Stub> control_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace latchkey::ctl
