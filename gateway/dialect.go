package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/usage"
	"github.com/grokgate/grokgate/xai"
)

// dialect is what differs between the API dialects grokgate relays (chat
// completions, Responses): how a stream ends, where its usage is, what the
// client must not see, and how the error event after the first byte looks.
// The relay, the meter and the stream error writer use only this, so no
// shared code branches on the route. One value per request, kept in its
// meter; its methods run on the request's goroutine.
type dialect interface {
	// event meters one relayed event (its data: the JSON after "data: ")
	// and says what the relay does with it. It must not allocate for the
	// events between the first and the last.
	event(data []byte) eventAction
	// upstreamError is the client's error for an event that event called
	// actError, as it is answered before the first byte; its Message goes
	// into the error event after it.
	upstreamError(data []byte) *apierror.Error
	// appendError appends the SSE event that ends a begun stream with e, in
	// format f where the dialect has a choice of formats.
	appendError(b []byte, e *apierror.Error, f StreamErrorFormat) []byte
	// result is what the stream reported, for the usage record.
	result() streamResult
	// generated is the bytes of text and of reasoning relayed so far, for
	// the journal's running count; it must not allocate.
	generated() (content, reasoning int64)
}

// eventAction is what the relay does with one upstream event.
type eventAction uint8

const (
	actRelay    eventAction = iota // send it on
	actWithhold                    // metered only: the client did not ask for it
	actEnd                         // send it on; the stream is complete
	actError                       // xAI's error event: the stream failed
)

// streamResult is what a dialect's stream metering learned.
type streamResult struct {
	id, model                    string
	usage                        usage.Usage
	tools                        grokgate.ToolCalls
	haveUsage                    bool
	contentBytes, reasoningBytes int64
	// failed: the stream ended with xAI's own failure event, which the
	// client received (Responses' response.failed).
	failed bool
}

// chatDialect is chat completions: a stream ends with data: [DONE]; usage
// comes in a chunk of its own, which the gateway asks for on every stream
// and withholds from a client that did not; an error is {"error":...}.
type chatDialect struct {
	m           usage.StreamMeter
	clientUsage bool // the client asked for stream usage itself
}

func (d *chatDialect) event(data []byte) eventAction {
	if bytes.Equal(data, doneData) {
		return actEnd
	}
	if bytes.Contains(data, errorKey) {
		if _, isErr := eventError(data); isErr {
			return actError
		}
	}
	if d.m.Observe(data) && !d.clientUsage {
		return actWithhold
	}
	return actRelay
}

func (d *chatDialect) upstreamError(data []byte) *apierror.Error {
	e := xai.StatusError(http.StatusOK, data)
	if msg, ok := eventError(data); ok {
		e.Message = msg
	}
	return e
}

// appendError writes the specified event, data: {"error":"API error: <message>"},
// or with StreamErrorOpenAI the OpenAI error object with that message.
func (d *chatDialect) appendError(b []byte, e *apierror.Error, f StreamErrorFormat) []byte {
	var ev []byte
	if f == StreamErrorOpenAI {
		shown := *e
		shown.Message = "API error: " + e.Message
		ev, _ = json.Marshal(&shown)
	} else {
		ev, _ = json.Marshal(struct {
			Error string `json:"error"`
		}{"API error: " + e.Message})
	}
	return append(append(append(b, "data: "...), ev...), "\n\n"...)
}

func (d *chatDialect) generated() (int64, int64) { return d.m.ContentBytes, d.m.ReasoningBytes }

func (d *chatDialect) result() streamResult {
	id, model := d.m.Head()
	return streamResult{id: id, model: model, usage: d.m.Usage, haveUsage: d.m.HaveUsage,
		contentBytes: d.m.ContentBytes, reasoningBytes: d.m.ReasoningBytes}
}

// responsesDialect is the Responses API: every event carries a type and a
// sequence_number; a stream ends with its terminal event (response.completed,
// response.incomplete, response.failed or an error event) and has no [DONE];
// usage is on the terminal event; an error after the first byte is an error
// event with the next sequence number, which the OpenAI SDKs raise.
type responsesDialect struct {
	m usage.ResponsesMeter
	// onID, if set, learns the response id once: at the event after the
	// one that named it, so its work (the owner's record, and decoding the
	// id) starts after the first event reached the client instead of
	// delaying it. A stream that ends at the naming event leaves the id to
	// its handler.
	onID func(id string)
}

// id is the response's id, as far as its events have named it.
func (d *responsesDialect) id() string {
	id, _ := d.m.Head()
	return id
}

func newResponsesDialect() responsesDialect { return responsesDialect{m: usage.NewResponsesMeter()} }

func (d *responsesDialect) event(data []byte) eventAction {
	if d.onID != nil {
		if id := d.id(); id != "" {
			d.onID(id)
			d.onID = nil
		}
	}
	end := d.m.Observe(data)
	if !end {
		return actRelay
	}
	if d.m.Terminal == usage.ResponseError {
		return actError
	}
	return actEnd
}

func (d *responsesDialect) upstreamError(data []byte) *apierror.Error {
	flat, _ := json.Marshal(struct {
		Code  string `json:"code"`
		Error string `json:"error"`
	}{d.m.ErrorCode, d.m.ErrorMessage})
	return xai.StatusError(http.StatusOK, flat)
}

// appendError writes the Responses error event, numbered as xAI's own would
// be (the one it replaces, or the next). It also carries the message as an
// "error" object: the OpenAI SDKs raise an exception only for an event with
// one, and readers of the Responses shape (the AI SDK's xAI provider) ignore
// the extra member.
func (d *responsesDialect) appendError(b []byte, e *apierror.Error, _ StreamErrorFormat) []byte {
	code := e.Code
	if code == "" {
		code = apierror.TypeFor(e.StatusCode())
	}
	typ := e.Type
	if typ == "" {
		typ = apierror.TypeFor(e.StatusCode())
	}
	seq := d.m.Seq + 1
	if d.m.Terminal == usage.ResponseError {
		seq = d.m.Seq // xAI's error event, which this one replaces
	}
	msg := "API error: " + e.Message
	type inner struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	}
	ev, _ := json.Marshal(struct {
		Type    string  `json:"type"`
		Code    string  `json:"code"`
		Message string  `json:"message"`
		Param   *string `json:"param"`
		Seq     int64   `json:"sequence_number"`
		Error   inner   `json:"error"`
	}{"error", code, msg, nil, seq, inner{msg, typ, code}})
	b = append(b, "data: "...)
	return append(append(b, ev...), "\n\n"...)
}

func (d *responsesDialect) generated() (int64, int64) { return d.m.ContentBytes, d.m.ReasoningBytes }

func (d *responsesDialect) result() streamResult {
	id, model := d.m.Head()
	return streamResult{id: id, model: model, usage: d.m.Usage, tools: d.m.Tools, haveUsage: d.m.HaveUsage,
		contentBytes: d.m.ContentBytes, reasoningBytes: d.m.ReasoningBytes, failed: d.m.Terminal == usage.ResponseFailed}
}
