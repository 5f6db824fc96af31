package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Lines the servers print once they listen; the group is the address.
const (
	simReady   = `xAI simulator listening on http://(\S+) `
	proxyReady = `proxy listening on http://(\S+)`
	hopReady   = `hop listening on http://(\S+)`
	gwReady    = `grokgate listening on http://(\S+) `
	frontReady = `front listening on https://(\S+)`
	keyLine    = `^gg-[A-Za-z0-9_-]{43}$`
)

// upstreamKey is what the simulators are sent; they accept any key.
const upstreamKey = "grokbench-upstream"

// The conversation every request carries: a system prompt and a question.
const (
	systemPrompt = "You are a concise assistant for an engineering team. Answer in plain prose, cite no sources, and keep every answer under one hundred words unless asked for more."
	question     = "What does a gateway in front of a model API do for the applications behind it? "
)

// chatBody is a small but typical chat request: a system prompt and a
// question. Every target gets the same bytes.
func chatBody(stream bool, directive string) []byte {
	return conversation("messages", stream, directive)
}

// conversation is the request body carrying the system prompt and the
// question (with directive) in field: chat's messages, Responses' input.
func conversation(field string, stream bool, directive string) []byte {
	b, _ := json.Marshal(map[string]any{
		"model":  "grok-4.3",
		"stream": stream,
		field: []map[string]string{
			{"role": "system", "content": systemPrompt},
			{"role": "user", "content": question + directive},
		},
	})
	return b
}

// phase is one kind of measurement, run for every target in every round.
type phase struct {
	name string
	run  func(ctx context.Context, t *target) tally
}

