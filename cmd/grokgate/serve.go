package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/admin"
	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/console"
	"github.com/grokgate/grokgate/gateway"
	"github.com/grokgate/grokgate/gcfloor"
	"github.com/grokgate/grokgate/keys"
	"github.com/grokgate/grokgate/postgres"
	"github.com/grokgate/grokgate/simulator"
	ledger "github.com/grokgate/grokgate/usage"
	"github.com/grokgate/grokgate/xai"
)

// keysPollInterval bounds how long a key change made elsewhere (the CLI,
// another replica) takes to reach this server: two polls stay within 2s.
const keysPollInterval = time.Second

// serve runs the gateway until ctx ends (a signal), then drains it.
// onStart, when set, is told where it listens once it does.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, onStart func(started)) error {
	cfg, err := parseServe(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	in, err := open(ctx, cfg, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	defer in.close(ctx) // flushes the usage records, whatever way run ends
	return in.run(ctx, stdout, onStart)
}

// modelListStartTimeout bounds the model-list fetch that start-up waits for.
const modelListStartTimeout = 3 * time.Second

// started is what a serve tells onStart (tests) once it listens; stdout says
// the same to people.
type started struct {
	URL      string // http://HOST:PORT
	AdminKey string // the key minted on a first start; "" on later ones
	SimURL   string // the built-in simulator's origin; "" with XAI_API_KEY
	// MetricsURL is the metrics listener's origin; "" without one.
	MetricsURL string
}

// instance is a serve between open and close.
type instance struct {
	cfg     serveConfig
	log     *slog.Logger
	handler http.Handler
	console bool // the web console is on handler
	started started
	// endInFlight ends what is still running when the drain deadline
	// passes: streams get the SSE error event instead of a cut connection.
	endInFlight context.CancelFunc
	// draining is the server run stopped on a signal, for close to drain.
	draining *http.Server
	// gw runs the detached generations close drains with the requests.
	gw *gateway.Server
	// closers undo open, the last first, as defers would.
	closers []func()
	// storeUp is set once the database first answered and the keys are
	// loaded; until then the server is not ready.
	storeUp atomic.Bool
}

func (in *instance) onClose(f func()) { in.closers = append(in.closers, f) }

// open turns the configuration into the running parts of a gateway: log,
// store, usage ledger, upstream, observability, keys, limiter and handler.
// On failure it closes what it opened.
func open(ctx context.Context, cfg serveConfig, getenv func(string) string, stdout, stderr io.Writer) (in *instance, err error) {
	in = &instance{cfg: cfg}
	defer func() {
		if err != nil {
			in.close(ctx)
		}
	}()
	logw := newLogWriter(stderr, cfg.logFlush)
	in.onClose(func() { logw.Close() }) // first, so it runs last: every line is written
	log := newLogger(cfg.logFormat, logw)
	in.log = log
	if cfg.visionStreamRenamed {
		log.Warn("vision stream mode fallback is deprecated: it is now called json; set GROKGATE_VISION_STREAM (or --vision-stream) to json, or to emulate (the default) for SDK streaming clients")
	}
	switch {
	case getenv("GOGC") != "":
		log.Info("GOGC is set: the garbage collector paces by it alone (GROKGATE_GC_FLOOR ignored)")
	case cfg.gcFloor > 0:
		in.onClose(gcfloor.Keep(uint64(cfg.gcFloor), 100))
	}

	// Every store call of a request has a deadline; until the database
	// first answers, every one fails at once (503) while start-up keeps
	// trying in the background.
	store := newGuardedStore(cfg.storeTimeout)
	in.onClose(func() { store.Close() })
	cache := keys.NewCacheWith(store, time.Now, log.With("component", "keys"),
		keys.Options{Timeout: cfg.storeTimeout, MaxStaleness: cfg.keysMaxStaleness})
	secret, storeErr := in.connectStore(ctx, store, cache, stdout)
	in.started.AdminKey = secret
	switch {
	case storeErr != nil && !postgres.IsDSN(cfg.db):
		// A SQLite file that cannot be opened is a problem to fix, not
		// to wait out.
		return in, storeErr
	case storeErr != nil:
		log.Warn("the database does not answer; listening anyway, not ready (/readyz and requests that need it get 503), and trying again",
			"err", storeErr, "retry_in", firstStoreRetry.String())
	}
	// The spool and the journal keep on disk what the store has not taken
	// (spool.go); closed after the recorder, before the store.
	sp, journal, recovered, err := in.openSpool(cfg.db, cfg.spoolDir)
	if err != nil {
		return in, err
	}
	// Closed before the store, so whatever way serve ends, the records of
	// finished requests are written (or spooled) first.
	recorder := ledger.NewRecorder(store, log.With("component", "usage"), ledger.Options{Spool: sp, Journal: journal})
	in.onClose(func() { flushUsage(ctx, recorder, cfg.flushTimeout, log) })

	ctx, cancel := context.WithCancel(ctx)
	in.onClose(cancel)
	upstream, err := in.openUpstream(ctx, stdout)
	if err != nil {
		return in, err
	}
	obs, err := in.openObservability(ctx, recorder, upstream, stdout)
	if err != nil {
		return in, err
	}

	limiter, closeLimiter, err := newLimiter(ctx, cfg.limits, log.With("component", "ratelimit"), spentWithSpool{store, sp}, obs.registry)
	if err != nil {
		return in, err
	}
	in.onClose(closeLimiter)

	streams, closeStreams, err := newStreamLog(cfg.resume, cfg.limits)
	if err != nil {
		return in, err
	}
	in.onClose(closeStreams)

	var con *console.Console
	var sessions gateway.SessionAuthenticator
	if cfg.console {
		con = console.New(log.With("component", "console"), store, cache, console.Options{})
		sessions = con
	}
	// What runs once the database answers: following key changes and the
	// hourly clean-ups.
	whenUp := func() {
		go cache.Run(ctx, keysPollInterval)
		go pruneResponseOwners(ctx, store, time.Now, log)
		if con != nil {
			go con.Prune(ctx, time.Hour)
		}
		in.storeUp.Store(true)
	}
	if storeErr == nil {
		whenUp()
	} else {
		go in.retryStore(ctx, store, cache, stdout, whenUp)
	}

	hardStop, endInFlight := context.WithCancel(context.WithoutCancel(ctx))
	in.endInFlight = endInFlight
	in.onClose(endInFlight)
	gw := gateway.NewServer(log, gateway.Config{
		MaxBodyBytes:         cfg.maxBodyBytes,
		MaxBodyBytesInFlight: cfg.bodyBytesInFlight,
		SimulatorURL:         in.started.SimURL,
		FirstByteTimeout:     cfg.firstByteTimeout,
		StreamIdleTimeout:    cfg.idleTimeout,
		TotalTimeout:         cfg.totalTimeout,
		Heartbeat:            cfg.heartbeat,
		Shutdown:             hardStop,
		BodyReadTimeout:      cfg.bodyTimeout,
		Ready:                in.ready(store),
		VisionStream:         cfg.visionStream,
		StreamErrorFormat:    cfg.streamErrors,
		Usage:                recorder,
		Journal:              journal,
		Responses:            store,
		// SQLite is one process's store: owners are written behind.
		ResponseOwnersLocal: !postgres.IsDSN(cfg.db),
		Observer:            obs.observer,
		Metrics:             obs.metrics,
		Live:                obs.live,
		Sessions:            sessions,
		Tracer:              obs.tracer,
		Limiter:             limiter,
		DefaultLimits:       cfg.limits.defaults,
		LimitOnError:        gateway.LimitPolicy(cfg.limits.onError),
		ImagePrices:         cfg.prices.images,
		ToolPrices:          cfg.prices.tools,
		ReasoningTokens:     cfg.prices.reasoning,
		Streams:             streams,
		ResumeWindow:        cfg.resume.window,
		StreamLease:         cfg.resume.lease,
	}, cache, upstream)
	in.gw = gw
	// Prices and context windows from xAI's model list, fetched before
	// listening (for a few seconds at most: the built-in table stands in
	// until xAI answers) and kept fresh. The refresh is stopped, and waited
	// for, before the upstream closes.
	first, cancelFirst := context.WithTimeout(ctx, modelListStartTimeout)
	if err := gw.FetchModels(first); err != nil {
		log.Warn("starting with the built-in price table: xAI's model list could not be fetched yet; retrying in the background")
	}
	cancelFirst()
	refreshCtx, stopRefresh := context.WithCancel(ctx)
	refreshed := make(chan struct{})
	go func() { gw.RefreshModels(refreshCtx); close(refreshed) }()
	in.onClose(func() { stopRefresh(); <-refreshed })
	// What the last run left in flight is recorded, priced, once prices
	// are known.
	if err := in.keepRecovered(recovered, sp, recorder, gw.EstimateCost); err != nil {
		return in, err
	}
	// Runs before flushUsage (closers run last first), after the drain:
	// the refusals counted this minute reach the ledger.
	in.onClose(gw.FlushRefusals)
	// Before the store closes, after the drain: owners written behind.
	in.onClose(gw.FlushOwners)
	// The admin API sits beside the gateway's API on its mux.
	admin.Register(gw, store, time.Now).ShowSpool(func() (int64, int64) { return sp.Pending(), sp.DeadLetters() })
	in.handler = gw.Handler()
	if con != nil {
		in.handler, in.console = withConsole(in.handler, con), true
	}
	return in, nil
}

// openUpstream makes the xAI client: the real API with XAI_API_KEY, the
// built-in simulator without.
func (in *instance) openUpstream(ctx context.Context, stdout io.Writer) (*xai.Client, error) {
	baseURL, apiKey := in.cfg.xaiBaseURL, in.cfg.xaiAPIKey
	if apiKey == "" || in.cfg.simulator {
		// The simulator outlives the drain: streams in flight still need it.
		simCtx, stopSim := context.WithCancel(context.WithoutCancel(ctx))
		in.onClose(stopSim)
		sim, err := startSimulator(simCtx, "127.0.0.1:0", "", in.log)
		if err != nil {
			return nil, err
		}
		baseURL, apiKey, in.started.SimURL = sim+"/v1", "grokgate-simulator", sim
		if in.cfg.xaiAPIKey == "" {
			fmt.Fprintf(stdout, "No XAI_API_KEY set: answering from the built-in xAI simulator at %s (set XAI_API_KEY to use the real xAI API).\n", sim)
		} else {
			fmt.Fprintf(stdout, "--simulator: answering from the built-in xAI simulator at %s, not the real xAI API.\n", sim)
		}
	}
	transport := newTransport(in.cfg.connectTimeout)
	in.onClose(transport.CloseIdleConnections) // no pooled upstream connection outlives serve
	return xai.NewClient(baseURL, apiKey, transport,
		xai.Retry{MaxAttempts: int(in.cfg.upstreamAttempts)}, in.log.With("component", "xai"), time.Now), nil
}

// observability is what metrics and tracing give the gateway.
type observability struct {
	observer gateway.Observer
	metrics  http.Handler
	live     http.Handler // the console's live view of the metrics
	tracer   trace.Tracer
	registry prometheus.Registerer // nil without metrics
}

// openObservability starts metrics and tracing as configured and hooks
// them into the upstream client.
func (in *instance) openObservability(ctx context.Context, recorder *ledger.Recorder, upstream *xai.Client, stdout io.Writer) (observability, error) {
	var o observability
	cfg, log := in.cfg.obs, in.log
	hooks := xai.Hooks{}
	if cfg.metrics {
		reg, m, err := newMetrics(cfg, recorder)
		if err != nil {
			return o, err
		}
		o.observer, hooks.Observer, o.registry = m, m, reg
		o.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)})
		o.live = console.Live(reg, time.Now)
		if cfg.metricsAddr != "" {
			origin, stop, err := serveMetrics(ctx, cfg.metricsAddr, o.metrics, stdout, log)
			if err != nil {
				return o, err
			}
			in.started.MetricsURL = origin
			in.onClose(stop)
		}
	}
	tracer, stopTracing, err := newTracer(ctx, cfg)
	if err != nil {
		return o, err
	}
	in.onClose(func() {
		// Spans of the last requests are still buffered: send them.
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := stopTracing(tctx); err != nil {
			log.Warn("flushing trace spans failed", "err", err)
		}
	})
	if tracer != nil {
		o.tracer = tracer
		hooks.Header = injectTraceparent
		log.Info("tracing to OpenTelemetry", "endpoint", cfg.otlpEndpoint)
	}
	upstream.SetHooks(hooks)
	if n := upstream.Keys(); n > 1 {
		log.Info("rotating xAI keys", "keys", n)
	}
	return o, nil
}

