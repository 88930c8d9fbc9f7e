// The latching attack table (docs/SECURITY.md): each attack of the threat model against the real
// latchkey-control and latchkey-relay on loopback, over real UDP, in every latching mode. A call
// between a caller behind NAT (private SDP; STRICT: a public caller) and a public callee; attackers
// on another host (127.0.0.66) or behind the phones' own IP (127.0.0.1, a CGNAT neighbour). Per
// scenario and mode it prints one row:
//   bleed      packets of the call the relay sent to an attacker's socket
//   injected   attacker packets that reached a phone
//   hijacked   a leg latched onto an attacker's address (WatchSessions events)
//   outage_ms  longest time a phone went without the other's media while the other was talking
//   recovered  both phones hear each other (>= 80 %) in the last second, after the attack
//   contests   LATCH_CONTESTED events seen by a watcher
// A cell is `safe` when bleed = 0, injected <= 4 (the probation count), not hijacked, recovered
// (and, for a legitimate move, outage <= 1 s). Cells the threat model lists as limits of a mode
// print `limit`; any other cell that is not safe prints `FAIL` and the exit status is 1.
// With --fast_path=tc the relay forwards latched media in the kernel (tc on the loopback of a network
// namespace of this process's own; root only, else exit 77): the table must read the same.
//   latch_attacks [--modes=FIRST_PACKET,SIGNALING_SOURCE,HEURISTIC,STRICT] [--scenarios=a,b] [--fast_path=tc]
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "media-relay/fastpath/relay_program.h"
#include "tests/integration/support/cluster.h"
#include "tests/integration/support/udp_peer.h"
#include "tests/support/shell.h"

ABSL_FLAG(std::string, modes, "FIRST_PACKET,SIGNALING_SOURCE,HEURISTIC,STRICT", "Latching modes to run");
ABSL_FLAG(std::string, scenarios, "", "Scenarios to run (empty: all)");
ABSL_FLAG(std::string, fast_path, "off", "off, or tc: the relay's kernel fast path on (needs root; exit 77 without)");

namespace latchkey {
namespace {

using testing::UdpPeer;

constexpr uint8_t kCallerMark = 0xA1;
constexpr uint8_t kCalleeMark = 0xB2;
constexpr uint8_t kAttackerMark = 0xEE;
constexpr int kRelayPorts = 40;  // the whole range is sprayed
constexpr char kOtherHost[] = "127.0.0.66";
constexpr char kPhonesIp[] = "127.0.0.1";  // the phones' (and their CGNAT neighbours') IP
// Phases, from the answer: warm-up, attack, recovery.
constexpr int kAttackStartMs = 700;
constexpr int kAttackEndMs = 3'200;
constexpr int kEndMs = 4'300;

std::vector<uint8_t> Rtp(uint32_t ssrc, uint16_t seq, uint32_t ts, uint8_t mark) {
  std::vector<uint8_t> p = testing::RtpPacket(ssrc, seq, ts);
  p[12] = mark;
  return p;
}

enum class Role { kCaller, kCallee, kAttacker, kVictim };

// Every socket of one run, polled by one thread: what arrived where, and when.
class Receiver {
 public:
  Receiver() : thread_([this] { Loop(); }) {}
  ~Receiver() {
    stop_ = true;
    thread_.join();
  }
  void Watch(const UdpPeer* peer, Role role) {
    absl::MutexLock lock(&mu_);
    sockets_.push_back({peer->fd(), role});
  }
  // A socket the phone no longer uses (its old NAT mapping): what still arrives there is lost.
  void Unwatch(const UdpPeer* peer) {
    absl::MutexLock lock(&mu_);
    std::erase_if(sockets_, [fd = peer->fd()](const auto& s) { return s.first == fd; });
  }
  struct Counts {
    int attacker_got = 0, victim_got = 0, injected = 0;
    std::vector<absl::Time> caller_heard, callee_heard;  // legitimate media received by each phone
  };
  Counts Snapshot() {
    absl::MutexLock lock(&mu_);
    return counts_;
  }

