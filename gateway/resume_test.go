package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
	"github.com/grokgate/grokgate/eventlog"
	"github.com/grokgate/grokgate/internal/redistest"
	"github.com/grokgate/grokgate/ratelimit"
	"github.com/grokgate/grokgate/redis"
)

// logBounds are the bounds a test wants of its stream log (0: defaults).
type logBounds struct {
	maxStreams     int
	maxStreamBytes int64
}

// streamLogs are the stream logs every resume test runs on.
var streamLogs = []struct {
	name string
	open func(t *testing.T, b logBounds) StreamLog
}{
	{"memory", func(t *testing.T, b logBounds) StreamLog {
		l := eventlog.New(eventlog.Options{MaxStreams: b.maxStreams, MaxStreamBytes: b.maxStreamBytes})
		t.Cleanup(func() { l.Close() })
		return l
	}},
	{"redis", func(t *testing.T, b logBounds) StreamLog {
		l, err := redis.NewStreamLog(redistest.URL(t), redis.StreamLogOptions{Prefix: redistest.Prefix(), Timeout: 5 * time.Second,
			MaxStreams: b.maxStreams, MaxStreamBytes: b.maxStreamBytes})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}},
}

// resumeHarness is a gateway with a stream log, a short lease and window
// unless configure says otherwise.
func resumeHarness(t *testing.T, open func(*testing.T, logBounds) StreamLog, b logBounds, configure func(*Config)) *harness {
	t.Helper()
	h := newHarnessConfig(t, func(c *Config) {
		c.Streams = open(t, b)
		c.StreamLease = 400 * time.Millisecond
		if configure != nil {
			configure(c)
		}
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.srv.Drain(ctx); err != nil {
			t.Errorf("detached generations still running at the end of the test: %v", err)
		}
	})
	return h
}

func eachLog(t *testing.T, f func(t *testing.T, open func(*testing.T, logBounds) StreamLog)) {
	for _, l := range streamLogs {
		t.Run(l.name, func(t *testing.T) { f(t, l.open) })
	}
}

// sseEvent is one event read off the wire.
type sseEvent struct {
	id   string
	data string
	raw  string // the event as sent, without its id: line
}

type sseReader struct {
	resp *http.Response
	br   *bufio.Reader
}

// next reads one event (comments are skipped); ok is false at the end.
func (s *sseReader) next(t *testing.T) (sseEvent, bool) {
	t.Helper()
	var ev sseEvent
	var raw strings.Builder
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			return ev, false
		}
		switch {
		case line == "\n":
			if raw.Len() == 0 && ev.id == "" {
				continue
			}
			ev.raw = raw.String() + "\n"
			return ev, true
		case strings.HasPrefix(line, ":"):
			// a comment: skip it and the blank line after it
			s.br.ReadString('\n')
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimSuffix(line[4:], "\n")
		default:
			if strings.HasPrefix(line, "data: ") {
				ev.data = strings.TrimSuffix(line[6:], "\n")
			}
			raw.WriteString(line)
		}
	}
}

// rest reads every event left.
func (s *sseReader) rest(t *testing.T) []sseEvent {
	var evs []sseEvent
	for {
		ev, ok := s.next(t)
		if !ok {
			return evs
		}
		evs = append(evs, ev)
	}
}

// open sends a request and returns the response unread.
func (h *harness) open(t *testing.T, ctx context.Context, method, path, key, body string, hdr map[string]string) *sseReader {
	t.Helper()
	req := h.request(t, ctx, method, path, key, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.gw.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseReader{resp: resp, br: bufio.NewReader(resp.Body)}
}

var resumable = map[string]string{"X-Grokgate-Resumable": "true"}

// chatText joins the content deltas of chat events.
func chatText(t *testing.T, evs []sseEvent) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range evs {
		if ev.data == "" || ev.data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(ev.data), &c); err != nil {
			t.Fatalf("event %q: %v", ev.data, err)
		}
		for _, ch := range c.Choices {
			b.WriteString(ch.Delta.Content)
		}
	}
	return b.String()
}

