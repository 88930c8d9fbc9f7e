#include "services/latchkeyctl/flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, server, "127.0.0.1:7400", "latchkey-control gRPC address, HOST:PORT");
ABSL_FLAG(bool, json, false, "Print each response as one line of protobuf JSON");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(5), "Deadline of each RPC (watch has none)");

ABSL_FLAG(std::string, aor, "", "Address of record, e.g. sip:alice@example.com");
ABSL_FLAG(std::string, nat, "", "NAT state filter: behind or not");
ABSL_FLAG(uint32_t, limit, 10000, "Maximum number of items to list");
ABSL_FLAG(std::string, worker, "", "Relay worker id filter");
ABSL_FLAG(std::string, contact, "", "Contact header value as the phone sent it");
ABSL_FLAG(std::string, source, "", "IP:PORT the REGISTER came from");
ABSL_FLAG(std::string, registrar, "", "IP:PORT of the PBX that received the REGISTER");
ABSL_FLAG(std::string, via, "", "Top Via sent-by or the whole top Via value");
ABSL_FLAG(std::string, transport, "udp", "udp, tcp, tls or ws");
ABSL_FLAG(absl::Duration, expires, absl::Seconds(3600), "Requested registration expiry (0s unregisters)");
ABSL_FLAG(std::string, user_agent, "", "User-Agent of the phone");
ABSL_FLAG(std::string, call_id, "", "SIP Call-ID (watch sessions: filter)");
ABSL_FLAG(uint32_t, count, 0, "Stop after this many events (0: no limit)");
ABSL_FLAG(std::string, resume_token, "",
          "Watch from after this event (a resume_token from --json output or a listing); empty: from now");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(), "Stop after this long (0: no limit)");
ABSL_FLAG(std::string, caller_source, "127.0.0.1:5060", "IP:PORT the demo caller's INVITE comes from");
ABSL_FLAG(std::string, callee_source, "127.0.0.1:5062", "IP:PORT the demo callee's answer comes from");
ABSL_FLAG(uint32_t, packets, 50, "RTP packets each demo phone sends through the relay (0: signalling only)");
ABSL_FLAG(std::string, from_tag, "", "From-tag of the caller (sessions offer)");
ABSL_FLAG(std::string, to_tag, "", "To-tag of the callee (sessions answer)");
ABSL_FLAG(std::string, sdp, "", "File holding the SDP offer or answer as the phone sent it; - reads stdin");
ABSL_FLAG(std::string, signaling_source, "", "IP:PORT the INVITE (offer) or the 200 OK (answer) came from");
ABSL_FLAG(std::string, latching_mode, "",
          "first_packet, signaling_source, heuristic or strict (default: control chooses from the NAT verdict)");
ABSL_FLAG(absl::Duration, delay, absl::ZeroDuration(),
          "sessions release: keep media flowing this long, then end the session unless new SDP revives it");
ABSL_FLAG(absl::Duration, media_timeout, absl::ZeroDuration(),
          "End the session after this long without media (0: control's configured default, 60s unless set)");
