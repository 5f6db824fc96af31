package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grokgate/grokgate/sse"
)

// target is one server under measurement.
type target struct {
	name  string // floor, hop, proxy, grokgate
	label string // for tables
	addr  string
	proc  *child // the process whose CPU and RSS count
	up    *child // its own upstream simulator; nil for the floor
	key   string

	req, slowReq []byte
	// streamReqs are the measured streams' requests, by streamAPI.phase.
	streamReqs map[string][]byte
}

// tally is the outcome of one measurement of one target.
type tally struct {
	ok, errs int64
	elapsed  time.Duration
	lat      samples // request latency, or time to first event for streams
	gaps     samples // streams: time between consecutive content events
	total    samples // streams: time from send to the stream's end
	lag      samples // open loop: how late the generator sent, included in lat
	firstErr string
}

func (t *tally) fail(format string, a ...any) {
	t.errs++
	if t.firstErr == "" {
		t.firstErr = fmt.Sprintf(format, a...)
	}
}

func (t *tally) merge(o *tally) {
	t.ok += o.ok
	t.errs += o.errs
	t.lat = append(t.lat, o.lat...)
	t.gaps = append(t.gaps, o.gaps...)
	t.total = append(t.total, o.total...)
	t.lag = append(t.lag, o.lag...)
	if t.firstErr == "" {
		t.firstErr = o.firstErr
	}
}

// choicesKey is in every completion and in no error body.
const choicesKey = `"choices"`

// drainGrace bounds how long requests sent within a measurement may take to
// finish after it; a request still unanswered then counts as an error.
const drainGrace = 30 * time.Second

// closedLoop keeps conc connections busy for dur, each sending its next
// request when the previous one is answered: throughput at saturation.
func closedLoop(ctx context.Context, t *target, conc int, dur time.Duration) tally {
	start := time.Now()
	end := start.Add(dur)
	hard := end.Add(drainGrace)
	parts := make([]tally, conc)
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() {
			r := &parts[i]
			r.lat = make(samples, 0, 4096)
			c, err := dial(t.addr, 4096)
			if err != nil {
				r.fail("dial: %v", err)
				return
			}
			defer c.close()
			c.nc.SetDeadline(hard)
			for ctx.Err() == nil && time.Now().Before(end) {
				t0 := time.Now()
				status, body, err := c.roundTrip(t.req, hard)
				lat := time.Since(t0)
				switch {
				case err != nil:
					r.fail("%v", err)
					time.Sleep(10 * time.Millisecond) // no hot loop against a dead server
				case status != 200 || !bytes.Contains(body, []byte(choicesKey)):
					r.fail("status %d: %.200s", status, body)
				default:
					r.ok++
					r.lat = append(r.lat, int64(lat))
				}
			}
		})
	}
	wg.Wait()
	var out tally
	for i := range parts {
		out.merge(&parts[i])
	}
	out.elapsed = time.Since(start)
	return out
}

// openLoop sends rate requests per second on a fixed schedule for dur,
// whether or not earlier ones were answered, over up to maxConns
// connections. Latency runs from each request's scheduled send time, so a
// stall that delays later requests shows in their latency instead of
// silently lowering the load (coordinated omission).
func openLoop(ctx context.Context, t *target, rate float64, dur time.Duration, maxConns int) tally {
	n := max(1, int(rate*dur.Seconds()))
	interval := time.Duration(float64(time.Second) / rate)
	queue := make(chan time.Time, n)
	start := time.Now().Add(20 * time.Millisecond)
	hard := start.Add(dur + drainGrace)
	parts := make([]tally, maxConns)
	lastDone := make([]time.Time, maxConns)
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() {
			r := &parts[i]
			var c *conn
			defer func() {
				if c != nil {
					c.close()
				}
			}()
			for at := range queue {
				if ctx.Err() != nil || time.Now().After(hard) {
					r.fail("not sent: the run ended")
					continue
				}
				if c == nil { // connect only when the schedule needs this many
					var err error
					if c, err = dial(t.addr, 4096); err != nil {
						r.fail("dial: %v", err)
						c = nil
						continue
					}
					c.nc.SetDeadline(hard)
				}
				sent := time.Now()
				status, body, err := c.roundTrip(t.req, hard)
				done := time.Now()
				lastDone[i] = done
				switch {
				case err != nil:
					r.fail("%v", err)
				case status != 200 || !bytes.Contains(body, []byte(choicesKey)):
					r.fail("status %d: %.200s", status, body)
				default:
					r.ok++
					r.lat = append(r.lat, int64(done.Sub(at)))
					r.lag = append(r.lag, int64(sent.Sub(at)))
				}
			}
		})
	}
	// The schedule is exact even when a sleep overshoots: every send time
	// already due is queued at once.
	for i := 0; i < n && ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		queue <- at
	}
	close(queue)
	wg.Wait()
	var out tally
	last := start
	for i := range parts {
		out.merge(&parts[i])
		if lastDone[i].After(last) {
			last = lastDone[i]
		}
	}
	out.elapsed = last.Sub(start)
	return out
}

