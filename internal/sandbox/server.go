// Package sandbox is a local stand-in for a Synnefo deployment: Astakos
// identity, Pithos+ object storage and Plankton image registry, following the
// real server's wire behaviour (paths, headers, status codes, JSON shapes and
// fault bodies). It serves an http.Handler, so tests run it in-process with
// httptest and cmd/snf-sandbox runs it as a process.
package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imagesync/imagesync/internal/hashmap"
)

// User is one Astakos account: a display name, a uuid (the Pithos account)
// and a token.
type User struct {
	Name  string
	UUID  string
	Token string
}

// ParseUser parses the --user flag form NAME:UUID:TOKEN.
func ParseUser(s string) (User, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return User{}, fmt.Errorf("user %q: want NAME:UUID:TOKEN", s)
	}
	return User{Name: parts[0], UUID: parts[1], Token: parts[2]}, nil
}

// Config configures a sandbox.
type Config struct {
	// DataDir persists blocks and metadata. Empty: a temporary directory that
	// Close removes.
	DataDir string
	// Users; empty means one "demo" user with a random token.
	Users []User
	// BlockSize of new containers (default 4 MiB).
	BlockSize int
	// Quota is each user's pithos.diskspace limit in bytes; 0 is unlimited.
	Quota int64
	// FailRate is the fraction of block uploads and hashmap PUTs answered 503.
	FailRate float64
	// Latency delays block uploads and hashmap PUTs.
	Latency time.Duration
}

// Server is a running sandbox. Its Handler serves every service on one host.
type Server struct {
	cfg     Config
	users   []User
	store   *Store
	stats   stats
	tempDir string

	failRate atomic.Uint64 // math.Float64bits
	latency  atomic.Int64  // nanoseconds

	mu      sync.RWMutex
	revoked map[string]bool // tokens revoked at run time (401 tests)
	rngMu   sync.Mutex
	rng     *mrand.Rand
}

// New opens (or creates) the sandbox's storage and returns a server.
func New(cfg Config) (*Server, error) {
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = hashmap.DefaultBlockSize
	}
	if cfg.FailRate < 0 || cfg.FailRate > 1 {
		return nil, fmt.Errorf("sandbox: fail rate %v is not within [0, 1]", cfg.FailRate)
	}
	s := &Server{cfg: cfg, revoked: map[string]bool{}}
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	s.rng = mrand.New(mrand.NewPCG(uint64FromBytes(seed[:8]), uint64FromBytes(seed[8:])))
	s.users = cfg.Users
	if len(s.users) == 0 {
		s.users = []User{{Name: "demo", UUID: "demo-" + randomHex(8), Token: randomHex(16)}}
	}
	seen := map[string]bool{}
	for _, u := range s.users {
		if seen["t:"+u.Token] || seen["u:"+u.UUID] {
			return nil, fmt.Errorf("sandbox: duplicate user token or uuid for %q", u.Name)
		}
		seen["t:"+u.Token], seen["u:"+u.UUID] = true, true
	}
	dir := cfg.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "snf-sandbox-")
		if err != nil {
			return nil, fmt.Errorf("sandbox: temp data dir: %w", err)
		}
		dir, s.tempDir = d, d
	}
	st, err := openStore(dir, cfg.BlockSize, cfg.Quota)
	if err != nil {
		if s.tempDir != "" {
			os.RemoveAll(s.tempDir)
		}
		return nil, err
	}
	s.store = st
	s.SetFailRate(cfg.FailRate)
	s.SetLatency(cfg.Latency)
	return s, nil
}

// Close releases the storage and removes a temporary data dir.
func (s *Server) Close() error {
	err := s.store.Close()
	if s.tempDir != "" {
		err = errors.Join(err, os.RemoveAll(s.tempDir))
	}
	return err
}

// Users returns the configured users (with the generated demo user, if any).
func (s *Server) Users() []User { return append([]User(nil), s.users...) }

// SetFailRate changes the 503 injection rate at run time.
func (s *Server) SetFailRate(f float64) { s.failRate.Store(math.Float64bits(f)) }

// SetLatency changes the injected delay at run time.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// RevokeToken makes a token invalid from now on, as if it expired.
func (s *Server) RevokeToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[token] = true
}

// RestoreToken makes a revoked token valid again, as if its user had renewed
// it (tests of recovery after a 401).
func (s *Server) RestoreToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.revoked, token)
}

// userByToken resolves a token, honouring revocation.
func (s *Server) userByToken(token string) (User, bool) {
	s.mu.RLock()
	revoked := s.revoked[token]
	s.mu.RUnlock()
	if revoked || token == "" {
		return User{}, false
	}
	for _, u := range s.users {
		if u.Token == token {
			return u, true
		}
	}
	return User{}, false
}

func (s *Server) userByUUID(uuid string) (User, bool) {
	for _, u := range s.users {
		if u.UUID == uuid {
			return u, true
		}
	}
	return User{}, false
}