// TestResumableChatResume: a resumable stream dropped after a few events
// and picked up with Last-Event-ID gives, together, exactly the events of
// the whole stream (none twice, none missing, each byte as logged) and the
// text of a plain, uninterrupted run; without the header the stream has no
// id: lines and no stream id.
func TestResumableChatResume(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		h := resumeHarness(t, open, logBounds{}, nil)
		body := chat("grok-4.3", `Count. #sim{"chunks":20,"delay_ms":15}`, true, false)
		plain := h.open(t, context.Background(), "POST", "/v1/chat/completions", h.user, body, nil)
		if plain.resp.Header.Get(headerStreamID) != "" {
			t.Fatal("a plain stream got a stream id")
		}
		plainEvs := plain.rest(t)
		for _, ev := range plainEvs {
			if ev.id != "" {
				t.Fatalf("a plain stream has an id: line: %+v", ev)
			}
		}

		ctx, drop := context.WithCancel(context.Background())
		first := h.open(t, ctx, "POST", "/v1/chat/completions", h.user, body, resumable)
		id := first.resp.Header.Get(headerStreamID)
		if first.resp.StatusCode != 200 || id == "" {
			t.Fatalf("status %d, stream id %q", first.resp.StatusCode, id)
		}
		var got []sseEvent
		for range 5 {
			ev, ok := first.next(t)
			if !ok {
				t.Fatal("stream ended early")
			}
			got = append(got, ev)
		}
		drop()
		last := got[len(got)-1].id
		rest := h.open(t, context.Background(), "GET", "/v1/chat/completions/"+id+"/stream", h.user, "", map[string]string{"Last-Event-ID": last})
		if rest.resp.StatusCode != 200 || rest.resp.Header.Get(headerStreamID) != id {
			t.Fatalf("resume: status %d, stream id %q", rest.resp.StatusCode, rest.resp.Header.Get(headerStreamID))
		}
		got = append(got, rest.rest(t)...)

		whole := h.open(t, context.Background(), "GET", "/v1/chat/completions/"+id+"/stream", h.user, "", nil).rest(t)
		if len(got) != len(whole) {
			t.Fatalf("%d events with the resume, %d in the whole stream", len(got), len(whole))
		}
		for i := range got {
			if got[i].id != strconv.Itoa(i+1) || got[i].raw != whole[i].raw || got[i].id != whole[i].id {
				t.Fatalf("event %d: %+v, whole stream: %+v", i, got[i], whole[i])
			}
		}
		if got[len(got)-1].data != "[DONE]" {
			t.Fatalf("last event %q", got[len(got)-1].data)
		}
		if a, b := chatText(t, got), chatText(t, plainEvs); a != b || a == "" {
			t.Fatalf("text %q, a plain run's %q", a, b)
		}
		recs := h.recs.wait(t, 2)
		for _, rec := range recs {
			if rec.Outcome != grokgate.OutcomeCompleted || rec.CompletionTokens == 0 || rec.Estimated {
				t.Fatalf("record %+v", rec)
			}
		}
	})
}

// TestResumableOutlivesClient: the client of a resumable stream leaves
// after its first event; the generation runs to its end (xAI's stream is
// not cancelled) and is recorded once, completed. A plain stream's client
// leaving still cancels at once.
func TestResumableOutlivesClient(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		h := resumeHarness(t, open, logBounds{}, nil)
		body := chat("grok-4.3", `Count. #sim{"chunks":10,"delay_ms":20}`, true, false)
		ctx, drop := context.WithCancel(context.Background())
		s := h.open(t, ctx, "POST", "/v1/chat/completions", h.user, body, resumable)
		if _, ok := s.next(t); !ok {
			t.Fatal("no first event")
		}
		drop()
		rec := h.recs.wait(t, 1)[0]
		if rec.Outcome != grokgate.OutcomeCompleted || rec.Estimated || rec.CompletionTokens == 0 {
			t.Fatalf("record %+v", rec)
		}
		// The simulator counts a stream completed after it flushed [DONE],
		// which may be after the gateway has read it and written the record.
		waitFor(t, "the simulator to finish its stream", func() bool { return h.sim.Stats().StreamsCompleted == 1 })
		if st := h.sim.Stats(); st.StreamsCanceled != 0 {
			t.Fatalf("simulator %+v", st)
		}

		ctx, drop = context.WithCancel(context.Background())
		s = h.open(t, ctx, "POST", "/v1/chat/completions", h.user, body, nil)
		s.next(t)
		drop()
		h.recs.wait(t, 2)
		waitFor(t, "the plain stream to be cancelled", func() bool { return h.sim.Stats().StreamsCanceled == 1 })
	})
}

