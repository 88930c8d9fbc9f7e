#pragma once
// An ng request dictionary read into the keys Latchkey acts on, as Kamailio 5.6 and OpenSIPS 3.x send
// them (rtpengine's docs/ng_control_protocol.md):
// - Keys may use hyphens or spaces ("call-id" / "call id"); so may flag strings, which are compared
//   case-insensitively after turning hyphens into spaces ("SIP-source-address" = "sip source address").
// - Numbers may come as bencode integers or as decimal strings.
// - A key of the wrong type (a list where a string belongs) or an unusable value is refused, naming
//   the key: the request is malformed, not merely unknown. Unknown keys and flags are kept in
//   `ignored` for the caller to count, as rtpengine ignores them.
// - Required keys depend on the command and are checked by RequireKeys, not here.
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/control/ng/bencode.h"

namespace latchkey::control::ng {

struct Command {
  std::string command;  // "offer", "answer", "delete", "query", "ping", ...
  std::string call_id;
  std::string from_tag;
  std::string to_tag;
  std::string via_branch;
  std::optional<std::string> sdp;
  std::string label;
  // received-from: the IP of the SIP hop the proxy heard (no port), and its family ("IP4"/"IP6").
  std::string received_from_ip;
  std::string received_from_family;
  std::string media_address;
  std::string ice;                 // "remove", "force", ... (lower case); empty when absent
  std::string address_family;      // "IP4" / "IP6"; empty when absent
  std::string transport_protocol;  // "RTP/AVP", ...; empty when absent
  // Normalised flag strings (lower case, spaces for hyphens), from `flags` and from the list keys
  // that carry flags of their own (`replace`, `rtcp-mux`, `direction` are kept apart below).
  absl::flat_hash_set<std::string> flags;
  std::vector<std::string> replace;
  std::vector<std::string> rtcp_mux;
  std::vector<std::string> direction;
  // Keys whose presence asks for something a NAT relay does not do (SDES, DTLS, codec, T.38,
  // record call, ...): named so that the command can refuse or warn.
  std::vector<std::string> media_features;
  std::optional<absl::Duration> delete_delay;
  bool supports_load_limit = false;
  // Unknown keys and flags, as received: counted, logged, otherwise ignored.
  std::vector<std::string> ignored;

  bool has_flag(absl::string_view flag) const { return flags.contains(flag); }
};

// "SIP-source-address" -> "sip source address".
std::string NormaliseToken(absl::string_view token);

// INVALID_ARGUMENT naming the key when a known key has the wrong type or an unusable value.
absl::StatusOr<Command> ReadCommand(const Value& body);

// INVALID_ARGUMENT naming the first key `command` needs and lacks (call-id, from-tag, sdp, to-tag).
absl::Status RequireKeys(const Command& command);

}  // namespace latchkey::control::ng
