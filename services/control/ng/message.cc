#include "services/control/ng/message.h"

#include "absl/strings/str_cat.h"

namespace latchkey::control::ng {

absl::string_view CookieOf(absl::string_view datagram) {
  const size_t space = datagram.find(' ');
  return space == absl::string_view::npos ? absl::string_view() : datagram.substr(0, space);
}

absl::StatusOr<Request> ParseRequest(absl::string_view datagram, const DecodeLimits& limits) {
  const size_t space = datagram.find(' ');
  if (space == absl::string_view::npos || space == 0) return absl::NotFoundError("ng: no cookie");
  Request request;
  request.cookie = std::string(datagram.substr(0, space));
  const absl::string_view body = datagram.substr(space + 1);
  if (body.empty() || body.front() != 'd') {
    return absl::InvalidArgumentError("ng: the message is not a bencode dictionary");
  }
  auto value = Decode(body, limits);
  if (!value.ok()) return value.status();
  const Value* command = value->Find("command");
  if (command == nullptr || !command->is_string()) {
    return absl::InvalidArgumentError("ng: no command in the message");
  }
  request.command = command->string();
  request.body = *std::move(value);
  return request;
}

std::string FormatReply(absl::string_view cookie, const Value& body) {
  return absl::StrCat(cookie, " ", Encode(body));
}

std::string FormatError(absl::string_view cookie, absl::string_view reason) {
  Value body = Value::Dictionary();
  body.Set("result", Value::String("error"));
  body.Set("error-reason", Value::String(std::string(reason)));
  return FormatReply(cookie, body);
}

}  // namespace latchkey::control::ng
