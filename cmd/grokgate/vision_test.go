package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/grokgate/grokgate/gateway"
)

func TestVisionStreamSetting(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env, flag string
		want      gateway.VisionStream
		err       string
	}{
		{"", "", gateway.VisionStreamFallback, ""},
		{"emulate", "", gateway.VisionStreamEmulate, ""},
		{"emulate", "native", gateway.VisionStreamNative, ""},
		{"", "fallback", gateway.VisionStreamFallback, ""},
		{"stream", "", "", `GROKGATE_VISION_STREAM/--vision-stream must be fallback, emulate or native, got "stream"`},
		{"", "Emulate", "", `got "Emulate"`},
	} {
		var args []string
		if c.flag != "" {
			args = []string{"--vision-stream", c.flag}
		}
		getenv := func(k string) string {
			if k == "GROKGATE_VISION_STREAM" {
				return c.env
			}
			return ""
		}
		cfg, err := parseServe(args, getenv, io.Discard)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("env %q flag %q: error %v, want %q", c.env, c.flag, err, c.err)
			}
			continue
		}
		if err != nil || cfg.visionStream != c.want {
			t.Fatalf("env %q flag %q: %q, %v; want %q", c.env, c.flag, cfg.visionStream, err, c.want)
		}
	}
}

// TestServeVisionEmulate runs the whole program, as a user would, with
// GROKGATE_VISION_STREAM=emulate and the built-in simulator, and checks the
// setting reaches the gateway.
func TestServeVisionEmulate(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"GROKGATE_ADDR":          "127.0.0.1:0",
		"GROKGATE_DB":            filepath.Join(t.TempDir(), "grokgate.db"),
		"GROKGATE_VISION_STREAM": "emulate",
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, nil, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not stop")
		}
	})

	listening := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == ""; {
		if m := listening.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("grokgate did not start:\n%s\n%s", stdout.String(), stderr.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	key := regexp.MustCompile(`gg-[A-Za-z0-9_-]{43}`).FindString(stdout.String())

	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/vision/analyze",
		strings.NewReader(`{"image_url":"https://example.com/cat.png","stream":true}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Stream-Fallback") != "true" ||
		resp.Header.Get("Content-Type") != "text/event-stream" || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		t.Fatalf("%d %v\n%s", resp.StatusCode, resp.Header, body)
	}
}
