// Package xai is grokgate's client for the xAI REST API: it sends requests
// with the gateway's xAI keys, retries what is safe to retry on another key,
// and turns xAI's flat error bodies into errors a client of an
// OpenAI-compatible API understands.
package xai

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grokgate/grokgate/mediatype"
)

// DefaultBaseURL is the real xAI API.
const DefaultBaseURL = "https://api.x.ai/v1"

// DefaultMaxAttempts is what a zero Retry.MaxAttempts means.
const DefaultMaxAttempts = 3

// Retry bounds failover before the first byte reaches the client. The zero
// value means the defaults noted on each field.
type Retry struct {
	MaxAttempts int           // attempts in all, the first included; 0 means DefaultMaxAttempts
	BaseBackoff time.Duration // first backoff, doubled each attempt, jittered ±50%; 0 means 250ms
	MaxBackoff  time.Duration // cap on one backoff; a longer Retry-After ends the retries; 0 means 5s
	Budget      time.Duration // no new attempt starts after this long; 0 means 20s
}

// Request is one call to xAI: every upstream call (chat, responses, images,
// models) is a Request sent through Client.Do, so retries and key rotation
// follow one set of rules.
type Request struct {
	Method string
	Path   string      // under the base URL, such as "/chat/completions"
	Query  string      // raw query without "?"; "" for none
	Header http.Header // extra headers to send; nil for none
	Body   []byte      // nil for none
	// Retry says which failures may be retried; the zero value is
	// RetryUnanswered.
	Retry RetryPolicy
}

// RetryPolicy says which failed attempts of a Request may be repeated
// before the first byte reaches the client.
type RetryPolicy uint8

const (
	// RetryUnanswered repeats a call that xAI did not answer with work done:
	// a connection never made, 429, 500, 502, 503 and xAI's 200 with a JSON
	// error. Right for calls whose repetition creates nothing that lasts
	// (chat completions, images, reads).
	RetryUnanswered RetryPolicy = iota
	// RetryNotTaken repeats only on answers that prove xAI did not take the
	// request: a refused connection, 429 and 503. Right for a call that
	// creates a stored object (POST /responses), which a repeat after a 500
	// could create twice.
	RetryNotTaken
)

// Client sends requests to xAI. Its zero value is not usable.
type Client struct {
	baseURL string
	pool    *keyPool
	rt      http.RoundTripper
	retry   Retry
	log     *slog.Logger
	now     func() time.Time
	hooks   Hooks
}

// NewClient returns a client for baseURL (such as DefaultBaseURL) that
// authenticates with apiKeys (one key, or several separated by commas) and
// sends through rt, which carries the connection pool and dial timeouts
// (an *http.Transport). It is a RoundTripper, not an *http.Client, as in
// httputil.ReverseProxy: an API call follows no redirects and keeps no
// cookies, and the Client's machinery for them costs allocations on every
// request.
func NewClient(baseURL, apiKeys string, rt http.RoundTripper, retry Retry, log *slog.Logger, now func() time.Time) *Client {
	if retry.MaxAttempts <= 0 {
		retry.MaxAttempts = DefaultMaxAttempts
	}
	if retry.BaseBackoff <= 0 {
		retry.BaseBackoff = 250 * time.Millisecond
	}
	if retry.MaxBackoff <= 0 {
		retry.MaxBackoff = 5 * time.Second
	}
	if retry.Budget <= 0 {
		retry.Budget = 20 * time.Second
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), pool: newKeyPool(parseKeys(apiKeys)),
		rt: rt, retry: retry, log: log, now: now}
}

// Keys returns how many xAI keys the client rotates through.
func (c *Client) Keys() int { return len(c.pool.keys) }

// BaseURL returns the upstream base URL, for logs and readiness checks.
func (c *Client) BaseURL() string { return c.baseURL }

