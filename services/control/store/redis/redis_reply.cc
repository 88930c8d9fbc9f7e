#include "services/control/store/redis/redis_reply.h"

#include <hiredis/hiredis.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/validation.h"
#include "services/control/store/redis/redis_reply_internal.h"

namespace latchkey::control::redis {

RedisReply RedisReply::Nil() { return RedisReply(); }

RedisReply RedisReply::Integer(int64_t value) {
  RedisReply r;
  r.type = Type::kInteger;
  r.integer = value;
  return r;
}

RedisReply RedisReply::String(std::string value) {
  RedisReply r;
  r.type = Type::kString;
  r.str = std::move(value);
  return r;
}

RedisReply RedisReply::Status(std::string value) {
  RedisReply r;
  r.type = Type::kStatus;
  r.str = std::move(value);
  return r;
}

RedisReply RedisReply::Error(std::string message) {
  RedisReply r;
  r.type = Type::kError;
  r.str = std::move(message);
  return r;
}

RedisReply RedisReply::Array(std::vector<RedisReply> elements) {
  RedisReply r;
  r.type = Type::kArray;
  r.elements = std::move(elements);
  return r;
}

std::string RedisReply::DebugString() const {
  switch (type) {
    case Type::kNil:
      return "(nil)";
    case Type::kInteger:
      return absl::StrCat(integer);
    case Type::kString:
      return absl::StrCat("\"", absl::CEscape(Excerpt(str)), "\"");
    case Type::kStatus:
      return str;
    case Type::kError:
      return absl::StrCat("(error) ", Excerpt(str));
    case Type::kArray:
      return absl::StrCat(
          "[", absl::StrJoin(elements, ", ", [](std::string* out, const RedisReply& e) { out->append(e.DebugString()); }),
          "]");
  }
  return "?";
}

bool operator==(const RedisReply& a, const RedisReply& b) {
  return a.type == b.type && a.integer == b.integer && a.str == b.str && a.elements == b.elements;
}

RedisReply ConvertReply(const redisReply* reply) {
  if (reply == nullptr) return RedisReply::Nil();
  switch (reply->type) {
    case REDIS_REPLY_INTEGER:
      return RedisReply::Integer(reply->integer);
    case REDIS_REPLY_STRING:
      return RedisReply::String(std::string(reply->str, reply->len));
    case REDIS_REPLY_STATUS:
      return RedisReply::Status(std::string(reply->str, reply->len));
    case REDIS_REPLY_ERROR:
      return RedisReply::Error(std::string(reply->str, reply->len));
    case REDIS_REPLY_ARRAY: {
      std::vector<RedisReply> elements;
      elements.reserve(reply->elements);
      for (size_t i = 0; i < reply->elements; ++i) elements.push_back(ConvertReply(reply->element[i]));
      return RedisReply::Array(std::move(elements));
    }
    case REDIS_REPLY_NIL:
    default:
      return RedisReply::Nil();
  }
}

absl::StatusOr<std::vector<RedisReply>> ParseResp(absl::string_view bytes) {
  redisReader* reader = redisReaderCreate();
  if (reader == nullptr) return absl::ResourceExhaustedError("redis: cannot create a reply reader");
  std::vector<RedisReply> replies;
  absl::Status status;
  if (redisReaderFeed(reader, bytes.data(), bytes.size()) != REDIS_OK) {
    status = absl::InvalidArgumentError(absl::StrCat("resp: ", reader->errstr));
  }
  while (status.ok()) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader, &raw) != REDIS_OK) {
      status = absl::InvalidArgumentError(absl::StrCat("resp: ", reader->errstr));
      break;
    }
    if (raw == nullptr) break;
    replies.push_back(ConvertReply(static_cast<const redisReply*>(raw)));
    freeReplyObject(raw);
  }
  // Bytes left in the buffer are an incomplete reply.
  if (status.ok() && reader->pos < reader->len) {
    status = absl::InvalidArgumentError(absl::StrCat("resp: incomplete reply after ", replies.size(), " complete ones"));
  }
  redisReaderFree(reader);
  if (!status.ok()) return status;
  return replies;
}

RedisErrorClass ClassifyError(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kError) return RedisErrorClass::kNotAnError;
  absl::string_view code = reply.str;
  code = code.substr(0, code.find(' '));
  if (code == "READONLY" || code == "NOREPLICAS" || code == "MASTERDOWN") return RedisErrorClass::kRediscover;
  if (code == "LOADING" || code == "BUSY" || code == "TRYAGAIN") return RedisErrorClass::kUnavailable;
  return RedisErrorClass::kReply;
}

