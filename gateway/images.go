package gateway

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/xai"
)

// defaultImageModel is used when a request names no model.
const defaultImageModel = "grok-imagine-image"

// xaiAspectRatios are the ratios xAI's image API accepts besides "auto",
// simplest first so that ties in nearestAspectRatio go to them.
const xaiAspectRatios = "1:1 3:4 4:3 9:16 16:9 2:3 3:2 1:2 2:1 9:19.5 19.5:9 9:20 20:9"

// imageRequest holds the fields grokgate checks or rewrites; every other
// field of the body passes through to xAI as sent.
type imageRequest struct {
	Prompt         *string `json:"prompt"`
	Model          *string `json:"model"`
	N              *int64  `json:"n"`
	ResponseFormat *string `json:"response_format"`
	AspectRatio    *string `json:"aspect_ratio"`
	Resolution     *string `json:"resolution"`
	Size           *string `json:"size"`
	Stream         *bool   `json:"stream"`
}

// parsedImages is what the handler needs to know about a valid image
// generation request.
type parsedImages struct {
	up     []byte // the body to send to xAI
	model  string
	stream bool
	n      int64 // images asked for
	hd     bool  // resolution 2k, which costs twice as much
}

// parseImages validates an image generation body and returns the body to
// send to xAI: OpenAI's size turned into aspect_ratio (xAI rejects size),
// stream removed (images never stream), the default model filled in.
func parseImages(body []byte) (p parsedImages, e *apierror.Error) {
	var req imageRequest
	if e := decodeObject(body, &req, ` with a "prompt"`); e != nil {
		return p, e
	}
	if req.Prompt == nil || strings.TrimSpace(*req.Prompt) == "" {
		return p, apierror.Invalid("prompt", "Missing required parameter: 'prompt' (a non-empty description of the image to generate).")
	}
	var add []field
	p.model = defaultImageModel
	if req.Model != nil && *req.Model != "" {
		p.model = *req.Model
		if e := checkModelName(p.model); e != nil {
			return p, e
		}
	} else {
		add = append(add, field{"model", jsonString(p.model)})
	}
	if req.N != nil && (*req.N < 1 || *req.N > 10) {
		return p, apierror.Invalid("n", fmt.Sprintf("Invalid value for 'n': %d; expected an integer from 1 to 10.", *req.N))
	}
	if f := req.ResponseFormat; f != nil && *f != "url" && *f != "b64_json" {
		return p, apierror.Invalid("response_format", fmt.Sprintf("Invalid value for 'response_format': %q; expected \"url\" or \"b64_json\".", *f))
	}
	if v := req.Resolution; v != nil && *v != "1k" && *v != "2k" {
		return p, apierror.Invalid("resolution", fmt.Sprintf("Invalid value for 'resolution': %q; expected \"1k\" or \"2k\".", *v))
	}
	if v := req.AspectRatio; v != nil {
		if _, _, ok := parseRatio(*v, ":"); !ok && *v != "auto" {
			return p, apierror.Invalid("aspect_ratio", fmt.Sprintf("Invalid value for 'aspect_ratio': %q; expected \"auto\" or WIDTH:HEIGHT such as \"16:9\" (one of %s).", *v, strings.ReplaceAll(xaiAspectRatios, " ", ", ")))
		}
	}
	if v := req.Size; v != nil {
		ratio := "auto"
		if *v != "auto" {
			w, h, ok := parseRatio(*v, "x")
			if !ok {
				return p, apierror.Invalid("size", fmt.Sprintf("Invalid value for 'size': %q; expected WIDTHxHEIGHT such as \"1024x1024\" or \"1792x1024\", or \"auto\" (grokgate maps it to the nearest aspect_ratio), or send aspect_ratio instead.", *v))
			}
			ratio = nearestAspectRatio(w, h)
		}
		if req.AspectRatio == nil {
			add = append(add, field{"aspect_ratio", jsonString(ratio)})
		}
	}
	if req.Stream != nil {
		p.stream = *req.Stream
	}
	p.n = 1
	if req.N != nil {
		p.n = *req.N
	}
	p.hd = req.Resolution != nil && *req.Resolution == "2k"
	up, err := editObject(body, []string{"size", "stream"}, add...)
	if err != nil {
		return p, apierror.Invalid("", "Request body must be a JSON object.")
	}
	p.up = up
	return p, nil
}

// parseRatio parses "W<sep>H" with positive numbers.
func parseRatio(s, sep string) (w, h float64, ok bool) {
	a, b, found := strings.Cut(s, sep)
	w, err1 := strconv.ParseFloat(a, 64)
	h, err2 := strconv.ParseFloat(b, 64)
	if !found || err1 != nil || err2 != nil || !(w > 0) || !(h > 0) || math.IsInf(w, 0) || math.IsInf(h, 0) {
		return 0, 0, false
	}
	return w, h, true
}

