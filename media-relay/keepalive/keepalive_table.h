#pragma once
// The bindings one worker keeps alive, their schedule and their open transactions. No sockets and no
// clock of its own (the caller passes `now`), so the whole state machine is unit-testable.
//
// Schedule: a hashed timing wheel of 10 ms ticks. A binding's first keepalive is due at a phase
// derived from its id within one interval, so a million bindings arriving at once (a control
// restart, a rebalance) spread evenly over the interval instead of firing in one second, and the
// same binding keeps the same phase on whichever worker holds it. Later keepalives are due one
// interval after the previous *due* time, so lateness does not accumulate.
//
// Matching: every OPTIONS carries a branch "z9hG4bKlk" + slot + incarnation + CSeq (hex); an answer
// is matched from its top Via branch alone, without a lookup table per transaction. The incarnation
// tells a reused slot from its previous occupant.
//
// Liveness: any response to the open transaction (any status) means alive. A keepalive that comes
// due while the previous one is unanswered is a miss; `failure_threshold` consecutive misses make the
// binding UNREACHABLE (one event); an answer later makes it REACHABLE (one event). CRLF keepalives
// expect no answer and never miss.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/net/socket_address.h"
#include "latchkey/v1/worker.pb.h"

namespace latchkey::relay {

struct KeepaliveEventOut {
  std::string binding_id;
  v1::Reachability reachability = v1::REACHABILITY_UNSPECIFIED;
  int status_code = 0;
  absl::Duration rtt;
  absl::Time time;
};

// One keepalive to send now.
struct DueKeepalive {
  uint32_t slot = 0;
  net::SocketAddress destination;
  net::SocketAddress source;  // the registrar address (REGISTRAR_SOURCE mode)
  v1::KeepaliveMethod method = v1::KEEPALIVE_METHOD_OPTIONS;
  absl::Duration lag;  // how late it is
};

enum class ResponseMatch : uint8_t {
  kMatched,  // answered the open transaction
  kLate,     // answered an earlier keepalive of the binding (already counted as a miss): alive all the same
  kForeign,  // not a Latchkey keepalive branch (the registrar's own traffic, seen by a raw socket)
  kUnknown,  // our branch format, but no such open transaction (binding removed, duplicate answer)
};

class KeepaliveTable {
 public:
  static constexpr absl::Duration kTick = absl::Milliseconds(10);
  static constexpr uint32_t kWheelSlots = 8192;  // 81.92 s per turn; longer intervals take extra turns

  explicit KeepaliveTable(absl::Time start);

  // Control's changes. Upsert validates the target (INVALID_ARGUMENT naming the field).
  absl::Status Upsert(const v1::KeepaliveTarget& target, absl::Time now);
  void Remove(absl::string_view binding_id);
  // A complete set: BeginReplace, Upsert each, EndReplace drops the targets not upserted since.
  void BeginReplace();
  size_t EndReplace();
  size_t size() const { return index_.size(); }
  bool Contains(absl::string_view binding_id) const { return index_.contains(binding_id); }

  // Keepalives due at `now`, at most `limit` (the rest stay due for the next call), in due order per
  // tick. Records misses and appends UNREACHABLE events. Each returned keepalive is now the open
  // transaction of its binding.
  void CollectDue(absl::Time now, size_t limit, std::vector<DueKeepalive>* due, std::vector<KeepaliveEventOut>* events);
  // True when a tick at or before `now` has not been fully collected.
  bool Behind(absl::Time now) const;
  // Writes the open keepalive of `slot` (OPTIONS, or CRLFCRLF) into `out`. `via_host`:`via_port` is
  // where it is sent from (the registrar address, or the worker's own socket; IPv6 bracketed).
  // Returns the bytes written, 0 if it does not fit.
  size_t WriteRequest(uint32_t slot, absl::string_view via_host, uint16_t via_port, char* out, size_t capacity) const;

  // A SIP response with its top Via branch and status code, from `source`: only the binding's own
  // address can answer for it (a guessed branch from elsewhere proves nothing).
  ResponseMatch OnResponse(absl::string_view branch, int status_code, const net::SocketAddress& source,
                           absl::Time now, absl::Duration* rtt, std::vector<KeepaliveEventOut>* events);
  // The keepalive CollectDue returned for `slot` was not sent after all: it must not count as a miss.
  void Abandon(uint32_t slot);

  // Consecutive misses and reachability of a binding (tests, GetRelaySession-style queries).
  struct State {
    uint32_t misses = 0;
    v1::Reachability reachability = v1::REACHABILITY_UNSPECIFIED;
    absl::Time next_due;
  };
  std::optional<State> StateOf(absl::string_view binding_id) const;
  uint64_t misses_total() const { return misses_total_; }

 private:
  struct Record {
    std::string binding_id;
    std::string contact_uri;
    net::SocketAddress destination;
    net::SocketAddress registrar;
    uint64_t due_tick = 0;
    int64_t sent_at_us = 0;  // open transaction; 0 = none
    uint32_t interval_ticks = 3000;
    uint32_t incarnation = 0;
    uint32_t cseq = 0;
    uint32_t generation = 0;  // of the complete set that last named it
    uint8_t method = v1::KEEPALIVE_METHOD_OPTIONS;
    uint8_t threshold = 3;
    uint8_t misses = 0;  // consecutive, saturating
    uint8_t reachability = v1::REACHABILITY_UNSPECIFIED;
    bool live = false;
  };
  struct WheelEntry {
    uint32_t slot;
    uint32_t incarnation;
  };

  uint64_t TickOf(absl::Time t) const;
  absl::Time TimeOfTick(uint64_t tick) const;
  // Puts `slot` on the wheel at its due_tick; `previous_due` is where it was (0: nowhere).
  void Schedule(uint32_t slot, uint64_t previous_due);
  uint64_t FirstDue(const Record& record, uint64_t now_tick) const;

  absl::Time start_;
  std::vector<Record> records_;
  std::vector<uint32_t> free_slots_;
  absl::flat_hash_map<std::string, uint32_t> index_;
  std::vector<std::vector<WheelEntry>> wheel_;
  uint64_t next_tick_ = 0;    // the first tick not fully collected
  size_t next_entry_ = 0;     // position within that tick's wheel slot
  uint32_t next_incarnation_ = 1;
  uint32_t generation_ = 0;
  uint64_t misses_total_ = 0;
};

}  // namespace latchkey::relay
