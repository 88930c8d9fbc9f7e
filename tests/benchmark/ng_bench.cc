// ng call-setup benchmark (scripts/bench-ng.sh): keeps N calls outstanding against an rtpengine "ng"
// server (latchkey-control's front door or rtpengine itself) and measures calls per second and the
// latency of each command and of whole calls.
//
// A call is what Kamailio's rtpengine_manage() sends for INVITE / 200 OK / BYE: offer, then answer,
// then delete, each sent when the previous one's reply has arrived. Requests are built as Kamailio 5.6
// builds them for `rtpengine_manage("replace-origin trust-address ICE=remove")`: supports [load
// limit], sdp (a phone's ~250-byte audio offer), call-id (unique per call), received-from [IP4, ...],
// flags [trust-address], replace [origin], ICE remove, from-tag (and to-tag on answer and delete),
// command last (deletes: `delete-delay` too with --delete_delay); the datagram is "<cookie> <bencode>" with a cookie unique per request. Bodies are
// encoded with the project's own codec (services/control/ng/bencode.h), and replies decoded with it.
//
// Each outstanding slot has a UDP socket of its own, connected to the server, as each Kamailio worker
// process has; one thread drives every slot (epoll), so the generator costs one core at most. A
// request unanswered after --timeout (1 s, Kamailio's rtpengine_tout_ms) counts as a timeout and its
// call is abandoned (the slot starts a new call); a reply whose result is not "ok", or an offer/answer
// reply without SDP, is an error (a "load limit" answer is counted apart); the call stops there too.
//
// After --warmup, calls completed (delete answered) during --duration are counted and every request
// answered in the window gives a latency sample (send to reply, CLOCK_MONOTONIC). Prints one JSON
// object:
//   {"bench":"ng","target":"latchkey","outstanding":8,"seconds":5.00,"calls":12345,"calls_per_s":2469.0,
//    "requests_per_s":..., "offer_p50_ms":...,"offer_p90_ms":...,"offer_p99_ms":...,"offer_max_ms":...,
//    (answer_, delete_, call_ the same), "errors":0,"timeouts":0,"load_limit":0,"first_error":"",
//    "gen_cpu_pct":...,"target_cpu_pct":...}
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/control/ng/bencode.h"

