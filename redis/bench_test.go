package redis

import (
	"context"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/grokgate/grokgate/internal/redistest"
)

// BenchmarkAdmitMillionEntryWindow is one admission on a key whose token
// window holds 1,000,000 entries, with the admission script grokgate had
// before running totals (oldAdmitScript: it read and summed the whole
// window on every call) and with admitScript, in the same run on the same
// Redis and the same window. It reports old_ns/admit, x_faster (old over
// new) and x_empty_window (new on this window over new on an empty one,
// about 1 when the cost does not grow with the window). The old script is timed on two calls only: each one holds Redis's
// one thread for the length of the window.
func BenchmarkAdmitMillionEntryWindow(b *testing.B) {
	url := redistest.URL(b)
	ro, _ := goredis.ParseURL(url)
	ro.ReadTimeout = 30 * time.Second
	rdb := goredis.NewClient(ro)
	defer rdb.Close()
	ctx := context.Background()
	p := redistest.Prefix() + "{bench}:"
	keys := []string{p + "r", p + "t", p + "ts", p + "s", p + "b", p + "bq"}
	defer rdb.Del(ctx, keys...)

	const entries = 1_000_000
	var t0 int64
	if tm, err := rdb.Time(ctx).Result(); err != nil {
		b.Fatal(err)
	} else {
		t0 = tm.UnixMilli()
	}
	members := make([]goredis.Z, 0, 10_000)
	for i := 0; i < entries; i += cap(members) {
		members = members[:0]
		for j := i; j < i+cap(members); j++ {
			members = append(members, goredis.Z{Score: float64(t0 - int64(j%10_000)), Member: "seed" + strconv.Itoa(j) + ":1"})
		}
		if err := rdb.ZAdd(ctx, keys[1], members...).Err(); err != nil {
			b.Fatal(err)
		}
	}
	rdb.Set(ctx, keys[2], entries, 0)
	rdb.PExpire(ctx, keys[1], time.Hour)
	rdb.PExpire(ctx, keys[2], time.Hour)

	const window, tpm = 60_000, 1 << 50
	oldScript, newScript := goredis.NewScript(oldAdmitScript), goredis.NewScript(admitScript)
	oldAdmit := func(id string) {
		res, err := oldScript.Run(ctx, rdb, []string{keys[0], keys[1], keys[3], keys[4]},
			id, window, 0, tpm, 1, "0", 0, 0, 0, 9000, "0", 0).Slice()
		if err != nil || res[0] != "" || res[3].(int64) < entries*9/10 {
			b.Fatalf("old admission: %v %v", res, err)
		}
	}
	newAdmit := func(id string) {
		res, err := newScript.Run(ctx, rdb, keys,
			id, window, 0, tpm, 1, "0", 0, 0, 0, 9000, "0", 0, "0", 0).Slice()
		if err != nil || res[0] != "" || res[3].(int64) < entries*9/10 {
			b.Fatalf("new admission: %v %v", res, err)
		}
	}
	emptyKeys := []string{p + "er", p + "et", p + "ets", p + "es", p + "eb", p + "ebq"}
	defer rdb.Del(ctx, emptyKeys...)
	emptyAdmit := func(id string) {
		if err := newScript.Run(ctx, rdb, emptyKeys, id, window, 0, tpm, 1, "0", 0, 0, 0, 9000, "0", 0, "0", 0).Err(); err != nil {
			b.Fatal(err)
		}
	}
	newAdmit("warm") // loads the script
	oldAdmit("warm-old")
	const oldRuns = 2
	start := time.Now()
	for i := range oldRuns {
		oldAdmit("old" + strconv.Itoa(i))
	}
	oldPer := time.Since(start) / oldRuns

	// The same number of admissions on an empty window: the new script's
	// cost must not depend on the window.
	const emptyRuns = 1000
	start = time.Now()
	for i := range emptyRuns {
		emptyAdmit("empty" + strconv.Itoa(i))
	}
	emptyPer := time.Since(start) / emptyRuns

	b.ResetTimer()
	i := 0
	for b.Loop() {
		newAdmit("new" + strconv.Itoa(i))
		i++
	}
	newPer := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(oldPer.Nanoseconds()), "old_ns/admit")
	b.ReportMetric(float64(emptyPer.Nanoseconds()), "empty_window_ns/admit")
	b.ReportMetric(float64(oldPer)/float64(newPer), "x_faster")
	b.ReportMetric(float64(newPer)/float64(emptyPer), "x_empty_window")
}

// oldAdmitScript is the admission script before running totals, kept here
// as the benchmark's baseline. KEYS reqs, toks, slots, budget.
const oldAdmitScript = luaClock + `
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