// authenticate resolves the request's token (the X-Auth-Token query parameter
// first, then the header) as Pithos and Cyclades do, answering 401 itself
// when it fails.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (User, bool) {
	token := r.URL.Query().Get("X-Auth-Token")
	if token == "" {
		token = r.Header.Get("X-Auth-Token")
	}
	if token == "" {
		writeFault(w, r, http.StatusUnauthorized, faultUnauthorized, "Access denied. No authentication token", "")
		return User{}, false
	}
	u, ok := s.userByToken(token)
	if !ok {
		// The service relays Astakos' 401 as a generic fault: the reason
		// phrase as message and Astakos' own body as details.
		details := string(pyJSON(ordered{{faultUnauthorized, ordered{{"code", 401}, {"message", "Invalid token"}, {"details", ""}}}}))
		writeFault(w, r, http.StatusUnauthorized, faultGeneric, "UNAUTHORIZED", details)
		return User{}, false
	}
	return u, true
}

// inject applies --latency and --fail-rate to a block upload or hashmap PUT.
// It reports true when it has answered the request with a 503.
func (s *Server) inject(w http.ResponseWriter, r *http.Request) bool {
	if d := time.Duration(s.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-r.Context().Done():
			t.Stop()
		case <-t.C:
		}
	}
	rate := math.Float64frombits(s.failRate.Load())
	if rate <= 0 {
		return false
	}
	s.rngMu.Lock()
	fail := s.rng.Float64() < rate
	s.rngMu.Unlock()
	if !fail {
		return false
	}
	s.stats.faultsInjected.Add(1)
	writeFault(w, r, http.StatusServiceUnavailable, faultUnavailable, "Service Unavailable (injected by snf-sandbox --fail-rate)", "")
	return true
}

// Handler serves every service:
//
//	/identity/v2.0/…    Astakos identity (tokens)
//	/account/v1.0/…     Astakos account (quotas, user_catalogs)
//	/object-store/v1/…  Pithos+
//	/image/…            Plankton (v1.0 and v1)
//	/_sandbox/stats     counters for tests and benchmarks
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.stats.requests.Add(1)
		p := r.URL.Path
		switch {
		case p == "/_sandbox/stats":
			writeJSON(w, http.StatusOK, s.statsJSON())
		case strings.HasPrefix(p, "/identity/v2.0"):
			s.serveIdentity(w, r, strings.TrimPrefix(p, "/identity/v2.0"))
		case strings.HasPrefix(p, "/account/v1.0"):
			s.serveAccount(w, r, strings.TrimPrefix(p, "/account/v1.0"))
		case strings.HasPrefix(p, "/object-store/v1"):
			s.servePithos(w, r, strings.TrimPrefix(p, "/object-store/v1"))
		case strings.HasPrefix(p, "/public/"):
			s.servePublic(w, r, strings.TrimPrefix(p, "/public/"))
		case strings.HasPrefix(p, "/image"):
			s.servePlankton(w, r, strings.TrimPrefix(p, "/image"))
		default:
			endpointNotFound(w, r)
		}
	})
}

// baseURL is the scheme and host clients used to reach us; catalog entries
// and public URLs are built from it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func uint64FromBytes(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

// stats are the counters of GET /_sandbox/stats.
type stats struct {
	requests           atomic.Int64
	blocksReceived     atomic.Int64
	blockBytesReceived atomic.Int64
	hashmapPuts        atomic.Int64
	faultsInjected     atomic.Int64
	imageRegisters     atomic.Int64
	imageUpdates       atomic.Int64
	objectPuts         atomic.Int64
}

// Stats is a snapshot of the counters.
type Stats struct {
	Requests           int64 `json:"requests"`
	BlocksReceived     int64 `json:"blocks_received"`
	BlockBytesReceived int64 `json:"block_bytes_received"`
	HashmapPuts        int64 `json:"hashmap_puts"`
	FaultsInjected     int64 `json:"faults_injected"`
	ImageRegisters     int64 `json:"image_registers"`
	ImageUpdates       int64 `json:"image_updates"`
	ObjectPuts         int64 `json:"object_puts"`
	// MetaCommits counts metadata write transactions (bbolt commits, each
	// an fsync); a pure block upload makes none.
	MetaCommits int64 `json:"meta_commits"`
}

func (s *Server) statsJSON() map[string]any {
	st := &s.stats
	return map[string]any{
		"meta_commits":         s.store.commits.Load(),
		"requests":             st.requests.Load(),
		"blocks_received":      st.blocksReceived.Load(),
		"block_bytes_received": st.blockBytesReceived.Load(),
		"hashmap_puts":         st.hashmapPuts.Load(),
		"faults_injected":      st.faultsInjected.Load(),
		"image_registers":      st.imageRegisters.Load(),
		"image_updates":        st.imageUpdates.Load(),
		"object_puts":          st.objectPuts.Load(),
	}
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	st := &s.stats
	return Stats{
		Requests: st.requests.Load(), BlocksReceived: st.blocksReceived.Load(),
		BlockBytesReceived: st.blockBytesReceived.Load(), HashmapPuts: st.hashmapPuts.Load(),
		FaultsInjected: st.faultsInjected.Load(), ImageRegisters: st.imageRegisters.Load(),
		ImageUpdates: st.imageUpdates.Load(), ObjectPuts: st.objectPuts.Load(),
		MetaCommits: s.store.commits.Load(),
	}
}
