#include "services/control/store/redis/log_functions.h"

namespace latchkey::control::redis {

// KEYS[1] is the prefix; ARGV[1] the log's key suffix ("blog", "slog").
const char* LogFunctionsSource() {
  return R"lua(#!lua name=latchkey_logs_v1

local function parse(id)
  local ms, seq = string.match(id or '', '^(%d+)-(%d+)$')
  if not ms then return nil end
  return {tonumber(ms), tonumber(seq)}
end

local function before(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end

local function info(key)
  local v = redis.call('XINFO', 'STREAM', key)
  local out = {}
  for i = 1, #v, 2 do out[v[i]] = v[i + 1] end
  return out
end

-- The newest position ('0-0' before the first entry).
local function tail(keys, args)
  local key = keys[1] .. args[1]
  if redis.call('EXISTS', key) == 0 then return '0-0' end
  return info(key)['last-generated-id']
end

-- ARGV: log, after, count. {'gone'} when entries after `after` may have been trimmed or `after` is
-- not a position of this log (newer than its newest, or not an id); else {'ok', id, fields, ...}.
-- Trimming (MAXLEN ~) moves the first entry on but, unlike XDEL, not max-deleted-entry-id: a reader
-- before the first entry is told it is gone (also one that stood exactly at the edge and missed
-- nothing: the log cannot tell, and re-listing is always safe), except at 0-0 in a log that never
-- dropped anything. That also catches a wiped stream that new writes started again.
local function read(keys, args)
  local key = keys[1] .. args[1]
  local after = parse(args[2])
  if not after then return {'gone'} end
  if redis.call('EXISTS', key) == 0 then
    if after[1] == 0 and after[2] == 0 then return {'ok'} end
    return {'gone'}
  end
  local i = info(key)
  if before(parse(i['last-generated-id']), after) then return {'gone'} end
  if before(after, parse(i['max-deleted-entry-id'])) then return {'gone'} end
  local first = parse(i['recorded-first-entry-id'])
  if first and before(after, first) then
    -- Before the first entry: fine only for the empty log's own position, and only if nothing was
    -- ever dropped; otherwise trimmed past, or a position of a stream that was wiped and started again.
    if tonumber(i['entries-added']) > tonumber(i['length']) or after[1] ~= 0 or after[2] ~= 0 then return {'gone'} end
  end
  local out = {'ok'}
  for _, e in ipairs(redis.call('XRANGE', key, '(' .. args[2], '+', 'COUNT', tonumber(args[3]))) do
    out[#out + 1] = e[1]
    out[#out + 1] = e[2]
  end
  return out
end

redis.register_function{function_name = 'lk_l1_tail', callback = tail, flags = {'no-writes'}}
redis.register_function{function_name = 'lk_l1_read', callback = read, flags = {'no-writes'}}
)lua";
}

}  // namespace latchkey::control::redis
