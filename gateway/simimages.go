package gateway

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// simImagesPath is where the built-in simulator serves generated images.
const simImagesPath = "/sim/images/"

// simulatorImages serves the simulator's image files at grokgate's own
// address: GET /sim/images/{name} is passed to the simulator. The files
// are fake images of fake answers; no key is asked, as for xAI's own
// image URLs.
func (s *Server) simulatorImages() http.Handler {
	u, err := url.Parse(s.cfg.SimulatorURL)
	if err != nil || u.Host == "" {
		return nil
	}
	return httputil.NewSingleHostReverseProxy(u)
}

// ownImageURL turns an image URL of the built-in simulator into one at the
// address the client reached grokgate by; other URLs are returned as they
// are.
func (s *Server) ownImageURL(r *http.Request, u string) string {
	prefix := strings.TrimRight(s.cfg.SimulatorURL, "/") + simImagesPath
	if s.cfg.SimulatorURL == "" || !strings.HasPrefix(u, prefix) {
		return u
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + simImagesPath + strings.TrimPrefix(u, prefix)
}
