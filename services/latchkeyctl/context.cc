#include "services/latchkeyctl/context.h"

#include <cstdio>
#include <iostream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc/channel.h"
#include "common/grpc/status.h"
#include "common/grpc/tls.h"
#include "google/protobuf/util/json_util.h"

namespace latchkey::ctl {

Context::Context(GlobalOptions options, std::string command, std::string usage)
    : options_(std::move(options)), command_(std::move(command)), usage_(std::move(usage)) {}

std::shared_ptr<grpc::Channel> Context::Channel() {
  if (!channel_) {
    // Retries UNAVAILABLE by itself (a store failing over, a replica going away).
    channel_ = grpcutil::CreateControlApiChannel(options_.server, options_.tls);
  }
  return channel_;
}

v1::NatControlService::Stub& Context::control() {
  if (!control_) control_ = v1::NatControlService::NewStub(Channel());
  return *control_;
}

grpc::health::v1::Health::Stub& Context::health() {
  if (!health_) health_ = grpc::health::v1::Health::NewStub(Channel());
  return *health_;
}

void Context::SetDeadline(grpc::ClientContext* context) const {
  context->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
}

bool Context::Connected() { return channel_ != nullptr && channel_->GetState(false) == GRPC_CHANNEL_READY; }

bool Context::Print(absl::string_view text) const {
  std::cout.write(text.data(), static_cast<std::streamsize>(text.size()));
  std::cout.flush();
  return static_cast<bool>(std::cout);
}

bool Context::PrintJson(const google::protobuf::Message& message) const {
  std::string json;
  google::protobuf::util::JsonPrintOptions print_options;
  print_options.add_whitespace = false;
  if (auto status = google::protobuf::util::MessageToJsonString(message, &json, print_options); !status.ok()) {
    Failure(absl::StrCat("cannot print ", message.GetTypeName(), " as JSON: ", status.ToString()));
    return true;
  }
  json.push_back('\n');
  return Print(json);
}

int Context::RpcError(const grpc::Status& status) const {
  const absl::Status converted = grpcutil::FromGrpc(status);
  // Retries of UNAVAILABLE can use up the deadline: if the channel never connected, say that
  // rather than only that time ran out.
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && channel_ != nullptr &&
      channel_->GetState(false) == GRPC_CHANNEL_TRANSIENT_FAILURE) {
    std::cerr << "latchkeyctl: " << command_ << ": UNAVAILABLE: cannot connect to " << options_.server
              << " (still failing at the deadline; check the address and the --tls_* flags)" << std::endl;
    return kExitFailure;
  }
  std::cerr << "latchkeyctl: " << command_ << ": " << absl::StatusCodeToString(converted.code()) << ": "
            << status.error_message() << std::endl;
  return kExitFailure;
}

int Context::Failure(absl::string_view message) const {
  std::cerr << "latchkeyctl: " << command_ << ": " << message << std::endl;
  return kExitFailure;
}

int PrintUsageError(absl::string_view command, const std::vector<std::string>& synopses, absl::string_view message) {
  std::cerr << "latchkeyctl: " << command << (command.empty() ? "" : ": ") << message << "\n";
  for (size_t i = 0; i < synopses.size(); ++i) {
    std::cerr << (i == 0 ? "usage: " : "       ") << "latchkeyctl [GLOBAL FLAGS] " << synopses[i] << "\n";
  }
  std::cerr << "Global flags: --server=HOST:PORT --json --timeout=5s. Run 'latchkeyctl --help' for every command."
            << std::endl;
  return kExitUsage;
}

int Context::UsageError(absl::string_view message) const { return PrintUsageError(command_, {usage_}, message); }

void Context::Note(absl::string_view message) const {
  std::cerr << "latchkeyctl: " << message << std::endl;
}

}  // namespace latchkey::ctl
