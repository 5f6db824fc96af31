// Command grokgate is an OpenAI-compatible gateway in front of the xAI API.
//
//	grokgate [serve]     run the gateway (default)
//	grokgate simulate    run the built-in xAI simulator on its own
//	grokgate keys ...    create, list, update and revoke gateway keys
//	grokgate usage       print the usage ledger's totals
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal starts a graceful stop, restore the default
		// handling so a second signal ends the process at once.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "grokgate:", err)
		os.Exit(1)
	}
}
