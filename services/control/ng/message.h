#pragma once
// The ng protocol's framing: `<cookie> <bencode dictionary>` in one datagram, the reply the same
// cookie, one space, and a dictionary with `result`. The cookie is everything before the first space
// (Kamailio: "<server_id>_<pid>_<seq>"); a datagram without a space has no cookie to answer with and
// gets no reply at all, as from rtpengine.
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/control/ng/bencode.h"

namespace latchkey::control::ng {

struct Request {
  std::string cookie;
  std::string command;  // "offer", "answer", "delete", "query", "ping", ...
  Value body;           // the whole dictionary, `command` included
};

// NOT_FOUND: no cookie (do not answer). INVALID_ARGUMENT: a cookie but a body that is not a bencode
// dictionary with a string `command` (answer with an error reply naming why).
absl::StatusOr<Request> ParseRequest(absl::string_view datagram, const DecodeLimits& limits = {});
// The cookie alone, for answering a request ParseRequest refused with INVALID_ARGUMENT.
absl::string_view CookieOf(absl::string_view datagram);

std::string FormatReply(absl::string_view cookie, const Value& body);
// {result: error, error-reason: reason}: an error carries nothing else.
std::string FormatError(absl::string_view cookie, absl::string_view reason);

}  // namespace latchkey::control::ng