// TestResumeOtherKey: another key gets, for a stream it did not start, the
// same 404 as for an id that never existed.
func TestResumeOtherKey(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		h := resumeHarness(t, open, logBounds{}, nil)
		other := h.mint(t, "other", grokgate.RoleUser, nil)
		s := h.open(t, context.Background(), "POST", "/v1/chat/completions", h.user, chat("grok-4.3", "Hi", true, false), resumable)
		id := s.resp.Header.Get(headerStreamID)
		s.rest(t)
		resp, theirs := h.do(t, context.Background(), "GET", "/v1/chat/completions/"+id+"/stream", other, "")
		resp2, unknown := h.do(t, context.Background(), "GET", "/v1/chat/completions/gs_unknown/stream", other, "")
		if resp.StatusCode != 404 || resp2.StatusCode != 404 ||
			string(bytes.ReplaceAll(theirs, []byte(id), []byte("gs_unknown"))) != string(unknown) {
			t.Fatalf("another key's stream: %d %s; unknown: %d %s", resp.StatusCode, theirs, resp2.StatusCode, unknown)
		}
		if resp, b := h.do(t, context.Background(), "GET", "/v1/chat/completions/"+id+"/stream", h.user, ""); resp.StatusCode != 200 || !bytes.Contains(b, []byte("[DONE]")) {
			t.Fatalf("its own key: %d %s", resp.StatusCode, b)
		}
	})
}

// TestResumeWindowStops: a resumable generation nobody reads is stopped
// after the resume window, and recorded once as cancelled by its client.
func TestResumeWindowStops(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		h := resumeHarness(t, open, logBounds{}, func(c *Config) { c.ResumeWindow = 300 * time.Millisecond })
		ctx, drop := context.WithCancel(context.Background())
		s := h.open(t, ctx, "POST", "/v1/chat/completions", h.user, chat("grok-4.3", `Count. #sim{"chunks":1000,"delay_ms":20}`, true, false), resumable)
		id := s.resp.Header.Get(headerStreamID)
		s.next(t)
		drop()
		rec := h.recs.wait(t, 1)[0]
		if rec.Outcome != grokgate.OutcomeClientCanceled || rec.Status != statusClientClosed {
			t.Fatalf("record %+v", rec)
		}
		// The simulator sees the cut connection on its own goroutine, which
		// may run after the record is written.
		waitFor(t, "the simulator to see its stream cancelled", func() bool { return h.sim.Stats().StreamsCanceled == 1 })
		evs := h.open(t, context.Background(), "GET", "/v1/chat/completions/"+id+"/stream", h.user, "", nil).rest(t)
		if last := evs[len(evs)-1].data; !strings.Contains(last, "no client read this stream") {
			t.Fatalf("last event %q", last)
		}
	})
}

// TestResumeCapacity: past the stream log's bound, a resumable request
// gets 429 with a clear message instead of growing the log.
func TestResumeCapacity(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		h := resumeHarness(t, open, logBounds{maxStreams: 1}, nil)
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		s := h.open(t, ctx, "POST", "/v1/chat/completions", h.user, chat("grok-4.3", `Count. #sim{"chunks":30,"delay_ms":20}`, true, false), resumable)
		s.next(t)
		resp, b := h.do(t, context.Background(), "POST", "/v1/chat/completions", h.user, chat("grok-4.3", "Hi", true, false))
		if resp.StatusCode != 200 {
			t.Fatalf("a plain stream: %d %s", resp.StatusCode, b)
		}
		req, _ := http.NewRequest("POST", h.gw.URL+"/v1/chat/completions", strings.NewReader(chat("grok-4.3", "Hi", true, false)))
		req.Header.Set("Authorization", "Bearer "+h.user)
		req.Header.Set(headerResumable, "true")
		resp, err := h.gw.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 429 || !bytes.Contains(b, []byte(`"code":"resume_capacity"`)) {
			t.Fatalf("over the bound: %d %s", resp.StatusCode, b)
		}
		s.rest(t)
	})
}

