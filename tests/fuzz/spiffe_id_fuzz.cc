// Parses arbitrary bytes as a certificate's URI SAN (what a TLS peer chooses) and authorizes a call
// with it. Whatever parses must print back to exactly the input (one spelling per identity, so no
// two URIs are the same caller), and the method table must answer every method without crashing.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "common/auth/identity.h"
#include "common/auth/method_policy.h"

namespace auth = latchkey::auth;

namespace {

void Check(bool condition, const char* what, absl::string_view input) {
  if (condition) return;
  std::fprintf(stderr, "property violated: %s\ninput: %.*s\n", what, static_cast<int>(input.size()), input.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  auto identity = auth::ParseSpiffeId(input, "latchkey");
  if (identity.ok()) {
    Check(auth::SpiffeId("latchkey", *identity) == input, "parsed identity does not print back to its URI", input);
    Check(!identity->name.empty() && identity->name.size() <= 128, "name out of bounds", input);
  }
  // The first bytes as a method path too: a scanner chooses it.
  const auth::Decision decision =
      auth::Authorize(input.substr(0, 200), identity.ok() ? &*identity : nullptr, identity.ok() ? "" : "bad");
  Check(decision.ok() == (decision.reason == auth::DenyReason::kNone), "decision and reason disagree", input);
  Check(decision.ok() == decision.status.ok(), "decision and status disagree", input);
  const absl::string_view label = auth::MethodLabel(input.substr(0, 200));
  Check(label.size() <= 64, "method label unbounded", input);
  return 0;
}