// Do sends req and returns the first answer
// worth giving the client. Before returning, it retries, on another key when
// there is one, whatever req.Retry allows (RetryUnanswered: a failed
// connection, 429, 500, 502, 503, and xAI's 200-with-JSON-error); a key xAI
// calls invalid or unfunded is set aside and the request moves on. A
// response it returns has not been read, except a JSON error body, which is
// buffered. ctx governs the whole exchange including the body, so
// cancelling it (a client that went away) stops the upstream request.
func (c *Client) Do(ctx context.Context, req Request) (*http.Response, error) {
	start := c.now()
	var last *poolKey
	for attempt := 1; ; attempt++ {
		k := c.pool.pick(c.now(), last)
		resp, jsonErr, err := c.send(ctx, k, &req)
		verdict, retryAfter := classify(resp, jsonErr, err, req.Retry)
		c.observe(ctx, verdict, resp, err)
		if verdict == ok {
			k.succeeded()
			return resp, nil
		}
		wait, stop := c.failed(ctx, k, attempt, start, verdict, retryAfter, resp, jsonErr, err)
		if stop {
			if verdict != final && ctx.Err() == nil {
				return gaveUp(resp, err, attempt)
			}
			return resp, err
		}
		if !sleep(ctx, wait) {
			return resp, err
		}
		if resp != nil {
			resp.Body.Close()
		}
		last = k
	}
}

// headerAttempts carries, on a response Do gave up on, how many attempts
// were made. It never reaches the client as it is: the gateway reads it
// with Attempts.
const headerAttempts = "Grokgate-Upstream-Attempts"

// RetriesExhausted is the error of a call Do stopped retrying although
// the failure was of a retryable kind: its attempts or budget ran out.
type RetriesExhausted struct {
	Attempts int
	Err      error
}

func (e *RetriesExhausted) Error() string {
	return e.Err.Error() + " (after " + strconv.Itoa(e.Attempts) + " attempts)"
}

func (e *RetriesExhausted) Unwrap() error { return e.Err }

// gaveUp marks the result of a call whose retries ran out.
func gaveUp(resp *http.Response, err error, attempts int) (*http.Response, error) {
	if err != nil {
		return resp, &RetriesExhausted{Attempts: attempts, Err: err}
	}
	resp.Header.Set(headerAttempts, strconv.Itoa(attempts))
	return resp, nil
}

