package grokgate

import (
	"fmt"
	"sync/atomic"
)

// RejectedRecord is a usage record a store refused as invalid, with the
// store's reason.
type RejectedRecord struct {
	Record Record
	Reason string
}

// RejectedRecordsError is what a store's InsertUsage returns when it wrote
// every record of a batch except these, which it refused as invalid (a
// value the database cannot hold). Retrying them cannot succeed.
type RejectedRecordsError struct {
	Rejected []RejectedRecord
}

func (e *RejectedRecordsError) Error() string {
	if len(e.Rejected) == 1 {
		return fmt.Sprintf("usage record %s refused: %s", e.Rejected[0].Record.RequestID, e.Rejected[0].Reason)
	}
	return fmt.Sprintf("%d usage records refused; the first, %s: %s", len(e.Rejected), e.Rejected[0].Record.RequestID, e.Rejected[0].Reason)
}

// Progress is how much generated text a request in flight has relayed,
// shared between the relay, which publishes it only when asked (so an
// event costs one atomic load), and a journal, which asks about once a
// second and writes it down, so a process that dies leaves an estimate.
// The zero value is ready.
type Progress struct {
	due                atomic.Bool
	content, reasoning atomic.Int64
}

// Due reports whether the journal asked for the counts.
func (p *Progress) Due() bool { return p.due.Load() }

// Ask asks the relay to publish its counts at its next event.
func (p *Progress) Ask() { p.due.Store(true) }

// Publish sets the bytes of generated text (content and tool-call
// arguments; reasoning) relayed so far, and answers Ask.
func (p *Progress) Publish(content, reasoning int64) {
	p.content.Store(content)
	p.reasoning.Store(reasoning)
	p.due.Store(false)
}

// Relayed returns the counts last published.
func (p *Progress) Relayed() (content, reasoning int64) {
	return p.content.Load(), p.reasoning.Load()
}
