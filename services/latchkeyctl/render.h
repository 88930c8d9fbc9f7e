#pragma once
// How each API object reads in human output: a table row for lists, a "key: value" block for one
// object, one line per watch event. Built on format.h.
#include <string>

#include "absl/time/time.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "latchkey/v1/nat_control.pb.h"

namespace latchkey::ctl {

template <typename T>
using Repeated = google::protobuf::RepeatedPtrField<T>;

// "behind_nat (contact_private, via_port_mismatch)", "not_behind_nat (trusted peer)".
std::string VerdictText(const v1::NatVerdict& verdict);
// "options every 30s, sent by worker relay-a, unreachable after 3 misses", or "none".
std::string KeepaliveText(const v1::KeepalivePlan& plan);
// The RTP addresses of one leg's relay ports: "127.0.0.1:30000,127.0.0.1:30002".
std::string RelayText(const Repeated<v1::RelayEndpoint>& relay);

std::string RenderAllocateBinding(const v1::AllocateBindingResponse& response);
std::string RenderBinding(const v1::Binding& binding);
std::string RenderBindings(const Repeated<v1::Binding>& bindings);
std::string RenderBindingEvent(const v1::WatchBindingsResponse& event);

std::string RenderSession(const v1::Session& session);
std::string RenderSessions(const Repeated<v1::Session>& sessions);
std::string RenderSessionEvent(const v1::WatchSessionsResponse& event);
// sessions offer/answer: the session as RenderSession shows it, then "`heading`:" and the rewritten
// SDP as control returned it (line ends shown as plain newlines).
std::string RenderSessionAndSdp(const v1::Session& session, const std::string& heading, const std::string& sdp);

std::string RenderWorker(const v1::Worker& worker, absl::Time now);
std::string RenderWorkers(const Repeated<v1::Worker>& workers, absl::Time now);

}  // namespace latchkey::ctl
