package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/grokgate/grokgate/gateway"
	"github.com/grokgate/grokgate/keys"
	"github.com/grokgate/grokgate/xai"
)

// settings binds flags to environment variables: each flag's default is its
// variable's value, so a flag given on the command line wins. Bad values are
// collected, not returned one at a time, so a user fixes them all at once.
type settings struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
}

func newSettings(name string, getenv func(string) string, stderr io.Writer) *settings {
	fs := flag.NewFlagSet("grokgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &settings{fs: fs, getenv: getenv}
}

func (s *settings) env(name, def string) string {
	if v := s.getenv(name); v != "" {
		return v
	}
	return def
}

func (s *settings) String(p *string, flagName, envName, def, help string) {
	s.fs.StringVar(p, flagName, s.env(envName, def), help+envHelp(envName))
}

func (s *settings) Duration(p *time.Duration, flagName, envName string, def time.Duration, help string) {
	v := def
	if raw := s.getenv(envName); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q is not a duration; write it like 90s or 10m", envName, raw))
		} else {
			v = d
		}
	}
	s.fs.DurationVar(p, flagName, v, help+envHelp(envName))
}

func (s *settings) Int64(p *int64, flagName, envName string, def int64, help string) {
	v := def
	if raw := s.getenv(envName); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q is not a whole number", envName, raw))
		} else {
			v = n
		}
	}
	s.fs.Int64Var(p, flagName, v, help+envHelp(envName))
}

func envHelp(name string) string {
	if name == "" {
		return ""
	}
	return " (env " + name + ")"
}

// parse parses args and returns every problem found so far, joined.
func (s *settings) parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage // flag has already printed what was wrong
	}
	if s.fs.NArg() > 0 {
		s.errs = append(s.errs, fmt.Errorf("unexpected argument %q", s.fs.Arg(0)))
	}
	return nil
}

func (s *settings) check(ok bool, format string, a ...any) {
	if !ok {
		s.errs = append(s.errs, fmt.Errorf(format, a...))
	}
}

// err reports all collected problems.
func (s *settings) err() error {
	if len(s.errs) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("configuration problems (nothing was started):")
	for _, e := range s.errs {
		b.WriteString("\n  - ")
		b.WriteString(e.Error())
	}
	return errors.New(b.String())
}

// serveConfig is everything `grokgate serve` is told.
type serveConfig struct {
	addr             string
	db               string
	xaiAPIKey        string
	xaiBaseURL       string
	maxBodyBytes     int64
	firstByteTimeout time.Duration
	connectTimeout   time.Duration
	idleTimeout      time.Duration
	totalTimeout     time.Duration
	heartbeat        time.Duration
	bodyTimeout      time.Duration
	upstreamAttempts int64
	drainTimeout     time.Duration
	logFormat        string
	logFlush         time.Duration
	gcFloor          int64
	visionStream     gateway.VisionStream
	// visionStreamRenamed: the mode was given by its old name (fallback),
	// which serve warns about once it has a logger.
	visionStreamRenamed bool
	streamErrors        gateway.StreamErrorFormat
	flushTimeout        time.Duration
	simulator           bool
	bodyBytesInFlight   int64
	obs                 obsConfig
	limits              limitConfig
	prices              priceConfig
	resume              resumeConfig
	console             bool
	spoolDir            string
	storeTimeout        time.Duration
	keysMaxStaleness    time.Duration
}

