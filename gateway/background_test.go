package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/grokgate/grokgate"
)

// responseView is the part of a response object the tests read.
type responseView struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Background bool   `json:"background"`
	Output     []struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
}

func (v responseView) text() string {
	var s string
	for _, o := range v.Output {
		for _, c := range o.Content {
			s += c.Text
		}
	}
	return s
}

func getResponse(t *testing.T, h *harness, key, id string) (int, responseView, []byte) {
	t.Helper()
	resp, b := h.do(t, context.Background(), "GET", "/v1/responses/"+id, key, "")
	var v responseView
	json.Unmarshal(b, &v)
	return resp.StatusCode, v, b
}

// seqOf is an event's sequence_number.
func seqOf(t *testing.T, data string) int64 {
	t.Helper()
	var v struct {
		Seq *int64 `json:"sequence_number"`
	}
	if json.Unmarshal([]byte(data), &v) != nil || v.Seq == nil {
		t.Fatalf("event without sequence_number: %s", data)
	}
	return *v.Seq
}

// TestBackgroundResponse: "background": true answers at once with the id
// and status in_progress; GET follows the status to completed with the
// whole output; ?stream=true&starting_after=N replays exactly the events
// after N to the terminal one; another key gets the unknown id's 404 for
// each; the generation is recorded once.
func TestBackgroundResponse(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		h := resumeHarness(t, open, logBounds{}, nil)
		other := h.mint(t, "other", grokgate.RoleUser, nil)
		resp, b := h.do(t, context.Background(), "POST", "/v1/responses", h.user,
			`{"model":"grok-4.3","input":"Count. #sim{\"chunks\":12,\"delay_ms\":20}","background":true}`)
		var v responseView
		if resp.StatusCode != 200 || json.Unmarshal(b, &v) != nil || v.ID == "" || v.Status != "in_progress" || !v.Background {
			t.Fatalf("create: %d %s", resp.StatusCode, b)
		}
		if code, cur, body := getResponse(t, h, h.user, v.ID); code != 200 || cur.Status != "in_progress" {
			t.Fatalf("while running: %d %s", code, body)
		}
		var done responseView
		deadline := time.Now().Add(10 * time.Second)
		for done.Status != "completed" {
			if time.Now().After(deadline) {
				t.Fatalf("not completed: %+v", done)
			}
			time.Sleep(20 * time.Millisecond)
			_, done, _ = getResponse(t, h, h.user, v.ID)
		}
		if done.text() == "" || done.ID != v.ID {
			t.Fatalf("completed without its output: %+v", done)
		}

		all := h.open(t, context.Background(), "GET", "/v1/responses/"+v.ID+"?stream=true", h.user, "", nil).rest(t)
		after := h.open(t, context.Background(), "GET", "/v1/responses/"+v.ID+"?stream=true&starting_after=3", h.user, "", nil).rest(t)
		if len(all) < 10 || len(after) != len(all)-4 {
			t.Fatalf("%d events, %d after 3", len(all), len(after))
		}
		for i, ev := range after {
			if seqOf(t, ev.data) != int64(i+4) || ev.raw != all[i+4].raw {
				t.Fatalf("event %d after 3: %s", i, ev.raw)
			}
		}
		if !bytes.Contains([]byte(after[len(after)-1].data), []byte(`"response.completed"`)) {
			t.Fatalf("last event %s", after[len(after)-1].data)
		}

		// Its owner may continue the conversation; another key may not.
		next := `{"model":"grok-4.3","input":"And then?","previous_response_id":"` + v.ID + `"}`
		if resp, b := h.do(t, context.Background(), "POST", "/v1/responses", h.user, next); resp.StatusCode != 200 {
			t.Fatalf("continuing it: %d %s", resp.StatusCode, b)
		}
		if resp, b := h.do(t, context.Background(), "POST", "/v1/responses", other, next); resp.StatusCode != 404 {
			t.Fatalf("another key continuing it: %d %s", resp.StatusCode, b)
		}

		_, unknownBody := h.do(t, context.Background(), "GET", "/v1/responses/nope", other, "")
		for _, c := range []struct{ method, path string }{
			{"GET", "/v1/responses/" + v.ID},
			{"GET", "/v1/responses/" + v.ID + "?stream=true"},
			{"POST", "/v1/responses/" + v.ID + "/cancel"},
		} {
			resp, b := h.do(t, context.Background(), c.method, c.path, other, "")
			if resp.StatusCode != 404 || string(bytes.ReplaceAll(b, []byte(v.ID), []byte("nope"))) != string(unknownBody) {
				t.Fatalf("%s %s with another key: %d %s (unknown id: %s)", c.method, c.path, resp.StatusCode, b, unknownBody)
			}
		}
		// The generation's record comes when its runner ends, which may be
		// a moment after the log says it completed.
		var n int
		deadline = time.Now().Add(10 * time.Second)
		for n == 0 && time.Now().Before(deadline) {
			h.recs.mu.Lock()
			recs := append([]grokgate.Record(nil), h.recs.list...)
			h.recs.mu.Unlock()
			n = 0
			for _, rec := range recs {
				if rec.UpstreamID == v.ID {
					n++
					if rec.Outcome != grokgate.OutcomeCompleted || rec.CompletionTokens == 0 || rec.Estimated {
						t.Fatalf("record %+v", rec)
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		if n != 1 {
			t.Fatalf("%d records of the generation", n)
		}
	})
}

// TestBackgroundStreamResume: a background stream whose client leaves goes
// on; retrieving it with starting_after the last sequence number seen
// gives the rest, none twice, none missing.
func TestBackgroundStreamResume(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		h := resumeHarness(t, open, logBounds{}, nil)
		ctx, drop := context.WithCancel(context.Background())
		s := h.open(t, ctx, "POST", "/v1/responses", h.user, `{"model":"grok-4.3","input":"Count. #sim{\"chunks\":15,\"delay_ms\":15}","background":true,"stream":true}`, nil)
		var got []sseEvent
		for range 6 {
			ev, ok := s.next(t)
			if !ok {
				t.Fatal("ended early")
			}
			got = append(got, ev)
		}
		drop()
		var created struct {
			Response struct {
				ID string `json:"id"`
			} `json:"response"`
		}
		json.Unmarshal([]byte(got[0].data), &created)
		last := seqOf(t, got[len(got)-1].data)
		got = append(got, h.open(t, context.Background(), "GET", "/v1/responses/"+created.Response.ID+"?stream=true&starting_after="+strconv.FormatInt(last, 10), h.user, "", nil).rest(t)...)
		for i, ev := range got {
			if seqOf(t, ev.data) != int64(i) {
				t.Fatalf("event %d has sequence_number %d", i, seqOf(t, ev.data))
			}
		}
		if !bytes.Contains([]byte(got[len(got)-1].data), []byte(`"response.completed"`)) {
			t.Fatalf("last %s", got[len(got)-1].data)
		}
		if st := h.sim.Stats(); st.StreamsCanceled != 0 {
			t.Fatalf("simulator %+v", st)
		}
	})
}

