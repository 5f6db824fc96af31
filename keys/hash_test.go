package keys

import (
	"crypto/sha256"
	"strings"
	"testing"
)

func TestHashIsSHA256(t *testing.T) {
	for _, n := range []int{0, 1, 32, 33, 46, 64, 65, 200} {
		s := strings.Repeat("k", n)
		if Hash(s) != sha256.Sum256([]byte(s)) {
			t.Errorf("Hash of %d bytes differs from SHA-256", n)
		}
	}
}