 private:
  void Loop() {
    std::vector<pollfd> fds;
    std::vector<Role> roles;
    uint8_t buffer[2048];
    while (!stop_) {
      {
        absl::MutexLock lock(&mu_);
        fds.clear();
        roles.clear();
        for (const auto& [fd, role] : sockets_) {
          fds.push_back({fd, POLLIN, 0});
          roles.push_back(role);
        }
      }
      if (::poll(fds.data(), fds.size(), 10) <= 0) continue;
      const absl::Time now = absl::Now();
      for (size_t i = 0; i < fds.size(); ++i) {
        if (!(fds[i].revents & POLLIN)) continue;
        for (int n = 0; n < 64; ++n) {
          const ssize_t got = ::recv(fds[i].fd, buffer, sizeof(buffer), MSG_DONTWAIT);
          if (got <= 0) break;
          const uint8_t mark = got > 12 ? buffer[12] : 0;
          absl::MutexLock lock(&mu_);
          switch (roles[i]) {
            case Role::kAttacker: ++counts_.attacker_got; break;
            case Role::kVictim: ++counts_.victim_got; break;
            case Role::kCaller:
            case Role::kCallee:
              if (mark == kAttackerMark) ++counts_.injected;
              if (roles[i] == Role::kCaller && mark == kCalleeMark) counts_.caller_heard.push_back(now);
              if (roles[i] == Role::kCallee && mark == kCallerMark) counts_.callee_heard.push_back(now);
              break;
          }
        }
      }
    }
  }

  absl::Mutex mu_;
  std::vector<std::pair<int, Role>> sockets_ ABSL_GUARDED_BY(mu_);
  Counts counts_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A phone's RTP stream at 20 ms; the attacker threads read its SSRC, sequence and timestamp (what
// an on-path attacker sees).
struct Phone {
  uint32_t ssrc = 0;
  uint8_t mark = 0;
  uint16_t relay_port = 0;
  std::unique_ptr<UdpPeer> socket;
  std::atomic<bool> talking{false};
  std::atomic<uint32_t> seq{1000};
  absl::Mutex mu;
  std::vector<std::pair<absl::Time, absl::Time>> talk ABSL_GUARDED_BY(mu);  // intervals

  void SetTalking(bool on) {
    if (talking.exchange(on) == on) return;
    absl::MutexLock lock(&mu);
    if (on) talk.push_back({absl::Now(), absl::InfiniteFuture()});
    else if (!talk.empty()) talk.back().second = absl::Now();
  }
  void SendOne() {
    const uint32_t s = seq.fetch_add(1);
    absl::MutexLock lock(&mu);
    socket->SendTo(relay_port, Rtp(ssrc, static_cast<uint16_t>(s), s * 160u, mark));
  }
  // The next packet of this stream as an on-path attacker forges it: it continues the stream where
  // the phone left it (`*own` its own counter), and catches up whenever the phone sends.
  std::vector<uint8_t> Forged(uint32_t* own) const {
    *own = std::max(*own, seq.load());
    const uint32_t s = (*own)++;
    return Rtp(ssrc, static_cast<uint16_t>(s), s * 160u, kAttackerMark);
  }
};

struct Row {
  int bleed = 0, injected = 0, contests = 0, unsolicited = 0;
  bool hijacked = false, recovered = false;
  int64_t outage_ms = 0;
};

// One call through the relay and everything that happens to it.
class Run {
 public:
  Run(v1::NatControlService::Stub& stub, const testing::LocalRelay& relay, v1::LatchingMode mode, std::string call_id)
      : stub_(stub), relay_(relay), mode_(mode), call_id_(std::move(call_id)) {
    caller_.ssrc = 0x11111111;
    caller_.mark = kCallerMark;
    caller_.socket = std::make_unique<UdpPeer>();
    callee_.ssrc = 0x22222222;
    callee_.mark = kCalleeMark;
    callee_.socket = std::make_unique<UdpPeer>();
    receiver_.Watch(caller_.socket.get(), Role::kCaller);
    receiver_.Watch(callee_.socket.get(), Role::kCallee);
  }
  ~Run() { Stop(); }

  v1::LatchingMode mode() const { return mode_; }
  bool strict() const { return mode_ == v1::LATCHING_MODE_STRICT; }
  Phone& caller() { return caller_; }
  Phone& callee() { return callee_; }
  int port_min() const { return relay_.port_min(); }
  int port_max() const { return relay_.port_max(); }
  // When the answer was sent; before it, a far-future time.
  absl::Time answered_at() const { return answered() ? answered_at_ : absl::InfiniteFuture(); }

