// Package sandbox is a local stand-in for a Synnefo deployment: Astakos
// identity, Pithos+ object storage and Plankton image registry, following the
// real server's wire behaviour (paths, headers, status codes, JSON shapes and
// fault bodies). It serves an http.Handler, so tests run it in-process with
// httptest and cmd/snf-sandbox runs it as a process.
//
// Each service is its own package over the shared store: astakos (identity,
// quotas, user catalogs, and the user directory the others authenticate
// with), pithos (the object store and public URLs) and plankton (images);
// store keeps the Pithos+ data and wire renders what Synnefo's Python
// renders. A Server composes them on one host.
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
	"github.com/imagesync/imagesync/internal/sandbox/astakos"
	"github.com/imagesync/imagesync/internal/sandbox/pithos"
	"github.com/imagesync/imagesync/internal/sandbox/plankton"
	"github.com/imagesync/imagesync/internal/sandbox/store"
	"github.com/imagesync/imagesync/internal/sandbox/wire"
)

// User is one Astakos account: a display name, a uuid (the Pithos account)
// and a token.
type User = astakos.User

// ParseUser parses the --user flag form NAME:UUID:TOKEN.
func ParseUser(s string) (User, error) { return astakos.ParseUser(s) }

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
	// Clock stamps versions and modification times (default time.Now);
	// tests of the history views (?until) set it.
	Clock func() time.Time
}

// Server is a running sandbox. Its Handler serves every service on one host.
type Server struct {
	users    *astakos.Directory
	store    *store.Store
	astakos  *astakos.Handler
	pithos   *pithos.Handler
	plankton *plankton.Handler
	requests atomic.Int64
	tempDir  string
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
	dir, err := astakos.NewDirectory(users)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	s := &Server{users: dir}
	data := cfg.DataDir
	if data == "" {
		d, err := os.MkdirTemp("", "snf-sandbox-")
		if err != nil {
			return nil, fmt.Errorf("sandbox: temp data dir: %w", err)
		}
		data, s.tempDir = d, d
	}
	st, err := store.Open(data, store.Options{BlockSize: cfg.BlockSize, Quota: cfg.Quota, Clock: cfg.Clock})
	if err != nil {
		if s.tempDir != "" {
			os.RemoveAll(s.tempDir)
		}
		return nil, err
	}
	s.store = st
	s.astakos = astakos.New(dir, st, cfg.Quota)
	s.pithos = pithos.New(st, dir, pithos.Options{Quota: cfg.Quota, FailRate: cfg.FailRate, Latency: cfg.Latency})
	s.plankton = plankton.New(st, dir)
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
func (s *Server) SetFailRate(f float64) { s.pithos.SetFailRate(f) }

// SetLatency changes the injected delay at run time.
func (s *Server) SetLatency(d time.Duration) { s.pithos.SetLatency(d) }

// RevokeToken makes a token invalid from now on, as if it expired.
func (s *Server) RevokeToken(token string) { s.users.Revoke(token) }

// RestoreToken makes a revoked token valid again, as if its user had renewed
// it (tests of recovery after a 401).
func (s *Server) RestoreToken(token string) { s.users.Restore(token) }

// Handler serves every service:
//
//	/identity/v2.0/…    Astakos identity (tokens)
//	/account/v1.0/…     Astakos account (quotas, resources, user_catalogs)
//	/object-store/v1/…  Pithos+
//	/public/…           Pithos+ public URLs
//	/image/…            Plankton (v1.0 and v1)
//	/_sandbox/stats     counters for tests and benchmarks
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		p := r.URL.Path
		switch {
		case p == "/_sandbox/stats":
			wire.WriteJSON(w, http.StatusOK, s.Stats().json())
		case strings.HasPrefix(p, "/identity/v2.0"):
			s.astakos.Identity(w, r, strings.TrimPrefix(p, "/identity/v2.0"))
		case strings.HasPrefix(p, "/account/v1.0"):
			s.astakos.Account(w, r, strings.TrimPrefix(p, "/account/v1.0"))
		case strings.HasPrefix(p, "/object-store/v1"):
			s.pithos.ObjectStore(w, r, strings.TrimPrefix(p, "/object-store/v1"))
		case strings.HasPrefix(p, "/public/"):
			s.pithos.Public(w, r, strings.TrimPrefix(p, "/public/"))
		case strings.HasPrefix(p, "/image"):
			s.plankton.Images(w, r, strings.TrimPrefix(p, "/image"))
		default:
			wire.EndpointNotFound(w, r)
		}
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Stats is a snapshot of the counters of GET /_sandbox/stats.
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

func (st Stats) json() map[string]any {
	return map[string]any{
		"requests":             st.Requests,
		"blocks_received":      st.BlocksReceived,
		"block_bytes_received": st.BlockBytesReceived,
		"hashmap_puts":         st.HashmapPuts,
		"faults_injected":      st.FaultsInjected,
		"image_registers":      st.ImageRegisters,
		"image_updates":        st.ImageUpdates,
		"object_puts":          st.ObjectPuts,
		"meta_commits":         st.MetaCommits,
	}
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	ps, ks := s.pithos.Stats(), s.plankton.Stats()
	return Stats{
		Requests: s.requests.Load(), BlocksReceived: ps.BlocksReceived,
		BlockBytesReceived: ps.BlockBytesReceived, HashmapPuts: ps.HashmapPuts,
		FaultsInjected: ps.FaultsInjected, ImageRegisters: ks.ImageRegisters,
		ImageUpdates: ks.ImageUpdates, ObjectPuts: ps.ObjectPuts,
		MetaCommits: s.store.MetaCommits(),
	}
}
