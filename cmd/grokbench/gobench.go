package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// benchResult is one line of `go test -bench -benchmem` output.
type benchResult struct {
	Name                             string
	NsPerOp, BytesPerOp, AllocsPerOp float64
}

// relayAllocs runs the gateway's BenchmarkRelay and BenchmarkRelayResponses,
// which relay chat chunks and Responses events through the real relay loop
// one event per op, and returns their results.
func relayAllocs(ctx context.Context, modDir string) (chat, responses *benchResult, _ string) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^BenchmarkRelay(Responses)?$", "-benchmem",
		"-benchtime", "200000x", "./gateway")
	cmd.Dir = modDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, nil, fmt.Sprintf("go test: %v", err)
	}
	if chat, err = parseBenchLine(string(out), "BenchmarkRelay"); err == nil {
		responses, err = parseBenchLine(string(out), "BenchmarkRelayResponses")
	}
	if err != nil {
		return nil, nil, err.Error()
	}
	return chat, responses, ""
}

// parseBenchLine finds name's result line ("BenchmarkRelay-2  200000
// 598 ns/op  363 MB/s  0 B/op  0 allocs/op") in go test output.
func parseBenchLine(out, name string) (*benchResult, error) {
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != name && !strings.HasPrefix(f[0], name+"-")) {
			continue
		}
		b := &benchResult{Name: f[0], NsPerOp: -1, BytesPerOp: -1, AllocsPerOp: -1}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				b.NsPerOp = v
			case "B/op":
				b.BytesPerOp = v
			case "allocs/op":
				b.AllocsPerOp = v
			}
		}
		if b.AllocsPerOp < 0 || b.BytesPerOp < 0 {
			return nil, fmt.Errorf("%s: no -benchmem figures in %q", name, strings.TrimSpace(line))
		}
		return b, nil
	}
	return nil, errors.New(name + ": no result line in the go test output")
}
