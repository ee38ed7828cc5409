//! The queue's Lua scripts, one per step, each atomic.

/// Creates the stream and its group if the stream is missing (a Redis that lost its data).
pub(super) const ENSURE: &str = "
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
end
";

/// KEYS: stream, delayed, marker. ARGV: group, marker TTL ms, record, capacity.
/// 0 queued, 1 duplicate, 2 full.
pub(super) const ADD: &str = "
if redis.call('EXISTS', KEYS[3]) == 1 then return 1 end
if redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  return 2
end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
redis.call('XADD', KEYS[1], '*', 'a', '0', 'd', ARGV[3])
return 0
";

/// KEYS: stream, delayed. ARGV: group, consumer, count, takeover idle ms (0: none), stale
/// consumer ms. Returns (entry id, attempts before, deliveries, record) flattened.
pub(super) const TAKE: &str = "
local stream, delayed, group, consumer = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local count = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for _, m in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 100)) do
  local sep = string.find(m, ':', 1, true)
  redis.call('XADD', stream, '*', 'a', string.sub(m, 1, sep - 1), 'd', string.sub(m, sep + 1))
  redis.call('ZREM', delayed, m)
end
local out = {}
local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return ''
end
local function emit(entry, deliveries)
  table.insert(out, entry[1])
  table.insert(out, field(entry[2], 'a'))
  table.insert(out, tostring(deliveries))
  table.insert(out, field(entry[2], 'd'))
end
local idle = tonumber(ARGV[4])
if idle > 0 then
  local claimed = redis.call('XAUTOCLAIM', stream, group, consumer, idle, '0-0', 'COUNT', count)
  for _, entry in ipairs(claimed[2]) do
    if entry[2] then
      local p = redis.call('XPENDING', stream, group, entry[1], entry[1], 1)
      local deliveries = 2
      if p[1] then deliveries = p[1][4] end
      emit(entry, deliveries)
    end
  end
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, group)) do
    local name, pending, quiet = nil, 1, 0
    for i = 1, #c, 2 do
      if c[i] == 'name' then name = c[i + 1]
      elseif c[i] == 'pending' then pending = c[i + 1]
      elseif c[i] == 'idle' then quiet = c[i + 1] end
    end
    if name and name ~= consumer and pending == 0 and quiet > tonumber(ARGV[5]) then
      redis.call('XGROUP', 'DELCONSUMER', stream, group, name)
    end
  end
end
local room = count - #out / 4
if room > 0 then
  local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', room, 'STREAMS', stream, '>')
  if read then
    for _, entry in ipairs(read[1][2]) do emit(entry, 1) end
  end
end
return out
";

/// Whether ARGV[2] holds entry ARGV[3] of KEYS[1] in group ARGV[1].
pub(super) const OWNED: &str = "
local function owned(id)
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  return p[1] ~= nil and p[1][2] == ARGV[2]
end
";

/// KEYS: stream, delayed, dead. ARGV: group, consumer, entry, delay ms (-1: dead), delayed
/// member or dead letter, dead-letter capacity.
pub(super) const FAIL: &str = "
if not owned(ARGV[3]) then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
local delay = tonumber(ARGV[4])
if delay >= 0 then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000) + delay, ARGV[5])
else
  redis.call('LPUSH', KEYS[3], ARGV[5])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
end
return 1
";

/// KEYS: stream. ARGV: group, consumer, entry, attempts before, record.
pub(super) const HAND_BACK: &str = "
if not owned(ARGV[3]) then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('XADD', KEYS[1], '*', 'a', ARGV[4], 'd', ARGV[5])
return 1
";

/// KEYS: stream. ARGV: group, consumer, entries…
pub(super) const RENEW: &str = "
for i = 3, #ARGV do
  if owned(ARGV[i]) then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  end
end
return 0
";

/// KEYS: stream. ARGV: group, entries…
pub(super) const FINISH: &str = "
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
return 0
";

/// KEYS: stream, dead. ARGV: group, dead letter, record.
pub(super) const REQUEUE: &str = "
if redis.call('LREM', KEYS[2], 1, ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[1], '*', 'a', '0', 'd', ARGV[3])
return 1
";
