#include "services/latchkeyctl/render.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/latchkeyctl/format.h"

namespace latchkey::ctl {
namespace {

std::string ReasonsText(const v1::NatVerdict& verdict) {
  std::vector<std::string> reasons;
  for (int reason : verdict.reasons()) reasons.push_back(EnumName(static_cast<v1::NatReason>(reason)));
  return reasons.empty() ? "none" : absl::StrJoin(reasons, ", ");
}

std::string OrDash(const std::string& text) { return text.empty() ? "-" : text; }

std::string RemoteText(const v1::RemoteMedia& remote) {
  std::string text = absl::StrCat(OrDash(remote.media_type()), " ", FormatAddress(remote.sdp_rtp()));
  if (remote.rtcp_mux()) {
    absl::StrAppend(&text, " rtcp-mux");
  } else if (remote.has_sdp_rtcp()) {
    absl::StrAppend(&text, " rtcp ", FormatAddress(remote.sdp_rtcp()));
  }
  absl::StrAppend(&text, " ",
                  remote.direction() == v1::MEDIA_DIRECTION_UNSPECIFIED ? "sendrecv" : EnumName(remote.direction()));
  return text;
}

std::string EndpointText(const v1::RelayEndpoint& endpoint) {
  std::string text = absl::StrCat("rtp ", FormatAddress(endpoint.rtp()));
  if (endpoint.has_rtcp()) absl::StrAppend(&text, " rtcp ", FormatAddress(endpoint.rtcp()));
  return text;
}

void AddLeg(Block& block, const std::string& name, const v1::Leg& leg) {
  block.Section(name);
  block.Add("tag", OrDash(leg.tag()));
  block.Add("signaling_source", FormatAddress(leg.signaling_source()));
  block.Add("nat", leg.has_verdict() ? VerdictText(leg.verdict()) : "-");
  if (leg.has_verdict() && !leg.verdict().policy().empty()) block.Add("nat_policy", leg.verdict().policy());
  block.Add("latching", EnumName(leg.latching_mode()));
  for (const v1::RemoteMedia& remote : leg.remote()) {
    block.Add(absl::StrCat("remote[", remote.media_index(), "]"), RemoteText(remote));
  }
  for (const v1::RelayEndpoint& endpoint : leg.relay()) {
    block.Add(absl::StrCat("relay[", endpoint.media_index(), "]"), EndpointText(endpoint));
  }
  const v1::LegStats& stats = leg.stats();
  block.Add("packets", absl::StrCat("in ", stats.packets_in(), ", out ", stats.packets_out(), ", dropped ",
                                    stats.packets_dropped()));
  block.Add("bytes", absl::StrCat("in ", stats.bytes_in(), ", out ", stats.bytes_out()));
  if (stats.has_latched_source()) {
    block.Add("latched", absl::StrCat(FormatAddress(stats.latched_source()), " at ", FormatTime(stats.latched_at()),
                                      " (relatched ", stats.relatch_count(), " times)"));
  } else {
    block.Add("latched", "no");
  }
  block.EndSection();
}

void AddBinding(Block& block, const v1::Binding& binding) {
  block.Add("aor", binding.aor());
  block.Add("contact", binding.contact());
  block.Add("effective_contact", binding.effective_contact());
  if (!binding.instance_id().empty()) block.Add("instance_id", binding.instance_id());
  block.Add("transport", EnumName(binding.transport()));
  block.Add("source", FormatAddress(binding.source()));
  block.Add("registrar", FormatAddress(binding.registrar()));
  block.Add("verdict", EnumName(binding.verdict().state()));
  block.Add("reasons", ReasonsText(binding.verdict()));
  block.Add("policy", OrDash(binding.verdict().policy()));
  block.Add("trusted_peer", YesNo(binding.verdict().trusted_peer()));
  block.Add("keepalive", KeepaliveText(binding.keepalive()));
  if (!binding.keepalive().note().empty()) block.Add("keepalive_note", binding.keepalive().note());
}

}  // namespace

std::string VerdictText(const v1::NatVerdict& verdict) {
  std::string text = EnumName(verdict.state());
  if (verdict.trusted_peer()) return absl::StrCat(text, " (trusted peer)");
  if (verdict.reasons_size() > 0) absl::StrAppend(&text, " (", ReasonsText(verdict), ")");
  return text;
}

std::string KeepaliveText(const v1::KeepalivePlan& plan) {
  if (plan.method() == v1::KEEPALIVE_METHOD_NONE || plan.method() == v1::KEEPALIVE_METHOD_UNSPECIFIED) return "none";
  std::string text = absl::StrCat(EnumName(plan.method()), " every ", FormatDuration(plan.interval()), ", ",
                                  plan.worker_id().empty() ? "no worker assigned yet"
                                                           : absl::StrCat("sent by worker ", plan.worker_id()));
  if (plan.failure_threshold() > 0) absl::StrAppend(&text, ", unreachable after ", plan.failure_threshold(), " misses");
  return text;
}

std::string RelayText(const Repeated<v1::RelayEndpoint>& relay) {
  std::vector<std::string> parts;
  for (const v1::RelayEndpoint& endpoint : relay) parts.push_back(FormatAddress(endpoint.rtp()));
  return parts.empty() ? "-" : absl::StrJoin(parts, ",");
}

std::string RenderAllocateBinding(const v1::AllocateBindingResponse& response) {
  const v1::Binding& binding = response.binding();
  Block block;
  block.Add("binding_id", binding.binding_id());
  std::string result = response.created() ? "created" : "refreshed";
  if (response.source_changed()) absl::StrAppend(&result, ", source changed (NAT rebinding)");
  if (binding.has_expires() && binding.expires().seconds() == 0 && binding.expires().nanos() == 0) result = "released";
  block.Add("result", result);
  AddBinding(block, binding);
  block.Add("suggested_expires", FormatDuration(response.suggested_expires(), response.has_suggested_expires()));
  block.Add("expires_at", FormatTime(binding.expires_at()));
  return block.Render();
}

std::string RenderBinding(const v1::Binding& binding) {
  Block block;
  block.Add("binding_id", binding.binding_id());
  AddBinding(block, binding);
  block.Add("expires", FormatDuration(binding.expires(), binding.has_expires()));
  block.Add("created_at", FormatTime(binding.created_at()));
  block.Add("refreshed_at", FormatTime(binding.refreshed_at()));
  block.Add("expires_at", FormatTime(binding.expires_at()));
  block.Add("reachability", EnumName(binding.reachability()));
  block.Add("source_changes", absl::StrCat(binding.source_changes()));
  if (!binding.user_agent().empty()) block.Add("user_agent", binding.user_agent());
  return block.Render();
}

std::string RenderBindings(const Repeated<v1::Binding>& bindings) {
  Table table({"BINDING_ID", "AOR", "NAT", "TRANSPORT", "SOURCE", "EFFECTIVE_CONTACT", "EXPIRES_AT"});
  for (const v1::Binding& b : bindings) {
    table.AddRow({b.binding_id(), b.aor(), EnumName(b.verdict().state()), EnumName(b.transport()),
                  FormatAddress(b.source()), b.effective_contact(), FormatTime(b.expires_at())});
  }
  return table.Render();
}

std::string RenderBindingEvent(const v1::WatchBindingsResponse& event) {
  const v1::Binding& b = event.binding();
  return absl::StrCat(FormatTime(event.time()), " ", EnumName(event.type()), " ", b.binding_id(), " ", b.aor(),
                      " nat=", EnumName(b.verdict().state()), " source=", FormatAddress(b.source()),
                      " contact=", b.effective_contact(), "\n");
}

std::string RenderSession(const v1::Session& session) {
  Block block;
  block.Add("session_id", session.session_id());
  block.Add("call_id", session.call_id());
  if (!session.branch().empty()) block.Add("branch", session.branch());
  block.Add("state", EnumName(session.state()));
  if (session.has_release_at()) block.Add("release_at", FormatTime(session.release_at()));
  if (session.state() == v1::SESSION_STATE_ENDED) block.Add("end_reason", EnumName(session.end_reason()));
  block.Add("worker", OrDash(session.worker_id()));
  block.Add("created_at", FormatTime(session.created_at()));
  block.Add("answered_at", FormatTime(session.answered_at()));
  block.Add("updated_at", FormatTime(session.updated_at()));
  const v1::SessionOptions& options = session.options();
  block.Section("options");
  block.Add("latching_mode", EnumName(options.latching_mode()));
  block.Add("media_timeout", FormatDuration(options.media_timeout(), options.has_media_timeout()));
  block.Add("ice", EnumName(options.ice()));
  block.Add("rewrite_origin", YesNo(options.rewrite_origin()));
  block.EndSection();
  AddLeg(block, "caller", session.caller());
  AddLeg(block, "callee", session.callee());
  return block.Render();
}

std::string RenderSessionAndSdp(const v1::Session& session, const std::string& heading, const std::string& sdp) {
  std::string text = absl::StrCat(RenderSession(session), "\n", heading, ":\n");
  for (absl::string_view line : absl::StrSplit(sdp, '\n', absl::SkipEmpty())) {
    absl::ConsumeSuffix(&line, "\r");
    absl::StrAppend(&text, line, "\n");
  }
  return text;
}

std::string RenderSessions(const Repeated<v1::Session>& sessions) {
  Table table({"SESSION_ID", "CALL_ID", "STATE", "WORKER", "CALLER", "CALLEE", "CREATED_AT"});
  auto leg = [](const v1::Leg& l) {
    if (!l.has_signaling_source()) return std::string("-");
    return absl::StrCat(FormatAddress(l.signaling_source()), " ", EnumName(l.verdict().state()));
  };
  for (const v1::Session& s : sessions) {
    table.AddRow({s.session_id(), s.call_id(), EnumName(s.state()), OrDash(s.worker_id()), leg(s.caller()),
                  leg(s.callee()), FormatTime(s.created_at())});
  }
  return table.Render();
}

std::string RenderSessionEvent(const v1::WatchSessionsResponse& event) {
  const v1::Session& s = event.session();
  // A contest names the leg and the refused source: what an operator acts on.
  const std::string contest = event.type() == v1::SESSION_EVENT_TYPE_LATCH_CONTESTED
                                  ? absl::StrCat(" side=", EnumName(event.side()), " contender=", FormatAddress(event.source()))
                                  : "";
  return absl::StrCat(FormatTime(event.time()), " ", EnumName(event.type()), " ", s.session_id(),
                      " call_id=", s.call_id(), " state=", EnumName(s.state()), " worker=", OrDash(s.worker_id()),
                      " caller_relay=", RelayText(s.caller().relay()), " callee_relay=", RelayText(s.callee().relay()),
                      contest, "\n");
}

std::string RenderWorker(const v1::Worker& worker, absl::Time now) {
  Block block;
  const v1::WorkerLoad& load = worker.load();
  block.Add("worker_id", worker.worker_id());
  block.Add("state", EnumName(worker.state()));
  block.Add("grpc_address", OrDash(worker.grpc_address()));
  block.Add("advertised_ips", OrDash(absl::StrJoin(worker.advertised_ips(), ", ")));
  block.Add("keepalive_source_ips", OrDash(absl::StrJoin(worker.keepalive_source_ips(), ", ")));
  block.Add("version", OrDash(worker.version()));
  block.Add("sessions", absl::StrCat(load.sessions(), "/", load.max_sessions()));
  block.Add("ports", absl::StrCat(load.free_ports(), " free of ", load.total_ports()));
  block.Add("packets_per_second", absl::StrCat(load.packets_per_second()));
  block.Add("cpu", absl::StrCat(load.cpu()));
  block.Add("registered_at", FormatTime(worker.registered_at()));
  block.Add("last_heartbeat",
            absl::StrCat(FormatTime(worker.last_heartbeat()), " (", FormatAge(worker.last_heartbeat(), now), ")"));
  return block.Render();
}

std::string RenderWorkers(const Repeated<v1::Worker>& workers, absl::Time now) {
  Table table({"WORKER_ID", "STATE", "GRPC_ADDRESS", "ADVERTISED", "SESSIONS", "PORTS_FREE", "HEARTBEAT"});
  for (const v1::Worker& w : workers) {
    table.AddRow({w.worker_id(), EnumName(w.state()), OrDash(w.grpc_address()),
                  OrDash(absl::StrJoin(w.advertised_ips(), ",")),
                  absl::StrCat(w.load().sessions(), "/", w.load().max_sessions()),
                  absl::StrCat(w.load().free_ports(), "/", w.load().total_ports()),
                  FormatAge(w.last_heartbeat(), now)});
  }
  return table.Render();
}

}  // namespace latchkey::ctl
