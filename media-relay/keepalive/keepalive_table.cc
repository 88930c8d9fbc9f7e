#include "media-relay/keepalive/keepalive_table.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/hash/stable_hash.h"
#include "common/sip/options.h"
#include "common/time/proto_time.h"

namespace latchkey::relay {
namespace {

constexpr absl::string_view kBranchPrefix = "z9hG4bKlk";
constexpr absl::Duration kMinInterval = absl::Seconds(1);
constexpr absl::Duration kMaxInterval = absl::Hours(1);
constexpr size_t kMaxContactUri = 512;

// 8 lowercase hex digits.
void Hex8(uint32_t value, char* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int i = 7; i >= 0; --i) {
    out[i] = kDigits[value & 0xf];
    value >>= 4;
  }
}

bool ParseHex8(absl::string_view text, uint32_t* out) {
  if (text.size() != 8) return false;
  uint32_t value = 0;
  for (char c : text) {
    value <<= 4;
    if (c >= '0' && c <= '9') value |= c - '0';
    else if (c >= 'a' && c <= 'f') value |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') value |= c - 'A' + 10;
    else return false;
  }
  *out = value;
  return true;
}

}  // namespace

KeepaliveTable::KeepaliveTable(absl::Time start) : start_(start), wheel_(kWheelSlots) {
  next_tick_ = TickOf(start);
  // Branches carry the incarnation: random from the start, so an answer to an earlier run's
  // keepalive (or a guess) does not match this run's records.
  next_incarnation_ = static_cast<uint32_t>(absl::Uniform<uint32_t>(absl::BitGen()) | 1u);
}

// Ticks count from the Unix epoch, so a binding's phase (below) is the same on every worker.
uint64_t KeepaliveTable::TickOf(absl::Time t) const {
  return static_cast<uint64_t>(std::max<int64_t>(0, absl::ToUnixMillis(t) / absl::ToInt64Milliseconds(kTick)));
}

absl::Time KeepaliveTable::TimeOfTick(uint64_t tick) const {
  return absl::FromUnixMillis(static_cast<int64_t>(tick) * absl::ToInt64Milliseconds(kTick));
}

uint64_t KeepaliveTable::FirstDue(const Record& record, uint64_t now_tick) const {
  const uint64_t interval = record.interval_ticks;
  const uint64_t phase = StableHash(record.binding_id) % interval;
  // Never a tick already collected: its wheel slot comes round again only a whole turn later.
  const uint64_t from = std::max(now_tick, next_tick_);
  return from + (phase + interval - from % interval) % interval;
}

void KeepaliveTable::Schedule(uint32_t slot, uint64_t previous_due) {
  const Record& record = records_[slot];
  // An entry in the same wheel slot stays valid for the new due tick (entries are checked against
  // the record when their slot comes round): pushing another would ping twice.
  // Except for the tick being collected: its entry may be behind the cursor already.
  if (previous_due != 0 && previous_due % kWheelSlots == record.due_tick % kWheelSlots &&
      record.due_tick != next_tick_) {
    return;
  }
  wheel_[record.due_tick % kWheelSlots].push_back({slot, record.incarnation});
}

absl::Status KeepaliveTable::Upsert(const v1::KeepaliveTarget& target, absl::Time now) {
  if (target.binding_id().empty() || target.binding_id().size() > 128) {
    return absl::InvalidArgumentError("binding_id: required, at most 128 bytes");
  }
  if (target.contact_uri().empty() || target.contact_uri().size() > kMaxContactUri) {
    return absl::InvalidArgumentError(absl::StrCat("contact_uri: required, at most ", kMaxContactUri, " bytes"));
  }
  for (char c : target.contact_uri()) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '<' || c == '>') {
      return absl::InvalidArgumentError("contact_uri: must be a bare URI without spaces, controls or <>");
    }
  }
  auto destination = net::FromProto(target.destination(), "destination");
  if (!destination.ok()) return destination.status();
  net::SocketAddress registrar;
  if (target.has_registrar()) {
    auto parsed = net::FromProto(target.registrar(), "registrar");
    if (!parsed.ok()) return parsed.status();
    registrar = *parsed;
  }
  if (target.method() != v1::KEEPALIVE_METHOD_OPTIONS && target.method() != v1::KEEPALIVE_METHOD_CRLF) {
    return absl::InvalidArgumentError("method: must be OPTIONS or CRLF");
  }
  const absl::Duration interval = FromProto(target.interval());
  if (interval < kMinInterval || interval > kMaxInterval) {
    return absl::InvalidArgumentError("interval: must be 1s-1h");
  }
  if (target.failure_threshold() < 1 || target.failure_threshold() > 100) {
    return absl::InvalidArgumentError("failure_threshold: must be 1-100");
  }

  const uint64_t now_tick = TickOf(now);
  const uint32_t interval_ticks = static_cast<uint32_t>(interval / kTick);
  auto [it, inserted] = index_.try_emplace(target.binding_id(), 0);
  if (inserted) {
    uint32_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = static_cast<uint32_t>(records_.size());
      records_.emplace_back();
    }
    it->second = slot;
    Record& record = records_[slot];
    record = Record{};
    record.binding_id = target.binding_id();
    record.live = true;
    record.incarnation = next_incarnation_++;
    // Control's view: taking over an unreachable binding, the first answer must say it is back.
    if (target.reachability() == v1::REACHABILITY_UNREACHABLE) record.reachability = v1::REACHABILITY_UNREACHABLE;
    record.interval_ticks = interval_ticks;
    record.due_tick = FirstDue(record, now_tick);
  }
  const uint32_t slot = it->second;
  Record& record = records_[slot];
  if (record.contact_uri != target.contact_uri()) record.contact_uri = target.contact_uri();
  record.destination = *destination;
  record.registrar = registrar;
  record.method = static_cast<uint8_t>(target.method());
  record.threshold = static_cast<uint8_t>(target.failure_threshold());
  record.generation = generation_;
  if (inserted) {
    Schedule(slot, 0);
  } else if (record.interval_ticks != interval_ticks) {
    const uint64_t previous = record.due_tick;
    record.interval_ticks = interval_ticks;
    record.due_tick = FirstDue(record, now_tick);
    Schedule(slot, previous);
  }
  return absl::OkStatus();
}

