package simulator

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// maxStoredImages bounds the memory held for url results: older images
// expire like xAI's temporary URLs.
const maxStoredImages = 256

// imageStore keeps the last N generated PNGs in a ring.
type imageStore struct {
	mu   sync.Mutex
	byID map[string][]byte
	ring []string
	next int
}

func (st *imageStore) init(n int) {
	st.byID = make(map[string][]byte, n)
	st.ring = make([]string, n)
}

func (st *imageStore) put(id string, b []byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if old := st.ring[st.next]; old != "" {
		delete(st.byID, old)
	}
	st.ring[st.next] = id
	st.next = (st.next + 1) % len(st.ring)
	st.byID[id] = b
}

func (st *imageStore) get(id string) ([]byte, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, ok := st.byID[id]
	return b, ok
}

type imageRequest struct {
	Prompt         *string         `json:"prompt"`
	Model          string          `json:"model"`
	N              *int            `json:"n"`
	ResponseFormat string          `json:"response_format"`
	AspectRatio    string          `json:"aspect_ratio"`
	Resolution     string          `json:"resolution"`
	Size           json.RawMessage `json:"size"`
	Style          json.RawMessage `json:"style"`
}

// aspectRatios are the ratios xAI accepts ("auto" is served as 1:1).
const aspectRatios = "1:1 3:4 4:3 9:16 16:9 2:3 3:2 1:2 2:1 9:19.5 19.5:9 9:20 20:9 auto"

func (s *Simulator) handleImages(w http.ResponseWriter, r *http.Request) {
	var req imageRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	bad := func(msg string) { writeError(w, &apiError{status: http.StatusBadRequest, msg: msg}) }
	if req.Prompt == nil || strings.TrimSpace(*req.Prompt) == "" {
		bad("prompt must not be empty")
		return
	}
	if req.Model == "" {
		req.Model = "grok-imagine-image"
	}
	m, ok := findImageModel(s.image, req.Model)
	if !ok {
		writeError(w, s.notFoundModel(r, req.Model))
		return
	}
	n := 1
	if req.N != nil {
		n = *req.N
	}
	if n < 1 || n > 10 {
		bad("n must be between 1 and 10")
		return
	}
	switch req.ResponseFormat {
	case "":
		req.ResponseFormat = "url"
	case "url", "b64_json":
	default:
		bad("response_format must be one of url, b64_json")
		return
	}
	if req.AspectRatio == "" {
		req.AspectRatio = "auto"
	}
	if !strings.Contains(" "+aspectRatios+" ", " "+req.AspectRatio+" ") {
		bad("aspect_ratio must be one of " + strings.ReplaceAll(aspectRatios, " ", ", "))
		return
	}
	scale := int64(1)
	switch req.Resolution {
	case "", "1k":
	case "2k":
		scale = 2
	default:
		bad("resolution must be one of 1k, 2k")
		return
	}
	// OpenAI-only parameters are rejected upstream; a gateway must map or drop them.
	for _, a := range []struct {
		name string
		v    json.RawMessage
	}{{"size", req.Size}, {"style", req.Style}} {
		if len(a.v) > 0 && string(a.v) != "null" {
			bad("Argument not supported: " + a.name)
			return
		}
	}

	d, prompt := parseDirectives(*req.Prompt)
	ctx := r.Context()
	switch {
	case d.Hang:
		<-ctx.Done()
		return
	case d.status() != 0:
		writeError(w, &apiError{status: d.status(), retryAfter: d.RetryAfter,
			msg: fmt.Sprintf("Simulated upstream error (status %d)", d.status())})
		return
	}
	if !wait(ctx, d.ttft()) {
		return
	}

	wd, ht := imageSize(req.AspectRatio, int(scale))
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	data := make([]map[string]any, 0, n)
	for i := range n {
		item := map[string]any{"mime_type": "image/png", "revised_prompt": ""}
		if d.Moderate {
			item[req.ResponseFormat] = nil
			item["respect_moderation"] = false
			data = append(data, item)
			continue
		}
		b := renderPNG(prompt, i, wd, ht)
		if req.ResponseFormat == "b64_json" {
			item["b64_json"] = base64.StdEncoding.EncodeToString(b)
		} else {
			id := randomHex(16)
			s.images.put(id, b)
			item["url"] = scheme + "://" + r.Host + "/sim/images/" + id + ".png"
		}
		data = append(data, item)
		s.imagesGenerated.Add(1)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"data":  data,
		"usage": map[string]int64{"cost_in_usd_ticks": int64(n) * m.price * scale},
	})
}

func (s *Simulator) handleImageFile(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/sim/images/")
	id, ok := strings.CutSuffix(name, ".png")
	var b []byte
	if ok {
		b, ok = s.images.get(id)
	}
	if !ok {
		writeError(w, &apiError{status: http.StatusNotFound, msg: "Image " + name + " not found or expired"})
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// imageSize makes the long side 64 px per 1k of resolution and the short side
// follow the aspect ratio: real PNGs, kept tiny.
func imageSize(ratio string, scale int) (w, h int) {
	long := 64 * scale
	a, b, ok := strings.Cut(ratio, ":")
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	if !ok || err1 != nil || err2 != nil || x <= 0 || y <= 0 {
		return long, long
	}
	if x >= y {
		return long, max(1, int(math.Round(float64(long)*y/x)))
	}
	return max(1, int(math.Round(float64(long)*x/y))), long
}

// renderPNG draws a striped vertical gradient whose colours come from a hash
// of prompt and index, so each image is deterministic yet distinct.
func renderPNG(prompt string, index, w, h int) []byte {
	hs := fnv.New64a()
	fmt.Fprintf(hs, "%d\x00%s", index, prompt)
	x := mix(hs.Sum64())
	c1 := color.RGBA{uint8(x), uint8(x >> 8), uint8(x >> 16), 255}
	c2 := color.RGBA{uint8(x >> 24), uint8(x >> 32), uint8(x >> 40), 255}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	lerp := func(a, b uint8, t float64) uint8 { return uint8(float64(a) + (float64(b)-float64(a))*t) }
	for py := range h {
		t := float64(py) / float64(max(h-1, 1))
		for px := range w {
			c := color.RGBA{lerp(c1.R, c2.R, t), lerp(c1.G, c2.G, t), lerp(c1.B, c2.B, t), 255}
			if (px+py)/8%2 == 0 {
				c.R, c.G, c.B = c.R/4*3, c.G/4*3, c.B/4*3
			}
			img.SetRGBA(px, py, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err) // encoding an in-memory RGBA image to a buffer cannot fail
	}
	return buf.Bytes()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
