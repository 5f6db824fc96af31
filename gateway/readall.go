package gateway

import "io"

// readAll is io.ReadAll with a size hint (a Content-Length, or -1): a body
// of known size is read into one allocation of that size instead of one
// that starts at 512 bytes and doubles, copying, until it fits. The hint
// only sizes the buffer; what is read is what r gives. Hints over 1 MiB are
// not trusted with an allocation up front: a client could announce 25 MiB
// on many connections and send nothing.
func readAll(r io.Reader, hint int64) ([]byte, error) {
	size := 512
	if hint > 0 && hint <= 1<<20 {
		size = int(hint) + 1 // +1: the read that finds EOF needs room too
	}
	b := make([]byte, 0, size)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // let append pick the next size
		}
	}
}
