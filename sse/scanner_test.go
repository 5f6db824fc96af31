package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkReader returns its data in the given pieces, one per Read.
type chunkReader struct{ pieces [][]byte }

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.pieces) > 0 && len(c.pieces[0]) == 0 {
		c.pieces = c.pieces[1:]
	}
	if len(c.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.pieces[0])
	c.pieces[0] = c.pieces[0][n:]
	return n, nil
}

func scanAll(t testing.TB, r io.Reader, bufSize int) ([]string, error) {
	t.Helper()
	sc := NewScanner(r, make([]byte, bufSize), 1<<20)
	var out []string
	for sc.Scan() {
		out = append(out, string(sc.Event()))
	}
	return out, sc.Err()
}

var scanCases = []struct {
	name   string
	in     string
	events []string
	err    error
}{
	{"xai chunks", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []string{"data: {\"a\":1}\n\n", "data: [DONE]\n\n"}, nil},
	{"crlf", "data: x\r\n\r\ndata: y\r\n\r\n", []string{"data: x\r\n\r\n", "data: y\r\n\r\n"}, nil},
	{"lone cr", "data: x\r\rdata: y\r\r", []string{"data: x\r\r", "data: y\r\r"}, nil},
	{"mixed endings", "data: x\r\n\ndata: y\n\r\n", []string{"data: x\r\n\n", "data: y\n\r\n"}, nil},
	{"multi-line event", "id: 1\ndata: a\ndata: b\n\n", []string{"id: 1\ndata: a\ndata: b\n\n"}, nil},
	{"comment", ": keep-alive\n\ndata: x\n\n", []string{": keep-alive\n\n", "data: x\n\n"}, nil},
	{"leading blank line", "\ndata: x\n\n", []string{"\n", "data: x\n\n"}, nil},
	{"cut mid-event", "data: x\n\ndata: y", []string{"data: x\n\n"}, io.ErrUnexpectedEOF},
	{"cut after line", "data: x\n\ndata: y\n", []string{"data: x\n\n"}, io.ErrUnexpectedEOF},
	{"empty", "", nil, nil},
}

func TestScannerCases(t *testing.T) {
	for _, tc := range scanCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{1, 2, 3, 7, 4096} {
				got, err := scanAll(t, strings.NewReader(tc.in), size)
				if !errors.Is(err, tc.err) {
					t.Fatalf("buf %d: err = %v, want %v", size, err, tc.err)
				}
				if strings.Join(got, "|") != strings.Join(tc.events, "|") {
					t.Fatalf("buf %d: events %q, want %q", size, got, tc.events)
				}
			}
		})
	}
}

// TestScannerEverySplit feeds each case in two reads split at every byte,
// then one byte per read, and expects the same events every time.
func TestScannerEverySplit(t *testing.T) {
	for _, tc := range scanCases {
		in := []byte(tc.in)
		for i := 0; i <= len(in); i++ {
			r := &chunkReader{pieces: [][]byte{append([]byte(nil), in[:i]...), append([]byte(nil), in[i:]...)}}
			got, err := scanAll(t, r, 4096)
			if !errors.Is(err, tc.err) || strings.Join(got, "|") != strings.Join(tc.events, "|") {
				t.Fatalf("%s split at %d: events %q err %v, want %q err %v", tc.name, i, got, err, tc.events, tc.err)
			}
		}
		got, err := scanAll(t, iotest.OneByteReader(bytes.NewReader(in)), 4096)
		if !errors.Is(err, tc.err) || strings.Join(got, "|") != strings.Join(tc.events, "|") {
			t.Fatalf("%s one byte at a time: events %q err %v", tc.name, got, err)
		}
	}
}

func TestScannerGrowsAndBounds(t *testing.T) {
	big := "data: " + strings.Repeat("x", 10000) + "\n\n"
	got, err := scanAll(t, strings.NewReader(big+big), 16)
	if err != nil || len(got) != 2 || got[0] != big {
		t.Fatalf("large events: %d events, err %v", len(got), err)
	}
	sc := NewScanner(strings.NewReader(big), make([]byte, 16), 1024)
	if sc.Scan() || !errors.Is(sc.Err(), ErrEventTooLarge) {
		t.Fatalf("event over max: Scan true or err %v", sc.Err())
	}
}

func TestScannerReadError(t *testing.T) {
	boom := errors.New("boom")
	sc := NewScanner(io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(boom)), nil, 0)
	if !sc.Scan() || string(sc.Event()) != "data: a\n\n" {
		t.Fatalf("first event: %q", sc.Event())
	}
	if sc.Scan() || !errors.Is(sc.Err(), boom) {
		t.Fatalf("want read error, got %v", sc.Err())
	}
}

func TestData(t *testing.T) {
	cases := []struct {
		ev, data string
		ok       bool
	}{
		{"data: [DONE]\n\n", "[DONE]", true},
		{"data:[DONE]\r\n\r\n", "[DONE]", true},
		{"data:  two spaces\n\n", " two spaces", true},
		{": comment\ndata: x\n\n", "x", true},
		{": comment\n\n", "", false},
		{"data: a\ndata: b\n\n", "", false},
		{"event: error\ndata: x\n\n", "", false},
		{"database: x\n\n", "", false},
		{"data\n\n", "", true},
	}
	for _, c := range cases {
		d, ok := Data([]byte(c.ev))
		if ok != c.ok || string(d) != c.data {
			t.Errorf("Data(%q) = %q, %v; want %q, %v", c.ev, d, ok, c.data, c.ok)
		}
	}
	joined, ok := AppendData(nil, []byte("data: a\r\ndata:b\n: c\ndata\n\n"))
	if !ok || string(joined) != "a\nb\n" {
		t.Errorf("AppendData = %q, %v", joined, ok)
	}
}

// FuzzScanner checks that how a stream is split into reads never changes the
// events found, and that the events put back together are the input.
func FuzzScanner(f *testing.F) {
	for _, tc := range scanCases {
		f.Add([]byte(tc.in), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		whole, errWhole := scanAll(t, bytes.NewReader(in), 4096)
		n := int(step%16) + 1
		var pieces [][]byte
		for i := 0; i < len(in); i += n {
			pieces = append(pieces, append([]byte(nil), in[i:min(i+n, len(in))]...))
		}
		split, errSplit := scanAll(t, &chunkReader{pieces: pieces}, 1)
		if strings.Join(whole, "\x00") != strings.Join(split, "\x00") || (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("split by %d changed the result: %q (%v) vs %q (%v)", n, whole, errWhole, split, errSplit)
		}
		joined := strings.Join(whole, "")
		if !strings.HasPrefix(string(in), joined) {
			t.Fatalf("events %q are not a prefix of the input %q", joined, in)
		}
		for _, ev := range whole {
			Data([]byte(ev))
			AppendData(nil, []byte(ev))
		}
	})
}

func BenchmarkScanner(b *testing.B) {
	chunk := `data: {"id":"53ae","object":"chat.completion.chunk","created":1773345550,"model":"grok-4.3","choices":[{"index":0,"delta":{"content":" word"}}],"system_fingerprint":"fp_3d7ed3b779"}` + "\n\n"
	stream := []byte(strings.Repeat(chunk, 100))
	r := bytes.NewReader(stream)
	sc := NewScanner(r, make([]byte, 4096), 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		r.Reset(stream)
		sc.Reset(r)
		for sc.Scan() {
			Data(sc.Event())
		}
	}
}
