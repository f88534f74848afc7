package sandbox

// TEMPORARY: replaced by astakos.go and plankton.go.

import "net/http"

func (s *Server) serveIdentity(w http.ResponseWriter, r *http.Request, rest string) {
	endpointNotFound(w, r)
}
func (s *Server) serveAccount(w http.ResponseWriter, r *http.Request, rest string) {
	endpointNotFound(w, r)
}
func (s *Server) servePlankton(w http.ResponseWriter, r *http.Request, rest string) {
	endpointNotFound(w, r)
}
