package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/grokgate/grokgate/internal/pgtest"
)

// responsesStream is a Responses API stream as xAI may send it, with
// event: lines, a comment and a CRLF-framed event, ending with its
// terminal event.
const responsesStream = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"11111111-2222-4333-8444-555555555555\",\"object\":\"response\",\"model\":\"grok-4.3\",\"status\":\"in_progress\",\"output\":[],\"usage\":null}}\n\n" +
	": keep-alive\n\n" +
	"data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_11111111-2222-4333-8444-555555555555\",\"output_index\":0,\"content_index\":0,\"delta\":\"Ol\\u00e1\"}\r\n\r\n" +
	"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"item_id\":\"msg_11111111-2222-4333-8444-555555555555\",\"output_index\":0,\"content_index\":0,\"delta\":\"\\n\\n\"}\n\n" +
	"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"11111111-2222-4333-8444-555555555555\",\"object\":\"response\",\"model\":\"grok-4.3\",\"status\":\"completed\",\"output\":[],\"usage\":{\"input_tokens\":10,\"output_tokens\":3,\"total_tokens\":13,\"cost_in_usd_ticks\":12345}}}\n\n"

// TestResponsesRelayEveryByteSplit: a Responses stream delivered in two
// writes split at every byte reaches the client byte for byte, event:
// lines included, with no [DONE] added.
func TestResponsesRelayEveryByteSplit(t *testing.T) {
	relaySplitAtEveryByte(t, responsesStream, "/v1/responses", `{"model":"grok-4.3","stream":true,"input":"x"}`)
}

// TestE2EResponsesOwnershipAcrossReplicas runs two gateways on one
// PostgreSQL: a response created through one is its key's on both, and to
// another key it does not exist on either; the ledger holds xAI's usage.
func TestE2EResponsesOwnershipAcrossReplicas(t *testing.T) {
	dsn := pgtest.Schema(t)
	_, simURL := newSimulator(t)
	env := simEnv(simURL, "GROKGATE_DB", dsn)
	a := startGW(t, env)
	b := startGW(t, env)
	admin := a.AdminKey + b.AdminKey // exactly one of them minted it
	ctx := context.Background()
	mint := func(name string) string {
		resp, body, err := call(t, ctx, "POST", a.URL+"/admin/v1/keys", admin, `{"name":"`+name+`"}`)
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("create key: %v %s", err, body)
		}
		var k struct{ Key string }
		json.Unmarshal(body, &k)
		return k.Key
	}
	owner, other := mint("owner"), mint("other")

	// Created through A, streamed.
	resp, body, err := call(t, ctx, "POST", a.URL+"/v1/responses", owner, `{"model":"grok-4.3","stream":true,"input":"Remember 7."}`)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("create: %v %s", err, body)
	}
	id, usage := completedResponse(t, body)

	status := func(g *gw, method, key, path, reqBody string) int {
		t.Helper()
		resp, _, err := call(t, ctx, method, g.URL+path, key, reqBody)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	cont := `{"model":"grok-4.3","input":"Which number?","previous_response_id":"` + id + `"}`
	for _, g := range []*gw{a, b} {
		if s := status(g, "GET", other, "/v1/responses/"+id, ""); s != 404 {
			t.Errorf("another key's GET on %s: %d", g.URL, s)
		}
		if s := status(g, "POST", other, "/v1/responses", cont); s != 404 {
			t.Errorf("another key's continuation on %s: %d", g.URL, s)
		}
		if s := status(g, "DELETE", other, "/v1/responses/"+id, ""); s != 404 {
			t.Errorf("another key's DELETE on %s: %d", g.URL, s)
		}
	}
	if s := status(b, "GET", owner, "/v1/responses/"+id, ""); s != 200 {
		t.Fatalf("owner's GET on the other replica: %d", s)
	}
	if s := status(b, "POST", owner, "/v1/responses", cont); s != 200 {
		t.Fatalf("owner's continuation on the other replica: %d", s)
	}
	if s := status(b, "DELETE", owner, "/v1/responses/"+id, ""); s != 200 {
		t.Fatalf("owner's DELETE: %d", s)
	}
	if s := status(a, "GET", owner, "/v1/responses/"+id, ""); s != 404 {
		t.Fatalf("GET after DELETE on the first replica: %d", s)
	}

	// The ledger: the stream's record holds xAI's usage to the token. The
	// refused GET after DELETE reaches it when A stops (or the minute ends).
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5e9, "the owner's records in the ledger", func() bool {
		_, body, _ := call(t, ctx, "GET", b.URL+"/admin/v1/usage?group_by=key", admin, "")
		var u struct {
			Data []struct {
				KeyName  string `json:"key_name"`
				Requests int64  `json:"requests"`
				Prompt   int64  `json:"prompt_tokens"`
				Cost     int64  `json:"cost_in_usd_ticks"`
			} `json:"data"`
		}
		json.Unmarshal(body, &u)
		for _, row := range u.Data {
			// create, GET, continuation, DELETE, the GET after it; only the
			// create and the continuation bill anything
			if row.KeyName == "owner" && row.Requests == 5 && row.Prompt >= usage.InputTokens && row.Cost > usage.Cost {
				return true
			}
		}
		return false
	})
}

type wireUsage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	Cost         int64 `json:"cost_in_usd_ticks"`
}

// completedResponse reads a Responses stream and returns the id and usage
// of its response.completed event.
func completedResponse(t *testing.T, body []byte) (string, wireUsage) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev struct {
			Type     string `json:"type"`
			Response struct {
				ID    string    `json:"id"`
				Usage wireUsage `json:"usage"`
			} `json:"response"`
		}
		if json.Unmarshal([]byte(data), &ev) == nil && ev.Type == "response.completed" {
			return ev.Response.ID, ev.Response.Usage
		}
	}
	t.Fatalf("no response.completed in\n%s", body)
	return "", wireUsage{}
}

// TestResponsesMCPSecretsNotLogged: the mcp tool's authorization and
// headers are the client's secrets for its MCP server; they reach xAI but
// never grokgate's logs, whatever the request's outcome.
func TestResponsesMCPSecretsNotLogged(t *testing.T) {
	g := startGW(t, map[string]string{})
	const secret, header = "mcp-secret-7f3a9c", "hdr-secret-41bd"
	tool := `{"type":"mcp","server_url":"https://mcp.example.com","server_label":"x","authorization":"` + secret +
		`","headers":{"X-Token":"` + header + `"}}`
	for _, body := range []string{
		`{"model":"grok-4.3","input":"Use it.","tools":[` + tool + `]}`,
		`{"model":"grok-4.3","input":"Use it.","stream":true,"tools":[` + tool + `]}`,
		`{"model":"grok-4.3","input":"Use it. #sim{\"error_after\":1}","stream":true,"tools":[` + tool + `]}`,
		`{"model":"no-such-model","input":"Use it.","tools":[` + tool + `]}`,
		`{"model":"grok-4.3","input":5,"tools":[` + tool + `]}`,
	} {
		resp := g.post(t, "/v1/responses", g.AdminKey, body)
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(got), secret) || strings.Contains(string(got), header) {
			t.Fatalf("an answer holds the MCP secret: %s", got)
		}
	}
	if err := g.stop(t); err != nil {
		t.Fatal(err)
	}
	logs := g.Log.String() + g.stdout()
	if !strings.Contains(logs, `/v1/responses`) {
		t.Fatal("the requests were not logged at all")
	}
	if strings.Contains(logs, secret) || strings.Contains(logs, header) {
		t.Fatal("the logs hold the MCP tool's secrets")
	}
}