// run listens and serves until ctx ends (a signal) or serving fails.
func (in *instance) run(ctx context.Context, stdout io.Writer, onStart func(started)) error {
	ln, err := net.Listen("tcp", in.cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set GROKGATE_ADDR or --addr to a free HOST:PORT)", in.cfg.addr, err)
	}
	srv := &http.Server{
		Handler: in.handler,
		// Slow clients may not pin connections while sending headers; no
		// WriteTimeout, which would cut long streams.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(in.log.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "grokgate listening on http://%s (OpenAI base URL: http://%s/api/v1)\n", ln.Addr(), ln.Addr())
	if in.console {
		fmt.Fprintf(stdout, "Web console: http://%s/console (sign in with a grokgate key)\n", ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if onStart != nil {
		in.started.URL = "http://" + ln.Addr().String()
		onStart(in.started)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		in.draining = srv
		return nil
	}
}

// close drains the requests in flight, if run was stopped, and then undoes
// open: the usage records are flushed before the store closes.
func (in *instance) close(ctx context.Context) {
	if srv := in.draining; srv != nil {
		in.log.Info("stopping: draining requests in flight", "drain_timeout", in.cfg.drainTimeout.String())
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), in.cfg.drainTimeout)
		// Background and resumable generations, which no handler waits
		// for once their client left, get the same deadline.
		if err := srv.Shutdown(dctx); err != nil || in.gw.Drain(dctx) != nil {
			in.log.Warn("drain deadline passed; ending the requests still in flight")
			in.endInFlight()
			// The handlers now write their error events and return; give
			// them a moment before closing whatever is left.
			ectx, ecancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := srv.Shutdown(ectx); err != nil {
				srv.Close()
			}
			in.gw.Drain(ectx)
			ecancel()
		}
		dcancel()
	}
	for i := len(in.closers) - 1; i >= 0; i-- {
		in.closers[i]()
	}
}

