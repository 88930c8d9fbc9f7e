#pragma once
// The Redis functions behind RedisWorkerStore and RedisLease, loaded on every connection like the
// binding and session functions.
//
// Layout (every key starts with the deployment's prefix P):
//   P w:ID    HASH    rec (serialized v1::Worker as registered: addresses, range, registered_at),
//                     reg (registration id), load (serialized v1::WorkerLoad), hb (last heartbeat,
//                     ms), dreq (operator's drain 1/0), wdrain (worker's own drain 1/0), lost (1/0)
//   P wa      ZSET    score 0, every worker id (listing in id order)
//   P lease:NAME      STRING holder, with a PX expiry
//   P lease:NAME:tok  STRING the fencing token: incremented each time the lease changes hands
namespace latchkey::control::redis {

inline constexpr char kWorkerLibrary[] = "latchkey_workers_v1";

const char* WorkerFunctionsSource();

}  // namespace latchkey::control::redis
