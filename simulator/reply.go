package simulator

import (
	"hash/fnv"
	"strings"
)

// replyWords is the vocabulary of simulated answers. A constant string (split
// per call) keeps the package free of mutable globals.
const replyWords = "the gateway streams tokens from grok through a quiet harbor of light " +
	"every request finds its model and every model answers in time " +
	"sparks drift over calm water while servers hum softly at night " +
	"bright rivers carry small packets toward distant shores of data " +
	"patient clocks measure latency budgets with careful precision today"

// Reply returns the content pieces (one per streamed content chunk) the
// simulator answers for this prompt. prompt is the text of the last user
// message with any #sim{...} directive removed and surrounding whitespace
// trimmed. Joining the pieces gives the full non-streaming content.
//
// The answer is deterministic: piece i is a word picked from a fixed list by
// a hash of prompt and i; pieces after the first start with a space, the
// first word is capitalised and the last ends with ".". chunks <= 0 yields
// an empty slice.
func Reply(prompt string, chunks int) []string {
	if chunks <= 0 {
		return []string{}
	}
	words := strings.Fields(replyWords)
	h := fnv.New64a()
	h.Write([]byte(prompt))
	seed := h.Sum64()
	out := make([]string, chunks)
	for i := range out {
		w := words[mix(seed+uint64(i))%uint64(len(words))]
		if i == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		} else {
			w = " " + w
		}
		if i == chunks-1 {
			w += "."
		}
		out[i] = w
	}
	return out
}

// reasoningReply gives the reasoning_content pieces: a different but equally
// deterministic word sequence.
func reasoningReply(prompt string, chunks int) []string {
	return Reply("\x00reasoning\x00"+prompt, chunks)
}

// mix is splitmix64's finaliser: neighbouring inputs give unrelated outputs.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
