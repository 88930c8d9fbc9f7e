// Parses arbitrary bytes as a Contact header value; whatever parses must survive WithHostPort and parse
// again as the same contact at the new address: the rewritten value is what the PBX stores and
// sends back to us on every refresh.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/net/socket_address.h"
#include "common/sip/contact.h"

namespace net = latchkey::net;
namespace sip = latchkey::sip;

namespace {

void Check(bool condition, const char* what, absl::string_view input) {
  if (condition) return;
  std::fprintf(stderr, "property violated: %s\ninput: %.*s\n", what, static_cast<int>(input.size()), input.data());
  std::abort();
}

void CheckSameContact(const sip::Contact& original, absl::string_view rewritten, const net::SocketAddress& address) {
  const absl::StatusOr<sip::Contact> again = sip::Contact::Parse(rewritten);
  Check(again.ok(), "WithHostPort result does not parse", rewritten);
  Check(again->uri().ip() == address.ip && again->uri().port() == address.port, "host:port not replaced", rewritten);
  Check(again->display_name() == original.display_name(), "display name changed", rewritten);
  Check(again->is_name_addr() == original.is_name_addr(), "form changed", rewritten);
  Check(again->uri().user() == original.uri().user(), "user changed", rewritten);
  Check(again->InstanceId() == original.InstanceId(), "+sip.instance changed", rewritten);
  Check(again->Expires() == original.Expires(), "expires changed", rewritten);
}

void CheckRewrite(const sip::Contact& contact, const net::SocketAddress& address) {
  const std::string rewritten = contact.WithHostPort(address);
  CheckSameContact(contact, rewritten, address);
  // As a whole header line too.
  CheckSameContact(contact, absl::StrCat("Contact: ", rewritten), address);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<sip::Contact> contact = sip::Contact::Parse(text);
  if (!contact.ok()) return 0;

  (void)contact->uri().EffectivePort();
  (void)contact->uri().transport();
  (void)contact->Param("reg-id");
  (void)contact->Param("q");
  Check(contact->Unprefixed().find(contact->uri().text()) != std::string::npos, "URI not inside the value", text);

  CheckRewrite(*contact, net::SocketAddress::Parse("203.0.113.7:41234").value());
  CheckRewrite(*contact, net::SocketAddress::Parse("[2001:db8::7]:5060").value());
  return 0;
}
