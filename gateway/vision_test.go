package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grokgate/grokgate/gateway"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Small real images, as a client would send them.
func pngBytes(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.RGBA{200, 10, 10, 255})
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func jpegBytes(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 4, 4)), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gifBytes(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := gif.Encode(&buf, image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.White}), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bigPNG is a PNG signature followed by padding: n bytes that pass the
// magic check, to exercise the size limit.
func bigPNG(n int) []byte {
	b := make([]byte, n)
	copy(b, "\x89PNG\r\n\x1a\n")
	return b
}

func dataURI(mime string, b []byte) string {
	return "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(b)
}

// multipartBody builds a form; files maps a file name to its bytes and is
// sent as "image" parts in the order of names.
func multipartBody(t *testing.T, fields map[string]string, names []string, files map[string][]byte) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for _, n := range names {
		fw, err := mw.CreateFormFile("image", n)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(files[n])
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), &buf
}

// sentImages returns the image URLs and the prompt of the last chat request
// sent upstream.
func sentImages(t *testing.T, e *ivEnv) (prompt string, urls []string, up map[string]any) {
	t.Helper()
	up = e.lastUpstream(t, "/chat/completions")
	msgs, _ := up["messages"].([]any)
	if len(msgs) != 1 {
		t.Fatalf("upstream messages: %v", up["messages"])
	}
	msg := msgs[0].(map[string]any)
	if msg["role"] != "user" {
		t.Fatalf("upstream message: %v", msg)
	}
	for _, p := range msg["content"].([]any) {
		part := p.(map[string]any)
		switch part["type"] {
		case "text":
			prompt = part["text"].(string)
		case "image_url":
			urls = append(urls, part["image_url"].(map[string]any)["url"].(string))
		}
	}
	return prompt, urls, up
}

func TestVisionJSON(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, nil)
	p := pngBytes(t)

	for _, path := range []string{"/api/v1/vision/analyze", "/v1/vision/analyze"} {
		resp, body := e.postJSON(t, path, `{"image_url":"https://example.com/cat.png","prompt":"What animal is this?"}`)
		c := ivDecodeCompletion(t, resp, body)
		if c.Choices[0].Message.Content != ivSimAnswer("What animal is this?") || c.Model != "grok-4.3" {
			t.Fatalf("%s: %s", path, body)
		}
		if c.Usage.PromptTokensDetails.ImageTokens != 256 {
			t.Fatalf("%s: one image, usage %+v", path, c.Usage)
		}
		prompt, urls, up := sentImages(t, e)
		if prompt != "What animal is this?" || len(urls) != 1 || urls[0] != "https://example.com/cat.png" || up["model"] != "grok-4.3" {
			t.Fatalf("%s: upstream %v", path, up)
		}
		if resp.Header.Get("X-Stream-Fallback") != "" {
			t.Fatalf("%s: X-Stream-Fallback without stream", path)
		}
	}

	// A data URI, the default prompt, options, an unknown field passed on.
	resp, body := e.postJSON(t, "/api/v1/vision/analyze", fmt.Sprintf(
		`{"image_url":{"url":%q,"detail":"low"},"model":"grok-4.5","max_tokens":3,"temperature":0.2,"seed":7}`, dataURI("image/png", p)))
	c := ivDecodeCompletion(t, resp, body)
	if c.Choices[0].FinishReason != "length" || c.Model != "grok-4.5" {
		t.Fatalf("max_tokens not applied: %s", body)
	}
	prompt, urls, up := sentImages(t, e)
	if prompt != "Describe this image." || urls[0] != dataURI("image/png", p) {
		t.Fatalf("upstream %v", up)
	}
	if up["max_completion_tokens"] != 3.0 || up["temperature"] != 0.2 || up["seed"] != 7.0 {
		t.Fatalf("options not sent: %v", up)
	}
	part := up["messages"].([]any)[0].(map[string]any)["content"].([]any)[1].(map[string]any)
	if part["image_url"].(map[string]any)["detail"] != "low" {
		t.Fatalf("detail not sent: %v", part)
	}

	// Several images; a JPEG declared as PNG goes on as what it is.
	j := jpegBytes(t)
	resp, body = e.postJSON(t, "/api/v1/vision/analyze", fmt.Sprintf(
		`{"image_urls":["https://example.com/a.jpg",%q,%q],"prompt":"Compare them.","detail":"high"}`,
		dataURI("image/png", j), dataURI("image/jpeg", p)))
	c = ivDecodeCompletion(t, resp, body)
	if c.Usage.PromptTokensDetails.ImageTokens != 3*256 {
		t.Fatalf("three images, usage %+v", c.Usage)
	}
	_, urls, _ = sentImages(t, e)
	if len(urls) != 3 || urls[1] != dataURI("image/jpeg", j) || urls[2] != dataURI("image/png", p) {
		t.Fatalf("images sent: %.80q", urls)
	}
}

