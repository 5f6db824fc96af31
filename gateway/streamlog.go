package gateway

import (
	"context"
	"time"

	"github.com/grokgate/grokgate"
)

// StreamLog keeps the events of generations that outlive their client
// (background responses, resumable chat streams), so any replica can replay
// them and follow the live ones. Package eventlog keeps them in memory (one
// replica), package redis in Redis Streams (several).
type StreamLog interface {
	// Create starts a log; ErrStreamExists, ErrStreamLogFull.
	Create(ctx context.Context, id string, meta grokgate.StreamMeta) error
	// Append adds one event and returns its sequence number (1, 2, ...);
	// ErrStreamLogFull, ErrStreamNotFound.
	Append(ctx context.Context, id string, data []byte) (seq int64, err error)
	// Renew renews the runner's lease and returns the state (Cancelled,
	// ReadSeen) for the runner to act on.
	Renew(ctx context.Context, id string) (grokgate.StreamState, error)
	// Finish ends the generation with a status; the log is kept for the
	// retention time, then dropped.
	Finish(ctx context.Context, id, status string) error
	// Read returns up to max events after sequence number after, waiting
	// up to wait when there are none yet, and records a read (ReadSeen).
	Read(ctx context.Context, id string, after int64, max int, wait time.Duration) ([]grokgate.StreamEvent, grokgate.StreamState, error)
	// State returns the state without recording a read.
	State(ctx context.Context, id string) (grokgate.StreamState, error)
	// Cancel asks the runner, wherever it runs, to stop the generation.
	Cancel(ctx context.Context, id string) error
}

// What StreamLog's Finish statuses mean to the readers of a log: the events
// of a completed, failed or incomplete generation end as the dialect ends a
// stream; the others end with an error event a reader writes itself.
const (
	streamCompleted  = "completed"
	streamFailed     = "failed" // the log ends with the error event or response.failed
	streamIncomplete = "incomplete"
	streamCancelled  = "cancelled" // POST /responses/{id}/cancel
	streamOverflow   = "overflow"  // the log refused an event: the rest is lost
)

// Defaults of the stream log settings.
const (
	// DefaultResumeWindow is how long a generation runs without any reader,
	// and how long its events are kept after it ends.
	DefaultResumeWindow = 10 * time.Minute
	// DefaultStreamLease is how long a runner may go without renewing its
	// lease before readers take it for dead.
	DefaultStreamLease = 6 * time.Second
)

// Prefixes of the stream log's ids: a chat stream id cannot name a
// response's log, nor the other way round.
const (
	chatLogPrefix      = "chat:"
	responsesLogPrefix = "resp:"
)
