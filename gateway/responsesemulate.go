package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// emulateResponseStream answers a streaming Responses request that was sent
// upstream as non-streaming (image input, GROKGATE_VISION_STREAM=emulate)
// with the event sequence of the same answer streamed, so a client that
// reads events gets the whole answer. answer is the complete response.
func (s *Server) emulateResponseStream(w http.ResponseWriter, r *http.Request, answer []byte) {
	events, err := responseEvents(answer)
	if err != nil {
		s.fail(w, r, badUpstream("a response object"), err)
		return
	}
	writeEmulated(w, meterFrom(r.Context()), events)
}

// responseIn is the part of a response object the emulated stream reads.
type responseIn struct {
	Status string            `json:"status"`
	Output []json.RawMessage `json:"output"`
}

// outputItemIn is the part of an output item the emulated stream reads.
type outputItemIn struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	Content   []json.RawMessage `json:"content"`
	Arguments *string           `json:"arguments"`
}

// responseEvents renders a response object as the events xAI streams for
// it (see docs/wire-format.md): created and in_progress with the response
// still empty, each output item added and done (a message's text parts as
// one delta each), and the terminal event that matches its status, with
// sequence numbers from 0.
func responseEvents(answer []byte) ([]byte, error) {
	var resp responseIn
	if err := json.Unmarshal(answer, &resp); err != nil {
		return nil, err
	}
	snapshot, err := editObject(answer, nil, field{"status", []byte(`"in_progress"`)},
		field{"output", []byte("[]")}, field{"usage", []byte("null")})
	if err != nil {
		return nil, err
	}
	e := eventWriter{out: make([]byte, 0, 2*len(answer)+1024)}
	e.add("response.created", field{"response", snapshot})
	e.add("response.in_progress", field{"response", snapshot})
	for i, raw := range resp.Output {
		var it outputItemIn
		if err := json.Unmarshal(raw, &it); err != nil {
			return nil, err
		}
		idx := []byte(strconv.Itoa(i))
		added := raw
		if it.Type == "message" {
			if added, err = editObject(raw, nil, field{"status", []byte(`"in_progress"`)}, field{"content", []byte("[]")}); err != nil {
				return nil, err
			}
		}
		e.add("response.output_item.added", field{"output_index", idx}, field{"item", added})
		itemID, _ := json.Marshal(it.ID)
		if err := e.itemContent(it, itemID, idx); err != nil {
			return nil, err
		}
		e.add("response.output_item.done", field{"output_index", idx}, field{"item", raw})
	}
	terminal := "response.completed"
	switch resp.Status {
	case "incomplete":
		terminal = "response.incomplete"
	case "failed":
		terminal = "response.failed"
	}
	e.add(terminal, field{"response", answer})
	return e.out, e.err
}

// itemContent adds the events inside one output item: a message's text
// parts, a function call's arguments.
func (e *eventWriter) itemContent(it outputItemIn, itemID, idx []byte) error {
	switch {
	case it.Type == "message":
		for j, part := range it.Content {
			var p struct {
				Type string `json:"type"`
				Text string `json:"text"`
			}
			if err := json.Unmarshal(part, &p); err != nil {
				return err
			}
			cidx := []byte(strconv.Itoa(j))
			empty, err := editObject(part, nil, field{"text", []byte(`""`)})
			if err != nil {
				return err
			}
			loc := []field{{"item_id", itemID}, {"output_index", idx}, {"content_index", cidx}}
			e.add("response.content_part.added", append(loc, field{"part", empty})...)
			if p.Type == "output_text" {
				text, _ := json.Marshal(p.Text)
				e.add("response.output_text.delta", append(loc, field{"delta", text})...)
				e.add("response.output_text.done", append(loc, field{"text", text})...)
			}
			e.add("response.content_part.done", append(loc, field{"part", part})...)
		}
	case it.Type == "function_call" && it.Arguments != nil:
		args, _ := json.Marshal(*it.Arguments)
		loc := []field{{"item_id", itemID}, {"output_index", idx}}
		e.add("response.function_call_arguments.delta", append(loc, field{"delta", args})...)
		e.add("response.function_call_arguments.done", append(loc, field{"arguments", args})...)
	}
	return nil
}

// eventWriter appends numbered Responses events.
type eventWriter struct {
	out []byte
	seq int
	err error
}

func (e *eventWriter) add(typ string, fields ...field) {
	t, _ := json.Marshal(typ)
	all := append([]field{{"type", t}, {"sequence_number", []byte(strconv.Itoa(e.seq))}}, fields...)
	ev, err := editObject([]byte("{}"), nil, all...)
	if err != nil && e.err == nil {
		e.err = err
	}
	e.seq++
	e.out = append(append(append(e.out, "data: "...), ev...), "\n\n"...)
}
