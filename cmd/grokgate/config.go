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
	addr            string
	db              string
	xaiAPIKey       string
	xaiBaseURL      string
	maxBodyBytes    int64
	upstreamTimeout time.Duration
	drainTimeout    time.Duration
	flushTimeout    time.Duration
	logFormat       string
}

func parseServe(args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	s := newSettings("serve", getenv, stderr)
	s.String(&c.addr, "addr", "GROKGATE_ADDR", "127.0.0.1:8080", "address to listen on")
	s.String(&c.db, "db", "GROKGATE_DB", "grokgate.db", dbHelp)
	s.String(&c.xaiBaseURL, "xai-base-url", "XAI_BASE_URL", xai.DefaultBaseURL, "xAI API base URL")
	s.Int64(&c.maxBodyBytes, "max-body-bytes", "GROKGATE_MAX_BODY_BYTES", 25<<20, "largest request body accepted")
	s.Duration(&c.upstreamTimeout, "upstream-timeout", "GROKGATE_UPSTREAM_TIMEOUT", 10*time.Minute, "longest wait for xAI to start answering")
	s.Duration(&c.drainTimeout, "drain-timeout", "GROKGATE_DRAIN_TIMEOUT", 30*time.Second, "how long a stop waits for requests in flight")
	s.Duration(&c.flushTimeout, "usage-flush-timeout", "GROKGATE_USAGE_FLUSH_TIMEOUT", 15*time.Second, "how long a stop waits to write the last usage records")
	s.String(&c.logFormat, "log-format", "GROKGATE_LOG_FORMAT", "text", "log format: text or json")
	// The xAI key is read from the environment only: a flag would show it in ps.
	c.xaiAPIKey = strings.TrimSpace(getenv("XAI_API_KEY"))
	if err := s.parse(args); err != nil {
		return c, err
	}
	if _, port, err := net.SplitHostPort(c.addr); err != nil || port == "" {
		s.errs = append(s.errs, fmt.Errorf("GROKGATE_ADDR/--addr %q must be HOST:PORT, such as 127.0.0.1:8080", c.addr))
	}
	checkDB(s, c.db)
	if u, err := url.Parse(c.xaiBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		s.errs = append(s.errs, fmt.Errorf("XAI_BASE_URL/--xai-base-url %q must be an http(s) URL such as %s", c.xaiBaseURL, xai.DefaultBaseURL))
	}
	s.check(c.maxBodyBytes > 0, "GROKGATE_MAX_BODY_BYTES/--max-body-bytes must be positive, got %d", c.maxBodyBytes)
	s.check(c.upstreamTimeout > 0, "GROKGATE_UPSTREAM_TIMEOUT/--upstream-timeout must be positive, got %s", c.upstreamTimeout)
	s.check(c.drainTimeout >= 0, "GROKGATE_DRAIN_TIMEOUT/--drain-timeout must not be negative, got %s", c.drainTimeout)
	s.check(c.flushTimeout > 0, "GROKGATE_USAGE_FLUSH_TIMEOUT/--usage-flush-timeout must be positive, got %s", c.flushTimeout)
	s.check(c.logFormat == "text" || c.logFormat == "json", "GROKGATE_LOG_FORMAT/--log-format must be text or json, got %q", c.logFormat)
	return c, s.err()
}
