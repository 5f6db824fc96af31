package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate/gateway"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// ivImages is OpenAI's images answer, with strict item fields.
type ivImages struct {
	Created int64            `json:"created"`
	Data    []map[string]any `json:"data"`
	Usage   map[string]any   `json:"usage"`
}

func decodeImages(t *testing.T, resp *http.Response, body []byte) ivImages {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var out ivImages
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("images answer: %v: %s", err, body)
	}
	if now := time.Now().Unix(); out.Created < now-60 || out.Created > now+60 {
		t.Fatalf("created %d is not now", out.Created)
	}
	for _, item := range out.Data {
		for k := range item {
			if k != "url" && k != "b64_json" && k != "revised_prompt" {
				t.Fatalf("item has %q, not in OpenAI's image shape: %s", k, body)
			}
		}
	}
	return out
}

func (e *ivEnv) generate(t *testing.T, path, body string) ivImages {
	t.Helper()
	resp, b := e.postJSON(t, path, body)
	return decodeImages(t, resp, b)
}

// fetchPNG downloads an image URL and decodes it as PNG.
func fetchPNG(t *testing.T, url string) image.Image {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	img, err := png.Decode(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: not a PNG: %v", url, err)
	}
	return img
}

func decodeB64PNG(t *testing.T, s string) image.Image {
	t.Helper()
	if strings.HasPrefix(s, "data:") {
		t.Fatalf("b64_json has a data: prefix")
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("b64_json: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("b64_json: not a PNG: %v", err)
	}
	return img
}

func TestImageRoutes(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, nil)
	for _, path := range []string{"/api/v1/images/generate", "/api/v1/images/generations", "/v1/images/generations", "/v1/images/generate"} {
		out := e.generate(t, path, `{"prompt":"a lighthouse at dusk"}`)
		if len(out.Data) != 1 {
			t.Fatalf("%s: %d images", path, len(out.Data))
		}
		url, _ := out.Data[0]["url"].(string)
		if !strings.HasPrefix(url, e.sim.URL+"/sim/images/") {
			t.Fatalf("%s: url %q", path, url)
		}
		if b := fetchPNG(t, url).Bounds(); b.Dx() != 64 || b.Dy() != 64 {
			t.Fatalf("%s: bounds %v", path, b)
		}
		if cost, _ := out.Usage["cost_in_usd_ticks"].(float64); cost <= 0 {
			t.Fatalf("%s: usage %v", path, out.Usage)
		}
		up := e.lastUpstream(t, "/images/generations")
		if up["model"] != "grok-imagine-image" {
			t.Fatalf("%s: default model not sent: %v", path, up)
		}
		resp, body := e.post(t, path, "", nil)
		ivWantError(t, resp, body, 400, "", "Request body is empty")
		req, _ := http.NewRequest(http.MethodGet, e.gw.URL+path, nil)
		r, err := e.gw.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET %s: %d", path, r.StatusCode)
		}
	}
}

func TestImageFormatsAndN(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, nil)

	out := e.generate(t, "/api/v1/images/generate", `{"prompt":"three foxes","n":3,"response_format":"b64_json"}`)
	if len(out.Data) != 3 {
		t.Fatalf("%d images", len(out.Data))
	}
	seen := map[string]bool{}
	for _, item := range out.Data {
		s, _ := item["b64_json"].(string)
		if _, ok := item["url"]; ok || seen[s] {
			t.Fatalf("item %v", item)
		}
		seen[s] = true
		decodeB64PNG(t, s)
	}

	out = e.generate(t, "/api/v1/images/generate", `{"prompt":"three owls","n":3,"response_format":"url"}`)
	if len(out.Data) != 3 {
		t.Fatalf("%d images", len(out.Data))
	}
	for _, item := range out.Data {
		url, _ := item["url"].(string)
		fetchPNG(t, url)
	}
}

