#pragma once
// The answering side of STUN Binding (RFC 8489 section 6.3): a client behind NAT asks which address
// its packets arrive from, or just keeps its NAT mapping open with requests. Stateless: one request
// in, one response out, nothing remembered, so a request retransmitted by the client gets the same
// answer again (RFC 8489 section 6.3.1 allows that for Binding).
//
// Decisions:
//  - Classic RFC 3489 requests (no magic cookie) are refused. Without the cookie a 20-byte
//    "request" cannot be told from noise that happens to start with two zero bits, carries no
//    FINGERPRINT, and may ask for RESPONSE-ADDRESS / CHANGE-REQUEST behaviour this responder does
//    not implement; every client since RFC 5389 (2008), ICE included, sends the cookie. So the
//    answer always has XOR-MAPPED-ADDRESS and never MAPPED-ADDRESS.
//  - MESSAGE-INTEGRITY is not verified and not added (no credentials here): the answer serves NAT
//    discovery and keepalive clients; an ICE agent would discard it, as it should for a relay that
//    is not its peer. Which datagrams reach this function is the caller's decision.
//  - A request with an unknown comprehension-required attribute gets the RFC's 420 error response.
//    Its UNKNOWN-ATTRIBUTES lists the first such attribute only, because that is what the codec's
//    Parse() reports; a client learns at least one attribute to drop and can retry.
#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/net/socket_address.h"

namespace latchkey::relay::stun {

// SOFTWARE value of every answer.
inline constexpr char kResponderSoftware[] = "latchkey";

// If `datagram` is a well-formed STUN Binding request, writes the answer for a client seen at
// `source` into `out` and returns its length:
//  - normally a Binding success response: same transaction id, XOR-MAPPED-ADDRESS `source`,
//    SOFTWARE "latchkey", FINGERPRINT;
//  - for a request with an unknown comprehension-required attribute, a Binding error response 420
//    with UNKNOWN-ATTRIBUTES, SOFTWARE and FINGERPRINT (the caller sends it just the same).
// An IPv4 peer seen as ::ffff:a.b.c.d on a dual-stack socket is answered with its IPv4 address.
//
// Errors, nothing written that the caller should send: INVALID_ARGUMENT when the datagram is not
// STUN, is a classic RFC 3489 request, is malformed (the reason from the codec, e.g. a bad
// FINGERPRINT), or is not a Binding request (another method, an indication or a response: none of
// those may be answered); RESOURCE_EXHAUSTED when `out` is smaller than the answer (64 bytes is
// always enough for a success response, 76 for a 420).
//
// Untrusted input: reads only inside `datagram`. It does allocate (the codec's MessageBuilder builds
// into a vector), so keep it off a path that must not.
absl::StatusOr<size_t> AnswerBindingRequest(absl::Span<const uint8_t> datagram, const net::SocketAddress& source,
                                            absl::Span<uint8_t> out);

}  // namespace latchkey::relay::stun
