package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"time"
)

// hopMain is a plain TCP relay: for each connection it accepts, it dials
// --upstream and copies bytes both ways, parsing nothing. It measures what
// one extra network hop costs on this machine (two more sockets, a context
// switch into another process and back), the part of any gateway's added
// latency that no HTTP code, however lean, can remove. Like the proxy it
// runs as its own process, with a simulator of its own.
func hopMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, addr, upstream := serverFlags("hop", "host:port to relay every connection to, such as 127.0.0.1:8081", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(*upstream); err != nil || *upstream == "" {
		return fmt.Errorf("--upstream %q must be host:port", *upstream)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// http:// so the bench's readiness lines all look alike; the relay
	// itself would carry any protocol.
	fmt.Fprintf(stdout, "hop listening on http://%s\n", ln.Addr())
	return serveHop(ctx, ln, *upstream, log.New(stderr, "hop: ", log.LstdFlags))
}

// serveHop relays every connection accepted on ln to upstream until ctx is
// done. It then closes ln and every open connection, both sides, and returns
// once all its goroutines have ended. (Should ln fail otherwise, it returns
// the error once the open connections have ended on their own.)
func serveHop(ctx context.Context, ln net.Listener, upstream string, errLog *log.Logger) error {
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { ln.Close() }) // unblocks Accept
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http's server does, rather than give up on the run.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			errLog.Printf("accept: %v; retrying in %v", err, backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		wg.Go(func() { relayConn(ctx, c, upstream, dialer, errLog) })
	}
}

// relayConn dials upstream for the client connection c and copies both
// ways: upstream to client on this goroutine, client to upstream on one
// more. Go sets TCP_NODELAY on both sockets by default, so the relay adds no
// Nagle delay to small writes such as SSE events.
func relayConn(ctx context.Context, c net.Conn, upstream string, dialer *net.Dialer, errLog *log.Logger) {
	defer c.Close()
	up, err := dialer.DialContext(ctx, "tcp", upstream)
	if err != nil {
		if ctx.Err() == nil {
			errLog.Printf("dial %s: %v", upstream, err)
		}
		return
	}
	defer up.Close()
	// Shutting down closes both sockets, which ends both copies.
	stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { pipe(up, c) })
	pipe(c, up)
	wg.Wait()
}

// pipe copies src to dst until src ends. A clean end (EOF) is passed on as
// a half-close, so the far side sees it and can still answer: an HTTP
// server reads a client's FIN as "no more requests" and then closes its own
// side, which ends the other copy. Any error closes both sockets instead,
// since one direction failing leaves the other with no one to talk to and,
// unclosed, blocked for good.
func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			return
		}
	}
	dst.Close()
	src.Close()
}
