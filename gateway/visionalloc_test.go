package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
)

// TestVisionUploadAllocations: an upload is read and encoded into the
// upstream body in one pass, the body sized up front: from the multipart
// request to the chat body, at most 3 bytes are allocated per upload byte
// (the file once, its base64 once, and little else). Encoding it to a
// string, escaping it and copying it again took about 10.
func TestVisionUploadAllocations(t *testing.T) {
	file := make([]byte, 4<<20)
	copy(file, "\x89PNG\r\n\x1a\n")
	for i := 8; i < len(file); i++ {
		file[i] = byte(i * 7)
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("prompt", "What is this?")
	fw, _ := mw.CreateFormFile("image", "cat.png")
	fw.Write(file)
	mw.Close()
	s := &Server{cfg: Config{MaxBodyBytes: DefaultMaxBodyBytes}}
	build := func() []byte {
		r := httptest.NewRequest(http.MethodPost, "/v1/vision/analyze", bytes.NewReader(form.Bytes()))
		r.Header.Set("Content-Type", mw.FormDataContentType())
		req, e := s.parseVisionMultipart(httptest.NewRecorder(), r)
		if e == nil {
			e = req.check()
		}
		if e != nil {
			t.Fatal(e.Message)
		}
		body, err := req.chatBody()
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	body := build()
	if cap(body) > len(body)+64 {
		t.Errorf("the body was not sized up front: %d bytes in a buffer of %d", len(body), cap(body))
	}
	var chat struct {
		Messages []struct {
			Content []struct {
				ImageURL struct{ URL string } `json:"image_url"`
			}
		}
	}
	if err := json.Unmarshal(body, &chat); err != nil || len(chat.Messages) != 1 || len(chat.Messages[0].Content) != 2 {
		t.Fatalf("body %.200s: %v", body, err)
	}
	if want := "data:image/png;base64," + base64.StdEncoding.EncodeToString(file); chat.Messages[0].Content[1].ImageURL.URL != want {
		t.Errorf("the image's data URI is not the file's base64")
	}
	const runs = 5
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		build()
	}
	runtime.ReadMemStats(&after)
	perByte := float64(after.TotalAlloc-before.TotalAlloc) / runs / float64(len(file))
	if perByte > 3 {
		t.Errorf("%.2f bytes allocated per upload byte, want at most 3", perByte)
	}
	t.Logf("%.2f bytes allocated per upload byte", perByte)
}
