package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/xai"
)

// headerStreamFallback marks an answer to a streaming request that was
// produced without upstream streaming.
const headerStreamFallback = "X-Stream-Fallback"

// upstreamAnswer reads a non-streaming upstream answer and maps every
// failure (transport, size, status, xAI's 200-with-error body) to the error
// the client sees; cause is internal detail for the log. On an error status
// it passes xAI's Retry-After on, which tells the client's SDK when to retry.
func upstreamAnswer(ctx context.Context, w http.ResponseWriter, r *http.Request, resp *http.Response) (body []byte, e *apierror.Error, cause error) {
	body, err := readAll(io.LimitReader(resp.Body, maxUpstreamBody+1), resp.ContentLength)
	if err != nil {
		return nil, upstreamFailure(ctx, r.Context(), err), err
	}
	if len(body) > maxUpstreamBody {
		return nil, &apierror.Error{Status: http.StatusBadGateway, Code: "upstream_response_too_large",
			Message: "xAI's answer was larger than the gateway can relay."}, nil
	}
	if resp.StatusCode != http.StatusOK {
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		return nil, xai.StatusError(resp.StatusCode, body), nil
	}
	// A completion always has "choices", a response object its "object",
	// and an xAI error body neither: the cheap check spares a JSON parse of
	// every good answer. (A failed response carries an "error" object of its
	// own and is an answer, not an error.)
	if !bytes.Contains(body, []byte(`"choices"`)) && !bytes.Contains(body, []byte(`"object":"response`)) {
		if _, _, isErr := xai.ParseError(body); isErr {
			meterFrom(r.Context()).refusedBody()
			return nil, xai.StatusError(http.StatusOK, body), nil
		}
	}
	return body, nil, nil
}

func badUpstream(what string) *apierror.Error {
	return &apierror.Error{Status: http.StatusBadGateway, Type: apierror.TypeUpstream, Code: "upstream_bad_response",
		Message: "xAI's answer was not " + what + "; try again."}
}

func nullToNil(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}
