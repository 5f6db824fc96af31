package gateway

import (
	"bytes"
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzVisionMultipart: any multipart body either parses into a request whose
// chat body can be built, or is refused with a 4xx that says what to fix;
// never a panic, never a 500 (a NaN temperature once was one).
func FuzzVisionMultipart(f *testing.F) {
	part := func(name, v string) string {
		return "--b\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + v + "\r\n"
	}
	for _, seed := range []string{
		part("image_url", "https://example.com/a.png") + part("temperature", "NaN") + "--b--\r\n",
		part("image_url", "https://example.com/a.png") + part("temperature", "1e400") + "--b--\r\n",
		part("image_url", "https://example.com/a.png") + part("max_tokens", "-1") + "--b--\r\n",
		"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\x89PNG\r\n\x1a\n0000\r\n--b--\r\n",
		part("prompt", "hi") + part("stream", "true") + part("image_url", "data:image/png;base64,iVBORw0KGgo=") + "--b--\r\n",
		"--b\r\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	s := &Server{cfg: Config{MaxBodyBytes: 1 << 20, BodyReadTimeout: time.Second, Now: time.Now}}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/v1/vision/analyze", bytes.NewReader(body))
		r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
		req, e := s.parseVisionMultipart(httptest.NewRecorder(), r)
		if e == nil {
			e = req.check()
		}
		if e != nil {
			if e.Status < 400 || e.Status > 499 || e.Message == "" {
				t.Fatalf("%q: bad refusal %+v", body, e)
			}
			return
		}
		if _, err := req.chatBody(); err != nil {
			t.Fatalf("%q: accepted, but its chat body cannot be built: %v", body, err)
		}
	})
}
