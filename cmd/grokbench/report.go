package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// report is the outcome of a run; it is also written as results.json.
type report struct {
	Date            string
	Machine         string
	Grokgate        string // revision of the binary measured
	GrokgateCommand string
	Features        string
	Command         string
	Targets         []*targetReport
	Checks          []check
	// Relay and RelayResponses are gateway's BenchmarkRelay and
	// BenchmarkRelayResponses (one per dialect), run by the bench for the
	// allocations-per-event target; RelayErr says why they are missing.
	Relay          *benchResult `json:",omitempty"`
	RelayResponses *benchResult `json:",omitempty"`
	RelayErr       string       `json:",omitempty"`
	// OutsideCores is the CPU, in cores, that processes other than the
	// bench and its servers used during the measurements (mean and worst
	// measurement): other people's jobs on a shared machine.
	OutsideCores, OutsideMaxCores float64
	// LoadgenCores is the load generator's own CPU, in cores, during the
	// measurements.
	LoadgenCores float64
	// CapacityNote says why fewer streams were opened than asked for.
	CapacityNote string `json:",omitempty"`

	cfg     config
	measure usage
}

type targetReport struct {
	Name, Label string
	Closed      *phaseReport `json:",omitempty"`
	Open        *phaseReport `json:",omitempty"`
	Stream      *phaseReport `json:",omitempty"` // chat completions streams
	Responses   *phaseReport `json:",omitempty"` // Responses API streams
	Capacity    *capResult   `json:",omitempty"`
	// CapacityH2 is the same run with an HTTP/2 (TLS) upstream, as xAI's:
	// for grokgate, and for the bare proxy as what net/http alone keeps per
	// stream in that shape.
	CapacityH2 *capResult `json:",omitempty"`

	raw map[string]*tally
	use map[string]usage
	rps map[string][]float64
	p50 map[string][]float64 // each round's median latency (time to first event for streams), ms
}

// phaseReport summarises one phase over all rounds. Latencies are in ms.
type phaseReport struct {
	Requests, Errors     int64
	FirstErr             string `json:",omitempty"`
	RPS                  float64
	RoundRPS             []float64
	RoundP50             []float64 // each round's median latency, ms
	P50, P90, P99, P999  float64
	Max                  float64
	GapP50, GapP99       float64 `json:",omitempty"`
	TotalP50, TotalP99   float64 `json:",omitempty"` // streams: send to the stream's end
	LagP50, LagP99       float64 `json:",omitempty"` // open loop: the generator's own lateness
	CPUPer1k             float64 // server process CPU seconds per 1000 requests
	UpstreamCPUPer1k     float64 `json:",omitempty"`
	sorted, sortedGaps   samples
	measuredCPU, elapsed float64
}

type check struct {
	Target, Measured string
	Pass             *bool // nil: not measured by this run
}

func newReport(cfg config, bin string) *report {
	r := &report{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Machine: machine(), Grokgate: revision(bin), cfg: cfg}
	r.Command = "go run ./cmd/grokbench"
	for _, a := range cfg.args {
		if a == "" || strings.ContainsAny(a, " \t'\"") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		r.Command += " " + a
	}
	// The order is the table's and the chart legend's. The hop sits between
	// the floor and the proxy: what any gateway's extra hop costs here.
	for _, n := range [][2]string{{"floor", "simulator (floor)"}, {"hop", "one TCP hop (no HTTP)"},
		{"proxy", "bare proxy (baseline)"}, {"grokgate", "grokgate"}} {
		r.Targets = append(r.Targets, &targetReport{Name: n[0], Label: n[1],
			raw: map[string]*tally{}, use: map[string]usage{}, rps: map[string][]float64{}, p50: map[string][]float64{}})
	}
	return r
}

// phase is where t keeps the summary of the named phase.
func (t *targetReport) phase(name string) **phaseReport {
	switch name {
	case "closed":
		return &t.Closed
	case "open":
		return &t.Open
	case "stream":
		return &t.Stream
	case "responses":
		return &t.Responses
	}
	panic("unknown phase " + name)
}

func (r *report) target(name string) *targetReport {
	for _, t := range r.Targets {
		if t.Name == name {
			return t
		}
	}
	panic("unknown target " + name)
}

