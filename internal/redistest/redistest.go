// Package redistest finds the Redis tests use: GROKGATE_TEST_REDIS
// (host:port, default 127.0.0.1:6379). Tests give every limiter a unique key
// prefix, so they never see each other's keys and leave nothing that matters.
package redistest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// DefaultAddr is used when GROKGATE_TEST_REDIS is unset.
const DefaultAddr = "127.0.0.1:6379"

// URL returns the redis:// URL of the test Redis. When it cannot be reached
// the test is skipped, or fails if GROKGATE_REQUIRE_SERVICES=1.
func URL(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("GROKGATE_TEST_REDIS")
	if addr == "" {
		addr = DefaultAddr
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		// A PING proves it is Redis, not just an open port.
		c.SetDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 7)
		if _, err = c.Write([]byte("PING\r\n")); err == nil {
			_, err = c.Read(buf)
		}
		c.Close()
		if err == nil && string(buf) != "+PONG\r\n" {
			err = errors.New("it did not answer PING with PONG")
		}
	}
	if err != nil {
		msg := "Redis at " + addr + " is not reachable (" + err.Error() + "); set GROKGATE_TEST_REDIS to a reachable host:port"
		if os.Getenv("GROKGATE_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg + " (GROKGATE_REQUIRE_SERVICES=1 makes this a failure)")
		}
		t.Skip(msg + " (skipping; GROKGATE_REQUIRE_SERVICES=1 makes this a failure)")
	}
	return "redis://" + addr + "/0"
}

// Prefix returns a key prefix no other test uses.
func Prefix() string {
	var b [6]byte
	rand.Read(b[:])
	return "grokgate-test:" + hex.EncodeToString(b[:]) + ":"
}
