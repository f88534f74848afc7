package sandbox

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestListenServesAndCloses(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()

	// A busy first address falls back to the next one.
	rs, err := Listen(Config{DataDir: t.TempDir(), Users: []User{psAlice}}, busy.Addr().String(), "127.0.0.1:0")
	require.NoError(t, err)
	assert.NotEqual(t, "http://"+busy.Addr().String(), rs.URL)
	assert.Equal(t, rs.URL+"/identity/v2.0", rs.AuthURL())

	req, err := http.NewRequest(http.MethodPost, rs.AuthURL()+"/tokens", strings.NewReader(`{"auth":{"token":{"id":"alice-token"}}}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	require.NoError(t, rs.Close())
	select {
	case <-rs.Done():
	default:
		t.Fatal("Done is not closed after Close")
	}
	assert.NoError(t, rs.Err())
	_, err = http.Get(rs.URL + "/_sandbox/stats")
	assert.Error(t, err, "still serving after Close")

	// Nothing to listen on: an error, and no sandbox left open.
	_, err = Listen(Config{DataDir: t.TempDir()}, busy.Addr().String())
	assert.ErrorContains(t, err, "listen")
}

func TestStoredToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "dev-token")
	tok, err := StoredToken(path, "dev-")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(tok, "dev-") && len(tok) > len("dev-")+16, tok)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a secret")

	again, err := StoredToken(path, "dev-")
	require.NoError(t, err)
	assert.Equal(t, tok, again, "kept across restarts")

	// The file is the token alone (syncctl reads it as a token_file), and a
	// token written by hand is taken as it is.
	require.NoError(t, os.WriteFile(path, []byte("  my-token \n"), 0o600))
	tok, err = StoredToken(path, "dev-")
	require.NoError(t, err)
	assert.Equal(t, "my-token", tok)

	other, err := StoredToken(filepath.Join(t.TempDir(), "t"), "dev-")
	require.NoError(t, err)
	assert.NotEqual(t, tok, other)
}