func bench(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	progress := func(s string) { fmt.Fprintf(stderr, "%s  %s\n", time.Now().Format("15:04:05"), s) }
	if runtime.GOOS != "linux" {
		return errors.New("grokbench reads each server's CPU and memory from /proc, so it runs on Linux only")
	}
	streams, capNote, fdLimit := cfg.streams, "", uint64(0)
	if streams > 0 {
		// A gateway holds two sockets per stream (client and upstream, which
		// is HTTP/1.1 to the simulator), plus a few files of its own. The
		// children inherit the limit; without the privilege to raise the
		// hard limit, measure as many streams as it allows and say so.
		const ownFiles = 64
		need := uint64(2*streams + ownFiles)
		got, err := raiseNoFile(need)
		fdLimit = got
		if got < need {
			streams = max(0, int(got)-ownFiles) / 2
			capNote = fmt.Sprintf("%s streams asked for, but RLIMIT_NOFILE is capped at %s here (%v), and a gateway needs two sockets per stream, so %s were opened",
				thousands(float64(cfg.streams)), thousands(float64(got)), errOr(err, "hard limit"), thousands(float64(streams)))
			progress("capacity: " + capNote)
		}
	}
	work, err := os.MkdirTemp("", "grokbench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		progress("work directory (server logs): " + work)
	} else {
		defer os.RemoveAll(work)
	}
	bin, modDir := cfg.grokgate, ""
	if bin == "" {
		progress("building grokgate from this module")
		if bin, modDir, err = buildGrokgate(ctx, work); err != nil {
			return err
		}
	}
	rep := newReport(cfg, bin)
	rep.CapacityNote = capNote
	if rep.Grokgate == "unknown" && modDir != "" {
		rep.Grokgate = gitRevision(modDir)
	}

	var children []*child
	stopAll := func() {
		for _, c := range slices.Backward(children) {
			c.stop()
		}
		children = nil
	}
	defer func() { stopAll() }()
	start := func(name string, argv, env []string, ready string) (*child, error) {
		c, err := startChild(ctx, work, name, argv, env, regexp.MustCompile(ready))
		if err == nil {
			children = append(children, c)
		}
		return c, err
	}
	db := filepath.Join(work, "grokgate.db")
	key, err := createKey(ctx, bin, db)
	if err != nil {
		return err
	}
	gwArgv := append([]string{bin, "serve", "--addr", "127.0.0.1:0", "--db", db}, cfg.gwArgs...)
	rep.Features = features(ctx, bin, cfg.gwArgs)
	rep.GrokgateCommand = strings.ReplaceAll(strings.Join(append([]string{"grokgate"}, gwArgv[1:]...), " "), work, "$WORK")

	// servers starts the floor simulator, the TCP hop, the bare proxy and
	// grokgate, each in front of a simulator of its own, and checks that
	// all four answer.
	servers := func() ([]*target, error) {
		simArgs := []string{bin, "simulate", "--addr", "127.0.0.1:0"}
		simFloor, err := start("sim-floor", simArgs, cleanEnv(), simReady)
		if err != nil {
			return nil, err
		}
		simHop, err := start("sim-hop", simArgs, cleanEnv(), simReady)
		if err != nil {
			return nil, err
		}
		simProxy, err := start("sim-proxy", simArgs, cleanEnv(), simReady)
		if err != nil {
			return nil, err
		}
		simGW, err := start("sim-grokgate", simArgs, cleanEnv(), simReady)
		if err != nil {
			return nil, err
		}
		hop, err := start("hop", append(slices.Clone(cfg.self), "hop", "--addr", "127.0.0.1:0", "--upstream", simHop.addr),
			cleanEnv(cfg.selfEnv...), hopReady)
		if err != nil {
			return nil, err
		}
		proxy, err := start("proxy", append(slices.Clone(cfg.self), "proxy", "--addr", "127.0.0.1:0", "--upstream", "http://"+simProxy.addr),
			cleanEnv(cfg.selfEnv...), proxyReady)
		if err != nil {
			return nil, err
		}
		gwEnv := cleanEnv(append([]string{"XAI_API_KEY=" + upstreamKey, "XAI_BASE_URL=http://" + simGW.addr + "/v1"}, cfg.gwEnv...)...)
		gw, err := start("grokgate", gwArgv, gwEnv, gwReady)
		if err != nil {
			return nil, err
		}
		targets := []*target{
			newTarget(cfg, "floor", "simulator (floor)", simFloor, nil, upstreamKey),
			// The hop passes bytes through unread, so it is sent exactly
			// what the floor is: the simulator's key, the same bodies.
			newTarget(cfg, "hop", "one TCP hop (no HTTP)", hop, simHop, upstreamKey),
			newTarget(cfg, "proxy", "bare proxy (baseline)", proxy, simProxy, upstreamKey),
			newTarget(cfg, "grokgate", "grokgate", gw, simGW, key),
		}
		for _, t := range targets {
			if err := smoke(ctx, t, cfg.streamChunks); err != nil {
				return nil, fmt.Errorf("%s does not answer correctly, so nothing was measured: %w (logs in %s)", t.name, err, work)
			}
		}
		progress(fmt.Sprintf("servers up: simulator %s (pid %d), hop %s (pid %d) → %s, proxy %s (pid %d) → %s, grokgate %s (pid %d) → %s",
			simFloor.addr, simFloor.pid, hop.addr, hop.pid, simHop.addr, proxy.addr, proxy.pid, simProxy.addr, gw.addr, gw.pid, simGW.addr))
		return targets, nil
	}
	targets, err := servers()
	if err != nil {
		return err
	}

	// Capacity first, on fresh processes, so "idle" really is idle. It
	// compares the HTTP gateways' memory per held stream; the floor holds
	// no upstream, and the hop's cost (two sockets in the kernel, two
	// goroutines) is not what the target is about.
	if streams > 0 {
		for _, t := range targets {
			if t.name != "proxy" && t.name != "grokgate" {
				continue
			}
			r := capacity(ctx, t, streams, cfg.streamHold, progress)
			rep.target(t.name).Capacity = &r
			progress(fmt.Sprintf("capacity  %-9s %d/%d held, %d errors, RSS %s → %s, %.1f KiB per stream", t.name, r.Opened, r.Want, r.Errors, kib(r.IdleKiB), kib(r.HeldKiB), r.PerStreamKiB))
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Let the servers finish tearing the streams down.
			settle(ctx, 200*time.Millisecond+time.Duration(streams)*100*time.Microsecond)
		}
	}

	if streams > 0 && cfg.capH2 {
		n := min(cfg.streams, int(fdLimit)-256) // one socket per stream, plus a few HTTP/2 connections
		gwr, pr, err := capacityH2(ctx, cfg, work, bin, db, key, n, progress)
		if err != nil {
			return err
		}
		rep.target("grokgate").CapacityH2, rep.target("proxy").CapacityH2 = gwr, pr
		settle(ctx, 200*time.Millisecond+time.Duration(n)*100*time.Microsecond)
	}

	if streams > 0 {
		// The capacity run leaves each gateway with a grown heap and up to
		// 1,024 idle upstream connections for 90 s: live memory that, like a
		// ballast, spaces out a default-paced GC. The other measurements
		// run on fresh processes, as a server in steady state would be.
		progress("restarting the servers after the capacity run")
		stopAll()
		if targets, err = servers(); err != nil {
			return err
		}
	}

	phases := []phase{
		{"closed", func(ctx context.Context, t *target) tally { return closedLoop(ctx, t, cfg.concurrency, cfg.duration) }},
		{"open", func(ctx context.Context, t *target) tally {
			return openLoop(ctx, t, cfg.rate, cfg.duration, cfg.openConns)
		}},
	}
	for _, api := range streamAPIs {
		phases = append(phases, phase{api.phase, func(ctx context.Context, t *target) tally {
			return streamLoop(ctx, t, api, cfg.streamConc, cfg.streamChunks, cfg.duration)
		}})
	}
	phases = slices.DeleteFunc(phases, func(p phase) bool { return !slices.Contains(strings.Split(cfg.phases, ","), p.name) })
	if cfg.warmup > 0 {
		for _, t := range targets {
			progress("warm-up   " + t.name)
			closedLoop(ctx, t, cfg.concurrency, cfg.warmup)
			for _, api := range streamAPIs {
				streamLoop(ctx, t, api, cfg.streamConc, cfg.streamChunks, cfg.warmup)
			}
		}
	}
	// Rounds interleave the targets, in a rotating order, so drift in the
	// machine's load (other people's jobs share these cores) hits all alike.
	for round := range cfg.rounds {
		k := round % len(targets)
		order := append(slices.Clone(targets[k:]), targets[:k]...)
		for _, ph := range phases {
			for _, t := range order {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				settle(ctx, 200*time.Millisecond)
				u0 := snap(targets, t)
				res := ph.run(ctx, t)
				u := snap(targets, t).since(u0)
				rep.add(t.name, ph.name, res, u)
				progress(fmt.Sprintf("round %d/%d %-6s %-9s %s", round+1, cfg.rounds, ph.name, t.name, oneLine(ph.name, res)))
			}
		}
	}
	for _, c := range children {
		if !c.alive() {
			return fmt.Errorf("%s exited during the run; see its log in %s (run with --keep)", c.name, work)
		}
	}
	if modDir != "" && cfg.relayBench {
		progress("micro-benchmark: allocations per relayed SSE event (go test -bench '^BenchmarkRelay(Responses)?$' ./gateway)")
		rep.Relay, rep.RelayResponses, rep.RelayErr = relayAllocs(ctx, modDir)
	}
	rep.finish()
	md := rep.markdown()
	fmt.Fprint(stdout, md)
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	svg := rep.svg()
	js, _ := json.MarshalIndent(rep, "", "  ")
	for name, b := range map[string][]byte{"results.md": []byte(md), "latency.svg": svg, "results.json": js} {
		if err := os.WriteFile(filepath.Join(cfg.out, name), b, 0o644); err != nil {
			return err
		}
	}
	progress("wrote " + filepath.Join(cfg.out, "results.md") + ", results.json and latency.svg")
	return nil
}

