#include "media-relay/stun/stun_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/net/quote_for_error.h"
#include "common/net/socket_address.h"
#include "common/status_macros.h"
#include "media-relay/stun/stun_message.h"

namespace latchkey::relay::stun {
namespace {

bool IsHostNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

absl::Status BadServer(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("STUN server ", net::QuoteForError(text), ": ", why, " (expected HOST[:PORT] or [IPv6][:PORT])"));
}

// Cryptographically random, as RFC 8489 section 6 requires (an off-path attacker must not guess it).
TransactionId NewTransactionId() {
  TransactionId id;
  if (::getrandom(id.data(), id.size(), 0) != static_cast<ssize_t>(id.size())) {
    std::random_device device;
    for (uint8_t& b : id) b = static_cast<uint8_t>(device());
  }
  return id;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string ErrnoText(int error) { return std::strerror(error); }

}  // namespace

std::string ServerAddress::ToString() const {
  const bool v6 = host.find(':') != std::string::npos;
  return v6 ? absl::StrCat("[", host, "]:", port) : absl::StrCat(host, ":", port);
}

absl::StatusOr<ServerAddress> ParseServerAddress(absl::string_view text) {
  if (text.empty()) return BadServer(text, "empty");
  ServerAddress out;
  absl::string_view port_text;
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) return BadServer(text, "missing ']'");
    auto ip = net::IpAddress::Parse(text.substr(1, close - 1));
    if (!ip.ok() || !ip->is_v6()) return BadServer(text, "brackets must hold an IPv6 address");
    out.host = ip->ToString();
    const absl::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return BadServer(text, "junk after ']'");
      port_text = rest.substr(1);
      if (port_text.empty()) return BadServer(text, "empty port");
    }
  } else {
    const size_t colon = text.find(':');
    if (colon != absl::string_view::npos && text.find(':', colon + 1) != absl::string_view::npos) {
      // Two or more colons: a bare IPv6 literal (a port needs the brackets).
      auto ip = net::IpAddress::Parse(text);
      if (!ip.ok() || !ip->is_v6()) return BadServer(text, "not a host name or IP address");
      out.host = ip->ToString();
    } else {
      const absl::string_view host = text.substr(0, colon);
      if (host.empty() || host.size() > 253 || !std::all_of(host.begin(), host.end(), IsHostNameChar)) {
        return BadServer(text, "not a host name or IP address");
      }
      out.host = std::string(host);
      if (colon != absl::string_view::npos) {
        port_text = text.substr(colon + 1);
        if (port_text.empty()) return BadServer(text, "empty port");
      }
    }
  }
  if (!port_text.empty()) {
    auto port = net::ParsePort(port_text);
    if (!port.ok()) return BadServer(text, port.status().message());
    out.port = *port;
  }
  return out;
}

absl::StatusOr<net::IpAddress> LookupHost(const std::string& name, net::IpAddress::Family family) {
  const char* family_name = family == net::IpAddress::Family::kV4 ? "IPv4" : "IPv6";
  // A literal never goes to the resolver (which would try a literal of the other family as a name).
  if (auto literal = net::IpAddress::Parse(name); literal.ok()) {
    if (literal->family() == family) return *literal;
    return absl::InvalidArgumentError(absl::StrCat(net::QuoteForError(name), " is not an ", family_name,
                                                   " address, as the bind address is"));
  }
  addrinfo hints{};
  hints.ai_family = family == net::IpAddress::Family::kV4 ? AF_INET : AF_INET6;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* result = nullptr;
  const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &result);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", net::QuoteForError(name), " to an ", family_name,
                                               " address: ", rc == EAI_SYSTEM ? ErrnoText(errno) : gai_strerror(rc)));
  }
  std::optional<net::IpAddress> found;
  for (const addrinfo* ai = result; ai != nullptr && !found; ai = ai->ai_next) {
    if (ai->ai_family != hints.ai_family || ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    sockaddr_storage storage{};
    std::memcpy(&storage, ai->ai_addr, ai->ai_addrlen);
    if (auto ip = net::IpAddress::FromSockaddr(storage); ip.ok()) found = *ip;
  }
  ::freeaddrinfo(result);
  if (!found) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", net::QuoteForError(name), " to an ", family_name,
                                               " address: no address of that family"));
  }
  return *found;
}

