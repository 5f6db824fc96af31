package spool

import (
	"errors"
	"log/slog"
	"os"
	"runtime/debug"
)

// journalFile is the file a Journal writes. Where canMap, it is written
// through a shared mapping: a line costs a copy into the file's pages in
// the page cache, which a killed process leaves behind as it would a
// write(2), and no system call. Elsewhere, or once mapping failed, it is
// written with write(2) (it is opened O_APPEND for that).
//
// A mapped file is sized to its mapping up front (sparse: the disk holds
// only the pages written); past its lines it is zeros, which lineReader
// takes for its end. Close cuts it to its lines. Its methods are called
// with the Journal's mu held.
type journalFile struct {
	f    *os.File
	m    []byte // f's first len(m) bytes, mapped; nil: written with write(2)
	size int64  // bytes of lines written
	log  *slog.Logger
}

// createJournalFile opens path (flag adds O_EXCL or O_TRUNC) and maps
// mapSize bytes of it where it can.
func createJournalFile(path string, flag int, mapSize int64, log *slog.Logger) (*journalFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|flag, 0o600)
	if err != nil {
		return nil, err
	}
	o := &journalFile{f: f, log: log}
	if canMap {
		o.remap(mapSize)
	}
	return o, nil
}

// remap sizes the file to n bytes, rounded up to pages, and maps them.
// When that fails the file is cut back to its lines and written with
// write(2) from then on.
func (o *journalFile) remap(n int64) {
	o.unmap()
	page := int64(os.Getpagesize())
	n = (n + page - 1) / page * page
	err := o.f.Truncate(n)
	if err == nil {
		o.m, err = mapFile(o.f, int(n))
	}
	if err != nil {
		o.m = nil
		o.f.Truncate(o.size) // back to its lines, for write(2) to append to
		o.log.Warn("usage journal: cannot map its file; writing it with write(2)", "err", err)
	}
}

// unmap drops the mapping, if any.
func (o *journalFile) unmap() error {
	if o.m == nil {
		return nil
	}
	err := unmapFile(o.m)
	o.m = nil
	return err
}

// mapped says lines are written through the mapping.
func (o *journalFile) mapped() bool { return o.m != nil }

// write appends b, whole lines.
func (o *journalFile) write(b []byte) error {
	if o.m != nil {
		if need := o.size + int64(len(b)); need > int64(len(o.m)) {
			// A burst between two rewrites outgrew the mapping: rare, so
			// a slow path (ftruncate, munmap, mmap).
			o.remap(max(2*int64(len(o.m)), need))
		}
	}
	if o.m != nil {
		if copyIn(o.m[o.size:], b) {
			o.size += int64(len(b))
			return nil
		}
		// Nothing was lost yet: the line's request has not gone on.
		o.log.Error("usage journal: writing through its mapping faulted (is the disk full?); writing it with write(2)")
		o.unmap()
		o.f.Truncate(o.size)
	}
	n, err := o.f.Write(b)
	o.size += int64(n)
	return err
}

// copyIn copies b to the start of dst, a mapping, and says whether it
// could. A store to a page of a sparse file the disk has no room for, or
// past the end of a file something shrank, raises SIGBUS, which would end
// the process; SetPanicOnFault makes it a panic, recovered here.
func copyIn(dst, b []byte) (ok bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
		}
	}()
	copy(dst, b)
	return true
}

// close unmaps and closes the file, cut to its lines, or emptied when
// !keep, and fsyncs it.
func (o *journalFile) close(keep bool) error {
	mapped := o.m != nil
	err := o.unmap()
	switch {
	case !keep:
		err = errors.Join(err, o.f.Truncate(0))
	case mapped:
		err = errors.Join(err, o.f.Truncate(o.size))
	}
	return errors.Join(err, o.f.Sync(), o.f.Close())
}

// drop unmaps and closes the file as it is: one the rewrite replaced.
func (o *journalFile) drop() {
	o.unmap()
	o.f.Close()
}
