package xai

import (
	"context"
	"net/http"
)

// Observer learns of each upstream attempt that failed on xAI's side, for
// metrics: kind "connect" (no answer: the connection failed or broke) or
// "status" (xAI answered 429, 5xx, rejected the upstream key, or sent its
// 200 with a JSON error; status is 200 for that one). Attempts that end
// because the caller's context ended are not reported: the caller knows
// whether that was its timeout or a client that left.
type Observer interface {
	AttemptFailed(kind string, status int)
}

// Hooks let the server observe the client without the client knowing
// metrics or tracing libraries. Zero fields do nothing.
type Hooks struct {
	Observer Observer
	// Header is called on each attempt's request headers before it is sent,
	// with the exchange's context: tracing injects traceparent here.
	Header func(ctx context.Context, h http.Header)
}

// SetHooks installs hooks; call it before the client is used.
func (c *Client) SetHooks(h Hooks) { c.hooks = h }

// observe reports a failed attempt to the observer, if any.
func (c *Client) observe(ctx context.Context, v verdict, resp *http.Response, err error) {
	if c.hooks.Observer == nil || v == ok || ctx.Err() != nil {
		return
	}
	switch {
	case err != nil:
		c.hooks.Observer.AttemptFailed("connect", 0)
	case v == retryable || v == keyRejected || resp.StatusCode >= 500:
		// xAI's 4xx about the request itself are the caller's mistakes,
		// not upstream errors.
		c.hooks.Observer.AttemptFailed("status", resp.StatusCode)
	}
}
