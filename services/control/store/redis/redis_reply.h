#pragma once
// Redis values and targets for latchkey-control's shared store, with no hiredis type in sight:
// RedisReply is copied out of hiredis's redisReply, RedisTarget is parsed from the --store flag.
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace latchkey::control::redis {

// One reply (RESP2) as a value. `str` holds the bytes of a string, status or error reply.
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;
  std::vector<RedisReply> elements;

  static RedisReply Nil();
  static RedisReply Integer(int64_t value);
  static RedisReply String(std::string value);
  static RedisReply Status(std::string value);
  static RedisReply Error(std::string message);
  static RedisReply Array(std::vector<RedisReply> elements);

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
  // "OK", "(nil)", "(error) ERR ...", "[a, 1, (nil)]": for logs and test messages.
  std::string DebugString() const;

  friend bool operator==(const RedisReply& a, const RedisReply& b);
  friend bool operator!=(const RedisReply& a, const RedisReply& b) { return !(a == b); }
  // For gtest messages.
  friend void PrintTo(const RedisReply& reply, std::ostream* os) { *os << reply.DebugString(); }
};

// Parses raw RESP2 bytes with hiredis's own reader and the same conversion the client uses; the whole
// input must be complete replies. For tests and tools (the client converts hiredis replies directly).
absl::StatusOr<std::vector<RedisReply>> ParseResp(absl::string_view bytes);

// What the client does with an error reply.
enum class RedisErrorClass {
  kNotAnError,   // not an error reply
  kReply,        // handed to the caller as an OK StatusOr holding a kError RedisReply (NOSCRIPT, ERR, WRONGTYPE,
                 // a function's own errors, ...): the command reached the primary and was refused by it
  kUnavailable,  // UNAVAILABLE, the connection is kept (LOADING, BUSY, MASTERDOWN, TRYAGAIN)
  kRediscover,   // UNAVAILABLE, and the connection is dropped and the primary found again (READONLY,
                 // NOREPLICAS): this node is not, or must not act as, the primary
};
RedisErrorClass ClassifyError(const RedisReply& reply);

// host:port of one Redis server or sentinel. `host` is an IP literal or a name, IPv6 without brackets.
struct RedisAddress {
  std::string host;
  int port = 0;

  std::string ToString() const;  // "127.0.0.1:6379", "[::1]:6379"
  friend bool operator==(const RedisAddress& a, const RedisAddress& b) {
    return a.host == b.host && a.port == b.port;
  }
  friend bool operator!=(const RedisAddress& a, const RedisAddress& b) { return !(a == b); }
};

// Where the store lives: one server (development) or a Sentinel set and the name of its master.
struct RedisTarget {
  enum class Kind { kSingle, kSentinel };
  Kind kind = Kind::kSingle;
  std::vector<RedisAddress> addresses;  // kSingle: exactly one server; kSentinel: the sentinels
  std::string master_name;              // kSentinel only

  std::string ToString() const;  // back in --store syntax
};

// Parses the --store flag value:
//   redis://HOST:PORT
//   redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME
// HOST may be an IPv6 literal in brackets. Errors are INVALID_ARGUMENT, start with "store: " and quote the part
// that is wrong.
absl::StatusOr<RedisTarget> ParseRedisTarget(absl::string_view text);

}  // namespace latchkey::control::redis
