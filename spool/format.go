// Package spool keeps what the usage ledger must not lose on local disk:
// usage records the store could not take (the spool), records the store
// refused as invalid (the dead letters), and the requests in flight (the
// journal), so a process that dies leaves none of them unrecorded.
//
// Every file is a sequence of lines, each "CRC SP JSON LF": CRC is the
// CRC-32C of JSON in eight hex digits. A line cut short by a crash, or
// damaged, fails its checksum and is skipped; everything after it is read.
// A run of NUL bytes at the end of a file is not damage: it is the unused
// tail of a journal written through a mapping (journalFile).
package spool

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"os"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendLine appends the line holding payload (JSON, no newline) to b.
func appendLine(b, payload []byte) []byte {
	var sum [4]byte
	c := crc32.Checksum(payload, castagnoli)
	sum[0], sum[1], sum[2], sum[3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	b = hex.AppendEncode(b, sum[:])
	b = append(b, ' ')
	b = append(b, payload...)
	return append(b, '\n')
}

// sealLine fills in the checksum of a line built in place: line is
// "00000000 " followed by its JSON, without the newline.
func sealLine(line []byte) {
	c := crc32.Checksum(line[9:], castagnoli)
	sum := [4]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)}
	hex.Encode(line[:8], sum[:])
}

// errBadLine is a line that is torn or damaged.
var errBadLine = errors.New("damaged line")

// parseLine returns the JSON of one line (without its newline).
func parseLine(line []byte) ([]byte, error) {
	if len(line) < 10 || line[8] != ' ' {
		return nil, errBadLine
	}
	var sum [4]byte
	if _, err := hex.Decode(sum[:], line[:8]); err != nil {
		return nil, errBadLine
	}
	payload := line[9:]
	want := uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3])
	if crc32.Checksum(payload, castagnoli) != want {
		return nil, errBadLine
	}
	return payload, nil
}

// lineReader reads lines from a file, counting the bytes it has consumed.
type lineReader struct {
	br   *bufio.Reader
	off  int64
	line []byte // the line next returned, reused
}

func newLineReader(r io.Reader, off int64) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), off: off}
}

// next returns the next line's JSON, valid until the next call. A damaged
// line returns errBadLine (its bytes consumed); so does a line cut short
// by a crash: the last one without its newline, or one that NULs follow
// (the tail of a mapped journal). A run of NULs ends the file when
// nothing follows it, io.EOF; when lines do, it is damage (a crash lost
// the pages before them), errBadLine.
func (l *lineReader) next() ([]byte, error) {
	zeros := false
	for {
		buf, err := l.buffered()
		if err == io.EOF && zeros {
			return nil, io.EOF
		}
		if err != nil {
			return nil, err
		}
		n := len(buf) - len(bytes.TrimLeft(buf, "\x00"))
		l.discard(n)
		zeros = zeros || n > 0
		if n < len(buf) {
			break
		}
	}
	if zeros {
		return nil, errBadLine
	}
	l.line = l.line[:0]
	for {
		buf, err := l.buffered()
		if err == io.EOF {
			return nil, errBadLine // len(l.line) > 0: there was a byte
		}
		if err != nil {
			return nil, err
		}
		end := bytes.IndexByte(buf, '\n')
		if end < 0 {
			end = len(buf)
		}
		if nul := bytes.IndexByte(buf[:end], 0); nul >= 0 {
			l.discard(nul) // the NULs are read next
			return nil, errBadLine
		}
		l.line = append(l.line, buf[:end]...)
		if end < len(buf) {
			l.discard(end + 1)
			return parseLine(l.line)
		}
		l.discard(end)
	}
}

// buffered returns what is buffered, reading more when nothing is.
func (l *lineReader) buffered() ([]byte, error) {
	if l.br.Buffered() == 0 {
		if _, err := l.br.Peek(1); err != nil {
			return nil, err
		}
	}
	return l.br.Peek(l.br.Buffered())
}

func (l *lineReader) discard(n int) {
	l.br.Discard(n)
	l.off += int64(n)
}

// syncDir makes a file's creation or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
