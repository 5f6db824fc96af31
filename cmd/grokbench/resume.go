package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// resumeMain is `grokbench resume`: what a resumable chat stream
// (X-Grokgate-Resumable: true, its generation run detached into the stream
// log) costs against a plain one, with the log in memory and in Redis. One
// simulator, two grokgate processes (memory; Redis, on a private
// redis-server so its command count is grokgate's alone), and, per variant
// in interleaved rounds: time to first event, grokgate's CPU per content
// event, Redis commands and Redis CPU per content event; then RSS per open
// slow stream.
func resumeMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("grokbench resume", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rounds := fs.Int("rounds", 3, "interleaved rounds; each measures every variant once")
	dur := fs.Duration("duration", 4*time.Second, "length of each streaming measurement")
	conc := fs.Int("concurrency", 16, "concurrent streams")
	chunks := fs.Int("chunks", 20, "content chunks per stream")
	delay := fs.Duration("delay", 5*time.Millisecond, "upstream pause between chunks")
	open := fs.Int("streams", 1000, "slow streams held open to measure memory per open stream (0 skips)")
	hold := fs.Duration("hold", 3*time.Second, "how long the slow streams stay open before RSS is read")
	bin := fs.String("grokgate", "", "grokgate binary to measure (default: go build ./cmd/grokgate)")
	redisBin := fs.String("redis-server", "redis-server", "redis-server binary; a private one is started on a free port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	progress := func(s string) { fmt.Fprintf(stderr, "%s  %s\n", time.Now().Format("15:04:05"), s) }
	if *open > 0 {
		if _, err := raiseNoFile(uint64(4**open + 256)); err != nil {
			progress("could not raise RLIMIT_NOFILE: " + err.Error())
		}
	}
	work, err := os.MkdirTemp("", "grokbench-resume-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if *bin == "" {
		progress("building grokgate from this module")
		if *bin, _, err = buildGrokgate(ctx, work); err != nil {
			return err
		}
	}
	var children []*child
	defer func() {
		for i := len(children) - 1; i >= 0; i-- {
			children[i].stop()
		}
	}()
	start := func(name string, argv, env []string, ready string) (*child, error) {
		c, err := startChild(ctx, work, name, argv, env, regexp.MustCompile(ready))
		if err == nil {
			children = append(children, c)
		}
		return c, err
	}
	rds, redisAddr, err := startRedis(ctx, work, *redisBin)
	if err != nil {
		return err
	}
	children = append(children, rds)
	sim, err := start("sim", []string{*bin, "simulate", "--addr", "127.0.0.1:0"}, cleanEnv(), simReady)
	if err != nil {
		return err
	}
	db := filepath.Join(work, "grokgate.db")
	key, err := createKey(ctx, *bin, db)
	if err != nil {
		return err
	}
	env := []string{"XAI_API_KEY=" + upstreamKey, "XAI_BASE_URL=http://" + sim.addr + "/v1", "GROKGATE_LOG_FORMAT=json"}
	serve := []string{*bin, "serve", "--addr", "127.0.0.1:0", "--db", db, "--console=false"}
	mem, err := start("grokgate-memory", serve, cleanEnv(env...), gwReady)
	if err != nil {
		return err
	}
	red, err := start("grokgate-redis", serve, cleanEnv(append(env, "GROKGATE_REDIS_URL=redis://"+redisAddr+"/0")...), gwReady)
	if err != nil {
		return err
	}

	directive := fmt.Sprintf(`#sim{"chunks":%d,"delay_ms":%d}`, *chunks, delay.Milliseconds())
	slowBody := chatBody(true, fmt.Sprintf(`#sim{"chunks":%d,"delay_ms":3000}`, int((time.Minute+*hold)/(3*time.Second))+2))
	type variant struct {
		name      string
		t         *target
		ttfe      samples
		events    int64
		errs      int64
		firstErr  string
		cpu, rcpu float64
		rcmds     redisCounts
		capacity  capResult
	}
	mk := func(name string, proc *child, resumable bool) *variant {
		req := buildRequest(proc.addr, chatStreams.path, key, chatStreams.body(directive), true)
		slow := buildRequest(proc.addr, chatStreams.path, key, slowBody, true)
		if resumable {
			req, slow = withResumable(req), withResumable(slow)
		}
		return &variant{name: name, t: &target{name: name, label: name, addr: proc.addr, proc: proc, key: key,
			streamReqs: map[string][]byte{chatStreams.phase: req}, slowReq: slow}}
	}
	variants := []*variant{mk("plain", mem, false), mk("resumable, memory", mem, true), mk("resumable, Redis", red, true)}
	for _, v := range variants { // warm up, and check each streams whole
		if tl := streamLoop(ctx, v.t, &chatStreams, *conc, *chunks, 500*time.Millisecond); tl.ok == 0 {
			return fmt.Errorf("%s: no stream completed: %s", v.name, tl.firstErr)
		}
	}
	for round := 1; round <= *rounds; round++ {
		for _, v := range variants {
			c0, _ := cpuSeconds(v.t.proc.pid)
			r0, _ := cpuSeconds(rds.pid)
			n0, err := redisCommands(redisAddr)
			if err != nil {
				return err
			}
			tl := streamLoop(ctx, v.t, &chatStreams, *conc, *chunks, *dur)
			c1, _ := cpuSeconds(v.t.proc.pid)
			r1, _ := cpuSeconds(rds.pid)
			n1, _ := redisCommands(redisAddr)
			v.ttfe = append(v.ttfe, tl.lat...)
			v.events += tl.ok * int64(*chunks)
			v.errs += tl.errs
			if v.firstErr == "" {
				v.firstErr = tl.firstErr
			}
			v.cpu += c1 - c0
			v.rcpu += r1 - r0
			v.rcmds.commands += n1.commands - n0.commands - 1 // the INFO that read them
			v.rcmds.calls += n1.calls - n0.calls
			progress(fmt.Sprintf("round %d  %-18s %5d streams, %d errors, first event p50 %.3f ms", round, v.name, tl.ok, tl.errs, ms(tl.lat.sorted().pct(0.5))))
		}
	}
	if *open > 0 {
		for _, v := range variants {
			v.capacity = capacity(ctx, v.t, *open, *hold, progress)
		}
	}

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	fmt.Fprintf(w, "grokbench resume: %d rounds of %s, %d concurrent chat streams of %d chunks %s apart; %d slow streams held %s\n\n",
		*rounds, *dur, *conc, *chunks, *delay, *open, *hold)
	fmt.Fprintln(w, "| | plain | resumable, memory | resumable, Redis |")
	fmt.Fprintln(w, "|---|--:|--:|--:|")
	row := func(name string, f func(v *variant) string) {
		cells := []string{name}
		for _, v := range variants {
			cells = append(cells, f(v))
		}
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	base := variants[0]
	perEvent := func(x float64, v *variant) float64 { return x / float64(max(v.events, 1)) }
	row("streams (errors)", func(v *variant) string { return fmt.Sprintf("%d (%d)", len(v.ttfe), v.errs) })
	row("time to first event p50, ms", func(v *variant) string { return fmt.Sprintf("%.3f", ms(v.ttfe.sorted().pct(0.5))) })
	row("time to first event p99, ms", func(v *variant) string { return fmt.Sprintf("%.3f", ms(v.ttfe.sorted().pct(0.99))) })
	row("grokgate CPU per content event, µs", func(v *variant) string {
		us := perEvent(v.cpu, v) * 1e6
		return fmt.Sprintf("%.1f (%.2f×)", us, us/(perEvent(base.cpu, base)*1e6))
	})
	row("Redis round trips per content event", func(v *variant) string { return fmt.Sprintf("%.2f", perEvent(float64(v.rcmds.calls), v)) })
	row("Redis commands per content event, scripts' included", func(v *variant) string {
		return fmt.Sprintf("%.2f", perEvent(float64(v.rcmds.commands), v))
	})
	row("Redis CPU per content event, µs", func(v *variant) string { return fmt.Sprintf("%.1f", perEvent(v.rcpu, v)*1e6) })
	if *open > 0 {
		row("slow streams open (errors)", func(v *variant) string { return fmt.Sprintf("%d (%d)", v.capacity.Opened, v.capacity.Errors) })
		row("grokgate RSS per open stream, KiB", func(v *variant) string {
			return fmt.Sprintf("%.1f (%.2f×)", v.capacity.PerStreamKiB, v.capacity.PerStreamKiB/base.capacity.PerStreamKiB)
		})
	}
	for _, v := range variants {
		if v.firstErr != "" {
			fmt.Fprintf(w, "\n%s, first error: %s\n", v.name, v.firstErr)
		}
		if v.capacity.FirstErr != "" {
			fmt.Fprintf(w, "\n%s, first slow-stream error: %s\n", v.name, v.capacity.FirstErr)
		}
	}
	return nil
}

// withResumable adds X-Grokgate-Resumable: true to a request built by
// buildRequest.
func withResumable(req []byte) []byte {
	return bytes.Replace(req, []byte("\r\nAccept: "), []byte("\r\nX-Grokgate-Resumable: true\r\nAccept: "), 1)
}

// startRedis runs a private redis-server, without persistence, on a free
// port.
func startRedis(ctx context.Context, dir, bin string) (*child, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s (install Redis, or pass --redis-server): %w", bin, err)
	}
	c := &child{name: "redis", cmd: cmd, pid: cmd.Process.Pid, addr: addr, done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := redisCommands(addr); err == nil {
			return c, addr, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil || !c.alive() {
			c.stop()
			return nil, "", errors.New("redis-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redisCounts are a Redis's command counters.
type redisCounts struct {
	// commands counts every command, those the stream log's Lua scripts
	// run included; calls only what clients sent (scripts, XREAD, the
	// connection set-up), the round trips.
	commands, calls int64
}

// sentByClients are the commands grokgate sends; the others it runs only
// inside its scripts.
var sentByClients = regexp.MustCompile(`^cmdstat_(evalsha|eval|evalsha_ro|eval_ro|xread|hello|client\|\w+|ping|select|script\|\w+|auth):calls=(\d+)`)

// redisCommands returns the counters of the Redis at addr, this query
// counted in neither.
func redisCommands(addr string) (redisCounts, error) {
	var rc redisCounts
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return rc, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("INFO all\r\n")); err != nil {
		return rc, err
	}
	br := bufio.NewReader(c)
	head, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return rc, fmt.Errorf("redis INFO: %q %v", head, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return rc, err
	}
	found := false
	for _, line := range strings.Split(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			rc.commands, _ = strconv.ParseInt(v, 10, 64)
			found = true
		}
		if m := sentByClients.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseInt(m[2], 10, 64)
			rc.calls += v
		}
	}
	if !found {
		return rc, errors.New("redis INFO has no total_commands_processed")
	}
	return rc, nil
}
