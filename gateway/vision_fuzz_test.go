package gateway

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzVisionImages: any /vision/analyze JSON body is either refused with a
// 400 that has a message, or every image it carries is an http(s) URL or a
// base64 data URI whose bytes really start like a PNG or a JPEG.
func FuzzVisionImages(f *testing.F) {
	png := base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))
	gif := base64.StdEncoding.EncodeToString([]byte("GIF89a\x01\x00\x01\x00"))
	for _, seed := range []string{
		`{"image_url":"https://example.com/a.png"}`,
		`{"image_url":"data:image/png;base64,` + png + `"}`,
		`{"image_url":"data:image/png;base64,` + gif + `"}`,
		`{"image_url":"data:image/png;base64,%%%"}`,
		`{"image_url":"data:image/png;base64,iVBORw0KGgo"}`,
		`{"image_url":"file:///etc/passwd"}`,
		`{"image_urls":["https://a/b.png",{"url":"data:image/jpeg;base64,/9j/4AAQ","detail":"low"}],"detail":"high"}`,
		`{"image_url":{"url":"https://x/y.jpg","detail":"ultra"}}`,
		`{"prompt":"x"}`,
		`{"image_url":"data:text/plain,hello"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, e := parseVisionJSON(body)
		if e == nil {
			e = req.check()
		}
		if e != nil {
			if e.Status != 400 && e.Status != 413 || e.Message == "" {
				t.Fatalf("bad refusal %+v", e)
			}
			return
		}
		for _, img := range req.images {
			u := img.url
			switch {
			case strings.HasPrefix(u, "data:image/png;base64,"), strings.HasPrefix(u, "data:image/jpeg;base64,"):
				payload := u[strings.IndexByte(u, ',')+1:]
				raw, err := base64.StdEncoding.DecodeString(payload)
				if err != nil {
					t.Fatalf("accepted undecodable data URI %q: %v", u, err)
				}
				isPNG := bytes.HasPrefix(raw, []byte("\x89PNG\r\n\x1a\n"))
				isJPEG := bytes.HasPrefix(raw, []byte{0xFF, 0xD8, 0xFF})
				if strings.Contains(u[:22], "png") != isPNG || (!isPNG && !isJPEG) {
					t.Fatalf("data URI type does not match its bytes: %q", u[:min(len(u), 60)])
				}
			case strings.HasPrefix(strings.ToLower(u), "http://"), strings.HasPrefix(strings.ToLower(u), "https://"):
			default:
				t.Fatalf("accepted image URL %q", u)
			}
		}
	})
}
