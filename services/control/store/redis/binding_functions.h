#pragma once
// The Redis functions behind RedisBindingStore: each BindingStore operation is one FCALL, so it is
// atomic on the primary and costs one round trip. Loaded with FUNCTION LOAD REPLACE on every
// (re)connection (functions are persisted and replicated, unlike EVAL's script cache, so a promoted
// replica has them too). The library name carries the data layout's version: a control of another
// layout loads its own library beside this one instead of replacing it.
//
// Layout (every key starts with the deployment's prefix P, e.g. "lk:"):
//   P b:ID     HASH  rec (serialized v1::Binding as the REGISTER made it, without the sticky fields),
//                    own, crt (created_at, µs), rch (reachability), sc (source_changes), ver,
//                    src (source "ip port", to count changes), idk (identity key), exp (ms)
//   P bi       HASH  identity key -> ID
//   P bo       ZSET  score 0, member identity key: ordered listing (ZRANGE BYLEX)
//   P bx       ZSET  score expires_at ms, member ID: expiry and the total count
//   P bc       HASH  owner -> bindings held (counted owners only)
namespace latchkey::control::redis {

inline constexpr char kBindingLibrary[] = "latchkey_bindings_v1";

// The library's source, for FUNCTION LOAD REPLACE.
const char* BindingFunctionsSource();

}  // namespace latchkey::control::redis
