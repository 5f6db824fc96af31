package simulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// eventWriter writes Responses events: one "data: <json>\n\n" each (with an
// "event: <type>" line first when asked), numbered from 0 without gaps and
// flushed one by one.
type eventWriter struct {
	ctx        context.Context
	w          http.ResponseWriter
	rc         *http.ResponseController
	seq        int
	eventLines bool
	buf        []byte
}

func (e *eventWriter) send(ev event) bool {
	if e.ctx.Err() != nil {
		return false
	}
	ev.SequenceNumber = e.seq
	e.seq++
	e.buf = e.buf[:0]
	if e.eventLines {
		e.buf = append(append(append(e.buf, "event: "...), ev.Type...), '\n')
	}
	e.buf = append(append(append(e.buf, "data: "...), marshal(ev)...), "\n\n"...)
	if _, err := e.w.Write(e.buf); err != nil {
		return false
	}
	if err := e.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return false
	}
	return true
}

// streamEnd says how a stream ended, for the counters and the store.
type streamEnd int

const (
	streamCompleted streamEnd = iota // terminal completed/incomplete event written
	streamCanceled                   // the client left
	streamFaulted                    // an error or response.failed event ended it
	streamCut                        // cut_after: abort the connection
)

// fault is the mid-stream failure directives ask for: after `after` text
// deltas, an error event ("error"), response.failed ("failed") or a cut.
type fault struct {
	kind  string
	after int
}

// faultOf merges error_after, failed_after and cut_after like chat: the
// smallest count wins the timing, error_after then failed_after the kind.
func faultOf(d directive, ext responsesDirective) (fault, bool) {
	f, ok := fault{after: maxChunks + 1}, false
	for _, c := range []struct {
		kind string
		n    *int
	}{{"cut", d.CutAfter}, {"failed", ext.FailedAfter}, {"error", d.ErrorAfter}} {
		if c.n != nil {
			f.after, f.kind, ok = min(f.after, max(*c.n, 0)), c.kind, true
		}
	}
	return f, ok
}

func ip(i int) *int               { return &i }
func sp(s string) *string         { return &s }
func emptyArray() json.RawMessage { return json.RawMessage("[]") }

// responseStreamer walks a plan's items and writes their events.
type responseStreamer struct {
	ew        *eventWriter
	p         *responsesPlan
	delayNext bool // every delta but the first waits delay_ms
	text      int  // text deltas sent
	args      int  // argument deltas sent
	reasoning int  // reasoning deltas sent
	done      []any
	fault     fault
	faulty    bool
}

func (st *responseStreamer) delta(ev event) bool {
	if st.delayNext && !wait(st.ew.ctx, st.p.dir.delay()) {
		return false
	}
	st.delayNext = true
	return st.ew.send(ev)
}

func (st *responseStreamer) run() streamEnd {
	p, ew := st.p, st.ew
	if !wait(ew.ctx, p.dir.ttft()) {
		return streamCanceled
	}
	snap := p.base
	snap.Status, snap.Output = "in_progress", []any{}
	if !ew.send(event{Type: "response.created", Response: &snap}) ||
		!ew.send(event{Type: "response.in_progress", Response: &snap}) {
		return streamCanceled
	}
	for i, it := range p.items {
		var end streamEnd
		ok := true
		switch it.kind {
		case "reasoning":
			ok = st.reasoningItem(i, it)
		case "tool":
			ok = st.toolItem(i, it)
		case "function_call":
			ok = st.functionCallItem(i, it)
		case "message":
			ok, end = st.messageItem(i, it)
		}
		if !ok {
			return end
		}
		if !ew.send(event{Type: "response.output_item.done", OutputIndex: ip(i), Item: it.done}) {
			return streamCanceled
		}
		st.done = append(st.done, it.done)
	}
	if st.faulty {
		return st.fail()
	}
	final := p.final()
	typ := "response.completed"
	if final.Status == "incomplete" {
		typ = "response.incomplete"
	}
	if !ew.send(event{Type: typ, Response: &final}) {
		return streamCanceled
	}
	return streamCompleted
}

func (st *responseStreamer) reasoningItem(i int, it planItem) bool {
	ew := st.ew
	added := it.done.(reasoningItem)
	added.Summary, added.Status, added.EncryptedContent = []summaryPart{}, "in_progress", nil
	if !ew.send(event{Type: "response.output_item.added", OutputIndex: ip(i), Item: added}) ||
		!ew.send(event{Type: "response.reasoning_summary_part.added", ItemID: it.id, OutputIndex: ip(i),
			SummaryIndex: ip(0), Part: summaryPart{Type: "summary_text", Text: ""}}) {
		return false
	}
	for _, piece := range st.p.reasoning {
		if !st.delta(event{Type: "response.reasoning_summary_text.delta", ItemID: it.id, OutputIndex: ip(i),
			SummaryIndex: ip(0), Delta: sp(piece)}) {
			return false
		}
		st.reasoning++
	}
	text := strings.Join(st.p.reasoning, "")
	return ew.send(event{Type: "response.reasoning_summary_text.done", ItemID: it.id, OutputIndex: ip(i),
		SummaryIndex: ip(0), Text: &text}) &&
		ew.send(event{Type: "response.reasoning_summary_part.done", ItemID: it.id, OutputIndex: ip(i),
			SummaryIndex: ip(0), Part: summaryPart{Type: "summary_text", Text: text}})
}

