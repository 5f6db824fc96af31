package main

import (
	"io"
	"strings"
	"testing"

	"github.com/grokgate/grokgate/gateway"
)

func TestVisionStreamSetting(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env, flag string
		want      gateway.VisionStream
		err       string
	}{
		{"", "", gateway.VisionStreamEmulate, ""},
		{"json", "", gateway.VisionStreamJSON, ""},
		{"json", "native", gateway.VisionStreamNative, ""},
		{"", "json", gateway.VisionStreamJSON, ""},
		{"fallback", "", gateway.VisionStreamJSON, ""}, // the old name
		{"", "fallback", gateway.VisionStreamJSON, ""},
		{"stream", "", "", `GROKGATE_VISION_STREAM/--vision-stream must be emulate, json or native, got "stream"`},
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
		given := c.flag
		if given == "" {
			given = c.env
		}
		if cfg.visionStreamRenamed != (given == "fallback") {
			t.Fatalf("env %q flag %q: renamed %v", c.env, c.flag, cfg.visionStreamRenamed)
		}
	}
}

// TestServeVisionStream runs the whole program, as a user would, with the
// built-in simulator, and checks each GROKGATE_VISION_STREAM setting reaches
// the gateway: emulate by default, json by its old name with a warning.
func TestServeVisionStream(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env, contentType string
		warns            bool
	}{
		{"", "text/event-stream", false},
		{"emulate", "text/event-stream", false},
		{"json", "application/json", false},
		{"fallback", "application/json", true},
	} {
		t.Run("env="+c.env, func(t *testing.T) {
			t.Parallel()
			g := startGW(t, map[string]string{"GROKGATE_VISION_STREAM": c.env})
			resp := g.post(t, "/api/v1/vision/analyze", g.AdminKey, `{"image_url":"https://example.com/cat.png","stream":true}`)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("X-Stream-Fallback") != "true" || resp.Header.Get("Content-Type") != c.contentType {
				t.Fatalf("%d %v\n%s", resp.StatusCode, resp.Header, body)
			}
			if sse := strings.HasSuffix(string(body), "data: [DONE]\n\n"); sse != (c.contentType == "text/event-stream") {
				t.Fatalf("body does not match %s:\n%s", c.contentType, body)
			}
			if err := g.stop(t); err != nil {
				t.Fatal(err)
			}
			warned := strings.Contains(g.Log.String(), "vision stream mode fallback is deprecated: it is now called json")
			if warned != c.warns {
				t.Fatalf("deprecation warning logged: %v, want %v:\n%s", warned, c.warns, g.Log.String())
			}
		})
	}
}