  // The caller's SDP: behind NAT (private; the relay cannot send there before it latches), except in
  // STRICT, which only serves endpoints whose SDP is exact.
  std::string CallerSdp(const std::string& extra = "") const {
    return strict() ? testing::AudioSdp(kPhonesIp, caller_.socket->port(), extra) : testing::AudioSdp("192.168.1.20", 4000, extra);
  }

  bool Offer(const std::string& caller_sdp) {
    StartWatch();
    v1::AllocateSessionRequest offer;
    offer.set_call_id(call_id_);
    offer.set_from_tag("a");
    offer.set_sdp(caller_sdp);
    *offer.mutable_signaling_source() = testing::Address(kPhonesIp, 5060);
    offer.mutable_options()->set_latching_mode(mode_);
    v1::AllocateSessionResponse offered;
    grpc::ClientContext context;
    if (!stub_.AllocateSession(&context, offer, &offered).ok()) return false;
    session_id_ = offered.session().session_id();
    caller_.relay_port = static_cast<uint16_t>(offered.session().caller().relay(0).rtp().port());
    callee_.relay_port = static_cast<uint16_t>(offered.session().callee().relay(0).rtp().port());
    return true;
  }
  bool Answer() {
    v1::AnswerSessionRequest answer;
    answer.set_session_id(session_id_);
    answer.set_to_tag("b");
    answer.set_sdp(testing::AudioSdp(kPhonesIp, callee_.socket->port()));
    *answer.mutable_signaling_source() = testing::Address(kPhonesIp, 5062);
    v1::AnswerSessionResponse answered;
    grpc::ClientContext context;
    answered_at_ = absl::Now();
    answered_.Notify();
    return stub_.AnswerSession(&context, answer, &answered).ok();
  }
  bool Reinvite(v1::Side side, const std::string& sdp, const std::string& signaling_ip = kPhonesIp) {
    v1::UpdateSessionRequest update;
    update.set_session_id(session_id_);
    update.set_side(side);
    update.set_sdp(sdp);
    *update.mutable_signaling_source() = testing::Address(signaling_ip, side == v1::SIDE_CALLER ? 5060 : 5062);
    v1::UpdateSessionResponse updated;
    grpc::ClientContext context;
    return stub_.UpdateSession(&context, update, &updated).ok();
  }

  // Both phones send every 20 ms while talking.
  void StartPhones() {
    caller_.SetTalking(true);
    callee_.SetTalking(true);
    threads_.emplace_back([this] {
      // Paced like a phone: a late round is not made up with a burst (a slow build would otherwise
      // send packets closer together than any phone does).
      for (absl::Time next = absl::Now(); !stop_; next = std::max(next + absl::Milliseconds(20), absl::Now())) {
        for (Phone* phone : {&caller_, &callee_}) {
          if (phone->talking) phone->SendOne();
        }
        absl::SleepFor(next + absl::Milliseconds(20) - absl::Now());
      }
    });
  }
  // The caller's NAT maps it anew (`ip` other than the phones' for a handover).
  void MoveCaller(const std::string& ip) {
    auto fresh = Checked(UdpPeer::OnIp(ip));
    receiver_.Watch(fresh.get(), Role::kCaller);
    absl::MutexLock lock(&caller_.mu);
    receiver_.Unwatch(caller_.socket.get());
    retired_.push_back(std::move(caller_.socket));
    caller_.socket = std::move(fresh);
  }
  uint16_t caller_port() {
    absl::MutexLock lock(&caller_.mu);
    return caller_.socket->port();
  }

  // An attacker socket on `ip` (its address is an attacker's for the `hijacked` column).
  UdpPeer* AttackerSocket(const std::string& ip) {
    auto peer = Checked(UdpPeer::OnIp(ip));
    receiver_.Watch(peer.get(), Role::kAttacker);
    {
      absl::MutexLock lock(&events_mu_);
      attacker_addresses_.insert(absl::StrCat(ip, ":", peer->port()));
    }
    attackers_.push_back(std::move(peer));
    return attackers_.back().get();
  }
  UdpPeer* VictimSocket() {
    victims_.push_back(Checked(UdpPeer::OnIp("127.0.0.99")));
    receiver_.Watch(victims_.back().get(), Role::kVictim);
    return victims_.back().get();
  }
  bool answered() const { return answered_.HasBeenNotified(); }
  // Runs `body` in a thread of its own until the run stops.
  void Background(std::function<void(const std::atomic<bool>& stop)> body) {
    threads_.emplace_back([this, body = std::move(body)] { body(stop_); });
  }
  // Sleeps until `ms` after the answer.
  void At(int ms) const { absl::SleepFor(answered_at_ + absl::Milliseconds(ms) - absl::Now()); }