func TestVisionMultipart(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, nil)
	p, j := pngBytes(t), jpegBytes(t)
	ct, body := multipartBody(t, map[string]string{"prompt": "What is this?"}, []string{"photo.jpg", "diagram.png"},
		map[string][]byte{"photo.jpg": j, "diagram.png": p})
	resp, out := e.post(t, "/api/v1/vision/analyze", ct, body)
	c := ivDecodeCompletion(t, resp, out)
	if c.Choices[0].Message.Content != ivSimAnswer("What is this?") || c.Usage.PromptTokensDetails.ImageTokens != 512 {
		t.Fatalf("%s", out)
	}
	prompt, urls, _ := sentImages(t, e)
	if prompt != "What is this?" || len(urls) != 2 || urls[0] != dataURI("image/jpeg", j) || urls[1] != dataURI("image/png", p) {
		t.Fatalf("sent %q %.60q", prompt, urls)
	}

	// Text fields, and an image_url field alongside a file.
	ct, body = multipartBody(t, map[string]string{"model": "grok-4.6", "max_tokens": "2", "image_url": "https://example.com/x.png"},
		[]string{"x.png"}, map[string][]byte{"x.png": p})
	resp, out = e.post(t, "/v1/vision/analyze", ct, body)
	c = ivDecodeCompletion(t, resp, out)
	if c.Model != "grok-4.6" || c.Choices[0].FinishReason != "length" || c.Usage.PromptTokensDetails.ImageTokens != 512 {
		t.Fatalf("%s", out)
	}
}

func TestVisionRejections(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, nil)
	gifData := gifBytes(t)
	big := bigPNG(21 << 20)

	type check struct {
		name      string
		ct        string
		body      func() io.Reader
		status    int
		code, msg string
	}
	js := func(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }
	form := func(fields map[string]string, name string, data []byte) (string, func() io.Reader) {
		files := map[string][]byte{name: data}
		names := []string{name}
		if data == nil {
			names = nil
		}
		ct, b := multipartBody(t, fields, names, files)
		raw := b.Bytes()
		return ct, func() io.Reader { return bytes.NewReader(raw) }
	}
	gifCT, gifForm := form(nil, "cat.png", gifData)
	bigCT, bigForm := form(map[string]string{"prompt": "big"}, "huge.png", big)
	fileCT, fileForm := form(map[string]string{"file": "x"}, "", nil)
	emptyCT, emptyForm := form(nil, "empty.png", []byte{})
	checks := []check{
		{"gif renamed .png (multipart)", gifCT, gifForm, 400, "invalid_image_format", `image "cat.png" is not a PNG or JPEG image: its bytes are image/gif`},
		{"gif declared png (data URI)", "application/json", js(fmt.Sprintf(`{"image_url":%q}`, dataURI("image/png", gifData))), 400, "invalid_image_format", "image_url is not a PNG or JPEG image: its bytes are image/gif"},
		{"21 MiB PNG (multipart)", bigCT, bigForm, 400, "image_too_large", `image "huge.png" is larger than 20 MiB`},
		{"broken base64", "application/json", js(`{"image_url":"data:image/png;base64,iVBOR*w0KGgo="}`), 400, "invalid_base64", "base64 is malformed"},
		{"unpadded base64", "application/json", js(`{"image_url":"data:image/png;base64,iVBORw0KGgo"}`), 400, "invalid_base64", "padding"},
		{"not base64 data URI", "application/json", js(`{"image_url":"data:image/png,abc"}`), 400, "invalid_image_url", "not a base64 data URI"},
		{"file URL", "application/json", js(`{"image_url":"file:///etc/passwd"}`), 400, "invalid_image_url", `URL scheme "file:"`},
		{"ftp URL", "application/json", js(`{"image_urls":["https://example.com/a.png","ftp://example.com/b.png"]}`), 400, "invalid_image_url", `image_urls[1] uses the URL scheme "ftp:"`},
		{"relative URL", "application/json", js(`{"image_url":"cat.png"}`), 400, "invalid_image_url", "not a valid URL"},
		{"text-only model", "application/json", js(`{"image_url":"https://example.com/a.png","model":"grok-3"}`), 400, "model_not_vision_capable", `Model "grok-3" does not accept image input; use one that does: grok-4.20-0309-non-reasoning, grok-4.20-0309-reasoning, grok-4.3, grok-4.5, grok-4.6.`},
		{"text-only model by alias-free id", "application/json", js(`{"image_url":"https://example.com/a.png","model":"grok-code-fast-1"}`), 400, "model_not_vision_capable", "grok-code-fast-1"},
		{"no image", "application/json", js(`{"prompt":"hi"}`), 400, "missing_image", "No image given"},
		{"empty image", emptyCT, emptyForm, 400, "invalid_image", `image "empty.png" is empty`},
		{"empty URL", "application/json", js(`{"image_url":""}`), 400, "invalid_image_url", "image_url is empty"},
		{"wrong image type", "application/json", js(`{"image_url":42}`), 400, "invalid_request", "expected a URL string"},
		{"bad detail", "application/json", js(`{"image_url":"https://example.com/a.png","detail":"ultra"}`), 400, "invalid_request", `"auto", "low" or "high"`},
		{"bad max_tokens", "application/json", js(`{"image_url":"https://example.com/a.png","max_tokens":0}`), 400, "invalid_request", "positive integer"},
		{"bad temperature", "application/json", js(`{"image_url":"https://example.com/a.png","temperature":3}`), 400, "invalid_request", "from 0 to 2"},
		{"messages", "application/json", js(`{"messages":[]}`), 400, "invalid_request", "/chat/completions"},
		{"unknown form field", fileCT, fileForm, 400, "invalid_request", "Unknown form field 'file'"},
		{"broken multipart", "multipart/form-data", js("x"), 400, "invalid_request", "Malformed multipart/form-data"},
		{"not JSON", "application/json", js(`{"image_url":`), 400, "invalid_json", "not valid JSON"},
		{"repeated name", "application/json", js(`{"image_url":"https://example.com/a.png","image_url":"https://example.com/b.png"}`), 400, "invalid_request", "'image_url' more than once"},
		{"not UTF-8", "application/json", js("{\"image_url\":\"https://example.com/a.png\",\"prompt\":\"\xff\"}"), 400, "invalid_encoding", "not valid UTF-8"},
		{"unsupported content type", "image/png", js("x"), 415, "unsupported_content_type", "Content-Type"},
	}
	for _, c := range checks {
		before := len(e.upstream("/chat/completions"))
		resp, body := e.post(t, "/api/v1/vision/analyze", c.ct, c.body())
		if resp.StatusCode != c.status {
			t.Fatalf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.status, body)
		}
		ivWantError(t, resp, body, c.status, c.code, c.msg)
		if len(e.upstream("/chat/completions")) != before {
			t.Fatalf("%s: the request went upstream", c.name)
		}
	}
}