// add records one measurement.
func (r *report) add(target, phase string, res tally, u usage) {
	t := r.target(target)
	if t.raw[phase] == nil {
		t.raw[phase] = &tally{}
	}
	t.raw[phase].merge(&res)
	t.raw[phase].elapsed += res.elapsed
	t.use[phase] = t.use[phase].add(u)
	t.rps[phase] = append(t.rps[phase], float64(res.ok)/res.elapsed.Seconds())
	t.p50[phase] = append(t.p50[phase], ms(res.lat.sorted().pct(.5)))
	r.measure = r.measure.add(u)
	r.OutsideMaxCores = max(r.OutsideMaxCores, u.outside())
}

// finish turns the raw measurements into the summary and the checks.
func (r *report) finish() {
	for _, t := range r.Targets {
		for phase, raw := range t.raw {
			u := t.use[phase]
			p := &phaseReport{Requests: raw.ok, Errors: raw.errs, FirstErr: raw.firstErr, RoundRPS: t.rps[phase], RoundP50: t.p50[phase],
				sorted: raw.lat.sorted(), sortedGaps: raw.gaps.sorted(), measuredCPU: u.Proc, elapsed: raw.elapsed.Seconds()}
			p.RPS = float64(raw.ok) / raw.elapsed.Seconds()
			p.P50, p.P90, p.P99, p.P999 = ms(p.sorted.pct(.5)), ms(p.sorted.pct(.9)), ms(p.sorted.pct(.99)), ms(p.sorted.pct(.999))
			p.Max = ms(p.sorted.pct(1))
			if len(p.sortedGaps) > 0 {
				p.GapP50, p.GapP99 = ms(p.sortedGaps.pct(.5)), ms(p.sortedGaps.pct(.99))
			}
			if total := raw.total.sorted(); len(total) > 0 {
				p.TotalP50, p.TotalP99 = ms(total.pct(.5)), ms(total.pct(.99))
			}
			if lag := raw.lag.sorted(); len(lag) > 0 {
				p.LagP50, p.LagP99 = ms(lag.pct(.5)), ms(lag.pct(.99))
			}
			if raw.ok > 0 {
				p.CPUPer1k = u.Proc / float64(raw.ok) * 1000
				if t.Name != "floor" {
					p.UpstreamCPUPer1k = u.Up / float64(raw.ok) * 1000
				}
			}
			*t.phase(phase) = p
		}
	}
	if r.measure.Wall > 0 {
		r.OutsideCores = r.measure.outside()
		r.LoadgenCores = r.measure.Self / r.measure.Wall
	}
	r.Checks = r.checks()
}

// byRound compares two targets' throughput round by round: each round
// measured both within seconds of each other, so the spread of these ratios
// shows how much of the overall one the machine's drift could have made.
func byRound(gw, proxy []float64) string {
	lo, hi, ahead, n := roundSpread(gw, proxy, func(g, p float64) float64 { return g / p }, func(q float64) bool { return q > 1 })
	if n < 2 {
		return ""
	}
	return fmt.Sprintf("%.2f–%.2f× by round, ahead in %d of %d", lo, hi, ahead, n)
}

// firstByRound compares grokgate's median time to first event with the
// proxy's round by round. Within a round both, and the floor, were measured
// seconds apart, so the difference of their medians is the difference of
// what each added over the floor, with less of the machine's drift between
// rounds in it than the medians over all rounds have.
func firstByRound(gw, proxy []float64) string {
	lo, hi, within, n := roundSpread(gw, proxy, func(g, p float64) float64 { return g - p }, func(d float64) bool { return d <= 0 })
	if n < 2 {
		return ""
	}
	return fmt.Sprintf("grokgate − proxy %s to %s ms by round, at or under the proxy in %d of %d", signed(lo), signed(hi), within, n)
}

// roundSpread compares grokgate's and the proxy's figure of every round
// both were measured in: the smallest and largest comparison, in how many
// of the n rounds it was good.
func roundSpread(gw, proxy []float64, compare func(g, p float64) float64, good func(float64) bool) (lo, hi float64, k, n int) {
	n = min(len(gw), len(proxy))
	lo, hi = math.Inf(1), math.Inf(-1)
	for i := range n {
		c := compare(gw[i], proxy[i])
		lo, hi = min(lo, c), max(hi, c)
		if good(c) {
			k++
		}
	}
	return lo, hi, k, n
}

