#include "services/control/ng/command.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/validation.h"

namespace latchkey::control::ng {
namespace {

// Flags a NAT relay acts on or may take without effect (see docs/INTEGRATIONS.md); any other flag is
// counted as ignored.
const absl::flat_hash_set<std::string>& KnownFlags() {
  static const auto* flags = new absl::flat_hash_set<std::string>{
      "trust address", "sip source address", "asymmetric", "symmetric", "strict source", "media handover",
      "port latching", "no port latching", "loop protect", "fatal", "fast", "no redis update",
      "unidirectional", "directional", "to tag", "fragment", "record call", "original sendrecv",
      "generate mid", "strip extmap", "no rtcp attribute", "full rtcp attribute", "pierce nat", "reset",
      "media address", "new branch"};
  return *flags;
}

// Keys whose mere presence asks for media work (crypto, transcoding, recording, T.38).
const absl::flat_hash_set<std::string>& MediaFeatureKeys() {
  static const auto* keys = new absl::flat_hash_set<std::string>{
      "sdes", "dtls", "codec", "t.38", "t38", "record call", "osrtp", "transcode", "repacketize", "dtls fingerprint"};
  return *keys;
}

absl::Status WrongType(absl::string_view key, absl::string_view want) {
  return absl::InvalidArgumentError(absl::StrCat(key, ": must be ", want));
}

absl::StatusOr<std::string> StringOf(absl::string_view key, const Value& value, size_t max_length) {
  if (!value.is_string()) return WrongType(key, "a string");
  if (value.string().size() > max_length) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": longer than ", max_length, " bytes"));
  }
  return value.string();
}

absl::StatusOr<std::vector<std::string>> StringsOf(absl::string_view key, const Value& value) {
  // A single string where a list belongs is taken as a one-element list, as rtpengine does.
  if (value.is_string()) return std::vector<std::string>{value.string()};
  if (!value.is_list()) return WrongType(key, "a list of strings");
  std::vector<std::string> out;
  for (const Value& item : value.items()) {
    if (!item.is_string()) return WrongType(key, "a list of strings");
    out.push_back(item.string());
  }
  return out;
}

absl::StatusOr<int64_t> IntegerOf(absl::string_view key, const Value& value) {
  if (value.is_integer()) return value.integer();
  int64_t parsed = 0;
  if (value.is_string() && absl::SimpleAtoi(value.string(), &parsed)) return parsed;
  return WrongType(key, "an integer");
}

// A token read into a field: call-id and tags are what SIP allows, bounded like the gRPC API's.
absl::Status Token(absl::string_view key, const Value& value, size_t max_length, std::string* out) {
  auto text = StringOf(key, value, max_length);
  if (!text.ok()) return text.status();
  *out = *std::move(text);
  return absl::OkStatus();
}

}  // namespace

std::string NormaliseToken(absl::string_view token) {
  std::string out = absl::AsciiStrToLower(token);
  for (char& c : out) {
    if (c == '-' || c == '_') c = ' ';
  }
  return out;
}

absl::StatusOr<Command> ReadCommand(const Value& body) {
  if (!body.is_dictionary()) return absl::InvalidArgumentError("the message is not a dictionary");
  Command command;
  for (const auto& [raw_key, value] : body.entries()) {
    const std::string key = NormaliseToken(raw_key);
    absl::Status status;
    if (key == "command") {
      status = Token(raw_key, value, 64, &command.command);
    } else if (key == "call id") {
      status = Token(raw_key, value, 256, &command.call_id);
    } else if (key == "from tag") {
      status = Token(raw_key, value, 128, &command.from_tag);
    } else if (key == "to tag") {
      status = Token(raw_key, value, 128, &command.to_tag);
    } else if (key == "via branch") {
      status = Token(raw_key, value, 128, &command.via_branch);
    } else if (key == "label") {
      status = Token(raw_key, value, 128, &command.label);
    } else if (key == "sdp") {
      auto sdp = StringOf(raw_key, value, 64 * 1024);
      if (sdp.ok()) command.sdp = *std::move(sdp);
      status = sdp.status();
    } else if (key == "received from") {
      auto parts = StringsOf(raw_key, value);
      if (!parts.ok()) {
        status = parts.status();
      } else if (parts->size() != 2) {
        status = WrongType(raw_key, "a list of an address family and an IP address");
      } else {
        command.received_from_family = absl::AsciiStrToUpper((*parts)[0]);
        command.received_from_ip = (*parts)[1];
      }
    } else if (key == "media address") {
      status = Token(raw_key, value, 64, &command.media_address);
    } else if (key == "ice") {
      status = Token(raw_key, value, 32, &command.ice);
      command.ice = NormaliseToken(command.ice);
    } else if (key == "address family") {
      status = Token(raw_key, value, 8, &command.address_family);
      command.address_family = absl::AsciiStrToUpper(command.address_family);
    } else if (key == "transport protocol") {
      status = Token(raw_key, value, 32, &command.transport_protocol);
      command.transport_protocol = absl::AsciiStrToUpper(command.transport_protocol);
    } else if (key == "flags" || key == "replace" || key == "rtcp mux" || key == "direction" || key == "supports") {
      auto items = StringsOf(raw_key, value);
      if (!items.ok()) {
        status = items.status();
      } else {
        for (const std::string& item : *items) {
          const std::string token = NormaliseToken(item);
          if (key == "flags") {
            if (!KnownFlags().contains(token)) command.ignored.push_back(item);
            command.flags.insert(token);
          } else if (key == "replace") {
            command.replace.push_back(token);
          } else if (key == "rtcp mux") {
            command.rtcp_mux.push_back(token);
          } else if (key == "direction") {
            command.direction.push_back(token);
          } else if (token == "load limit") {
            command.supports_load_limit = true;
          }
        }
      }
    } else if (key == "delete delay") {
      auto seconds = IntegerOf(raw_key, value);
      if (!seconds.ok()) {
        status = seconds.status();
      } else if (*seconds < 0 || *seconds > 3600) {
        status = absl::InvalidArgumentError(absl::StrCat(raw_key, ": ", *seconds, " is outside [0, 3600] seconds"));
      } else {
        command.delete_delay = absl::Seconds(*seconds);
      }
    } else if (MediaFeatureKeys().contains(key)) {
      command.media_features.push_back(raw_key);
    } else {
      command.ignored.push_back(raw_key);
    }
    if (!status.ok()) return status;
  }
  // A flag that names a media feature (record-call as a bare token) is one too.
  if (command.has_flag("record call")) command.media_features.push_back("record-call");
  return command;
}

absl::Status RequireKeys(const Command& command) {
  const std::string& name = command.command;
  if (name == "ping") return absl::OkStatus();
  if (absl::Status status = CheckToken("call-id", command.call_id, 256); !status.ok()) return status;
  if (name == "offer" || name == "answer") {
    if (command.from_tag.empty()) return absl::InvalidArgumentError("from-tag: required");
    if (!command.sdp || command.sdp->empty()) return absl::InvalidArgumentError("sdp: required");
  }
  if (name == "answer" && command.to_tag.empty()) return absl::InvalidArgumentError("to-tag: required");
  for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"from-tag", &command.from_tag},
                                   {"to-tag", &command.to_tag},
                                   {"via-branch", &command.via_branch}}) {
    if (!value->empty()) {
      if (absl::Status status = CheckToken(key, *value, 128); !status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

}  // namespace latchkey::control::ng
