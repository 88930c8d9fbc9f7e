#include "services/control/store/redis/session_functions.h"

namespace latchkey::control::redis {

// KEYS[1] is the prefix. A record is returned as {id, rec, ver}.
const char* SessionFunctionsSource() {
  return R"lua(#!lua name=latchkey_sessions_v3

local function counted(owner) return string.sub(owner, 1, 4) == 'pbx/' end

local function load(p, id)
  local v = redis.call('HMGET', p .. 's:' .. id, 'rec', 'ver', 'live', 'own', 'ck', 'wrk', 'exp')
  if not v[1] then return nil end
  return {rec = v[1], ver = tonumber(v[2]), live = v[3] == '1', own = v[4], ck = v[5], wrk = v[6], exp = v[7]}
end

-- The Call-ID part of a call key (owner SEP call id SEP tag[SEP branch]): the key of the call's set of
-- live sessions.
local function call_of(ck) return string.match(ck, '^[^\31]*\31[^\31]*') end

local function unindex(p, id, r)
  if r.live then
    if redis.call('HGET', p .. 'sc', r.ck) == id then redis.call('HDEL', p .. 'sc', r.ck) end
    redis.call('SREM', p .. 'sk:' .. call_of(r.ck), id)
    if r.wrk ~= '' then redis.call('ZREM', p .. 'sw:' .. r.wrk, id) end
    if counted(r.own) and redis.call('HINCRBY', p .. 'sl', r.own, -1) <= 0 then redis.call('HDEL', p .. 'sl', r.own) end
  end
  redis.call('ZREM', p .. 'so:' .. r.own, id)
  redis.call('ZREM', p .. 'sx', id)
end

-- ARGV: id, rec, expected version, expires ms ('' for none), max live per owner, minimum version,
-- live (1/0), owner, call key, worker id, event ('' for none: a v1.WatchSessionsResponse without
-- its session, logged with the record as written), log length. Returns {'ok', version} or {'error', code, detail}.
local function write(keys, args)
  local p = keys[1]
  local id, rec, expected, exp = args[1], args[2], tonumber(args[3]), args[4]
  local max_live, min_ver, live, own, ck, wrk = tonumber(args[5]), tonumber(args[6]), args[7] == '1', args[8], args[9], args[10]
  -- Checked before any write (Redis does not undo a failing function's writes).
  local event, maxlen = args[11], tonumber(args[12])
  if event == nil or not maxlen or maxlen < 1 then error('latchkey: event or log length missing') end
  local cur = load(p, id)
  if expected == 0 then
    if cur then return {'error', 'exists', ''} end
  else
    if not cur then return {'error', 'not_found', ''} end
    if cur.ver ~= expected then return {'error', 'stale', tostring(cur.ver)} end
  end
  if live then
    local holder = redis.call('HGET', p .. 'sc', ck)
    if holder and holder ~= id then return {'error', 'call_taken', holder} end
  end
  local was_live = cur ~= nil and cur.live
  if live and not was_live and counted(own) then
    local held = tonumber(redis.call('HGET', p .. 'sl', own) or '0')
    if held >= max_live then return {'error', 'limit', tostring(held)} end
  end
  if cur then unindex(p, id, cur) end
  local ver = math.max(cur and (cur.ver + 1) or 1, min_ver)
  redis.call('HSET', p .. 's:' .. id, 'rec', rec, 'ver', ver, 'live', live and '1' or '0', 'own', own, 'ck', ck,
             'wrk', wrk, 'exp', exp)
  redis.call('ZADD', p .. 'sa', 0, id)
  redis.call('ZADD', p .. 'so:' .. own, 0, id)
  if exp ~= '' then redis.call('ZADD', p .. 'sx', exp, id) end
  if live then
    redis.call('HSET', p .. 'sc', ck, id)
    redis.call('SADD', p .. 'sk:' .. call_of(ck), id)
    if wrk ~= '' then redis.call('ZADD', p .. 'sw:' .. wrk, 0, id) end
    if counted(own) then redis.call('HINCRBY', p .. 'sl', own, 1) end
  end
  if event ~= '' then
    redis.call('XADD', p .. 'slog', 'MAXLEN', '~', maxlen, '*', 'e', event, 'rec', rec, 'ver', ver)
  end
  return {'ok', ver}
end

-- ARGV: id, expected version. Returns {'ok'} or {'error', code, detail}.
local function remove(keys, args)
  local p = keys[1]
  local cur = load(p, args[1])
  if not cur then return {'error', 'not_found', ''} end
  if cur.ver ~= tonumber(args[2]) then return {'error', 'stale', tostring(cur.ver)} end
  unindex(p, args[1], cur)
  redis.call('ZREM', p .. 'sa', args[1])
  redis.call('DEL', p .. 's:' .. args[1])
  return {'ok'}
end

local function get(keys, args)
  local r = load(keys[1], args[1])
  if not r then return {} end
  return {args[1], r.rec, r.ver}
end

-- ARGV: call key.
local function find_live(keys, args)
  local id = redis.call('HGET', keys[1] .. 'sc', args[1])
  if not id then return {} end
  local r = load(keys[1], id)
  if not r then return {} end
  return {id, r.rec, r.ver}
end

-- ARGV: cursor ('' for the start), limit, owner ('' with has_owner 0 for any), has_owner, worker.
-- Returns {next cursor or '', id, rec, ver, ...}.
local function list(keys, args)
  local p = keys[1]
  local cursor, limit, owner, has_owner, worker = args[1], tonumber(args[2]), args[3], args[4] == '1', args[5]
  local index = p .. 'sa'
  if worker ~= '' then
    index = p .. 'sw:' .. worker
  elseif has_owner then
    index = p .. 'so:' .. owner
  end
  local min = cursor == '' and '-' or ('(' .. cursor)
  local scan = limit * 16 + 16
  local ids = redis.call('ZRANGE', index, min, '+', 'BYLEX', 'LIMIT', 0, scan)
  local out = {''}
  local taken = 0
  for _, id in ipairs(ids) do
    local r = load(p, id)
    if r and (not has_owner or r.own == owner) and (worker == '' or (r.live and r.wrk == worker)) then
      if taken == limit then
        out[1] = out[#out - 2]
        return out
      end
      table.insert(out, id)
      table.insert(out, r.rec)
      table.insert(out, r.ver)
      taken = taken + 1
    end
  end
  -- The scan budget ran out: continue after the last id looked at (later ones may match).
  if #ids == scan then out[1] = ids[#ids] end
  return out
end

-- ARGV: now ms, limit.
local function list_expired(keys, args)
  local p = keys[1]
  local ids = redis.call('ZRANGE', p .. 'sx', '-inf', args[1], 'BYSCORE', 'LIMIT', 0, tonumber(args[2]))
  local out = {}
  for _, id in ipairs(ids) do
    local r = load(p, id)
    if r then
      table.insert(out, id)
      table.insert(out, r.rec)
      table.insert(out, r.ver)
    end
  end
  return out
end

-- ARGV: owner SEP call id, limit. Returns {id, rec, ver, ...} of at most limit live sessions.
local function call_live(keys, args)
  local p, limit = keys[1], tonumber(args[2])
  local out = {}
  for _, id in ipairs(redis.call('SMEMBERS', p .. 'sk:' .. args[1])) do
    if #out >= 3 * limit then break end
    local r = load(p, id)
    if r and r.live then
      table.insert(out, id)
      table.insert(out, r.rec)
      table.insert(out, r.ver)
    end
  end
  return out
end

local function live_count(keys, args)
  return tonumber(redis.call('HGET', keys[1] .. 'sl', args[1]) or '0')
end

-- ARGV: event (a whole v1.WatchSessionsResponse), log length.
local function append(keys, args)
  redis.call('XADD', keys[1] .. 'slog', 'MAXLEN', '~', args[2], '*', 'e', args[1])
  return 1
end

redis.register_function('lk_s3_write', write)
redis.register_function('lk_s3_append', append)
redis.register_function('lk_s3_remove', remove)
redis.register_function{function_name = 'lk_s3_get', callback = get, flags = {'no-writes'}}
redis.register_function{function_name = 'lk_s3_find_live', callback = find_live, flags = {'no-writes'}}
redis.register_function{function_name = 'lk_s3_list', callback = list, flags = {'no-writes'}}
redis.register_function{function_name = 'lk_s3_list_expired', callback = list_expired, flags = {'no-writes'}}
redis.register_function{function_name = 'lk_s3_call_live', callback = call_live, flags = {'no-writes'}}
redis.register_function{function_name = 'lk_s3_live_count', callback = live_count, flags = {'no-writes'}}
)lua";
}

}  // namespace latchkey::control::redis
