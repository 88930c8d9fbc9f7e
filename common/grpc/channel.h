#pragma once
// A client channel for Latchkey's internal calls: reconnect backoff capped at 2 s (gRPC's default
// grows to 120 s), so a restarted control or relay is found again within a heartbeat or two.
#include <memory>
#include <string>

#include "common/grpc/tls.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"

namespace latchkey::grpcutil {

// `tls` disabled: plaintext. Enabled: mutual TLS, and the server must be `peer`.
inline std::shared_ptr<grpc::Channel> CreateChannel(const std::string& address, const v1::TlsConfig& tls,
                                                    const ExpectedPeer& peer) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(address, ChannelCredentials(tls, peer), args);
}

}  // namespace latchkey::grpcutil
