package main

import (
	"time"

	"github.com/grokgate/grokgate/eventlog"
	"github.com/grokgate/grokgate/gateway"
	"github.com/grokgate/grokgate/redis"
)

// resumeConfig is the stream log of background responses and resumable
// chat streams: GROKGATE_RESUME_WINDOW and the log's bounds.
type resumeConfig struct {
	window         time.Duration
	lease          time.Duration
	maxStreams     int64
	maxBytes       int64
	maxStreamBytes int64
}

func resumeFlags(s *settings, c *resumeConfig) {
	s.Duration(&c.window, "resume-window", "GROKGATE_RESUME_WINDOW", gateway.DefaultResumeWindow,
		"how long a background or resumable generation runs on without any reader, and how long its events are kept after it ends")
	s.Duration(&c.lease, "stream-lease", "GROKGATE_STREAM_LEASE", gateway.DefaultStreamLease,
		"how long a replica running a generation may go silent before readers take it for dead and end their streams")
	s.Int64(&c.maxStreams, "resume-max-streams", "GROKGATE_RESUME_MAX_STREAMS", eventlog.DefaultMaxStreams,
		"background and resumable streams kept at once; past it new ones get 429")
	s.Int64(&c.maxBytes, "resume-max-bytes", "GROKGATE_RESUME_MAX_BYTES", eventlog.DefaultMaxBytes,
		"bytes of events kept for all background and resumable streams; past it new ones get 429")
	s.Int64(&c.maxStreamBytes, "resume-max-stream-bytes", "GROKGATE_RESUME_MAX_STREAM_BYTES", eventlog.DefaultMaxStreamBytes,
		"bytes of events kept for one stream; a longer generation is stopped and its readers get an error event")
}

func (c *resumeConfig) check(s *settings) {
	s.check(c.window > 0, "GROKGATE_RESUME_WINDOW/--resume-window must be positive, got %s", c.window)
	s.check(c.lease > 0, "GROKGATE_STREAM_LEASE/--stream-lease must be positive, got %s", c.lease)
	s.check(c.maxStreams > 0, "GROKGATE_RESUME_MAX_STREAMS/--resume-max-streams must be positive, got %d", c.maxStreams)
	s.check(c.maxBytes > 0, "GROKGATE_RESUME_MAX_BYTES/--resume-max-bytes must be positive, got %d", c.maxBytes)
	s.check(c.maxStreamBytes > 0, "GROKGATE_RESUME_MAX_STREAM_BYTES/--resume-max-stream-bytes must be positive, got %d", c.maxStreamBytes)
}

// newStreamLog returns the stream log, and what closes it: in Redis with
// GROKGATE_REDIS_URL, so a stream can be resumed on any replica; in memory
// (one replica) otherwise.
func newStreamLog(c resumeConfig, l limitConfig) (gateway.StreamLog, func(), error) {
	if l.redisURL == "" {
		m := eventlog.New(eventlog.Options{Retention: c.window, MaxStreams: int(c.maxStreams), MaxBytes: c.maxBytes, MaxStreamBytes: c.maxStreamBytes})
		return m, func() { m.Close() }, nil
	}
	r, err := redis.NewStreamLog(l.redisURL, redis.StreamLogOptions{Prefix: l.redisPrefix + "sl:", Retention: c.window, Timeout: l.timeout,
		MaxStreams: int(c.maxStreams), MaxBytes: c.maxBytes, MaxStreamBytes: c.maxStreamBytes})
	if err != nil {
		return nil, nil, err
	}
	return r, func() { r.Close() }, nil
}