  Row Finish() {
    if (broken_) return Row{.bleed = -1};  // a socket could not be bound: no figures
    absl::SleepFor(absl::Milliseconds(100));  // the last packets in flight
    const absl::Time end = absl::Now();
    caller_.SetTalking(false);
    callee_.SetTalking(false);
    Stop();
    Row row;
    const Receiver::Counts counts = receiver_.Snapshot();
    row.bleed = counts.attacker_got;
    row.unsolicited = counts.victim_got;
    row.injected = counts.injected;
    {
      absl::MutexLock lock(&events_mu_);
      row.hijacked = hijacked_;
      row.contests = contests_;
    }
    row.outage_ms = std::max(Outage(counts.callee_heard, caller_, end), Outage(counts.caller_heard, callee_, end));
    auto heard_in_last_second = [end](const std::vector<absl::Time>& heard) {
      int n = 0;
      for (absl::Time t : heard) n += t >= end - absl::Seconds(1) - absl::Milliseconds(100);
      return n;
    };
    row.recovered = heard_in_last_second(counts.caller_heard) >= 40 && heard_in_last_second(counts.callee_heard) >= 40;
    return row;
  }

 private:
  std::unique_ptr<UdpPeer> Checked(std::unique_ptr<UdpPeer> peer) {
    if (peer->port() == 0) broken_ = true;
    return peer;
  }
  void StartWatch() {
    watch_context_ = std::make_unique<grpc::ClientContext>();
    v1::WatchSessionsRequest request;
    request.set_call_id(call_id_);
    watch_ = stub_.WatchSessions(watch_context_.get(), request);
    watch_->WaitForInitialMetadata();
    watch_thread_ = std::thread([this] {
      v1::WatchSessionsResponse event;
      while (watch_->Read(&event)) {
        absl::MutexLock lock(&events_mu_);
        if (event.type() == v1::SESSION_EVENT_TYPE_LATCH_CONTESTED) ++contests_;
        for (const v1::Leg* leg : {&event.session().caller(), &event.session().callee()}) {
          if (!leg->stats().has_latched_source()) continue;
          const std::string source = absl::StrCat(leg->stats().latched_source().ip(), ":", leg->stats().latched_source().port());
          if (attacker_addresses_.contains(source)) hijacked_ = true;
        }
      }
    });
  }
  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    if (watch_context_) {
      watch_context_->TryCancel();
      if (watch_thread_.joinable()) watch_thread_.join();
      watch_.reset();
      watch_context_.reset();
    }
    if (!session_id_.empty()) {
      v1::ReleaseSessionRequest release;
      release.set_session_id(session_id_);
      v1::ReleaseSessionResponse released;
      grpc::ClientContext context;
      (void)stub_.ReleaseSession(&context, release, &released);
      session_id_.clear();
    }
  }
  // The longest time `heard` (media from `sender`) stopped while `sender` was talking, counting
  // from 300 ms into each talk spurt (the time to latch).
  static int64_t Outage(const std::vector<absl::Time>& heard, Phone& sender, absl::Time end) {
    std::vector<std::pair<absl::Time, absl::Time>> talk;
    {
      absl::MutexLock lock(&sender.mu);
      talk = sender.talk;
    }
    int64_t worst = 0;
    for (auto [from, to] : talk) {
      from += absl::Milliseconds(300);
      to = std::min(to, end);
      absl::Time last = from;
      for (absl::Time t : heard) {
        if (t <= from || t > to) continue;
        worst = std::max(worst, absl::ToInt64Milliseconds(t - last));
        last = t;
      }
      if (to > last) worst = std::max(worst, absl::ToInt64Milliseconds(to - last));
    }
    return std::max<int64_t>(0, worst - 20);
  }