// streamLoop runs conc streams of api back to back for dur and records the
// time to the first event, the gaps between content events and the time to
// the stream's end.
func streamLoop(ctx context.Context, t *target, api *streamAPI, conc, chunks int, dur time.Duration) tally {
	start := time.Now()
	end := start.Add(dur)
	hard := end.Add(drainGrace)
	req := t.streamReqs[api.phase]
	parts := make([]tally, conc)
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() {
			r := &parts[i]
			c, err := dial(t.addr, 4096)
			if err != nil {
				r.fail("dial: %v", err)
				return
			}
			defer c.close()
			c.nc.SetDeadline(hard)
			buf := make([]byte, 4096)
			for ctx.Err() == nil && time.Now().Before(end) {
				if c.nc == nil {
					if err := c.redial(hard); err != nil {
						r.fail("dial: %v", err)
						time.Sleep(10 * time.Millisecond)
						continue
					}
				}
				s, err := c.stream(api, req, buf, chunks)
				if err != nil {
					r.fail("%v", err)
					c.close()
					continue
				}
				r.ok++
				r.lat = append(r.lat, int64(s.first))
				r.total = append(r.total, int64(s.total))
				r.gaps = append(r.gaps, s.gaps...)
			}
		})
	}
	wg.Wait()
	var out tally
	for i := range parts {
		out.merge(&parts[i])
	}
	out.elapsed = time.Since(start)
	return out
}

// streamTimes is what one stream measured.
type streamTimes struct {
	first, total time.Duration // from send to the first event, and to the end
	gaps         []int64       // between consecutive content events
}

// stream sends one streaming request of api and reads it to the end: it
// must carry exactly chunks content events and end as api says a complete
// stream ends, with nothing after.
func (c *conn) stream(api *streamAPI, req, buf []byte, chunks int) (streamTimes, error) {
	var st streamTimes
	t0 := time.Now()
	if _, err := c.nc.Write(req); err != nil {
		return st, err
	}
	h, err := c.readHead()
	if err != nil {
		return st, err
	}
	if h.status != 200 {
		return st, fmt.Errorf("stream status %d", h.status)
	}
	sc := sse.NewScanner(c.bodyReader(h), buf, 0)
	events, n := 0, 0
	ended := false
	var last time.Time
	var scratch []byte // for events that are more than one data line (event: lines)
	st.gaps = make([]int64, 0, chunks)
	for sc.Scan() {
		now := time.Now()
		data, ok := sse.Data(sc.Event())
		if !ok {
			scratch, _ = sse.AppendData(scratch[:0], sc.Event())
			data = scratch
		}
		if ended {
			return st, fmt.Errorf("event after the end of the stream: %q", data)
		}
		if events++; events == 1 {
			st.first = now.Sub(t0)
		}
		if bytes.Contains(data, api.content) {
			if n++; n > 1 {
				st.gaps = append(st.gaps, int64(now.Sub(last)))
			}
			last = now
		}
		end, err := api.end(data)
		if err != nil {
			return st, err
		}
		if end {
			ended = true
			st.total = now.Sub(t0)
		}
	}
	if err := sc.Err(); err != nil {
		return st, err
	}
	if !ended || n != chunks {
		return st, fmt.Errorf("%s stream ended after %d events, %d of them content (want %d and its end): %q", api.phase, events, n, chunks, sc.Event())
	}
	if err := c.endBody(h); err != nil {
		return st, err
	}
	if h.close {
		c.close()
	}
	return st, nil
}

