package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/grokgate/grokgate/apierror"
	"github.com/grokgate/grokgate/mediatype"
)

const (
	defaultVisionModel  = "grok-4.3"
	defaultVisionPrompt = "Describe this image."
	// maxImageBytes is xAI's limit per image, checked on the decoded bytes.
	maxImageBytes = 20 << 20
	// maxFormField bounds a multipart text field (prompt, model, ...).
	maxFormField = 1 << 20
)

// visionRequest is a /vision/analyze request, from JSON or multipart.
type visionRequest struct {
	prompt      string
	model       string
	detail      string
	images      []visionImage
	maxTokens   *int64
	temperature *float64
	stream      bool
	extra       []field // unknown JSON fields, passed on to the chat request
}

// visionImage is one image as the client gave it: a URL string, or the
// bytes of an uploaded file.
type visionImage struct {
	label  string // how the error messages name it: image_urls[1], image "cat.png"
	param  string // error.param
	url    string
	file   []byte
	mime   string // an upload's type, once check has sniffed it
	isFile bool
	detail string
}

// visionJSON holds the JSON fields /vision/analyze knows.
type visionJSON struct {
	Prompt              *string           `json:"prompt"`
	Model               *string           `json:"model"`
	ImageURL            json.RawMessage   `json:"image_url"`
	ImageURLs           []json.RawMessage `json:"image_urls"`
	Detail              *string           `json:"detail"`
	MaxTokens           *int64            `json:"max_tokens"`
	MaxCompletionTokens *int64            `json:"max_completion_tokens"`
	Temperature         *float64          `json:"temperature"`
	Stream              *bool             `json:"stream"`
}

// visionKnown reports whether visionJSON reads the field.
func visionKnown(key string) bool {
	switch key {
	case "prompt", "model", "image_url", "image_urls", "detail", "max_tokens", "max_completion_tokens", "temperature", "stream":
		return true
	}
	return false
}

// handleVision serves POST /vision/analyze: check everything about the
// images and the model here, then ask the model as a chat completion.
func (s *Server) handleVision(w http.ResponseWriter, r *http.Request) {
	var req *visionRequest
	var e *apierror.Error
	if isMultipart(r.Header.Get("Content-Type")) {
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(s.cfg.Now().Add(s.cfg.BodyReadTimeout))
		req, e = s.parseVisionMultipart(w, r)
		if e != nil && e.Status == http.StatusRequestTimeout {
			s.fail(w, r, e, nil)
			return
		}
		if e != nil && e.Status != http.StatusRequestEntityTooLarge {
			// Read what is left of the upload (the body limit bounds it), so
			// the client, still sending, reliably gets this answer.
			io.Copy(io.Discard, r.Body)
		}
		rc.SetReadDeadline(time.Time{})
	} else {
		var body []byte
		if body, e = s.readBody(w, r); e == nil {
			req, e = parseVisionJSON(body)
		}
	}
	if e == nil {
		e = req.check()
	}
	if e == nil {
		e = modelNotAllowed(infoFrom(r.Context()).key, req.model)
	}
	if e == nil {
		e = s.checkVisionModel(r, req.model)
	}
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	body, err := req.chatBody()
	if err != nil {
		s.fail(w, r, &apierror.Error{Status: http.StatusInternalServerError, Code: "internal_error",
			Message: "internal error; report the X-Request-Id to the grokgate operator"}, err)
		return
	}
	chat, e := parseChat(body)
	if e != nil {
		s.fail(w, r, e, nil)
		return
	}
	s.serveChat(w, r, body, &chat, false)
}

func isMultipart(ct string) bool {
	return mediatype.Of(ct) == "multipart/form-data"
}

