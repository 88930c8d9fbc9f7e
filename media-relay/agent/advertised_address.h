#pragma once
// The address a relay writes into SDP for each media bind address (RelayConfig.advertised):
//
//   "203.0.113.10"        a literal IP, used as is;
//   "auto"                the bind address, or for a wildcard bind (0.0.0.0 / ::) the source address
//                         the kernel picks for a route to a public address (no packet is sent);
//   "host:NAME"           NAME looked up (getaddrinfo) in the bind address's family, first address;
//                         re-resolved periodically (a DNS name that tracks a dynamic public IP);
//   "stun:HOST[:PORT]"    the reflexive address a STUN server sees for a socket on the bind address
//                         (default port 3478); re-discovered periodically.
//
// AdvertisedAddressRefresher reports a change (a log line and its callback); latchkey-relay then
// writes the new address into the SDP of new offers and answers and registers again with control so
// it lists the new address. Sessions keep their media sockets: only the address written changes.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/net/ip_address.h"

namespace latchkey::relay {

struct AdvertisedAddressSpec {
  enum class Kind : uint8_t { kLiteral, kAuto, kHost, kStun };

  Kind kind = Kind::kAuto;
  net::IpAddress literal;  // kLiteral
  std::string target;      // kHost: the name; kStun: the server, "HOST[:PORT]" as given

  // One of the four forms above; the "auto", "host:" and "stun:" keywords are case-insensitive.
  // INVALID_ARGUMENT quotes the text and lists the accepted forms.
  static absl::StatusOr<AdvertisedAddressSpec> Parse(absl::string_view text);
  // The canonical text: "auto", "host:NAME", "stun:HOST[:PORT]" or the IP.
  std::string ToString() const;
  // host: and stun: can change while the relay runs.
  bool refreshable() const { return kind == Kind::kHost || kind == Kind::kStun; }
};

inline constexpr absl::Duration kDefaultStunTimeout = absl::Seconds(5);

// The address `spec` stands for, for media sockets bound to `bind`. Network failures (no route, name
// not found, STUN server silent) are UNAVAILABLE.
absl::StatusOr<net::IpAddress> Resolve(const AdvertisedAddressSpec& spec, const net::IpAddress& bind,
                                       absl::Duration stun_timeout = kDefaultStunTimeout);

// Re-resolves the host: and stun: entries every `interval` on its own thread. A failed refresh keeps
// the previous value (and logs a warning); a different value replaces it, is logged
// (`msg="advertised address changed" index=.. spec=.. old=.. new=..`) and is passed to `on_change`.
// See the note at the top of this file: nothing here changes what sessions advertise.
class AdvertisedAddressRefresher {
 public:
  struct Entry {
    AdvertisedAddressSpec spec;
    net::IpAddress bind;
    net::IpAddress current;  // resolved at start
  };
  using Resolver = std::function<absl::StatusOr<net::IpAddress>(const AdvertisedAddressSpec&, const net::IpAddress&)>;
  // Called on the refresher thread, with no lock held.
  using ChangeCallback = std::function<void(size_t index, const net::IpAddress& old_address,
                                            const net::IpAddress& new_address)>;
  struct Options {
    absl::Duration interval = absl::Seconds(60);
    ChangeCallback on_change;  // optional
    Resolver resolver;         // default: Resolve() with kDefaultStunTimeout
  };

  AdvertisedAddressRefresher(std::vector<Entry> entries, Options options);
  ~AdvertisedAddressRefresher();  // Stop()
  AdvertisedAddressRefresher(const AdvertisedAddressRefresher&) = delete;
  AdvertisedAddressRefresher& operator=(const AdvertisedAddressRefresher&) = delete;

  // Starts the thread if some entry is refreshable (else does nothing). The first refresh comes one
  // interval after Start().
  void Start();
  // Wakes and joins the thread; a refresh in progress (a STUN exchange) finishes first.
  void Stop();
  bool running() const { return thread_.joinable(); }

  // Thread-safe. `index` < size().
  net::IpAddress Current(size_t index) const;
  std::vector<net::IpAddress> CurrentAll() const;
  size_t size() const { return specs_.size(); }

  // One round, synchronously: what the thread does every interval.
  void RefreshNow();

 private:
  void Run();

  // Immutable after construction.
  std::vector<AdvertisedAddressSpec> specs_;
  std::vector<net::IpAddress> binds_;
  const Options options_;

  absl::Mutex refresh_mu_;  // one round at a time (the thread and RefreshNow callers)
  mutable absl::Mutex mu_;
  std::vector<net::IpAddress> current_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace latchkey::relay
