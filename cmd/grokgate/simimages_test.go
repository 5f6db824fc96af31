package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestSimulatorImagesThroughGrokgate: with the built-in simulator, image
// URLs point at grokgate's own address (the simulator listens on loopback,
// out of reach of any other host), and they serve the image.
func TestSimulatorImagesThroughGrokgate(t *testing.T) {
	g := startGW(t, nil)
	var out struct {
		Data []struct{ URL string }
	}
	if err := json.Unmarshal([]byte(okBody(t, g.post(t, "/api/v1/images/generations", g.AdminKey, `{"prompt":"a cat","n":2}`))), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Data) != 2 {
		t.Fatalf("%d images", len(out.Data))
	}
	for _, d := range out.Data {
		if !strings.HasPrefix(d.URL, g.URL+"/sim/images/") {
			t.Errorf("image URL %q is not at grokgate's address %s", d.URL, g.URL)
			continue
		}
		resp, err := http.Get(d.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "\x89PNG") {
			t.Errorf("GET %s: %d, %d bytes", d.URL, resp.StatusCode, len(b))
		}
	}
	if resp, _ := http.Get(g.URL + "/sim/images/nope.png"); resp.StatusCode != 404 {
		t.Errorf("unknown image: %d", resp.StatusCode)
	}
}