// capResult is what holding many slow streams through one gateway cost.
type capResult struct {
	Want, Opened   int
	Errors         int64
	FirstErr       string
	IdleKiB        int64
	HeldKiB        int64
	PerStreamKiB   float64
	RampSeconds    float64
	HeldSeconds    float64
	ProcessCPUSecs float64
}

// capacity opens n slow streams through t, holds them all open for hold,
// reads the server's RSS, and closes them. A stream counts as open once its
// first event arrived; one that fails to open or ends early is an error.
func capacity(ctx context.Context, t *target, n int, hold time.Duration, progress func(string)) capResult {
	res := capResult{Want: n, IdleKiB: rssKiB(t.proc.pid)}
	cpu0, _ := cpuSeconds(t.proc.pid)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var errs atomic.Int64
	var firstErr atomic.Pointer[string]
	fail := func(err error) {
		errs.Add(1)
		s := err.Error()
		firstErr.CompareAndSwap(nil, &s)
	}
	opened := make(chan bool, n)
	// At most 256 streams are being set up at a time: enough to ramp fast,
	// few enough not to overflow listen backlogs.
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	start := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			select {
			case sem <- struct{}{}:
			case <-sctx.Done():
				for ; i < n; i++ {
					opened <- false
				}
				return
			}
			wg.Go(func() {
				released := false
				release := func(ok bool) {
					if !released {
						released = true
						<-sem
						opened <- ok
					}
				}
				defer release(false)
				c, err := dial(t.addr, 1024)
				if err != nil {
					fail(fmt.Errorf("dial: %w", err))
					return
				}
				stop := context.AfterFunc(sctx, func() { c.nc.Close() })
				defer stop()
				defer c.nc.Close()
				if _, err := c.nc.Write(t.slowReq); err != nil {
					fail(err)
					return
				}
				h, err := c.readHead()
				if err == nil && h.status != 200 {
					err = fmt.Errorf("status %d", h.status)
				}
				if err != nil {
					if sctx.Err() == nil {
						fail(err)
					}
					return
				}
				sc := sse.NewScanner(c.bodyReader(h), make([]byte, 1024), 0)
				first := true
				for sc.Scan() {
					if first {
						first = false
						release(true)
					}
				}
				if sctx.Err() == nil { // the stream ended while it should be open
					fail(fmt.Errorf("stream ended early: %v", sc.Err()))
				}
			})
		}
	}()
	up := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for got := 0; got < n; {
		select {
		case ok := <-opened:
			got++
			if ok {
				up++
			}
		case <-tick.C:
			progress(fmt.Sprintf("capacity  %-9s %6d/%d streams open, %d errors, RSS %s", t.name, up, n, errs.Load(), kib(rssKiB(t.proc.pid))))
		case <-ctx.Done():
			return res
		}
	}
	res.Opened = up
	res.RampSeconds = time.Since(start).Seconds()
	progress(fmt.Sprintf("capacity  %-9s %6d/%d streams open after %.1fs; holding %s", t.name, up, n, res.RampSeconds, hold))
	held := time.Now()
	select {
	case <-time.After(hold):
	case <-ctx.Done():
	}
	res.HeldKiB = rssKiB(t.proc.pid)
	res.HeldSeconds = time.Since(held).Seconds()
	cpu1, _ := cpuSeconds(t.proc.pid)
	res.ProcessCPUSecs = cpu1 - cpu0
	if up > 0 {
		res.PerStreamKiB = float64(res.HeldKiB-res.IdleKiB) / float64(up)
	}
	cancel()
	wg.Wait()
	res.Errors = errs.Load()
	if p := firstErr.Load(); p != nil {
		res.FirstErr = *p
	}
	return res
}

func kib(v int64) string {
	if v >= 10<<10 {
		return fmt.Sprintf("%.0f MiB", float64(v)/1024)
	}
	return fmt.Sprintf("%d KiB", v)
}
