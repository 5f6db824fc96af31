// Package xai is grokgate's client for the xAI REST API: it sends requests
// with the gateway's xAI key and turns xAI's flat error bodies into errors a
// client of an OpenAI-compatible API understands.
package xai

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// DefaultBaseURL is the real xAI API.
const DefaultBaseURL = "https://api.x.ai/v1"

// Client sends requests to xAI. Its zero value is not usable.
type Client struct {
	baseURL string
	apiKey  string
	http    *http.Client
}

// NewClient returns a client for baseURL (such as DefaultBaseURL) that
// authenticates with apiKey and sends through hc, whose Transport carries the
// connection pool and dial timeouts.
func NewClient(baseURL, apiKey string, hc *http.Client) *Client {
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), apiKey: apiKey, http: hc}
}

// BaseURL returns the upstream base URL, for logs and readiness checks.
func (c *Client) BaseURL() string { return c.baseURL }

// Do sends method path with body (nil for none). The caller owns the
// response body. ctx governs the whole exchange, including reading the body,
// so cancelling it (a client that went away) stops the upstream request.
func (c *Client) Do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, rd)
	if err != nil {
		return nil, fmt.Errorf("xai: build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	return c.http.Do(req)
}