func TestImageSizeMapping(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, nil)
	for _, c := range []struct {
		body  string
		ratio string
		w, h  int
	}{
		{`{"prompt":"p","size":"1024x1024"}`, "1:1", 64, 64},
		{`{"prompt":"p","size":"1792x1024"}`, "16:9", 64, 36},
		{`{"prompt":"p","size":"1024x1792"}`, "9:16", 36, 64},
		{`{"prompt":"p","size":"1536x1024"}`, "3:2", 64, 43},
		{`{"prompt":"p","size":"1024x1536"}`, "2:3", 43, 64},
		{`{"prompt":"p","size":"256x256"}`, "1:1", 64, 64},
		{`{"prompt":"p","size":"2000x1000"}`, "2:1", 64, 32},
		{`{"prompt":"p","size":"auto"}`, "auto", 64, 64},
		// aspect_ratio given explicitly wins over size.
		{`{"prompt":"p","size":"1792x1024","aspect_ratio":"4:3"}`, "4:3", 64, 48},
	} {
		out := e.generate(t, "/v1/images/generations", strings.Replace(c.body, "{", `{"response_format":"b64_json",`, 1))
		b := decodeB64PNG(t, out.Data[0]["b64_json"].(string)).Bounds()
		if b.Dx() != c.w || b.Dy() != c.h {
			t.Fatalf("%s: bounds %v, want %dx%d", c.body, b, c.w, c.h)
		}
		up := e.lastUpstream(t, "/images/generations")
		if _, ok := up["size"]; ok || up["aspect_ratio"] != c.ratio {
			t.Fatalf("%s: sent upstream %v, want aspect_ratio %s and no size", c.body, up, c.ratio)
		}
	}
}

func TestImagePassThroughAndStream(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, nil)
	resp, body := e.postJSON(t, "/api/v1/images/generations",
		`{"prompt":"a kite","stream":true,"user":"u-42","quality":"hd","resolution":"2k","extra":{"nested":[1,2]}}`)
	out := decodeImages(t, resp, body)
	if resp.Header.Get("X-Stream-Fallback") != "true" {
		t.Fatalf("stream:true answered without X-Stream-Fallback: %v", resp.Header)
	}
	fetchPNG(t, out.Data[0]["url"].(string))
	up := e.lastUpstream(t, "/images/generations")
	if _, ok := up["stream"]; ok {
		t.Fatalf("stream sent upstream: %v", up)
	}
	if up["user"] != "u-42" || up["quality"] != "hd" || up["resolution"] != "2k" || up["prompt"] != "a kite" {
		t.Fatalf("fields not passed through: %v", up)
	}
	if b, _ := json.Marshal(up["extra"]); string(b) != `{"nested":[1,2]}` {
		t.Fatalf("unknown field changed: %s", b)
	}
	// Without stream, no header.
	resp, body = e.postJSON(t, "/api/v1/images/generations", `{"prompt":"a kite"}`)
	decodeImages(t, resp, body)
	if resp.Header.Get("X-Stream-Fallback") != "" {
		t.Fatal("X-Stream-Fallback on a request that did not stream")
	}
}

func TestImageValidation(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, nil)
	for _, c := range []struct {
		body, code, msg string
		status          int
	}{
		{`{}`, "invalid_request", "Missing required parameter: 'prompt'", 400},
		{`{"prompt":"   "}`, "invalid_request", "'prompt'", 400},
		{`{"prompt":7}`, "invalid_type", "Invalid type for 'prompt'", 400},
		{`{"prompt":"p","n":0}`, "invalid_request", "from 1 to 10", 400},
		{`{"prompt":"p","n":11}`, "invalid_request", "from 1 to 10", 400},
		{`{"prompt":"p","n":"3"}`, "invalid_type", "Invalid type for 'n'", 400},
		{`{"prompt":"p","response_format":"png"}`, "invalid_request", `"url" or "b64_json"`, 400},
		{`{"prompt":"p","size":"huge"}`, "invalid_request", "WIDTHxHEIGHT", 400},
		{`{"prompt":"p","size":"0x100"}`, "invalid_request", "WIDTHxHEIGHT", 400},
		{`{"prompt":"p","aspect_ratio":"wide"}`, "invalid_request", "16:9", 400},
		{`{"prompt":"p","resolution":"4k"}`, "invalid_request", `"1k" or "2k"`, 400},
		{`{"prompt":"p","stream":"yes"}`, "invalid_type", "'stream'", 400},
		{`["prompt"]`, "invalid_request", "JSON object", 400},
		{`{"prompt":`, "invalid_json", "not valid JSON", 400},
		// Names match exactly and once, as on chat: "MODEL" is not "model".
		{`{"prompt":"p","prompt":"q"}`, "invalid_request", "'prompt' more than once", 400},
		{`{"PROMPT":"p"}`, "invalid_request", "'PROMPT', which differs only in case from 'prompt'", 400},
		{`{"prompt":"p","Model":"grok-imagine-image-quality"}`, "invalid_request", "'Model', which differs only in case from 'model'", 400},
		{"{\"prompt\":\"bad \xff utf-8\"}", "invalid_encoding", "not valid UTF-8", 400},
		// Upstream's verdicts arrive in the OpenAI envelope too.
		{`{"prompt":"p","model":"grok-4.3"}`, "", "does not exist", 404},
		{`{"prompt":"p","aspect_ratio":"5:1"}`, "", "aspect_ratio must be one of", 400},
		{`{"prompt":"p","style":"vivid"}`, "", "Argument not supported: style", 400},
		{`{"prompt":"#sim{\"status\":503} p"}`, "", "Simulated upstream error", 503},
	} {
		resp, body := e.postJSON(t, "/api/v1/images/generate", c.body)
		ivWantError(t, resp, body, c.status, c.code, c.msg)
	}
	before := len(e.upstream("/images/generations"))
	resp, body := e.post(t, "/api/v1/images/generate", "image/png", strings.NewReader("x"))
	ivWantError(t, resp, body, 415, "unsupported_content_type", "application/json")
	resp, body = e.postJSON(t, "/api/v1/images/generate", `{"n":3}`)
	ivWantError(t, resp, body, 400, "", "prompt")
	if after := len(e.upstream("/images/generations")); after != before {
		t.Fatalf("invalid requests went upstream: %d", after-before)
	}
}