func (r *report) checks() []check {
	floor, hop, proxy, gw := r.target("floor"), r.target("hop"), r.target("proxy"), r.target("grokgate")
	var out []check
	add := func(target, measured string, pass bool) {
		out = append(out, check{Target: target, Measured: measured, Pass: &pass})
	}
	if gw.Closed != nil && proxy.Closed != nil {
		ratio := gw.Closed.RPS / proxy.Closed.RPS
		m := fmt.Sprintf("%.2f× (%s vs %s req/s at %d connections)", ratio, thousands(gw.Closed.RPS), thousands(proxy.Closed.RPS), r.cfg.concurrency)
		if by := byRound(gw.Closed.RoundRPS, proxy.Closed.RoundRPS); by != "" {
			m += "; " + by
		}
		add("non-streaming throughput ≥ 1.0× bare proxy", m, ratio >= 1.0)
		add(fmt.Sprintf("non-streaming p99 ≤ bare proxy's, %d connections", r.cfg.concurrency),
			fmt.Sprintf("%s vs %s ms", msf(gw.Closed.P99), msf(proxy.Closed.P99)), gw.Closed.P99 <= proxy.Closed.P99)
	}
	if gw.Open != nil && proxy.Open != nil {
		add(fmt.Sprintf("non-streaming p99 ≤ bare proxy's, %s req/s offered", thousands(r.cfg.rate)),
			fmt.Sprintf("%s vs %s ms", msf(gw.Open.P99), msf(proxy.Open.P99)), gw.Open.P99 <= proxy.Open.P99)
	}
	for _, api := range streamAPIs {
		g, p, f := *gw.phase(api.phase), *proxy.phase(api.phase), *floor.phase(api.phase)
		if g == nil || p == nil || f == nil {
			continue
		}
		added, proxyAdded := g.P50-f.P50, p.P50-f.P50
		m := fmt.Sprintf("%s vs %s ms", signed(added), signed(proxyAdded))
		if by := firstByRound(g.RoundP50, p.RoundP50); by != "" {
			m += "; " + by
		}
		add(fmt.Sprintf("%s time to first event added over the floor ≤ bare proxy's, median", api.title), m, added <= proxyAdded)
	}
	if gw.Stream != nil && floor.Stream != nil {
		added := gw.Stream.P50 - floor.Stream.P50
		m := fmt.Sprintf("%s ms (%s vs %s ms)", msf(added), msf(gw.Stream.P50), msf(floor.Stream.P50))
		if hop.Stream != nil {
			// The least any gateway in its own process can add here.
			m += fmt.Sprintf("; one TCP hop alone adds %s ms", signed(hop.Stream.P50-floor.Stream.P50))
		}
		if proxy.Stream != nil {
			m += fmt.Sprintf(", the bare proxy %s ms", signed(proxy.Stream.P50-floor.Stream.P50))
		}
		add("streaming time to first byte added over the floor ≤ 0.2 ms median", m, added <= 0.2)
	}
	if c := gw.CapacityH2; c != nil && c.Want >= 10000 {
		m := fmt.Sprintf("%s of %s open, %d errors, %.1f KiB each, with an HTTP/2 upstream", thousands(float64(c.Opened)), thousands(float64(c.Want)), c.Errors, c.PerStreamKiB)
		if h1 := gw.Capacity; h1 != nil {
			m += fmt.Sprintf("; %.1f KiB each over HTTP/1.1 (%s streams)", h1.PerStreamKiB, thousands(float64(h1.Opened)))
		}
		if pc := proxy.CapacityH2; pc != nil {
			m += fmt.Sprintf("; the bare proxy, through the same HTTP/2 upstream, %.1f KiB each", pc.PerStreamKiB)
		}
		add("10,000 open streams, ≤ 32 KiB RSS each, no errors", m, c.Opened == c.Want && c.Errors == 0 && c.PerStreamKiB <= 32)
	} else if c := gw.Capacity; c != nil {
		m := fmt.Sprintf("%s of %s open, %d errors, %.1f KiB each", thousands(float64(c.Opened)), thousands(float64(c.Want)), c.Errors, c.PerStreamKiB)
		if c.Want < 10000 {
			why := "only " + thousands(float64(c.Want)) + " tried"
			if r.CapacityNote != "" {
				why = r.CapacityNote
			}
			out = append(out, check{Target: "10,000 open streams, ≤ 32 KiB RSS each, no errors", Measured: m + " (" + why + ")"})
		} else {
			add("10,000 open streams, ≤ 32 KiB RSS each, no errors", m, c.Opened == c.Want && c.Errors == 0 && c.PerStreamKiB <= 32)
		}
	}
	var errs int64
	for _, p := range []*phaseReport{gw.Closed, gw.Open, gw.Stream, gw.Responses} {
		if p != nil {
			errs += p.Errors
		}
	}
	add("grokgate answers every request without error", fmt.Sprintf("%d errors", errs), errs == 0)
	const relayTarget = "0 allocations per relayed SSE event"
	if b, rb := r.Relay, r.RelayResponses; b != nil && rb != nil {
		add(relayTarget, fmt.Sprintf("`BenchmarkRelay` (chat): %g B and %g allocations per event, %.0f ns; `BenchmarkRelayResponses`: %g B and %g allocations per event, %.0f ns",
			b.BytesPerOp, b.AllocsPerOp, b.NsPerOp, rb.BytesPerOp, rb.AllocsPerOp, rb.NsPerOp),
			b.AllocsPerOp == 0 && rb.AllocsPerOp == 0)
	} else {
		why := "not run (grokgate not built from this module, or --relay-bench=false)"
		if r.RelayErr != "" {
			why = "not measured: " + r.RelayErr
		}
		out = append(out, check{Target: relayTarget, Measured: why})
	}
	return out
}