func parseVisionJSON(body []byte) (*visionRequest, *apierror.Error) {
	var in visionJSON
	if e := decodeObject(body, &in, ` with "image_url" (or "image_urls") and a "prompt"`); e != nil {
		return nil, e
	}
	req := &visionRequest{maxTokens: in.MaxTokens, temperature: in.Temperature}
	if in.MaxCompletionTokens != nil {
		req.maxTokens = in.MaxCompletionTokens
	}
	if in.Prompt != nil {
		req.prompt = *in.Prompt
	}
	if in.Model != nil {
		req.model = *in.Model
	}
	if in.Detail != nil {
		req.detail = *in.Detail
	}
	if in.Stream != nil {
		req.stream = *in.Stream
	}
	if nullToNil(in.ImageURL) != nil {
		img, e := imageRef("image_url", in.ImageURL)
		if e != nil {
			return nil, e
		}
		req.images = append(req.images, img)
	}
	for i, raw := range in.ImageURLs {
		img, e := imageRef(fmt.Sprintf("image_urls[%d]", i), raw)
		if e != nil {
			return nil, e
		}
		req.images = append(req.images, img)
	}
	ms, err := splitObject(body)
	if err != nil {
		return nil, apierror.Invalid("", "Request body must be a JSON object.")
	}
	for _, m := range ms {
		switch {
		case visionKnown(m.key):
		case m.key == "messages":
			return nil, apierror.Invalid("messages", "/vision/analyze takes \"prompt\" and \"image_url\"/\"image_urls\", not \"messages\"; send chat messages to /chat/completions instead.")
		default:
			req.extra = append(req.extra, field{m.key, m.value})
		}
	}
	return req, nil
}

// imageRef reads an image given as a URL string or as {"url","detail"}.
func imageRef(param string, raw json.RawMessage) (visionImage, *apierror.Error) {
	img := visionImage{label: param, param: param}
	if unmarshal(raw, &img.url) == nil {
		return img, nil
	}
	var obj struct {
		URL    *string `json:"url"`
		Detail *string `json:"detail"`
	}
	if err := unmarshal(raw, &obj); err != nil || obj.URL == nil {
		if cv := (*caseVariantError)(nil); errors.As(err, &cv) {
			return img, cv.invalid(param)
		}
		return img, apierror.Invalid(param, "Invalid type for '"+param+"': expected a URL string (https://... or data:image/png;base64,...) or an object {\"url\": ...}.")
	}
	img.url = *obj.URL
	if obj.Detail != nil {
		img.detail = *obj.Detail
	}
	return img, nil
}

// parseVisionMultipart reads a multipart/form-data upload: "image" file
// parts (one or more), "image_url" fields, and the other fields as text.
func (s *Server) parseVisionMultipart(w http.ResponseWriter, r *http.Request) (*visionRequest, *apierror.Error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, tooLarge(s.cfg.MaxBodyBytes)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, apierror.Invalid("", "Malformed multipart/form-data request ("+err.Error()+"); send the image as a file part, e.g. curl -F image=@photo.jpg -F prompt=\"What is this?\".")
	}
	req := &visionRequest{}
	var uploaded int64 // file bytes read so far, to size the next file's buffer
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, s.readError(w, err, "the multipart body is malformed ("+err.Error()+")")
		}
		name := part.FormName()
		switch name {
		case "image", "images", "image[]":
			label := "image"
			if fn := part.FileName(); fn != "" {
				label = "image " + strconv.Quote(fn)
			}
			data, err := readPart(io.LimitReader(part, maxImageBytes+1), uploadHint(r.ContentLength-uploaded))
			if err != nil {
				return nil, s.readError(w, err, "the upload of "+label+" could not be read")
			}
			uploaded += int64(len(data))
			if len(data) > maxImageBytes {
				return nil, imageTooLarge(name, label, "")
			}
			req.images = append(req.images, visionImage{label: label, param: name, file: data, isFile: true})
			continue
		}
		data, err := io.ReadAll(io.LimitReader(part, maxFormField+1))
		if err != nil {
			return nil, s.readError(w, err, "form field '"+name+"' could not be read")
		}
		if len(data) > maxFormField {
			return nil, apierror.Invalid(name, fmt.Sprintf("Form field '%s' is longer than %s.", name, formatBytes(maxFormField)))
		}
		v := string(data)
		switch name {
		case "prompt":
			req.prompt = v
		case "model":
			req.model = strings.TrimSpace(v)
		case "detail":
			req.detail = strings.TrimSpace(v)
		case "image_url", "image_urls", "image_urls[]":
			req.images = append(req.images, visionImage{label: name, param: name, url: strings.TrimSpace(v)})
		case "max_tokens", "max_completion_tokens":
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return nil, apierror.Invalid(name, fmt.Sprintf("Invalid value for '%s': %q; expected a positive integer.", name, v))
			}
			req.maxTokens = &n
		case "temperature":
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return nil, apierror.Invalid(name, fmt.Sprintf("Invalid value for 'temperature': %q; expected a number from 0 to 2.", v))
			}
			req.temperature = &f
		case "stream":
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return nil, apierror.Invalid(name, fmt.Sprintf("Invalid value for 'stream': %q; expected true or false.", v))
			}
			req.stream = b
		default:
			return nil, apierror.Invalid(name, fmt.Sprintf("Unknown form field '%s'. Send images as 'image' file parts (curl -F image=@photo.jpg) or 'image_url' fields, plus optional prompt, model, detail, max_tokens, temperature, stream.", name))
		}
	}
	return req, nil
}

