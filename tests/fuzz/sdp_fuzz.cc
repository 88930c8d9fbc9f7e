// Parses arbitrary bytes as SDP; whatever parses must survive a relay rewrite and still parse, with
// the same number of m= lines: the rewriter must never turn an accepted offer into one the other
// side (or our own parser, on the next re-INVITE) rejects.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/control/sdp/sdp_rewriter.h"
#include "services/control/sdp/session_description.h"

namespace sdp = latchkey::control::sdp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<sdp::SessionDescription> parsed = sdp::SessionDescription::Parse(text);
  if (!parsed.ok()) return 0;

  // Exercise the read side too; results are irrelevant, crashes are not.
  (void)parsed->ConnectionAddresses();
  for (size_t i = 0; i < parsed->media().size(); ++i) {
    (void)parsed->EffectiveDirection(i);
    (void)parsed->RtpAddress(i);
    (void)parsed->RtcpAddress(i);
  }

  sdp::RewriteOptions options;
  options.relay_ip = "203.0.113.10";
  for (const sdp::MediaDescription& media : parsed->media()) {
    if (media.port == 0) continue;
    const auto rtp_port = static_cast<uint16_t>(40000 + 2 * media.index);
    options.streams.push_back({static_cast<uint32_t>(media.index), "", rtp_port,
                               static_cast<uint16_t>(rtp_port + 1)});
  }
  const absl::StatusOr<std::string> rewritten = sdp::Rewrite(*parsed, options);
  if (!rewritten.ok()) return 0;  // e.g. the result would exceed the size limit

  const absl::StatusOr<sdp::SessionDescription> reparsed = sdp::SessionDescription::Parse(*rewritten);
  if (!reparsed.ok() || reparsed->media().size() != parsed->media().size()) std::abort();
  return 0;
}
