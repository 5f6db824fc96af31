package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

const usage = `grokgate: an OpenAI-compatible gateway in front of the xAI Grok API

Usage:
  grokgate [serve] [flags]           run the gateway (the default)
  grokgate simulate [flags]          run the built-in xAI simulator on its own
  grokgate keys create --name NAME [--role user|admin] [--models M1,M2] [--expires TIME]
  grokgate keys list [--json]
  grokgate keys update ID_OR_PREFIX [--name NAME] [--models M1,M2] [--expires TIME|never]
  grokgate keys revoke ID_OR_PREFIX
  grokgate usage [--group-by key|model|day] [--from DATE] [--to DATE] [--json]

Run "grokgate COMMAND -h" for a command's flags. Every flag has an
environment variable (listed with the flag); a flag wins over its variable.
`

// errUsage is returned after help was printed, so main exits non-zero
// without printing the error twice.
var errUsage = errors.New("invalid usage")

// run is the whole program; main only supplies the process's environment,
// so tests can run grokgate in-process exactly as a user would.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runWith(ctx, args, getenv, stdin, stdout, stderr, nil)
}

// runWith is run telling onStart where a serve or a simulate listens (and
// which admin key a serve minted), so tests need not read stdout for it.
func runWith(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, onStart func(started)) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr, onStart)
	case "simulate":
		return simulate(ctx, args, getenv, stdout, stderr, onStart)
	case "keys":
		return keysCmd(ctx, args, getenv, stdout, stderr)
	case "usage":
		return usageCmd(ctx, args, getenv, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
}