// TestResumeReplicaDied: a stream whose runner stopped renewing its lease
// (its replica died) is replayed to its last stored event, then ended with
// the interrupted error event, without waiting for more.
func TestResumeReplicaDied(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		h := resumeHarness(t, open, logBounds{}, nil)
		k, err := h.cache.Authenticate(context.Background(), h.user)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		l := h.srv.cfg.Streams
		if err := l.Create(ctx, chatLogPrefix+"gs_dead", grokgate.StreamMeta{Owner: k.ID, Dialect: dialectChat, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		for _, ev := range []string{"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n"} {
			if _, err := l.Append(ctx, chatLogPrefix+"gs_dead", []byte(ev)); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		evs := h.open(t, ctx, "GET", "/v1/chat/completions/gs_dead/stream", h.user, "", map[string]string{"Last-Event-ID": "1"}).rest(t)
		if len(evs) != 2 || evs[0].id != "2" || evs[1].data != `{"error":"API error: the generation was interrupted; send the request again"}` {
			t.Fatalf("events %+v", evs)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %s", d)
		}
	})
}

// TestResumedHeartbeats: a resumed stream waiting for the generation's next
// event gets the same keep-alive comments as a first one.
func TestResumedHeartbeats(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		h := resumeHarness(t, open, logBounds{}, func(c *Config) { c.Heartbeat = 50 * time.Millisecond })
		s := h.open(t, context.Background(), "POST", "/v1/chat/completions", h.user, chat("grok-4.3", `Count. #sim{"chunks":3,"delay_ms":600}`, true, false), resumable)
		id := s.resp.Header.Get(headerStreamID)
		r := h.open(t, context.Background(), "GET", "/v1/chat/completions/"+id+"/stream", h.user, "", nil)
		all, _ := io.ReadAll(r.br)
		if n := bytes.Count(all, []byte(": keep-alive\n\n")); n < 3 || !bytes.HasSuffix(all, []byte("data: [DONE]\n\n")) {
			t.Fatalf("%d heartbeats in %q", n, all)
		}
		s.rest(t)
	})
}

// TestResumableOpenStreamLimit: a detached generation holds its key's
// stream slot until it ends, though its client left.
func TestResumableOpenStreamLimit(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		h := resumeHarness(t, open, logBounds{}, func(c *Config) { c.Limiter = ratelimit.New(time.Now, time.Minute) })
		_, key := h.mintWith(t, "one-stream", func(k *grokgate.Key) { k.Limits.MaxStreams = 1 })
		ctx, drop := context.WithCancel(context.Background())
		s := h.open(t, ctx, "POST", "/v1/responses", key, `{"model":"grok-4.3","input":"Count. #sim{\"chunks\":15,\"delay_ms\":20}","background":true,"stream":true}`, nil)
		s.next(t)
		drop()
		resp, b := h.do(t, context.Background(), "POST", "/v1/chat/completions", key, chat("grok-4.3", "Hi", true, false))
		if resp.StatusCode != 429 {
			t.Fatalf("a second stream while the background one runs: %d %s", resp.StatusCode, b)
		}
		h.recs.wait(t, 1) // the background generation ended (a refusal is counted per minute)
		resp, b = h.do(t, context.Background(), "POST", "/v1/chat/completions", key, chat("grok-4.3", "Hi", true, false))
		if resp.StatusCode != 200 {
			t.Fatalf("after it ended: %d %s", resp.StatusCode, b)
		}
	})
}

// TestResumableClientFallsBehind: a first client the generation outruns
// (here by more than one event) reads the rest from the log: its stream is
// still every event once, in order, as logged.
func TestResumableClientFallsBehind(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		for _, buf := range []int{1, defaultTeeBuffer} {
			h := resumeHarness(t, open, logBounds{}, nil)
			h.srv.teeBuffer = buf
			s := h.open(t, context.Background(), "POST", "/v1/chat/completions", h.user, chat("grok-4.3", `Go. #sim{"chunks":300}`, true, false), resumable)
			id := s.resp.Header.Get(headerStreamID)
			got := s.rest(t)
			whole := h.open(t, context.Background(), "GET", "/v1/chat/completions/"+id+"/stream", h.user, "", nil).rest(t)
			if len(got) != len(whole) || len(got) < 300 {
				t.Fatalf("buffer %d: %d events, the log has %d", buf, len(got), len(whole))
			}
			for i := range got {
				if got[i] != whole[i] || got[i].id != strconv.Itoa(i+1) {
					t.Fatalf("buffer %d, event %d: %+v, logged %+v", buf, i, got[i], whole[i])
				}
			}
		}
	})
}

