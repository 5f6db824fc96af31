// Package grokgate holds the domain types shared by every part of the gateway.
// It depends on the standard library only, so that storage, HTTP and upstream
// packages can all speak about keys and usage without importing each other.
package grokgate

import (
	"errors"
	"time"
)

// Role says what a gateway key may do.
type Role string

const (
	// RoleUser keys may call the OpenAI-compatible API.
	RoleUser Role = "user"
	// RoleAdmin keys may also call the admin API.
	RoleAdmin Role = "admin"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleUser || r == RoleAdmin }

// Key is a gateway-issued API key. The secret itself is never stored: only
// its SHA-256 hash and a short prefix that lets people tell keys apart.
type Key struct {
	ID        string    // stable identifier, "key_..."; safe to log
	Name      string    // human label
	Prefix    string    // first characters of the secret, for display; safe to log
	Hash      [32]byte  // SHA-256 of the full secret
	Role      Role      // RoleUser or RoleAdmin
	CreatedAt time.Time // UTC
	// RevokedAt is the zero time while the key is active.
	RevokedAt time.Time
}

// Active reports whether the key may be used at time now.
func (k *Key) Active(now time.Time) bool { return k.RevokedAt.IsZero() }

// ErrNotFound is returned by stores when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")