// flushUsage writes the queued usage records before the process exits and
// reports the recorder's counters.
func flushUsage(ctx context.Context, r *ledger.Recorder, timeout time.Duration, log *slog.Logger) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := r.Close(fctx)
	st := r.Stats()
	attrs := []any{"written", st.Written, "dropped", st.Dropped, "failed", st.Failed,
		"spooled", st.Spooled, "replayed", st.Replayed, "spool_pending", st.SpoolPending, "dead_letters", st.DeadLetters}
	switch {
	case err != nil:
		log.Error("usage flush deadline passed; the records not spooled are in the log above", append(attrs, "err", err)...)
	case st.Dropped > 0 || st.Failed > 0:
		log.Warn("usage ledger flushed; some records are only in the log", attrs...)
	case st.SpoolPending > 0:
		log.Warn("usage ledger flushed; records wait in the spool for the database, replayed at the next start", attrs...)
	default:
		log.Info("usage ledger flushed", attrs...)
	}
}

// migrateTimeout bounds opening the database at start-up once it answers:
// migrations of a large ledger may take minutes.
const migrateTimeout = 10 * time.Minute

// Start-up retries a database that does not answer after firstStoreRetry,
// doubling the wait up to maxStoreRetry.
const (
	firstStoreRetry = 250 * time.Millisecond
	maxStoreRetry   = 15 * time.Second
)