// TestVisionSizeLimits: the 20 MiB check itself (on a data URI, with a body
// limit raised to let it through), and the body limit answering first when
// it is lower.
func TestVisionSizeLimits(t *testing.T) {
	t.Parallel()
	uri := dataURI("image/png", bigPNG(21<<20))
	body := `{"image_url":"` + uri + `"}`

	e := newIV(t, gateway.Config{MaxBodyBytes: 40 << 20}, nil)
	resp, out := e.postJSON(t, "/api/v1/vision/analyze", body)
	ivWantError(t, resp, out, 400, "image_too_large", "image_url is larger than 20 MiB (21.0 MiB decoded)")

	e = newIV(t, gateway.Config{}, nil)
	resp, out = e.postJSON(t, "/api/v1/vision/analyze", body)
	ivWantError(t, resp, out, 413, "request_too_large", "25 MiB")

	// Exactly 20 MiB passes. The upstream answer is canned: the simulator
	// parsing 27 MB of JSON would only slow the test down.
	e = newIV(t, gateway.Config{MaxBodyBytes: 40 << 20}, func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if r.URL.Path != "/v1/chat/completions" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"x","object":"chat.completion","created":1,"model":"grok-4.3","choices":[{"index":0,"message":{"role":"assistant","content":"A big picture."},"finish_reason":"stop"}]}`))
		return true
	})
	ct, form := multipartBody(t, nil, []string{"max.png"}, map[string][]byte{"max.png": bigPNG(20 << 20)})
	resp, out = e.post(t, "/api/v1/vision/analyze", ct, form)
	ivDecodeCompletion(t, resp, out)
	if sent := e.upstream("/chat/completions"); len(sent) != 1 || len(sent[0].body) < (20<<20)*4/3 {
		t.Fatal("the 20 MiB image was not sent whole")
	}
}

// TestVisionModelMetadata: upstream's model list is fetched once and cached;
// when it cannot be had, the request goes on and xAI judges the model.
func TestVisionModelMetadata(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, nil)
	for range 3 {
		resp, body := e.postJSON(t, "/api/v1/vision/analyze", `{"image_url":"https://example.com/a.png","model":"grok-4-1-fast-reasoning"}`)
		if c := ivDecodeCompletion(t, resp, body); c.Model != "grok-4.3" {
			t.Fatalf("alias: %s", body)
		}
	}
	if n := len(e.upstream("/language-models")); n != 1 {
		t.Fatalf("model metadata fetched %d times, want 1", n)
	}

	// The list is trusted for ModelInfoTTL, then fetched again; a model it
	// does not know goes to xAI, which answers for it.
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	e = newIV(t, gateway.Config{Now: clock, ModelInfoTTL: time.Minute}, nil)
	ask := func(model string) (*http.Response, []byte) {
		return e.postJSON(t, "/api/v1/vision/analyze", `{"image_url":"https://example.com/a.png","model":"`+model+`"}`)
	}
	for _, step := range []struct {
		advance time.Duration
		fetches int
	}{{0, 1}, {30 * time.Second, 1}, {31 * time.Second, 2}} {
		now.Add(int64(step.advance))
		resp, body := ask("grok-4.3")
		ivDecodeCompletion(t, resp, body)
		if n := len(e.upstream("/language-models")); n != step.fetches {
			t.Fatalf("after %v: %d fetches, want %d", step.advance, n, step.fetches)
		}
	}
	resp, body := ask("grok-9")
	ivWantError(t, resp, body, 404, "", "The model grok-9 does not exist")
	if n := len(e.upstream("/language-models")); n != 2 {
		t.Fatalf("unknown model refetched at once: %d fetches", n)
	}

	down := newIV(t, gateway.Config{}, func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.URL.Path != "/v1/language-models" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"code":"The service is currently unavailable","error":"try later"}`))
		return true
	})
	resp, body = down.postJSON(t, "/api/v1/vision/analyze", `{"image_url":"https://example.com/a.png"}`)
	ivDecodeCompletion(t, resp, body)
	resp, body = down.postJSON(t, "/api/v1/vision/analyze", `{"image_url":"https://example.com/a.png","model":"grok-3"}`)
	ivWantError(t, resp, body, 400, "", "Image inputs are not supported by model grok-3")
	if n := len(down.upstream("/language-models")); n != 1 {
		t.Fatalf("failed metadata fetch retried at once: %d fetches", n)
	}
}