  v1::NatControlService::Stub& stub_;
  const testing::LocalRelay& relay_;
  const v1::LatchingMode mode_;
  const std::string call_id_;
  std::string session_id_;
  absl::Time answered_at_;  // written once, before answered_ is notified
  absl::Notification answered_;
  bool broken_ = false;
  Phone caller_, callee_;
  std::vector<std::unique_ptr<UdpPeer>> retired_, attackers_, victims_;
  absl::Mutex events_mu_;
  std::set<std::string> attacker_addresses_ ABSL_GUARDED_BY(events_mu_);
  Receiver receiver_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::unique_ptr<grpc::ClientContext> watch_context_;
  std::unique_ptr<grpc::ClientReader<v1::WatchSessionsResponse>> watch_;
  std::thread watch_thread_;
  bool hijacked_ ABSL_GUARDED_BY(events_mu_) = false;
  int contests_ ABSL_GUARDED_BY(events_mu_) = 0;
};

// ------------------------------------------------------------------------------------------------
// Attack patterns

// Sends `victim`'s next packet (SSRC, sequence, timestamp) from `socket` to `port` at `pps` until
// `until_ms` after the answer.
void Mirror(Run& run, UdpPeer* socket, Phone& victim, uint16_t port, int pps, int until_ms) {
  run.Background([&run, socket, &victim, port, pps, until_ms](const std::atomic<bool>& stop) {
    const absl::Time until = run.answered_at() + absl::Milliseconds(until_ms);
    uint32_t seq = 0;
    for (absl::Time next = absl::Now(); !stop && next < until; next = std::max(next + absl::Seconds(1) / pps, absl::Now())) {
      socket->SendTo(port, victim.Forged(&seq));
      absl::SleepFor(next + absl::Seconds(1) / pps - absl::Now());
    }
  });
}

struct Spray {
  std::string ip = kOtherHost;
  int pps_per_port = 50;
  int source_ports = 1;      // > 1: a new source port for each packet, round robin
  Phone* victim = nullptr;   // set: the victim's SSRC and sequence, else its own stream per port
  int from_ms = -1;          // negative: from the offer on (the ports exist from then)
  int until_ms = kAttackEndMs;
};

// In-sequence RTP to every port of the relay's range, `pps_per_port` each.
void SprayRange(Run& run, const Spray& spray) {
  std::vector<UdpPeer*> sockets;
  for (int i = 0; i < spray.source_ports; ++i) sockets.push_back(run.AttackerSocket(spray.ip));
  run.Background([&run, spray, sockets](const std::atomic<bool>& stop) {
    const absl::Duration round = absl::Seconds(1) / spray.pps_per_port;
    // A negative start: at once (from the offer on); else that long after the answer.
    while (!stop && spray.from_ms >= 0 && absl::Now() < run.answered_at() + absl::Milliseconds(spray.from_ms)) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    size_t next_socket = 0;
    uint32_t victim_seq = 0;
    for (uint32_t seq = 5000; !stop && absl::Now() < run.answered_at() + absl::Milliseconds(spray.until_ms); ++seq) {
      const absl::Time start = absl::Now();
      // One sequence number per round: every port sees an in-sequence stream.
      const std::vector<uint8_t> forged = spray.victim ? spray.victim->Forged(&victim_seq) : std::vector<uint8_t>{};
      for (int port = run.port_min(); port <= run.port_max(); ++port) {
        const std::vector<uint8_t> packet =
            spray.victim ? forged : Rtp(0x5151 + port, static_cast<uint16_t>(seq), seq * 160, kAttackerMark);
        sockets[next_socket++ % sockets.size()]->SendTo(static_cast<uint16_t>(port), packet);
      }
      absl::SleepFor(start + round - absl::Now());
    }
  });
}

// ------------------------------------------------------------------------------------------------
// Scenarios

struct Scenario {
  std::string name;
  std::string what;
  std::function<void(Run&)> play = [](Run&) {};           // after the answer; the phones talk
  std::function<void(Run&)> before_answer = [](Run&) {};  // while the call rings
  bool legit_move = false;  // a legitimate change: the outage must stay under 1 s
  // Modes in which the threat model documents this as a limit.
  std::set<v1::LatchingMode> limits;

