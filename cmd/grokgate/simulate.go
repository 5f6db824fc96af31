package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// simulate runs the xAI simulator alone, for tests and demos that want an
// upstream they can steer. onStart, when set, is told its origin as URL.
func simulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, onStart func(started)) error {
	s := newSettings("simulate", getenv, stderr)
	var addr, apiKey, logFormat string
	s.String(&addr, "addr", "GROKGATE_SIM_ADDR", "127.0.0.1:8081", "address to listen on")
	s.String(&apiKey, "api-key", "", "", "accept only this bearer key (default: any non-empty key)")
	s.String(&logFormat, "log-format", "GROKGATE_LOG_FORMAT", "text", "log format: text or json")
	if err := s.parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if err := s.err(); err != nil {
		return err
	}
	origin, err := startSimulator(ctx, addr, apiKey, newLogger(logFormat, stderr))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "xAI simulator listening on %s (base URL %s/v1)\n", origin, origin)
	if onStart != nil {
		onStart(started{URL: origin})
	}
	<-ctx.Done()
	return nil
}