// loopback reports whether addr (HOST:PORT) listens on a loopback address
// only; an empty host listens on every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseServe(args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	s := newSettings("serve", getenv, stderr)
	s.String(&c.addr, "addr", "GROKGATE_ADDR", "127.0.0.1:8080", "address to listen on")
	s.String(&c.db, "db", "GROKGATE_DB", "grokgate.db", dbHelp)
	s.String(&c.xaiBaseURL, "xai-base-url", "XAI_BASE_URL", xai.DefaultBaseURL, "xAI API base URL")
	s.Int64(&c.maxBodyBytes, "max-body-bytes", "GROKGATE_MAX_BODY_BYTES", gateway.DefaultMaxBodyBytes, "largest request body accepted")
	s.Duration(&c.firstByteTimeout, "first-byte-timeout", "GROKGATE_FIRST_BYTE_TIMEOUT", gateway.DefaultFirstByteTimeout, "longest wait for xAI's first event (streams) or whole answer")
	s.Duration(&c.idleTimeout, "stream-idle-timeout", "GROKGATE_STREAM_IDLE_TIMEOUT", gateway.DefaultStreamIdleTimeout, "longest silence between upstream events once a stream began")
	s.Duration(&c.totalTimeout, "total-timeout", "GROKGATE_TOTAL_TIMEOUT", gateway.DefaultTotalTimeout, "longest one upstream exchange may last")
	s.Duration(&c.heartbeat, "heartbeat", "GROKGATE_HEARTBEAT", 15*time.Second, "SSE keep-alive comment after this much upstream silence; 0 disables")
	s.Duration(&c.connectTimeout, "connect-timeout", "GROKGATE_CONNECT_TIMEOUT", 10*time.Second, "longest wait to connect to xAI (TCP and TLS)")
	s.Duration(&c.bodyTimeout, "body-read-timeout", "GROKGATE_BODY_READ_TIMEOUT", gateway.DefaultBodyReadTimeout, "longest a client may take to send its request body")
	s.Int64(&c.upstreamAttempts, "upstream-attempts", "GROKGATE_UPSTREAM_ATTEMPTS", xai.DefaultMaxAttempts, "attempts per request before the first byte, across xAI keys")
	s.Duration(&c.drainTimeout, "drain-timeout", "GROKGATE_DRAIN_TIMEOUT", 30*time.Second, "how long a stop waits for requests in flight")
	s.Duration(&c.flushTimeout, "usage-flush-timeout", "GROKGATE_USAGE_FLUSH_TIMEOUT", 15*time.Second, "how long a stop waits to write the last usage records")
	s.String(&c.spoolDir, "spool-dir", "GROKGATE_SPOOL_DIR", "", spoolDirHelp)
	s.String(&c.logFormat, "log-format", "GROKGATE_LOG_FORMAT", "text", "log format: text or json")
	s.Duration(&c.logFlush, "log-flush-interval", "GROKGATE_LOG_FLUSH_INTERVAL", 100*time.Millisecond, "longest a log line waits to be written with others; 0 writes each line at once")
	s.Int64(&c.gcFloor, "gc-floor", "GROKGATE_GC_FLOOR", 64<<20, "heap size in bytes below which the garbage collector does not run (0: Go's default pacing; ignored when GOGC is set)")
	var visionStream string
	s.String(&visionStream, "vision-stream", "GROKGATE_VISION_STREAM", string(gateway.VisionStreamEmulate),
		"how a streaming request with image input is answered: emulate (the complete answer as SSE), json (the complete answer as JSON; formerly fallback) or native (stream from xAI)")
	var streamErrors string
	s.String(&streamErrors, "stream-error-format", "GROKGATE_STREAM_ERROR_FORMAT", string(gateway.StreamErrorString),
		`how an error after a stream began is written: string ({"error":"API error: ..."}) or openai (the OpenAI error object, which every SDK shows)`)
	s.Bool(&c.simulator, "simulator", "GROKGATE_SIMULATOR", false, "answer from the built-in xAI simulator even without XAI_API_KEY on a non-loopback address (fake answers: tests and demos only)")
	s.Int64(&c.bodyBytesInFlight, "max-body-bytes-in-flight", "GROKGATE_MAX_BODY_BYTES_IN_FLIGHT", 0, "bytes of large request bodies (64 KiB or more) held at once; over it requests wait up to 2s, then get 503 (0: 8 times --max-body-bytes)")
	parseObs(s, &c.obs)
	limitFlags(s, &c.limits)
	c.prices.register(s)
	resumeFlags(s, &c.resume)
	s.Bool(&c.console, "console", "GROKGATE_CONSOLE", true, "serve the web console at /console")
	s.Duration(&c.storeTimeout, "store-timeout", "GROKGATE_STORE_TIMEOUT", defaultStoreTimeout, "longest a request waits for the database (then 503); also bounds connecting to PostgreSQL")
	s.Duration(&c.keysMaxStaleness, "keys-max-staleness", "GROKGATE_KEYS_MAX_STALENESS", keys.DefaultMaxStaleness, "how long known keys keep working while the database does not answer; then every key gets 503 until it does")
	// The xAI keys are read from the environment only: a flag would show them
	// in ps. Several keys, comma-separated, are rotated with failover.
	c.xaiAPIKey = strings.TrimSpace(getenv("XAI_API_KEY"))
	if err := s.parse(args); err != nil {
		return c, err
	}
	if _, port, err := net.SplitHostPort(c.addr); err != nil || port == "" {
		s.errs = append(s.errs, fmt.Errorf("GROKGATE_ADDR/--addr %q must be HOST:PORT, such as 127.0.0.1:8080", c.addr))
	}
	// A deployment that lost its secret must not serve fake answers: the
	// simulator stands in for xAI unasked only on a loopback address.
	s.check(c.xaiAPIKey != "" || c.simulator || loopback(c.addr),
		"XAI_API_KEY is not set and GROKGATE_ADDR/--addr %q is not a loopback address: set XAI_API_KEY, or pass --simulator to answer from the built-in xAI simulator (fake answers)", c.addr)
	s.check(c.bodyBytesInFlight >= 0, "GROKGATE_MAX_BODY_BYTES_IN_FLIGHT/--max-body-bytes-in-flight must not be negative (0: 8 times the body limit), got %d", c.bodyBytesInFlight)
	checkDB(s, c.db)
	c.obs.check(s)
	if u, err := url.Parse(c.xaiBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		s.errs = append(s.errs, fmt.Errorf("XAI_BASE_URL/--xai-base-url %q must be an http(s) URL such as %s", c.xaiBaseURL, xai.DefaultBaseURL))
	}
	s.check(c.maxBodyBytes > 0, "GROKGATE_MAX_BODY_BYTES/--max-body-bytes must be positive, got %d", c.maxBodyBytes)
	s.check(c.firstByteTimeout > 0, "GROKGATE_FIRST_BYTE_TIMEOUT/--first-byte-timeout must be positive, got %s", c.firstByteTimeout)
	s.check(c.idleTimeout > 0, "GROKGATE_STREAM_IDLE_TIMEOUT/--stream-idle-timeout must be positive, got %s", c.idleTimeout)
	s.check(c.totalTimeout > 0, "GROKGATE_TOTAL_TIMEOUT/--total-timeout must be positive, got %s", c.totalTimeout)
	s.check(c.heartbeat >= 0, "GROKGATE_HEARTBEAT/--heartbeat must not be negative (0 disables), got %s", c.heartbeat)
	s.check(c.bodyTimeout > 0, "GROKGATE_BODY_READ_TIMEOUT/--body-read-timeout must be positive, got %s", c.bodyTimeout)
	s.check(c.connectTimeout > 0, "GROKGATE_CONNECT_TIMEOUT/--connect-timeout must be positive, got %s", c.connectTimeout)
	s.check(c.upstreamAttempts >= 1 && c.upstreamAttempts <= 10, "GROKGATE_UPSTREAM_ATTEMPTS/--upstream-attempts must be 1 to 10, got %d", c.upstreamAttempts)
	s.check(c.drainTimeout >= 0, "GROKGATE_DRAIN_TIMEOUT/--drain-timeout must not be negative, got %s", c.drainTimeout)
	s.check(c.logFlush >= 0, "GROKGATE_LOG_FLUSH_INTERVAL/--log-flush-interval must not be negative, got %s", c.logFlush)
	s.check(c.gcFloor >= 0, "GROKGATE_GC_FLOOR/--gc-floor must not be negative (0 turns it off), got %d", c.gcFloor)
	s.check(c.storeTimeout > 0, "GROKGATE_STORE_TIMEOUT/--store-timeout must be positive, got %s", c.storeTimeout)
	s.check(c.keysMaxStaleness > 0, "GROKGATE_KEYS_MAX_STALENESS/--keys-max-staleness must be positive, got %s", c.keysMaxStaleness)
	s.check(c.flushTimeout > 0, "GROKGATE_USAGE_FLUSH_TIMEOUT/--usage-flush-timeout must be positive, got %s", c.flushTimeout)
	s.check(c.logFormat == "text" || c.logFormat == "json", "GROKGATE_LOG_FORMAT/--log-format must be text or json, got %q", c.logFormat)
	c.limits.check(s)
	c.prices.check(s)
	c.resume.check(s)
	var err error
	c.visionStream, c.visionStreamRenamed, err = gateway.ParseVisionStream(visionStream)
	s.check(err == nil, "GROKGATE_VISION_STREAM/--vision-stream must be emulate, json or native, got %q", visionStream)
	c.streamErrors, err = gateway.ParseStreamErrorFormat(streamErrors)
	s.check(err == nil, "GROKGATE_STREAM_ERROR_FORMAT/--stream-error-format must be string or openai, got %q", streamErrors)
	return c, s.err()
}