// --- addresses and targets ---

std::string RedisAddress::ToString() const {
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

std::string RedisTarget::ToString() const {
  std::string hosts =
      absl::StrJoin(addresses, ",", [](std::string* out, const RedisAddress& a) { out->append(a.ToString()); });
  if (kind == Kind::kSingle) return absl::StrCat("redis://", hosts);
  return absl::StrCat("redis+sentinel://", hosts, "/", master_name);
}

namespace {

constexpr absl::string_view kSingleScheme = "redis://";
constexpr absl::string_view kSentinelScheme = "redis+sentinel://";

absl::Status Invalid(absl::string_view what, absl::string_view part) {
  return absl::InvalidArgumentError(absl::StrCat("store: ", what, " \"", absl::CEscape(Excerpt(part)), "\""));
}

bool ValidHostChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_'; }

absl::StatusOr<RedisAddress> ParseAddress(absl::string_view text) {
  RedisAddress address;
  absl::string_view port_text;
  if (text.empty()) return Invalid("empty HOST:PORT in", text);
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) return Invalid("unclosed \"[\" in address", text);
    address.host = std::string(text.substr(1, close - 1));
    if (address.host.empty()) return Invalid("empty IPv6 host in address", text);
    for (char c : address.host) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        return Invalid("bad IPv6 host in address", text);
      }
    }
    absl::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return Invalid("no \":PORT\" after the IPv6 host in address", text);
    port_text = rest.substr(1);
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return Invalid("no \":PORT\" in address", text);
    absl::string_view host = text.substr(0, colon);
    if (host.empty()) return Invalid("empty host in address", text);
    if (absl::StrContains(host, ':')) return Invalid("IPv6 host without brackets in address", text);
    for (char c : host) {
      if (!ValidHostChar(c)) return Invalid("bad host in address", text);
    }
    address.host = std::string(host);
    port_text = text.substr(colon + 1);
  }
  int port = 0;
  if (port_text.empty() || !absl::SimpleAtoi(port_text, &port) || port < 1 || port > 65535 ||
      !absl::ascii_isdigit(static_cast<unsigned char>(port_text.front()))) {
    return Invalid("port must be 1..65535 in address", text);
  }
  address.port = port;
  return address;
}

}  // namespace

absl::StatusOr<RedisTarget> ParseRedisTarget(absl::string_view text) {
  RedisTarget target;
  absl::string_view rest;
  if (absl::StartsWith(text, kSingleScheme)) {
    target.kind = RedisTarget::Kind::kSingle;
    rest = text.substr(kSingleScheme.size());
    if (absl::StrContains(rest, '/')) return Invalid("redis:// takes HOST:PORT and no path, not", rest);
    if (absl::StrContains(rest, ',')) {
      return Invalid("redis:// takes one server (use redis+sentinel:// for several), not", rest);
    }
    absl::StatusOr<RedisAddress> address = ParseAddress(rest);
    if (!address.ok()) return address.status();
    target.addresses.push_back(*std::move(address));
    return target;
  }
  if (absl::StartsWith(text, kSentinelScheme)) {
    target.kind = RedisTarget::Kind::kSentinel;
    rest = text.substr(kSentinelScheme.size());
    size_t slash = rest.find('/');
    if (slash == absl::string_view::npos) return Invalid("redis+sentinel:// needs \"/MASTER_NAME\" after the sentinels in", rest);
    absl::string_view hosts = rest.substr(0, slash);
    absl::string_view name = rest.substr(slash + 1);
    if (name.empty()) return Invalid("empty MASTER_NAME in", text);
    for (char c : name) {
      if (!absl::ascii_isgraph(static_cast<unsigned char>(c)) || c == '/') return Invalid("bad MASTER_NAME", name);
    }
    if (hosts.empty()) return Invalid("no sentinel HOST:PORT in", text);
    for (absl::string_view part : absl::StrSplit(hosts, ',')) {
      absl::StatusOr<RedisAddress> address = ParseAddress(part);
      if (!address.ok()) return address.status();
      target.addresses.push_back(*std::move(address));
    }
    target.master_name = std::string(name);
    return target;
  }
  size_t scheme_end = text.find("://");
  return Invalid("want redis://HOST:PORT or redis+sentinel://HOST:PORT[,...]/MASTER_NAME, unknown scheme in",
                 scheme_end == absl::string_view::npos ? text : text.substr(0, scheme_end + 3));
}

}  // namespace latchkey::control::redis
