package redis

// The scripts run atomically inside Redis and read its clock (TIME), so all
// replicas share one clock and one decision order; ARGV offset_ms shifts that
// clock, for tests only.
//
// Every key of one grokgate key shares a hash tag ({key}), for Redis
// Cluster:
//
//	r   sorted set: request ids scored by admission time (ms)
//	t   sorted set: "id:tokens" token entries scored by time, reservations
//	    and settled usage
//	ts  string: the sum of t's tokens, kept as entries come and go, so no
//	    decision reads the whole window
//	s   sorted set: stream slots, request ids scored by their expiry
//	b   hash: day, dspent, month, mspent (the current UTC day and month and
//	    what was settled in each) and res (the budget reservations' sum)
//	bq  sorted set: budget reservations "id:cost" scored by their expiry
//
// No script's work grows with the window: expired entries are read and
// removed at most `prune` at a time (each entry once, so the cost per call
// stays bounded while the window moves on), counts come from ZCARD and
// ZCOUNT, sums from the running totals.

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
local prune = 1024
local budget_ttl = 32 * 86400000
-- the number after the last ':' of a member ("id:n")
-- an integer as Redis stores it (Lua would write 1e+15)
local function int(x) return string.format('%d', x) end
local function weight(member) return tonumber(string.match(member, ':(%d+)$')) end
-- what the budget hash says was spent today and this month
local function spent(key)
  local b = redis.call('HMGET', key, 'day', 'dspent', 'month', 'mspent')
  local d, m = 0, 0
  if tonumber(b[1]) == day then d = tonumber(b[2]) end
  if tonumber(b[3]) == month then m = tonumber(b[4]) end
  return d, m
end
-- removes up to prune members of a sorted set scored at most max, and
-- returns the sum of their weights
local function drop(key, max)
  local gone = redis.call('ZRANGEBYSCORE', key, '-inf', max, 'LIMIT', 0, prune)
  local sum = 0
  for i = 1, #gone do sum = sum + weight(gone[i]) end
  if #gone > 0 then redis.call('ZREMRANGEBYRANK', key, 0, #gone - 1) end
  return sum
end
-- the sum of every weight in a sorted set: only to heal a lost total
local function total(key)
  local sum = 0
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do sum = sum + weight(m) end
  return sum
end
`

// admitScript: KEYS r, t, ts, s, b, bq; ARGV id, window_ms, rpm, tpm, need,
// stream, max_streams, budget_day, budget_month, ttl_ms, check, cost,
// rebuild, offset_ms. With check "1" it decides and takes nothing (Check).
// Returns {refused kind or "", retry_ms, requests in window, tokens in
// window, requests reset ms, tokens reset ms, now ms}; kind "rebuild" asks
// for the budget state to be rebuilt from the ledger first: it is missing
// (Redis restarted or was flushed) or ARGV rebuild is "1".
const admitScript = luaClock + `
local id = ARGV[1]
local window, rpm, tpm, need = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local stream, maxs = ARGV[6] == '1', tonumber(ARGV[7])
local dlim, mlim, ttl = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local check, cost = ARGV[11] == '1', tonumber(ARGV[12])
local budgeted = dlim > 0 or mlim > 0
if budgeted and (ARGV[13] == '1' or redis.call('EXISTS', KEYS[5]) == 0) then
  return {'rebuild', 0, 0, 0, 0, 0, now}
end
local cut = now - window
-- requests: the window's count is exact even while expired entries wait
-- for their turn to be removed
local expired = redis.call('ZCOUNT', KEYS[1], '-inf', cut)
if expired > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, math.min(expired, prune) - 1) end
local nreq = redis.call('ZCARD', KEYS[1]) - math.max(expired - prune, 0)
-- tokens: the running total, less what leaves the window now; entries
-- still waiting to be removed count a little longer (never less)
local ntok = redis.call('ZCARD', KEYS[2])
local used = 0
if ntok > 0 then
  local raw = redis.call('GET', KEYS[3])
  used = tonumber(raw or '-1')
  if used < 0 then used = total(KEYS[2]) end
  used = used - drop(KEYS[2], cut)
  redis.call('SET', KEYS[3], int(used), 'KEEPTTL')
else
  redis.call('DEL', KEYS[3])
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local kind, retry = '', 0
local dspent, mspent, res = 0, 0, 0
if rpm > 0 and nreq >= rpm then
  kind = 'requests'
  local first = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. cut, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  retry = tonumber(first[2]) + window - now
elseif tpm > 0 and used + need > tpm then
  -- wait until enough of the oldest entries leave, looking at no more
  -- than prune of them (then: when the last one looked at leaves)
  kind, retry = 'tokens', window
  local free = used + need - tpm
  local old = redis.call('ZRANGE', KEYS[2], 0, prune - 1, 'WITHSCORES')
  for i = 1, #old, 2 do
    free = free - weight(old[i])
    retry = tonumber(old[i + 1]) + window - now
    if free <= 0 then break end
  end
elseif stream and maxs > 0 and redis.call('ZCARD', KEYS[4]) >= maxs then
  kind, retry = 'concurrency', 1000
