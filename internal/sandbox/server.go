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
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/imagesync/imagesync/internal/hashmap"
)

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
	users   *Directory
	quota   int64
	store   *Store
	stats   stats
	faults  *injector
	tempDir string
}

// New opens (or creates) the sandbox's storage and returns a server.
func New(cfg Config) (*Server, error) {
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = hashmap.DefaultBlockSize
	}
	if cfg.FailRate < 0 || cfg.FailRate > 1 {
		return nil, fmt.Errorf("sandbox: fail rate %v is not within [0, 1]", cfg.FailRate)
	}
	users := cfg.Users
	if len(users) == 0 {
		users = []User{{Name: "demo", UUID: "demo-" + randomHex(8), Token: randomHex(16)}}
	}
	dir, err := NewDirectory(users)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	s := &Server{cfg: cfg, users: dir, quota: cfg.Quota, faults: newInjector(cfg.FailRate, cfg.Latency)}
	data := cfg.DataDir
	if data == "" {
		d, err := os.MkdirTemp("", "snf-sandbox-")
		if err != nil {
			return nil, fmt.Errorf("sandbox: temp data dir: %w", err)
		}
		data, s.tempDir = d, d
	}
	st, err := openStore(data, cfg.BlockSize, cfg.Quota)
	if err != nil {
		if s.tempDir != "" {
			os.RemoveAll(s.tempDir)
		}
		return nil, err
	}
	s.store = st
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
func (s *Server) Users() []User { return s.users.Users() }

// SetFailRate changes the 503 injection rate at run time.
func (s *Server) SetFailRate(f float64) { s.faults.setFailRate(f) }

// SetLatency changes the injected delay at run time.
func (s *Server) SetLatency(d time.Duration) { s.faults.setLatency(d) }

// RevokeToken makes a token invalid from now on, as if it expired.
func (s *Server) RevokeToken(token string) { s.users.Revoke(token) }

// RestoreToken makes a revoked token valid again, as if its user had renewed
// it (tests of recovery after a 401).
func (s *Server) RestoreToken(token string) { s.users.Restore(token) }

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

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// stats are the counters of GET /_sandbox/stats.
type stats struct {
	requests           atomic.Int64
	blocksReceived     atomic.Int64
	blockBytesReceived atomic.Int64
	hashmapPuts        atomic.Int64
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
		"meta_commits":         s.store.metaCommits(),
		"requests":             st.requests.Load(),
		"blocks_received":      st.blocksReceived.Load(),
		"block_bytes_received": st.blockBytesReceived.Load(),
		"hashmap_puts":         st.hashmapPuts.Load(),
		"faults_injected":      s.faults.injectedCount(),
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
		FaultsInjected: s.faults.injectedCount(), ImageRegisters: st.imageRegisters.Load(),
		ImageUpdates: st.imageUpdates.Load(), ObjectPuts: st.objectPuts.Load(),
		MetaCommits: s.store.metaCommits(),
	}
}
