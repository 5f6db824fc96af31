package redis

// The stream log's scripts. KEYS[1] is a stream's state hash, KEYS[2] its
// Redis stream; ARGV[1] the prefix of the shared keys (P.."bytes": event
// bytes held, P.."sizes": each stream's share of them, P.."live": streams
// scored by when they expire). Times are Redis's, in milliseconds. Results
// below zero are errors: -1 not found, -2 ended, -3 full, -4 exists.

// slPrelude: now, and sweep, which takes expired streams off the bounds
// and deletes whatever of them Redis has not expired yet.
const slPrelude = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function sweep(P, t)
  for _ = 1, 10 do
    local ids = redis.call('ZRANGEBYSCORE', P .. 'live', '-inf', t, 'LIMIT', 0, 100)
    for _, x in ipairs(ids) do
      local n = tonumber(redis.call('HGET', P .. 'sizes', x) or '0')
      if n ~= 0 then redis.call('DECRBY', P .. 'bytes', n) end
      redis.call('HDEL', P .. 'sizes', x)
      redis.call('ZREM', P .. 'live', x)
      redis.call('DEL', P .. '{' .. x .. '}:m', P .. '{' .. x .. '}:e')
    end
    if #ids < 100 then return end
  end
end
local function held(P) return tonumber(redis.call('GET', P .. 'bytes') or '0') end
local function state(m)
  return redis.call('HMGET', m, 'o', 'd', 'm', 'c', 'e', 's', 'l', 'r', 'rd', 'x')
end
`

// slCreate: ARGV id, owner, dialect, model, created, retention, max streams,
// max bytes. The stream starts with an entry 0-1 so it exists (and expires)
// before its first event; readers never see it (their ranges start at 1-0).
const slCreate = slPrelude + `
local P, id = ARGV[1], ARGV[2]
local t = now()
sweep(P, t)
if redis.call('EXISTS', KEYS[1]) == 1 then return -4 end
-- what is left of an earlier stream with this id that Redis expired first
local old = redis.call('HGET', P .. 'sizes', id)
if old then
  redis.call('DECRBY', P .. 'bytes', old)
  redis.call('HDEL', P .. 'sizes', id)
  redis.call('ZREM', P .. 'live', id)
end
redis.call('DEL', KEYS[2])
if redis.call('ZCARD', P .. 'live') >= tonumber(ARGV[8]) or held(P) >= tonumber(ARGV[9]) then return -3 end
local exp = t + tonumber(ARGV[7])
redis.call('HSET', KEYS[1], 'o', ARGV[3], 'd', ARGV[4], 'm', ARGV[5], 'c', ARGV[6],
  'e', '0', 's', '', 'l', '0', 'b', '0', 'r', t, 'x', '0')
redis.call('XADD', KEYS[2], '0-1', 'c', '')
redis.call('PEXPIREAT', KEYS[1], exp)
redis.call('PEXPIREAT', KEYS[2], exp)
redis.call('ZADD', P .. 'live', exp, id)
redis.call('HSET', P .. 'sizes', id, 0)
return 0
`

// slAppend: ARGV id, data, max stream bytes, max bytes. Returns the seq.
const slAppend = slPrelude + `
local P, id, data = ARGV[1], ARGV[2], ARGV[3]
local st = redis.call('HMGET', KEYS[1], 'l', 'b', 'e')
if not st[1] then return -1 end
if st[3] == '1' then return -2 end
local n = string.len(data)
local b = tonumber(st[2]) + n
if b > tonumber(ARGV[4]) then return -3 end
if n > 0 and held(P) + n > tonumber(ARGV[5]) then
  sweep(P, now())
  if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
  if held(P) + n > tonumber(ARGV[5]) then return -3 end
end
local seq = tonumber(st[1]) + 1
redis.call('XADD', KEYS[2], seq .. '-0', 'd', data)
redis.call('HSET', KEYS[1], 'l', seq, 'b', b)
if n > 0 then
  redis.call('INCRBY', P .. 'bytes', n)
  redis.call('HINCRBY', P .. 'sizes', id, n)
end
return seq
`

// slRenew: ARGV id, retention. Returns the state (nil owner: not found).
const slRenew = slPrelude + `
local P, id = ARGV[1], ARGV[2]
local e = redis.call('HGET', KEYS[1], 'e')
if not e then return state(KEYS[1]) end
local t = now()
redis.call('HSET', KEYS[1], 'r', t)
if e ~= '1' then
  local exp = t + tonumber(ARGV[3])
  redis.call('PEXPIREAT', KEYS[1], exp)
  redis.call('PEXPIREAT', KEYS[2], exp)
  redis.call('ZADD', P .. 'live', 'XX', exp, id)
end
return state(KEYS[1])
`

// slFinish: ARGV id, status, retention. The entry "<last>-2" wakes readers
// blocked in XREAD after "<last>-1"; it lies past every range a read asks
// for, and past Create's 0-1.
const slFinish = slPrelude + `
local P, id = ARGV[1], ARGV[2]
local st = redis.call('HMGET', KEYS[1], 'e', 'l')
if not st[1] then return -1 end
if st[1] == '1' then return -2 end
local exp = now() + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'e', '1', 's', ARGV[3])
redis.call('XADD', KEYS[2], st[2] .. '-2', 'f', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], exp)
redis.call('PEXPIREAT', KEYS[2], exp)
redis.call('ZADD', P .. 'live', 'XX', exp, id)
return 0
`

// slCancel: no ARGV.
const slCancel = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'x', '1')
return 0
`

// slRead: ARGV after, max (0: all). Records the read and returns the state
// and the data of the events after <after>, up to <last> (so never the
// marker entries).
const slRead = slPrelude + `
local st = state(KEYS[1])
if not st[1] then return {st, {}} end
local t = now()
redis.call('HSET', KEYS[1], 'rd', t)
st[9] = tostring(t)
local after, last, max = tonumber(ARGV[1]), tonumber(st[7]), tonumber(ARGV[2])
local out = {}
if after < last then
  local r
  if max > 0 then
    r = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', last .. '-0', 'COUNT', max)
  else
    r = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', last .. '-0')
  end
  for i, e in ipairs(r) do out[i] = e[2][2] end
end
return {st, out}
`
