package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"strconv"
	"time"
)

// conn is one keep-alive HTTP/1.1 connection driven by one goroutine: the
// request is written whole, then the response read. net/http's Transport
// would add two goroutines and channel handoffs per connection, CPU that on
// a 2-core machine is taken from the servers being measured.
type conn struct {
	addr string
	nc   net.Conn
	br   *bufio.Reader
	body []byte // reused for non-streaming response bodies
}

func dial(addr string, readBuf int) (*conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &conn{addr: addr, nc: nc, br: bufio.NewReaderSize(nc, readBuf), body: make([]byte, 0, 4096)}, nil
}

func (c *conn) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

// redial replaces a connection the server closed.
func (c *conn) redial(deadline time.Time) error {
	c.close()
	nc, err := net.DialTimeout("tcp", c.addr, 10*time.Second)
	if err != nil {
		return err
	}
	nc.SetDeadline(deadline)
	c.nc = nc
	c.br.Reset(nc)
	return nil
}

// head is what the bench needs from a response head.
type head struct {
	status  int
	length  int64 // -1 when unknown
	chunked bool
	close   bool
}

// readHead parses the status line and headers without allocating.
func (c *conn) readHead() (head, error) {
	h := head{length: -1}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return h, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return h, fmt.Errorf("bad status line %q", line)
	}
	h.status = atoi(line[9:12])
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return h, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return h, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			h.length = int64(atoi(value))
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			h.chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			h.close = bytes.EqualFold(value, []byte("close"))
		}
	}
}

func atoi(b []byte) int {
	n, _ := strconv.Atoi(string(b)) // the conversion does not allocate here
	return n
}

// bodyReader returns a reader of the response body. For a chunked body the
// caller must call endBody after reading to EOF, to consume the trailer.
func (c *conn) bodyReader(h head) io.Reader {
	switch {
	case h.chunked:
		return httputil.NewChunkedReader(c.br)
	case h.length >= 0:
		return io.LimitReader(c.br, h.length)
	default:
		return c.br // until the server closes
	}
}

// endBody consumes what follows a chunked body (trailers, the final CRLF).
func (c *conn) endBody(h head) error {
	if !h.chunked {
		return nil
	}
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
}

// roundTrip sends one non-streaming request and reads the whole answer into
// c.body, valid until the next call.
func (c *conn) roundTrip(req []byte, deadline time.Time) (int, []byte, error) {
	if c.nc == nil {
		if err := c.redial(deadline); err != nil {
			return 0, nil, err
		}
	}
	if _, err := c.nc.Write(req); err != nil {
		c.close()
		return 0, nil, err
	}
	h, err := c.readHead()
	if err != nil {
		c.close()
		return 0, nil, err
	}
	c.body = c.body[:0]
	if h.length >= 0 && !h.chunked {
		if int64(cap(c.body)) < h.length {
			c.body = make([]byte, 0, h.length)
		}
		c.body = c.body[:h.length]
		_, err = io.ReadFull(c.br, c.body)
	} else {
		c.body, err = readAllInto(c.body, c.bodyReader(h))
		if err == nil {
			err = c.endBody(h)
		}
	}
	if err != nil || h.close {
		c.close()
	}
	return h.status, c.body, err
}

// readAllInto is io.ReadAll reusing dst.
func readAllInto(dst []byte, r io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// buildRequest returns the raw bytes of a POST, built once per target so
// the load loop only writes them.
func buildRequest(addr, path, key string, body []byte, stream bool) []byte {
	accept := "application/json"
	if stream {
		accept = "text/event-stream"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: grokbench\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nAccept: %s\r\nContent-Length: %d\r\n\r\n", path, addr, key, accept, len(body))
	b.Write(body)
	return b.Bytes()
}