void KeepaliveTable::Remove(absl::string_view binding_id) {
  auto it = index_.find(binding_id);
  if (it == index_.end()) return;
  Record& record = records_[it->second];
  record.live = false;
  record.binding_id.clear();
  record.binding_id.shrink_to_fit();
  record.contact_uri.clear();
  record.contact_uri.shrink_to_fit();
  free_slots_.push_back(it->second);
  index_.erase(it);  // the wheel entry goes when its slot comes round (incarnation no longer matches)
}

void KeepaliveTable::BeginReplace() { ++generation_; }

size_t KeepaliveTable::EndReplace() {
  std::vector<std::string> stale;
  for (const auto& [id, slot] : index_) {
    if (records_[slot].generation != generation_) stale.push_back(id);
  }
  for (const std::string& id : stale) Remove(id);
  return stale.size();
}

bool KeepaliveTable::Behind(absl::Time now) const { return next_tick_ <= TickOf(now); }

void KeepaliveTable::CollectDue(absl::Time now, size_t limit, std::vector<DueKeepalive>* due,
                                std::vector<KeepaliveEventOut>* events) {
  const uint64_t now_tick = TickOf(now);
  const int64_t now_us = absl::ToUnixMicros(now);
  size_t taken = 0;
  while (next_tick_ <= now_tick && taken < limit) {
    const uint32_t wheel_slot = static_cast<uint32_t>(next_tick_ % kWheelSlots);
    std::vector<WheelEntry>& bucket = wheel_[wheel_slot];
    while (next_entry_ < bucket.size() && taken < limit) {
      const WheelEntry entry = bucket[next_entry_++];
      Record& record = records_[entry.slot];
      if (!record.live || record.incarnation != entry.incarnation || record.due_tick != next_tick_) continue;
      if (record.method == v1::KEEPALIVE_METHOD_OPTIONS && record.sent_at_us != 0) {
        ++misses_total_;
        if (record.misses < 255) ++record.misses;
        if (record.misses >= record.threshold && record.reachability != v1::REACHABILITY_UNREACHABLE) {
          record.reachability = v1::REACHABILITY_UNREACHABLE;
          events->push_back({record.binding_id, v1::REACHABILITY_UNREACHABLE, 0, absl::ZeroDuration(), now});
        }
      }
      ++record.cseq;
      record.sent_at_us = now_us;
      due->push_back({entry.slot, record.destination, record.registrar, static_cast<v1::KeepaliveMethod>(record.method),
                      now - TimeOfTick(record.due_tick)});
      ++taken;
      // Next one interval after this due time; after a long stall, the next phase point ahead of now.
      const uint64_t previous = record.due_tick;
      record.due_tick += record.interval_ticks;
      if (record.due_tick <= now_tick) {
        record.due_tick += (now_tick - record.due_tick) / record.interval_ticks * record.interval_ticks + record.interval_ticks;
      }
      Schedule(entry.slot, previous);
    }
    if (next_entry_ < bucket.size()) break;  // limit reached mid-tick
    // Keep only entries that are still valid for a later turn of the wheel.
    bucket.erase(std::remove_if(bucket.begin(), bucket.end(),
                                [&](const WheelEntry& e) {
                                  const Record& r = records_[e.slot];
                                  return !r.live || r.incarnation != e.incarnation || r.due_tick <= next_tick_ ||
                                         r.due_tick % kWheelSlots != wheel_slot;
                                }),
                 bucket.end());
    ++next_tick_;
    next_entry_ = 0;
  }
}

