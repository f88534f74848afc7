// Package sandboxtest starts an in-process sandbox cloud for tests.
package sandboxtest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/imagesync/imagesync/internal/sandbox"
)

// Cloud is a sandbox served by an httptest.Server on loopback.
type Cloud struct {
	*sandbox.Server
	HTTP *httptest.Server
	// URL is the base URL; AuthURL the identity endpoint clients start from.
	URL     string
	AuthURL string
	// User is the first configured user; Users all of them.
	User  sandbox.User
	Users []sandbox.User
}

// Default users for tests: two accounts, so permission rules can be checked.
var (
	Alice = sandbox.User{Name: "alice", UUID: "a11ce000-0000-4000-8000-000000000001", Token: "alice-token"}
	Bob   = sandbox.User{Name: "bob", UUID: "b0b00000-0000-4000-8000-000000000002", Token: "bob-token"}
)

// Start runs a sandbox for the duration of t. With no users in cfg, Alice and
// Bob are configured.
func Start(t testing.TB, cfg sandbox.Config) *Cloud {
	t.Helper()
	return StartWrapped(t, cfg, nil)
}

// StartWrapped is Start with wrap (if not nil) in front of the sandbox's
// handler, for tests that record, delay or hold requests.
func StartWrapped(t testing.TB, cfg sandbox.Config, wrap func(http.Handler) http.Handler) *Cloud {
	t.Helper()
	if len(cfg.Users) == 0 {
		cfg.Users = []sandbox.User{Alice, Bob}
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	srv, err := sandbox.New(cfg)
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	h := srv.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("sandbox close: %v", err)
		}
	})
	users := srv.Users()
	return &Cloud{Server: srv, HTTP: hs, URL: hs.URL, AuthURL: hs.URL + "/identity/v2.0", User: users[0], Users: users}
}

// PithosURL is the object-store endpoint as the catalog publishes it.
func (c *Cloud) PithosURL() string { return c.URL + "/object-store/v1" }

// ImageURL is the image endpoint as the catalog publishes it (no version).
func (c *Cloud) ImageURL() string { return c.URL + "/image" }

// AccountURL is the Astakos account endpoint.
func (c *Cloud) AccountURL() string { return c.URL + "/account/v1.0" }
