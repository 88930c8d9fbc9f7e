#include "services/control/store/redis/worker_functions.h"

namespace latchkey::control::redis {

// KEYS[1] is the prefix. A worker is returned as {id, rec, reg, load, hb, dreq, wdrain, lost}.
const char* WorkerFunctionsSource() {
  return R"lua(#!lua name=latchkey_workers_v1

local fields = {'rec', 'reg', 'load', 'hb', 'dreq', 'wdrain', 'lost'}

local function load(p, id)
  local v = redis.call('HMGET', p .. 'w:' .. id, unpack(fields))
  if not v[1] then return nil end
  return {id, v[1], v[2], v[3], v[4], v[5], v[6], v[7]}
end

-- ARGV: id, rec, registration id, load, now ms, worker draining (1/0). The operator's drain stays.
local function register(keys, args)
  local p, id = keys[1], args[1]
  local key = p .. 'w:' .. id
  local dreq = redis.call('HGET', key, 'dreq') or '0'
  redis.call('HSET', key, 'rec', args[2], 'reg', args[3], 'load', args[4], 'hb', args[5], 'dreq', dreq,
             'wdrain', args[6], 'lost', '0')
  redis.call('ZADD', p .. 'wa', 0, id)
  return load(p, id)
end

-- ARGV: id, registration id, load, now ms, worker draining (1/0).
local function heartbeat(keys, args)
  local p, id = keys[1], args[1]
  local key = p .. 'w:' .. id
  local v = redis.call('HMGET', key, 'reg', 'lost')
  if not v[1] or v[1] ~= args[2] or v[2] == '1' then return {} end
  redis.call('HSET', key, 'load', args[3], 'hb', args[4], 'wdrain', args[5])
  return load(p, id)
end

-- ARGV: id, drain (1/0).
local function drain(keys, args)
  local p, id = keys[1], args[1]
  if redis.call('EXISTS', p .. 'w:' .. id) == 0 then return {} end
  redis.call('HSET', p .. 'w:' .. id, 'dreq', args[2])
  return load(p, id)
end

-- ARGV: id, now ms, silent ms. 1 if this call marked the worker lost.
local function mark_lost(keys, args)
  local key = keys[1] .. 'w:' .. args[1]
  local v = redis.call('HMGET', key, 'hb', 'lost')
  if not v[1] or v[2] == '1' or tonumber(args[2]) - tonumber(v[1]) <= tonumber(args[3]) then return 0 end
  redis.call('HSET', key, 'lost', '1')
  return 1
end

-- ARGV: id, now ms, silent ms. 1 if this call deleted the (lost) worker.
local function forget(keys, args)
  local p, id = keys[1], args[1]
  local v = redis.call('HMGET', p .. 'w:' .. id, 'hb', 'lost')
  if not v[1] or v[2] ~= '1' or tonumber(args[2]) - tonumber(v[1]) <= tonumber(args[3]) then return 0 end
  redis.call('DEL', p .. 'w:' .. id)
  redis.call('ZREM', p .. 'wa', id)
  return 1
end

local function list(keys, args)
  local out = {}
  for _, id in ipairs(redis.call('ZRANGE', keys[1] .. 'wa', 0, -1)) do
    local r = load(keys[1], id)
    if r then for _, x in ipairs(r) do out[#out + 1] = x end end
  end
  return out
end

-- ARGV: name, holder, ttl ms. The fencing token if `holder` holds the lease after the call (taken
-- or renewed), 0 if another does.
local function lease(keys, args)
  local key = keys[1] .. 'lease:' .. args[1]
  local current = redis.call('GET', key)
  if current and current ~= args[2] then return 0 end
  redis.call('SET', key, args[2], 'PX', args[3])
  if current then return tonumber(redis.call('GET', key .. ':tok') or '0') end
  -- A new token: above the last one, and above the clock in ms, so that a failover that lost the
  -- last increment (replication is asynchronous) cannot hand out a token twice.
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local token = math.max(tonumber(redis.call('GET', key .. ':tok') or '0') + 1, ms)
  redis.call('SET', key .. ':tok', string.format('%d', token))
  return token
end

-- ARGV: name, holder. Gives the lease up (shutdown) so another takes it at once.
local function release(keys, args)
  local key = keys[1] .. 'lease:' .. args[1]
  if redis.call('GET', key) ~= args[2] then return 0 end
  redis.call('DEL', key)
  return 1
end

redis.register_function('lk_w1_register', register)
redis.register_function('lk_w1_heartbeat', heartbeat)
redis.register_function('lk_w1_drain', drain)
redis.register_function('lk_w1_mark_lost', mark_lost)
redis.register_function('lk_w1_forget', forget)
redis.register_function{function_name = 'lk_w1_list', callback = list, flags = {'no-writes'}}
redis.register_function('lk_w1_lease', lease)
redis.register_function('lk_w1_release', release)
)lua";
}

}  // namespace latchkey::control::redis