// capacityH2 holds n slow streams through a second grokgate whose upstream
// is the simulator behind a TLS front that speaks HTTP/2, as xAI does, then
// through a second bare proxy with the same upstream: with no features, what
// net/http itself keeps per stream in that shape. Its processes are stopped
// again afterwards.
func capacityH2(ctx context.Context, cfg config, work, bin, db, key string, n int, progress func(string)) (gwr, pr *capResult, err error) {
	var started []*child
	defer func() {
		for _, c := range slices.Backward(started) {
			c.stop()
		}
	}()
	start := func(name string, argv, env []string, ready string) (*child, error) {
		c, err := startChild(ctx, work, name, argv, env, regexp.MustCompile(ready))
		if err == nil {
			started = append(started, c)
		}
		return c, err
	}
	sim, err := start("sim-h2", []string{bin, "simulate", "--addr", "127.0.0.1:0"}, cleanEnv(), simReady)
	if err != nil {
		return nil, nil, err
	}
	cert := filepath.Join(work, "front.pem")
	front, err := start("front", append(slices.Clone(cfg.self), "front", "--addr", "127.0.0.1:0", "--upstream", "http://"+sim.addr, "--cert", cert),
		cleanEnv(cfg.selfEnv...), frontReady)
	if err != nil {
		return nil, nil, err
	}
	env := cleanEnv(append([]string{"XAI_API_KEY=" + upstreamKey, "XAI_BASE_URL=https://" + front.addr + "/v1", "SSL_CERT_FILE=" + cert}, cfg.gwEnv...)...)
	gw, err := start("grokgate-h2", append([]string{bin, "serve", "--addr", "127.0.0.1:0", "--db", db}, cfg.gwArgs...), env, gwReady)
	if err != nil {
		return nil, nil, err
	}
	t := newTarget(cfg, "grokgate-h2", "", gw, front, key)
	if err := smoke(ctx, t, cfg.streamChunks); err != nil {
		return nil, nil, fmt.Errorf("grokgate with an HTTP/2 upstream does not answer correctly: %w (logs in %s)", err, work)
	}
	progress(fmt.Sprintf("capacity  grokgate with an HTTP/2 upstream: grokgate %s (pid %d) → TLS front %s → simulator %s", gw.addr, gw.pid, front.addr, sim.addr))
	held := func(t *target) *capResult {
		r := capacity(ctx, t, n, cfg.streamHold, progress)
		progress(fmt.Sprintf("capacity  %-11s %d/%d held, %d errors, RSS %s → %s, %.1f KiB per stream", t.name, r.Opened, r.Want, r.Errors, kib(r.IdleKiB), kib(r.HeldKiB), r.PerStreamKiB))
		return &r
	}
	gwr = held(t)
	if ctx.Err() != nil {
		return gwr, nil, ctx.Err()
	}
	settle(ctx, 200*time.Millisecond+time.Duration(n)*100*time.Microsecond)

	proxy, err := start("proxy-h2", append(slices.Clone(cfg.self), "proxy", "--addr", "127.0.0.1:0", "--upstream", "https://"+front.addr),
		cleanEnv(append([]string{"SSL_CERT_FILE=" + cert}, cfg.selfEnv...)...), proxyReady)
	if err != nil {
		return gwr, nil, err
	}
	// The proxy forwards the client's request as it is, so it is sent what
	// the simulator expects: its key, no include_usage splicing.
	pt := newTarget(cfg, "proxy-h2", "", proxy, front, upstreamKey)
	if err := smoke(ctx, pt, cfg.streamChunks); err != nil {
		return gwr, nil, fmt.Errorf("the bare proxy with an HTTP/2 upstream does not answer correctly: %w (logs in %s)", err, work)
	}
	progress(fmt.Sprintf("capacity  bare proxy with an HTTP/2 upstream: proxy %s (pid %d) → TLS front %s", proxy.addr, proxy.pid, front.addr))
	return gwr, held(pt), nil
}

