// Package keys mints gateway keys and authenticates them from memory.
//
// A key is "gg-" followed by 43 base64url characters (256 random bits). Only
// its SHA-256 hash is stored. Authentication hashes the presented secret and
// looks the hash up in an in-memory snapshot that a background loop keeps up
// to date by reading the keys changed since its last poll, so the request
// path never waits on the database and a revocation reaches every server
// within one poll. While the store does not answer, the known keys keep
// working for a bounded time (Options.MaxStaleness), then none does.
package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"strings"
	"time"

	"github.com/grokgate/grokgate"
)

// SecretPrefix starts every gateway key, so leaked keys are recognisable by
// secret scanners and cannot be mistaken for xAI keys ("xai-").
const SecretPrefix = "gg-"

// displayLen is how much of the secret a Key's Prefix keeps: "gg-" plus 6
// characters, 36 bits, too few to guess the rest yet enough to tell keys apart.
const displayLen = len(SecretPrefix) + 6

// Mint creates a new key named name with role. It returns the key record to
// store and the secret, which must be shown once and then forgotten.
func Mint(random io.Reader, name string, role grokgate.Role, now time.Time) (grokgate.Key, string, error) {
	var raw [32]byte
	if _, err := io.ReadFull(random, raw[:]); err != nil {
		return grokgate.Key{}, "", err
	}
	var id [8]byte
	if _, err := io.ReadFull(random, id[:]); err != nil {
		return grokgate.Key{}, "", err
	}
	secret := SecretPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	k := grokgate.Key{
		ID:        "key_" + hex.EncodeToString(id[:]),
		Name:      name,
		Prefix:    secret[:displayLen],
		Hash:      Hash(secret),
		Role:      role,
		CreatedAt: now.UTC(),
	}
	return k, secret, nil
}

// MintSpec creates a new key with every setting of s, which Validate has
// accepted; empty allow-lists stay nil, which allows everything.
func MintSpec(random io.Reader, s grokgate.KeySpec, now time.Time) (grokgate.Key, string, error) {
	k, secret, err := Mint(random, s.Name, s.Role, now)
	if err != nil {
		return k, "", err
	}
	if len(s.AllowedModels) > 0 {
		k.AllowedModels = s.AllowedModels
	}
	if len(s.AllowedTools) > 0 {
		k.AllowedTools = s.AllowedTools
	}
	if !s.ExpiresAt.IsZero() {
		k.ExpiresAt = s.ExpiresAt.UTC()
	}
	k.Limits = s.Limits
	return k, secret, nil
}

// Hash returns the stored form of a secret. It runs on every request, so
// it hashes a stack copy: []byte(secret) would allocate for any string
// longer than 32 bytes, and a key is 46.
func Hash(secret string) [32]byte {
	var buf [64]byte
	if len(secret) <= len(buf) {
		return sha256.Sum256(buf[:copy(buf[:], secret)])
	}
	return sha256.Sum256([]byte(secret))
}

// Random is the source Mint should use outside tests.
func Random() io.Reader { return rand.Reader }

// LooksLikeKey reports whether s has the shape of a gateway key; anything
// else is rejected without touching the store.
func LooksLikeKey(s string) bool {
	if !strings.HasPrefix(s, SecretPrefix) || len(s) != len(SecretPrefix)+43 {
		return false
	}
	for i := len(SecretPrefix); i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
