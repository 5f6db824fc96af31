package main

import (
	"bytes"
	"encoding/json"
	"errors"
)

// streamAPI is what differs between the streaming phases (chat completions
// and the Responses API): the request, which events carry text, and how a
// stream's end is recognised. Everything else, load and measurement, is one
// code path (streamLoop, conn.stream).
type streamAPI struct {
	phase string // the phase that measures it; its name in the report
	title string // its section in the report
	path  string
	body  func(directive string) []byte
	// content is in the data of every event that carries a piece of the
	// answer's text and of no other; gaps are measured between them.
	content []byte
	// end reports whether an event's data ends the stream, and the error
	// when it ends it otherwise than complete.
	end func(data []byte) (bool, error)
}

// streamAPIs are the streaming phases, in the order they run.
var streamAPIs = []*streamAPI{&chatStreams, &responsesStreams}

func isStream(phase string) bool {
	for _, api := range streamAPIs {
		if api.phase == phase {
			return true
		}
	}
	return false
}

// chatStreams is chat completions: text in delta.content, the end at
// data: [DONE]; an error is an {"error":...} event and no [DONE].
var chatStreams = streamAPI{phase: "stream", title: "streaming chat completions", path: "/v1/chat/completions",
	body:    func(directive string) []byte { return chatBody(true, directive) },
	content: []byte(`"content":"`),
	end: func(data []byte) (bool, error) {
		if string(data) == "[DONE]" {
			return true, nil
		}
		if bytes.Contains(data, []byte(`"error":`)) { // xAI's {"code","error"} or the gateways' {"error":...}
			return true, errors.New("error event: " + string(data))
		}
		return false, nil
	}}

// responsesStreams is the Responses API: text in output_text.delta events,
// the end at the terminal event, which must be response.completed: an
// incomplete or failed response, or an error event, fails the stream.
var responsesStreams = streamAPI{phase: "responses", title: "streaming Responses API", path: "/v1/responses",
	body:    func(directive string) []byte { return conversation("input", true, directive) },
	content: []byte(`"type":"response.output_text.delta"`),
	end:     responsesEnd}

// terminalTypes mark the events that may end a Responses stream. Only
// events holding one are decoded, to confirm it is their own type.
var terminalTypes = [][]byte{[]byte(`"type":"response.completed"`), []byte(`"type":"response.incomplete"`),
	[]byte(`"type":"response.failed"`), []byte(`"type":"error"`)}

func responsesEnd(data []byte) (bool, error) {
	candidate := false
	for _, t := range terminalTypes {
		if bytes.Contains(data, t) {
			candidate = true
			break
		}
	}
	if !candidate {
		return false, nil
	}
	var ev struct {
		Type     string `json:"type"`
		Message  string `json:"message"`
		Response struct {
			Status string          `json:"status"`
			Error  json.RawMessage `json:"error"`
		} `json:"response"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return true, errors.New("undecodable event: " + err.Error())
	}
	switch ev.Type {
	case "response.completed":
		return true, nil
	case "error":
		return true, errors.New("error event: " + ev.Message)
	case "response.incomplete", "response.failed":
		return true, errors.New(ev.Type + " (status " + ev.Response.Status + "): " + string(ev.Response.Error))
	}
	return false, nil
}