// markdown renders the report as the table docs/benchmarks.md shows.
func (r *report) markdown() string {
	var b strings.Builder
	floor, hop, proxy, gw := r.target("floor"), r.target("hop"), r.target("proxy"), r.target("grokgate")
	cfg := r.cfg
	fmt.Fprintf(&b, "## grokbench results, %s\n\n", r.Date)
	fmt.Fprintf(&b, "- machine: %s; load generator and all servers share it\n", r.Machine)
	fmt.Fprintf(&b, "- grokgate %s: `%s`; %s\n", r.Grokgate, r.GrokgateCommand, r.Features)
	fmt.Fprintf(&b, "- command: `%s`\n", r.Command)
	fmt.Fprintf(&b, "- %d interleaved rounds of %s per target and phase; load generator used %.2f cores, other processes on the machine %.2f cores on average (worst measurement %.2f)\n\n",
		cfg.rounds, cfg.duration, r.LoadgenCores, r.OutsideCores, r.OutsideMaxCores)

	b.WriteString("| | simulator (floor) | one TCP hop (no HTTP) | bare proxy (baseline) | grokgate | grokgate ÷ proxy |\n|---|--:|--:|--:|--:|--:|\n")
	row := func(label string, f func(*targetReport) string, ratio string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", label, f(floor), f(hop), f(proxy), f(gw), ratio)
	}
	section := func(s string) { fmt.Fprintf(&b, "| **%s** | | | | | |\n", s) }
	get := func(t *targetReport, phase string) *phaseReport { return *t.phase(phase) }
	val := func(phase string, f func(*phaseReport) string) func(*targetReport) string {
		return func(t *targetReport) string {
			if p := get(t, phase); p != nil {
				return f(p)
			}
			return "–"
		}
	}
	ratio := func(phase string, f func(*phaseReport) float64) string {
		p, g := get(proxy, phase), get(gw, phase)
		if p == nil || g == nil || f(p) == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", f(g)/f(p))
	}
	lat3 := func(p *phaseReport) string { return msf(p.P50) + " / " + msf(p.P90) + " / " + msf(p.P99) }
	lat3ratio := func(phase string) string {
		return strings.Join([]string{ratio(phase, func(p *phaseReport) float64 { return p.P50 }),
			ratio(phase, func(p *phaseReport) float64 { return p.P90 }), ratio(phase, func(p *phaseReport) float64 { return p.P99 })}, " / ")
	}
	perRound := func(phase string) string {
		tr := ratio(phase, func(p *phaseReport) float64 { return p.RPS })
		if p, g := get(proxy, phase), get(gw, phase); p != nil && g != nil {
			if by := byRound(g.RoundRPS, p.RoundRPS); by != "" {
				tr += " (" + by + ")"
			}
		}
		return tr
	}
	rounds := func(p *phaseReport) string {
		if len(p.RoundRPS) < 2 {
			return thousands(p.RPS)
		}
		return fmt.Sprintf("%s (%s–%s)", thousands(p.RPS), thousands(slices.Min(p.RoundRPS)), thousands(slices.Max(p.RoundRPS)))
	}
	cpu := func(p *phaseReport) string {
		s := fmt.Sprintf("%.3f", p.CPUPer1k)
		if p.UpstreamCPUPer1k > 0 {
			s += fmt.Sprintf(" (+%.3f upstream)", p.UpstreamCPUPer1k)
		}
		return s
	}
	errs := func(phase string) func(*targetReport) string {
		return val(phase, func(p *phaseReport) string {
			return fmt.Sprintf("%d of %s", p.Errors, thousands(float64(p.Requests+p.Errors)))
		})
	}

	ran := func(phase string) bool {
		return get(gw, phase) != nil || get(proxy, phase) != nil || get(hop, phase) != nil || get(floor, phase) != nil
	}
	if ran("closed") {
		section(fmt.Sprintf("non-streaming, closed loop, %d connections", cfg.concurrency))
		row("throughput, req/s (slowest–fastest round)", val("closed", rounds), perRound("closed"))
		row("latency p50 / p90 / p99, ms", val("closed", lat3), lat3ratio("closed"))
		row("CPU s per 1,000 requests, server process", val("closed", cpu), ratio("closed", func(p *phaseReport) float64 { return p.CPUPer1k }))
		row("errors", errs("closed"), "")
	}
	if ran("open") {
		section(fmt.Sprintf("non-streaming, open loop, %s req/s offered", thousands(cfg.rate)))
		row("achieved, req/s", val("open", func(p *phaseReport) string { return thousands(p.RPS) }), ratio("open", func(p *phaseReport) float64 { return p.RPS }))
		row("latency from intended send p50 / p90 / p99, ms", val("open", lat3), lat3ratio("open"))
		row("latency p99.9 / max, ms", val("open", func(p *phaseReport) string { return msf(p.P999) + " / " + msf(p.Max) }), ratio("open", func(p *phaseReport) float64 { return p.P999 }))
		row("of which the generator sent late p50 / p99, ms", val("open", func(p *phaseReport) string { return msf(p.LagP50) + " / " + msf(p.LagP99) }), "")
		row("CPU s per 1,000 requests, server process", val("open", cpu), ratio("open", func(p *phaseReport) float64 { return p.CPUPer1k }))
		row("errors", errs("open"), "")
	}
	for _, api := range streamAPIs {
		ph := api.phase
		if !ran(ph) {
			continue
		}
		section(fmt.Sprintf("%s, %d concurrent streams of %d chunks %s apart", api.title, cfg.streamConc, cfg.streamChunks, cfg.streamDelay))
		row("throughput, streams/s (slowest–fastest round)", val(ph, rounds), perRound(ph))
		row("stream from send to its end p50 / p99, ms", val(ph, func(p *phaseReport) string { return msf(p.TotalP50) + " / " + msf(p.TotalP99) }),
			ratio(ph, func(p *phaseReport) float64 { return p.TotalP50 })+" / "+ratio(ph, func(p *phaseReport) float64 { return p.TotalP99 }))
		row("time to first event p50 / p99, ms", val(ph, func(p *phaseReport) string { return msf(p.P50) + " / " + msf(p.P99) }), "")
		added := func(f func(*phaseReport) float64) func(*targetReport) string {
			return func(t *targetReport) string {
				p, fl := get(t, ph), get(floor, ph)
				if t == floor || p == nil || fl == nil {
					return "–"
				}
				return fmt.Sprintf("%+.3f", f(p)-f(fl))
			}
		}
		both := func(a, c func(*targetReport) string) func(*targetReport) string {
			return func(t *targetReport) string { return a(t) + " / " + c(t) }
		}
		row("time to first event added over floor p50 / p99, ms", both(added(func(p *phaseReport) float64 { return p.P50 }), added(func(p *phaseReport) float64 { return p.P99 })), "")
		row("gap between text events p50 / p99, ms", val(ph, func(p *phaseReport) string { return msf(p.GapP50) + " / " + msf(p.GapP99) }), "")
		row("gap added over floor p50 / p99, ms", both(added(func(p *phaseReport) float64 { return p.GapP50 }), added(func(p *phaseReport) float64 { return p.GapP99 })), "")
		// A gateway's first event waits on its CPU per stream as much as on
		// its request path (docs/benchmarks.md), so it is shown beside it.
		row("CPU s per 1,000 streams, server process", val(ph, cpu), ratio(ph, func(p *phaseReport) float64 { return p.CPUPer1k }))
		row("errors", errs(ph), "")
	}
	if proxy.Capacity != nil || gw.Capacity != nil {
		n := cfg.streams
		if gw.Capacity != nil {
			n = gw.Capacity.Want
		}
		section(fmt.Sprintf("capacity, %s slow streams held open (one event per %s)", thousands(float64(n)), cfg.slowDelay))
		capRows(row, proxy, gw, func(t *targetReport) *capResult { return t.Capacity })
	}
	if c := gw.CapacityH2; c != nil {
		section(fmt.Sprintf("capacity, %s slow streams, with an HTTP/2 (TLS) upstream as xAI's", thousands(float64(c.Want))))
		capRows(row, proxy, gw, func(t *targetReport) *capResult { return t.CapacityH2 })
	}
	b.WriteString("\nCPU is user+system time of the server process from /proc/PID/stat (the floor's is the simulator's; \"upstream\" is the simulator behind a gateway). ")
	b.WriteString("Latency is measured by the load generator, from send (closed loop, streams) or from the scheduled send time (open loop) to the last byte or the first event. ")
	b.WriteString("The TCP hop relays bytes without reading them: what it adds is the extra hop alone, the least any gateway in its own process adds on this machine.\n\n")
	b.WriteString("| target | measured | holds |\n|---|---|---|\n")
	for _, c := range r.Checks {
		v := "not checked"
		if c.Pass != nil {
			v = map[bool]string{true: "yes", false: "**no**"}[*c.Pass]
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Target, c.Measured, v)
	}
	for _, t := range r.Targets {
		for _, p := range []*phaseReport{t.Closed, t.Open, t.Stream, t.Responses} {
			if p != nil && p.FirstErr != "" {
				fmt.Fprintf(&b, "\nfirst error from %s: %s\n", t.Name, p.FirstErr)
				break
			}
		}
		if c := t.Capacity; c != nil && c.FirstErr != "" {
			fmt.Fprintf(&b, "\nfirst capacity error from %s: %s\n", t.Name, c.FirstErr)
		}
	}
	return b.String()
}

