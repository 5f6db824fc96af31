package grokgate

import (
	"errors"
	"time"
)

// A generation that survives its client (a background response, a
// resumable chat stream) writes every event it relays to a stream log, from
// which any replica can replay the events after a sequence number and then
// follow the live ones. The log is the only state the replicas share about
// it: the runner's lease says it is alive, the last read says someone is
// still interested, and the cancel flag reaches the runner from any replica.

// StreamMeta is what a stream log records when a generation starts.
type StreamMeta struct {
	Owner   string // id of the key that started it; only it may read or cancel
	Dialect string // "chat" or "responses": how the events are framed and end
	Model   string
	Created time.Time
}

// StreamEvent is one relayed SSE event, stored as the bytes written to the
// client (without the "id:" line a resumed stream adds).
type StreamEvent struct {
	Seq  int64 // 1 for the first event, then one more for each
	Data []byte
}

// StreamState is what a stream log knows of a generation.
type StreamState struct {
	Meta StreamMeta
	// Ended is set by Finish; Status is the status Finish gave (for
	// Responses: completed, failed, cancelled, incomplete).
	Ended  bool
	Status string
	// Last is the sequence number of the last event appended.
	Last int64
	// RunnerSeen is when the runner last renewed its lease; a generation
	// not Ended whose runner has not been seen for the lease time died
	// with its replica.
	RunnerSeen time.Time
	// ReadSeen is when a reader last read (zero: never).
	ReadSeen time.Time
	// Cancelled is set by Cancel, for the runner to act on.
	Cancelled bool
}

var (
	// ErrStreamNotFound: no stream log has that id (never made, or its
	// retention ended).
	ErrStreamNotFound = errors.New("stream not found")
	// ErrStreamLogFull: the log is at its configured bound (streams or
	// bytes, per stream or in total); the request that wanted to start or
	// grow a stream is refused.
	ErrStreamLogFull = errors.New("stream log full")
	// ErrStreamExists: Create was called twice with one id.
	ErrStreamExists = errors.New("stream already exists")
)

// ErrStreamEnded: Append or Finish was called on a stream log after Finish.
var ErrStreamEnded = errors.New("stream already ended")
