#include "media-relay/agent/advertised_address.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/net/quote_for_error.h"
#include "media-relay/stun/stun_client.h"

namespace latchkey::relay {
namespace {

constexpr char kForms[] = "expected an IP address, \"auto\", \"host:NAME\" or \"stun:HOST[:PORT]\"";

absl::Status BadSpec(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(net::QuoteForError(text), ": ", why, "; ", kForms));
}

bool IsHostNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

// The source address the kernel would use towards a public address of `bind`'s family. connect() on
// a UDP socket only picks a route and a source; nothing is sent. The destinations are documentation
// addresses (RFC 5737 TEST-NET-1, RFC 3849), so the route looked up is the default one.
absl::StatusOr<net::IpAddress> PrimaryAddress(const net::IpAddress& bind) {
  const bool v4 = bind.is_v4();
  const int fd = ::socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("auto: socket: ", std::strerror(errno)));
  const net::IpAddress probe = v4 ? net::IpAddress::V4(192, 0, 2, 1) : net::IpAddress::Parse("2001:db8::1").value();
  socklen_t length = 0;
  sockaddr_storage remote = probe.ToSockaddr(9, &length);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&remote), length) != 0) {
    const int error = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("auto: no ", v4 ? "IPv4" : "IPv6",
                                               " route to pick a source address from: ", std::strerror(error)));
  }
  sockaddr_storage local{};
  length = sizeof(local);
  const int rc = ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return absl::UnavailableError(absl::StrCat("auto: getsockname: ", std::strerror(error)));
  auto ip = net::IpAddress::FromSockaddr(local);
  if (!ip.ok()) return absl::UnavailableError(absl::StrCat("auto: ", ip.status().message()));
  return *ip;
}

}  // namespace

absl::StatusOr<AdvertisedAddressSpec> AdvertisedAddressSpec::Parse(absl::string_view text) {
  AdvertisedAddressSpec spec;
  if (text.empty()) return BadSpec(text, "empty");
  if (absl::EqualsIgnoreCase(text, "auto")) {
    spec.kind = Kind::kAuto;
    return spec;
  }
  if (absl::StartsWithIgnoreCase(text, "host:")) {
    const absl::string_view name = text.substr(5);
    if (name.empty()) return BadSpec(text, "host: needs a name");
    if (name.size() > 253 || !std::all_of(name.begin(), name.end(), IsHostNameChar)) {
      return BadSpec(text, "host: name may hold letters, digits, '-', '.' and '_' only");
    }
    spec.kind = Kind::kHost;
    spec.target = std::string(name);
    return spec;
  }
  if (absl::StartsWithIgnoreCase(text, "stun:")) {
    const absl::string_view server = text.substr(5);
    if (server.empty()) return BadSpec(text, "stun: needs a server");
    if (auto parsed = stun::ParseServerAddress(server); !parsed.ok()) return BadSpec(text, parsed.status().message());
    spec.kind = Kind::kStun;
    spec.target = std::string(server);
    return spec;
  }
  auto ip = net::IpAddress::Parse(text);
  if (!ip.ok()) return BadSpec(text, "not a recognised form");
  spec.kind = Kind::kLiteral;
  spec.literal = *ip;
  return spec;
}

std::string AdvertisedAddressSpec::ToString() const {
  switch (kind) {
    case Kind::kLiteral: return literal.ToString();
    case Kind::kAuto: return "auto";
    case Kind::kHost: return absl::StrCat("host:", target);
    case Kind::kStun: return absl::StrCat("stun:", target);
  }
  return "?";
}

absl::StatusOr<net::IpAddress> Resolve(const AdvertisedAddressSpec& spec, const net::IpAddress& bind,
                                       absl::Duration stun_timeout) {
  switch (spec.kind) {
    case AdvertisedAddressSpec::Kind::kLiteral:
      return spec.literal;
    case AdvertisedAddressSpec::Kind::kAuto:
      if (!bind.IsUnspecified()) return bind;
      return PrimaryAddress(bind);
    case AdvertisedAddressSpec::Kind::kHost:
      return stun::LookupHost(spec.target, bind.family());
    case AdvertisedAddressSpec::Kind::kStun:
      return stun::DiscoverPublicAddress(spec.target, bind, stun_timeout);
  }
  return absl::InternalError("unknown advertised address kind");
}

AdvertisedAddressRefresher::AdvertisedAddressRefresher(std::vector<Entry> entries, Options options)
    : options_(std::move(options)) {
  for (Entry& entry : entries) {
    specs_.push_back(std::move(entry.spec));
    binds_.push_back(entry.bind);
    current_.push_back(entry.current);
  }
}

AdvertisedAddressRefresher::~AdvertisedAddressRefresher() { Stop(); }

void AdvertisedAddressRefresher::Start() {
  if (thread_.joinable()) return;
  bool any = false;
  for (const AdvertisedAddressSpec& spec : specs_) any = any || spec.refreshable();
  if (!any) return;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Run(); });
}

void AdvertisedAddressRefresher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

net::IpAddress AdvertisedAddressRefresher::Current(size_t index) const {
  absl::ReaderMutexLock lock(&mu_);
  return current_.at(index);
}

std::vector<net::IpAddress> AdvertisedAddressRefresher::CurrentAll() const {
  absl::ReaderMutexLock lock(&mu_);
  return current_;
}

void AdvertisedAddressRefresher::Run() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.interval);
    if (stopping_) break;
    mu_.Unlock();
    RefreshNow();
    mu_.Lock();
  }
}

void AdvertisedAddressRefresher::RefreshNow() {
  absl::MutexLock round(&refresh_mu_);
  for (size_t i = 0; i < specs_.size(); ++i) {
    const AdvertisedAddressSpec& spec = specs_[i];
    if (!spec.refreshable()) continue;
    const absl::StatusOr<net::IpAddress> resolved =
        options_.resolver ? options_.resolver(spec, binds_[i]) : Resolve(spec, binds_[i]);
    if (!resolved.ok()) {
      log::LogWarning("advertised address refresh failed, keeping the previous one")
          .Kv("index", i)
          .Kv("spec", spec.ToString())
          .Kv("current", Current(i).ToString())
          .Kv("error", resolved.status().ToString());
      continue;
    }
    net::IpAddress old_address;
    {
      absl::MutexLock lock(&mu_);
      old_address = current_[i];
      if (old_address == *resolved) continue;
      current_[i] = *resolved;
    }
    log::LogInfo("advertised address changed")
        .Kv("index", i)
        .Kv("spec", spec.ToString())
        .Kv("bind", binds_[i].ToString())
        .Kv("old", old_address.ToString())
        .Kv("new", resolved->ToString());
    if (options_.on_change) options_.on_change(i, old_address, *resolved);
  }
}

}  // namespace latchkey::relay