  Scenario& Play(std::function<void(Run&)> f) { play = std::move(f); return *this; }
  Scenario& BeforeAnswer(std::function<void(Run&)> f) { before_answer = std::move(f); return *this; }
  Scenario& LegitMove() { legit_move = true; return *this; }
  Scenario& LimitIn(std::set<v1::LatchingMode> modes) { limits = std::move(modes); return *this; }
};

Scenario Make(std::string name, std::string what) {
  Scenario s;
  s.name = std::move(name);
  s.what = std::move(what);
  return s;
}

// The on-path attacker: `ip` continues both phones' streams (or only the caller's) at `pps`.
std::function<void(Run&)> OnPath(const std::string& ip, int pps, bool both_legs, bool caller_pauses) {
  return [ip, pps, both_legs, caller_pauses](Run& run) {
    UdpPeer* attacker = run.AttackerSocket(ip);
    run.At(kAttackStartMs);
    if (caller_pauses) run.caller().SetTalking(false);
    Mirror(run, attacker, run.caller(), run.caller().relay_port, pps, kAttackEndMs);
    if (both_legs) Mirror(run, attacker, run.callee(), run.callee().relay_port, pps, kAttackEndMs);
    run.At(kAttackEndMs);
    run.caller().SetTalking(true);
  };
}

std::vector<Scenario> Scenarios() {
  using v1::LATCHING_MODE_FIRST_PACKET;
  using v1::LATCHING_MODE_HEURISTIC;
  using v1::LATCHING_MODE_SIGNALING_SOURCE;
  using v1::LATCHING_MODE_STRICT;
  const std::set<v1::LatchingMode> learning = {LATCHING_MODE_FIRST_PACKET, LATCHING_MODE_SIGNALING_SOURCE,
                                               LATCHING_MODE_HEURISTIC};
  std::vector<Scenario> out;
  out.push_back(Make("onpath-talking", "another host, the phones' SSRC and next sequence, 120 pps at each leg")
                    .Play(OnPath(kOtherHost, 120, true, false)));
  out.push_back(Make("cgnat-onpath-talking", "the same from the phones' own IP (a neighbour behind their CGNAT)")
                    .Play(OnPath(kPhonesIp, 120, true, false)));
  out.push_back(Make("onpath-silent", "the caller pauses 2.5 s (DTX, no RTCP); another host continues its stream")
                    .Play(OnPath(kOtherHost, 50, false, true))
                    .LimitIn({LATCHING_MODE_FIRST_PACKET}));
  out.push_back(Make("cgnat-onpath-silent", "the same from the phones' own IP: it looks like a NAT rebinding")
                    .Play(OnPath(kPhonesIp, 50, false, true))
                    .LimitIn(learning));
  out.push_back(Make("hold-cgnat-onpath", "the caller is on hold (a=inactive) 2.5 s; a neighbour continues its stream")
                    .Play([](Run& run) {
                      UdpPeer* attacker = run.AttackerSocket(kPhonesIp);
                      run.At(kAttackStartMs);
                      run.caller().SetTalking(false);
                      run.Reinvite(v1::SIDE_CALLER, run.CallerSdp("a=inactive\r\n"));
                      Mirror(run, attacker, run.caller(), run.caller().relay_port, 50, kAttackEndMs);
                      run.At(kAttackEndMs);
                      run.Reinvite(v1::SIDE_CALLER, run.CallerSdp());
                      run.caller().SetTalking(true);
                    }));
  out.push_back(Make("spray-50pps", "another host sprays the whole port range from the offer on, 50 pps per port")
                    .BeforeAnswer([](Run& run) { SprayRange(run, {}); })
                    .LimitIn({LATCHING_MODE_FIRST_PACKET}));
  out.push_back(Make("spray-1pps", "the same at 1 packet/s per port").BeforeAnswer([](Run& run) {
    Spray spray;
    spray.pps_per_port = 1;
    SprayRange(run, spray);
  }));
  out.push_back(Make("spray-many-ports", "the same at 50 pps per port from 16 source ports in turn").BeforeAnswer([](Run& run) {
    Spray spray;
    spray.source_ports = 16;
    SprayRange(run, spray);
  }));
  out.push_back(Make("cgnat-spray-50pps", "a neighbour on the phones' IP sprays the range from the offer on")
                    .BeforeAnswer([](Run& run) {
                      Spray spray;
                      spray.ip = kPhonesIp;
                      SprayRange(run, spray);
                    })
                    .LimitIn(learning));
  out.push_back(Make("spray-victim-ssrc", "another host sprays the range with the caller's SSRC and sequence").Play([](Run& run) {
    Spray spray;
    spray.victim = &run.caller();
    spray.from_ms = kAttackStartMs;
    SprayRange(run, spray);
  }));
  out.push_back(Make("reinvite-under-attack", "re-INVITEs from both sides while another host continues the caller's stream")
                    .Play([](Run& run) {
                      UdpPeer* attacker = run.AttackerSocket(kOtherHost);
                      run.At(kAttackStartMs);
                      Mirror(run, attacker, run.caller(), run.caller().relay_port, 120, kAttackEndMs);
                      run.At(1'500);
                      run.Reinvite(v1::SIDE_CALLER, run.strict() ? run.CallerSdp("a=sendrecv\r\n")
                                                                  : testing::AudioSdp("192.168.1.21", 4000));
                      run.At(2'000);
                      run.Reinvite(v1::SIDE_CALLEE, testing::AudioSdp(kPhonesIp, run.callee().socket->port(), "a=sendrecv\r\n"));
                    }));
  out.push_back(Make("nat-rebinding", "legitimate: the caller's NAT maps it to a new port mid-call, no signalling")
                    .Play([](Run& run) {
                      run.At(1'500);
                      run.MoveCaller(kPhonesIp);
                    })
                    .LegitMove()
                    .LimitIn({LATCHING_MODE_STRICT}));
  out.push_back(Make("handover", "legitimate: Wi-Fi to LTE, a new IP and a re-INVITE from it")
                    .Play([](Run& run) {
                      run.At(1'500);
                      run.MoveCaller("127.0.0.2");
                      run.Reinvite(v1::SIDE_CALLER,
                                   run.strict() ? testing::AudioSdp("127.0.0.2", run.caller_port()) : testing::AudioSdp("10.1.1.1", 4000),
                                   "127.0.0.2");
                    })
                    .LegitMove());
  return out;
}

// Before-latch media aimed at a third party: the caller's SDP names a victim's address and the
// caller never sends; the callee talks for 8 s. Consent (5 s) bounds it.
Row MohAtVictim(v1::NatControlService::Stub& stub, const testing::LocalRelay& relay, v1::LatchingMode mode) {
  Run run(stub, relay, mode, absl::StrCat("moh-", v1::LatchingMode_Name(mode), "@attack"));
  UdpPeer* victim = run.VictimSocket();
  if (!run.Offer(testing::AudioSdp("127.0.0.99", victim->port())) || !run.Answer()) return {};
  run.callee().SetTalking(true);
  run.Background([&run](const std::atomic<bool>& stop) {
    for (absl::Time next = absl::Now(); !stop; next += absl::Milliseconds(20)) {
      run.callee().SendOne();
      absl::SleepFor(next + absl::Milliseconds(20) - absl::Now());
    }
  });
  run.At(8'000);
  Row row = run.Finish();
  row.recovered = true;  // nothing to recover: the caller never existed
  return row;
}

const char* Verdict(const Row& row, bool must_be_safe, bool legit_move) {
  if (row.bleed < 0) return "FAIL";  // the run could not be set up
  const bool safe = row.bleed == 0 && row.injected <= 4 && !row.hijacked && row.recovered &&
                    (!legit_move || row.outage_ms <= 1'000);
  if (safe) return "safe";
  return must_be_safe ? "FAIL" : "limit";
}

// 0 when the relay may run with the kernel fast path here (inside a namespace of our own), else 77
// after saying why.
int EnterFastPathLab() {
  std::string why;
  if (::geteuid() != 0) {
    why = "the kernel fast path needs root";
  } else if (why = testing::EnterPrivateNetworkNamespace(); why.empty()) {
    if (auto probe = relay::RelayProgram::Load(); !probe.ok()) why = "bpf() refused here: " + probe.status().ToString();
  }
  if (why.empty()) return 0;
  std::printf("SKIPPED: %s\n", why.c_str());
  return 77;
}

int Main() {
  std::vector<std::string> relay_flags = {"--threads=2"};
  if (const std::string fast_path = absl::GetFlag(FLAGS_fast_path); fast_path != "off") {
    if (fast_path != "tc") {
      std::fprintf(stderr, "--fast_path: off or tc\n");
      return 2;
    }
    if (const int skip = EnterFastPathLab(); skip != 0) return skip;
    relay_flags.push_back("--fast_path=tc");
  }
  auto control = testing::LocalControl::Start("worker_heartbeat_interval { nanos: 200000000 }");
  if (!control.ok()) {
    std::fprintf(stderr, "control: %s\n", control.status().ToString().c_str());
    return 2;
  }
  auto relay = testing::LocalRelay::Start(**control, "relay-attacks", relay_flags, kRelayPorts);
  if (!relay.ok()) {
    std::fprintf(stderr, "relay: %s\n", relay.status().ToString().c_str());
    return 2;
  }
  auto stub = (*control)->Stub();
  if (!testing::WaitForWorker(*stub, "relay-attacks", absl::Seconds(10))) return 2;

  std::set<std::string> only;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_scenarios), ',', absl::SkipEmpty())) only.emplace(s);
  std::vector<v1::LatchingMode> modes;
  for (absl::string_view m : absl::StrSplit(absl::GetFlag(FLAGS_modes), ',', absl::SkipEmpty())) {
    v1::LatchingMode mode;
    if (!v1::LatchingMode_Parse(absl::StrCat("LATCHING_MODE_", m), &mode)) {
      std::fprintf(stderr, "unknown mode %s\n", std::string(m).c_str());
      return 2;
    }
    modes.push_back(mode);
  }

  std::printf("| scenario | mode | bleed | injected | hijacked | outage_ms | recovered | contests | verdict |\n");
  std::printf("|---|---|---:|---:|---|---:|---|---:|---|\n");
  int failures = 0;
  int n = 0;
  for (const Scenario& scenario : Scenarios()) {
    if (!only.empty() && !only.contains(scenario.name)) continue;
    for (v1::LatchingMode mode : modes) {
      const std::string mode_name = v1::LatchingMode_Name(mode).substr(sizeof("LATCHING_MODE_") - 1);
      Run run(*stub, **relay, mode, absl::StrCat(scenario.name, "-", mode_name, "-", ++n, "@attack"));
      if (!run.Offer(run.CallerSdp())) {
        std::printf("| %s | %s | offer failed |\n", scenario.name.c_str(), mode_name.c_str());
        ++failures;
        continue;
      }
      scenario.before_answer(run);
      absl::SleepFor(absl::Milliseconds(500));  // the call rings
      if (!run.Answer()) {
        ++failures;
        continue;
      }
      run.At(20);
      run.StartPhones();
      scenario.play(run);
      run.At(kEndMs);
      const Row row = run.Finish();
      const char* verdict = Verdict(row, !scenario.limits.contains(mode), scenario.legit_move);
      failures += std::string(verdict) == "FAIL";
      std::printf("| %s | %s | %d | %d | %s | %lld | %s | %d | %s |\n", scenario.name.c_str(), mode_name.c_str(),
                  row.bleed, row.injected, row.hijacked ? "yes" : "no", static_cast<long long>(row.outage_ms),
                  row.recovered ? "yes" : "no", row.contests, verdict);
      std::fflush(stdout);
    }
  }
  if (only.empty() || only.contains("moh-at-victim")) {
    for (v1::LatchingMode mode : modes) {
      const std::string mode_name = v1::LatchingMode_Name(mode).substr(sizeof("LATCHING_MODE_") - 1);
      const Row row = MohAtVictim(*stub, **relay, mode);
      // 5 s of consent at 50 packets/s, and nothing after it.
      const bool bounded = row.unsolicited > 0 && row.unsolicited <= 260;
      failures += !bounded;
      std::printf("| moh-at-victim | %s | %d to the victim | 0 | no | - | - | %d | %s |\n", mode_name.c_str(),
                  row.unsolicited, row.contests, bounded ? "safe" : "FAIL");
    }
  }
  std::printf("\n%d cells failed\n\nscenarios:\n", failures);
  for (const Scenario& scenario : Scenarios()) {
    if (only.empty() || only.contains(scenario.name)) std::printf("  %s: %s\n", scenario.name.c_str(), scenario.what.c_str());
  }
  std::printf("relay drops: ");
  for (absl::string_view line : absl::StrSplit((*relay)->Metrics(), '\n')) {
    if (absl::StartsWith(line, "latchkey_relay_drops_total{") || absl::StartsWith(line, "latchkey_relay_latch_contests_total") ||
        absl::StartsWith(line, "latchkey_relay_packets_total") || absl::StartsWith(line, "latchkey_relay_fast_path")) {
      std::printf("%s; ", std::string(line).c_str());
    }
  }
  std::printf("\n");
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace latchkey

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return latchkey::Main();
}