// newTarget builds the requests the phases send to proc: the plain chat,
// the measured stream and the slow stream of the capacity run.
func newTarget(cfg config, name, label string, proc, up *child, key string) *target {
	directive := fmt.Sprintf(`#sim{"chunks":%d,"delay_ms":%d}`, cfg.streamChunks, cfg.streamDelay.Milliseconds())
	streamReqs := map[string][]byte{}
	for _, api := range streamAPIs {
		streamReqs[api.phase] = buildRequest(proc.addr, api.path, key, api.body(directive), true)
	}
	// Slow streams need only outlast the ramp and the hold; more chunks would
	// make the simulator build long answers it never sends.
	slowChunks := int((2*time.Minute+cfg.streamHold)/cfg.slowDelay) + 2
	slowBody := chatBody(true, fmt.Sprintf(`#sim{"chunks":%d,"delay_ms":%d}`, slowChunks, cfg.slowDelay.Milliseconds()))
	return &target{name: name, label: label, addr: proc.addr, proc: proc, up: up, key: key,
		req:        buildRequest(proc.addr, "/v1/chat/completions", key, chatBody(false, ""), false),
		streamReqs: streamReqs,
		slowReq:    buildRequest(proc.addr, "/v1/chat/completions", key, slowBody, true)}
}

func errOr(err error, alt string) string {
	if err != nil {
		return err.Error()
	}
	return alt
}

