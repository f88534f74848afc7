package cloud

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imagesync/imagesync/internal/config"
	"github.com/imagesync/imagesync/internal/rest"
	"github.com/imagesync/imagesync/internal/sandbox"
	"github.com/imagesync/imagesync/internal/sandbox/sandboxtest"
)

// tlsCloud is the sandbox behind httptest.NewTLSServer: its certificate is
// signed by a CA no system trusts.
func tlsCloud(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv, err := sandbox.New(sandbox.Config{DataDir: t.TempDir(), Users: []sandbox.User{sandboxtest.Alice}})
	require.NoError(t, err)
	hs := httptest.NewTLSServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		_ = srv.Close()
	})
	return hs, writeCA(t, hs)
}

// writeCA writes a TLS test server's certificate as a PEM CA file.
func writeCA(t *testing.T, hs *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o644))
	return p
}

func TestTLS(t *testing.T) {
	hs, ca := tlsCloud(t)
	tests := []struct {
		name     string
		cloud    config.Cloud
		wantErr  string
		wantUser string
	}{
		{name: "system roots (the default) do not trust a private CA", wantErr: "set cloud.ca_file"},
		{name: "ca_file", cloud: config.Cloud{CAFile: ca}, wantUser: sandboxtest.Alice.UUID},
		{name: "insecure_skip_verify", cloud: config.Cloud{InsecureSkipVerify: true}, wantUser: sandboxtest.Alice.UUID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cloud
			c.AuthURL, c.Token = hs.URL+"/identity/v2.0", sandboxtest.Alice.Token
			opts, err := FromConfig(c)
			require.NoError(t, err)
			var retries atomic.Int32
			opts.Retry = rest.DefaultRetryPolicy()
			opts.Retry.OnRetry = func(*http.Request, int, error, time.Duration) { retries.Add(1) }
			st, err := New(opts).Get(context.Background())
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Zero(t, retries.Load(), "an untrusted certificate is not retried")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantUser, st.UserUUID)
			// The catalog's endpoints are https too, and reachable.
			assert.Contains(t, st.Images.Endpoint(), "https://")
			_, err = st.Pithos.ListContainers(context.Background())
			require.NoError(t, err)
			_, err = st.Images.List(context.Background())
			require.NoError(t, err)
		})
	}
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o644))
	tc, err := TLSConfig("", false)
	require.NoError(t, err)
	assert.Nil(t, tc, "the default: Go's system roots")
	_, err = TLSConfig(filepath.Join(dir, "missing.pem"), false)
	assert.ErrorContains(t, err, "cloud.ca_file")
	_, err = TLSConfig(notPEM, false)
	assert.ErrorContains(t, err, "no PEM certificate")
	_, err = TLSConfig(notPEM, true)
	assert.ErrorContains(t, err, "set one or the other")
	tc, err = TLSConfig("", true)
	require.NoError(t, err)
	assert.True(t, tc.InsecureSkipVerify)
}

// tokenLog records the tokens the cloud was sent.
type tokenLog struct {
	mu     sync.Mutex
	tokens []string
}

func (l *tokenLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.tokens = append(l.tokens, r.Header.Get("X-Auth-Token"))
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (l *tokenLog) reset() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.tokens
	l.tokens = nil
	return out
}

// A token rewritten in cloud.token_file is picked up on the next 401: the
// rejected request is sent again, once, with the new token, and the
// session authenticates with it from then on.
func TestTokenFileReReadOn401(t *testing.T) {
	var log tokenLog
	cloud := sandboxtest.StartWrapped(t, sandbox.Config{}, log.wrap)
	alice, bob := sandboxtest.Alice, sandboxtest.Bob
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(alice.Token+"\n"), 0o600))

	s := New(Options{AuthURL: cloud.AuthURL, Token: alice.Token, TokenFile: tokenFile})
	ctx := context.Background()
	st, err := s.Get(ctx)
	require.NoError(t, err)
	require.Equal(t, alice.UUID, st.UserUUID)
	gen := s.TokenGeneration()

	// Unchanged file: the 401 stands, nothing is replayed.
	cloud.RevokeToken(alice.Token)
	log.reset()
	_, err = st.Images.List(ctx)
	require.Error(t, err)
	assert.True(t, rest.IsStatus(err, http.StatusUnauthorized), "%v", err)
	assert.Equal(t, []string{alice.Token}, log.reset(), "sent once")

	// Rotated: the same call (a client built with the old token) succeeds.
	require.NoError(t, os.WriteFile(tokenFile, []byte(bob.Token+"\n"), 0o600))
	_, err = st.Images.List(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{alice.Token, bob.Token}, log.reset(), "rejected, then replayed once with the new token")
	assert.NotEqual(t, gen, s.TokenGeneration())

	// Later requests carry the new token; Get authenticates with it.
	st2, err := s.Get(ctx)
	require.NoError(t, err)
	assert.Equal(t, bob.UUID, st2.UserUUID)
	_, err = st.Images.List(ctx)
	require.NoError(t, err)
	for _, tok := range log.reset() {
		assert.Equal(t, bob.Token, tok)
	}
}

// Without a token file (cloud.token, SYNCD_TOKEN) there is nothing to
// re-read: the 401 is returned as it was.
func TestTokenWithoutFileIsNotReRead(t *testing.T) {
	var log tokenLog
	cloud := sandboxtest.StartWrapped(t, sandbox.Config{}, log.wrap)
	s := New(Options{AuthURL: cloud.AuthURL, Token: sandboxtest.Alice.Token})
	st, err := s.Get(context.Background())
	require.NoError(t, err)
	cloud.RevokeToken(sandboxtest.Alice.Token)
	log.reset()
	_, err = st.Images.List(context.Background())
	assert.True(t, rest.IsStatus(err, http.StatusUnauthorized), "%v", err)
	assert.Len(t, log.reset(), 1)
	changed, err := s.ReloadToken()
	assert.False(t, changed)
	assert.NoError(t, err)
	assert.False(t, s.HasTokenFile())
}
