// Package sse splits a Server-Sent Events stream into events without copying
// or decoding them, so a relay can forward each event byte for byte the moment
// its terminating blank line arrives.
//
// The framing follows the WHATWG event-stream grammar: lines end in "\r\n",
// "\n" or "\r", and an event ends at the first empty line. Events may be split
// across reads at any byte, including between the "\r" and "\n" of a line end.
package sse

import (
	"bytes"
	"errors"
	"io"
)

// DefaultMaxEventSize bounds one event when NewScanner is given max <= 0. A
// chat chunk is a few hundred bytes; a whole tool-call argument list can be
// large, hence the generous bound.
const DefaultMaxEventSize = 16 << 20

// ErrEventTooLarge is returned by Err when one event exceeds the maximum size.
var ErrEventTooLarge = errors.New("sse: event exceeds maximum size")

// Scanner reads events from an io.Reader. The zero value is not usable; call
// NewScanner.
type Scanner struct {
	r     io.Reader
	buf   []byte
	start int // first byte of the event being scanned
	end   int // end of valid data in buf
	pos   int // next byte to examine
	// lineStart is true when pos is at the start of a line, so a line
	// terminator at pos would make an empty line and end the event.
	lineStart bool
	// cr is set once the stream has shown a '\r'; until then the fast path
	// looks for '\n' only, with the vectorised bytes.IndexByte.
	cr    bool
	eof   bool
	max   int
	event []byte
	err   error
}

// NewScanner returns a Scanner reading from r into buf (its capacity is the
// initial buffer; it grows, up to max bytes, only for larger events). Passing
// a pooled buffer keeps the steady state free of allocations.
func NewScanner(r io.Reader, buf []byte, max int) *Scanner {
	if max <= 0 {
		max = DefaultMaxEventSize
	}
	if cap(buf) == 0 {
		buf = make([]byte, 4096)
	}
	return &Scanner{r: r, buf: buf[:cap(buf)], max: max, lineStart: true}
}

// Reset makes s read a new stream r, keeping its buffer.
func (s *Scanner) Reset(r io.Reader) {
	*s = Scanner{r: r, buf: s.buf, max: s.max, lineStart: true}
}

// Scan advances to the next event, which is then available from Event. It
// returns false at the end of the stream or on a read error; Err tells which.
func (s *Scanner) Scan() bool {
	for {
		if s.findEnd() {
			return true
		}
		if s.eof || s.err != nil {
			if s.err == nil && s.end > s.start {
				// Bytes after the last complete event: the stream was cut.
				s.err = io.ErrUnexpectedEOF
			}
			s.event = nil
			return false
		}
		s.fill()
	}
}

// Event returns the current event's raw bytes, including its terminating
// blank line. It is valid until the next call to Scan.
func (s *Scanner) Event() []byte { return s.event }

// Buffered reports whether bytes beyond the current event are already read,
// so a caller can tell whether the next Scan may block on the network.
func (s *Scanner) Buffered() bool { return s.end > s.start }

// Err returns the first error other than a clean end of stream. A stream that
// ends inside an event reports io.ErrUnexpectedEOF.
func (s *Scanner) Err() error { return s.err }

// findEnd looks for the end of the event starting at s.start.
func (s *Scanner) findEnd() bool {
	buf := s.buf[:s.end]
	i := s.pos
	for i < len(buf) {
		if !s.cr {
			// Fast path: only '\n' ends lines.
			if s.lineStart && buf[i] == '\n' {
				s.emit(i + 1)
				return true
			}
			k := bytes.IndexByte(buf[i:], '\n')
			if k < 0 {
				if bytes.IndexByte(buf[i:], '\r') >= 0 {
					s.cr = true
					continue
				}
				i = len(buf)
				s.lineStart = false
				break
			}
			if bytes.IndexByte(buf[i:i+k], '\r') >= 0 {
				s.cr = true
				continue
			}
			i += k + 1
			s.lineStart = true
			continue
		}
		c := buf[i]
		if c != '\n' && c != '\r' {
			s.lineStart = false
			i++
			continue
		}
		n := 1
		if c == '\r' {
			if i+1 == len(buf) && !s.eof {
				break // is it "\r" or "\r\n"? The next read tells.
			}
			if i+1 < len(buf) && buf[i+1] == '\n' {
				n = 2
			}
		}
		if s.lineStart {
			s.emit(i + n)
			return true
		}
		s.lineStart = true
		i += n
	}
	s.pos = i
	return false
}

func (s *Scanner) emit(end int) {
	s.event = s.buf[s.start:end]
	s.start, s.pos, s.lineStart = end, end, true
}

// fill reads more data, first moving the unfinished event to the front of the
// buffer and growing the buffer only when the event fills it.
func (s *Scanner) fill() {
	if s.start > 0 {
		n := copy(s.buf, s.buf[s.start:s.end])
		s.pos -= s.start
		s.end = n
		s.start = 0
	}
	if s.end == len(s.buf) {
		if len(s.buf) >= s.max {
			s.err = ErrEventTooLarge
			return
		}
		size := min(2*len(s.buf), s.max)
		nb := make([]byte, size)
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	n, err := s.r.Read(s.buf[s.end:])
	s.end += n
	if err == io.EOF {
		s.eof = true
	} else if err != nil {
		s.err = err
	}
}

// Data returns the payload of an event made of exactly one "data:" line plus
// optional comment lines, the shape every chat chunk has. ok is false for any
// other event; use AppendData for those.
func Data(event []byte) (data []byte, ok bool) {
	found := false
	for len(event) > 0 {
		line, rest := cutLine(event)
		event = rest
		if len(line) == 0 || line[0] == ':' {
			continue
		}
		v, isData := field(line)
		if !isData || found {
			return nil, false
		}
		data, found = v, true
	}
	return data, found
}

// AppendData appends the event's data, its "data:" lines joined by '\n' as
// the event-stream grammar says, and reports whether there was any.
func AppendData(dst, event []byte) ([]byte, bool) {
	found := false
	for len(event) > 0 {
		line, rest := cutLine(event)
		event = rest
		if v, ok := field(line); ok {
			if found {
				dst = append(dst, '\n')
			}
			dst = append(dst, v...)
			found = true
		}
	}
	return dst, found
}

// field returns the value of a "data" line, with the one optional leading space removed.
func field(line []byte) ([]byte, bool) {
	if !bytes.HasPrefix(line, []byte("data")) {
		return nil, false
	}
	v := line[4:]
	switch {
	case len(v) == 0:
		return v, true
	case v[0] != ':':
		return nil, false // another field whose name starts with "data"
	}
	v = v[1:]
	if len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	return v, true
}

// cutLine splits off the first line, without its terminator. Two
// IndexByte passes are vectorised; IndexAny tests one byte at a time and was
// most of the relay's CPU per event.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		i = len(b)
	}
	if j := bytes.IndexByte(b[:i], '\r'); j >= 0 {
		i = j
	}
	if i == len(b) {
		return b, nil
	}
	n := 1
	if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
		n = 2
	}
	return b[:i], b[i+n:]
}
