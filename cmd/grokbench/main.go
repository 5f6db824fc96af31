// Command grokbench measures what grokgate adds to every request, on
// loopback, side by side with the upstream alone, with a plain TCP relay
// (one extra hop and no HTTP: the least any gateway can add on this
// machine) and with a bare httputil.ReverseProxy:
//
//	go run ./cmd/grokbench [flags]       the full run (a few minutes)
//	go run ./cmd/grokbench --quick       a smoke run, under a minute
//	go run ./cmd/grokbench resume        a resumable stream's cost against a plain one
//
// It builds grokgate from this module, starts every server as its own
// process (so /proc gives each one's CPU and RSS, apart from the load
// generator), drives them in interleaved rounds, prints a Markdown table and
// writes a latency chart. docs/benchmarks.md explains the method.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "grokbench:", err)
		os.Exit(1)
	}
	if err := run(ctx, os.Args[1:], []string{exe}, nil, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "grokbench:", err)
		}
		os.Exit(1)
	}
}

// run is the whole program. self is the command that re-runs this program
// (with selfEnv added), used to start the proxy and the hop as child
// processes; tests pass their own binary.
func run(ctx context.Context, args, self, selfEnv []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "proxy":
			return proxyMain(ctx, args[1:], stdout, stderr)
		case "hop":
			return hopMain(ctx, args[1:], stdout, stderr)
		case "front":
			return frontMain(ctx, args[1:], stdout, stderr)
		case "resume":
			return resumeMain(ctx, args[1:], stdout, stderr)
		}
	}
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg.self, cfg.selfEnv, cfg.args = self, selfEnv, args
	return bench(ctx, cfg, stdout, stderr)
}

// config is everything a run is told.
type config struct {
	out      string // directory for results.md, results.json and latency.svg
	grokgate string // prebuilt grokgate binary; empty builds one
	keep     bool   // keep the work directory (server logs)

	rounds   int
	duration time.Duration // each closed-loop, open-loop and streaming cell
	warmup   time.Duration

	concurrency int     // closed loop
	rate        float64 // open loop, requests per second
	openConns   int     // open loop connection ceiling

	streamConc   int
	streamChunks int
	streamDelay  time.Duration

	streams    int           // capacity: concurrent slow streams; 0 skips
	streamHold time.Duration // how long they are held open once all are up
	slowDelay  time.Duration // event interval of a slow stream
	capH2      bool          // also hold streams through grokgate with an HTTP/2 upstream

	phases string // comma-separated subset of closed,open,stream

	gwArgs multiFlag // extra `grokgate serve` flags, to switch features on
	// relayBench runs gateway's BenchmarkRelay for the allocations target.
	relayBench bool
	gwEnv      multiFlag // extra environment for grokgate serve

	self, selfEnv []string
	args          []string // as given, for the report
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// allLimits are grokgate serve flags giving every key every limit kind,
// too high to refuse anything: the limiter's whole cost, no refusals.
var allLimits = []string{"--default-rpm=1000000000", "--default-tpm=1000000000000",
	"--default-max-streams=1000000", "--default-budget-ticks-per-day=1000000000000000"}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("grokbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.out, "out", "bench-out", "directory for results.md, results.json and latency.svg")
	fs.StringVar(&c.grokgate, "grokgate", "", "grokgate binary to measure (default: go build ./cmd/grokgate)")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory with the servers' logs")
	fs.IntVar(&c.rounds, "rounds", 3, "interleaved rounds; each measures every target (floor, TCP hop, proxy, grokgate) once per phase")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "length of each closed-loop, open-loop and streaming measurement")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured load per target before the rounds")
	fs.IntVar(&c.concurrency, "concurrency", 64, "closed loop: connections, each sending the next request when the last is answered")
	fs.Float64Var(&c.rate, "rate", 2000, "open loop: requests per second, sent on schedule whether or not earlier ones were answered")
	fs.IntVar(&c.openConns, "open-conns", 128, "open loop: most connections used to keep the schedule")
	fs.IntVar(&c.streamConc, "stream-concurrency", 16, "streaming: concurrent streams")
	fs.IntVar(&c.streamChunks, "stream-chunks", 20, "streaming: content chunks (Responses: output_text deltas) per stream")
	fs.DurationVar(&c.streamDelay, "stream-delay", 5*time.Millisecond, "streaming: upstream pause between chunks")
	fs.IntVar(&c.streams, "streams", 10000, "capacity: concurrent slow streams held open through the proxy and grokgate (not the TCP hop) (0 skips)")
	fs.DurationVar(&c.streamHold, "stream-hold", 5*time.Second, "capacity: how long all streams stay open before RSS is read")
	fs.DurationVar(&c.slowDelay, "slow-delay", 3*time.Second, "capacity: pause between the events of a slow stream")
	fs.BoolVar(&c.capH2, "capacity-h2", true, "capacity: also measure grokgate with an HTTP/2 (TLS) upstream, as xAI's API is, instead of the simulator's HTTP/1.1")
	fs.StringVar(&c.phases, "phases", "closed,open,stream,responses", "which measurements to run, comma-separated (stream: chat completions streams, responses: Responses API streams); empty for capacity only")
	fs.Var(&c.gwArgs, "gw-arg", "extra flag for grokgate serve (repeatable)")
	limits := fs.Bool("limits", true, "give grokgate a default of every limit kind (requests, tokens, open streams, daily budget), set too high to refuse, so every request is admitted and settled by the limiter; false measures it without limits")
	fs.BoolVar(&c.relayBench, "relay-bench", true, "also run the gateway's BenchmarkRelay (go test) for the allocations-per-event target")
	fs.Var(&c.gwEnv, "gw-env", "extra KEY=VALUE environment for grokgate serve (repeatable)")
	quick := fs.Bool("quick", false, "smoke run: 1 round of short cells and 1000 streams, under a minute (flags given explicitly still win)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{"rounds": "1", "duration": "1500ms", "warmup": "300ms",
			"streams": "1000", "stream-hold": "1s"} {
			if !set[name] {
				fs.Set(name, v)
			}
		}
	}
	if *limits {
		c.gwArgs = append(allLimits[:len(allLimits):len(allLimits)], c.gwArgs...)
	}
	var problems []string
	check := func(ok bool, msg string) {
		if !ok {
			problems = append(problems, msg)
		}
	}
	check(c.rounds >= 1, "--rounds must be at least 1")
	check(c.duration > 0 && c.warmup >= 0, "--duration must be positive and --warmup not negative")
	check(c.concurrency >= 1 && c.openConns >= 1 && c.streamConc >= 1, "concurrency flags must be at least 1")
	check(c.rate > 0, "--rate must be positive")
	check(c.streamChunks >= 2, "--stream-chunks must be at least 2 (gaps need two chunks)")
	check(c.streamDelay >= time.Millisecond && c.slowDelay >= time.Millisecond, "--stream-delay and --slow-delay are whole milliseconds, at least 1ms")
	check(c.streams >= 0, "--streams must not be negative")
	for _, p := range strings.Split(c.phases, ",") {
		check(p == "" || p == "closed" || p == "open" || isStream(p), fmt.Sprintf("--phases: unknown phase %q (closed, open, stream, responses)", p))
	}
	for _, kv := range c.gwEnv {
		check(strings.Contains(kv, "="), fmt.Sprintf("--gw-env %q must be KEY=VALUE", kv))
	}
	if len(problems) > 0 {
		return c, errors.New(strings.Join(problems, "; "))
	}
	return c, nil
}
