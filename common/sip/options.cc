#include "common/sip/options.h"

#include <cstdint>
#include <cstring>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/sip/syntax.h"
#include "common/status_macros.h"

namespace latchkey::sip {
namespace {

// ---- writing ----

constexpr absl::string_view kBranchCookie = "z9hG4bK";

// Appends into a fixed buffer; once something did not fit, everything after is dropped and the
// result is 0, so callers check once at the end.
class Writer {
 public:
  Writer(char* out, size_t capacity) : out_(out), capacity_(capacity) {}

  void Put(absl::string_view text) {
    if (text.empty() || overflow_) return;
    if (text.size() > capacity_ - size_) {
      overflow_ = true;
      return;
    }
    std::memcpy(out_ + size_, text.data(), text.size());
    size_ += text.size();
  }

  void PutDecimal(uint32_t value) {
    char digits[10];
    size_t n = 0;
    do {
      digits[sizeof(digits) - 1 - n++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0);
    Put(absl::string_view(digits + sizeof(digits) - n, n));
  }

  size_t Finish() const { return overflow_ ? 0 : size_; }

 private:
  char* out_;
  size_t capacity_;
  size_t size_ = 0;
  bool overflow_ = false;
};

// A field that may go into a header line: a CR, LF or NUL would end the line early and let the
// rest of the field (from a phone's Contact) be read as headers of our own.
bool IsLineSafe(absl::string_view field) {
  return field.find_first_of(absl::string_view("\r\n\0", 3)) == absl::string_view::npos;
}

bool UsableRequired(absl::string_view field) { return !field.empty() && IsLineSafe(field); }

// ---- parsing ----

constexpr absl::string_view kResponse = "SIP response";
constexpr absl::string_view kHeader = "SIP response header";
constexpr absl::string_view kVia = "Via";
constexpr absl::string_view kCallId = "Call-ID";
constexpr absl::string_view kCSeq = "CSeq";

absl::string_view StripCr(absl::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

bool IsSpaceOrTab(char c) { return c == ' ' || c == '\t'; }

// A generic parameter value that is not quoted: a token or a host (IPv6 adds ':' and '[]'), as
// ParseHeaderParams in syntax.cc reads it.
bool IsGenValueChar(char c) { return IsTokenChar(c) || c == ':' || c == '[' || c == ']'; }

// Expects `separator` at `*pos` (whitespace around it allowed) and moves past it.
bool Consume(absl::string_view text, size_t* pos, char separator) {
  size_t at = SkipSpace(text, *pos);
  if (at >= text.size() || text[at] != separator) return false;
  *pos = SkipSpace(text, at + 1);
  return true;
}

// The branch of the first value of a Via header. Via::Parse reads the same grammar, but it copies
// the value and collects the parameters in a vector; this runs per keepalive answer, so it walks
// the parameters in place with the same syntax.h pieces and keeps only the branch.
absl::StatusOr<absl::string_view> TopViaBranch(absl::string_view value) {
  absl::string_view top = TrimSpace(value.substr(0, FindUnquoted(value, ',', /*skip_angle_brackets=*/false)));
  if (top.empty()) return SyntaxError(kVia, value, "empty top value");

  size_t pos = SkipToken(top, 0);
  if (!absl::EqualsIgnoreCase(top.substr(0, pos), "SIP") || !Consume(top, &pos, '/')) {
    return SyntaxError(kVia, top, "sent-protocol must start with SIP/");
  }
  size_t version_end = SkipToken(top, pos);
  if (top.substr(pos, version_end - pos) != "2.0") return SyntaxError(kVia, top, "protocol version must be 2.0");
  pos = version_end;
  if (!Consume(top, &pos, '/')) return SyntaxError(kVia, top, "expected '/' before the transport");
  size_t transport_end = SkipToken(top, pos);
  if (transport_end == pos) return SyntaxError(kVia, top, "missing transport");
  pos = SkipSpace(top, transport_end);
  if (pos == transport_end) return SyntaxError(kVia, top, "expected whitespace before the sent-by");

  ASSIGN_OR_RETURN(ParsedHost host, ParseHost(top, pos, kVia));
  pos = host.written.end;
  if (size_t colon = pos; Consume(top, &colon, ':')) {
    ASSIGN_OR_RETURN(uint16_t port, ParsePortAt(top, colon, &pos, kVia));
    (void)port;  // checked, not needed
  }

  std::optional<absl::string_view> branch;
  while (true) {
    pos = SkipSpace(top, pos);
    if (pos == top.size()) break;
    if (top[pos] != ';') return SyntaxError(kVia, top, absl::StrCat("expected ';' at offset ", pos));
    pos = SkipSpace(top, pos + 1);
    const size_t name_end = SkipToken(top, pos);
    if (name_end == pos) return SyntaxError(kVia, top, absl::StrCat("expected a parameter name at offset ", pos));
    const absl::string_view name = top.substr(pos, name_end - pos);
    absl::string_view param_value;
    pos = SkipSpace(top, name_end);
    if (pos < top.size() && top[pos] == '=') {
      pos = SkipSpace(top, pos + 1);
      size_t value_end = pos;
      if (pos < top.size() && top[pos] == '"') {
        value_end = SkipQuotedString(top, pos);
        if (value_end == absl::string_view::npos) {
          return SyntaxError(kVia, top, absl::StrCat("unterminated quoted value at offset ", pos));
        }
      } else {
        while (value_end < top.size() && IsGenValueChar(top[value_end])) ++value_end;
        if (value_end == pos) return SyntaxError(kVia, top, absl::StrCat("expected a parameter value at offset ", pos));
      }
      param_value = top.substr(pos, value_end - pos);
      pos = value_end;
    }
    if (!branch.has_value() && absl::EqualsIgnoreCase(name, "branch")) branch = param_value;
  }
  if (!branch.has_value()) return SyntaxError(kVia, top, "top Via has no branch parameter");
  if (branch->empty()) return SyntaxError(kVia, top, "branch parameter has no value");
  return *branch;
}

absl::StatusOr<absl::string_view> ParseCallId(absl::string_view value) {
  if (value.empty()) return SyntaxError(kCallId, value, "empty value");
  for (char c : value) {
    if (c <= ' ' || c >= 0x7f) return SyntaxError(kCallId, value, "must be one word of visible characters");
  }
  return value;
}

absl::Status ParseCSeq(absl::string_view value, ResponseSummary* summary) {
  size_t pos = 0;
  uint64_t number = 0;
  while (pos < value.size() && absl::ascii_isdigit(static_cast<unsigned char>(value[pos]))) {
    number = number * 10 + static_cast<uint64_t>(value[pos] - '0');
    // Checked per digit, so a long digit run cannot overflow `number`.
    if (number > UINT32_MAX) return SyntaxError(kCSeq, value, "sequence number exceeds 2^32-1");
    ++pos;
  }
  if (pos == 0) return SyntaxError(kCSeq, value, "expected a sequence number");
  const size_t method_begin = SkipSpace(value, pos);
  if (method_begin == pos) return SyntaxError(kCSeq, value, "expected whitespace after the sequence number");
  const size_t method_end = SkipToken(value, method_begin);
  if (method_end == method_begin || method_end != value.size()) {
    return SyntaxError(kCSeq, value, "expected a method token after the sequence number");
  }
  summary->cseq = static_cast<uint32_t>(number);
  summary->cseq_method = value.substr(method_begin);
  return absl::OkStatus();
}

// Three digits 100-699 at the start of `text`, followed by a space or nothing.
absl::StatusOr<int> ParseStatusCode(absl::string_view status_line, absl::string_view text) {
  if (text.size() < 3 || !absl::ascii_isdigit(static_cast<unsigned char>(text[0])) ||
      !absl::ascii_isdigit(static_cast<unsigned char>(text[1])) ||
      !absl::ascii_isdigit(static_cast<unsigned char>(text[2])) || (text.size() > 3 && text[3] != ' ')) {
    return SyntaxError(kResponse, status_line, "status code must be three digits followed by a space");
  }
  const int code = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
  if (code < 100 || code > 699) return SyntaxError(kResponse, status_line, "status code must be 100-699");
  return code;
}

struct Seen {
  bool via = false;
  bool call_id = false;
  bool cseq = false;
};

absl::Status ParseHeader(absl::string_view header, ResponseSummary* summary, Seen* seen) {
  const size_t name_end = SkipToken(header, 0);
  if (name_end == 0) return SyntaxError(kHeader, header, "line does not start with a header name");
  const size_t colon = SkipSpace(header, name_end);
  if (colon >= header.size() || header[colon] != ':') {
    return SyntaxError(kHeader, header, "expected ':' after the header name");
  }
  const absl::string_view name = header.substr(0, name_end);
  const absl::string_view value = TrimSpace(header.substr(colon + 1));

  if (absl::EqualsIgnoreCase(name, "Via") || absl::EqualsIgnoreCase(name, "v")) {
    // Only the top-most Via names our transaction; later ones are the hops before us.
    if (seen->via) return absl::OkStatus();
    seen->via = true;
    ASSIGN_OR_RETURN(summary->branch, TopViaBranch(value));
  } else if (absl::EqualsIgnoreCase(name, "Call-ID") || absl::EqualsIgnoreCase(name, "i")) {
    if (seen->call_id) return SyntaxError(kCallId, value, "header appears more than once");
    seen->call_id = true;
    ASSIGN_OR_RETURN(summary->call_id, ParseCallId(value));
  } else if (absl::EqualsIgnoreCase(name, "CSeq")) {
    if (seen->cseq) return SyntaxError(kCSeq, value, "header appears more than once");
    seen->cseq = true;
    RETURN_IF_ERROR(ParseCSeq(value, summary));
  }
  return absl::OkStatus();
}

}  // namespace

size_t WriteOptions(const OptionsRequest& request, char* out, size_t capacity) {
  if (!UsableRequired(request.request_uri) || !UsableRequired(request.to_uri) ||
      !UsableRequired(request.from_uri) || !UsableRequired(request.from_tag) ||
      !UsableRequired(request.call_id) || !UsableRequired(request.via_host) ||
      !UsableRequired(request.transport) || !IsLineSafe(request.user_agent) || request.via_port == 0 ||
      !IsLineSafe(request.branch) || !absl::StartsWith(request.branch, kBranchCookie)) {
    return 0;
  }
  // An IPv6 sent-by needs brackets, else its last group reads as the port.
  const bool bracket = request.via_host.front() != '[' && request.via_host.find(':') != absl::string_view::npos;

  Writer w(out, capacity);
  w.Put("OPTIONS ");
  w.Put(request.request_uri);
  w.Put(" SIP/2.0\r\nVia: SIP/2.0/");
  w.Put(request.transport);
  w.Put(" ");
  if (bracket) w.Put("[");
  w.Put(request.via_host);
  if (bracket) w.Put("]");
  w.Put(":");
  w.PutDecimal(request.via_port);
  w.Put(";branch=");
  w.Put(request.branch);
  // rport (RFC 3581): we may sit behind a NAT or load balancer ourselves; answer to our source port.
  w.Put(";rport\r\nMax-Forwards: 70\r\nFrom: <");
  w.Put(request.from_uri);
  w.Put(">;tag=");
  w.Put(request.from_tag);
  w.Put("\r\nTo: <");
  w.Put(request.to_uri);
  w.Put(">\r\nCall-ID: ");
  w.Put(request.call_id);
  w.Put("\r\nCSeq: ");
  w.PutDecimal(request.cseq);
  w.Put(" OPTIONS\r\n");
  if (!request.user_agent.empty()) {
    w.Put("User-Agent: ");
    w.Put(request.user_agent);
    w.Put("\r\n");
  }
  w.Put("Content-Length: 0\r\n\r\n");
  return w.Finish();
}

absl::StatusOr<ResponseSummary> ParseResponse(absl::string_view datagram) {
  const absl::string_view d = datagram;
  if (!absl::StartsWithIgnoreCase(d, "SIP/2.0 ")) {
    return SyntaxError(kResponse, d.substr(0, d.find('\n')), "not a response (must start with \"SIP/2.0 \")");
  }
  const size_t status_end = d.find('\n');
  if (status_end == absl::string_view::npos) return SyntaxError(kResponse, d, "status line has no line end");
  const absl::string_view status_line = StripCr(d.substr(0, status_end));

  ResponseSummary summary;
  ASSIGN_OR_RETURN(summary.status_code, ParseStatusCode(status_line, status_line.substr(8)));

  Seen seen;
  bool headers_ended = false;
  size_t pos = status_end + 1;
  while (pos < d.size()) {
    size_t end = d.find('\n', pos);
    if (end == absl::string_view::npos) break;
    const absl::string_view first_line = StripCr(d.substr(pos, end - pos));
    if (first_line.empty()) {
      headers_ended = true;
      break;
    }
    if (IsSpaceOrTab(first_line.front())) {
      return SyntaxError(kHeader, first_line, "continuation line without a header before it");
    }
    // Folded lines (starting with a space or tab) belong to this header. Each byte is looked at a
    // bounded number of times, so the whole walk stays linear.
    while (end + 1 < d.size() && IsSpaceOrTab(d[end + 1])) {
      end = d.find('\n', end + 1);
      if (end == absl::string_view::npos) {
        return SyntaxError(kResponse, status_line, "headers do not end with an empty line (truncated?)");
      }
    }
    RETURN_IF_ERROR(ParseHeader(StripCr(d.substr(pos, end - pos)), &summary, &seen));
    pos = end + 1;
  }
  if (!headers_ended) {
    return SyntaxError(kResponse, status_line, "headers do not end with an empty line (truncated?)");
  }
  if (!seen.via) return SyntaxError(kResponse, status_line, "no Via header");
  if (!seen.call_id) return SyntaxError(kResponse, status_line, "no Call-ID header");
  if (!seen.cseq) return SyntaxError(kResponse, status_line, "no CSeq header");
  return summary;
}

}  // namespace latchkey::sip