// Attempts returns how many attempts Do made on a call it stopped retrying
// although it could have gone on (its attempts or budget ran out), given
// what Do returned; 0 for any other result. A client that retries such a
// call only multiplies the load on xAI, which grokgate already retried.
func Attempts(resp *http.Response, err error) int {
	var re *RetriesExhausted
	if errors.As(err, &re) {
		return re.Attempts
	}
	if resp != nil {
		// Absent on nearly every answer; Atoi's error for "" allocates.
		if v := resp.Header.Get(headerAttempts); v != "" {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return 0
}

// failed notes a failed attempt on its key and decides whether to try again
// and after what wait; if so, a failed answer is kept readable. Apart from
// Do because a stream's goroutine keeps Do's frame on its stack through the
// whole exchange; the retry path's logging belongs in a frame that is gone.
func (c *Client) failed(ctx context.Context, k *poolKey, attempt int, start time.Time, v verdict, retryAfter time.Duration,
	resp *http.Response, jsonErr bool, err error) (wait time.Duration, stop bool) {
	switch v {
	case keyRejected:
		k.rejected(c.now())
		c.log.Warn("xAI rejected an upstream key; taking it out of rotation", "key", k.label,
			"status", resp.StatusCode, "for", rejectedCooldown.String())
	case retryable:
		k.failed(c.now(), retryAfter)
	}
	// With another key to try, this key's Retry-After does not apply (it
	// keeps the key cooling instead); with one key, honour it or give up.
	others := c.pool.hasOther(c.now(), k)
	wait = c.backoff(attempt)
	switch {
	case v == keyRejected && others:
		wait = 0
	case !others && retryAfter > wait:
		wait = retryAfter
	}
	stop = v == final || attempt >= c.retry.MaxAttempts || ctx.Err() != nil ||
		wait > c.retry.MaxBackoff || c.now().Add(wait).Sub(start) > c.retry.Budget ||
		(v == keyRejected && !others)
	if stop {
		return wait, true
	}
	c.log.Info("retrying xAI request", "attempt", attempt+1, "after", wait.String(), "failed_key", k.label,
		"reason", reason(resp, jsonErr, err))
	if resp != nil {
		// Keep the failed answer readable: if the wait is cut short (the
		// gateway's deadline), it is still the best thing to report.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	return wait, false
}

// send makes one attempt. jsonErr reports xAI's 200-with-JSON-error, which
// it can send even to a streaming request.
func (c *Client) send(ctx context.Context, k *poolKey, r *Request) (resp *http.Response, jsonErr bool, err error) {
	var rd io.Reader
	if r.Body != nil {
		rd = bytes.NewReader(r.Body)
	}
	url := c.baseURL + r.Path
	if r.Query != "" {
		url += "?" + r.Query
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, url, rd)
	if err != nil {
		return nil, false, fmt.Errorf("xai: build request: %w", err)
	}
	for name, vs := range r.Header {
		req.Header[name] = vs
	}
	// Assigned, not Set: Set allocates a slice per header per request. The
	// slices are never written to (full slice expressions: an Add copies).
	req.Header["Authorization"] = k.authHeader
	if r.Body != nil {
		req.Header["Content-Type"] = jsonContentType
	}
	req.Header["Accept"] = acceptBoth
	if c.hooks.Header != nil {
		c.hooks.Header(ctx, req.Header)
	}
	resp, err = c.rt.RoundTrip(req)
	if err != nil {
		return nil, false, err
	}
	if resp.StatusCode != http.StatusOK || r.Method != http.MethodPost {
		return resp, false, nil
	}
	if mediatype.Of(resp.Header.Get("Content-Type")) != "application/json" {
		return resp, false, nil
	}
	// An error body is a few dozen bytes: peek at the start of the answer
	// instead of reading it all, so a completion still streams through to
	// the gateway once, uncopied.
	br := bufio.NewReaderSize(resp.Body, errorPeek)
	head, _ := br.Peek(errorPeek)
	resp.Body = struct {
		io.Reader
		io.Closer
	}{br, resp.Body}
	if len(head) < errorPeek && !bytes.Contains(head, []byte(`"choices"`)) {
		_, _, jsonErr = ParseError(head)
	}
	return resp, jsonErr, nil
}

var (
	jsonContentType = []string{"application/json"}[:1:1]
	acceptBoth      = []string{"application/json, text/event-stream"}[:1:1]
)

// errorPeek bounds the look at a 200 answer for xAI's JSON error body.
const errorPeek = 1024

type verdict int

const (
	ok verdict = iota
	retryable
	keyRejected
	final
)

func classify(resp *http.Response, jsonErr bool, err error, policy RetryPolicy) (verdict, time.Duration) {
	if err != nil {
		// Only a connection that was never made is surely safe to repeat: a
		// request that reached xAI may be generating (and billing) already.
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return retryable, 0
		}
		return final, 0
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if jsonErr && policy == RetryUnanswered {
			return retryable, 0
		}
		return ok, 0
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return retryable, retryAfter(resp.Header.Get("Retry-After"))
	case http.StatusInternalServerError, http.StatusBadGateway:
		if policy != RetryUnanswered {
			return final, 0
		}
		return retryable, retryAfter(resp.Header.Get("Retry-After"))
	case http.StatusUnauthorized, http.StatusForbidden:
		return keyRejected, 0
	case http.StatusBadRequest:
		// xAI's wrong-key answer is a 400; peek at the message to tell it
		// from a bad request, which must reach the client as it is.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		if _, msg, isErr := ParseError(b); isErr && strings.HasPrefix(msg, "Incorrect API key") {
			return keyRejected, 0
		}
		return final, 0
	}
	if resp.StatusCode < 300 {
		return ok, 0
	}
	return final, 0
}

func reason(resp *http.Response, jsonErr bool, err error) string {
	if err != nil {
		return "connect failed"
	}
	if jsonErr {
		return "200 with JSON error"
	}
	return "status " + strconv.Itoa(resp.StatusCode)
}

// backoff is exponential with ±50% jitter, so retries from many requests
// spread out instead of arriving together.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.retry.BaseBackoff << (attempt - 1)
	d = time.Duration(float64(d) * (0.5 + rand.Float64()))
	return min(d, c.retry.MaxBackoff)
}

// retryAfter parses Retry-After in seconds or as an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