// uploadHint is the buffer to read an upload into: what is left of the
// body, when its length is known, so a file is read without the doublings
// of io.ReadAll (about twice the file in allocations); at most one byte
// over maxImageBytes, which is refused anyway.
func uploadHint(left int64) int {
	if left <= 0 {
		return 512
	}
	return int(min(left+1, maxImageBytes+1))
}

// readPart reads r to its end into a buffer of capacity hint, grown only if
// r holds more.
func readPart(r io.Reader, hint int) ([]byte, error) {
	b := make([]byte, 0, hint)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// readError tells a body over the limit (413) and one too slow (408) from
// a broken upload (400).
func (s *Server) readError(w http.ResponseWriter, err error, what string) *apierror.Error {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return tooLarge(mbe.Limit)
	case errors.As(err, &ne) && ne.Timeout():
		return s.bodyTimeout(w)
	}
	return &apierror.Error{Status: http.StatusBadRequest, Code: "body_read_failed", Message: "Could not read the request: " + what + "; send it again."}
}

// check validates the request and normalises every image to what xAI
// accepts: an http(s) URL, or a PNG or JPEG data URI at most 20 MiB.
func (req *visionRequest) check() *apierror.Error {
	if strings.TrimSpace(req.prompt) == "" {
		req.prompt = defaultVisionPrompt
	}
	if req.model == "" {
		req.model = defaultVisionModel
	}
	if !validDetail(req.detail) {
		return apierror.Invalid("detail", fmt.Sprintf("Invalid value for 'detail': %q; expected \"auto\", \"low\" or \"high\".", req.detail))
	}
	if req.maxTokens != nil && *req.maxTokens < 1 {
		return apierror.Invalid("max_tokens", fmt.Sprintf("Invalid value for 'max_tokens': %d; expected a positive integer.", *req.maxTokens))
	}
	if t := req.temperature; t != nil && !(*t >= 0 && *t <= 2) { // NaN too
		return apierror.Invalid("temperature", fmt.Sprintf("Invalid value for 'temperature': %g; expected a number from 0 to 2.", *t))
	}
	if len(req.images) == 0 {
		return &apierror.Error{Status: http.StatusBadRequest, Code: "missing_image", Param: "image_url",
			Message: "No image given. Send \"image_url\" (or \"image_urls\": [...]) with a public https:// URL or a data:image/png;base64,... URI, or upload a file as multipart/form-data: curl -F image=@photo.jpg -F prompt=\"What is this?\"."}
	}
	for i := range req.images {
		img := &req.images[i]
		if !validDetail(img.detail) {
			return apierror.Invalid(img.param+".detail", fmt.Sprintf("Invalid value for '%s.detail': %q; expected \"auto\", \"low\" or \"high\".", img.param, img.detail))
		}
		if img.detail == "" {
			img.detail = req.detail
		}
		if img.isFile {
			mt, e := sniffImage(img.param, img.label, img.file)
			if e != nil {
				return e
			}
			img.mime = mt // chatBody encodes the file straight into the body
			continue
		}
		u, e := checkImageURL(img.param, img.label, img.url)
		if e != nil {
			return e
		}
		img.url = u
	}
	return nil
}

func badImageURL(param, msg string) *apierror.Error {
	return &apierror.Error{Status: http.StatusBadRequest, Code: "invalid_image_url", Param: param, Message: msg}
}

func validDetail(d string) bool { return d == "" || d == "auto" || d == "low" || d == "high" }

