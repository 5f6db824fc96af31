package usage

import (
	"bytes"
	"encoding/json"
)

// The estimates below stand in for xAI's figures only when its usage object
// never arrived (the client left, the stream was cut or ended in an error).
// Records built from them are marked estimated. The formulas are in README.

const (
	bytesPerToken         = 4   // English text averages about four bytes per token
	messageOverheadTokens = 3   // role and separators of each message
	imagePartTokens       = 256 // one image tile; a lower bound for larger images
)

// TokensForBytes estimates the tokens of n bytes of generated text:
// ceil(n / 4).
func TokensForBytes(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return (n + bytesPerToken - 1) / bytesPerToken
}

// EstimatePromptTokens estimates the prompt tokens of a chat request body:
// for each message 3 + ceil(text bytes / 4), plus 256 per image part. It
// returns 0 for a body it cannot read.
func EstimatePromptTokens(body []byte) int64 {
	var req struct {
		Messages []struct {
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if json.Unmarshal(body, &req) != nil {
		return 0
	}
	var n int64
	for _, m := range req.Messages {
		n += messageOverheadTokens
		c := bytes.TrimSpace(m.Content)
		if len(c) == 0 {
			continue
		}
		switch c[0] {
		case '"':
			var s string
			if json.Unmarshal(c, &s) == nil {
				n += TokensForBytes(int64(len(s)))
			}
		case '[':
			var parts []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			}
			if json.Unmarshal(c, &parts) != nil {
				continue
			}
			for _, p := range parts {
				switch p.Type {
				case "text":
					n += TokensForBytes(int64(len(p.Text)))
				case "image_url":
					n += imagePartTokens
				}
			}
		}
	}
	return n
}