// connectStore makes one attempt at what a server needs of its database
// before it is ready: open it (connect and migrate) unless an earlier
// attempt did, mint the first admin key on an empty store, and load the
// keys. It returns the admin key it minted, even when a later step failed.
func (in *instance) connectStore(ctx context.Context, g *guardedStore, cache *keys.Cache, stdout io.Writer) (string, error) {
	if !g.opened() {
		octx, cancel := context.WithTimeout(ctx, migrateTimeout)
		st, err := openStoreWith(octx, in.cfg.db, in.cfg.storeTimeout)
		cancel()
		if err != nil {
			return "", err
		}
		g.set(st)
	}
	secret, err := firstKey(ctx, g, stdout)
	if err != nil {
		return secret, fmt.Errorf("minting the first admin key: %w", err)
	}
	if err := cache.Load(ctx); err != nil {
		return secret, fmt.Errorf("loading keys: %w", err)
	}
	return secret, nil
}

// retryStore runs connectStore with backoff until it succeeds, then calls
// up; it gives up only when ctx ends.
func (in *instance) retryStore(ctx context.Context, g *guardedStore, cache *keys.Cache, stdout io.Writer, up func()) {
	start, wait := time.Now(), firstStoreRetry
	for attempt := 2; ; attempt++ {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		_, err := in.connectStore(ctx, g, cache, stdout)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			in.log.Info("the database answers; grokgate is ready", "attempts", attempt, "waited", time.Since(start).Round(time.Millisecond).String())
			up()
			return
		}
		wait = min(2*wait, maxStoreRetry)
		in.log.Warn("the database still does not answer; not ready, trying again", "attempt", attempt, "retry_in", wait.String(), "err", err)
	}
}