ABSL_FLAG(std::string, ng, "127.0.0.1:2223", "ng server address, IPv4:PORT (UDP)");
ABSL_FLAG(std::string, target, "latchkey", "Label copied into the JSON (latchkey, rtpengine)");
ABSL_FLAG(int, outstanding, 8, "Calls in progress at any time (one UDP socket each)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "Measured time");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "Load before measuring");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(1), "A request unanswered this long is a timeout");
ABSL_FLAG(std::string, received_from, "127.0.0.1", "received-from address (the SIP hop Kamailio heard)");
ABSL_FLAG(std::string, phone_ip, "127.0.0.1", "Address in the phones' SDP (trusted: trust-address)");
ABSL_FLAG(int, delete_delay, -1,
          "If >= 0, deletes carry `delete-delay` (the ng protocol's per-request delete delay) with this many seconds; "
          "-1: the server's default");
ABSL_FLAG(std::vector<std::string>, target_pids, {}, "Server processes whose CPU is sampled over the window");
ABSL_FLAG(std::string, note, "", "Free text copied into the JSON");
ABSL_FLAG(std::string, extra_json, "", "Extra JSON members copied into the object, e.g. \"delete_delay_s\":0");

namespace latchkey::bench {
namespace {

using control::ng::Decode;
using control::ng::Encode;
using control::ng::Value;

int64_t MonoNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t ProcessCpuNs() {
  timespec ts;
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// utime + stime of a process, in clock ticks (-1 if it cannot be read).
long long CpuTicks(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
  long long utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) || !absl::SimpleAtoi(fields[12], &stime)) return -1;
  return utime + stime;
}

long long TargetTicks() {
  long long total = 0;
  for (const std::string& pid : absl::GetFlag(FLAGS_target_pids)) {
    const long long t = CpuTicks(pid);
    if (t < 0) return -1;
    total += t;
  }
  return total;
}

Value Strings(std::initializer_list<const char*> items) {
  Value list = Value::List();
  for (const char* item : items) list.Add(Value::String(item));
  return list;
}

// A phone's audio offer/answer, ~250 bytes (PCMU, PCMA, telephone-event).
std::string PhoneSdp(const std::string& ip, uint64_t session, int port) {
  return absl::StrCat("v=0\r\no=- ", session, " ", session, " IN IP4 ", ip, "\r\ns=-\r\nc=IN IP4 ", ip,
                      "\r\nt=0 0\r\nm=audio ", port,
                      " RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
                      "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n");
}

enum Step { kOffer = 0, kAnswer = 1, kDelete = 2 };
constexpr const char* kStepName[] = {"offer", "answer", "delete"};

// The request as Kamailio 5.6 builds it for rtpengine_manage("replace-origin trust-address ICE=remove").
std::string Body(Step step, const std::string& call_id, const std::string& from_tag, const std::string& to_tag,
                 const std::string& sdp) {
  Value body = Value::Dictionary();
  body.Set("supports", Strings({"load limit"}));
  if (step != kDelete) body.Set("sdp", Value::String(sdp));
  body.Set("call-id", Value::String(call_id));
  body.Set("received-from", [] {
    Value v = Value::List();
    v.Add(Value::String("IP4"));
    v.Add(Value::String(absl::GetFlag(FLAGS_received_from)));
    return v;
  }());
  if (step != kDelete) {
    body.Set("flags", Strings({"trust-address"}));
    body.Set("replace", Strings({"origin"}));
    body.Set("ICE", Value::String("remove"));
  }
  body.Set("from-tag", Value::String(from_tag));
  if (step != kOffer) body.Set("to-tag", Value::String(to_tag));
  if (step == kDelete && absl::GetFlag(FLAGS_delete_delay) >= 0) {
    body.Set("delete-delay", Value::String(absl::StrCat(absl::GetFlag(FLAGS_delete_delay))));
  }
  body.Set("command", Value::String(kStepName[step]));
  return Encode(body);
}

struct Slot {
  int fd = -1;
  int index = 0;
  uint64_t call = 0;  // calls this slot started
  std::string call_id, from_tag, to_tag, cookie;
  Step step = kOffer;
  int64_t call_start_ns = 0;
  int64_t sent_ns = 0;
};

struct Stats {
  std::vector<double> ms[3];
  std::vector<double> call_ms;
  uint64_t calls = 0, requests = 0, errors = 0, timeouts = 0, load_limit = 0, bad_replies = 0;
  uint64_t errors_by_step[3] = {0, 0, 0}, timeouts_by_step[3] = {0, 0, 0};
  std::string first_error;
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t rank = std::max<size_t>(1, static_cast<size_t>(std::ceil(p * static_cast<double>(v.size()))));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(rank - 1), v.end());
  return v[rank - 1];
}

std::string JsonEscape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

class Generator {
 public:
  int Run() {
    const std::string address = absl::GetFlag(FLAGS_ng);
    std::vector<std::string> parts = absl::StrSplit(address, absl::MaxSplits(':', 1));
    int port = 0;
    sockaddr_in server{};
    server.sin_family = AF_INET;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &port) || port <= 0 || port > 65535 ||
        ::inet_pton(AF_INET, parts[0].c_str(), &server.sin_addr) != 1) {
      std::fprintf(stderr, "ng_bench: --ng must be IPv4:PORT\n");
      return 2;
    }
    server.sin_port = htons(static_cast<uint16_t>(port));
    const int n = std::max(1, absl::GetFlag(FLAGS_outstanding));
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    slots_.resize(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      Slot& s = slots_[static_cast<size_t>(i)];
      s.index = i;
      s.fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (s.fd < 0 || ::connect(s.fd, reinterpret_cast<const sockaddr*>(&server), sizeof(server)) != 0) {
        std::fprintf(stderr, "ng_bench: socket/connect: %s\n", std::strerror(errno));
        return 1;
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(i);
      ::epoll_ctl(epoll_, EPOLL_CTL_ADD, s.fd, &ev);
    }
    if (!Ping(slots_[0])) {
      std::fprintf(stderr, "ng_bench: %s does not answer ng ping\n", address.c_str());
      return 1;
    }
    pid_ = static_cast<int>(::getpid());

    const int64_t start = MonoNs();
    window_start_ = start + absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_warmup));
    window_end_ = window_start_ + absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_duration));
    timeout_ns_ = absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_timeout));
    for (Slot& s : slots_) StartCall(s, start);

    bool in_window = false;
    long long ticks_before = -1;
    int64_t gen_cpu_before = 0;
    std::vector<epoll_event> events(slots_.size());
    std::vector<char> buffer(65536);
    while (true) {
      const int64_t now = MonoNs();
      if (!in_window && now >= window_start_) {
        in_window = true;
        ticks_before = TargetTicks();
        gen_cpu_before = ProcessCpuNs();
      }
      if (now >= window_end_) break;
      const int ready = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 10);
      for (int e = 0; e < ready; ++e) {
        Slot& s = slots_[events[static_cast<size_t>(e)].data.u32];
        while (true) {
          const ssize_t got = ::recv(s.fd, buffer.data(), buffer.size(), 0);
          if (got <= 0) break;
          OnDatagram(s, absl::string_view(buffer.data(), static_cast<size_t>(got)));
        }
      }
      const int64_t after = MonoNs();
      for (Slot& s : slots_) {
        if (after - s.sent_ns >= timeout_ns_) {
          const bool counted = s.sent_ns >= window_start_ && s.sent_ns < window_end_;
          if (counted) {
            ++stats_.timeouts;
            ++stats_.timeouts_by_step[s.step];
            if (stats_.first_error.empty()) stats_.first_error = absl::StrCat(kStepName[s.step], ": timeout");
          }
          StartCall(s, after);
        }
      }
    }
    const int64_t end = MonoNs();
    const double seconds = static_cast<double>(end - window_start_) / 1e9;
    const long long ticks_after = TargetTicks();
    const double gen_cpu = static_cast<double>(ProcessCpuNs() - gen_cpu_before) / 1e9 / seconds * 100;
    double target_cpu = -1;
    if (ticks_before >= 0 && ticks_after >= 0 && !absl::GetFlag(FLAGS_target_pids).empty()) {
      target_cpu = static_cast<double>(ticks_after - ticks_before) / static_cast<double>(::sysconf(_SC_CLK_TCK)) /
                   seconds * 100;
    }
    Report(seconds, gen_cpu, target_cpu);
    return 0;
  }

 private:
  bool Ping(Slot& s) {
    const std::string ping = absl::StrCat("ping_", ::getpid(), " ", Encode([] {
                                            Value v = Value::Dictionary();
                                            v.Set("command", Value::String("ping"));
                                            return v;
                                          }()));
    std::vector<char> buffer(65536);
    for (int attempt = 0; attempt < 100; ++attempt) {
      (void)!::send(s.fd, ping.data(), ping.size(), 0);
      const int64_t deadline = MonoNs() + 200'000'000;
      while (MonoNs() < deadline) {
        epoll_event ev;
        if (::epoll_wait(epoll_, &ev, 1, 20) <= 0) continue;
        const ssize_t got = ::recv(slots_[ev.data.u32].fd, buffer.data(), buffer.size(), 0);
        if (got > 0 && absl::string_view(buffer.data(), static_cast<size_t>(got)).find("pong") != absl::string_view::npos) {
          return true;
        }
      }
    }
    return false;
  }

  void StartCall(Slot& s, int64_t now) {
    ++s.call;
    s.call_id = absl::StrCat("ngb-", pid_, "-", s.index, "-", s.call, "@bench.invalid");
    s.from_tag = absl::StrCat("f", s.index, "x", s.call);
    s.to_tag = absl::StrCat("t", s.index, "x", s.call);
    s.call_start_ns = now;
    Send(s, kOffer);
  }

  void Send(Slot& s, Step step) {
    s.step = step;
    s.cookie = absl::StrCat(pid_, "_", s.index, "_", ++sequence_);
    const uint64_t session = 1000000 + sequence_;
    const std::string sdp =
        step == kDelete ? std::string()
                        : PhoneSdp(absl::GetFlag(FLAGS_phone_ip), session, 16000 + 2 * ((s.index * 2 + step) % 4000));
    const std::string datagram =
        absl::StrCat(s.cookie, " ", Body(step, s.call_id, s.from_tag, s.to_tag, sdp));
    s.sent_ns = MonoNs();
    if (::send(s.fd, datagram.data(), datagram.size(), 0) < 0 && send_error_.empty()) {
      send_error_ = std::strerror(errno);
    }
  }

  void Fail(Slot& s, const std::string& why, bool load_limit, int64_t now, bool counted) {
    if (counted) {
      if (load_limit) {
        ++stats_.load_limit;
      } else {
        ++stats_.errors;
        ++stats_.errors_by_step[s.step];
      }
      if (stats_.first_error.empty()) stats_.first_error = absl::StrCat(kStepName[s.step], ": ", why);
    }
    StartCall(s, now);
  }

  void OnDatagram(Slot& s, absl::string_view datagram) {
    const size_t space = datagram.find(' ');
    if (space == absl::string_view::npos || datagram.substr(0, space) != s.cookie) return;  // stale or junk
    const int64_t now = MonoNs();
    const bool counted = now >= window_start_ && now < window_end_;
    auto reply = Decode(datagram.substr(space + 1));
    if (!reply.ok() || !reply->is_dictionary()) {
      if (counted) ++stats_.bad_replies;
      Fail(s, "undecodable reply", false, now, counted);
      return;
    }
    const Value* result = reply->Find("result");
    const std::string r = result != nullptr && result->is_string() ? result->string() : "";
    if (r != "ok") {
      const Value* reason = reply->Find("error-reason");
      Fail(s, absl::StrCat(r, reason != nullptr && reason->is_string() ? " " + reason->string() : ""),
           r == "load limit", now, counted);
      return;
    }
    if (s.step != kDelete) {
      const Value* sdp = reply->Find("sdp");
      if (sdp == nullptr || !sdp->is_string() || sdp->string().find("m=audio") == std::string::npos) {
        Fail(s, "ok without SDP", false, now, counted);
        return;
      }
    }
    if (counted) {
      ++stats_.requests;
      stats_.ms[s.step].push_back(static_cast<double>(now - s.sent_ns) / 1e6);
    }
    if (s.step == kDelete) {
      if (counted) {
        ++stats_.calls;
        stats_.call_ms.push_back(static_cast<double>(now - s.call_start_ns) / 1e6);
      }
      StartCall(s, now);
    } else {
      Send(s, static_cast<Step>(s.step + 1));
    }
  }

  void Report(double seconds, double gen_cpu, double target_cpu) {
    std::string out = absl::StrFormat(
        "{\"bench\":\"ng\",\"target\":\"%s\",\"outstanding\":%d,\"seconds\":%.2f,\"calls\":%u,"
        "\"calls_per_s\":%.1f,\"requests_per_s\":%.1f",
        JsonEscape(absl::GetFlag(FLAGS_target)), static_cast<int>(slots_.size()), seconds, stats_.calls,
        static_cast<double>(stats_.calls) / seconds, static_cast<double>(stats_.requests) / seconds);
    auto quantiles = [&](const char* name, std::vector<double>& v) {
      const double max = v.empty() ? 0 : *std::max_element(v.begin(), v.end());
      absl::StrAppendFormat(&out, ",\"%s_p50_ms\":%.3f,\"%s_p90_ms\":%.3f,\"%s_p99_ms\":%.3f,\"%s_max_ms\":%.3f", name,
                            Percentile(v, 0.50), name, Percentile(v, 0.90), name, Percentile(v, 0.99), name, max);
    };
    for (int step = 0; step < 3; ++step) quantiles(kStepName[step], stats_.ms[step]);
    quantiles("call", stats_.call_ms);
    absl::StrAppendFormat(&out,
                          ",\"errors\":%u,\"timeouts\":%u,\"load_limit\":%u,\"bad_replies\":%u,"
                          "\"errors_by_command\":{\"offer\":%u,\"answer\":%u,\"delete\":%u},"
                          "\"timeouts_by_command\":{\"offer\":%u,\"answer\":%u,\"delete\":%u},\"first_error\":\"%s\"",
                          stats_.errors, stats_.timeouts, stats_.load_limit, stats_.bad_replies,
                          stats_.errors_by_step[0], stats_.errors_by_step[1], stats_.errors_by_step[2],
                          stats_.timeouts_by_step[0], stats_.timeouts_by_step[1], stats_.timeouts_by_step[2],
                          JsonEscape(stats_.first_error.substr(0, 200)));
    if (!send_error_.empty()) absl::StrAppendFormat(&out, ",\"send_error\":\"%s\"", JsonEscape(send_error_));
    absl::StrAppendFormat(&out, ",\"gen_cpu_pct\":%.1f", gen_cpu);
    if (target_cpu >= 0) absl::StrAppendFormat(&out, ",\"target_cpu_pct\":%.1f", target_cpu);
    if (!absl::GetFlag(FLAGS_note).empty()) {
      absl::StrAppendFormat(&out, ",\"note\":\"%s\"", JsonEscape(absl::GetFlag(FLAGS_note)));
    }
    if (!absl::GetFlag(FLAGS_extra_json).empty()) absl::StrAppend(&out, ",", absl::GetFlag(FLAGS_extra_json));
    out += "}\n";
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
  }

  std::vector<Slot> slots_;
  Stats stats_;
  int epoll_ = -1;
  int pid_ = 0;
  uint64_t sequence_ = 0;
  int64_t window_start_ = 0, window_end_ = 0, timeout_ns_ = 0;
  std::string send_error_;
};

}  // namespace
}  // namespace latchkey::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  latchkey::bench::Generator generator;
  return generator.Run();
}