size_t KeepaliveTable::WriteRequest(uint32_t slot, absl::string_view via_host, uint16_t via_port, char* out,
                                    size_t capacity) const {
  const Record& record = records_[slot];
  if (record.method == v1::KEEPALIVE_METHOD_CRLF) {
    if (capacity < 4) return 0;
    std::memcpy(out, "\r\n\r\n", 4);
    return 4;
  }
  char branch[kBranchPrefix.size() + 24];
  std::memcpy(branch, kBranchPrefix.data(), kBranchPrefix.size());
  Hex8(slot, branch + kBranchPrefix.size());
  Hex8(record.incarnation, branch + kBranchPrefix.size() + 8);
  Hex8(record.cseq, branch + kBranchPrefix.size() + 16);
  // Call-ID: new per keepalive (out of dialog), unique across workers by slot/incarnation/cseq + host.
  char call_id[96];
  const int call_id_length =
      std::snprintf(call_id, sizeof(call_id), "lk%.24s@%.*s", branch + kBranchPrefix.size(),
                    static_cast<int>(std::min<size_t>(via_host.size(), 64)), via_host.data());
  char tag[8];
  Hex8(record.incarnation, tag);
  char from_uri[96];
  const int from_length = std::snprintf(from_uri, sizeof(from_uri), "sip:latchkey@%.*s",
                                        static_cast<int>(std::min<size_t>(via_host.size(), 64)), via_host.data());
  sip::OptionsRequest request;
  request.request_uri = record.contact_uri;
  request.to_uri = record.contact_uri;
  request.from_uri = absl::string_view(from_uri, static_cast<size_t>(from_length));
  request.from_tag = absl::string_view(tag, sizeof(tag));
  request.call_id = absl::string_view(call_id, static_cast<size_t>(call_id_length));
  request.branch = absl::string_view(branch, sizeof(branch));
  request.via_host = via_host;
  request.via_port = via_port;
  request.cseq = record.cseq;
  request.user_agent = "latchkey-relay";
  return sip::WriteOptions(request, out, capacity);
}

void KeepaliveTable::Abandon(uint32_t slot) {
  if (slot < records_.size()) records_[slot].sent_at_us = 0;
}

ResponseMatch KeepaliveTable::OnResponse(absl::string_view branch, int status_code, const net::SocketAddress& source,
                                         absl::Time now, absl::Duration* rtt, std::vector<KeepaliveEventOut>* events) {
  if (!absl::StartsWith(branch, kBranchPrefix) || branch.size() != kBranchPrefix.size() + 24) {
    return ResponseMatch::kForeign;
  }
  branch.remove_prefix(kBranchPrefix.size());
  uint32_t slot, incarnation, cseq;
  if (!ParseHex8(branch.substr(0, 8), &slot) || !ParseHex8(branch.substr(8, 8), &incarnation) ||
      !ParseHex8(branch.substr(16, 8), &cseq)) {
    return ResponseMatch::kForeign;
  }
  if (slot >= records_.size()) return ResponseMatch::kUnknown;
  Record& record = records_[slot];
  if (!record.live || record.incarnation != incarnation) return ResponseMatch::kUnknown;
  if (source.port != record.destination.port || source.ip.Unmapped() != record.destination.ip.Unmapped()) {
    return ResponseMatch::kUnknown;
  }
  ResponseMatch match;
  if (cseq == record.cseq && record.sent_at_us != 0) {
    match = ResponseMatch::kMatched;
    *rtt = absl::Microseconds(absl::ToUnixMicros(now) - record.sent_at_us);
    record.sent_at_us = 0;
  } else if (cseq < record.cseq && record.cseq - cseq <= 3u) {
    match = ResponseMatch::kLate;  // slower than the interval, but alive
  } else {
    return ResponseMatch::kUnknown;
  }
  record.misses = 0;
  if (record.reachability == v1::REACHABILITY_UNREACHABLE) {
    events->push_back({record.binding_id, v1::REACHABILITY_REACHABLE, status_code,
                       match == ResponseMatch::kMatched ? *rtt : absl::ZeroDuration(), now});
  }
  record.reachability = v1::REACHABILITY_REACHABLE;
  return match;
}

std::optional<KeepaliveTable::State> KeepaliveTable::StateOf(absl::string_view binding_id) const {
  auto it = index_.find(binding_id);
  if (it == index_.end()) return std::nullopt;
  const Record& record = records_[it->second];
  return State{record.misses, static_cast<v1::Reachability>(record.reachability), TimeOfTick(record.due_tick)};
}

}  // namespace latchkey::relay
