#include "services/control/store/redis/binding_functions.h"

namespace latchkey::control::redis {

// Every function takes the key prefix as KEYS[1] (all keys are derived from it: one primary, no
// cluster slots to respect) and returns flat arrays the C++ side decodes (redis_binding_store.cc).
// A record is returned as {id, rec, own, crt, rch, sc, ver}.
const char* BindingFunctionsSource() {
  return R"lua(#!lua name=latchkey_bindings_v3

-- A binding is one string: a MessagePack array {rec, own, crt, rch, sc, ver, src, idk, exp}.
local function load(p, id)
  local v = redis.call('GET', p .. 'b:' .. id)
  if not v then return nil end
  local t = cmsgpack.unpack(v)
  return {rec = t[1], own = t[2], crt = t[3], rch = t[4], sc = t[5], ver = t[6], src = t[7], idk = t[8], exp = t[9]}
end

local function save(p, id, r)
  redis.call('SET', p .. 'b:' .. id, cmsgpack.pack({r.rec, r.own, r.crt, r.rch, r.sc, r.ver, r.src, r.idk, r.exp}))
end

-- The listing index holds "identity key \31 id": the identity is stored once, and its binding is
-- found by a lexicographic range.
local function member(idk, id) return idk .. '\31' .. id end

local function find(p, idk)
  local m = redis.call('ZRANGE', p .. 'bo', '[' .. idk .. '\31', '(' .. idk .. '\31\255', 'BYLEX', 'LIMIT', 0, 1)
  if #m == 0 then return nil end
  return string.sub(m[1], #idk + 2)
end

local function reply(id, r)
  return {id, r.rec, r.own, r.crt, r.rch, r.sc, r.ver}
end

-- The change log (stream P blog): the event type (v1.BindingEventType) and the record as a reply
-- holds it, appended in the same call as the change. `maxlen` is the entries kept (about).
-- Every function that writes checks its arguments first: Redis does not undo a function's writes
-- when it fails half way (and a caller of another layout version may pass fewer).
local function log_length(v)
  local n = tonumber(v)
  if not n or n < 1 then error('latchkey: log length missing') end
  return n
end

local function logged(p, maxlen, t, id, r)
  redis.call('XADD', p .. 'blog', 'MAXLEN', '~', maxlen, '*', 't', t, 'id', id, 'rec', r.rec, 'own', r.own,
             'crt', r.crt, 'rch', r.rch, 'sc', r.sc, 'ver', r.ver)
end

local function erase(p, id, r)
  redis.call('DEL', p .. 'b:' .. id)
  redis.call('ZREM', p .. 'bo', member(r.idk, id))
  redis.call('ZREM', p .. 'bx', id)
  if redis.call('HEXISTS', p .. 'bc', r.own) == 1 then
    if redis.call('HINCRBY', p .. 'bc', r.own, -1) <= 0 then redis.call('HDEL', p .. 'bc', r.own) end
  end
end

-- ARGV: identity key, candidate id, rec, owner, created µs, source, expires ms, max total,
-- max per owner, counted (1/0), log length. Returns {'refreshed', previous record..., new sc, new ver} or
-- {'created'} or {'error', code, detail}.
local function upsert(keys, args)
  local p = keys[1]
  local idk, cand, rec, own, crt, src, exp = args[1], args[2], args[3], args[4], args[5], args[6], args[7]
  local max_total, max_owner, counted = tonumber(args[8]), tonumber(args[9]), args[10] == '1'
  local maxlen = log_length(args[11])
  local id = find(p, idk)
  if id then
    local r = load(p, id)
    if r then
      local prev = reply(id, r)
      local moved = r.src ~= src
      if moved then r.sc = r.sc + 1 end
      r.ver = r.ver + 1
      r.rec, r.src, r.exp = rec, src, tonumber(exp)
      save(p, id, r)
      logged(p, maxlen, moved and 7 or 2, id, r)
      redis.call('ZADD', p .. 'bx', exp, id)
      table.insert(prev, 1, 'refreshed')
      table.insert(prev, r.sc)
      table.insert(prev, r.ver)
      return prev
    end
    redis.call('ZREM', p .. 'bo', member(idk, id))  -- an index entry without its record: repair
  end
  local total = redis.call('ZCARD', p .. 'bx')
  if total >= max_total then return {'error', 'max_total', total} end
  if counted then
    local held = tonumber(redis.call('HGET', p .. 'bc', own) or '0')
    if held >= max_owner then return {'error', 'max_per_owner', held} end
  end
  if redis.call('EXISTS', p .. 'b:' .. cand) == 1 then return {'error', 'id_taken', cand} end
  local r = {rec = rec, own = own, crt = tonumber(crt), rch = 0, sc = 0, ver = 1, src = src, idk = idk, exp = tonumber(exp)}
  save(p, cand, r)
  logged(p, maxlen, 1, cand, r)
  redis.call('ZADD', p .. 'bo', 0, member(idk, cand))
  redis.call('ZADD', p .. 'bx', exp, cand)
  if counted then redis.call('HINCRBY', p .. 'bc', own, 1) end
  return {'created'}
end

-- ARGV: identity key, log length. Returns the removed record or {}.
local function remove_identity(keys, args)
  local p, maxlen = keys[1], log_length(args[2])
  local id = find(p, args[1])
  if not id then return {} end
  local r = load(p, id)
  if not r then return {} end
  erase(p, id, r)
  logged(p, maxlen, 4, id, r)
  return reply(id, r)
end

-- ARGV: id, owner or '' with check flag, log length. Returns the removed record or {}.
local function remove(keys, args)
  local p, maxlen = keys[1], log_length(args[4])
  local r = load(p, args[1])
  if not r then return {} end
  if args[3] == '1' and r.own ~= args[2] then return {} end
  erase(p, args[1], r)
  logged(p, maxlen, 4, args[1], r)
  return reply(args[1], r)
end

local function get(keys, args)
  local r = load(keys[1], args[1])
  if not r then return {} end
  return reply(args[1], r)
end

-- ARGV: id, reachability, log length. Returns the updated record, or {} if absent or unchanged.
local function set_reachability(keys, args)
  local p, maxlen = keys[1], log_length(args[3])
  local r = load(p, args[1])
  local rch = tonumber(args[2])
  if not r or r.rch == rch then return {} end
  r.rch = rch
  r.ver = r.ver + 1
  save(p, args[1], r)
  logged(p, maxlen, rch == 2 and 5 or 6, args[1], r)
  return reply(args[1], r)
end

-- ARGV: min (a ZRANGE BYLEX bound), max, limit, aor filter ('' for none). Returns
-- {next cursor (a listing member) or '', records...} where each record is 7 elements.
local function list(keys, args)
  local p = keys[1]
  local limit = tonumber(args[3])
  local aor = args[4]
  local scan = limit * 16 + 16
  local idks = redis.call('ZRANGE', p .. 'bo', args[1], args[2], 'BYLEX', 'LIMIT', 0, scan + 1)
  local out = {''}
  local taken, last = 0, nil
  for i, m in ipairs(idks) do
    if taken == limit or i > scan then
      out[1] = last
      break
    end
    last = m
    local match = true
    if aor ~= '' then
      local a = string.match(m, '^[^\31]*\31([^\31]*)\31')
      match = a == aor
    end
    if match then
      local id = string.match(m, '\31([^\31]*)$')
      local r = id and load(p, id)
      if r then
        for _, v in ipairs(reply(id, r)) do table.insert(out, v) end
        taken = taken + 1
      end
    end
  end
  return out
end

-- ARGV: now ms, limit, log length. Removes and returns what expired, earliest first.
local function take_expired(keys, args)
  local p, maxlen = keys[1], log_length(args[3])
  local ids = redis.call('ZRANGE', p .. 'bx', '-inf', args[1], 'BYSCORE', 'LIMIT', 0, tonumber(args[2]))
  local out = {}
  for _, id in ipairs(ids) do
    local r = load(p, id)
    if r then
      erase(p, id, r)
      logged(p, maxlen, 3, id, r)
      for _, v in ipairs(reply(id, r)) do table.insert(out, v) end
    else
      redis.call('ZREM', p .. 'bx', id)
    end
  end
  return out
end

local function count(keys, args)
  return redis.call('ZCARD', keys[1] .. 'bx')
end

redis.register_function('lk_b3_upsert', upsert)
redis.register_function('lk_b3_remove_identity', remove_identity)
redis.register_function('lk_b3_remove', remove)
redis.register_function{function_name = 'lk_b3_get', callback = get, flags = {'no-writes'}}
redis.register_function('lk_b3_set_reachability', set_reachability)
redis.register_function{function_name = 'lk_b3_list', callback = list, flags = {'no-writes'}}
redis.register_function('lk_b3_take_expired', take_expired)
redis.register_function{function_name = 'lk_b3_count', callback = count, flags = {'no-writes'}}
)lua";
}

}  // namespace latchkey::control::redis
