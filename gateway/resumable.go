package gateway

import (
	"net/http"

	"github.com/grokgate/grokgate/xai"
)

// serveResumableChat serves a streaming chat request sent with
// X-Grokgate-Resumable: true. The generation runs detached from the client
// (runner.go) into the stream log, and this client reads the log like any
// later one: its events carry id: lines, the stream's id comes in
// X-Grokgate-Stream-Id, and GET /chat/completions/{id}/stream with
// Last-Event-ID picks it up on any replica. serveChat sends it here once
// the request is admitted and xAI is to stream it; plain streams never
// come here: their relay stays as it was.
func (s *Server) serveResumableChat(w http.ResponseWriter, r *http.Request, body []byte) {
	ctx, abort, stop, wd := s.runnerContext(r)
	resp, ok := s.send(ctx, w, r, xai.Request{Method: http.MethodPost, Path: "/chat/completions", Body: body})
	if !ok {
		stop()
		return
	}
	if resp.StatusCode != http.StatusOK || !isEventStream(resp.Header) {
		defer stop()
		defer resp.Body.Close()
		s.forwardJSON(ctx, w, r, resp, true)
		return
	}
	id := newStreamID()
	ru := s.startRunner(r, resp, ctx, abort, stop, wd, chatLogPrefix+id, dialectChat, true)
	f := s.newFollower(w, r, chatLogPrefix+id, dialectChat)
	f.idLines, f.streamID, f.ru = true, id, ru
	if f.awaitFirst(ru, true) {
		f.follow(0)
	}
}