// Readiness errors: /readyz answers 503 with their message.
var (
	errNotReadyStarting = &apierror.Error{Status: http.StatusServiceUnavailable, Type: apierror.TypeAPI, Code: "not_ready",
		Message: "grokgate is not ready: its database has not answered since it started; it keeps trying"}
	errNotReadyStore = &apierror.Error{Status: http.StatusServiceUnavailable, Type: apierror.TypeAPI, Code: "not_ready",
		Message: "grokgate is not ready: its database does not answer"}
)

// ready is /readyz's check: the database answered at start-up and answers
// now.
func (in *instance) ready(g *guardedStore) func(context.Context) error {
	return func(ctx context.Context) error {
		if !in.storeUp.Load() {
			return errNotReadyStarting
		}
		if err := g.Ping(ctx); err != nil {
			return fmt.Errorf("%w: %w", errNotReadyStore, err)
		}
		return nil
	}
}

// firstKey mints an admin key when the store has none, so a newcomer can call
// the API straight away. It is printed once and never again; firstKey
// returns it for onStart, "" when the store had keys.
func firstKey(ctx context.Context, store store, stdout io.Writer) (string, error) {
	k, secret, err := keys.Mint(keys.Random(), "admin", grokgate.RoleAdmin, time.Now())
	if err != nil {
		return "", err
	}
	// Atomic in the store: of servers starting together on an empty
	// database, exactly one creates the key and prints it.
	if created, err := store.CreateFirstKey(ctx, k); err != nil || !created {
		return "", err
	}
	fmt.Fprintf(stdout, "No gateway keys yet, so here is an admin key (%s). It is shown only this once; keep it:\n\n    %s\n\nMore keys: grokgate keys create --name NAME\n\n", k.ID, secret)
	return secret, nil
}

// newTransport is tuned for one upstream host taking many parallel
// requests: Go's default of 2 idle connections per host would make most
// requests open a fresh TLS connection to xAI. Over HTTP/1.1 every open
// stream holds a connection and its buffers for minutes, so they are smaller
// than Go's 4 KiB: a request is written once, and a response head fits in
// 2 KiB (a longer one is still read, in more calls).
func newTransport(connectTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   connectTimeout,
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       1 << 10,
		ReadBufferSize:        2 << 10,
	}
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// startSimulator serves the xAI simulator on addr until ctx ends and returns
// its origin (http://host:port).
func startSimulator(ctx context.Context, addr, apiKey string, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("simulator: listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           simulator.New(simulator.Options{APIKey: apiKey, Logger: log.With("component", "simulator")}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return "http://" + ln.Addr().String(), nil
}

// pruneResponseOwners forgets, every hour, the owners of responses xAI no
// longer keeps (grokgate.ResponseRetention), so the table stays as large as
// xAI's store and no larger. Every replica may prune: the deletes are
// idempotent.
func pruneResponseOwners(ctx context.Context, st store, now func() time.Time, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		n, err := st.PruneResponseOwners(pctx, now().Add(-grokgate.ResponseRetention))
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("forgetting expired response owners failed; trying again in an hour", "err", err)
		case n > 0:
			log.Info("forgot the owners of expired responses", "responses", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// withConsole serves /console and everything under it from the console and
// the rest from the gateway. A prefix test rather than a ServeMux, which
// would redirect the unclean paths that the gateway answers with a 404.
func withConsole(gw, con http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "/console" || strings.HasPrefix(p, "/console/") {
			con.ServeHTTP(w, r)
			return
		}
		gw.ServeHTTP(w, r)
	})
}
