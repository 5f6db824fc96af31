package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// proxyMain is the baseline: a plain httputil.ReverseProxy with no features,
// run as its own process so its CPU and memory are measured apart from the
// load generator. Its transport gets the same pool settings as grokgate's
// (cmd/grokgate newTransport): with Go's default of 2 idle connections per
// host it would redial on most requests and lose for a reason no real
// deployment has. Nothing else is tuned; in particular no BufferPool, so it
// allocates its 32 KiB copy buffer per response as a plain proxy does.
//
// One correction: the request body is read into memory before forwarding
// (grokgate does the same). Streamed through, it races the server's own
// body close once the response starts (golang/go#40747): the transport's
// final EOF check then fails, it drops the upstream connection, and about
// one proxied stream in fifty is cut short.
func proxyMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, addr, upstream := serverFlags("proxy", "origin to proxy to, such as http://127.0.0.1:8081", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("--upstream %q must be an http origin", *upstream)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// The same server settings as grokgate serve.
	srv := &http.Server{Handler: bufferedProxy(u, poolTransport(), log.New(stderr, "proxy: ", log.LstdFlags)),
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		MaxHeaderBytes: 64 << 10, ErrorLog: log.New(stderr, "proxy: ", log.LstdFlags)}
	fmt.Fprintf(stdout, "proxy listening on http://%s\n", ln.Addr())
	return serveUntil(ctx, srv, func() error { return srv.Serve(ln) })
}

// serverFlags starts the flags of a grokbench server: where it listens and
// what it is in front of.
func serverFlags(name, upstreamHelp string, stderr io.Writer) (fs *flag.FlagSet, addr, upstream *string) {
	fs = flag.NewFlagSet("grokbench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr = fs.String("addr", "127.0.0.1:0", "address to listen on")
	upstream = fs.String("upstream", "", upstreamHelp)
	return fs, addr, upstream
}

// bufferedProxy is a plain ReverseProxy to u that reads each request body
// into memory before forwarding it (see proxyMain for why).
func bufferedProxy(u *url.URL, tr http.RoundTripper, errLog *log.Logger) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			if pr.In.Body != nil && pr.In.Body != http.NoBody {
				if b, err := io.ReadAll(pr.In.Body); err == nil {
					pr.Out.Body = io.NopCloser(bytes.NewReader(b))
					pr.Out.ContentLength = int64(len(b))
				}
			}
		},
		Transport: tr,
		ErrorLog:  errLog,
	}
}

// serveUntil runs serve (srv's Serve or ServeTLS) until ctx is done, then
// closes srv; an error other than the close is returned.
func serveUntil(ctx context.Context, srv *http.Server, serve func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	srv.Close()
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// poolTransport mirrors grokgate's upstream transport settings.
func poolTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