func (st *responseStreamer) toolItem(i int, it planItem) bool {
	added := it.done.(toolCallItem)
	added.Status, added.Outputs, added.Output = "in_progress", nil, nil
	if !st.ew.send(event{Type: "response.output_item.added", OutputIndex: ip(i), Item: added}) {
		return false
	}
	for _, phase := range it.tool.phases {
		if !st.ew.send(event{Type: "response." + it.tool.itemType + "." + phase, ItemID: it.id, OutputIndex: ip(i)}) {
			return false
		}
	}
	return true
}

func (st *responseStreamer) functionCallItem(i int, it planItem) bool {
	done := it.done.(functionCallItem)
	added := done
	added.Arguments, added.Status = "", "in_progress"
	if !st.ew.send(event{Type: "response.output_item.added", OutputIndex: ip(i), Item: added}) {
		return false
	}
	for _, piece := range st.p.args {
		if !st.delta(event{Type: "response.function_call_arguments.delta", ItemID: it.id, OutputIndex: ip(i), Delta: sp(piece)}) {
			return false
		}
		st.args++
	}
	return st.ew.send(event{Type: "response.function_call_arguments.done", ItemID: it.id, OutputIndex: ip(i),
		Name: done.Name, Arguments: &done.Arguments})
}

// messageItem streams the text; a fault directive stops it after its count
// of text deltas, in which case the returned streamEnd says how it ended.
func (st *responseStreamer) messageItem(i int, it planItem) (bool, streamEnd) {
	ew := st.ew
	done := it.done.(messageItem)
	added := done
	added.Status, added.Content = "in_progress", []outputText{}
	part := outputText{Type: "output_text", Text: "", Annotations: []annotation{}, Logprobs: []struct{}{}}
	if !ew.send(event{Type: "response.output_item.added", OutputIndex: ip(i), Item: added}) ||
		!ew.send(event{Type: "response.content_part.added", ItemID: it.id, OutputIndex: ip(i), ContentIndex: ip(0), Part: part}) {
		return false, streamCanceled
	}
	for n, piece := range st.p.text {
		if st.faulty && n >= st.fault.after {
			return false, st.fail()
		}
		if !st.delta(event{Type: "response.output_text.delta", ItemID: it.id, OutputIndex: ip(i), ContentIndex: ip(0),
			Delta: sp(piece), Logprobs: emptyArray()}) {
			return false, streamCanceled
		}
		st.text++
	}
	if st.faulty {
		return false, st.fail()
	}
	content := done.Content[0]
	for n, a := range content.Annotations {
		if !ew.send(event{Type: "response.output_text.annotation.added", ItemID: it.id, OutputIndex: ip(i),
			ContentIndex: ip(0), AnnotationIndex: ip(n), Annotation: &a}) {
			return false, streamCanceled
		}
	}
	if !ew.send(event{Type: "response.output_text.done", ItemID: it.id, OutputIndex: ip(i), ContentIndex: ip(0),
		Text: &content.Text, Logprobs: emptyArray()}) ||
		!ew.send(event{Type: "response.content_part.done", ItemID: it.id, OutputIndex: ip(i), ContentIndex: ip(0), Part: content}) {
		return false, streamCanceled
	}
	return true, streamCompleted
}

// fail ends the stream the way the fault directive asks.
func (st *responseStreamer) fail() streamEnd {
	switch st.fault.kind {
	case "cut":
		return streamCut
	case "failed":
		r := st.p.failed(st.done, st.text, st.args, st.reasoning)
		if !st.ew.send(event{Type: "response.failed", Response: &r}) {
			return streamCanceled
		}
	default:
		if !st.ew.send(event{Type: "error", Code: "Internal error",
			Message: fmt.Sprintf("Simulated error after %d chunks", st.text), Param: json.RawMessage("null")}) {
			return streamCanceled
		}
	}
	return streamFaulted
}

// failed is the response.failed snapshot: the items finished so far and
// the usage of what was produced.
func (p *responsesPlan) failed(done []any, text, args, reasoning int) responseObject {
	r := p.base
	r.Status = "failed"
	r.Error = &responseError{Code: "server_error", Message: fmt.Sprintf("Simulated failure after %d chunks", text)}
	r.Output = append([]any{}, done...)
	r.Usage = p.usage(text+args, reasoning)
	return r
}

// streamResponse answers a create request with stream:true.
func (s *Simulator) streamResponse(w http.ResponseWriter, r *http.Request, p *responsesPlan) {
	s.streamsStarted.Add(1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush() // a writer without Flush still works, just unpaced

	st := &responseStreamer{p: p, ew: &eventWriter{ctx: r.Context(), w: w, rc: rc, eventLines: p.ext.EventLines}}
	st.fault, st.faulty = faultOf(p.dir, p.ext)
	switch st.run() {
	case streamCompleted:
		s.streamsCompleted.Add(1)
		s.storeResponse(p)
	case streamCanceled:
		s.streamsCanceled.Add(1)
	case streamCut:
		// Abort without terminating the chunked body: an abrupt cut, not a clean EOF.
		panic(http.ErrAbortHandler)
	}
}