// nearestAspectRatio picks xAI's ratio closest to w:h, measured on a log
// scale so that 2:1 and 1:2 are equally far from 1:1.
func nearestAspectRatio(w, h float64) string {
	target := math.Log(w / h)
	best, bestD := "1:1", math.Inf(1)
	for _, r := range strings.Fields(xaiAspectRatios) {
		x, y, _ := parseRatio(r, ":")
		if d := math.Abs(math.Log(x/y) - target); d < bestD-1e-9 {
			best, bestD = r, d
		}
	}
	return best
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// imagesIn is xAI's images answer.
type imagesIn struct {
	Data []struct {
		URL               *string `json:"url"`
		B64JSON           *string `json:"b64_json"`
		RevisedPrompt     string  `json:"revised_prompt"`
		RespectModeration *bool   `json:"respect_moderation"`
	} `json:"data"`
	Usage json.RawMessage `json:"usage"`
}

// imagesOut is OpenAI's images answer.
type imagesOut struct {
	Created int64           `json:"created"`
	Data    []imageOut      `json:"data"`
	Usage   json.RawMessage `json:"usage,omitempty"`
}

type imageOut struct {
	URL           string `json:"url,omitempty"`
	B64JSON       string `json:"b64_json,omitempty"`
	RevisedPrompt string `json:"revised_prompt,omitempty"`
}

// handleImages serves POST /images/generations (and /images/generate).
func (s *Server) handleImages(w http.ResponseWriter, r *http.Request) {
	body, e := s.readBody(w, r)
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	req, e := parseImages(body)
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	info := infoFrom(r.Context())
	info.model, info.stream = req.model, req.stream
	if e := modelNotAllowed(info.key, req.model); e != nil {
		s.fail(w, r, e, nil)
		return
	}
	cost := s.imagesCost(req)
	if !s.admit(w, r, false, func() (int64, int64) { return 0, cost }) {
		return
	}
	if req.stream {
		// Images never stream here: the complete result is the answer.
		w.Header().Set(headerStreamFallback, "true")
	}

	ctx, cancel, _ := s.upstreamContext(r)
	defer cancel(nil)
	m := meterFrom(r.Context())
	if m != nil {
		m.upstream = true // a prompt for images is billed by cost, not estimated in tokens
	}
	s.journal(r, m)
	resp, ok := s.send(ctx, w, r, xai.Request{Method: http.MethodPost, Path: "/images/generations", Body: req.up})
	if !ok {
		return
	}
	defer resp.Body.Close()
	answer, e, cause := upstreamAnswer(ctx, w, r, resp)
	if e != nil {
		s.fail(w, r, e, cause)
		return
	}
	if m != nil {
		// xAI bills images by cost alone; with no cost in the answer the
		// record is charged the images' listed price (estimated).
		m.completion(answer)
		if !m.hasBodyUsage || m.bodyUsage.CostTicks <= 0 {
			m.bodyUsage.CostTicks, m.bodyEstimated = cost, true
		}
		m.hasBodyUsage = true
	}
	var in imagesIn
	if err := json.Unmarshal(answer, &in); err != nil || in.Data == nil {
		s.fail(w, r, badUpstream("an images result"), err)
		return
	}
	out := imagesOut{Created: s.cfg.Now().Unix(), Data: make([]imageOut, 0, len(in.Data)), Usage: nullToNil(in.Usage)}
	moderated := 0
	for _, d := range in.Data {
		item := imageOut{RevisedPrompt: d.RevisedPrompt}
		if d.URL != nil {
			item.URL = s.ownImageURL(r, *d.URL)
		}
		if d.B64JSON != nil {
			// OpenAI's b64_json is bare base64, never a data: URI.
			item.B64JSON = stripDataPrefix(*d.B64JSON)
		}
		if (d.RespectModeration != nil && !*d.RespectModeration) || (item.URL == "" && item.B64JSON == "") {
			moderated++
			continue
		}
		out.Data = append(out.Data, item)
	}
	if len(out.Data) == 0 {
		s.fail(w, r, &apierror.Error{Status: http.StatusBadRequest, Code: "content_policy_violation", Param: "prompt",
			Message: "xAI's moderation withheld the generated image for this prompt, so there is nothing to return; change the prompt and try again."}, nil)
		return
	}
	if moderated > 0 {
		// Some images were withheld: the rest are still worth returning.
		w.Header().Set("X-Images-Moderated", strconv.Itoa(moderated))
	}
	b, err := json.Marshal(out)
	if err != nil {
		s.fail(w, r, badUpstream("an images result"), err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(append(b, '\n')); err == nil {
		m.complete()
	}
}

func stripDataPrefix(s string) string {
	if strings.HasPrefix(s, "data:") {
		if _, rest, ok := strings.Cut(s, ","); ok {
			return rest
		}
	}
	return s
}