func TestImageModeration(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, nil)
	resp, body := e.postJSON(t, "/api/v1/images/generate", `{"prompt":"#sim{\"moderate\":true} something","n":2}`)
	ivWantError(t, resp, body, 400, "content_policy_violation", "moderation withheld")

	// A partly moderated answer keeps the images that were delivered.
	partial := newIV(t, gateway.Config{}, func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if r.URL.Path != "/v1/images/generations" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":[{"url":null,"mime_type":"image/png","revised_prompt":"","respect_moderation":false},` +
			`{"b64_json":"data:image/png;base64,iVBORw0KGgo=","mime_type":"image/png","revised_prompt":"a cat, softly lit"}],"usage":{"cost_in_usd_ticks":400000000}}`))
		return true
	})
	resp, body = partial.postJSON(t, "/api/v1/images/generate", `{"prompt":"p","n":2,"response_format":"b64_json"}`)
	out := decodeImages(t, resp, body)
	if len(out.Data) != 1 || out.Data[0]["b64_json"] != "iVBORw0KGgo=" || out.Data[0]["revised_prompt"] != "a cat, softly lit" {
		t.Fatalf("partial moderation: %s", body)
	}
	if resp.Header.Get("X-Images-Moderated") != "1" {
		t.Fatalf("X-Images-Moderated %q", resp.Header.Get("X-Images-Moderated"))
	}
}

// TestImageOpenAIGo: the official Go SDK, unmodified, pointed at grokgate.
func TestImageOpenAIGo(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, nil)
	client := openai.NewClient(option.WithBaseURL(e.gw.URL+"/api/v1"), option.WithAPIKey(ivKey),
		option.WithHTTPClient(e.gw.Client()), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	res, err := client.Images.Generate(ctx, openai.ImageGenerateParams{Prompt: "a paper boat", N: openai.Int(2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != 2 || res.Created == 0 {
		t.Fatalf("%+v", res)
	}
	for _, d := range res.Data {
		fetchPNG(t, d.URL)
	}

	res, err = client.Images.Generate(ctx, openai.ImageGenerateParams{
		Prompt:         "a paper boat",
		Size:           openai.ImageGenerateParamsSize1536x1024,
		ResponseFormat: openai.ImageGenerateParamsResponseFormatB64JSON,
	})
	if err != nil {
		t.Fatal(err)
	}
	if b := decodeB64PNG(t, res.Data[0].B64JSON).Bounds(); b.Dx() != 64 || b.Dy() != 43 {
		t.Fatalf("bounds %v", b)
	}

	_, err = client.Images.Generate(ctx, openai.ImageGenerateParams{Prompt: "#sim{\"moderate\":true} x"})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "content_policy_violation" {
		t.Fatalf("moderated: %v", err)
	}
}