// checkImageURL accepts an http(s) URL as is, and a base64 data URI whose
// bytes are a PNG or JPEG of at most 20 MiB, returned with the media type
// its bytes show.
func checkImageURL(param, label, u string) (string, *apierror.Error) {
	u = strings.TrimSpace(u)
	if u == "" {
		return "", badImageURL(param, label+" is empty; give a public https:// URL or a data:image/png;base64,... URI.")
	}
	if len(u) >= 5 && strings.EqualFold(u[:5], "data:") {
		return checkDataURI(param, label, u)
	}
	p, err := url.Parse(u)
	scheme := ""
	if err == nil {
		scheme = strings.ToLower(p.Scheme)
	}
	switch {
	case (scheme == "http" || scheme == "https") && p.Host != "":
		return u, nil
	case scheme == "" || scheme == "http" || scheme == "https":
		return "", badImageURL(param, label+" is not a valid URL; give a public https:// URL or a data:image/png;base64,... URI.")
	default:
		return "", badImageURL(param, fmt.Sprintf("%s uses the URL scheme %q, which is not accepted: only http(s) URLs that xAI can fetch, or data:image/png|jpeg;base64,... URIs. To send a local file, upload it as multipart/form-data (curl -F image=@photo.jpg).", label, scheme+":"))
	}
}

func checkDataURI(param, label, u string) (string, *apierror.Error) {
	meta, payload, ok := strings.Cut(u[len("data:"):], ",")
	if !ok || !strings.HasSuffix(strings.ToLower(meta), ";base64") {
		return "", badImageURL(param, label+" is not a base64 data URI; write it as data:image/png;base64,<base64 bytes> (or data:image/jpeg;base64,...).")
	}
	// Decoding streams through a small buffer: only the first bytes are kept
	// (for the magic check) and the rest is counted.
	dec := base64.NewDecoder(base64.StdEncoding, strings.NewReader(payload))
	buf := make([]byte, 32<<10)
	var head []byte
	var size int64
	for {
		n, err := dec.Read(buf)
		if len(head) < 512 {
			head = append(head, buf[:min(n, 512-len(head))]...)
		}
		size += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			why := strings.TrimPrefix(err.Error(), "base64: ")
			if err == io.ErrUnexpectedEOF {
				why = "it ends in the middle of a 4-character group; is the = padding missing?"
			}
			return "", &apierror.Error{Status: http.StatusBadRequest, Code: "invalid_base64", Param: param,
				Message: fmt.Sprintf("%s: the data URI's base64 is malformed (%s). Encode the file with standard base64 (RFC 4648, with = padding).", label, why)}
		}
	}
	if size > maxImageBytes {
		return "", imageTooLarge(param, label, fmt.Sprintf(" (%s decoded)", mib(size)))
	}
	mt, e := sniffImage(param, label, head)
	if e != nil {
		return "", e
	}
	if strings.ContainsAny(payload, "\r\n") {
		payload = strings.NewReplacer("\r", "", "\n", "").Replace(payload)
	}
	return "data:" + mt + ";base64," + payload, nil
}

// sniffImage tells PNG and JPEG apart by their magic bytes; the declared
// type and the file name do not count, as they are often wrong.
func sniffImage(param, label string, b []byte) (string, *apierror.Error) {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png", nil
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}):
		return "image/jpeg", nil
	case len(b) == 0:
		return "", &apierror.Error{Status: http.StatusBadRequest, Code: "invalid_image", Param: param, Message: label + " is empty."}
	}
	what := http.DetectContentType(b)
	if mt, _, err := mime.ParseMediaType(what); err == nil {
		what = mt
	}
	return "", &apierror.Error{Status: http.StatusBadRequest, Code: "invalid_image_format", Param: param,
		Message: fmt.Sprintf("%s is not a PNG or JPEG image: its bytes are %s (the file name and declared type do not count). xAI accepts PNG and JPEG only; convert it first.", label, what)}
}

func imageTooLarge(param, label, detail string) *apierror.Error {
	return &apierror.Error{Status: http.StatusBadRequest, Code: "image_too_large", Param: param,
		Message: label + " is larger than 20 MiB" + detail + ", xAI's limit per image; send a smaller or more compressed image."}
}

