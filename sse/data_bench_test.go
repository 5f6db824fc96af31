package sse

import "testing"

// BenchmarkData extracts the payload of one typical chat chunk, which the
// relay does for every event it forwards.
func BenchmarkData(b *testing.B) {
	ev := []byte(`data: {"id":"53ae1f0c-0c5c-4e57-9c8d-1b0f8d3e7a21","object":"chat.completion.chunk","created":1773345550,"model":"grok-4.3","choices":[{"index":0,"delta":{"content":" word"}}],"system_fingerprint":"fp_3d7ed3b779"}` + "\n\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		if _, ok := Data(ev); !ok {
			b.Fatal("no data")
		}
	}
}