// TestResumedErrorEvents: the error events that end a failed stream (xAI's
// own error, the idle timeout) are stored, so a resumed stream ends with
// the same event the first connection got, without [DONE]; an upstream
// error before the first event is answered with its HTTP status, as for a
// plain stream.
func TestResumedErrorEvents(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		h := resumeHarness(t, open, logBounds{}, func(c *Config) { c.StreamIdleTimeout = 300 * time.Millisecond })
		for _, c := range []struct{ directive, want string }{
			{`#sim{"chunks":5,"error_after":2}`, `{"error":"API error: Simulated error after 2 chunks"}`},
			{`#sim{"chunks":3,"delay_ms":5000}`, `{"error":"API error: xAI sent nothing for 300ms; the stream was ended"}`},
		} {
			s := h.open(t, context.Background(), "POST", "/v1/chat/completions", h.user, chat("grok-4.3", "Go. "+c.directive, true, false), resumable)
			id := s.resp.Header.Get(headerStreamID)
			first := s.rest(t)
			resumed := h.open(t, context.Background(), "GET", "/v1/chat/completions/"+id+"/stream", h.user, "", map[string]string{"Last-Event-ID": "1"}).rest(t)
			if len(first) < 2 || first[len(first)-1].data != c.want || len(resumed) != len(first)-1 || resumed[len(resumed)-1] != first[len(first)-1] {
				t.Fatalf("%s: first %+v, resumed %+v", c.directive, first, resumed)
			}
		}
		resp, b := h.do(t, context.Background(), "POST", "/v1/chat/completions", h.user, chat("grok-4.3", `#sim{"status":429}`, true, false))
		req, _ := http.NewRequest("POST", h.gw.URL+"/v1/chat/completions", strings.NewReader(chat("grok-4.3", `#sim{"status":429}`, true, false)))
		req.Header.Set("Authorization", "Bearer "+h.user)
		req.Header.Set(headerResumable, "true")
		rr, err := h.gw.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := io.ReadAll(rr.Body)
		rr.Body.Close()
		if rr.StatusCode != resp.StatusCode || rr.StatusCode != 429 || rr.Header.Get(headerStreamID) != "" || !bytes.Equal(rb, b) {
			t.Fatalf("resumable %d %s, plain %d %s", rr.StatusCode, rb, resp.StatusCode, b)
		}
	})
}

// TestResumableImageChatNotResumable: a resumable chat request with image
// content, which xAI is asked to answer whole (emulate and json modes), is
// answered as such a request always is: no stream id, no id: lines, and
// nothing left running to resume.
func TestResumableImageChatNotResumable(t *testing.T) {
	for _, mode := range []VisionStream{VisionStreamEmulate, VisionStreamJSON} {
		t.Run(string(mode), func(t *testing.T) {
			h := resumeHarness(t, streamLogs[0].open, logBounds{}, func(c *Config) { c.VisionStream = mode })
			body := `{"model":"grok-4.3","stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"What is in the picture?"},` +
				`{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}`
			req := h.request(t, context.Background(), "POST", "/v1/chat/completions", h.user, body)
			req.Header.Set("X-Grokgate-Resumable", "true")
			resp, err := h.gw.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || resp.Header.Get(headerStreamID) != "" {
				t.Fatalf("status %d, stream id %q: %s", resp.StatusCode, resp.Header.Get(headerStreamID), b)
			}
			switch mode {
			case VisionStreamJSON:
				if resp.Header.Get(headerStreamFallback) != "true" || !strings.Contains(string(b), `"choices"`) {
					t.Fatalf("json mode: %v %s", resp.Header, b)
				}
			default:
				if !strings.HasSuffix(string(b), "data: [DONE]\n\n") || strings.Contains(string(b), "\nid:") || strings.HasPrefix(string(b), "id:") {
					t.Fatalf("emulated stream: %s", b)
				}
			}
		})
	}
}
