package redis

// The scripts run atomically inside Redis and read its clock (TIME), so all
// replicas share one clock and one decision order; ARGV offset_ms shifts that
// clock, for tests only. Windows are sliding logs in sorted sets scored by
// milliseconds: requests hold request ids, tokens hold "id:tokens" (so a
// settlement can find the reservation), slots hold ids scored by their
// expiry. The budget is a hash of the current UTC day and month and what
// was spent in each.

const luaClock = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[#ARGV])
-- months since year 0 of a Unix time in ms (Hinnant's civil_from_days)
local function month_of(ms)
  local z = math.floor(ms / 86400000) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y * 12 + m - 1
end
local day = math.floor(now / 86400000)
local month = month_of(now)
local function spent(key)
  local b = redis.call('HMGET', key, 'day', 'dspent', 'month', 'mspent')
  local d, m = 0, 0
  if tonumber(b[1]) == day then d = tonumber(b[2]) end
  if tonumber(b[3]) == month then m = tonumber(b[4]) end
  return d, m
end
`

// admitScript: KEYS reqs, toks, slots, budget; ARGV id, window_ms, rpm, tpm,
// need, stream, max_streams, budget_day, budget_month, slot_ttl_ms, check,
// offset_ms. With check "1" it decides and takes nothing (Check). Returns {refused kind or "", retry_ms, requests in window,
// tokens in window, requests reset ms, tokens reset ms, now ms}.
const admitScript = luaClock + `
local id = ARGV[1]
local window, rpm, tpm, need = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local stream, maxs = ARGV[6] == '1', tonumber(ARGV[7])
local dlim, mlim, ttl = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local check = ARGV[11] == '1'
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local nreq = redis.call('ZCARD', KEYS[1])
local toks = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #toks, 2 do used = used + tonumber(string.match(toks[i], ':(%d+)$')) end
local kind, retry = '', 0
if rpm > 0 and nreq >= rpm then
  kind = 'requests'
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  retry = tonumber(first[2]) + window - now
elseif tpm > 0 and used + need > tpm then
  kind, retry = 'tokens', window
  local free = used + need - tpm
  for i = 1, #toks, 2 do
    free = free - tonumber(string.match(toks[i], ':(%d+)$'))
    if free <= 0 then retry = tonumber(toks[i + 1]) + window - now break end
  end
elseif stream and maxs > 0 and redis.call('ZCARD', KEYS[3]) >= maxs then
  kind, retry = 'concurrency', 1000
elseif dlim > 0 or mlim > 0 then
  local d, m = spent(KEYS[4])
  if dlim > 0 and d >= dlim then kind = 'budget_day' elseif mlim > 0 and m >= mlim then kind = 'budget_month' end
end
if kind == '' and not check then
  if rpm > 0 then
    redis.call('ZADD', KEYS[1], now, id)
    redis.call('PEXPIRE', KEYS[1], window)
    nreq = nreq + 1
  end
  if tpm > 0 then
    redis.call('ZADD', KEYS[2], now, id .. ':' .. need)
    redis.call('PEXPIRE', KEYS[2], window)
    used = used + need
    toks[#toks + 1] = id
    toks[#toks + 1] = now
  end
  if stream and maxs > 0 then
    redis.call('ZADD', KEYS[3], now + ttl, id)
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
end
local rreset, treset = 0, 0
if nreq > 0 then
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  rreset = tonumber(last[2]) + window - now
end
if #toks > 0 then treset = tonumber(toks[#toks]) + window - now end
return {kind, retry, nreq, used, rreset, treset, now}
`

// settleScript: KEYS toks, slots, budget; ARGV id, reserved, actual, tpm,
// window_ms, cost, offset_ms.
const settleScript = luaClock + `
local id, window, cost = ARGV[1], tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREM', KEYS[1], id .. ':' .. ARGV[2])
if tonumber(ARGV[4]) > 0 and tonumber(ARGV[3]) > 0 then
  redis.call('ZADD', KEYS[1], now, id .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
end
redis.call('ZREM', KEYS[2], id)
if cost > 0 then
  local d, m = spent(KEYS[3])
  redis.call('HSET', KEYS[3], 'day', day, 'dspent', d + cost, 'month', month, 'mspent', m + cost)
  redis.call('PEXPIRE', KEYS[3], 32 * 86400000)
end
return 1
`

// refreshScript: KEYS slots; ARGV id, ttl_ms, offset_ms. Extends a live
// slot; a slot already expired (or released) is left gone.
const refreshScript = luaClock + `
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 1
`