elseif budgeted then
  local d, m = spent(KEYS[5])
  dspent, mspent = d, m
  local res0 = tonumber(redis.call('HGET', KEYS[5], 'res') or '0')
  local gone = drop(KEYS[6], now)
  if redis.call('ZCARD', KEYS[6]) > 0 then res = math.max(res0 - gone, 0) end
  if res ~= res0 then redis.call('HSET', KEYS[5], 'res', int(res)) end
  if dlim > 0 and d + res >= dlim then
    kind = d >= dlim and 'budget_day' or 'budget_reserved'
  elseif mlim > 0 and m + res >= mlim then
    kind = m >= mlim and 'budget_month' or 'budget_reserved'
  end
end
if kind == '' and not check then
  if rpm > 0 then
    redis.call('ZADD', KEYS[1], now, id)
    redis.call('PEXPIRE', KEYS[1], window)
    nreq = nreq + 1
  end
  if tpm > 0 then
    if redis.call('ZADD', KEYS[2], now, id .. ':' .. ARGV[5]) == 1 then used = used + need end
    redis.call('SET', KEYS[3], int(used), 'PX', window)
    redis.call('PEXPIRE', KEYS[2], window)
  end
  if stream and maxs > 0 then
    redis.call('ZADD', KEYS[4], now + ttl, id)
    redis.call('PEXPIRE', KEYS[4], ttl)
  end
  if budgeted and cost > 0 then
    if redis.call('ZADD', KEYS[6], now + ttl, id .. ':' .. ARGV[12]) == 1 then
      redis.call('HINCRBY', KEYS[5], 'res', cost)
    end
    redis.call('PEXPIRE', KEYS[6], budget_ttl)
    redis.call('PEXPIRE', KEYS[5], budget_ttl)
  end
end
local rreset, treset = 0, 0
if nreq > 0 then
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  rreset = tonumber(last[2]) + window - now
end
if used > 0 then
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  if #last > 0 then treset = tonumber(last[2]) + window - now end
end
return {kind, retry, nreq, used, rreset, treset, now}
`

// settleScript: KEYS t, ts, s, b, bq; ARGV id, reserved, actual, tpm,
// window_ms, cost, reserved_cost, offset_ms. Replaces the token and budget
// reservations by what the request used and frees its slot. With actual and
// cost 0 it only gives back what the request holds, so it can be retried.
// The cost is added only to a budget state that exists: a missing one is
// rebuilt from the ledger, which has the request's record.
const settleScript = luaClock + `
local id, reserved, actual = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local tpm, window, cost, rcost = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('ZREM', KEYS[1], id .. ':' .. ARGV[2]) == 1 and reserved > 0 then
  redis.call('DECRBY', KEYS[2], reserved)
end
if tpm > 0 and actual > 0 then
  if redis.call('ZADD', KEYS[1], now, id .. ':' .. ARGV[3]) == 1 then redis.call('INCRBY', KEYS[2], actual) end
  redis.call('PEXPIRE', KEYS[1], window)
  redis.call('PEXPIRE', KEYS[2], window)
end
redis.call('ZREM', KEYS[3], id)
local exists = redis.call('EXISTS', KEYS[4]) == 1
if rcost > 0 and redis.call('ZREM', KEYS[5], id .. ':' .. ARGV[7]) == 1 and exists then
  local res = tonumber(redis.call('HGET', KEYS[4], 'res') or '0')
  redis.call('HSET', KEYS[4], 'res', int(math.max(res - rcost, 0)))
end
if cost > 0 and exists then
  local d, m = spent(KEYS[4])
  redis.call('HSET', KEYS[4], 'day', day, 'dspent', int(d + cost), 'month', month, 'mspent', int(m + cost))
  redis.call('PEXPIRE', KEYS[4], budget_ttl)
end
return 1
`

// mergeScript: KEYS b, bq; ARGV day, day_spent, month, month_spent,
// offset_ms. Brings a key's budget state up to what the ledger says was
// spent in that day and month: a missing state is created (its
// reservations summed from bq), an existing one keeps the larger figure,
// since each may hold costs the other has not seen yet.
const mergeScript = luaClock + `
local aday, aspent, amonth, amspent = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 'day', 'dspent', 'month', 'mspent')
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('HSET', KEYS[1], 'res', int(total(KEYS[2])))
  b = {false, false, false, false}
end
local sday, sspent, smonth, smspent = tonumber(b[1]), tonumber(b[2]), tonumber(b[3]), tonumber(b[4])
if sday == nil or sday < aday then sday, sspent = aday, aspent
elseif sday == aday then sspent = math.max(sspent, aspent) end
if smonth == nil or smonth < amonth then smonth, smspent = amonth, amspent
elseif smonth == amonth then smspent = math.max(smspent, amspent) end
redis.call('HSET', KEYS[1], 'day', sday, 'dspent', int(sspent), 'month', smonth, 'mspent', int(smspent))
redis.call('PEXPIRE', KEYS[1], budget_ttl)
return 1
`

// refreshScript: KEYS s, bq; ARGV id, ttl_ms, budget member or "",
// offset_ms. Extends a live request's slot and budget reservation; one
// already expired (or released) is left gone.
const refreshScript = luaClock + `
local ttl = tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
if ARGV[3] ~= '' and redis.call('ZSCORE', KEYS[2], ARGV[3]) then
  redis.call('ZADD', KEYS[2], 'XX', now + ttl, ARGV[3])
end
return 1
`