// msf formats milliseconds with the precision that suits them.
func msf(v float64) string {
	switch a := math.Abs(v); {
	case a < 1:
		return fmt.Sprintf("%.3f", v)
	case a < 10:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// signed is msf with a sign, for differences.
func signed(v float64) string {
	if v >= 0 {
		return "+" + msf(v)
	}
	return msf(v)
}

// thousands formats a count with thousands separators.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// capRows writes a capacity section's rows from the result of that run
// that of picks out of each target, with grokgate's per-stream RSS as a
// ratio to the proxy's.
func capRows(row func(name string, v func(*targetReport) string, ratio string), proxy, gw *targetReport, of func(*targetReport) *capResult) {
	capv := func(f func(*capResult) string) func(*targetReport) string {
		return func(t *targetReport) string {
			if of(t) == nil {
				return "–"
			}
			return f(of(t))
		}
	}
	ratio := "–"
	if p, g := of(proxy), of(gw); p != nil && g != nil && p.PerStreamKiB != 0 {
		ratio = fmt.Sprintf("%.2f×", g.PerStreamKiB/p.PerStreamKiB)
	}
	row("streams open / errors", capv(func(c *capResult) string { return fmt.Sprintf("%s / %d", thousands(float64(c.Opened)), c.Errors) }), "")
	row("RSS idle → all open", capv(func(c *capResult) string { return kib(c.IdleKiB) + " → " + kib(c.HeldKiB) }), "")
	row("RSS per open stream, KiB", capv(func(c *capResult) string { return fmt.Sprintf("%.1f", c.PerStreamKiB) }), ratio)
}
