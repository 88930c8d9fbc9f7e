#pragma once
// The Redis functions behind RedisSessionStore: each SessionStore operation is one FCALL (atomic on
// the primary, one round trip), loaded on every connection like the binding functions.
//
// Layout (every key starts with the deployment's prefix P):
//   P s:ID        HASH  rec (serialized v1::Session without its version), ver, live (1/0), own,
//                       ck (call key: owner \x1f call-id \x1f from-tag), wrk (worker id), exp (ms or '')
//   P sc          HASH  call key -> ID of the live session holding it
//   P sa          ZSET  score 0, every ID (listing in id order)
//   P so:OWNER    ZSET  score 0, the owner's IDs, ended ones included
//   P sw:WORKER   ZSET  score 0, the worker's live IDs
//   P sx          ZSET  score expires_at ms, ID
//   P sl          HASH  owner -> live sessions held (only "pbx/..." owners are counted, as in
//                       quota/owner_limit.h)
//   P slog        STREAM the change log: e (a v1.WatchSessionsResponse), and for a write's event
//                       rec and ver (the session as written, which the event's session becomes)
namespace latchkey::control::redis {

inline constexpr char kSessionLibrary[] = "latchkey_sessions_v3";

const char* SessionFunctionsSource();

}  // namespace latchkey::control::redis