func mib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB" }

// checkVisionModel refuses a model that upstream's metadata says takes no
// images. Unknown models and missing metadata pass: xAI then judges.
func (s *Server) checkVisionModel(r *http.Request, model string) *apierror.Error {
	m, found := s.models.lookup(r.Context(), model)
	if !found || m.image {
		return nil
	}
	// Only models this key may use are suggested: the others are no
	// answer to the caller, and the operator's catalogue is not theirs.
	k := infoFrom(r.Context()).key
	var usable []string
	for _, v := range s.models.visionModels() {
		if k == nil || k.Allows(v) {
			usable = append(usable, v)
		}
	}
	if len(usable) == 0 && (k == nil || k.Allows(defaultVisionModel)) {
		usable = []string{defaultVisionModel}
	}
	if len(usable) == 0 {
		return &apierror.Error{Status: http.StatusBadRequest, Code: "model_not_vision_capable", Param: "model",
			Message: fmt.Sprintf("Model %q does not accept image input, and none of the models this key may use does; ask the grokgate operator to allow a vision model.", model)}
	}
	return &apierror.Error{Status: http.StatusBadRequest, Code: "model_not_vision_capable", Param: "model",
		Message: fmt.Sprintf("Model %q does not accept image input; use one that does: %s.", model, strings.Join(usable, ", "))}
}

// chatBody is the chat completion request that asks the question: one user
// message, the prompt first and then the images. An uploaded file's base64
// is encoded straight into the body, sized for it up front: the upload is
// copied once, not encoded to a string, escaped and copied again (base64
// needs no JSON escaping). From the upload to this body took about 10
// bytes allocated per upload byte that way, now under 3
// (TestVisionUploadAllocations).
func (req *visionRequest) chatBody() ([]byte, error) {
	head, err := json.Marshal(struct {
		Model               string   `json:"model"`
		MaxCompletionTokens *int64   `json:"max_completion_tokens,omitempty"`
		Temperature         *float64 `json:"temperature,omitempty"`
		Stream              bool     `json:"stream,omitempty"`
	}{req.model, req.maxTokens, req.temperature, req.stream})
	if err != nil {
		return nil, err
	}
	prompt, err := json.Marshal(req.prompt)
	if err != nil {
		return nil, err
	}
	const (
		msgOpen   = `,"messages":[{"role":"user","content":[{"type":"text","text":`
		imageOpen = `,{"type":"image_url","image_url":{"url":`
		msgClose  = `]}]}`
	)
	urls := make([][]byte, len(req.images))
	size := len(head) + len(msgOpen) + len(prompt) + len("}") + len(msgClose)
	for i, img := range req.images {
		size += len(imageOpen) + len(`,"detail":""}}`) + len(img.detail)
		if img.isFile {
			size += len(`"data:;base64,"`) + len(img.mime) + base64.StdEncoding.EncodedLen(len(img.file))
			continue
		}
		if urls[i], err = json.Marshal(img.url); err != nil {
			return nil, err
		}
		size += len(urls[i])
	}
	body := make([]byte, 0, size)
	body = append(body, head[:len(head)-1]...) // without its closing brace
	body = append(body, msgOpen...)
	body = append(body, prompt...)
	body = append(body, '}')
	for i, img := range req.images {
		body = append(body, imageOpen...)
		if img.isFile {
			body = append(body, `"data:`+img.mime+`;base64,`...)
			n := len(body)
			body = body[:n+base64.StdEncoding.EncodedLen(len(img.file))]
			base64.StdEncoding.Encode(body[n:], img.file)
			body = append(body, '"')
		} else {
			body = append(body, urls[i]...)
		}
		if img.detail != "" { // auto, low or high (check): nothing to escape
			body = append(body, `,"detail":"`+img.detail+`"`...)
		}
		body = append(body, "}}"...)
	}
	body = append(body, msgClose...)
	extra := req.extra[:0:0]
	for _, f := range req.extra {
		// stream_options is for streams only; xAI, like OpenAI, may refuse it otherwise.
		if f.key != "stream_options" || req.stream {
			extra = append(extra, f)
		}
	}
	if len(extra) == 0 {
		return body, nil
	}
	return editObject(body, nil, extra...)
}
