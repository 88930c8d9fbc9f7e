#pragma once
// A client channel for Latchkey's internal calls: reconnect backoff capped at 2 s (gRPC's default
// grows to 120 s), so a restarted control or relay is found again within a heartbeat or two.
#include <memory>
#include <string>

#include "common/grpc/tls.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"

namespace latchkey::grpcutil {

// The reconnect backoff every channel of ours uses.
inline grpc::ChannelArguments ChannelArguments() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return args;
}

// `tls` disabled: plaintext. Enabled: mutual TLS, and the server must be `peer`.
inline std::shared_ptr<grpc::Channel> CreateChannel(const std::string& address, const v1::TlsConfig& tls,
                                                    const ExpectedPeer& peer) {
  return grpc::CreateCustomChannel(address, ChannelCredentials(tls, peer), ChannelArguments());
}

// What clients of the PBX/operator API (NatControlService) should retry by themselves: UNAVAILABLE
// means the call changed nothing (control could not reach its store, is failing over, or the replica
// went away) and every RPC there is safe to repeat (a REGISTER refresh, a re-offer of the same
// Call-ID and from-tag, a release). Five attempts with 0.2-2 s back-off span a Redis failover of a
// few seconds; the caller's deadline still bounds the whole. docs/API.md gives PBX integrators the
// same JSON.
inline constexpr char kControlApiServiceConfig[] = R"json({
  "methodConfig": [{
    "name": [{"service": "latchkey.v1.NatControlService"}],
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.2s",
      "maxBackoff": "2s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
})json";

// A channel to the PBX/operator API with that retry policy.
inline std::shared_ptr<grpc::Channel> CreateControlApiChannel(const std::string& address, const v1::TlsConfig& tls) {
  grpc::ChannelArguments args = ChannelArguments();
  args.SetServiceConfigJSON(kControlApiServiceConfig);
  return grpc::CreateCustomChannel(address, ChannelCredentials(tls, {auth::Role::kControl, ""}), args);
}

}  // namespace latchkey::grpcutil
