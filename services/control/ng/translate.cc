#include "services/control/ng/translate.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/net/ip_address.h"
#include "services/control/sdp/session_description.h"

namespace latchkey::control::ng {
namespace {

absl::Status Refused(absl::string_view key, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(key, ": ", why));
}

absl::StatusOr<std::string> CheckedIp(absl::string_view key, const std::string& text, absl::string_view family) {
  auto ip = net::IpAddress::Parse(text);
  if (!ip.ok()) return Refused(key, absl::StrCat("\"", text.substr(0, 64), "\" is not an IP address"));
  if ((family == "IP4" && ip->is_v6()) || (family == "IP6" && !ip->is_v6())) {
    return Refused(key, absl::StrCat(text, " is not an ", family, " address"));
  }
  if (!family.empty() && family != "IP4" && family != "IP6") {
    return Refused(key, absl::StrCat("unknown address family \"", family.substr(0, 16), "\""));
  }
  return ip->ToString();
}

}  // namespace

absl::StatusOr<Translation> Translate(const Command& command, const std::string& client_ip) {
  Translation out;
  for (const std::string& feature : command.media_features) {
    if (feature == "record-call" || feature == "record call") {
      out.warnings.push_back("record-call: not supported, the call is not recorded");
      continue;
    }
    return Refused(feature, "not supported: Latchkey relays media unchanged (no SRTP/DTLS termination, "
                            "transcoding, T.38 or repacketizing)");
  }

  v1::SessionOptions& options = out.options;
  if (command.has_flag("asymmetric")) {
    options.set_latching_mode(v1::LATCHING_MODE_STRICT);
  } else if (command.has_flag("sip source address")) {
    options.set_latching_mode(v1::LATCHING_MODE_SIGNALING_SOURCE);
  } else {
    options.set_latching_mode(v1::LATCHING_MODE_HEURISTIC);
  }

  if (command.ice.empty() || command.ice == "remove" || command.ice == "default" || command.ice == "optional") {
    options.set_ice(v1::ICE_HANDLING_REMOVE);
  } else if (command.ice == "force" || command.ice == "force relay") {
    return Refused("ICE", absl::StrCat("\"", command.ice, "\" is not supported: the relay is not an ICE agent; "
                                                          "use ICE=remove"));
  } else {
    options.set_ice(v1::ICE_HANDLING_REMOVE);
    out.warnings.push_back(absl::StrCat("ICE: unknown value \"", command.ice.substr(0, 32), "\" taken as remove"));
  }

  for (const std::string& what : command.replace) {
    if (what == "origin") options.set_rewrite_origin(true);
  }

  if (command.address_family == "IP4") {
    options.set_callee_ip_family(v1::IP_FAMILY_IPV4);
  } else if (command.address_family == "IP6") {
    options.set_callee_ip_family(v1::IP_FAMILY_IPV6);
  } else if (!command.address_family.empty()) {
    return Refused("address-family", absl::StrCat("must be IP4 or IP6, not \"", command.address_family, "\""));
  }

  // Only an SDP offering rtcp-mux has something the flag would change.
  const bool sdp_muxes = command.sdp && absl::StrContains(*command.sdp, "a=rtcp-mux");
  for (const std::string& mux : command.rtcp_mux) {
    if ((mux == "demux" || mux == "require") && sdp_muxes) {
      out.warnings.push_back(absl::StrCat("rtcp-mux: ", mux, " not supported, a=rtcp-mux passed through unchanged"));
    }
  }

  if (command.sdp && !command.transport_protocol.empty()) {
    auto description = sdp::SessionDescription::Parse(*command.sdp);
    if (description.ok()) {
      for (const sdp::MediaDescription& media : description->media()) {
        if (media.port != 0 && media.proto != command.transport_protocol) {
          return Refused("transport-protocol", absl::StrCat("translating ", media.proto.substr(0, 32), " to ",
                                                            command.transport_protocol, " is not supported"));
        }
      }
    }  // an SDP that does not parse is refused by the session core, naming its line
  }

  std::string source_ip = client_ip;
  if (!command.media_address.empty()) {
    auto ip = CheckedIp("media-address", command.media_address, "");
    if (!ip.ok()) return ip.status();
    source_ip = *ip;
  } else if (!command.received_from_ip.empty()) {
    auto ip = CheckedIp("received-from", command.received_from_ip, command.received_from_family);
    if (!ip.ok()) return ip.status();
    source_ip = *ip;
  } else if (command.has_flag("sip source address")) {
    return Refused("received-from", "required with SIP-source-address");
  }
  out.signaling_source.set_ip(source_ip);
  out.signaling_source.set_port(0);
  return out;
}

}  // namespace latchkey::control::ng