absl::StatusOr<net::IpAddress> DiscoverPublicAddress(const std::string& server, const net::IpAddress& local_bind,
                                                     absl::Duration timeout, const DiscoveryOptions& options) {
  ASSIGN_OR_RETURN(const ServerAddress parsed, ParseServerAddress(server));
  ASSIGN_OR_RETURN(const net::IpAddress server_ip, LookupHost(parsed.host, local_bind.family()));
  const net::SocketAddress server_address{server_ip, parsed.port};
  const std::string where = server_ip.ToString() == parsed.host
                                ? absl::StrCat("STUN server ", server_address.ToString())
                                : absl::StrCat("STUN server ", parsed.ToString(), " (", server_address.ToString(), ")");

  const int family = local_bind.is_v4() ? AF_INET : AF_INET6;
  Fd fd(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return absl::UnavailableError(absl::StrCat("socket: ", ErrnoText(errno)));
  if (family == AF_INET6) {
    int only = 1;
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof(only));
  }
  socklen_t length = 0;
  sockaddr_storage local = local_bind.ToSockaddr(0, &length);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), length) != 0) {
    return absl::UnavailableError(absl::StrCat("bind ", local_bind.ToUriHost(), ":0: ", ErrnoText(errno)));
  }
  sockaddr_storage remote = server_ip.ToSockaddr(parsed.port, &length);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&remote), length) != 0) {
    return absl::UnavailableError(absl::StrCat(where, ": ", ErrnoText(errno)));
  }

  const TransactionId transaction_id = NewTransactionId();
  const std::vector<uint8_t> request = BindingRequest(transaction_id);
  const absl::Time deadline = absl::Now() + timeout;
  absl::Time give_up = deadline;
  absl::Time next_send = absl::Now();
  absl::Duration rto = options.initial_rto;
  const int max_requests = std::max(1, options.max_requests);
  int sent = 0;
  uint8_t buffer[1500];

  const auto refused = [&] {
    return absl::UnavailableError(absl::StrCat(where, ": port unreachable (nothing listening)"));
  };
  while (true) {
    absl::Time now = absl::Now();
    if (now >= give_up) {
      return absl::UnavailableError(absl::StrCat(where, ": no answer after ", sent, " request(s) in ",
                                                 absl::FormatDuration(now - (deadline - timeout))));
    }
    if (sent < max_requests && now >= next_send) {
      if (::send(fd.get(), request.data(), request.size(), 0) < 0) {
        if (errno == ECONNREFUSED) return refused();
        // Anything else (ENOBUFS, a transient route problem) counts as a lost request.
        log::LogDebug("stun request not sent").Kv("server", where).Kv("error", ErrnoText(errno));
      }
      ++sent;
      if (sent < max_requests) {
        next_send = now + rto;
        rto *= 2;
      } else {
        give_up = std::min(deadline, now + options.initial_rto * options.last_wait_rtos);
      }
    }
    const absl::Time wake = sent < max_requests ? std::min(next_send, give_up) : give_up;
    const int64_t wait_ms =
        std::max<int64_t>(0, absl::ToInt64Milliseconds(absl::Ceil(wake - now, absl::Milliseconds(1))));
    pollfd pfd{fd.get(), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(wait_ms, 60'000)));
    if (ready < 0 && errno != EINTR) return absl::UnavailableError(absl::StrCat("poll: ", ErrnoText(errno)));
    if (ready <= 0) continue;

    while (true) {
      const ssize_t n = ::recv(fd.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ECONNREFUSED) return refused();
        break;  // EAGAIN: drained
      }
      ParseError error;
      const auto message = Parse(buffer, static_cast<size_t>(n), &error);
      if (!message || message->transaction_id != transaction_id || message->method != kMethodBinding ||
          (message->message_class != MessageClass::kSuccessResponse &&
           message->message_class != MessageClass::kErrorResponse)) {
        log::LogDebug("ignored datagram from stun server")
            .Kv("server", where)
            .Kv("bytes", n)
            .Kv("reason", message ? "not a response to our request" : ParseErrorName(error));
        continue;
      }
      if (message->message_class == MessageClass::kErrorResponse) {
        const std::string code = message->error_code
                                     ? absl::StrCat(message->error_code->code, " ",
                                                    absl::CHexEscape(message->error_code->reason))
                                     : "without ERROR-CODE";
        return absl::UnavailableError(absl::StrCat(where, ": error response ", code));
      }
      if (message->unknown_required_attribute) {
        return absl::UnavailableError(absl::StrCat(where, ": response has unknown comprehension-required attribute 0x",
                                                   absl::Hex(*message->unknown_required_attribute, absl::kZeroPad4)));
      }
      const auto reflexive = message->reflexive_address();
      if (!reflexive) return absl::UnavailableError(absl::StrCat(where, ": response without (XOR-)MAPPED-ADDRESS"));
      return reflexive->ip;
    }
  }
}

}  // namespace latchkey::relay::stun
