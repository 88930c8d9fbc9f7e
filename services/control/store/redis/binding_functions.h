#pragma once
// The Redis functions behind RedisBindingStore: each BindingStore operation is one FCALL, so it is
// atomic on the primary and costs one round trip. Loaded with FUNCTION LOAD REPLACE on every
// (re)connection (functions are persisted and replicated, unlike EVAL's script cache, so a promoted
// replica has them too). The library name carries the data layout's version: a control of another
// layout loads its own library beside this one instead of replacing it.
//
// Layout (every key starts with the deployment's prefix P, e.g. "lk:"):
//   P b:ID     STRING  MessagePack array {rec (serialized v1::Binding as the REGISTER made it,
//                      without the fields below), owner, created_at µs, reachability,
//                      source_changes, version, source "ip port" (to count changes), identity key,
//                      expires_at ms}: one key per binding, about 1 KiB with its index entries
//   P bo       ZSET    score 0, member "identity key \x1f ID": ordered listing and the lookup by
//                      identity (ZRANGE BYLEX), the identity stored once
//   P bx       ZSET    score expires_at ms, member ID: expiry and the total count
//   P bc       HASH    owner -> bindings held (counted owners only)
//   P blog     STREAM  the change log: t (v1.BindingEventType), id, and the record's reply fields
//                      (rec, own, crt, rch, sc, ver); trimmed to about the configured length
namespace latchkey::control::redis {

inline constexpr char kBindingLibrary[] = "latchkey_bindings_v3";

// The library's source, for FUNCTION LOAD REPLACE.
const char* BindingFunctionsSource();

}  // namespace latchkey::control::redis