func TestVisionJSONPassesUnknownFields(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, nil)
	resp, body := e.postJSON(t, "/api/v1/vision/analyze", `{"image_url":"https://example.com/a.png","user":"u1","metadata":{"a":[1,{"b":"}"}]}}`)
	ivDecodeCompletion(t, resp, body)
	_, _, up := sentImages(t, e)
	b, _ := json.Marshal(up["metadata"])
	if up["user"] != "u1" || string(b) != `{"a":[1,{"b":"}"}]}` {
		t.Fatalf("unknown fields: %v", up)
	}
	// stream_options only travels with a stream.
	resp, body = e.postJSON(t, "/api/v1/vision/analyze", `{"image_url":"https://example.com/a.png","stream_options":{"include_usage":true}}`)
	ivDecodeCompletion(t, resp, body)
	if _, _, up := sentImages(t, e); up["stream_options"] != nil || up["stream"] != nil {
		t.Fatalf("non-streaming request sent %v", up)
	}
}

// TestVisionOpenAIGo: the documented way to call /vision/analyze from the
// Go SDK, which has no method for it, works and yields its completion type.
func TestVisionOpenAIGo(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, nil)
	client := openai.NewClient(option.WithBaseURL(e.gw.URL+"/api/v1"), option.WithAPIKey(ivKey),
		option.WithHTTPClient(e.gw.Client()), option.WithMaxRetries(0))
	var c openai.ChatCompletion
	err := client.Post(context.Background(), "vision/analyze",
		map[string]any{"image_url": "https://example.com/cat.png", "prompt": "What is this?"}, &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Choices[0].Message.Content != ivSimAnswer("What is this?") {
		t.Fatalf("%+v", c)
	}
	err = client.Post(context.Background(), "vision/analyze", map[string]any{"image_url": "file:///etc/passwd"}, &c)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Code != "invalid_image_url" {
		t.Fatalf("file URL: %v", err)
	}
}

// TestVisionModelMetadataConcurrent: requests arriving together while the
// model list is being fetched wait for that one fetch.
func TestVisionModelMetadataConcurrent(t *testing.T) {
	t.Parallel()
	e := newIV(t, gateway.Config{}, func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.URL.Path == "/v1/language-models" {
			time.Sleep(50 * time.Millisecond)
		}
		return false
	})
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/api/v1/vision/analyze",
				strings.NewReader(`{"image_url":"https://example.com/a.png","model":"grok-3"}`))
			req.Header.Set("Authorization", "Bearer "+ivKey)
			resp, err := e.gw.Client().Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				errs <- fmt.Sprintf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := len(e.upstream("/language-models")); n != 1 {
		t.Fatalf("%d fetches of the model list, want 1", n)
	}
	if n := len(e.upstream("/chat/completions")); n != 0 {
		t.Fatalf("%d text-only requests went upstream", n)
	}
}
