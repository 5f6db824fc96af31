package gateway

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestReadAllMatchesIOReadAll(t *testing.T) {
	for _, size := range []int{0, 1, 511, 512, 513, 4096, 100_000} {
		data := bytes.Repeat([]byte("x"), size)
		for _, hint := range []int64{-1, 0, int64(size), int64(size) / 2, int64(size) * 2} {
			// One byte per read, so the buffer must grow past a wrong hint.
			got, err := readAll(iotest.OneByteReader(bytes.NewReader(data)), hint)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("size %d hint %d: %d bytes, %v", size, hint, len(got), err)
			}
		}
	}
	boom := errors.New("boom")
	got, err := readAll(io.MultiReader(bytes.NewReader([]byte("abc")), iotest.ErrReader(boom)), 3)
	if string(got) != "abc" || err != boom {
		t.Errorf("error after data: %q, %v; want the data and the error", got, err)
	}
}

func TestReadAllOfKnownSizeAllocatesOnce(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 3000)
	rd := bytes.NewReader(data)
	allocs := testing.AllocsPerRun(100, func() {
		rd.Reset(data)
		readAll(rd, int64(len(data)))
	})
	if allocs > 1 {
		t.Errorf("%v allocations for a body of known size, want 1", allocs)
	}
}