// TestBackgroundCancel: POST /responses/{id}/cancel stops the generation
// (xAI's stream is cancelled) and answers the response as cancelled; a GET
// says so too, and the usage is recorded once.
func TestBackgroundCancel(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		h := resumeHarness(t, open, logBounds{}, nil)
		_, b := h.do(t, context.Background(), "POST", "/v1/responses", h.user,
			`{"model":"grok-4.3","input":"Count. #sim{\"chunks\":1000,\"delay_ms\":20}","background":true}`)
		var v responseView
		json.Unmarshal(b, &v)
		resp, b := h.do(t, context.Background(), "POST", "/v1/responses/"+v.ID+"/cancel", h.user, "")
		var c responseView
		if resp.StatusCode != 200 || json.Unmarshal(b, &c) != nil || c.Status != "cancelled" || c.ID != v.ID {
			t.Fatalf("cancel: %d %s", resp.StatusCode, b)
		}
		if _, g, body := getResponse(t, h, h.user, v.ID); g.Status != "cancelled" {
			t.Fatalf("after cancel: %s", body)
		}
		var gen []grokgate.Record // the generation's; the cancel and the GET are reads, billed nothing
		for _, rec := range h.recs.wait(t, 3) {
			if rec.UpstreamID == v.ID {
				gen = append(gen, rec)
			} else if rec.CompletionTokens != 0 || rec.CostTicks != 0 {
				t.Fatalf("a read billed: %+v", rec)
			}
		}
		if len(gen) != 1 || gen[0].Outcome != grokgate.OutcomeClientCanceled {
			t.Fatalf("the generation's records: %+v", gen)
		}
		waitFor(t, "xAI's stream to be cancelled", func() bool { return h.sim.Stats().StreamsCanceled == 1 })
	})
}

// TestBackgroundWithoutLog: a gateway without a stream log refuses
// "background" with a clear 400, as before.
func TestBackgroundWithoutLog(t *testing.T) {
	h := newHarness(t)
	resp, b := h.do(t, context.Background(), "POST", "/v1/responses", h.user, `{"model":"grok-4.3","input":"Hi","background":true}`)
	if resp.StatusCode != 400 || !bytes.Contains(b, []byte(`"param":"background"`)) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

// TestDrainEndsDetached: at shutdown past the drain timeout a detached
// generation ends with the shutdown error event, stored for its readers,
// and Drain returns.
func TestDrainEndsDetached(t *testing.T) {
	eachLog(t, func(t *testing.T, open func(*testing.T, logBounds) StreamLog) {
		stop, end := context.WithCancel(context.Background())
		defer end()
		h := resumeHarness(t, open, logBounds{}, func(c *Config) { c.Shutdown = stop })
		ctx, drop := context.WithCancel(context.Background())
		s := h.open(t, ctx, "POST", "/v1/chat/completions", h.user, chat("grok-4.3", `Count. #sim{"chunks":1000,"delay_ms":20}`, true, false), resumable)
		id := s.resp.Header.Get(headerStreamID)
		s.next(t)
		drop()
		dctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := h.srv.Drain(dctx); err == nil {
			t.Fatal("Drain returned while the generation ran")
		}
		end()
		dctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.srv.Drain(dctx); err != nil {
			t.Fatal(err)
		}
		evs := h.open(t, context.Background(), "GET", "/v1/chat/completions/"+id+"/stream", h.user, "", nil).rest(t)
		if last := evs[len(evs)-1].data; last != `{"error":"API error: grokgate is shutting down; send the request again"}` {
			t.Fatalf("last event %q", last)
		}
	})
}