func settle(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// createKey mints a user key with `grokgate keys create`, which prints it
// alone on its last line.
func createKey(ctx context.Context, bin, db string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, "keys", "create", "--name", "grokbench", "--db", db)
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("grokgate keys create: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	key := strings.TrimSpace(lines[len(lines)-1])
	if !regexp.MustCompile(keyLine).MatchString(key) {
		return "", fmt.Errorf("grokgate keys create printed no key: %q", out)
	}
	return key, nil
}

// smoke checks a target answers one request and one stream of each API
// correctly.
func smoke(ctx context.Context, t *target, chunks int) error {
	c, err := dial(t.addr, 4096)
	if err != nil {
		return err
	}
	defer c.close()
	deadline := time.Now().Add(10 * time.Second)
	c.nc.SetDeadline(deadline)
	status, b, err := c.roundTrip(t.req, deadline)
	if err != nil {
		return err
	}
	if status != 200 || !bytes.Contains(b, []byte(choicesKey)) {
		return fmt.Errorf("status %d: %.300s", status, b)
	}
	if c.nc == nil {
		if err := c.redial(deadline); err != nil {
			return err
		}
	}
	for _, api := range streamAPIs {
		if c.nc == nil {
			if err := c.redial(deadline); err != nil {
				return err
			}
		}
		if _, err := c.stream(api, t.streamReqs[api.phase], make([]byte, 4096), chunks); err != nil {
			return fmt.Errorf("%s: %w", api.path, err)
		}
	}
	return nil
}

// usage is CPU spent during one measurement, in seconds.
type usage struct {
	Wall, Proc, Up, Self, Machine, Children float64
}

func (u usage) since(o usage) usage {
	return usage{u.Wall - o.Wall, u.Proc - o.Proc, u.Up - o.Up, u.Self - o.Self, u.Machine - o.Machine, u.Children - o.Children}
}

func (u usage) add(o usage) usage {
	return usage{u.Wall + o.Wall, u.Proc + o.Proc, u.Up + o.Up, u.Self + o.Self, u.Machine + o.Machine, u.Children + o.Children}
}

// outside is the CPU, in cores, that neither the bench nor its servers used.
func (u usage) outside() float64 {
	if u.Wall <= 0 {
		return 0
	}
	return max(0, u.Machine-u.Self-u.Children) / u.Wall
}

func snap(all []*target, t *target) usage {
	u := usage{Wall: float64(time.Now().UnixNano()) / 1e9, Self: selfCPU()}
	u.Proc, _ = cpuSeconds(t.proc.pid)
	if t.up != nil {
		u.Up, _ = cpuSeconds(t.up.pid)
	}
	seen := map[int]bool{}
	for _, o := range all {
		for _, c := range []*child{o.proc, o.up} {
			if c != nil && !seen[c.pid] {
				seen[c.pid] = true
				v, _ := cpuSeconds(c.pid)
				u.Children += v
			}
		}
	}
	u.Machine, _ = machineCPU()
	return u
}

func oneLine(phase string, r tally) string {
	s := r.lat.sorted()
	rate := float64(r.ok) / r.elapsed.Seconds()
	errs := ""
	if r.errs > 0 {
		errs = fmt.Sprintf(", %d errors (%s)", r.errs, r.firstErr)
	}
	if isStream(phase) {
		g := r.gaps.sorted()
		return fmt.Sprintf("%5d streams %6.1f/s  first event p50 %.3f p99 %.3f ms  gap p50 %.3f p99 %.3f ms%s",
			r.ok, rate, ms(s.pct(.5)), ms(s.pct(.99)), ms(g.pct(.5)), ms(g.pct(.99)), errs)
	}
	return fmt.Sprintf("%8.0f req/s  p50 %.3f p90 %.3f p99 %.3f ms%s", rate, ms(s.pct(.5)), ms(s.pct(.9)), ms(s.pct(.99)), errs)
}

// features says what grokgate runs with. Auth, the access log, the usage
// ledger and metrics are always on in grokgate serve; limits are switched on
// by the serve flags given (--limits adds every kind). The bench lists the
// limit and usage flags this build has, so a run that leaves them off says
// so instead of silently measuring less.
func features(ctx context.Context, bin string, given []string) string {
	out, _ := exec.CommandContext(ctx, bin, "serve", "-h").CombinedOutput()
	var found []string
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		name, _, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(name, "-") {
			continue
		}
		for _, word := range []string{"limit", "usage", "quota", "metric", "budget"} {
			if strings.Contains(name, word) {
				found = append(found, name)
				break
			}
		}
	}
	s := "auth (a key checked on every request), access log, usage ledger (SQLite) and Prometheus metrics on"
	if len(given) > 0 {
		s += "; serve flags given: " + strings.Join(given, " ")
	}
	if len(found) == 0 {
		return s + "; this build has no limit or usage-recording flags yet"
	}
	return s + "; this build's limit/usage flags: " + strings.Join(found, ", ") + " (switch them on with --gw-arg)"
}

// machine describes the host for the report.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d × %s, Linux %s, %s", runtime.NumCPU(), model, strings.TrimSpace(string(kernel)), runtime.Version())
}

// revision names the grokgate build measured.
func revision(bin string) string {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += " (with uncommitted changes)"
	}
	return rev
}
