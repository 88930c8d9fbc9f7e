#include "services/control/store/redis/binding_functions.h"

namespace latchkey::control::redis {

// Every function takes the key prefix as KEYS[1] (all keys are derived from it: one primary, no
// cluster slots to respect) and returns flat arrays the C++ side decodes (redis_binding_store.cc).
// A record is returned as {id, rec, own, crt, rch, sc, ver}.
const char* BindingFunctionsSource() {
  return R"lua(#!lua name=latchkey_bindings_v1

local FIELDS = {'rec', 'own', 'crt', 'rch', 'sc', 'ver', 'src', 'idk', 'exp'}

local function load(p, id)
  local v = redis.call('HMGET', p .. 'b:' .. id, unpack(FIELDS))
  if not v[1] then return nil end
  return {rec = v[1], own = v[2], crt = v[3], rch = v[4], sc = v[5], ver = v[6], src = v[7], idk = v[8], exp = v[9]}
end

local function reply(id, r)
  return {id, r.rec, r.own, r.crt, r.rch, r.sc, r.ver}
end

local function erase(p, id, r)
  redis.call('DEL', p .. 'b:' .. id)
  if redis.call('HGET', p .. 'bi', r.idk) == id then
    redis.call('HDEL', p .. 'bi', r.idk)
    redis.call('ZREM', p .. 'bo', r.idk)
  end
  redis.call('ZREM', p .. 'bx', id)
  if redis.call('HEXISTS', p .. 'bc', r.own) == 1 then
    if redis.call('HINCRBY', p .. 'bc', r.own, -1) <= 0 then redis.call('HDEL', p .. 'bc', r.own) end
  end
end

-- ARGV: identity key, candidate id, rec, owner, created µs, source, expires ms, max total,
-- max per owner, counted (1/0). Returns {'refreshed', previous record..., new sc, new ver} or
-- {'created'} or {'error', code, detail}.
local function upsert(keys, args)
  local p = keys[1]
  local idk, cand, rec, own, crt, src, exp = args[1], args[2], args[3], args[4], args[5], args[6], args[7]
  local max_total, max_owner, counted = tonumber(args[8]), tonumber(args[9]), args[10] == '1'
  local id = redis.call('HGET', p .. 'bi', idk)
  if id then
    local r = load(p, id)
    if r then
      local sc = tonumber(r.sc)
      if r.src ~= src then sc = sc + 1 end
      local ver = tonumber(r.ver) + 1
      redis.call('HSET', p .. 'b:' .. id, 'rec', rec, 'sc', sc, 'ver', ver, 'src', src, 'exp', exp)
      redis.call('ZADD', p .. 'bx', exp, id)
      local out = reply(id, r)
      table.insert(out, 1, 'refreshed')
      table.insert(out, sc)
      table.insert(out, ver)
      return out
    end
    redis.call('HDEL', p .. 'bi', idk)  -- an index entry without its record: repair
    redis.call('ZREM', p .. 'bo', idk)
  end
  local total = redis.call('ZCARD', p .. 'bx')
  if total >= max_total then return {'error', 'max_total', total} end
  if counted then
    local held = tonumber(redis.call('HGET', p .. 'bc', own) or '0')
    if held >= max_owner then return {'error', 'max_per_owner', held} end
  end
  if redis.call('EXISTS', p .. 'b:' .. cand) == 1 then return {'error', 'id_taken', cand} end
  redis.call('HSET', p .. 'b:' .. cand, 'rec', rec, 'own', own, 'crt', crt, 'rch', 0, 'sc', 0, 'ver', 1,
             'src', src, 'idk', idk, 'exp', exp)
  redis.call('HSET', p .. 'bi', idk, cand)
  redis.call('ZADD', p .. 'bo', 0, idk)
  redis.call('ZADD', p .. 'bx', exp, cand)
  if counted then redis.call('HINCRBY', p .. 'bc', own, 1) end
  return {'created'}
end

-- ARGV: identity key. Returns the removed record or {}.
local function remove_identity(keys, args)
  local p = keys[1]
  local id = redis.call('HGET', p .. 'bi', args[1])
  if not id then return {} end
  local r = load(p, id)
  if not r then return {} end
  erase(p, id, r)
  return reply(id, r)
end

-- ARGV: id, owner or '' with check flag. Returns the removed record or {}.
local function remove(keys, args)
  local p = keys[1]
  local r = load(p, args[1])
  if not r then return {} end
  if args[3] == '1' and r.own ~= args[2] then return {} end
  erase(p, args[1], r)
  return reply(args[1], r)
end

local function get(keys, args)
  local r = load(keys[1], args[1])
  if not r then return {} end
  return reply(args[1], r)
end

-- ARGV: id, reachability. Returns the updated record, or {} if absent or unchanged.
local function set_reachability(keys, args)
  local p = keys[1]
  local r = load(p, args[1])
  if not r or r.rch == args[2] then return {} end
  r.rch = args[2]
  r.ver = tostring(tonumber(r.ver) + 1)
  redis.call('HSET', p .. 'b:' .. args[1], 'rch', r.rch, 'ver', r.ver)
  return reply(args[1], r)
end

-- ARGV: min (a ZRANGE BYLEX bound), max, limit, aor filter ('' for none). Returns
-- {next identity key or '', records...} where each record is 7 elements.
local function list(keys, args)
  local p = keys[1]
  local limit = tonumber(args[3])
  local aor = args[4]
  local scan = limit * 16 + 16
  local idks = redis.call('ZRANGE', p .. 'bo', args[1], args[2], 'BYLEX', 'LIMIT', 0, scan + 1)
  local out = {''}
  local taken, last = 0, nil
  for i, idk in ipairs(idks) do
    if taken == limit or i > scan then
      out[1] = last
      break
    end
    last = idk
    local match = true
    if aor ~= '' then
      local a = string.match(idk, '^[^\31]*\31([^\31]*)\31')
      match = a == aor
    end
    if match then
      local id = redis.call('HGET', p .. 'bi', idk)
      local r = id and load(p, id)
      if r then
        for _, v in ipairs(reply(id, r)) do table.insert(out, v) end
        taken = taken + 1
      end
    end
  end
  return out
end

-- ARGV: now ms, limit. Removes and returns what expired, earliest first.
local function take_expired(keys, args)
  local p = keys[1]
  local ids = redis.call('ZRANGE', p .. 'bx', '-inf', args[1], 'BYSCORE', 'LIMIT', 0, tonumber(args[2]))
  local out = {}
  for _, id in ipairs(ids) do
    local r = load(p, id)
    if r then
      erase(p, id, r)
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

redis.register_function('lk_b1_upsert', upsert)
redis.register_function('lk_b1_remove_identity', remove_identity)
redis.register_function('lk_b1_remove', remove)
redis.register_function{function_name = 'lk_b1_get', callback = get, flags = {'no-writes'}}
redis.register_function('lk_b1_set_reachability', set_reachability)
redis.register_function{function_name = 'lk_b1_list', callback = list, flags = {'no-writes'}}
redis.register_function('lk_b1_take_expired', take_expired)
redis.register_function{function_name = 'lk_b1_count', callback = count, flags = {'no-writes'}}
)lua";
}

}  // namespace latchkey::control::redis
